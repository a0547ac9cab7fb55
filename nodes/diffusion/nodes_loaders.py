"""Loader nodes with ComfyUI's names, inputs and outputs. Loading itself lives in `model_files`."""

from __future__ import annotations

from nodes import paths
from nodes.diffusion.types import LoraRef

CLIP_TYPES = ["stable_diffusion", "stable_cascade", "sd3", "stable_audio", "mochi", "ltxv", "pixart", "cosmos",
              "lumina2", "wan", "hidream", "chroma", "ace", "omnigen2", "qwen_image", "hunyuan_image"]
DUAL_CLIP_TYPES = ["sdxl", "sd3", "flux", "hunyuan_video", "hidream", "hunyuan_image"]
UNET_DTYPES = ["default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"]


def _unsupported_type(kind: str, supported: str) -> RuntimeError:
    return RuntimeError(f"text encoder type {kind!r} is not supported by Loom (it runs {supported})")


class CheckpointLoaderSimple:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"ckpt_name": (paths.get_filename_list("checkpoints"),
                                           {"tooltip": "The name of the checkpoint (model) to load."})}}

    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    OUTPUT_TOOLTIPS = ("The model used for denoising latents.", "The CLIP model used for encoding text prompts.",
                       "The VAE model used for encoding and decoding images to and from latent space.")
    FUNCTION = "load_checkpoint"
    CATEGORY = "loaders"
    DESCRIPTION = "Loads a diffusion model checkpoint: SD1.x, SD2.x, SDXL base/refiner, SD1 inpainting."

    def load_checkpoint(self, ckpt_name):
        from nodes.diffusion.model_files import load_checkpoint

        return load_checkpoint(paths.get_full_path_or_raise("checkpoints", ckpt_name))


class DiffusersLoader:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model_path": (paths.get_filename_list("diffusers"),)}}

    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    FUNCTION = "load_checkpoint"
    CATEGORY = "advanced/loaders/deprecated"

    def load_checkpoint(self, model_path, output_vae=True, output_clip=True):
        from nodes.diffusion.model_files import load_diffusers

        model, clip, vae = load_diffusers(paths.get_full_path_or_raise("diffusers", model_path))
        return model, clip if output_clip else None, vae if output_vae else None


class UNETLoader:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"unet_name": (paths.get_filename_list("diffusion_models"),),
                             "weight_dtype": (UNET_DTYPES,)}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "load_unet"
    CATEGORY = "advanced/loaders"

    def load_unet(self, unet_name, weight_dtype="default"):
        from nodes.diffusion.model_files import load_unet

        return (load_unet(paths.get_full_path_or_raise("diffusion_models", unet_name), weight_dtype),)


class CLIPLoader:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip_name": (paths.get_filename_list("text_encoders"),),
                             "type": (CLIP_TYPES,)},
                "optional": {"device": (["default", "cpu"], {"advanced": True})}}

    RETURN_TYPES = ("CLIP",)
    FUNCTION = "load_clip"
    CATEGORY = "advanced/loaders"
    DESCRIPTION = "stable_diffusion: CLIP-L (SD1), OpenCLIP-H (SD2) or OpenCLIP-G (SDXL refiner)."

    def load_clip(self, clip_name, type="stable_diffusion", device="default"):  # noqa: A002 - ComfyUI's name
        from nodes.diffusion.model_files import load_clip

        if type != "stable_diffusion":
            raise _unsupported_type(type, "stable_diffusion")
        return (load_clip([paths.get_full_path_or_raise("text_encoders", clip_name)], type, device),)


class DualCLIPLoader:
    @classmethod
    def INPUT_TYPES(cls):
        names = paths.get_filename_list("text_encoders")
        return {"required": {"clip_name1": (names,), "clip_name2": (names,), "type": (DUAL_CLIP_TYPES,)},
                "optional": {"device": (["default", "cpu"], {"advanced": True})}}

    RETURN_TYPES = ("CLIP",)
    FUNCTION = "load_clip"
    CATEGORY = "advanced/loaders"
    DESCRIPTION = "sdxl: clip-l and clip-g."

    def load_clip(self, clip_name1, clip_name2, type="sdxl", device="default"):  # noqa: A002
        from nodes.diffusion.model_files import load_clip

        if type != "sdxl":
            raise _unsupported_type(type, "sdxl")
        return (load_clip([paths.get_full_path_or_raise("text_encoders", clip_name1),
                           paths.get_full_path_or_raise("text_encoders", clip_name2)], type, device),)


