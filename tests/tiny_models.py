"""Tiny random-weight Stable Diffusion models for tests, in the formats people download.

Built once per machine and version (cached under $TMPDIR/loom-tiny-models-<VERSION>), then copied
into a test's models folder. Every function takes the models dir (the one given to
`nodes.paths.configure(models_dir=...)`) and returns the name the loader nodes expect:

    name = tiny_checkpoint(models_dir, "sd1")            # models/checkpoints/tiny-sd1.safetensors
    name = tiny_checkpoint(models_dir, "sdxl")           # SDXL base; also "sd2", "sd2_v", "sdxl_refiner",
                                                         # "sd1_inpaint"
    name = tiny_diffusers(models_dir, "sd1")             # models/diffusers/tiny-sd1 (a diffusers folder)
    name = tiny_controlnet(models_dir, "single")         # models/controlnet/..., or "diffusers" (a folder)
    name = tiny_lora(models_dir, "kohya")                # models/loras/...; "diffusers", "diffusers_b",
                                                         # "sdxl_kohya"
    name = tiny_embedding(models_dir, "safetensors")     # models/embeddings/...; "pt", "sdxl"
    name = tiny_component(models_dir, "unet", "sd1")     # lone UNet / VAE / text encoder files
    modules = tiny_modules("sd1")                        # the in-memory diffusers modules (fresh copies)

The models follow the real families' conventions, so the loader's shape inference reads them
exactly as it reads real checkpoints: SD1 uses 8 attention heads per block, SD2/SDXL a head dim of
64, CLIP encoders a head dim of 64 (at least one head), SDXL's size embedding is 256 per number, and
SDXL's two text encoders have different widths (32 and 64; diffusers tells them apart by width).
Tokenizers are the real CLIP tokenizer (vocab 49408). Weights are seeded: same bytes every build.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path

VERSION = "4"
_lock = threading.Lock()


def cache_dir() -> Path:
    return Path(os.environ.get("LOOM_TINY_MODELS_CACHE", tempfile.gettempdir())) / f"loom-tiny-models-{VERSION}"


# -- architectures ----------------------------------------------------------------------------
def _text_config(hidden: int, act: str, projection: int | None = None):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(vocab_size=49408, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                          num_attention_heads=max(1, hidden // 64), max_position_embeddings=77, hidden_act=act,
                          projection_dim=projection or hidden, bos_token_id=49406, eos_token_id=49407,
                          pad_token_id=49407)


def _vae(scaling: float):
    from diffusers import AutoencoderKL

    return AutoencoderKL(block_out_channels=(32, 64), layers_per_block=1, latent_channels=4, norm_num_groups=32,
                         down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                         sample_size=64, scaling_factor=scaling)


def build_modules(family: str, seed: int = 0) -> dict:
    """Fresh random modules of one tiny family (deterministic for a seed)."""
    import torch
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    sd1_unet = dict(block_out_channels=(32, 64), layers_per_block=2, sample_size=32, norm_num_groups=32,
                    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32, attention_head_dim=8)
    if family in ("sd1", "sd1_inpaint"):
        unet = UNet2DConditionModel(**sd1_unet, in_channels=9 if family == "sd1_inpaint" else 4)
        return {"unet": unet, "vae": _vae(0.18215),
                "text_encoder": CLIPTextModel(_text_config(32, "quick_gelu"))}
    if family in ("sd2", "sd2_v"):
        unet = UNet2DConditionModel(block_out_channels=(64, 64), layers_per_block=1, sample_size=32, norm_num_groups=32,
                                    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=64,
                                    attention_head_dim=1, use_linear_projection=True)
        return {"unet": unet, "vae": _vae(0.18215), "text_encoder": CLIPTextModel(_text_config(64, "gelu"))}
    xl = dict(block_out_channels=(32, 64), layers_per_block=2, sample_size=32, norm_num_groups=32,
              down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
              transformer_layers_per_block=(1, 2), attention_head_dim=1, use_linear_projection=True,
              addition_embed_type="text_time", addition_time_embed_dim=256)
    te2 = CLIPTextModelWithProjection(_text_config(64, "gelu", projection=64))
    if family == "sdxl":
        unet = UNet2DConditionModel(**xl, cross_attention_dim=32 + 64, projection_class_embeddings_input_dim=6 * 256 + 64)
        return {"unet": unet, "vae": _vae(0.13025), "text_encoder": CLIPTextModel(_text_config(32, "quick_gelu")),
                "text_encoder_2": te2}
    if family == "sdxl_refiner":
        unet = UNet2DConditionModel(**xl, cross_attention_dim=64, projection_class_embeddings_input_dim=5 * 256 + 64)
        return {"unet": unet, "vae": _vae(0.13025), "text_encoder_2": te2}
    raise ValueError(f"no tiny model for family {family!r}")


def _text_encoders(modules: dict) -> list:
    return [modules[k] for k in ("text_encoder", "text_encoder_2") if k in modules]


def _controlnet(seed: int = 1):
    import torch
    from diffusers import ControlNetModel

    unet = build_modules("sd1", seed)["unet"]
    torch.manual_seed(seed)
    cn = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(16, 32))
    with torch.no_grad():  # its output convs start at zero: make it do something
        for p in list(cn.controlnet_down_blocks.parameters()) + list(cn.controlnet_mid_block.parameters()):
            p.normal_(0, 0.1)
        for p in cn.controlnet_cond_embedding.conv_out.parameters():
            p.normal_(0, 0.1)
    return cn


def _peft_lora_states(modules: dict, seed: int) -> dict:
    """peft LoRA state dicts (diffusers naming) for the UNet and text encoder(s) of `modules`."""
    import torch
    from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model

    torch.manual_seed(seed)
    out = {}
    unet_cfg = LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False)
    te_cfg = LoraConfig(r=4, lora_alpha=4, target_modules=["q_proj", "k_proj", "v_proj", "out_proj"],
                        init_lora_weights=False)
    for name, module in modules.items():
        if name == "vae":
            continue
        inject_adapter_in_model(unet_cfg if name == "unet" else te_cfg, module, adapter_name="tiny")
        state = get_peft_model_state_dict(module, adapter_name="tiny")
        out[name] = {k: v.clone() * 0.5 for k, v in state.items()}
    return out


def _te_key(name: str, key: str) -> str:
    """Text-encoder LoRA keys as trainers write them: with the `text_model.` level."""
    return f"{name}.text_model.{key.removeprefix('text_model.')}"


def _save_diffusers_lora(path: Path, states: dict, legacy_names: bool = False) -> None:
    """diffusers' format: `unet.<module>.lora_A.weight` (peft names), or the older `lora.down` names."""
    from diffusers.utils import convert_state_dict_to_diffusers
    from safetensors.torch import save_file

    out = {}
    for name, state in states.items():
        for k, v in (convert_state_dict_to_diffusers(state) if legacy_names else state).items():
            out[f"unet.{k}" if name == "unet" else _te_key(name, k)] = v.contiguous()
    save_file(out, str(path))


