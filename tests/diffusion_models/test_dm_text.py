"""Prompt weighting, 75-token chunking, embeddings, layer choice and the text nodes."""

from __future__ import annotations

import logging

import pytest
import torch

from nodes.diffusion import skeletons
from nodes.diffusion import text_encoding as te
from nodes.diffusion.nodes_loaders import CheckpointLoaderSimple
from nodes.diffusion.nodes_text import (
    CLIPSetLastLayer,
    CLIPTextEncode,
    CLIPTextEncodeSDXL,
    CLIPTextEncodeSDXLRefiner,
)
from nodes.diffusion.prompt import PromptTokenizer, parse_weights
from tests import tiny_models as tm


# -- parsing (no models) -------------------------------------------------------------------------------
@pytest.mark.parametrize("text,expected", [
    ("a cat", [("a cat", 1.0)]),
    ("a (cat:1.5) dog", [("a ", 1.0), ("cat", 1.5), (" dog", 1.0)]),
    ("(cat)", [("cat", 1.1)]),
    ("((cat))", [("cat", pytest.approx(1.21))]),
    ("(a (b:2) c:0.5)", [("a ", 0.5), ("b", 2.0), (" c", 0.5)]),
    ("(ratio 16:9)", [("ratio 16", 9.0)]),                      # as ComfyUI: the last colon wins
    ("(time 10:pm)", [("time 10:pm", pytest.approx(1.1))]),     # not a number: a plain group
    ("(open", [("(open", 1.0)]),
    ("close) x", [("close) x", 1.0)]),
    ("[cat]", [("[cat]", 1.0)]),                               # literal in ComfyUI
])
def test_parse_weights(text, expected):
    assert parse_weights(text) == expected


def test_square_brackets_opt_in_and_escapes():
    assert parse_weights("[cat]", square_brackets=True) == [("cat", pytest.approx(1 / 1.1))]
    tok = PromptTokenizer(skeletons.clip_tokenizer())
    chunks = tok.tokenize(r"\(cat\) (dog:1.5)")
    ids = [t for t, _ in chunks[0]]
    literal = tok.tokenizer("(cat)")["input_ids"][1:-1]
    assert ids[1:1 + len(literal)] == literal
    assert all(w == 1.0 for _, w in chunks[0][1:1 + len(literal)])
    assert chunks[0][1 + len(literal)][1] == 1.5


def test_chunking_at_75_tokens():
    tok = PromptTokenizer(skeletons.clip_tokenizer())
    one = tok.tokenize(" ".join(["cat"] * 75))
    assert len(one) == 1 and [t for t, _ in one[0]][-1] == 49407 and one[0][75][0] == 2368
    two = tok.tokenize(" ".join(["cat"] * 76))
    assert len(two) == 2 and all(len(c) == 77 for c in two)
    assert [t for t, _ in two[1][:3]] == [49406, 2368, 49407]
    # a short weighted run that does not fit moves whole to the next chunk
    moved = tok.tokenize(" ".join(["cat"] * 74) + " (red fox:1.2)")
    assert len(moved) == 2 and [t for t, _ in moved[0][75:]] == [49407] * 2
    assert [w for _, w in moved[1][1:4]] == [1.2, 1.2, 1.0]
    # a long run (8+ tokens) is split at the boundary instead
    split = tok.tokenize(" ".join(["cat"] * 70) + " (" + " ".join(["dog"] * 10) + ":1.2)")
    assert [t for t, _ in split[0][71:76]] == [1929] * 5 and len([w for _, w in split[1] if w == 1.2]) == 5
    # an SD2 / SDXL-G tokenizer pads with id 0
    g = PromptTokenizer(skeletons.clip_tokenizer("!"))
    assert g.tokenize("cat")[0][-1][0] == 0


def test_embedding_tokens(models_dir, caplog):
    tm.tiny_embedding(models_dir, "safetensors")
    tm.tiny_embedding(models_dir, "pt")
    tm.tiny_embedding(models_dir, "sdxl")
    from nodes.diffusion.embeddings import load_embedding

    tok = PromptTokenizer(skeletons.clip_tokenizer(), clip_name="clip_l", embedding_size=32)
    finder = lambda name: load_embedding(name, "clip_l", 32)  # noqa: E731
    chunk = tok.tokenize("a embedding:tiny-emb, (embedding:tiny-emb-pt:1.3) embedding:tiny-emb-sdxl", finder)[0]
    vectors = [(t, w) for t, w in chunk if isinstance(t, torch.Tensor)]
    assert [w for _, w in vectors] == [1.0, 1.0, 1.3, 1.3, 1.3, 1.0, 1.0]
    assert tok.tokenizer(",")["input_ids"][1] in [t for t, _ in chunk if not isinstance(t, torch.Tensor)]
    with caplog.at_level(logging.WARNING, logger="loom.prompt"):
        chunk = tok.tokenize("embedding:missing cat", finder)[0]
    assert "embedding:missing does not exist" in caplog.text
    assert [t for t, _ in chunk[:3]] == [49406, 2368, 49407]
    g = load_embedding("tiny-emb-sdxl", "clip_g", 64)
    assert g.shape == (2, 64) and load_embedding("tiny-emb", "clip_g", 64) is None


# -- encoding with tiny models ------------------------------------------------------------------------
@pytest.fixture
def sd1_clip(models_dir, manager):
    return CheckpointLoaderSimple().load_checkpoint(tm.tiny_sd1_checkpoint(models_dir))[1]