class VAELoader:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"vae_name": (paths.get_filename_list("vae"),)}}

    RETURN_TYPES = ("VAE",)
    FUNCTION = "load_vae"
    CATEGORY = "loaders"

    def load_vae(self, vae_name):
        from nodes.diffusion.model_files import load_vae

        return (load_vae(paths.get_full_path_or_raise("vae", vae_name)),)


class LoraLoader:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "The diffusion model the LoRA will be applied to."}),
            "clip": ("CLIP", {"tooltip": "The CLIP model the LoRA will be applied to."}),
            "lora_name": (paths.get_filename_list("loras"), {"tooltip": "The name of the LoRA."}),
            "strength_model": ("FLOAT", {"default": 1.0, "min": -100.0, "max": 100.0, "step": 0.01}),
            "strength_clip": ("FLOAT", {"default": 1.0, "min": -100.0, "max": 100.0, "step": 0.01}),
        }}

    RETURN_TYPES = ("MODEL", "CLIP")
    FUNCTION = "load_lora"
    CATEGORY = "loaders"
    DESCRIPTION = "Applies a LoRA (kohya or diffusers format) to the model and CLIP, as adapters: no copy."

    def load_lora(self, model, clip, lora_name, strength_model, strength_clip):
        if strength_model == 0 and strength_clip == 0:
            return model, clip
        from nodes.diffusion import lora

        path = str(paths.get_full_path_or_raise("loras", lora_name))
        family = model.unet.family if model is not None else clip.family
        parts = lora.parts_in(path, family)   # parses now, so a bad file fails in this node
        if model is not None and strength_model != 0 and "unet" in parts:
            model = model.with_lora(LoraRef(path, strength_model))
        if clip is not None and strength_clip != 0 and parts & {"text_encoder", "text_encoder_2"}:
            clip = clip.with_lora(LoraRef(path, strength_clip))
        return model, clip


class LoraLoaderModelOnly(LoraLoader):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "lora_name": (paths.get_filename_list("loras"),),
                             "strength_model": ("FLOAT", {"default": 1.0, "min": -100.0, "max": 100.0, "step": 0.01})}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "load_lora_model_only"

    def load_lora_model_only(self, model, lora_name, strength_model):
        return (self.load_lora(model, None, lora_name, strength_model, 0)[0],)


class ControlNetLoader:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"control_net_name": (cls._names(),)}}

    RETURN_TYPES = ("CONTROL_NET",)
    FUNCTION = "load_controlnet"
    CATEGORY = "loaders"

    @staticmethod
    def _names() -> list[str]:
        """Files in the controlnet folders, plus diffusers ControlNet folders (dirs with config.json)."""
        names = set(paths.get_filename_list("controlnet"))
        for root in paths.folders().model_folder_paths("controlnet"):
            if root.is_dir():
                for config in root.rglob("config.json"):
                    if (config.parent / "diffusion_pytorch_model.safetensors").exists():
                        names.add(config.parent.relative_to(root).as_posix())
        return sorted(names, key=str.lower)

    def load_controlnet(self, control_net_name):
        from nodes.diffusion.model_files import load_controlnet

        return (load_controlnet(paths.get_full_path_or_raise("controlnet", control_net_name)),)


NODE_CLASS_MAPPINGS = {
    "CheckpointLoaderSimple": CheckpointLoaderSimple,
    "DiffusersLoader": DiffusersLoader,
    "UNETLoader": UNETLoader,
    "CLIPLoader": CLIPLoader,
    "DualCLIPLoader": DualCLIPLoader,
    "VAELoader": VAELoader,
    "LoraLoader": LoraLoader,
    "LoraLoaderModelOnly": LoraLoaderModelOnly,
    "ControlNetLoader": ControlNetLoader,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "CheckpointLoaderSimple": "Load Checkpoint",
    "UNETLoader": "Load Diffusion Model",
    "CLIPLoader": "Load CLIP",
    "VAELoader": "Load VAE",
    "LoraLoader": "Load LoRA",
    "ControlNetLoader": "Load ControlNet Model",
}
