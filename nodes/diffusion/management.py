"""The model manager: owns every loaded module, moves it where it must run, frees memory.

One per process (`model_manager()`). Modules stay loaded between runs, keyed by file path + mtime
+ component, and are handed to nodes through the small immutable refs of `types.py`:

    mm = model_manager()
    unet = mm.unet_for(model_ref)          # on mm.device, with exactly model_ref.loras active
    encoders = mm.text_encoders_for(clip_ref)
    vae = mm.vae_for(vae_ref); cn = mm.controlnet_for(cn_ref)
    mm.free(unload_models=True)            # the server's /free

Memory: a VRAM budget (CUDA only) is kept by moving the least recently used modules back to the
CPU; a RAM budget by unloading the least recently used modules that can be reloaded from disk.
A module used by the node that is running now is never moved or unloaded. Low-VRAM mode keeps
weights on the CPU and streams them per module (`offload.py`).

Settings come from `configure_model_manager(...)` or the environment: LOOM_DEVICE (cuda|cpu|mps),
LOOM_DTYPE (fp16|bf16|fp32, the UNet/text-encoder dtype on an accelerator), LOOM_VAE_DTYPE,
LOOM_VRAM_BUDGET_GB, LOOM_RAM_BUDGET_GB, LOOM_LOW_VRAM=1.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodes.diffusion.types import ClipRef, ControlNetRef, LoadedComponent, ModelRef, VAERef

log = logging.getLogger("loom.models")

_DTYPES = {"fp16": "float16", "float16": "float16", "bf16": "bfloat16", "bfloat16": "bfloat16",
           "fp32": "float32", "float32": "float32"}

Loader = Callable[[], tuple[Any, dict]]   # -> (module, config)


def file_key(path: str | os.PathLike, part: str) -> str:
    """`<real path>@<mtime ns>#<part>`: a changed file is a new model."""
    real = os.path.realpath(path)
    try:
        mtime = os.stat(real).st_mtime_ns
    except OSError:
        mtime = 0
    return f"{real}@{mtime}#{part}"


def _env_float(name: str) -> float | None:
    value = os.environ.get(name)
    return float(value) if value else None


@dataclass(eq=False)
class _Entry:
    component: LoadedComponent
    reload: Loader | None
    on_device: bool = False
    last_user: Any = None


class ModelManager:
    def __init__(self, device: str | None = None, dtype: str | None = None, vae_dtype: str | None = None,
                 vram_budget_bytes: int | None = None, ram_budget_bytes: int | None = None,
                 low_vram: bool | None = None, offload_device: str = "cpu"):
        import torch

        if device is None:
            device = os.environ.get("LOOM_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
        self._device = torch.device(device)
        self._offload = torch.device(offload_device)
        accel = self._device.type != "cpu"
        name = dtype or os.environ.get("LOOM_DTYPE") or ("fp16" if accel else "fp32")
        self._dtype = getattr(torch, _DTYPES[name]) if accel else torch.float32
        vae_name = vae_dtype or os.environ.get("LOOM_VAE_DTYPE")
        if vae_name is None:
            bf16_ok = self._device.type == "cuda" and torch.cuda.is_bf16_supported()
            vae_name = "bf16" if bf16_ok else "fp32"
        self._vae_dtype = getattr(torch, _DTYPES[vae_name]) if accel else torch.float32
        if vram_budget_bytes is None and self._device.type == "cuda":
            gb = _env_float("LOOM_VRAM_BUDGET_GB")
            total = torch.cuda.get_device_properties(self._device).total_memory
            vram_budget_bytes = int(gb * 2**30) if gb else max(0, total - 2 * 2**30)  # room for activations
        self.vram_budget = vram_budget_bytes
        if ram_budget_bytes is None:
            gb = _env_float("LOOM_RAM_BUDGET_GB")
            if gb:
                ram_budget_bytes = int(gb * 2**30)
            else:
                import psutil

                ram_budget_bytes = int(psutil.virtual_memory().total * 0.6)
        self.ram_budget = ram_budget_bytes
        env_low = os.environ.get("LOOM_LOW_VRAM", "").lower() in ("1", "true", "yes")
        self.low_vram = bool(low_vram) if low_vram is not None else env_low
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.RLock()
        self._local = threading.local()

    # -- properties --------------------------------------------------------------------------
    @property
    def device(self):
        return self._device

    @property
    def dtype(self):
        """The UNet / text encoder / ControlNet compute dtype (fp32 on the CPU)."""
        return self._dtype

    @property
    def vae_dtype(self):
        return self._vae_dtype

    def dtype_for(self, part: str):
        return self._vae_dtype if part == "vae" else self._dtype

    # -- registry ------------------------------------------------------------------------------
    def load(self, key: str, family: str, loader: Loader, reload: Loader | None = None) -> LoadedComponent:
        """The component under `key`, loaded now with `loader` unless it is already held; `reload`
        (default: `loader`) brings it back after the manager unloaded it."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                if entry.component.module is None:
                    self._reload(entry)
                return entry.component
            self._forget_stale(key)
            module, config = loader()
            component = LoadedComponent(key=key, module=module, family=family, config=config)
            entry = self._entries[key] = _Entry(component, reload or loader)
            self._enforce_ram(keep=entry)
            return component

    def register(self, component: LoadedComponent, reload: Loader | None = None) -> LoadedComponent:
        """Adopt a component built in memory (tests, packs). Without `reload` it is never unloaded."""
        with self._lock:
            entry = self._entries.get(component.key)
            if entry is None or entry.component is not component:
                self._entries[component.key] = _Entry(component, reload, on_device=self._is_on_device(component))
            self._entries.move_to_end(component.key)
            return component

    def get(self, key: str) -> LoadedComponent | None:
        entry = self._entries.get(key)
        return entry.component if entry else None

    def _forget_stale(self, key: str) -> None:
        """Drop components of an older version of the same file (same path, other mtime)."""
        path, _, rest = key.rpartition("@")
        part = rest.partition("#")[2]
        for other in [k for k in self._entries if k.startswith(path + "@") and k.endswith("#" + part) and k != key]:
            entry = self._entries[other]
            if entry.reload is not None:
                self._unload(entry)
                del self._entries[other]

    def _reload(self, entry: _Entry) -> None:
        if entry.reload is None:
            raise RuntimeError(f"model {entry.component.key} was unloaded and cannot be reloaded")
        log.info("reloading %s", entry.component.key)
        module, config = entry.reload()
        entry.component.module = module
        entry.component.config = config
        entry.on_device = False
        self._enforce_ram(keep=entry)

    # -- preparing modules -------------------------------------------------------------------
    def _user_token(self) -> Any:
        """Who is using models now: the running node (from nodes.context), else this thread."""
        from nodes import context

        ctx = context.current()
        if ctx is not None:
            return (ctx.prompt_id, ctx.real_node_id)
        return getattr(self._local, "token", None)

    def _is_on_device(self, component: LoadedComponent) -> bool:
        module = component.module
        if module is None:
            return False
        param = next(module.parameters(), None)
        return param is not None and param.device.type == self._device.type

    def prepare(self, component: LoadedComponent, part: str = "unet") -> Any:
        """The component's module, loaded and ready to run on the compute device."""
        with self._lock:
            entry = self._entries.get(component.key)
            if entry is None or entry.component is not component:
                self.register(component)
                entry = self._entries[component.key]
            self._entries.move_to_end(component.key)
            entry.last_user = self._user_token()
            if component.module is None:
                self._reload(entry)
            module = component.module
            if self._device.type == "cpu":
                entry.on_device = True
                return module
            if component.config.get("pin_cpu"):   # CLIPLoader's device="cpu": runs on the CPU in fp32
                import torch

                _move(module, self._offload, torch.float32)
                return module
            dtype = None if component.config.get("keep_dtype") else self.dtype_for(part)
            if self.low_vram:
                from nodes.diffusion import offload

                if entry.on_device:
                    module.to(self._offload)
                    entry.on_device = False
                _move(module, None, dtype)
                offload.attach(module, self._device, self._offload)
                return module
            if not entry.on_device:
                self._make_room(component.size_bytes(), keep=entry)
                _move(module, self._device, dtype)
                entry.on_device = True
            elif next(module.parameters()).device.type != self._device.type:  # LoRA layers added on the CPU
                _move(module, self._device, None)
            return module

    def _make_room(self, needed: int, keep: _Entry) -> None:
        if self.vram_budget is None:
            return
        used = sum(e.component.size_bytes() for e in self._entries.values() if e.on_device and e is not keep)
        token = self._user_token()
        for entry in list(self._entries.values()):  # least recently used first
            if used + needed <= self.vram_budget:
                break
            if entry is keep or not entry.on_device or (token is not None and entry.last_user == token):
                continue
            used -= entry.component.size_bytes()
            self._offload_entry(entry)
        if used + needed > self.vram_budget:
            log.warning("models in use need %.2f GiB, over the VRAM budget of %.2f GiB",
                        (used + needed) / 2**30, self.vram_budget / 2**30)

    def _offload_entry(self, entry: _Entry) -> None:
        if entry.component.module is not None and self._device.type != "cpu":
            entry.component.module.to(self._offload)
        entry.on_device = False

    def _ram_used(self) -> int:
        cpu_resident = [e for e in self._entries.values()
                        if e.component.module is not None and (not e.on_device or self._device.type == "cpu")]
        return sum(e.component.size_bytes() for e in cpu_resident)

    def _enforce_ram(self, keep: _Entry | None = None) -> None:
        used = self._ram_used()
        token = self._user_token()
        for entry in list(self._entries.values()):
            if used <= self.ram_budget:
                return
            if entry is keep or entry.reload is None or entry.component.module is None:
                continue
            if token is not None and entry.last_user == token:
                continue
            if entry.on_device and self._device.type != "cpu":
                continue
            used -= entry.component.size_bytes()
            self._unload(entry)

    def _unload(self, entry: _Entry) -> None:
        log.info("unloading %s", entry.component.key)
        entry.component.module = None
        entry.on_device = False

    # -- what nodes ask for ----------------------------------------------------------------------
    def unet_for(self, model_ref: ModelRef) -> Any:
        module = self.prepare(model_ref.unet, "unet")
        from nodes.diffusion import lora

        lora.activate(module, "unet", model_ref.loras, model_ref.unet.family)
        return self._after_lora(model_ref.unet, module)

    def text_encoders_for(self, clip_ref: ClipRef) -> list[Any]:
        from nodes.diffusion import lora

        modules = []
        for index, component in enumerate(clip_ref.encoders):
            module = self.prepare(component, "text_encoder")
            part = component.config.get("component", "text_encoder_2" if index else "text_encoder")
            lora.activate(module, part, clip_ref.loras, clip_ref.family)
            modules.append(self._after_lora(component, module))
        return modules

    def vae_for(self, vae_ref: VAERef) -> Any:
        return self.prepare(vae_ref.vae, "vae")

    def controlnet_for(self, cn_ref: ControlNetRef) -> Any:
        return self.prepare(cn_ref.controlnet, "controlnet")

    def _after_lora(self, component: LoadedComponent, module: Any) -> Any:
        """LoRA layers are created on the CPU in fp32: bring them where the base weights are."""
        if self._device.type == "cpu" or component.config.get("pin_cpu"):
            return module
        dtype = None if component.config.get("keep_dtype") else self.dtype
        if self.low_vram:
            from nodes.diffusion import offload

            _move(module, None, dtype)
            offload.attach(module, self._device, self._offload)
        else:
            _move(module, self._device, dtype)
        return module

    # -- freeing -----------------------------------------------------------------------------
    def free(self, unload_models: bool = True) -> None:
        """Give memory back: offload everything from the GPU; with unload_models, also drop
        every module that can be reloaded from its file (in-memory ones stay)."""
        with self._lock:
            for entry in self._entries.values():
                if entry.on_device:
                    self._offload_entry(entry)
                if unload_models and entry.reload is not None and entry.component.module is not None:
                    self._unload(entry)
            gc.collect()
            self.empty_cache()

    def empty_cache(self) -> None:
        import torch

        if self._device.type == "cuda":
            torch.cuda.empty_cache()

    def stats(self) -> dict:
        with self._lock:
            loaded = [e for e in self._entries.values() if e.component.module is not None]
            return {
                "device": str(self._device), "dtype": str(self._dtype).removeprefix("torch."),
                "entries": len(self._entries), "loaded": len(loaded),
                "on_device": sum(1 for e in loaded if e.on_device),
                "ram_bytes": self._ram_used(), "ram_budget_bytes": self.ram_budget,
                "vram_bytes": sum(e.component.size_bytes() for e in loaded if e.on_device and self._device.type != "cpu"),
                "vram_budget_bytes": self.vram_budget, "low_vram": self.low_vram,
                "keys": [Path(k.partition("@")[0]).name + "#" + k.rpartition("#")[2] for k in self._entries],
            }

    def loaded_files(self) -> dict[str, int]:
        """Real path of each model file with loaded parts -> the bytes those parts take."""
        with self._lock:
            files: dict[str, int] = {}
            for key, entry in self._entries.items():
                if entry.component.module is not None:
                    path = key.partition("@")[0]
                    files[path] = files.get(path, 0) + entry.component.size_bytes()
            return files

    def loaded_keys(self) -> list[str]:
        with self._lock:
            return [k for k, e in self._entries.items() if e.component.module is not None]

    def keys_on_device(self) -> list[str]:
        with self._lock:
            return [k for k, e in self._entries.items() if e.on_device]


def _move(module: Any, device: Any, dtype: Any) -> None:
    """Move/cast only what differs (diffusers warns on every `.to(dtype)` of a model)."""
    params = [p for p in module.parameters()]
    if dtype is not None and any(p.dtype != dtype for p in params if p.is_floating_point()):
        module.to(dtype=dtype)
    if device is not None and any(p.device.type != device.type for p in params):
        module.to(device=device)


_manager: ModelManager | None = None
_manager_lock = threading.Lock()


def model_manager() -> ModelManager:
    global _manager
    with _manager_lock:
        if _manager is None:
            _manager = ModelManager()
        return _manager


def existing_model_manager() -> ModelManager | None:
    """The manager if one was made already (without making one: that would import torch)."""
    return _manager


def configure_model_manager(**settings: Any) -> ModelManager:
    """Replace the process's manager (CLI flags, tests); the old one's models are freed."""
    global _manager
    with _manager_lock:
        if _manager is not None:
            _manager.free(unload_models=True)
        _manager = ModelManager(**settings)
        return _manager
