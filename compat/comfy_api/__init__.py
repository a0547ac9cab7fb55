"""Loom's stand-in for ComfyUI's `comfy_api` (V3 node schemas): `from comfy_api.latest import
ComfyExtension, io`. The common input and output types are provided; V3 nodes are turned into V1
classes by `v1_adapter.to_v1` when a pack is loaded. Dynamic inputs (Autogrow, MatchType, ...) and
the `ui` helpers are not provided and fail naming themselves."""
