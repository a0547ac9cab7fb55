"""The values that flow between diffusion nodes (MODEL, CLIP, VAE, CONTROL_NET, CONDITIONING, LATENT).

Values are small and immutable: a MODEL is a reference to a loaded base UNet plus the LoRAs to
apply to it, never a copy of the weights. The heavy modules belong to the model manager
(`nodes.diffusion.management`), which loads, moves and offloads them; a node asks it for the module
ready to run (`model_manager().unet_for(ref)`), which applies exactly this value's LoRAs as peft adapters.
That keeps the engine's cache cheap and lets two branches use the same base with different LoRAs.

Conventions shared with ComfyUI (packs rely on them):
- IMAGE: float32 [B,H,W,C] in 0..1.  MASK: float32 [B,H,W] in 0..1.
- LATENT: {"samples": [B,C,H/f,W/f] (the VAE's raw latents, not multiplied by its scaling factor, as in
           ComfyUI; the sampler scales them by ModelRef.options["latent_scaling_factor"] for the UNet),
           "noise_mask"?: [B,1,H,W] or [B,H,W], "batch_index"?: [int]}.
- CONDITIONING: [[cond_tensor [B,T,C], options_dict], ...]; options hold "pooled_output" (SDXL),
  "area", "strength", "mask", "set_area_to_bounds", "mask_strength", "start_percent", "end_percent",
  "control" (a ControlApplication chain), "width"/"height"/"crop_w"/"crop_h"/"target_width"/
  "target_height" (SDXL size conditioning), "aesthetic_score" (refiner).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

# Model families Loom can run. Each has a weight-free config folder under nodes/diffusion/configs/.
SD1 = "sd1"
SD2 = "sd2"          # epsilon or v-prediction, see LoadedUNet.prediction_type
SDXL = "sdxl"
SDXL_REFINER = "sdxl_refiner"
SD1_INPAINT = "sd1_inpaint"


@dataclass(frozen=True)
class LoraRef:
    """One LoRA to apply, by file, with a strength (0 = off)."""

    path: str
    strength: float = 1.0


@dataclass(eq=False)
class LoadedComponent:
    """A module the model manager owns. `key` identifies it (file path + what was loaded from it)."""

    key: str
    module: Any                 # torch.nn.Module (UNet2DConditionModel, AutoencoderKL, CLIPTextModel, ...)
    family: str
    config: dict = field(default_factory=dict)

    def size_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.module.parameters()) if self.module is not None else 0


@dataclass(frozen=True, eq=False)
class ModelRef:
    """MODEL: a base UNet and the LoRAs to apply to it."""

    unet: LoadedComponent
    loras: tuple[LoraRef, ...] = ()
    prediction_type: str = "epsilon"   # "epsilon" | "v_prediction"
    scheduler_config: dict = field(default_factory=dict)  # the family's diffusers scheduler config
    options: dict = field(default_factory=dict)           # e.g. sampling shift, patches from packs;
    # the sampler reads "latent_scaling_factor" and "latent_downscale" (pixels per latent cell, default 8)

    def with_lora(self, lora: LoraRef) -> ModelRef:
        return replace(self, loras=self.loras + (lora,))


@dataclass(frozen=True, eq=False)
class ClipRef:
    """CLIP: the tokenizer(s) and text encoder(s) of one family, plus LoRAs and the stop layer."""

    encoders: tuple[LoadedComponent, ...]     # SD1/2: (clip_l|open_clip_h,); SDXL: (clip_l, clip_g); refiner: (clip_g,)
    tokenizers: tuple[Any, ...]
    family: str
    loras: tuple[LoraRef, ...] = ()
    stop_at_clip_layer: int | None = None     # CLIPSetLastLayer's value (-1 = last); None = family default
                                              # (SD1: last; SD2/SDXL: penultimate), as in ComfyUI

    def with_lora(self, lora: LoraRef) -> ClipRef:
        return replace(self, loras=self.loras + (lora,))

    def with_stop_layer(self, layer: int) -> ClipRef:
        return replace(self, stop_at_clip_layer=layer)


@dataclass(frozen=True, eq=False)
class VAERef:
    """VAE: an AutoencoderKL with its latent scaling."""

    vae: LoadedComponent
    scaling_factor: float = 0.18215
    shift_factor: float = 0.0
    downscale: int = 8               # pixels per latent cell: 2 ** (len(block_out_channels) - 1)
    latent_channels: int = 4


@dataclass(frozen=True, eq=False)
class ControlNetRef:
    """CONTROL_NET: a loaded ControlNetModel."""

    controlnet: LoadedComponent


@dataclass(frozen=True, eq=False)
class ControlApplication:
    """A ControlNet applied to a conditioning entry (chains through `previous`)."""

    control: ControlNetRef
    hint: Any                  # IMAGE tensor [B,H,W,C] in 0..1
    strength: float = 1.0
    start_percent: float = 0.0
    end_percent: float = 1.0
    previous: ControlApplication | None = None


@dataclass(frozen=True, eq=False)
class UpscaleModelRef:
    """UPSCALE_MODEL: a spandrel ImageModelDescriptor."""

    model: Any
    scale: int
