"""The V1 node interface: how a node class is read.

A node is a plain class with ComfyUI's V1 attributes (INPUT_TYPES, RETURN_TYPES, FUNCTION, ...).
`NodeDef` reads one class once and answers every question the engine and the server ask of it,
so nothing else pokes at class attributes directly.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

MAX_RESOLUTION = 16384

ANY = "*"
PRIMITIVE_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN")
HIDDEN_TYPES = ("PROMPT", "DYNPROMPT", "EXTRA_PNGINFO", "UNIQUE_ID", "AUTH_TOKEN_COMFY_ORG", "API_KEY_COMFY_ORG")


class AnyType(str):
    """A type name that matches every other type (ComfyUI's `IO.ANY`)."""

    def __ne__(self, other: object) -> bool:
        return False


class ExecutionBlocker:
    """Returned in place of a value: whatever consumes it is not executed.

    With a message, the engine reports an `execution_error` of type ExecutionBlocked once;
    with None the block is silent.
    """

    def __init__(self, message: str | None):
        self.message = message

    def __repr__(self) -> str:
        return f"ExecutionBlocker({self.message!r})"


def is_link(value: Any) -> bool:
    """A link is `[source_node_id: str, output_index: int]` (the dialect's rule)."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], (int, float))
        and not isinstance(value[1], bool)
    )


def types_compatible(received: Any, expected: Any) -> bool:
    """Whether an output of type `received` may feed an input of type `expected`.

    `*` on either side matches; comma unions match when they share a member.
    A list on the input side is a combo: only a combo-producing output (a list or "COMBO") fits it.
    """
    if isinstance(expected, list):
        return isinstance(received, list) or received in ("COMBO", ANY)
    if isinstance(received, list):
        return expected in ("COMBO", ANY)
    if not received != expected:  # honours custom __ne__ such as AnyType
        return True
    received_s, expected_s = str(received), str(expected)
    if received_s == ANY or expected_s == ANY:
        return True
    return bool(set(received_s.split(",")) & set(expected_s.split(",")))


@dataclass(frozen=True)
class InputSpec:
    """One declared input: its section, type (a str, or a list for a combo) and options."""

    name: str
    section: str  # "required" | "optional" | "hidden"
    type: Any
    options: dict = field(default_factory=dict)

    @property
    def combo_options(self) -> list | None:
        if isinstance(self.type, list):
            return self.type
        if self.type == "COMBO":
            return list(self.options.get("options", []))
        return None

    @property
    def lazy(self) -> bool:
        return bool(self.options.get("lazy"))

    @property
    def raw_link(self) -> bool:
        return bool(self.options.get("rawLink"))


def _parse_entry(name: str, section: str, entry: Any) -> InputSpec:
    if section == "hidden":
        return InputSpec(name, section, entry if isinstance(entry, str) else entry[0], {})
    if isinstance(entry, (list, tuple)) and entry and not isinstance(entry, str):
        kind = entry[0]
        options = entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {}
        if isinstance(kind, tuple):
            kind = list(kind)
        return InputSpec(name, section, kind, dict(options))
    return InputSpec(name, section, entry, {})


def _class_flag(cls: type, name: str) -> bool:
    return bool(getattr(cls, name, False))


class NodeDef:
    """Everything the engine needs to know about one node class, read once."""

    def __init__(self, class_type: str, cls: type, display_name: str | None = None, python_module: str = "nodes"):
        self.class_type = class_type
        self.cls = cls
        self.display_name = display_name or getattr(cls, "DISPLAY_NAME", None) or class_type
        self.python_module = getattr(cls, "RELATIVE_PYTHON_MODULE", None) or python_module
        self.return_types: tuple = tuple(getattr(cls, "RETURN_TYPES", ()))
        self.return_names: tuple = tuple(getattr(cls, "RETURN_NAMES", None) or self.return_types)
        output_is_list = getattr(cls, "OUTPUT_IS_LIST", None)
        self.output_is_list: tuple = tuple(output_is_list) if output_is_list else (False,) * len(self.return_types)
        self.input_is_list = _class_flag(cls, "INPUT_IS_LIST")
        self.function_name: str = getattr(cls, "FUNCTION", "")
        self.output_node = _class_flag(cls, "OUTPUT_NODE")
        self.not_idempotent = _class_flag(cls, "NOT_IDEMPOTENT")
        self.category = getattr(cls, "CATEGORY", "sd")
        self.description = getattr(cls, "DESCRIPTION", "") or ""
        self.has_is_changed = hasattr(cls, "IS_CHANGED")
        self.has_validate = hasattr(cls, "VALIDATE_INPUTS")
        self.has_lazy_check = hasattr(cls, "check_lazy_status")
        self._validate_params: tuple[set[str], bool] | None = None

    # -- inputs -------------------------------------------------------------------------------
    def input_types(self) -> dict:
        """INPUT_TYPES() as the class returns it now (combo lists may change between calls)."""
        return self.cls.INPUT_TYPES() or {}

    def inputs(self) -> dict[str, InputSpec]:
        """Declared inputs by name, in declaration order, required first."""
        raw = self.input_types()
        specs: dict[str, InputSpec] = {}
        for section in ("required", "optional", "hidden"):
            for name, entry in (raw.get(section) or {}).items():
                specs[name] = _parse_entry(name, section, entry)
        return specs

    def validate_params(self) -> tuple[set[str], bool]:
        """The parameter names of VALIDATE_INPUTS and whether it takes **kwargs."""
        if self._validate_params is None:
            names: set[str] = set()
            var_kw = False
            if self.has_validate:
                for p in inspect.signature(self.cls.VALIDATE_INPUTS).parameters.values():
                    if p.kind == inspect.Parameter.VAR_KEYWORD:
                        var_kw = True
                    else:
                        names.add(p.name)
            self._validate_params = (names, var_kw)
        return self._validate_params

    # -- /object_info -------------------------------------------------------------------------
    def object_info(self) -> dict:
        raw = self.input_types()
        info_input: dict[str, dict] = {}
        order: dict[str, list[str]] = {}
        for section in ("required", "optional", "hidden"):
            entries = raw.get(section)
            if entries is None:
                continue
            info_input[section] = {k: _jsonable(v) for k, v in entries.items()}
            order[section] = list(entries.keys())
        info = {
            "input": info_input,
            "input_order": order,
            "output": list(self.return_types),
            "output_is_list": list(self.output_is_list),
            "output_name": list(self.return_names),
            "name": self.class_type,
            "display_name": self.display_name,
            "description": self.description,
            "python_module": self.python_module,
            "category": self.category,
            "output_node": self.output_node,
        }
        tooltips = getattr(self.cls, "OUTPUT_TOOLTIPS", None)
        if tooltips:
            info["output_tooltips"] = list(tooltips)
        for flag in ("DEPRECATED", "EXPERIMENTAL", "API_NODE"):
            if _class_flag(self.cls, flag):
                info[flag.lower()] = True
        return info


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
