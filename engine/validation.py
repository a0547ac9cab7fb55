"""Validating an API-format prompt before it is queued, with the dialect's error objects.

Only nodes that an output needs are validated. An output whose ancestry is invalid is dropped from
the run and reported in `node_errors`; the prompt fails only when no output is left.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from engine.graph import find_cycles
from engine.signature import unwrap_constant
from nodes.interface import InputSpec, NodeDef, is_link, types_compatible
from nodes.registry import NodeRegistry

COMBO_CONFIG_LIMIT = 20  # the dialect leaves long combo lists out of error reports


def error(kind: str, message: str, details: str = "", extra_info: dict | None = None) -> dict:
    return {"type": kind, "message": message, "details": details, "extra_info": extra_info or {}}


@dataclass
class ValidationResult:
    ok: bool
    error: dict | None = None
    node_errors: dict[str, dict] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)

    def response(self) -> dict:
        """The body of POST /prompt's 400 answer."""
        return {"error": self.error, "node_errors": self.node_errors}

    def describe(self, prompt: dict | None = None) -> list[str]:
        """The problems in plain words, one line each, naming the node and input they concern."""
        lines = []
        for node_id, entry in self.node_errors.items():
            info = prompt.get(node_id, {}) if isinstance(prompt, dict) else {}
            title = _title(info, entry["class_type"]) if isinstance(info, dict) else entry["class_type"]
            where = f"{entry['class_type']} #{node_id}" + (f" ({title})" if title != entry["class_type"] else "")
            for err in entry["errors"]:
                name = err.get("extra_info", {}).get("input_name")
                detail = err["details"] if err["details"] and err["details"] != name else ""
                lines.append(f"{where}" + (f", input '{name}'" if name else "") + f": {err['message']}"
                             + (f" ({detail})" if detail else ""))
        if self.error is not None and not self.node_errors:
            lines.append(self.error["message"] + (f" ({self.error['details']})" if self.error.get("details") else ""))
        return lines


def _title(info: dict, class_type: Any) -> str:
    meta = info.get("_meta")
    if isinstance(meta, dict) and isinstance(meta.get("title"), str):
        return meta["title"]
    return str(class_type)


def _check_structure(prompt: Any, registry: NodeRegistry) -> ValidationResult | None:
    if not isinstance(prompt, dict):
        return ValidationResult(False, error("invalid_prompt", "Invalid prompt: the prompt must be an object of nodes",
                                             f"got {type(prompt).__name__}"))
    missing = {}
    for node_id, info in prompt.items():
        if not isinstance(info, dict):
            return ValidationResult(False, error("invalid_prompt", f"Invalid prompt: node {node_id} is not an object",
                                                 f"node {node_id}: {type(info).__name__}"))
        class_type = info.get("class_type")
        if not isinstance(class_type, str) or not class_type:
            return ValidationResult(False, error(
                "invalid_prompt", f"Cannot execute because node {node_id} is missing the class_type property.",
                f"Node ID '#{node_id}'", {"node_id": node_id}))
        if not isinstance(info.get("inputs", {}), dict):
            return ValidationResult(False, error("invalid_prompt", f"Invalid prompt: inputs of node {node_id} must be an object",
                                                 f"Node ID '#{node_id}'", {"node_id": node_id}))
        info.setdefault("inputs", {})
        if class_type not in registry:
            missing[node_id] = class_type
    if missing:
        node_id, class_type = next(iter(missing.items()))
        title = _title(prompt[node_id], class_type)
        all_types = sorted(set(missing.values()))
        result = ValidationResult(False, error(
            "missing_node_type",
            f"Node '{title}' not found. The custom node may not be installed.",
            f"Node ID '#{node_id}'" + (f"; missing node types: {', '.join(all_types)}" if len(all_types) > 1 else ""),
            {"node_id": node_id, "class_type": class_type, "node_title": title, "missing_node_types": all_types}))
        for nid, ctype in missing.items():
            result.node_errors[nid] = {"errors": [error("missing_node_type", f"Node type '{ctype}' is not installed",
                                                        ctype, {"class_type": ctype})],
                                       "dependent_outputs": [], "class_type": ctype}
        return result
    return None


