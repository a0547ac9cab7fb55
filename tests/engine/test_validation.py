"""Every validation error type of the dialect, and which outputs survive."""

from engine.validation import validate_prompt


def errors_of(result, node_id):
    return [e["type"] for e in result.node_errors[node_id]["errors"]]


def test_valid_prompt_lists_its_outputs(registry):
    prompt = {"1": {"class_type": "Int", "inputs": {"value": 1}},
              "2": {"class_type": "Output", "inputs": {"value": ["1", 0]}}}
    result = validate_prompt(registry, prompt)
    assert result.ok and result.outputs == ["2"] and result.node_errors == {}


def test_structure_errors(registry):
    assert validate_prompt(registry, []).error["type"] == "invalid_prompt"
    assert validate_prompt(registry, {"1": "x"}).error["type"] == "invalid_prompt"
    missing = validate_prompt(registry, {"1": {"inputs": {}}})
    assert missing.error["type"] == "invalid_prompt" and "class_type" in missing.error["message"]
    bad_inputs = validate_prompt(registry, {"1": {"class_type": "Int", "inputs": [1]}})
    assert bad_inputs.error["type"] == "invalid_prompt"


def test_missing_node_type_names_all_missing_types(registry):
    prompt = {"1": {"class_type": "Nope", "inputs": {}, "_meta": {"title": "My Nope"}},
              "2": {"class_type": "AlsoNope", "inputs": {}},
              "3": {"class_type": "Output", "inputs": {"value": ["1", 0]}}}
    result = validate_prompt(registry, prompt)
    assert not result.ok
    assert result.error["type"] == "missing_node_type"
    assert result.error["extra_info"]["node_title"] == "My Nope"
    assert result.error["extra_info"]["missing_node_types"] == ["AlsoNope", "Nope"]
    assert set(result.node_errors) == {"1", "2"}


def test_no_outputs(registry):
    result = validate_prompt(registry, {"1": {"class_type": "Int", "inputs": {"value": 1}}})
    assert result.error["type"] == "prompt_no_outputs"
    partial = validate_prompt(registry, {"1": {"class_type": "Int", "inputs": {"value": 1}},
                                         "2": {"class_type": "Output", "inputs": {"value": ["1", 0]}}},
                              partial_execution_targets=[])
    assert partial.error["type"] == "prompt_no_outputs"


def test_required_input_missing(registry):
    result = validate_prompt(registry, {"1": {"class_type": "Add", "inputs": {"a": 1}},
                                        "2": {"class_type": "Output", "inputs": {"value": ["1", 0]}}})
    assert not result.ok
    assert result.error["type"] == "prompt_outputs_failed_validation"
    assert errors_of(result, "1") == ["required_input_missing"]
    assert result.node_errors["1"]["errors"][0]["details"] == "b"
    assert result.node_errors["1"]["dependent_outputs"] == ["2"]
    assert result.node_errors["1"]["class_type"] == "Add"
    assert "2" not in result.node_errors  # downstream nodes have no reasons of their own


def test_bad_links(registry):
    base = {"1": {"class_type": "Int", "inputs": {"value": 1}}}
    for bad in (["1"], ["1", 0, 0], [1, 0], ["9", 0], ["1", 5]):
        prompt = dict(base, **{"2": {"class_type": "Add", "inputs": {"a": bad, "b": 1}},
                               "3": {"class_type": "Output", "inputs": {"value": ["2", 0]}}})
        result = validate_prompt(registry, prompt)
        assert errors_of(result, "2") == ["bad_linked_input"], bad


def test_type_mismatch_and_unions(registry):
    prompt = {"1": {"class_type": "Combo", "inputs": {"choice": "a", "flag": False, "ratio": 0.5, "text": ""}},
              "2": {"class_type": "ImageIn", "inputs": {"image": ["1", 0]}},
              "3": {"class_type": "Output", "inputs": {"value": ["2", 0]}}}
    result = validate_prompt(registry, prompt)
    assert errors_of(result, "2") == ["return_type_mismatch"]
    assert "received_type(STRING) mismatch input_type(IMAGE)" in result.node_errors["2"]["errors"][0]["details"]
    union = {"1": {"class_type": "Int", "inputs": {"value": 1}},
             "2": {"class_type": "FloatIn", "inputs": {"number": ["1", 0]}},
             "3": {"class_type": "Output", "inputs": {"value": ["2", 0]}}}  # Output takes "*"
    assert validate_prompt(registry, union).ok


def test_coercion_and_conversion_errors(registry):
    prompt = {"1": {"class_type": "Combo", "inputs": {"choice": "b", "flag": "false", "ratio": "0.25", "text": 5}},
              "2": {"class_type": "Int", "inputs": {"value": "7"}},
              "3": {"class_type": "Output", "inputs": {"value": ["1", 0]}},
              "4": {"class_type": "Output", "inputs": {"value": ["2", 0]}}}
    assert validate_prompt(registry, prompt).ok
    assert prompt["1"]["inputs"] == {"choice": "b", "flag": False, "ratio": 0.25, "text": "5"}
    assert prompt["2"]["inputs"]["value"] == 7
    for value in ("abc", None, {"x": 1}, float("inf")):
        bad = {"1": {"class_type": "Int", "inputs": {"value": value}},
               "2": {"class_type": "Output", "inputs": {"value": ["1", 0]}}}
        assert errors_of(validate_prompt(registry, bad), "1") == ["invalid_input_type"], value
    bad_bool = {"1": {"class_type": "Combo", "inputs": {"choice": "a", "flag": "maybe", "ratio": 0.1, "text": ""}},
                "2": {"class_type": "Output", "inputs": {"value": ["1", 0]}}}
    assert errors_of(validate_prompt(registry, bad_bool), "1") == ["invalid_input_type"]


