"""Loom's stand-in for ComfyUI's `comfy` package: the parts node packs commonly import.

Submodules: utils, model_management, samplers, sd, model_patcher, cli_args, comfy_types.
Anything else is not provided; importing it fails with ModuleNotFoundError naming the module.
"""
