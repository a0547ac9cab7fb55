"""ComfyUI's `comfy.model_patcher`: Loom has no ModelPatcher (a MODEL is a `ModelRef`, see
nodes/diffusion/types.py), so every name raises an error that says so."""

from _loom_compat import missing_attribute

__getattr__ = missing_attribute("comfy.model_patcher", {
    "ModelPatcher": "a Loom MODEL is a nodes.diffusion.types.ModelRef, not a ModelPatcher",
})
