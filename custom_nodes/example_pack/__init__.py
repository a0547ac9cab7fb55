"""An example node pack, written exactly as it would be for ComfyUI (it runs unchanged there).

It shows the V1 node interface: INPUT_TYPES with widget options, a lazy input, an output list,
progress through comfy.utils.ProgressBar, and a WEB_DIRECTORY holding a frontend extension.
Loom loads it by default; start Loom with `--custom-nodes-allow` or `--disable-custom-nodes`
to leave it out.
"""

import torch

import comfy.utils  # ComfyUI's module; in Loom it comes from compat/


class ExampleGradientImage:
    """Draws a horizontal gradient between two grey levels, one progress step per image row band."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                # INT/FLOAT widgets: default, range and step; the server enforces min and max
                "width": ("INT", {"default": 64, "min": 8, "max": 4096, "step": 8}),
                "height": ("INT", {"default": 64, "min": 8, "max": 4096, "step": 8}),
                "start": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01}),
                "end": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                  "tooltip": "grey level at the right edge"}),
                # a list is a combo (a drop-down); the first entry is the default
                "direction": (["left_to_right", "right_to_left"],),
            },
            "optional": {
                "invert": ("BOOLEAN", {"default": False, "label_on": "inverted", "label_off": "normal"}),
            },
        }

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    FUNCTION = "draw"
    CATEGORY = "examples"
    DESCRIPTION = "A grey gradient image (IMAGE is float32 [B,H,W,C] in 0..1)."

    def draw(self, width, height, start, end, direction, invert=False):
        ramp = torch.linspace(start, end, width)
        if direction == "right_to_left":
            ramp = ramp.flip(0)
        if invert:
            ramp = 1.0 - ramp
        image = torch.empty((1, height, width, 3))
        bands = 4
        pbar = comfy.utils.ProgressBar(bands)  # sends `progress` events for this node
        for band in range(bands):
            rows = slice(band * height // bands, (band + 1) * height // bands)
            image[0, rows] = ramp.view(1, width, 1)
            pbar.update(1)
        return (image,)


class ExampleLazySwitch:
    """Passes one of two inputs on; the other branch is never computed (a lazy input)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "use_first": ("BOOLEAN", {"default": True}),
                "first": ("IMAGE", {"lazy": True}),
                "second": ("IMAGE", {"lazy": True}),
            },
        }

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "switch"
    CATEGORY = "examples"

    def check_lazy_status(self, use_first, first=None, second=None):
        # Name the inputs still needed; the engine evaluates only those, then calls this again.
        wanted = "first" if use_first else "second"
        return [wanted] if (first if use_first else second) is None else []

    def switch(self, use_first, first=None, second=None):
        return (first if use_first else second,)


class ExampleSplitLines:
    """Splits text into lines; the output is a list, so what follows runs once per line."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"multiline": True, "default": "a cat\na dog"})}}

    RETURN_TYPES = ("STRING", "INT")
    RETURN_NAMES = ("line", "count")
    OUTPUT_IS_LIST = (True, False)
    FUNCTION = "split"
    CATEGORY = "examples"

    def split(self, text):
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return (lines, len(lines))


NODE_CLASS_MAPPINGS = {
    "ExampleGradientImage": ExampleGradientImage,
    "ExampleLazySwitch": ExampleLazySwitch,
    "ExampleSplitLines": ExampleSplitLines,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "ExampleGradientImage": "Gradient Image (example)",
    "ExampleLazySwitch": "Lazy Switch (example)",
    "ExampleSplitLines": "Split Lines (example)",
}
# Served at /extensions/example_pack/; the frontend loads every .js file in it.
WEB_DIRECTORY = "./web"
