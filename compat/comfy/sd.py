"""ComfyUI's `comfy.sd`: model loading lives in Loom's own loader nodes, so nothing here is
provided; every name raises an error that says what is missing."""

from _loom_compat import missing_attribute

__getattr__ = missing_attribute("comfy.sd", {
    "load_checkpoint_guess_config": "use Loom's CheckpointLoaderSimple node",
    "load_lora_for_models": "use Loom's LoraLoader node",
})