class _Validator:
    def __init__(self, prompt: dict, registry: NodeRegistry):
        self.prompt = prompt
        self.registry = registry
        self.valid: dict[str, bool] = {}
        self.errors: dict[str, list[dict]] = {}
        self._specs: dict[str, dict[str, InputSpec]] = {}

    def specs(self, node_def: NodeDef) -> dict[str, InputSpec]:
        specs = self._specs.get(node_def.class_type)
        if specs is None:
            specs = node_def.inputs()
            self._specs[node_def.class_type] = specs
        return specs

    def ancestry(self, output_id: str) -> list[str]:
        """The nodes `output_id` needs, sources before consumers (the graph is acyclic by now)."""
        order: list[str] = []
        expanded: set[str] = set()   # marked when popped, not when pushed: a node pushed by one consumer
        stack = [(output_id, False)]  # may be needed earlier by another, deeper one (e.g. hires fix)
        while stack:
            node_id, done = stack.pop()
            if done:
                order.append(node_id)
                continue
            if node_id in expanded:
                continue
            expanded.add(node_id)
            stack.append((node_id, True))
            for value in self.prompt[node_id]["inputs"].values():
                if is_link(value) and value[0] in self.prompt and value[0] not in expanded:
                    stack.append((value[0], False))
        return order

    def reachable(self, outputs: list[str]) -> set[str]:
        seen = set(outputs)
        stack = list(outputs)
        while stack:
            for value in self.prompt[stack.pop()]["inputs"].values():
                if is_link(value) and value[0] in self.prompt and value[0] not in seen:
                    seen.add(value[0])
                    stack.append(value[0])
        return seen

    def validate_node(self, node_id: str) -> bool:
        """Validate one node whose sources are already validated."""
        info = self.prompt[node_id]
        node_def = self.registry.get(info["class_type"])
        inputs = info["inputs"]
        specs = self.specs(node_def)
        errors: list[dict] = []
        valid = True
        validate_names, validate_kwargs = node_def.validate_params()
        wants_types = "input_types" in validate_names
        received_types: dict[str, Any] = {}
        for name, spec in specs.items():
            if spec.section == "hidden":
                continue
            extra = {"input_name": name, "input_config": _jsonable_config(spec)}
            if name not in inputs:
                if spec.section == "required":
                    errors.append(error("required_input_missing", "Required input is missing", name, extra))
                continue
            value = inputs[name]
            if isinstance(value, list) and not is_link(value):
                errors.append(error("bad_linked_input", "Bad linked input, must be a length-2 list of [string, integer]",
                                    f"{name}: {value!r}"[:300], extra))
                continue
            if is_link(value):
                source_id, slot = value[0], int(value[1])
                source = self.prompt.get(source_id)
                if source is None:
                    errors.append(error("bad_linked_input", f"Input '{name}' links to node {source_id}, which does not exist",
                                        f"{name}: linked node {source_id} not found", {**extra, "linked_node": value}))
                    continue
                source_def = self.registry.get(source["class_type"])
                if not 0 <= slot < len(source_def.return_types):
                    errors.append(error("bad_linked_input",
                                        f"Input '{name}' links to output {slot} of node {source_id}, which has "
                                        f"{len(source_def.return_types)} outputs",
                                        f"{name}: output index {slot} out of range", {**extra, "linked_node": value}))
                    continue
                received = source_def.return_types[slot]
                received_types[name] = received
                if not wants_types and not types_compatible(received, spec.type):
                    errors.append(error("return_type_mismatch", "Return type mismatch between linked nodes",
                                        f"{name}, received_type({received}) mismatch input_type({_type_name(spec.type)})",
                                        {**extra, "received_type": received, "linked_node": value}))
                    continue
                if not self.valid.get(source_id, False):
                    valid = False
                continue
            checked = name in validate_names or validate_kwargs
            problem = self.check_constant(node_id, name, spec, value, checked, extra)
            if problem is not None:
                errors.append(problem)
        for name, value in inputs.items():
            # Undeclared links are passed through to the node (variadic packs rely on it), so their
            # sources run and must be sound too.
            if name in specs or not is_link(value):
                continue
            source = self.prompt.get(value[0])
            if source is None or not 0 <= int(value[1]) < len(self.registry.get(source["class_type"]).return_types):
                errors.append(error("bad_linked_input", f"Input '{name}' links to a node output that does not exist",
                                    f"{name}: {value!r}", {"input_name": name, "linked_node": value}))
            elif not self.valid.get(value[0], False):
                valid = False
        if not errors and valid and node_def.has_validate:
            errors.extend(self.custom_validation(node_id, node_def, specs, received_types))
        if errors:
            self.errors[node_id] = errors
            return False
        return valid

    def check_constant(self, node_id: str, name: str, spec: InputSpec, value: Any, custom_checked: bool,
                       extra: dict) -> dict | None:
        inputs = self.prompt[node_id]["inputs"]
        raw = unwrap_constant(value)
        kind = spec.type
        try:
            if kind == "INT":
                raw = _to_int(raw)
            elif kind == "FLOAT":
                raw = _to_float(raw)
            elif kind == "STRING":
                raw = str(raw) if not isinstance(raw, (dict, list)) else _fail_string(raw)
            elif kind == "BOOLEAN":
                raw = _to_bool(raw)
        except (TypeError, ValueError, OverflowError) as e:
            return error("invalid_input_type", f"Failed to convert an input value to a {kind} value",
                         f"{name}, {str(raw)[:100]}, {e}", {**extra, "received_value": _short(raw)})
        if kind in ("INT", "FLOAT", "STRING", "BOOLEAN"):
            inputs[name] = raw  # execution sees the coerced value, as in the dialect
        if custom_checked:
            return None
        if kind in ("INT", "FLOAT"):
            minimum, maximum = spec.options.get("min"), spec.options.get("max")
            if minimum is not None and raw < minimum:
                return error("value_smaller_than_min", f"Value {raw} smaller than min of {minimum}", name,
                             {**extra, "received_value": raw})
            if maximum is not None and raw > maximum:
                return error("value_bigger_than_max", f"Value {raw} bigger than max of {maximum}", name,
                             {**extra, "received_value": raw})
        options = spec.combo_options
        if options is not None:
            if isinstance(raw, list) and spec.options.get("multiselect"):
                bad = [v for v in raw if v not in options]
            else:
                bad = [] if _in_options(raw, options) else [raw]
            if bad:
                shown = options if len(options) <= COMBO_CONFIG_LIMIT else None
                return error("value_not_in_list", "Value not in list",
                             f"{name}: '{_short(bad[0])}' not in {_short(shown) if shown is not None else f'(list of length {len(options)})'}",
                             {**extra, "input_config": [shown, spec.options] if shown is not None else None,
                              "received_value": _short(raw)})
        return None

    def custom_validation(self, node_id: str, node_def: NodeDef, specs: dict, received_types: dict) -> list[dict]:
        inputs = self.prompt[node_id]["inputs"]
        names, var_kw = node_def.validate_params()
        kwargs: dict[str, Any] = {}
        for name, spec in specs.items():
            if spec.section == "hidden" or name not in inputs or is_link(inputs[name]):
                continue
            if var_kw or name in names:
                kwargs[name] = unwrap_constant(inputs[name])
        if "input_types" in names:
            kwargs["input_types"] = received_types
        try:
            outcome = node_def.cls.VALIDATE_INPUTS(**kwargs)
        except Exception as e:
            return [error("exception_during_validation", "Exception when validating node", f"{type(e).__name__}: {e}",
                          {"exception_type": type(e).__name__})]
        if outcome is True:
            return []
        return [error("custom_validation_failed", "Custom validation failed for node", str(outcome),
                      {"input_name": next(iter(kwargs), None)})]


