"""Loading what users download: single-file checkpoints, diffusers folders, standalone components.

Submodules (each imports torch/diffusers only when used):
- `state_dict`: reading files safely (.safetensors; pickles only when allowed).
- `detect`: which family a state dict belongs to, from its keys and shapes.
- `infer`: component configs inferred from tensor shapes on top of the family skeleton.
- `build`: modules from configs + converted weights (diffusers' LDM converters, wrapped).
- `ldm_export`: the reverse direction, diffusers -> original single-file layout.
- `checkpoint`: the public entry points the nodes and the model manager call.
"""
