"""Model files -> the refs nodes pass around (MODEL, CLIP, VAE, CONTROL_NET), through the manager.

Each component is loaded once per file version (the manager's key is path + mtime + part) and
can be reloaded by the manager after it was unloaded to free RAM. Heavy imports happen here, at
call time, never when the node modules are imported.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nodes.diffusion import skeletons
from nodes.diffusion.management import file_key, model_manager
from nodes.diffusion.prompt import PromptTokenizer
from nodes.diffusion.types import SD1, SD2, SDXL, SDXL_REFINER, ClipRef, ControlNetRef, ModelRef, VAERef

_infos: dict[str, Any] = {}
_infos_lock = threading.Lock()

FP8_DTYPES = {"fp8_e4m3fn": "float8_e4m3fn", "fp8_e4m3fn_fast": "float8_e4m3fn", "fp8_e5m2": "float8_e5m2"}


def _cached_info(key: str, make):
    with _infos_lock:
        if key in _infos:
            return _infos[key]
    info = make()
    with _infos_lock:
        _infos[key] = info
    return info


def _text_component_config(text_info: Any, path: Path) -> dict:
    return {"component": text_info.component, "clip_name": text_info.clip_name, "source": os.fspath(path),
            "layers_missing": text_info.layers_missing}


def _prompt_tokenizer(tokenizer: Any, text_info: Any) -> PromptTokenizer:
    return PromptTokenizer(tokenizer, clip_name=text_info.clip_name, embedding_size=text_info.config["hidden_size"])


def vae_ref(component: Any, config: dict) -> VAERef:
    return VAERef(vae=component, scaling_factor=float(config.get("scaling_factor") or 0.18215),
                  shift_factor=float(config.get("shift_factor") or 0.0),
                  downscale=2 ** (len(config["block_out_channels"]) - 1),
                  latent_channels=int(config.get("latent_channels", 4)))


def model_ref(component: Any, family: str, prediction_type: str, vae_config: dict | None = None) -> ModelRef:
    """MODEL; its latent space (scaling, pixels per latent cell) comes from the checkpoint's VAE when it
    has one, else from the family (a lone UNet)."""
    vae_config = vae_config or skeletons.component_config(family, "vae")
    options = {"family": family, "latent_scaling_factor": float(vae_config.get("scaling_factor") or 0.18215),
               "latent_downscale": 2 ** (len(vae_config["block_out_channels"]) - 1)}
    return ModelRef(unet=component, prediction_type=prediction_type,
                    scheduler_config=skeletons.scheduler_config(family, prediction_type), options=options)


def _whole_model(path: Path, source: str) -> tuple[ModelRef | None, ClipRef | None, VAERef | None]:
    """A single-file checkpoint or a diffusers folder -> (MODEL, CLIP, VAE); a missing part is None."""
    from nodes.diffusion.loading import checkpoint as ck
    from nodes.diffusion.loading.weights import WeightFile

    mm = model_manager()
    shared: dict[str, Any] = {}

    def weights() -> Any:
        if "w" not in shared:
            shared["w"] = WeightFile(path)
        return shared["w"]

    if source == "diffusers":
        info = _cached_info(file_key(path / "model_index.json", "info"), lambda: ck.inspect_diffusers_folder(path))
        key_path = path / "model_index.json"
    else:
        info = _cached_info(file_key(path, "info"), lambda: ck.inspect_single_file(weights()))
        key_path = path

    def loader(part: str, first: bool):
        def load() -> tuple[Any, dict]:
            dtype = mm.dtype_for(part)
            if info.source == "diffusers":
                module = ck.load_diffusers_folder(info, [part], dtype)[part]
            else:
                module = ck.load_single_file(weights() if first else WeightFile(path), info, [part], dtype)[part]
            if part in ("unet", "vae"):
                return module, {"component": part, "source": os.fspath(path), **dict(module.config)}
            return module, _text_component_config(info.text_info(part), path)
        return load

    def component(part: str):
        return mm.load(file_key(key_path, part), info.family, loader(part, True), reload=loader(part, False))

    model = clip = vae = None
    if info.unet_config is not None:
        model = model_ref(component("unet"), info.family, info.prediction_type, info.vae_config)
    if info.vae_config is not None:
        comp = component("vae")
        vae = vae_ref(comp, comp.config)
    if info.text:
        encoders = tuple(component(t.component) for t in info.text)
        tokenizers = tuple(_prompt_tokenizer(ck.folder_tokenizer(info, t.component), t) for t in info.text)
        clip = ClipRef(encoders=encoders, tokenizers=tokenizers, family=info.family)
    return model, clip, vae


def load_checkpoint(path: str | os.PathLike) -> tuple[ModelRef | None, ClipRef | None, VAERef | None]:
    path = Path(path)
    if path.is_dir():
        return load_diffusers(path)
    return _whole_model(path, "single_file")


def load_diffusers(path: str | os.PathLike) -> tuple[ModelRef | None, ClipRef | None, VAERef | None]:
    return _whole_model(Path(path), "diffusers")


def load_unet(path: str | os.PathLike, weight_dtype: str = "default") -> ModelRef:
    from nodes.diffusion.loading import components as comps
    from nodes.diffusion.loading.weights import WeightFile

    path = Path(path)
    mm = model_manager()
    info, kind, prefix = _cached_info(file_key(path, "unet-info"), lambda: comps.inspect_unet_file(WeightFile(path)))

    def load() -> tuple[Any, dict]:
        import torch

        module = comps.load_unet_file(WeightFile(path), info, kind, prefix, mm.dtype)
        config = {"component": "unet", "source": os.fspath(path), **dict(module.config)}
        if weight_dtype in FP8_DTYPES:  # store in fp8, compute in the manager's dtype, layer by layer
            module.enable_layerwise_casting(storage_dtype=getattr(torch, FP8_DTYPES[weight_dtype]),
                                            compute_dtype=mm.dtype)
            config["keep_dtype"] = True
        return module, config

    comp = mm.load(file_key(path, f"unet:{weight_dtype}"), info.family, load)
    return model_ref(comp, info.family, info.prediction_type)


def load_vae(path: str | os.PathLike, family: str | None = None) -> VAERef:
    from nodes.diffusion.loading import components as comps
    from nodes.diffusion.loading.weights import WeightFile

    path = Path(path)
    mm = model_manager()
    family = family or comps.vae_family_hint(path)

    def load() -> tuple[Any, dict]:
        module, config = comps.load_vae_file(WeightFile(path), family, mm.vae_dtype)
        return module, {"component": "vae", "source": os.fspath(path), **dict(module.config)}

    comp = mm.load(file_key(path, "vae"), family, load)
    return vae_ref(comp, comp.config)


def load_clip(paths: Sequence[str | os.PathLike], clip_type: str = "stable_diffusion",
              device: str = "default") -> ClipRef:
    """One file (CLIPLoader: CLIP-L -> SD1, OpenCLIP-H -> SD2, OpenCLIP-G -> SDXL refiner) or two
    (DualCLIPLoader "sdxl": CLIP-L + OpenCLIP-G, in either order). device="cpu" keeps them on the CPU."""
    from nodes.diffusion.loading import components as comps
    from nodes.diffusion.loading.state_dict import ModelLoadError
    from nodes.diffusion.loading.weights import WeightFile

    mm = model_manager()
    paths = [Path(p) for p in paths]
    infos = [_cached_info(file_key(p, "clip-info"), lambda p=p: comps.inspect_text_encoder_file(WeightFile(p)))
             for p in paths]
    names = [i.clip_name for i in infos]
    if len(paths) == 1:
        family = {"clip_l": SD1, "clip_h": SD2, "clip_g": SDXL_REFINER}[names[0]]
    elif sorted(names) == ["clip_g", "clip_l"]:
        family = SDXL
        order = sorted(range(2), key=lambda i: names[i] != "clip_l")
        paths, infos = [paths[i] for i in order], [infos[i] for i in order]
    else:
        found = ", ".join(f"{p.name}: {n}" for p, n in zip(paths, names))
        raise ModelLoadError(f"type {clip_type!r} needs a CLIP-L and an OpenCLIP-G text encoder; found {found}")
    encoders, tokenizers = [], []
    for index, (path, info) in enumerate(zip(paths, infos)):
        component = skeletons.TEXT_COMPONENTS[family][index]
        info.component = component

        def load(path=path, info=info) -> tuple[Any, dict]:
            import torch

            pin = device == "cpu"
            module = comps.load_text_encoder_file(WeightFile(path), info, torch.float32 if pin else mm.dtype)
            return module, {**_text_component_config(info, path), "pin_cpu": pin}

        part = info.clip_name if device != "cpu" else f"{info.clip_name}:cpu"
        encoders.append(mm.load(file_key(path, part), family, load))
        tokenizers.append(_prompt_tokenizer(skeletons.family_tokenizer(family, component), info))
    return ClipRef(encoders=tuple(encoders), tokenizers=tuple(tokenizers), family=family)


def load_controlnet(path: str | os.PathLike) -> ControlNetRef:
    from nodes.diffusion.loading import components as comps

    path = Path(path)
    mm = model_manager()

    def load() -> tuple[Any, dict]:
        module, config = comps.load_controlnet(path, mm.dtype)
        return module, {"component": "controlnet", "source": os.fspath(path), **dict(module.config)}

    key_path = path / "config.json" if path.is_dir() else path
    comp = mm.load(file_key(key_path, "controlnet"), SD1, load)
    comp.family = SD2 if comp.config.get("cross_attention_dim") == 1024 else SD1
    return ControlNetRef(controlnet=comp)
