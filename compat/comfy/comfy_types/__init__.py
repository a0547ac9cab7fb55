"""ComfyUI's `comfy.comfy_types`: the IO type names and typing helpers packs annotate with."""

from __future__ import annotations

import enum
from typing import Any, TypedDict

from nodes.interface import AnyType


class IO(enum.StrEnum):
    STRING = "STRING"
    IMAGE = "IMAGE"
    MASK = "MASK"
    LATENT = "LATENT"
    BOOLEAN = "BOOLEAN"
    INT = "INT"
    FLOAT = "FLOAT"
    COMBO = "COMBO"
    CONDITIONING = "CONDITIONING"
    SAMPLER = "SAMPLER"
    SIGMAS = "SIGMAS"
    GUIDER = "GUIDER"
    NOISE = "NOISE"
    CLIP = "CLIP"
    CONTROL_NET = "CONTROL_NET"
    VAE = "VAE"
    MODEL = "MODEL"
    CLIP_VISION = "CLIP_VISION"
    CLIP_VISION_OUTPUT = "CLIP_VISION_OUTPUT"
    STYLE_MODEL = "STYLE_MODEL"
    GLIGEN = "GLIGEN"
    UPSCALE_MODEL = "UPSCALE_MODEL"
    AUDIO = "AUDIO"
    WEBCAM = "WEBCAM"
    POINT = "POINT"
    FACE_ANALYSIS = "FACE_ANALYSIS"
    BBOX = "BBOX"
    SEGS = "SEGS"
    VIDEO = "VIDEO"
    ANY = "*"
    NUMBER = "FLOAT,INT"
    PRIMITIVE = "STRING,FLOAT,INT,BOOLEAN"

    def __ne__(self, other: object) -> bool:
        # "*" matches every type, as in ComfyUI; unions compare by value
        if self.value == "*" or other == "*":
            return False
        return self.value != (other.value if isinstance(other, IO) else other)

    __hash__ = str.__hash__


class ComfyNodeABC:
    """Base class some packs inherit from; it adds nothing."""


class CheckLazyMixin:
    def check_lazy_status(self, **kwargs: Any) -> list[str]:
        return [k for k, v in kwargs.items() if v is None]


InputTypeDict = dict[str, Any]


class InputTypeOptions(TypedDict, total=False):
    default: Any
    tooltip: str


FileLocator = dict
__all__ = ["IO", "AnyType", "ComfyNodeABC", "CheckLazyMixin", "InputTypeDict", "InputTypeOptions", "FileLocator"]