def validate_prompt(registry: NodeRegistry, prompt: Any,
                    partial_execution_targets: list[str] | None = None) -> ValidationResult:
    """Validate `prompt`; on success `outputs` lists the output nodes to run (coerces constants in place)."""
    broken = _check_structure(prompt, registry)
    if broken is not None:
        return broken
    outputs = []
    for node_id, info in prompt.items():
        if registry.get(info["class_type"]).output_node:
            if partial_execution_targets is None or node_id in partial_execution_targets:
                outputs.append(node_id)
    if not outputs:
        return ValidationResult(False, error("prompt_no_outputs", "Prompt has no outputs",
                                             "The prompt has no output node to run"
                                             + (" among the partial execution targets" if partial_execution_targets is not None else "")))
    validator = _Validator(prompt, registry)
    needed = validator.reachable(outputs)
    in_cycle: set[str] = set()
    for cycle in find_cycles(prompt, needed):
        names = " -> ".join(f"{n} ({prompt[n]['class_type']})" for n in cycle + cycle[:1])
        for node_id in cycle:
            in_cycle.add(node_id)
            validator.errors.setdefault(node_id, []).append(error(
                "dependency_cycle", "Dependency cycle detected", names, {"node_id": node_id, "cycle_nodes": cycle}))
            validator.valid[node_id] = False
    good, node_errors = [], {}
    for output_id in outputs:
        if in_cycle & validator.reachable([output_id]):
            ok = False
        else:
            for node_id in validator.ancestry(output_id):
                if node_id not in validator.valid:
                    try:
                        validator.valid[node_id] = validator.validate_node(node_id)
                    except Exception as e:  # a node's INPUT_TYPES or similar blew up
                        validator.valid[node_id] = False
                        validator.errors.setdefault(node_id, []).append(error(
                            "exception_during_inner_validation", "Exception when validating inner node",
                            f"{type(e).__name__}: {e}", {"exception_type": type(e).__name__}))
            ok = validator.valid[output_id]
        if ok:
            good.append(output_id)
            continue
        for node_id in validator.reachable([output_id]):
            if node_id in validator.errors:
                entry = node_errors.setdefault(node_id, {"errors": validator.errors[node_id], "dependent_outputs": [],
                                                         "class_type": prompt[node_id]["class_type"]})
                entry["dependent_outputs"].append(output_id)
    if not good:
        reasons = []
        for node_id, entry in node_errors.items():
            for err in entry["errors"]:
                reasons.append(f"{entry['class_type']} {node_id}: {err['message']}" + (f" ({err['details']})" if err["details"] else ""))
        return ValidationResult(False, error("prompt_outputs_failed_validation", "Prompt outputs failed validation",
                                             "\n".join(reasons)), node_errors)
    return ValidationResult(True, None, node_errors, good)


