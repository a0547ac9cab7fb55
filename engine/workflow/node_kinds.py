"""Node types that live only in the browser, and how a bypassed node passes its inputs on."""

from __future__ import annotations

from typing import Any

from engine.workflow.ui_graph import UINode

# Node types that exist only in the browser. ComfyUI's own four first, then common pack ones.
REROUTE_TYPES = frozenset({"Reroute", "Reroute (rgthree)"})
PRIMITIVE_TYPES = frozenset({"PrimitiveNode"})
SET_TYPES = frozenset({"SetNode"})  # KJNodes: a named, wireless reroute
GET_TYPES = frozenset({"GetNode"})
NOTE_TYPES = frozenset({
    "Note", "MarkdownNote", "Note Plus (mtb)", "Label (rgthree)", "Bookmark (rgthree)",
    "Fast Groups Muter (rgthree)", "Fast Groups Bypasser (rgthree)", "Fast Muter (rgthree)",
    "Fast Bypasser (rgthree)", "Fast Actions Button (rgthree)", "Mute / Bypass Repeater (rgthree)",
    "Mute / Bypass Relay (rgthree)", "Node Collector (rgthree)", "Random Unmuter (rgthree)",
})
# These four are never real backend nodes, even if some pack registers the name.
CORE_FRONTEND_ONLY = frozenset({"Reroute", "PrimitiveNode", "Note", "MarkdownNote"})
FRONTEND_ONLY_TYPES = REROUTE_TYPES | PRIMITIVE_TYPES | SET_TYPES | GET_TYPES | NOTE_TYPES


def bypass_input_index(node: UINode, slot: int, want_type: Any) -> int:
    """Which input a bypassed node passes on for output `slot` (-1: none fits)."""
    inputs = node.inputs
    if want_type in ("*", "", None, 0):
        if slot < len(inputs):
            return slot
        return 0 if inputs else -1
    out_type = node.outputs[slot].type if slot < len(node.outputs) else "*"
    if slot < len(inputs) and slot_types_match(inputs[slot].type, out_type) and \
            slot_types_match(inputs[slot].type, want_type):
        return slot
    for i, inp in enumerate(inputs):
        if inp.type == want_type:
            return i
    for i, inp in enumerate(inputs):
        if slot_types_match(inp.type, out_type) and slot_types_match(inp.type, want_type):
            return i
    return -1


def slot_types_match(a: Any, b: Any) -> bool:
    """Whether the canvas lets a link join slot types `a` and `b` (wildcards, comma unions, any case)."""
    if a in ("*", "", None, 0) or b in ("*", "", None, 0) or a == b:
        return True
    a_set = {t.strip() for t in str(a).lower().split(",")}
    b_set = {t.strip() for t in str(b).lower().split(",")}
    return bool(a_set & b_set)
