"""Image nodes: LoadImage, SaveImage, PreviewImage, plus the image operations of image_ops.

Names, inputs and outputs are ComfyUI's (nodes.py), so workflows and clients built for it work.
Files are addressed like ComfyUI: a combo value is a path relative to the input folder, or
"name [output]" / "name [temp]" for the other folders.
"""

from __future__ import annotations

import json
import logging
import random
import string
from pathlib import Path

import torch

from nodes import paths
from nodes.builtin import image_ops
from nodes.builtin.values import check_image
from nodes.image_files import load_image_file, save_png

log = logging.getLogger("loom.nodes.image")


# -- input files (shared with LoadImageMask) ----------------------------------------------------------
def resolve_input_image(image: str) -> Path:
    """The file a LoadImage combo value names; a clear error when it is not there."""
    if not isinstance(image, str) or not image:
        raise ValueError(f"Invalid image file: {image!r} (expected a file name from the input folder)")
    try:
        path = paths.get_annotated_filepath(image)
    except paths.UnsafePath as e:
        raise ValueError(f"Invalid image file: {image} ({e})") from None
    if not path.is_file():
        raise FileNotFoundError(f"Invalid image file: {image} (no such file in the {paths.split_annotation(image)[1]} folder)")
    return path


def validate_input_image(image: str) -> bool | str:
    try:
        resolve_input_image(image)
    except (ValueError, FileNotFoundError) as e:
        return str(e)
    return True


def input_image_hash(image: str) -> str:
    """sha256 of the file, so editing a file under the same name re-runs the node."""
    try:
        path = resolve_input_image(image)
    except (ValueError, FileNotFoundError):
        return f"missing:{image}"
    return paths.file_sha256(path)


class LoadImage:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": (paths.list_input_images(), {"image_upload": True})}}

    RETURN_TYPES = ("IMAGE", "MASK")
    FUNCTION = "load_image"
    CATEGORY = "image"
    DESCRIPTION = "Load an image from the input folder. The mask is 1 - alpha (64x64 zeros when there is no alpha)."

    def load_image(self, image: str):
        return load_image_file(resolve_input_image(image))

    @classmethod
    def IS_CHANGED(cls, image):
        return input_image_hash(image)

    @classmethod
    def VALIDATE_INPUTS(cls, image):
        return validate_input_image(image)


# -- saving ---------------------------------------------------------------------------------------------
def metadata_chunks(prompt: dict | None, extra_pnginfo: dict | None) -> dict[str, str]:
    """ComfyUI's PNG metadata: `prompt` (API format) and one chunk per extra_pnginfo key (`workflow`)."""
    chunks: dict[str, str] = {}
    if prompt is not None:
        chunks["prompt"] = json.dumps(prompt)
    if extra_pnginfo is not None and not isinstance(extra_pnginfo, dict):
        log.warning("extra_pnginfo is a %s, not a dict: not written to the PNG", type(extra_pnginfo).__name__)
        extra_pnginfo = None
    for key, value in (extra_pnginfo or {}).items():
        chunks[str(key)] = json.dumps(value)
    return chunks


def save_images(images: torch.Tensor, filename_prefix: str, folder_type: str, compress_level: int,
                chunks: dict[str, str]) -> list[dict]:
    """Write `{prefix}_{counter:05}_.png` files; return the ui entries {filename, subfolder, type}."""
    base_dir = paths.directory_for_type(folder_type)
    height, width = images.shape[1:3]
    folder, filename, counter, subfolder, _ = paths.get_save_image_path(filename_prefix, base_dir, width, height)
    results = []
    for batch_number, image in enumerate(images):
        name = f"{filename.replace('%batch_num%', str(batch_number))}_{counter:05}_.png"
        save_png(image, folder / name, chunks, compress_level)
        results.append({"filename": name, "subfolder": subfolder, "type": folder_type})
        counter += 1
    return results


class SaveImage:
    FOLDER_TYPE = "output"
    COMPRESS_LEVEL = 4

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "The images to save."}),
                "filename_prefix": ("STRING", {"default": "ComfyUI", "tooltip": (
                    "The prefix for the file to save. It may name a subfolder and use %year%, %month%, "
                    "%day%, %hour%, %minute%, %second%, %width%, %height% and %batch_num%.")}),
            },
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        }

    RETURN_TYPES = ()
    FUNCTION = "save_images"
    OUTPUT_NODE = True
    CATEGORY = "image"
    DESCRIPTION = "Saves the input images to your output directory, with the workflow in the PNG metadata."

    def prefix_suffix(self) -> str:
        return ""

    def save_images(self, images, filename_prefix="ComfyUI", prompt=None, extra_pnginfo=None):
        images = check_image(images, type(self).__name__, "images")
        if not isinstance(filename_prefix, str):
            raise TypeError(f"{type(self).__name__}: filename_prefix must be a string, got {type(filename_prefix).__name__}")
        try:
            results = save_images(images, filename_prefix + self.prefix_suffix(), self.FOLDER_TYPE,
                                  self.COMPRESS_LEVEL, metadata_chunks(prompt, extra_pnginfo))
        except paths.UnsafePath as e:
            raise ValueError(f"{type(self).__name__}: bad filename_prefix {filename_prefix!r}: {e}") from None
        return {"ui": {"images": results}}


class PreviewImage(SaveImage):
    FOLDER_TYPE = "temp"
    COMPRESS_LEVEL = 1
    DESCRIPTION = "Preview the images without saving them to the output directory."

    def __init__(self):
        # One random suffix per node instance, as ComfyUI: two previews never overwrite each other.
        self._suffix = "_temp_" + "".join(random.choice(string.ascii_lowercase) for _ in range(5))

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",)}, "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}}

    def prefix_suffix(self) -> str:
        return self._suffix

    def save_images(self, images, filename_prefix="ComfyUI", prompt=None, extra_pnginfo=None):
        return super().save_images(images, "ComfyUI", prompt, extra_pnginfo)


NODE_CLASS_MAPPINGS = {
    "LoadImage": LoadImage,
    "SaveImage": SaveImage,
    "PreviewImage": PreviewImage,
    **image_ops.NODE_CLASS_MAPPINGS,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "LoadImage": "Load Image",
    "SaveImage": "Save Image",
    "PreviewImage": "Preview Image",
    **image_ops.NODE_DISPLAY_NAME_MAPPINGS,
}
