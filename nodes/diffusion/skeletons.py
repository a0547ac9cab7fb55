"""The weight-free family skeletons in nodes/diffusion/configs/ (written by tools/make_configs.py).

A skeleton supplies everything a checkpoint's weights cannot tell: attention heads, scheduler,
latent scaling, tokenizer padding. Configs are read once and handed out as copies.
"""

from __future__ import annotations

import copy
import gzip
import json
import threading
from functools import cache, lru_cache
from pathlib import Path

from nodes.diffusion.types import SD1, SD1_INPAINT, SD2, SDXL, SDXL_REFINER

CONFIG_ROOT = Path(__file__).resolve().parent / "configs"
BPE_FILE = CONFIG_ROOT / "clip_tokenizer" / "bpe_simple_vocab_16e6.txt.gz"
FAMILIES = (SD1, SD1_INPAINT, SD2, SDXL, SDXL_REFINER)

# The diffusers component names of each family's text encoders, in ClipRef order.
TEXT_COMPONENTS: dict[str, tuple[str, ...]] = {
    SD1: ("text_encoder",),
    SD1_INPAINT: ("text_encoder",),
    SD2: ("text_encoder",),
    SDXL: ("text_encoder", "text_encoder_2"),
    SDXL_REFINER: ("text_encoder_2",),
}


def skeleton_dir(family: str, prediction_type: str = "epsilon") -> Path:
    if family not in TEXT_COMPONENTS:
        raise ValueError(f"unknown model family {family!r} (known: {', '.join(FAMILIES)})")
    name = "sd2_v" if family == SD2 and prediction_type == "v_prediction" else family
    return CONFIG_ROOT / name


@cache
def _read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def component_config(family: str, component: str, prediction_type: str = "epsilon") -> dict:
    """A copy of `<family>/<component>/config.json` (scheduler: scheduler_config.json)."""
    folder = skeleton_dir(family, prediction_type) / component
    name = "scheduler_config.json" if component == "scheduler" else "config.json"
    if component.startswith("tokenizer"):
        name = "tokenizer_config.json"
    path = folder / name
    if not path.exists():
        raise ValueError(f"family {family} has no {component} in its skeleton ({path})")
    return copy.deepcopy(_read_json(path))


def scheduler_config(family: str, prediction_type: str = "epsilon") -> dict:
    config = component_config(family, "scheduler", prediction_type)
    config["prediction_type"] = prediction_type
    return config


def bytes_to_unicode() -> dict[int, str]:
    """CLIP's (and GPT-2's) reversible byte -> printable character table."""
    printable = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars)))


@lru_cache(maxsize=1)
def clip_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The 49,408-entry CLIP vocabulary rebuilt as CLIP's own tokenizer builds it from the BPE file."""
    lines = gzip.open(BPE_FILE).read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1:49152 - 256 - 2 + 1]]
    base = list(bytes_to_unicode().values())
    tokens = base + [b + "</w>" for b in base] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, merges


_tokenizer_lock = threading.Lock()
_tokenizers: dict[str, object] = {}


def clip_tokenizer(pad_token: str = "<|endoftext|>"):
    """A real CLIP tokenizer (transformers' CLIPTokenizer), built offline and shared per pad token."""
    with _tokenizer_lock:
        tok = _tokenizers.get(pad_token)
        if tok is None:
            from transformers import CLIPTokenizer

            vocab, merges = clip_vocab_and_merges()
            tok = CLIPTokenizer(vocab=dict(vocab), merges=list(merges), model_max_length=77, pad_token=pad_token,
                                bos_token="<|startoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>")
            _tokenizers[pad_token] = tok
        return tok


def family_tokenizer(family: str, component: str):
    """The tokenizer that goes with `text_encoder` / `text_encoder_2` of a family."""
    name = "tokenizer" if component == "text_encoder" else "tokenizer_2"
    config = component_config(family, name)
    return clip_tokenizer(config.get("pad_token", "<|endoftext|>"))
