"""ComfyUI's `comfy.model_management`: devices, memory and interrupts, answered by Loom.

Interrupts go through `nodes.context`: inside a running node they act on that run's flag, outside
one on the process-wide flag. Loom's model manager owns loading and offloading; the ComfyUI calls
that take a `ModelPatcher` (load_models_gpu, ...) are not provided and say so.
"""

from __future__ import annotations

import enum
import gc
from typing import Any

import psutil
import torch
from _loom_compat import missing_attribute, unsupported_function

from nodes import context as _context

InterruptProcessingException = _context.InterruptProcessing
OOM_EXCEPTION = torch.cuda.OutOfMemoryError


class VRAMState(enum.Enum):
    DISABLED = 0
    NO_VRAM = 1
    LOW_VRAM = 2
    NORMAL_VRAM = 3
    HIGH_VRAM = 4
    SHARED = 5


class CPUState(enum.Enum):
    GPU = 0
    CPU = 1
    MPS = 2


def _device_type() -> str:
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


cpu_state = {"cuda": CPUState.GPU, "mps": CPUState.MPS, "cpu": CPUState.CPU}[_device_type()]
vram_state = {"cuda": VRAMState.NORMAL_VRAM, "mps": VRAMState.SHARED, "cpu": VRAMState.DISABLED}[_device_type()]
set_vram_to = vram_state
DISABLE_SMART_MEMORY = False


def get_torch_device() -> torch.device:
    kind = _device_type()
    return torch.device(kind, torch.cuda.current_device()) if kind == "cuda" else torch.device(kind)


def intermediate_device() -> torch.device:
    return torch.device("cpu")


def unet_offload_device() -> torch.device:
    return torch.device("cpu")


def text_encoder_offload_device() -> torch.device:
    return torch.device("cpu")


def vae_offload_device() -> torch.device:
    return torch.device("cpu")


def vae_device() -> torch.device:
    return get_torch_device()


def text_encoder_device() -> torch.device:
    return get_torch_device()


def unet_inital_load_device(*_args: Any, **_kwargs: Any) -> torch.device:  # ComfyUI's spelling
    return get_torch_device()


def is_device_type(device: Any, kind: str) -> bool:
    return getattr(device, "type", None) == kind


def is_device_cpu(device: Any) -> bool:
    return is_device_type(device, "cpu")


def is_device_mps(device: Any) -> bool:
    return is_device_type(device, "mps")


def is_device_cuda(device: Any) -> bool:
    return is_device_type(device, "cuda")


def cpu_mode() -> bool:
    return cpu_state == CPUState.CPU


def mps_mode() -> bool:
    return cpu_state == CPUState.MPS


def is_nvidia() -> bool:
    return _device_type() == "cuda" and torch.version.cuda is not None


def is_amd() -> bool:
    return _device_type() == "cuda" and getattr(torch.version, "hip", None) is not None


def is_intel_xpu() -> bool:
    return False


def is_directml_enabled() -> bool:
    return False


directml_enabled = False


def xformers_enabled() -> bool:
    return False


def xformers_enabled_vae() -> bool:
    return False


def pytorch_attention_enabled() -> bool:
    return True


def get_autocast_device(device: Any) -> str:
    return getattr(device, "type", "cuda")


def get_total_memory(dev: Any = None, torch_total_too: bool = False) -> int | tuple[int, int]:
    dev = dev or get_torch_device()
    if is_device_cuda(dev):
        total = torch.cuda.get_device_properties(dev).total_memory
    else:
        total = psutil.virtual_memory().total
    return (total, total) if torch_total_too else total


def get_free_memory(dev: Any = None, torch_free_too: bool = False) -> int | tuple[int, int]:
    dev = dev or get_torch_device()
    if is_device_cuda(dev):
        free, _ = torch.cuda.mem_get_info(dev)
    else:
        free = psutil.virtual_memory().available
    return (free, free) if torch_free_too else free


def soft_empty_cache(force: bool = False) -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _model_manager() -> Any:
    try:
        from nodes.diffusion import management
    except ImportError:
        return None
    return management


def unload_all_models() -> None:
    """Ask Loom's model manager to drop every loaded model (if it is there)."""
    manager = _model_manager()
    fn = None
    if manager is not None:
        fn = getattr(manager, "unload_all_models", None) or getattr(manager, "unload_all", None)
    if fn is not None:
        fn()
    soft_empty_cache()


def cleanup_models(*_args: Any, **_kwargs: Any) -> None:
    gc.collect()


# -- interrupts --------------------------------------------------------------------------------------
def _flag() -> _context.InterruptFlag:
    ctx = _context.current()
    return ctx.interrupt if ctx is not None else _context.global_interrupt()


def interrupt_current_processing(value: bool = True) -> None:
    (_flag().set if value else _flag().clear)()


def processing_interrupted() -> bool:
    return _flag().is_set()


def throw_exception_if_processing_interrupted() -> None:
    _context.check_interrupt()


# -- dtypes -------------------------------------------------------------------------------------------
def should_use_fp16(device: Any = None, model_params: int = 0, prioritize_performance: bool = True,
                    manual_cast: bool = False) -> bool:
    dev = device or get_torch_device()
    return is_device_cuda(dev)


def should_use_bf16(device: Any = None, model_params: int = 0, prioritize_performance: bool = True,
                    manual_cast: bool = False) -> bool:
    dev = device or get_torch_device()
    return is_device_cuda(dev) and torch.cuda.is_bf16_supported()


def unet_dtype(device: Any = None, model_params: int = 0, supported_dtypes: Any = None, weight_dtype: Any = None
               ) -> torch.dtype:
    return torch.float16 if should_use_fp16(device) else torch.float32


def vae_dtype(device: Any = None, allowed_dtypes: Any = None) -> torch.dtype:
    return torch.float32


def text_encoder_dtype(device: Any = None) -> torch.dtype:
    return torch.float16 if should_use_fp16(device) else torch.float32


def supports_dtype(device: Any, dtype: torch.dtype) -> bool:
    if dtype == torch.float32 or is_device_cuda(device):
        return True
    return dtype == torch.bfloat16 and is_device_cpu(device)


def dtype_size(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def device_supports_non_blocking(device: Any) -> bool:
    return is_device_cuda(device)


def cast_to_device(tensor: torch.Tensor, device: Any, dtype: torch.dtype | None, copy: bool = False) -> torch.Tensor:
    out = tensor.to(device=device, dtype=dtype or tensor.dtype, non_blocking=device_supports_non_blocking(device))
    return out.clone() if copy and out is tensor else out


def module_size(module: torch.nn.Module) -> int:
    return sum(t.nelement() * t.element_size() for t in module.state_dict().values())


_hint = "Loom loads models through its own model manager (nodes.diffusion); ModelPatcher objects do not exist"
load_models_gpu = unsupported_function("comfy.model_management.load_models_gpu", _hint)
load_model_gpu = unsupported_function("comfy.model_management.load_model_gpu", _hint)
free_memory = unsupported_function("comfy.model_management.free_memory", _hint)

__getattr__ = missing_attribute("comfy.model_management")
