"""Regenerate the weight-free config skeletons under nodes/diffusion/configs/.

    .venv/bin/python tools/make_configs.py [--bpe path/to/bpe_simple_vocab_16e6.txt.gz]

Each family folder is a diffusers layout without weights: model_index.json, <component>/config.json,
scheduler/scheduler_config.json and tokenizer(_2)/tokenizer_config.json. The values are the public
configs of the released models; the loader overrides whatever the weights can tell (channels,
depths, widths) and keeps the rest. Configs are passed through the diffusers classes (on the meta
device) so every default field is written out.

The tokenizers of every family share one vocabulary, the original CLIP BPE file, kept once in
configs/clip_tokenizer/ (MIT, see its LICENSE); `--bpe` replaces it (the file ships inside the
open_clip_torch wheel: `pip download --no-deps open_clip_torch==3.3.0`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "nodes" / "diffusion" / "configs"

SCHEDULER = {
    "_class_name": "EulerDiscreteScheduler",
    "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000,
    "steps_offset": 1, "timestep_spacing": "leading", "interpolation_type": "linear",
    "use_karras_sigmas": False, "clip_sample": False, "set_alpha_to_one": False, "skip_prk_steps": True,
    "prediction_type": "epsilon",
}

SD1_UNET = {
    "sample_size": 64, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
    "block_out_channels": [320, 640, 1280, 1280],
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "cross_attention_dim": 768, "attention_head_dim": 8, "use_linear_projection": False,
}
SD2_UNET = {**SD1_UNET, "cross_attention_dim": 1024, "attention_head_dim": [5, 10, 20, 20],
            "use_linear_projection": True}
SDXL_UNET = {
    "sample_size": 128, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
    "block_out_channels": [320, 640, 1280],
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "transformer_layers_per_block": [1, 2, 10], "attention_head_dim": [5, 10, 20],
    "cross_attention_dim": 2048, "use_linear_projection": True,
    "addition_embed_type": "text_time", "addition_time_embed_dim": 256, "projection_class_embeddings_input_dim": 2816,
}
REFINER_UNET = {
    "sample_size": 128, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
    "block_out_channels": [384, 768, 1536, 1536],
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "transformer_layers_per_block": 4, "attention_head_dim": [6, 12, 24, 24],
    "cross_attention_dim": 1280, "use_linear_projection": True,
    "addition_embed_type": "text_time", "addition_time_embed_dim": 256, "projection_class_embeddings_input_dim": 2560,
}
VAE = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2,
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
    "sample_size": 512, "scaling_factor": 0.18215,
}
SDXL_VAE = {**VAE, "sample_size": 1024, "scaling_factor": 0.13025, "force_upcast": True}
CONTROLNET_SD1 = {
    "in_channels": 4, "layers_per_block": 2, "block_out_channels": [320, 640, 1280, 1280],
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "cross_attention_dim": 768, "attention_head_dim": 8, "use_linear_projection": False,
    "conditioning_embedding_out_channels": [16, 32, 96, 256],
}

_CLIP_COMMON = {"vocab_size": 49408, "max_position_embeddings": 77, "layer_norm_eps": 1e-5,
                "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 49407}
CLIP_L = {**_CLIP_COMMON, "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
          "num_attention_heads": 12, "hidden_act": "quick_gelu", "projection_dim": 768}
# OpenCLIP ViT-H/14 with all 24 layers (diffusers' SD2 folders keep 23: SD2 reads the penultimate one).
OPEN_CLIP_H = {**_CLIP_COMMON, "hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
               "num_attention_heads": 16, "hidden_act": "gelu", "projection_dim": 1024}
OPEN_CLIP_G = {**_CLIP_COMMON, "hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32,
               "num_attention_heads": 20, "hidden_act": "gelu", "projection_dim": 1280}

TOKENIZER_L = {"pad_token": "<|endoftext|>"}
TOKENIZER_OPEN_CLIP = {"pad_token": "!"}   # OpenCLIP pads with id 0

SD_PIPE = "StableDiffusionPipeline"
XL_PIPE = "StableDiffusionXLPipeline"
FAMILIES = {
    "sd1": dict(pipeline=SD_PIPE, unet=SD1_UNET, vae=VAE, text_encoder=("CLIPTextModel", CLIP_L),
                tokenizer=TOKENIZER_L, prediction="epsilon", controlnet=CONTROLNET_SD1),
    "sd1_inpaint": dict(pipeline="StableDiffusionInpaintPipeline", unet={**SD1_UNET, "in_channels": 9}, vae=VAE,
                        text_encoder=("CLIPTextModel", CLIP_L), tokenizer=TOKENIZER_L, prediction="epsilon"),
    "sd2": dict(pipeline=SD_PIPE, unet=SD2_UNET, vae=VAE, text_encoder=("CLIPTextModel", OPEN_CLIP_H),
                tokenizer=TOKENIZER_OPEN_CLIP, prediction="epsilon"),
    "sd2_v": dict(pipeline=SD_PIPE, unet={**SD2_UNET, "sample_size": 96, "upcast_attention": True},
                  vae={**VAE, "sample_size": 768}, text_encoder=("CLIPTextModel", OPEN_CLIP_H),
                  tokenizer=TOKENIZER_OPEN_CLIP, prediction="v_prediction"),
    "sdxl": dict(pipeline=XL_PIPE, unet=SDXL_UNET, vae=SDXL_VAE, text_encoder=("CLIPTextModel", CLIP_L),
                 text_encoder_2=("CLIPTextModelWithProjection", OPEN_CLIP_G), tokenizer=TOKENIZER_L,
                 tokenizer_2=TOKENIZER_OPEN_CLIP, prediction="epsilon"),
    "sdxl_refiner": dict(pipeline="StableDiffusionXLImg2ImgPipeline", unet=REFINER_UNET, vae=SDXL_VAE,
                         text_encoder_2=("CLIPTextModelWithProjection", OPEN_CLIP_G),
                         tokenizer_2=TOKENIZER_OPEN_CLIP, prediction="epsilon"),
}


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _model_config(cls, values: dict) -> dict:
    """The full config diffusers writes for `cls(**values)`, built on the meta device."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        model = cls.from_config(values)
    config = dict(model.config)
    config["_class_name"] = cls.__name__
    return {k: v for k, v in config.items() if not k.startswith("_use_default_values")}


