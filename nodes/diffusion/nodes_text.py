"""Text-encoding nodes with ComfyUI's names, inputs and outputs (the work is in `text_encoding`)."""

from __future__ import annotations

from nodes.interface import MAX_RESOLUTION

_NO_CLIP = ("ERROR: clip input is invalid: None\n\nIf the clip is from a checkpoint loader node your checkpoint "
            "does not contain a valid clip or text encoder model.")


def _check(clip):
    if clip is None:
        raise RuntimeError(_NO_CLIP)


class CLIPTextEncode:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "text": ("STRING", {"multiline": True, "dynamicPrompts": True,
                                "tooltip": "The text to be encoded."}),
            "clip": ("CLIP", {"tooltip": "The CLIP model used for encoding the text."}),
        }}

    RETURN_TYPES = ("CONDITIONING",)
    OUTPUT_TOOLTIPS = ("A conditioning containing the embedded text used to guide the diffusion model.",)
    FUNCTION = "encode"
    CATEGORY = "conditioning"
    DESCRIPTION = "Encodes a text prompt using a CLIP model into an embedding that can guide the diffusion model."

    def encode(self, clip, text):
        from nodes.diffusion.text_encoding import encode_text

        _check(clip)
        cond, pooled = encode_text(clip, text)
        return ([[cond, {"pooled_output": pooled}]],)


class CLIPSetLastLayer:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip": ("CLIP",),
                             "stop_at_clip_layer": ("INT", {"default": -1, "min": -24, "max": -1, "step": 1})}}

    RETURN_TYPES = ("CLIP",)
    FUNCTION = "set_last_layer"
    CATEGORY = "conditioning"

    def set_last_layer(self, clip, stop_at_clip_layer):
        _check(clip)
        return (clip.with_stop_layer(stop_at_clip_layer),)


class CLIPTextEncodeSDXL:
    @classmethod
    def INPUT_TYPES(cls):
        size = {"min": 0, "max": MAX_RESOLUTION}
        return {"required": {
            "width": ("INT", {"default": 1024, **size}),
            "height": ("INT", {"default": 1024, **size}),
            "crop_w": ("INT", {"default": 0, **size}),
            "crop_h": ("INT", {"default": 0, **size}),
            "target_width": ("INT", {"default": 1024, **size}),
            "target_height": ("INT", {"default": 1024, **size}),
            "text_g": ("STRING", {"multiline": True, "dynamicPrompts": True}),
            "clip": ("CLIP",),
            "text_l": ("STRING", {"multiline": True, "dynamicPrompts": True}),
        }}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"
    CATEGORY = "advanced/conditioning"

    def encode(self, clip, width, height, crop_w, crop_h, target_width, target_height, text_g, text_l):
        from nodes.diffusion import text_encoding as te

        _check(clip)
        if len(clip.encoders) != 2:
            raise RuntimeError(f"CLIPTextEncodeSDXL needs an SDXL CLIP (CLIP-L + CLIP-G); this one is {clip.family}")
        tokens_l = te.tokenize(clip, text_l)[0]
        tokens_g = te.tokenize(clip, text_g)[1]
        tokens = te.pad_to_same_length([tokens_l, tokens_g], clip)
        cond, pooled = te.encode_tokens(clip, tokens)
        return ([[cond, {"pooled_output": pooled, "width": width, "height": height, "crop_w": crop_w,
                         "crop_h": crop_h, "target_width": target_width, "target_height": target_height}]],)


class CLIPTextEncodeSDXLRefiner:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "ascore": ("FLOAT", {"default": 6.0, "min": 0.0, "max": 1000.0, "step": 0.01}),
            "width": ("INT", {"default": 1024, "min": 0, "max": MAX_RESOLUTION}),
            "height": ("INT", {"default": 1024, "min": 0, "max": MAX_RESOLUTION}),
            "text": ("STRING", {"multiline": True, "dynamicPrompts": True}),
            "clip": ("CLIP",),
        }}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"
    CATEGORY = "advanced/conditioning"

    def encode(self, clip, ascore, width, height, text):
        from nodes.diffusion.text_encoding import encode_text

        _check(clip)
        cond, pooled = encode_text(clip, text)
        return ([[cond, {"pooled_output": pooled, "aesthetic_score": ascore, "width": width, "height": height}]],)


NODE_CLASS_MAPPINGS = {
    "CLIPTextEncode": CLIPTextEncode,
    "CLIPSetLastLayer": CLIPSetLastLayer,
    "CLIPTextEncodeSDXL": CLIPTextEncodeSDXL,
    "CLIPTextEncodeSDXLRefiner": CLIPTextEncodeSDXLRefiner,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "CLIPTextEncode": "CLIP Text Encode (Prompt)",
    "CLIPSetLastLayer": "CLIP Set Last Layer",
}