# -- coercion ---------------------------------------------------------------------------------------
def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("not a finite number")
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            return _to_int(float(text))
    if isinstance(value, int):
        return value
    raise TypeError(f"expected a number, got {type(value).__name__}")


def _to_float(value: Any) -> float:
    if isinstance(value, (dict, list)) or value is None:
        raise TypeError(f"expected a number, got {type(value).__name__}")
    result = float(value)
    if math.isnan(result):
        raise ValueError("NaN is not a valid value")
    return result


def _to_bool(value: Any) -> bool:
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off", ""):
            return False
        raise ValueError(f"{value!r} is not a boolean")
    if isinstance(value, (dict, list)) or value is None:
        raise TypeError(f"expected a boolean, got {type(value).__name__}")
    return bool(value)


def _fail_string(value: Any) -> str:
    raise TypeError(f"expected a string, got {type(value).__name__}")


def _in_options(value: Any, options: list) -> bool:
    try:
        return value in options
    except TypeError:
        return False


def _type_name(kind: Any) -> str:
    return "COMBO" if isinstance(kind, list) else str(kind)


def _jsonable_config(spec: InputSpec) -> list | None:
    if isinstance(spec.type, list):
        return None if len(spec.type) > COMBO_CONFIG_LIMIT else [spec.type, spec.options]
    return [spec.type, spec.options]


def _short(value: Any) -> Any:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 200 else text[:197] + "..."