def _save_kohya_lora(path: Path, states: dict, sdxl: bool) -> None:
    from diffusers.utils import convert_state_dict_to_kohya
    from safetensors.torch import save_file

    joined = {}
    for name, state in states.items():
        for k, v in state.items():
            joined[f"unet.{k}" if name == "unet" else _te_key(name, k)] = v
    kohya = convert_state_dict_to_kohya(joined)
    if not sdxl:  # SD1 trainers write lora_te_ (SDXL: lora_te1_/lora_te2_)
        kohya = {k.replace("lora_te1_", "lora_te_"): v for k, v in kohya.items()}
    save_file({k: v.contiguous() for k, v in kohya.items()}, str(path))


def _build_all(root: Path) -> None:
    import torch
    from safetensors.torch import save_file

    from nodes.diffusion.loading.ldm_export import save_single_file

    for family in ("sd1", "sd1_inpaint", "sd2", "sd2_v", "sdxl", "sdxl_refiner"):
        modules = build_modules(family)
        if family == "sd2_v":  # ComfyUI's v-prediction tell: a wide spread in the last norm1 bias
            with torch.no_grad():
                modules["unet"].up_blocks[-1].attentions[-1].transformer_blocks[0].norm1.bias.normal_(0, 0.5)
        fam = "sd2" if family == "sd2_v" else family
        save_single_file(root / "checkpoints" / f"tiny-{family}.safetensors", unet=modules["unet"],
                         vae=modules["vae"], text_encoders=_text_encoders(modules), family=fam)
        if family in ("sd1", "sdxl"):
            _save_diffusers_folder(root / "diffusers" / f"tiny-{family}", family, modules)
            comp = root / "components"
            comp.mkdir(parents=True, exist_ok=True)
            save_single_file(comp / f"tiny-{family}-unet.safetensors", unet=modules["unet"], family=fam)
            modules["unet"].save_pretrained(comp / f"tiny-{family}-unet-diffusers", safe_serialization=True)
            save_file({k: v.contiguous() for k, v in modules["vae"].state_dict().items()},
                      str(comp / f"tiny-{family}-vae-diffusers.safetensors"))
            save_single_file(comp / f"tiny-{family}-vae.safetensors", vae=modules["vae"], family=fam)
            for name, te in zip(("clip_l", "clip_g"), _text_encoders(modules)):
                state = {("text_model." + k if not k.startswith(("text_model.", "text_projection")) else k): v
                         for k, v in te.state_dict().items()}
                save_file({k: v.contiguous() for k, v in state.items()}, str(comp / f"tiny-{family}-{name}.safetensors"))
    cn = _controlnet()
    save_single_file(root / "controlnet" / "tiny-controlnet-sd1.safetensors", controlnet=cn, family="sd1")
    cn.save_pretrained(root / "controlnet" / "tiny-controlnet-sd1-diffusers", safe_serialization=True)
    loras = root / "loras"
    loras.mkdir(parents=True, exist_ok=True)
    for name, seed in (("diffusers", 10), ("diffusers_b", 11)):
        _save_diffusers_lora(loras / f"tiny-sd1-lora-{name}.safetensors", _peft_lora_states(build_modules("sd1"), seed),
                             legacy_names=name == "diffusers_b")
    _save_kohya_lora(loras / "tiny-sd1-lora-kohya.safetensors", _peft_lora_states(build_modules("sd1"), 12), sdxl=False)
    _save_kohya_lora(loras / "tiny-sdxl-lora-kohya.safetensors", _peft_lora_states(build_modules("sdxl"), 13), sdxl=True)
    emb = root / "embeddings"
    emb.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(5)
    save_file({"emb_params": torch.randn(2, 32, generator=gen)}, str(emb / "tiny-emb.safetensors"))
    torch.save({"string_to_param": {"*": torch.randn(3, 32, generator=gen)}, "name": "tiny-emb-pt"},
               str(emb / "tiny-emb-pt.pt"))
    save_file({"clip_l": torch.randn(2, 32, generator=gen), "clip_g": torch.randn(2, 64, generator=gen)},
              str(emb / "tiny-emb-sdxl.safetensors"))


