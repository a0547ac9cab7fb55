"""ComfyUI's `comfy_execution.graph_utils`: node expansion helpers, from Loom's own."""

from _loom_compat import missing_attribute

from nodes.graph_builder import GraphBuilder, Node, add_graph_prefix
from nodes.interface import ExecutionBlocker, is_link

__all__ = ["GraphBuilder", "Node", "add_graph_prefix", "ExecutionBlocker", "is_link"]
__getattr__ = missing_attribute("comfy_execution.graph_utils")
