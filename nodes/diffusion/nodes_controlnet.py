"""ControlNet nodes with ComfyUI's names: ControlNetApply (old) and ControlNetApplyAdvanced.

Applying a ControlNet records a ControlApplication (hint image, strength, percent range) in the
conditioning's options, chained to any applied before; the sampler runs the chain each step.
Positive and negative entries that had the same previous chain share one application object, so
the sampler can run them in one batch.
"""

from __future__ import annotations

import torch

from nodes.diffusion.nodes_conditioning import _check_cond
from nodes.diffusion.types import ControlApplication, ControlNetRef, VAERef


def _check(control_net, image, node: str) -> torch.Tensor:
    if not isinstance(control_net, ControlNetRef):
        raise TypeError(f"{node}: control_net must be a CONTROL_NET (from ControlNetLoader), "
                        f"got {type(control_net).__name__}")
    if not torch.is_tensor(image) or image.ndim != 4:
        raise TypeError(f"{node}: image must be an IMAGE [B,H,W,C]")
    return image


class ControlNetApply:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"conditioning": ("CONDITIONING",), "control_net": ("CONTROL_NET",),
                             "image": ("IMAGE",),
                             "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01})}}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "apply_controlnet"
    CATEGORY = "conditioning/controlnet"
    DEPRECATED = True

    def apply_controlnet(self, conditioning, control_net, image, strength):
        image = _check(control_net, image, "ControlNetApply")
        cond = _check_cond(conditioning, "ControlNetApply")
        if strength == 0:
            return (cond,)
        out = []
        for tensor, options in cond:
            app = ControlApplication(control=control_net, hint=image, strength=float(strength),
                                     previous=options.get("control"))
            # the old node also guides the negative side (as ComfyUI's control_apply_to_uncond does)
            out.append([tensor, dict(options, control=app, control_apply_to_uncond=True)])
        return (out,)


class ControlNetApplyAdvanced:
    @classmethod
    def INPUT_TYPES(cls):
        pct = {"min": 0.0, "max": 1.0, "step": 0.001}
        return {"required": {"positive": ("CONDITIONING",), "negative": ("CONDITIONING",),
                             "control_net": ("CONTROL_NET",), "image": ("IMAGE",),
                             "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01}),
                             "start_percent": ("FLOAT", {"default": 0.0, **pct}),
                             "end_percent": ("FLOAT", {"default": 1.0, **pct})},
                "optional": {"vae": ("VAE",)}}

    RETURN_TYPES = ("CONDITIONING", "CONDITIONING")
    RETURN_NAMES = ("positive", "negative")
    FUNCTION = "apply_controlnet"
    CATEGORY = "conditioning/controlnet"

    def apply_controlnet(self, positive, negative, control_net, image, strength, start_percent, end_percent,
                         vae: VAERef | None = None, extra_concat=()):
        image = _check(control_net, image, "ControlNetApplyAdvanced")
        positive = _check_cond(positive, "ControlNetApplyAdvanced", "positive")
        negative = _check_cond(negative, "ControlNetApplyAdvanced", "negative")
        if strength == 0:
            return (positive, negative)
        if not 0.0 <= start_percent <= end_percent <= 1.0:
            raise ValueError(f"ControlNetApplyAdvanced: need 0 <= start_percent <= end_percent <= 1, "
                             f"got {start_percent} and {end_percent}")
        shared: dict[int, ControlApplication] = {}
        out = []
        for cond in (positive, negative):
            entries = []
            for tensor, options in cond:
                previous = options.get("control")
                app = shared.get(id(previous))
                if app is None:
                    app = ControlApplication(control=control_net, hint=image, strength=float(strength),
                                             start_percent=float(start_percent), end_percent=float(end_percent),
                                             previous=previous)
                    shared[id(previous)] = app
                entries.append([tensor, dict(options, control=app, control_apply_to_uncond=False)])
            out.append(entries)
        return tuple(out)


NODE_CLASS_MAPPINGS = {
    "ControlNetApply": ControlNetApply,
    "ControlNetApplyAdvanced": ControlNetApplyAdvanced,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "ControlNetApply": "Apply ControlNet (OLD)",
    "ControlNetApplyAdvanced": "Apply ControlNet",
}