def test_weighting_math_matches_comfyui(sd1_clip, manager):
    encoder = manager.text_encoders_for(sd1_clip)[0]
    plain, pooled = te.encode_text(sd1_clip, "a red fox")
    unweighted, _ = te.encode_text(sd1_clip, "a (red fox:1.0)")
    assert torch.equal(plain, unweighted) and plain.shape == (1, 77, 32) and pooled.shape == (1, 32)
    weighted, pooled_w = te.encode_text(sd1_clip, "a (red fox:1.5)")
    tok = sd1_clip.tokenizers[0]
    with torch.no_grad():
        ids = torch.tensor([[t for t, _ in tok.tokenize("a red fox")[0]], [t for t, _ in tok.empty_chunk()]])
        z, empty = encoder(ids).last_hidden_state
    positions = [2, 3]                                   # "red", "fox" after start and "a"
    expected = z.clone()
    expected[positions] = (z[positions] - empty[positions]) * 1.5 + empty[positions]
    torch.testing.assert_close(weighted[0], expected)
    torch.testing.assert_close(pooled_w, pooled)        # pooled: first chunk, unweighted


def test_long_prompt_concatenates_chunks(sd1_clip):
    cond, pooled = te.encode_text(sd1_clip, "a photo of a cat " * 20)
    assert cond.shape == (1, 154, 32) and pooled.shape == (1, 32)


def test_embedding_is_injected(sd1_clip, models_dir):
    tm.tiny_embedding(models_dir)
    with_emb, _ = te.encode_text(sd1_clip, "a embedding:tiny-emb cat")
    without, _ = te.encode_text(sd1_clip, "a cat")
    assert with_emb.shape == without.shape and not torch.equal(with_emb, without)
    again, _ = te.encode_text(sd1_clip, "a embedding:tiny-emb.safetensors cat")
    assert torch.equal(with_emb, again)


def test_clip_skip(sd1_clip, manager):
    encoder = manager.text_encoders_for(sd1_clip)[0]
    default, _ = te.encode_text(sd1_clip, "a cat")
    (last,) = CLIPSetLastLayer().set_last_layer(sd1_clip, -1)
    assert torch.equal(te.encode_text(last, "a cat")[0], default)
    (skip,) = CLIPSetLastLayer().set_last_layer(sd1_clip, -2)
    skipped, _ = te.encode_text(skip, "a cat")
    ids = torch.tensor([[t for t, _ in sd1_clip.tokenizers[0].tokenize("a cat")[0]]])
    with torch.no_grad():
        out = encoder(ids, output_hidden_states=True)
        expected = encoder.final_layer_norm(out.hidden_states[-2])
    torch.testing.assert_close(skipped, expected)
    (deep,) = CLIPSetLastLayer().set_last_layer(sd1_clip, -24)   # deeper than the model: the last layer
    assert torch.equal(te.encode_text(deep, "a cat")[0], default)


def test_layer_choice_table():
    assert te.layer_choice("sd1", None, 12) == (None, True)
    assert te.layer_choice("sd2", None, 24) == (-2, True)
    assert te.layer_choice("sd2", None, 23, layers_missing=1) == (-1, True)   # diffusers' SD2 encoder
    assert te.layer_choice("sdxl", None, 32) == (-2, False)
    assert te.layer_choice("sdxl", -1, 32) == (-1, False)
    assert te.layer_choice("sd1", -13, 12) == (None, True)


def test_sdxl_encoding_and_nodes(models_dir, manager):
    model, clip, _ = CheckpointLoaderSimple().load_checkpoint(tm.tiny_sdxl_checkpoint(models_dir))
    (cond,) = CLIPTextEncode().encode(clip, "a cat")
    tensor, options = cond[0]
    assert tensor.shape == (1, 77, 96) and options["pooled_output"].shape == (1, 64)
    encoders = manager.text_encoders_for(clip)
    ids_l = torch.tensor([[t for t, _ in clip.tokenizers[0].tokenize("a cat")[0]]])
    ids_g = torch.tensor([[t for t, _ in clip.tokenizers[1].tokenize("a cat")[0]]])
    with torch.no_grad():
        hl = encoders[0](ids_l, output_hidden_states=True).hidden_states[-2]
        out_g = encoders[1](ids_g, output_hidden_states=True)
    torch.testing.assert_close(tensor, torch.cat([hl, out_g.hidden_states[-2]], dim=-1))
    torch.testing.assert_close(options["pooled_output"], out_g.text_embeds)
    (sdxl,) = CLIPTextEncodeSDXL().encode(clip, 832, 1216, 8, 16, 1024, 1024, "a cat", "a dog " * 80)
    tensor, options = sdxl[0]
    assert tensor.shape == (1, 231, 96)   # G had one chunk, L three: G padded with empty chunks
    assert {k: options[k] for k in ("width", "height", "crop_w", "crop_h", "target_width", "target_height")} == \
        {"width": 832, "height": 1216, "crop_w": 8, "crop_h": 16, "target_width": 1024, "target_height": 1024}


def test_refiner_node(models_dir, manager):
    _, clip, _ = CheckpointLoaderSimple().load_checkpoint(tm.tiny_checkpoint(models_dir, "sdxl_refiner"))
    (cond,) = CLIPTextEncodeSDXLRefiner().encode(clip, 2.5, 768, 512, "a cat")
    tensor, options = cond[0]
    assert tensor.shape == (1, 77, 64) and options["pooled_output"].shape == (1, 64)
    assert (options["aesthetic_score"], options["width"], options["height"]) == (2.5, 768, 512)
    with pytest.raises(RuntimeError, match="needs an SDXL CLIP"):
        CLIPTextEncodeSDXL().encode(clip, 1024, 1024, 0, 0, 1024, 1024, "a", "b")


def test_text_nodes_reject_a_missing_clip():
    with pytest.raises(RuntimeError, match="clip input is invalid: None"):
        CLIPTextEncode().encode(None, "a cat")
