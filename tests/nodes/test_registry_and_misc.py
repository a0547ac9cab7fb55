"""Every built-in node's declaration (names, options, /object_info shape), primitives and PreviewAny."""

import inspect
import json
import sys

import pytest
import torch

from nodes.interface import MAX_RESOLUTION, NodeDef, types_compatible
from nodes.registry import NodeRegistry

EXPECTED = {
    # class_type: (category, RETURN_TYPES, required input names in order)
    "LoadImage": ("image", ["IMAGE", "MASK"], ["image"]),
    "SaveImage": ("image", [], ["images", "filename_prefix"]),
    "PreviewImage": ("image", [], ["images"]),
    "EmptyImage": ("image", ["IMAGE"], ["width", "height", "batch_size", "color"]),
    "ImageInvert": ("image", ["IMAGE"], ["image"]),
    "ImageScale": ("image/upscaling", ["IMAGE"], ["image", "upscale_method", "width", "height", "crop"]),
    "ImageScaleBy": ("image/upscaling", ["IMAGE"], ["image", "upscale_method", "scale_by"]),
    "ImageBlend": ("image/postprocessing", ["IMAGE"], ["image1", "image2", "blend_factor", "blend_mode"]),
    "ImageCompositeMasked": ("image", ["IMAGE"], ["destination", "source", "x", "y", "resize_source"]),
    "ImageBatch": ("image", ["IMAGE"], ["image1", "image2"]),
    "ImageCrop": ("image/transform", ["IMAGE"], ["image", "width", "height", "x", "y"]),
    "ImagePadForOutpaint": ("image", ["IMAGE", "MASK"], ["image", "left", "top", "right", "bottom", "feathering"]),
    "LoadImageMask": ("mask", ["MASK"], ["image", "channel"]),
    "SolidMask": ("mask", ["MASK"], ["value", "width", "height"]),
    "InvertMask": ("mask", ["MASK"], ["mask"]),
    "MaskComposite": ("mask", ["MASK"], ["destination", "source", "x", "y", "operation"]),
    "FeatherMask": ("mask", ["MASK"], ["mask", "left", "top", "right", "bottom"]),
    "ThresholdMask": ("mask", ["MASK"], ["mask", "value"]),
    "ImageToMask": ("mask", ["MASK"], ["image", "channel"]),
    "MaskToImage": ("mask", ["IMAGE"], ["mask"]),
    "GrowMask": ("mask", ["MASK"], ["mask", "expand", "tapered_corners"]),
    "CropMask": ("mask", ["MASK"], ["mask", "x", "y", "width", "height"]),
    "EmptyLatentImage": ("latent", ["LATENT"], ["width", "height", "batch_size"]),
    "LatentUpscale": ("latent", ["LATENT"], ["samples", "upscale_method", "width", "height", "crop"]),
    "LatentUpscaleBy": ("latent", ["LATENT"], ["samples", "upscale_method", "scale_by"]),
    "LatentComposite": ("latent", ["LATENT"], ["samples_to", "samples_from", "x", "y", "feather"]),
    "LatentFromBatch": ("latent/batch", ["LATENT"], ["samples", "batch_index", "length"]),
    "RepeatLatentBatch": ("latent/batch", ["LATENT"], ["samples", "amount"]),
    "SetLatentNoiseMask": ("latent/inpaint", ["LATENT"], ["samples", "mask"]),
    "PrimitiveInt": ("utils/primitive", ["INT"], ["value"]),
    "PrimitiveFloat": ("utils/primitive", ["FLOAT"], ["value"]),
    "PrimitiveString": ("utils/primitive", ["STRING"], ["value"]),
    "PrimitiveStringMultiline": ("utils/primitive", ["STRING"], ["value"]),
    "PrimitiveBoolean": ("utils/primitive", ["BOOLEAN"], ["value"]),
    "PreviewAny": ("utils", ["STRING"], ["source"]),
}


def test_every_builtin_node_is_registered_with_its_declaration(registry, data_dirs):
    info = registry.object_info()
    for name, (category, outputs, required) in EXPECTED.items():
        node = info[name]
        assert node["name"] == name and node["category"] == category, name
        assert node["output"] == outputs and len(node["output_name"]) == len(outputs), name
        assert node["output_is_list"] == [False] * len(outputs), name
        assert node["input_order"]["required"] == required, name
        assert node["python_module"] == "nodes" and node["description"], name
        assert isinstance(node["display_name"], str) and node["display_name"], name
        json.dumps(node)  # JSON-able as served


def test_node_functions_accept_their_declared_inputs(registry, data_dirs):
    for name in EXPECTED:
        node_def: NodeDef = registry.get(name)
        params = inspect.signature(getattr(node_def.cls, node_def.function_name)).parameters
        declared = node_def.inputs()
        assert all(p in params for p in declared), (name, set(declared) - set(params))
        required = [p for p, v in params.items() if p != "self" and v.default is inspect.Parameter.empty]
        assert all(p in declared and declared[p].section == "required" for p in required), name


