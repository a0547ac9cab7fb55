"""Primitive value nodes (ComfyUI's comfy_extras/nodes_primitive.py): a widget whose value is the output."""

from __future__ import annotations

import sys


class _Primitive:
    FUNCTION = "execute"
    CATEGORY = "utils/primitive"

    def execute(self, value):
        return (value,)


class PrimitiveString(_Primitive):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("STRING", {"default": ""})}}

    RETURN_TYPES = ("STRING",)
    DESCRIPTION = "A string value."


class PrimitiveStringMultiline(_Primitive):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("STRING", {"default": "", "multiline": True})}}

    RETURN_TYPES = ("STRING",)
    DESCRIPTION = "A multi-line string value."


class PrimitiveInt(_Primitive):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0, "min": -sys.maxsize, "max": sys.maxsize,
                                               "control_after_generate": True})}}

    RETURN_TYPES = ("INT",)
    DESCRIPTION = "An integer value."


class PrimitiveFloat(_Primitive):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("FLOAT", {"default": 0.0, "min": -sys.maxsize, "max": sys.maxsize, "step": 0.1})}}

    RETURN_TYPES = ("FLOAT",)
    DESCRIPTION = "A floating-point value."


class PrimitiveBoolean(_Primitive):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("BOOLEAN", {"default": False})}}

    RETURN_TYPES = ("BOOLEAN",)
    DESCRIPTION = "A boolean value."


NODE_CLASS_MAPPINGS = {
    "PrimitiveString": PrimitiveString,
    "PrimitiveStringMultiline": PrimitiveStringMultiline,
    "PrimitiveInt": PrimitiveInt,
    "PrimitiveFloat": PrimitiveFloat,
    "PrimitiveBoolean": PrimitiveBoolean,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "PrimitiveString": "String",
    "PrimitiveStringMultiline": "String (Multiline)",
    "PrimitiveInt": "Int",
    "PrimitiveFloat": "Float",
    "PrimitiveBoolean": "Boolean",
}
