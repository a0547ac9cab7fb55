"""CLIP text encoding the way ComfyUI does it: weights, 75-token chunks, layer choice, SDXL pairs.

    cond, pooled = encode_text(clip_ref, "a (red:1.2) fox, embedding:style")

Weighting follows ComfyUI: the chunks and one empty prompt ([start, end, pad...]) are encoded in
one batch, and a token of weight w becomes `empty + (token - empty) * w`, position by position,
so weight 1 leaves it unchanged and weight 0 turns it into the empty prompt's state there.
Chunks are concatenated along the sequence ([1, 77*n, C]); the pooled output comes from the first
chunk. Layers: SD1 takes the last layer (final norm applied); SD2 the penultimate (final norm
applied); SDXL both encoders' penultimate without the final norm. CLIPSetLastLayer(-k) takes
hidden state -k instead (k beyond the depth means the last layer).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from nodes.diffusion.prompt import PromptTokenizer
from nodes.diffusion.types import SD2, SDXL, SDXL_REFINER, ClipRef

log = logging.getLogger("loom.text")

Chunks = list[list[tuple[Any, float]]]


def layer_choice(family: str, stop_at: int | None, num_layers: int, layers_missing: int = 0) -> tuple[int | None, bool]:
    """(hidden_states index or None for the final output, apply final layer norm) for one encoder."""
    final_norm = family not in (SDXL, SDXL_REFINER)
    if stop_at is None:
        stop_at = -1 if family not in (SD2, SDXL, SDXL_REFINER) else -2
        if stop_at == -1:
            return None, True
    depth = num_layers + layers_missing
    if abs(stop_at) > depth:
        return None, True
    index = stop_at + layers_missing
    if index >= 0:   # the layer was cut from this copy of the encoder (diffusers' 23-layer SD2)
        log.warning("this text encoder has %d layers; layer %d is not in it, using the last one", num_layers, stop_at)
        return -1, final_norm
    return index, final_norm


def _embedding_finder(tokenizer: PromptTokenizer) -> Callable[[str], Any]:
    from nodes.diffusion.embeddings import load_embedding

    return lambda name: load_embedding(name, tokenizer.clip_name, tokenizer.embedding_size)


def tokenize(clip_ref: ClipRef, text: str, square_brackets: bool = False) -> list[Chunks]:
    """Token chunks of `text` for each encoder of `clip_ref`, in encoder order."""
    return [tok.tokenize(text, _embedding_finder(tok), square_brackets) for tok in clip_ref.tokenizers]


def _final_norm_module(module: Any) -> Any:
    return module.text_model.final_layer_norm if hasattr(module, "text_model") else module.final_layer_norm


def run_encoder(module: Any, chunks: Chunks, hidden_index: int | None, final_norm: bool,
                placeholder: int) -> tuple[Any, Any]:
    """(hidden [B,77,C], pooled [B,P]) in float32 on the CPU; vectors in `chunks` are injected."""
    import torch

    device = next(module.parameters()).device
    ids, inject = [], []
    for b, chunk in enumerate(chunks):
        row = []
        for pos, (token, _) in enumerate(chunk):
            if isinstance(token, torch.Tensor):
                inject.append((b, pos, token))
                row.append(placeholder)
            else:
                row.append(int(token))
        ids.append(row)
    input_ids = torch.tensor(ids, dtype=torch.long, device=device)
    embedding = module.get_input_embeddings()

    def put_vectors(_mod, _args, output):
        output = output.clone()
        for b, pos, vector in inject:
            output[b, pos] = vector.to(device=output.device, dtype=output.dtype)
        return output

    handle = embedding.register_forward_hook(put_vectors) if inject else None
    try:
        with torch.no_grad():
            out = module(input_ids=input_ids, output_hidden_states=hidden_index is not None)
            if hidden_index is None:
                hidden = out.last_hidden_state
            else:
                hidden = out.hidden_states[hidden_index]
                if final_norm:
                    hidden = _final_norm_module(module)(hidden)
            pooled = out.text_embeds if hasattr(out, "text_embeds") else out.pooler_output
    finally:
        if handle is not None:
            handle.remove()
    return hidden.float().cpu(), pooled.float().cpu()


def encode_chunks(module: Any, tokenizer: PromptTokenizer, chunks: Chunks, hidden_index: int | None,
                  final_norm: bool) -> tuple[Any, Any]:
    """ComfyUI's weighted encoding of one encoder's chunks -> ([1, 77*n, C], [1, P])."""
    import torch

    weighted = any(w != 1.0 for chunk in chunks for _, w in chunk)
    batch = list(chunks)
    if weighted or not batch:
        batch.append(tokenizer.empty_chunk(max((len(c) for c in chunks), default=tokenizer.max_length)))
    hidden, pooled = run_encoder(module, batch, hidden_index, final_norm, placeholder=tokenizer.pad_token)
    if not chunks:
        return hidden[-1:], pooled[:1]
    out = []
    for k, chunk in enumerate(chunks):
        z = hidden[k]
        if weighted:
            empty = hidden[-1]
            weights = torch.tensor([w for _, w in chunk], dtype=z.dtype)[:, None]
            z = torch.where(weights != 1.0, (z - empty) * weights + empty, z)
        out.append(z)
    return torch.cat(out, dim=0)[None], pooled[:1]


def encode_tokens(clip_ref: ClipRef, tokens: Sequence[Chunks], modules: Sequence[Any] | None = None
                  ) -> tuple[Any, Any]:
    """(cond [1, 77*n, C], pooled [1, P]) for tokens from `tokenize` (one chunk list per encoder)."""
    import torch

    if modules is None:
        from nodes.diffusion.management import model_manager

        modules = model_manager().text_encoders_for(clip_ref)
    outputs = []
    for component, module, tokenizer, chunks in zip(clip_ref.encoders, modules, clip_ref.tokenizers, tokens):
        missing = int(component.config.get("layers_missing", 0))
        index, norm = layer_choice(clip_ref.family, clip_ref.stop_at_clip_layer, module.config.num_hidden_layers,
                                   missing)
        outputs.append(encode_chunks(module, tokenizer, chunks, index, norm))
    if len(outputs) == 1:
        return outputs[0]
    (cond_l, _), (cond_g, pooled_g) = outputs
    if cond_l.shape[1] != cond_g.shape[1]:
        raise ValueError(f"the two encoders got different chunk counts ({cond_l.shape[1]} vs {cond_g.shape[1]} "
                         "tokens); pad the shorter with empty chunks first")
    return torch.cat([cond_l, cond_g], dim=-1), pooled_g


def encode_text(clip_ref: ClipRef, text: str) -> tuple[Any, Any]:
    return encode_tokens(clip_ref, tokenize(clip_ref, text))


def pad_to_same_length(tokens: list[Chunks], clip_ref: ClipRef) -> list[Chunks]:
    """CLIPTextEncodeSDXL: give both encoders the same number of chunks by adding empty ones."""
    longest = max(len(t) for t in tokens)
    return [t + [tok.empty_chunk() for _ in range(longest - len(t))] for t, tok in zip(tokens, clip_ref.tokenizers)]