def write_family(name: str, spec: dict) -> None:
    import diffusers
    from diffusers import AutoencoderKL, ControlNetModel, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig

    folder = CONFIGS / name
    if folder.exists():
        shutil.rmtree(folder)
    index = {"_class_name": spec["pipeline"], "_diffusers_version": diffusers.__version__,
             "scheduler": ["diffusers", "EulerDiscreteScheduler"],
             "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
             "_loom_tokenizer_vocab": "../clip_tokenizer/bpe_simple_vocab_16e6.txt.gz"}
    _write_json(folder / "unet" / "config.json", _model_config(UNet2DConditionModel, spec["unet"]))
    _write_json(folder / "vae" / "config.json", _model_config(AutoencoderKL, spec["vae"]))
    scheduler = EulerDiscreteScheduler.from_config({**SCHEDULER, "prediction_type": spec["prediction"]})
    _write_json(folder / "scheduler" / "scheduler_config.json",
                {**dict(scheduler.config), "_class_name": "EulerDiscreteScheduler"})
    for te, tok in (("text_encoder", "tokenizer"), ("text_encoder_2", "tokenizer_2")):
        if te not in spec:
            if spec["pipeline"] == "StableDiffusionXLImg2ImgPipeline":
                index[te] = index[tok] = [None, None]
            continue
        arch, values = spec[te]
        config = CLIPTextConfig(**values).to_dict()
        config["architectures"] = [arch]
        config.pop("transformers_version", None)
        _write_json(folder / te / "config.json", config)
        _write_json(folder / tok / "tokenizer_config.json",
                    {"model_max_length": 77, "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
                     "unk_token": "<|endoftext|>", **spec[tok], "tokenizer_class": "CLIPTokenizer"})
        index[te] = ["transformers", arch]
        index[tok] = ["transformers", "CLIPTokenizer"]
    if "controlnet" in spec:
        _write_json(folder / "controlnet" / "config.json", _model_config(ControlNetModel, spec["controlnet"]))
    if spec["pipeline"] != "StableDiffusionXLImg2ImgPipeline" and "XL" not in spec["pipeline"]:
        index.update(safety_checker=[None, None], feature_extractor=[None, None], requires_safety_checker=False)
    _write_json(folder / "model_index.json", index)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bpe", help="path to bpe_simple_vocab_16e6.txt.gz to vendor")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    if args.bpe:
        target = CONFIGS / "clip_tokenizer" / "bpe_simple_vocab_16e6.txt.gz"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.bpe, target)
    for name, spec in FAMILIES.items():
        write_family(name, spec)
        print("wrote", CONFIGS / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
