"""Turn trained diffusers-format weights into the files Loom ships.

    python -m tools.demo_model.export --src /work/demo_ckpt/final [--models models] [--diffusers DIR]

Reads vae / unet_ema / te_ema / controlnet / lora_peft `.safetensors` from --src (what train.py
writes) and writes:
- models/checkpoints/loom-demo-sd1.safetensors  original SD layout (model.diffusion_model.*,
  first_stage_model.*, cond_stage_model.transformer.text_model.*), fp16;
- models/controlnet/loom-demo-control.safetensors  original ControlNet layout (control_model.*), fp16;
- models/loras/loom-demo-stripes.safetensors  kohya format (lora_unet_*.lora_down/lora_up/alpha), fp16;
- with --diffusers DIR: diffusers folders (unet/, vae/, text_encoder/, controlnet/, lora/) in fp32.
The conversion is Loom's own (nodes.diffusion.loading.ldm_export), so the shipped files load
through exactly the code that loads real SD 1.5 files.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import torch

from tools.demo_model import models
from tools.demo_model.trainlib import load

CKPT_NAME = "loom-demo-sd1.safetensors"
CONTROL_NAME = "loom-demo-control.safetensors"
LORA_NAME = "loom-demo-stripes.safetensors"


def load_components(src: Path) -> dict:
    vae, unet, te = models.build_vae(), models.build_unet(), models.build_text_encoder()
    vae.load_state_dict({k: v.float() for k, v in load(src / "vae.safetensors").items()})
    unet.load_state_dict({k: v.float() for k, v in load(src / "unet_ema.safetensors").items()})
    models.load_text_state(te, {k: v.float() for k, v in load(src / "te_ema.safetensors").items()})
    out = {"vae": vae.eval(), "unet": unet.eval(), "text_encoder": te.eval()}
    if (src / "controlnet.safetensors").exists():
        cn = models.build_controlnet(unet)
        cn.load_state_dict({k: v.float() for k, v in load(src / "controlnet.safetensors").items()})
        out["controlnet"] = cn.eval()
    if (src / "lora_peft.safetensors").exists():
        out["lora_peft"] = load(src / "lora_peft.safetensors")
    return out


def peft_to_kohya(state: dict, alpha: float) -> dict:
    """peft UNet LoRA keys (`<module>.lora_A.weight`) -> kohya (`lora_unet_<module_>.lora_down.weight`)."""
    out = {}
    for key, value in state.items():
        m = re.fullmatch(r"(?:unet\.)?(.+)\.lora_([AB])(?:\.default)?\.weight", key)
        if m is None:
            raise ValueError(f"not a peft LoRA weight: {key!r}")
        name = "lora_unet_" + m[1].replace(".", "_")
        out[f"{name}.{'lora_down' if m[2] == 'A' else 'lora_up'}.weight"] = value
        out[f"{name}.alpha"] = torch.tensor(float(alpha))
    return out


def _fp16(state: dict) -> dict:
    return {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()}


# The LoRA was trained at rank 8, alpha 8 (scale 1). Shipped with alpha 9.6 (scale 1.2): at strength 1
# that stripes ~90% of fills instead of ~70% (see README); strength 0.83 gives the trained scale.
LORA_RANK = 8
LORA_ALPHA = 9.6


def export(src: Path, models_dir: Path, diffusers_dir: Path | None = None, lora_alpha: float = LORA_ALPHA) -> dict:
    from safetensors.torch import save_file

    from nodes.diffusion.loading.ldm_export import diffusers_to_ldm_state_dict, save_single_file

    comps = load_components(src)
    written = {}
    ckpt = models_dir / "checkpoints" / CKPT_NAME
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    meta = {"loom.demo": "tiny SD1-architecture model trained on procedural shapes (tools/demo_model)",
            "loom.resolution": str(models.RESOLUTION)}
    save_single_file(ckpt, unet=comps["unet"], vae=comps["vae"], text_encoders=[comps["text_encoder"]],
                     family="sd1", dtype=torch.float16, metadata=meta)
    written["checkpoint"] = ckpt
    if "controlnet" in comps:
        path = models_dir / "controlnet" / CONTROL_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        state = diffusers_to_ldm_state_dict(controlnet=comps["controlnet"], family="sd1")
        save_file(_fp16(state), str(path), metadata={"format": "pt", **meta})
        written["controlnet"] = path
    if "lora_peft" in comps:
        path = models_dir / "loras" / LORA_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(_fp16(peft_to_kohya(comps["lora_peft"], lora_alpha)), str(path),
                  metadata={"format": "pt", "ss_network_dim": str(LORA_RANK), "ss_network_alpha": str(lora_alpha),
                            **meta})
        written["lora"] = path
    if diffusers_dir is not None:
        for name in ("unet", "vae", "text_encoder", "controlnet"):
            if name in comps:
                comps[name].save_pretrained(diffusers_dir / name)
        if "lora_peft" in comps:
            (diffusers_dir / "lora").mkdir(parents=True, exist_ok=True)
            save_file(comps["lora_peft"], str(diffusers_dir / "lora" / "lora_peft.safetensors"))
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", type=Path, required=True)
    p.add_argument("--models", type=Path, default=Path(__file__).resolve().parents[2] / "models")
    p.add_argument("--diffusers", type=Path)
    a = p.parse_args(argv)
    written = export(a.src, a.models, a.diffusers)
    total = 0
    for what, path in written.items():
        size = path.stat().st_size
        total += size
        print(f"{what:10s} {path} {size / 1e6:.2f} MB")
    print(f"total {total / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