def _save_diffusers_folder(path: Path, family: str, modules: dict) -> None:
    """A diffusers folder: the skeleton's files (scheduler, tokenizer configs) plus the weights."""
    import json

    from nodes.diffusion import skeletons

    src = skeletons.skeleton_dir(family)
    shutil.copytree(src, path, ignore=shutil.ignore_patterns("controlnet"))
    for name, module in modules.items():
        shutil.rmtree(path / name, ignore_errors=True)
        module.save_pretrained(path / name, safe_serialization=True)
    index = json.loads((path / "model_index.json").read_text())
    index.pop("_loom_tokenizer_vocab", None)
    (path / "model_index.json").write_text(json.dumps(index, indent=2))


def build_cache() -> Path:
    """Build every tiny model once (atomically), return the cache folder."""
    root = cache_dir()
    with _lock:
        if (root / "DONE").exists():
            return root
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=root.name + "-", dir=root.parent))
        try:
            _build_all(tmp)
            (tmp / "DONE").write_text(VERSION)
            if root.exists():
                shutil.rmtree(root)
            os.replace(tmp, root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def _install(models_dir: os.PathLike | str, folder: str, relative: str, dest_folder: str | None = None) -> str:
    src = build_cache() / folder / relative
    dest = Path(models_dir) / (dest_folder or folder) / Path(relative).name
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.exists():
        if src.is_dir():
            shutil.copytree(src, dest)
        else:
            shutil.copyfile(src, dest)
    return dest.name


def tiny_checkpoint(models_dir, family: str = "sd1") -> str:
    return _install(models_dir, "checkpoints", f"tiny-{family}.safetensors")


def tiny_sd1_checkpoint(models_dir) -> str:
    return tiny_checkpoint(models_dir, "sd1")


def tiny_sdxl_checkpoint(models_dir) -> str:
    return tiny_checkpoint(models_dir, "sdxl")


def tiny_diffusers(models_dir, family: str = "sd1") -> str:
    return _install(models_dir, "diffusers", f"tiny-{family}")


def tiny_controlnet(models_dir, fmt: str = "single") -> str:
    name = "tiny-controlnet-sd1.safetensors" if fmt == "single" else "tiny-controlnet-sd1-diffusers"
    return _install(models_dir, "controlnet", name)


def tiny_lora(models_dir, kind: str = "kohya") -> str:
    name = {"kohya": "tiny-sd1-lora-kohya", "diffusers": "tiny-sd1-lora-diffusers",
            "diffusers_b": "tiny-sd1-lora-diffusers_b", "sdxl_kohya": "tiny-sdxl-lora-kohya"}[kind]
    return _install(models_dir, "loras", name + ".safetensors")


def tiny_embedding(models_dir, fmt: str = "safetensors") -> str:
    name = {"safetensors": "tiny-emb.safetensors", "pt": "tiny-emb-pt.pt", "sdxl": "tiny-emb-sdxl.safetensors"}[fmt]
    return _install(models_dir, "embeddings", name)


def tiny_component(models_dir, component: str, family: str = "sd1", fmt: str = "single") -> str:
    """A lone component file: component in unet, vae, clip_l, clip_g; fmt "single" (original layout)
    or "diffusers" (unet: a folder's weights file; vae: diffusers keys)."""
    folder = {"unet": "diffusion_models", "vae": "vae", "clip_l": "text_encoders", "clip_g": "text_encoders"}[component]
    if fmt == "diffusers" and component == "unet":
        src = build_cache() / "components" / f"tiny-{family}-unet-diffusers" / "diffusion_pytorch_model.safetensors"
        dest = Path(models_dir) / folder / f"tiny-{family}-unet-diffusers.safetensors"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        return dest.name
    suffix = "-diffusers" if fmt == "diffusers" else ""
    return _install(models_dir, "components", f"tiny-{family}-{component}{suffix}.safetensors", folder)


def tiny_modules(family: str = "sd1", seed: int = 0) -> dict:
    """Fresh in-memory modules, identical to the ones written to the files."""
    return build_modules(family, seed)
