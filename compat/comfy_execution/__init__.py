"""Loom's stand-in for ComfyUI's `comfy_execution` package (graph_utils, graph)."""
