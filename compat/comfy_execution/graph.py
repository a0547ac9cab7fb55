"""ComfyUI's `comfy_execution.graph`: only ExecutionBlocker is provided (the engine's graph
classes belong to Loom's engine)."""

from _loom_compat import missing_attribute

from nodes.interface import ExecutionBlocker

__all__ = ["ExecutionBlocker"]
__getattr__ = missing_attribute("comfy_execution.graph")
