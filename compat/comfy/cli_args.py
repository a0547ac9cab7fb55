"""ComfyUI's `comfy.cli_args`: `args` with the flags packs commonly read, at their defaults.

Loom's own options are not parsed here; the values below describe what Loom does (for example
no xformers, no fp8 unet). A flag that is not listed raises an error naming it.
"""

from __future__ import annotations

import enum
from typing import Any

from _loom_compat import not_implemented


class LatentPreviewMethod(enum.Enum):
    NoPreviews = "none"
    Auto = "auto"
    Latent2RGB = "latent2rgb"
    TAESD = "taesd"


class _Args:
    listen = "127.0.0.1"
    port = 8188
    enable_cors_header = None
    max_upload_size = 100
    base_directory = None
    output_directory = None
    input_directory = None
    temp_directory = None
    user_directory = None
    extra_model_paths_config = None
    cpu = False
    lowvram = False
    novram = False
    normalvram = False
    highvram = False
    gpu_only = False
    cuda_device = None
    disable_smart_memory = False
    reserve_vram = None
    preview_method = LatentPreviewMethod.NoPreviews
    preview_size = 512
    disable_all_custom_nodes = False
    whitelist_custom_nodes: list[str] = []
    disable_api_nodes = True
    disable_metadata = False
    multi_user = False
    verbose = "INFO"
    log_stdout = False
    deterministic = False
    fast: set = set()
    force_fp16 = False
    force_fp32 = False
    fp16_unet = False
    bf16_unet = False
    fp8_e4m3fn_unet = False
    fp8_e5m2_unet = False
    fp16_vae = False
    bf16_vae = False
    fp32_vae = False
    cpu_vae = False
    fp16_text_enc = False
    fp32_text_enc = False
    use_split_cross_attention = False
    use_quad_cross_attention = False
    use_pytorch_cross_attention = True
    disable_xformers = True
    dont_upcast_attention = False
    quick_test_for_ci = False
    windows_standalone_build = False
    front_end_version = "comfyanonymous/ComfyUI@latest"
    front_end_root = None

    def __getattr__(self, name: str) -> Any:
        raise not_implemented(f"comfy.cli_args.args.{name}")


args = _Args()