def test_min_max_and_combo(registry):
    def check(inputs):
        prompt = {"1": {"class_type": "Combo", "inputs": inputs},
                  "2": {"class_type": "Output", "inputs": {"value": ["1", 0]}}}
        return validate_prompt(registry, prompt)

    ok = {"choice": "a", "flag": True, "ratio": 0.5, "text": ""}
    assert errors_of(check(dict(ok, ratio=-0.1)), "1") == ["value_smaller_than_min"]
    assert errors_of(check(dict(ok, ratio=1.5)), "1") == ["value_bigger_than_max"]
    result = check(dict(ok, choice="z"))
    assert errors_of(result, "1") == ["value_not_in_list"]
    assert "'z' not in" in result.node_errors["1"]["errors"][0]["details"]


def test_custom_validation(registry):
    def check(value):
        return validate_prompt(registry, {"1": {"class_type": "Validated", "inputs": {"value": value}},
                                          "2": {"class_type": "Output", "inputs": {"value": ["1", 0]}}})

    assert check(4).ok
    result = check(3)
    assert errors_of(result, "1") == ["custom_validation_failed"]
    assert "must be even" in result.node_errors["1"]["errors"][0]["details"]
    # VALIDATE_INPUTS consumes `value`, so min/max are left to it (the dialect's rule)
    assert check(12).ok


def test_cycle_is_reported_with_its_nodes(registry):
    prompt = {"1": {"class_type": "Add", "inputs": {"a": ["2", 0], "b": 1}},
              "2": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": 1}},
              "3": {"class_type": "Output", "inputs": {"value": ["2", 0]}}}
    result = validate_prompt(registry, prompt)
    assert not result.ok
    cycle_errors = [e for nid in ("1", "2") for e in result.node_errors[nid]["errors"]]
    assert {e["type"] for e in cycle_errors} == {"dependency_cycle"}
    assert set(cycle_errors[0]["extra_info"]["cycle_nodes"]) == {"1", "2"}
    self_loop = {"1": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": 1}},
                 "2": {"class_type": "Output", "inputs": {"value": ["1", 0]}}}
    assert errors_of(validate_prompt(registry, self_loop), "1") == ["dependency_cycle"]


def test_long_chain_has_no_recursion_limit(registry):
    prompt = {"0": {"class_type": "Int", "inputs": {"value": 0}}}
    for i in range(1, 5000):
        prompt[str(i)] = {"class_type": "Add", "inputs": {"a": [str(i - 1), 0], "b": 0}}
    prompt["out"] = {"class_type": "Output", "inputs": {"value": ["4999", 0]}}
    assert validate_prompt(registry, prompt).ok


def test_only_needed_nodes_are_validated_and_valid_outputs_survive(registry):
    prompt = {"1": {"class_type": "Int", "inputs": {"value": 1}},
              "2": {"class_type": "Output", "inputs": {"value": ["1", 0]}},
              "3": {"class_type": "Add", "inputs": {"a": 1}},             # broken, feeds output 4
              "4": {"class_type": "Output", "inputs": {"value": ["3", 0]}},
              "5": {"class_type": "Add", "inputs": {}}}                     # broken, feeds nothing
    result = validate_prompt(registry, prompt)
    assert result.ok and result.outputs == ["2"]
    assert set(result.node_errors) == {"3"}
    assert result.node_errors["3"]["dependent_outputs"] == ["4"]


def test_partial_execution_targets(registry):
    prompt = {"1": {"class_type": "Int", "inputs": {"value": 1}},
              "2": {"class_type": "Output", "inputs": {"value": ["1", 0]}},
              "3": {"class_type": "Output", "inputs": {"value": ["1", 0]}}}
    assert validate_prompt(registry, prompt, partial_execution_targets=["3"]).outputs == ["3"]


def test_exception_in_input_types_is_reported(registry):
    class Broken:
        @classmethod
        def INPUT_TYPES(cls):
            raise RuntimeError("cannot list")

        RETURN_TYPES = ("INT",)
        FUNCTION = "run"

    registry.register("Broken", Broken)
    result = validate_prompt(registry, {"1": {"class_type": "Broken", "inputs": {}},
                                        "2": {"class_type": "Output", "inputs": {"value": ["1", 0]}}})
    assert errors_of(result, "1") == ["exception_during_inner_validation"]


def test_shared_source_at_different_depths_validates_first(registry):
    # "1" feeds "4" directly and "2" -> "3" -> "4"; it must be validated before "2" whichever link is seen first
    prompt = {"1": {"class_type": "Int", "inputs": {"value": 1}},
              "2": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": 1}},
              "3": {"class_type": "Add", "inputs": {"a": ["2", 0], "b": 1}},
              "4": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": ["3", 0]}},
              "5": {"class_type": "Output", "inputs": {"value": ["4", 0]}}}
    result = validate_prompt(registry, prompt)
    assert result.ok, result.node_errors