def test_dialect_options(registry, data_dirs):
    def opts(node, inp):
        return registry.get(node).inputs()[inp]

    assert opts("SaveImage", "filename_prefix").options["default"] == "ComfyUI"
    assert registry.get("SaveImage").inputs()["prompt"].type == "PROMPT"
    assert registry.get("SaveImage").inputs()["extra_pnginfo"].type == "EXTRA_PNGINFO"
    w = opts("EmptyLatentImage", "width").options
    assert (w["default"], w["min"], w["max"], w["step"]) == (512, 16, MAX_RESOLUTION, 8)
    assert opts("ImageScale", "upscale_method").type == ["nearest-exact", "bilinear", "area", "bicubic", "lanczos"]
    assert opts("LatentUpscale", "upscale_method").type == ["nearest-exact", "bilinear", "area", "bicubic", "bislerp"]
    assert opts("ImageScale", "crop").type == ["disabled", "center"]
    assert opts("ImageBlend", "blend_mode").type == ["normal", "multiply", "screen", "overlay", "soft_light", "difference"]
    assert opts("MaskComposite", "operation").type == ["multiply", "add", "subtract", "and", "or", "xor"]
    assert opts("LoadImageMask", "channel").type == ["alpha", "red", "green", "blue"]
    assert opts("GrowMask", "expand").options["min"] == -MAX_RESOLUTION
    assert opts("GrowMask", "tapered_corners").options == {"default": True}
    assert opts("EmptyImage", "color").options["display"] == "color"
    assert opts("ImagePadForOutpaint", "feathering").options["default"] == 40
    assert registry.get("ImageCompositeMasked").inputs()["mask"].section == "optional"
    assert opts("PrimitiveInt", "value").options["control_after_generate"] is True
    assert opts("PrimitiveInt", "value").options["max"] == sys.maxsize
    assert opts("PrimitiveStringMultiline", "value").options["multiline"] is True
    assert registry.get("PreviewAny").output_node and not registry.get("LoadImage").output_node


def test_builtins_cannot_be_replaced_by_packs(registry):
    reg = NodeRegistry()
    reg.load_builtins(["nodes.builtin.image"])
    added = reg.register_mappings({"LoadImage": object}, {}, "custom_nodes.evil")
    assert added == [] and reg.get("LoadImage").cls is registry.get("LoadImage").cls


def test_primitives_return_their_value(run_node):
    assert run_node("PrimitiveInt", value=-7) == (-7,)
    assert run_node("PrimitiveFloat", value=0.5) == (0.5,)
    assert run_node("PrimitiveString", value="a b") == ("a b",)
    assert run_node("PrimitiveStringMultiline", value="a\nb") == ("a\nb",)
    assert run_node("PrimitiveBoolean", value=True) == (True,)


def test_preview_any_renders_values(run_node, registry):
    source_type = registry.get("PreviewAny").inputs()["source"].type
    assert source_type == "*" and types_compatible("LATENT", source_type) and types_compatible("IMAGE", source_type)
    assert run_node("PreviewAny", source="hi") == {"ui": {"text": ["hi"]}, "result": ("hi",)}
    assert run_node("PreviewAny", source=3)["ui"]["text"] == ["3"]
    assert run_node("PreviewAny", source=None)["ui"]["text"] == ["None"]
    assert json.loads(run_node("PreviewAny", source={"a": [1, 2]})["ui"]["text"][0]) == {"a": [1, 2]}
    (text,) = run_node("PreviewAny", source=torch.zeros(1, 64, 64, 3))["ui"]["text"]
    assert text == "Tensor(shape=[1, 64, 64, 3], dtype=float32, min=0, max=0)"
    (text,) = run_node("PreviewAny", source={"samples": torch.ones(2, 4, 8, 8, dtype=torch.float16)})["ui"]["text"]
    assert json.loads(text) == {"samples": "Tensor(shape=[2, 4, 8, 8], dtype=float16, min=1, max=1)"}
    (text,) = run_node("PreviewAny", source=[[torch.zeros(1, 77, 768), {"pooled_output": None}]])["ui"]["text"]
    assert "shape=[1, 77, 768]" in text and "pooled_output" in text
    (text,) = run_node("PreviewAny", source={(1, 2): "tuple keys"})["ui"]["text"]
    assert "tuple keys" in text  # JSON cannot hold it: falls back to repr


@pytest.mark.parametrize("name", ["LoadImage", "LoadImageMask"])
def test_combo_of_empty_input_folder(registry, data_dirs, name):
    assert registry.get(name).inputs()["image"].type == []
