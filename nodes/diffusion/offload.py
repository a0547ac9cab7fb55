"""Low-VRAM execution: weights live on the CPU and visit the GPU one module at a time.

Every module that owns parameters or buffers gets a forward pre-hook that moves its own tensors
(not its children's) to the compute device and a post-hook that sends them back. Hooks are
(re)attached on each preparation, so LoRA layers injected later are covered too.
"""

from __future__ import annotations

from typing import Any

_HOOK_ATTR = "_loom_offload_hooks"


def _own_tensors_to(module: Any, device: Any) -> None:
    for param in list(module._parameters.values()):
        if param is not None and param.device != device:
            param.data = param.data.to(device, non_blocking=True)
    for name, buf in list(module._buffers.items()):
        if buf is not None and buf.device != device:
            module._buffers[name] = buf.to(device, non_blocking=True)


def attach(root: Any, compute_device: Any, offload_device: Any = "cpu") -> int:
    """Hook every tensor-owning submodule of `root`; returns how many were newly hooked."""
    import torch

    compute_device, offload_device = torch.device(compute_device), torch.device(offload_device)
    added = 0
    for module in root.modules():
        if getattr(module, _HOOK_ATTR, None) is not None:
            continue
        if not module._parameters and not module._buffers:
            continue

        def pre(mod, args, kwargs=None, _dev=compute_device):
            _own_tensors_to(mod, _dev)

        def post(mod, args, output, _dev=offload_device):
            _own_tensors_to(mod, _dev)
            return output

        handles = (module.register_forward_pre_hook(pre), module.register_forward_hook(post))
        setattr(module, _HOOK_ATTR, handles)
        _own_tensors_to(module, offload_device)
        added += 1
    return added


def detach(root: Any) -> None:
    for module in root.modules():
        handles = getattr(module, _HOOK_ATTR, None)
        if handles is not None:
            for handle in handles:
                handle.remove()
            setattr(module, _HOOK_ATTR, None)
