"""`comfy_api.latest.io`: V3 node schemas (the common types), read by comfy_api.v1_adapter."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from _loom_compat import missing_attribute


class _Input:
    def __init__(self, id: str, display_name: str | None = None, optional: bool = False,  # noqa: A002
                 tooltip: str | None = None, lazy: bool | None = None, extra_dict: dict | None = None,
                 raw_link: bool | None = None, force_input: bool | None = None, socketless: bool | None = None,
                 advanced: bool | None = None, **options: Any):
        self.id = id
        self.display_name = display_name
        self.optional = optional
        self.io_type = ""
        opts = {"tooltip": tooltip, "lazy": lazy, "rawLink": raw_link, "forceInput": force_input,
                "socketless": socketless, "advanced": advanced, **(extra_dict or {})}
        for key, value in options.items():
            opts[_OPTION_NAMES.get(key, key)] = value.value if isinstance(value, enum.Enum) else value
        self.options = {k: v for k, v in opts.items() if v is not None}

    def v1(self) -> tuple:
        return (self.io_type, self.options) if self.options else (self.io_type,)


_OPTION_NAMES = {"display_mode": "display", "control_after_generate": "control_after_generate",
                 "multiline": "multiline", "placeholder": "placeholder", "dynamic_prompts": "dynamicPrompts",
                 "label_on": "label_on", "label_off": "label_off", "upload": "image_upload"}


class _Output:
    def __init__(self, id: str | None = None, display_name: str | None = None, tooltip: str | None = None,  # noqa: A002
                 is_output_list: bool = False):
        self.id = id
        self.display_name = display_name
        self.tooltip = tooltip
        self.is_output_list = is_output_list
        self.io_type = ""


def _io_type(name: str) -> type:
    """A V3 type class with nested Input/Output whose V1 type name is `name`."""

    class Input(_Input):
        def __init__(self, id: str, *args: Any, **kwargs: Any):  # noqa: A002
            super().__init__(id, *args, **kwargs)
            self.io_type = name

    class Output(_Output):
        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.io_type = name

    return type(name.title().replace("_", ""), (), {"io_type": name, "Input": Input, "Output": Output})


Int = _io_type("INT")
Float = _io_type("FLOAT")
String = _io_type("STRING")
Boolean = _io_type("BOOLEAN")
Image = _io_type("IMAGE")
Mask = _io_type("MASK")
Latent = _io_type("LATENT")
Conditioning = _io_type("CONDITIONING")
Model = _io_type("MODEL")
Clip = _io_type("CLIP")
Vae = _io_type("VAE")
ControlNet = _io_type("CONTROL_NET")
UpscaleModel = _io_type("UPSCALE_MODEL")
Sigmas = _io_type("SIGMAS")
Sampler = _io_type("SAMPLER")
Noise = _io_type("NOISE")
Guider = _io_type("GUIDER")
AnyType = _io_type("*")


class Combo:
    io_type = "COMBO"

    class Input(_Input):
        def __init__(self, id: str, options: Any = None, default: Any = None, **kw: Any):  # noqa: A002
            values = [o.value for o in options] if isinstance(options, type) and issubclass(options, enum.Enum) \
                else list(options or [])
            super().__init__(id, **kw)
            self.io_type = values  # a V1 combo is the list of options
            if default is not None:
                self.options["default"] = default.value if isinstance(default, enum.Enum) else default

    class Output(_Output):
        def __init__(self, *a: Any, **k: Any):
            super().__init__(*a, **k)
            self.io_type = "COMBO"


class Custom:
    """`io.Custom("MY_TYPE")`: a type known only by name."""

    def __new__(cls, name: str) -> type:  # type: ignore[misc]
        return _io_type(name)


class Hidden(str, enum.Enum):  # noqa: UP042 - ComfyUI's name and shape
    unique_id = "UNIQUE_ID"
    prompt = "PROMPT"
    extra_pnginfo = "EXTRA_PNGINFO"
    dynprompt = "DYNPROMPT"
    auth_token_comfy_org = "AUTH_TOKEN_COMFY_ORG"
    api_key_comfy_org = "API_KEY_COMFY_ORG"


@dataclass
class Schema:
    node_id: str
    display_name: str | None = None
    category: str = "sd"
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    hidden: list = field(default_factory=list)
    description: str = ""
    is_input_list: bool = False
    is_output_node: bool = False
    is_deprecated: bool = False
    is_experimental: bool = False
    is_api_node: bool = False
    not_idempotent: bool = False
    enable_expand: bool = False


class NodeOutput:
    def __init__(self, *args: Any, ui: Any = None, expand: Any = None, block_execution: str | None = None):
        self.args = args
        self.ui = ui
        self.expand = expand
        self.block_execution = block_execution


class _HiddenValues:
    def __init__(self, values: dict):
        self._values = values

    def __getattr__(self, name: str) -> Any:
        return self._values.get(name)


class ComfyNode:
    """Base of a V3 node: classmethods define_schema() and execute(**inputs)."""

    hidden = _HiddenValues({})

    @classmethod
    def define_schema(cls) -> Schema:
        raise NotImplementedError(f"{cls.__name__} does not define its schema")

    @classmethod
    def execute(cls, **kwargs: Any) -> NodeOutput:
        raise NotImplementedError(f"{cls.__name__} does not define execute")


__getattr__ = missing_attribute("comfy_api.latest.io")
