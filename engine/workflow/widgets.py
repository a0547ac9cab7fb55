"""Which widgets the frontend gives a node, and how `widgets_values` maps onto input names.

The frontend builds a node's widgets from its `/object_info` entry, in declaration order
(required, then optional): one widget per INT/FLOAT/STRING/BOOLEAN/COMBO input that is not
`forceInput` (nor an optional `defaultInput`). Some widgets exist only in the browser but still take a place in the saved
`widgets_values`:
  - `control_after_generate` after an input whose options ask for it, and after INT inputs named
    `seed` / `noise_seed` when the option is absent; a COMBO with the option also gets a
    `control_filter_list` text widget;
  - `upload`, appended after the last required input when a required COMBO has
    `image_upload` / `video_upload` / `animated_image_upload` (LoadImage saves `[file, "image"]`).
Those never reach the API prompt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.workflow.ui_graph import UINode

WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
SEED_NAMES = ("seed", "noise_seed")
UPLOAD_FLAGS = ("image_upload", "video_upload", "animated_image_upload")
CONTROL_VALUES = frozenset({"fixed", "increment", "decrement", "randomize", "increment-wrap"})
# Loaders that get an upload widget even when the server leaves the flag out (as the frontend does).
KNOWN_MEDIA_LOADERS = {"LoadImage": "image", "LoadImageMask": "image", "LoadVideo": "file", "LoadAudio": "audio"}

VALUE, CONTROL, FILTER, UPLOAD = "value", "control", "filter", "upload"


@dataclass(frozen=True)
class WidgetSlot:
    name: str  # the widget's name (for a value widget, the input it fills)
    kind: str  # VALUE, or a browser-only CONTROL / FILTER / UPLOAD
    type: str = ""
    options: dict = field(default_factory=dict, hash=False, compare=False)
    choices: tuple = ()  # a COMBO's options

    @property
    def is_value(self) -> bool:
        return self.kind == VALUE


def _split_spec(entry: Any) -> tuple[Any, dict]:
    if isinstance(entry, (list, tuple)) and entry:
        options = entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {}
        return entry[0], options
    return entry, {}


def _widget_type(kind: Any, options: dict) -> str | None:
    if isinstance(options.get("widgetType"), str):
        kind = options["widgetType"]
    if isinstance(kind, (list, tuple)):
        return "COMBO"
    if isinstance(kind, str) and kind in WIDGET_TYPES:
        return kind
    return None


def _ordered_inputs(info: dict, section: str) -> list[tuple[str, Any]]:
    entries = (info.get("input") or {}).get(section) or {}
    order = (info.get("input_order") or {}).get(section)
    names = [n for n in order if n in entries] if isinstance(order, list) else list(entries)
    names += [n for n in entries if n not in names]
    return [(name, entries[name]) for name in names]


def _is_upload_combo(entry: Any) -> bool:
    kind, options = _split_spec(entry)
    return (isinstance(kind, (list, tuple)) or kind == "COMBO") and any(options.get(f) is True for f in UPLOAD_FLAGS)


def widget_layout(class_type: str, info: dict) -> list[WidgetSlot]:
    """The node's widgets in the order the frontend creates (and saves) them."""
    slots: list[WidgetSlot] = []
    for section in ("required", "optional"):
        inputs = _ordered_inputs(info, section)
        for name, entry in inputs:
            kind, options = _split_spec(entry)
            wtype = _widget_type(kind, options)
            # An optional input with the old `defaultInput` flag counts as forceInput (the frontend migrates it).
            if wtype is None or options.get("forceInput") or (section == "optional" and options.get("defaultInput")):
                continue
            choices = kind if isinstance(kind, (list, tuple)) else options.get("options") or ()
            slots.append(WidgetSlot(name, VALUE, wtype, options, tuple(choices) if wtype == "COMBO" else ()))
            control = options.get("control_after_generate")
            if control is None and wtype == "INT" and name in SEED_NAMES:
                control = True
            if control:
                slots.append(WidgetSlot("control_after_generate", CONTROL))
                if wtype == "COMBO":
                    slots.append(WidgetSlot("control_filter_list", FILTER))
        if section == "required":
            entries = dict(inputs)
            media = next((n for n, e in inputs if _is_upload_combo(e)), None)
            fallback = KNOWN_MEDIA_LOADERS.get(class_type)
            if media is None and fallback in entries and _widget_type(*_split_spec(entries[fallback])) == "COMBO":
                media = fallback
            if media is not None:
                slots.append(WidgetSlot("upload", UPLOAD))
    return slots


def default_value(slot: WidgetSlot) -> Any:
    """The value the frontend gives a fresh widget."""
    if "default" in slot.options:
        return slot.options["default"]
    if slot.type == "COMBO":
        return slot.choices[0] if slot.choices else None
    return {"INT": 0, "FLOAT": 0, "STRING": "", "BOOLEAN": False}.get(slot.type)


def _looks_like(kind: str, value: Any) -> bool:
    if kind == CONTROL:
        return isinstance(value, bool) or value in CONTROL_VALUES
    if kind == FILTER:
        return isinstance(value, str)
    return value is None or isinstance(value, str)  # UPLOAD: the button's value, "image"


def _align_positional(values: list, layout: list[WidgetSlot]) -> tuple[dict[str, Any], int]:
    """{input name: value} and how many values were used, tolerating saves without browser-only slots."""
    value_slots = [s for s in layout if s.is_value]
    if len(values) >= len(layout):
        pairs = list(zip(layout, values))
        return {s.name: v for s, v in pairs if s.is_value}, len(layout)
    if len(values) == len(value_slots):
        return {s.name: v for s, v in zip(value_slots, values)}, len(values)
    # Fewer values than widgets: a browser-only slot takes a value only when it looks like one of
    # its own and enough values remain for the value widgets after it.
    result: dict[str, Any] = {}
    i = 0
    for index, slot in enumerate(layout):
        if i >= len(values):
            break
        if slot.is_value:
            result[slot.name] = values[i]
            i += 1
            continue
        value_slots_left = sum(1 for s in layout[index + 1:] if s.is_value)
        if len(values) - i > value_slots_left and _looks_like(slot.kind, values[i]):
            i += 1
    return result, i


def map_widget_values(node: UINode, info: dict, warn: Callable[[str], None]) -> dict[str, Any]:
    """The API inputs a node's saved widget values stand for (browser-only widgets left out).

    A value missing from the save takes the widget's default, as the frontend would; when the
    save has some values but not that one, a warning says so.
    """
    layout = widget_layout(node.type, info)
    value_slots = [s for s in layout if s.is_value]
    if not value_slots:
        return {}
    result: dict[str, Any] = {}
    raw = node.widgets_values
    named = node.widgets_values_named
    if isinstance(raw, dict) and not named:
        named = raw
    if named:
        result = {s.name: named[s.name] for s in value_slots if s.name in named}
    if isinstance(raw, list) and len(result) < len(value_slots):
        positional, used = _align_positional(raw, layout)
        for name, value in positional.items():
            result.setdefault(name, value)
        if not named and used < len(raw):
            warn(f"node {node.label()}: {len(raw)} widget values for {len(layout)} widgets; "
                 f"ignored the extra values {raw[used:]!r}")
    saved_any = bool(raw) or bool(named)
    missing = [s for s in value_slots if s.name not in result]
    for slot in missing:
        result[slot.name] = default_value(slot)
    if missing and saved_any:
        warn(f"node {node.label()}: no saved value for {', '.join(s.name for s in missing)}; used the defaults")
    return {s.name: result[s.name] for s in value_slots}
