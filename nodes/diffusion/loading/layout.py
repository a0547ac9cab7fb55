"""Where each component lives in an original (LDM / SGM) single-file checkpoint.

One table shared by the reader (detection, loading) and the writer (`ldm_export`), so the two
directions cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from nodes.diffusion.types import SD1, SD1_INPAINT, SD2, SDXL, SDXL_REFINER

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIXES = ("first_stage_model.", "vae.")
CONTROLNET_PREFIX = "control_model."

HF = "hf"              # transformers' CLIP layout: <prefix>text_model.encoder.layers.N...
OPEN_CLIP = "open_clip"  # OpenCLIP layout: <prefix>transformer.resblocks.N.attn.in_proj_weight...


@dataclass(frozen=True)
class TextSlot:
    """One text encoder of a family: its key prefix and layout in a single file."""

    prefix: str
    layout: str
    name: str            # "clip_l", "clip_h", "clip_g" (ComfyUI's names)


TEXT_SLOTS: dict[str, tuple[TextSlot, ...]] = {
    SD1: (TextSlot("cond_stage_model.transformer.", HF, "clip_l"),),
    SD1_INPAINT: (TextSlot("cond_stage_model.transformer.", HF, "clip_l"),),
    SD2: (TextSlot("cond_stage_model.model.", OPEN_CLIP, "clip_h"),),
    SDXL: (
        TextSlot("conditioner.embedders.0.transformer.", HF, "clip_l"),
        TextSlot("conditioner.embedders.1.model.", OPEN_CLIP, "clip_g"),
    ),
    SDXL_REFINER: (TextSlot("conditioner.embedders.0.model.", OPEN_CLIP, "clip_g"),),
}

# Every prefix a text encoder may sit under in a checkpoint we can read (SD2 in SGM format too).
ALL_TEXT_PREFIXES = (
    "cond_stage_model.transformer.",
    "cond_stage_model.model.",
    "conditioner.embedders.0.transformer.",
    "conditioner.embedders.0.model.",
    "conditioner.embedders.1.model.",
)
