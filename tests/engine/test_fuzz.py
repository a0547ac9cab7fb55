"""Random prompts never crash validation or execution: they validate, or fail with the dialect's errors."""

import testing_nodes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.cache import LRUCache
from engine.execution import Executor
from engine.validation import validate_prompt
from nodes.registry import NodeRegistry

CLASSES = ["Int", "Add", "Output", "ListOut", "ListSum", "LazySwitch", "Counter", "SumExpand", "Block",
           "Hidden", "Changing", "Validated", "Combo", "FloatIn", "Ghost"]
SAFE = [c for c in CLASSES if c not in ("Raise",)]

values = st.one_of(st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=4), st.booleans(), st.none(),
                   st.lists(st.integers(), max_size=3), st.sampled_from(["a", "b", "z"]))


@st.composite
def prompts(draw):
    n = draw(st.integers(1, 8))
    ids = [str(i) for i in range(n)]
    prompt = {}
    for node_id in ids:
        inputs = {}
        for name in draw(st.lists(st.sampled_from(["value", "a", "b", "n", "count", "values", "switch", "on_true",
                                                   "on_false", "choice", "flag", "ratio", "text", "number", "tag",
                                                   "block", "message"]), max_size=5)):
            if draw(st.booleans()):
                inputs[name] = [draw(st.sampled_from(ids + ["missing"])), draw(st.integers(-1, 2))]
            else:
                inputs[name] = draw(values)
        prompt[node_id] = {"class_type": draw(st.sampled_from(SAFE)), "inputs": inputs}
    return prompt


REGISTRY = NodeRegistry()
REGISTRY.register_mappings({k: v for k, v in testing_nodes.NODE_CLASS_MAPPINGS.items() if k not in ("Slow", "AsyncSleep")},
                           {}, "tests", builtin=True)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prompts())
def test_random_prompts_validate_or_fail_cleanly(prompt):
    result = validate_prompt(REGISTRY, prompt)
    if not result.ok:
        assert set(result.error) == {"type", "message", "details", "extra_info"}
        for entry in result.node_errors.values():
            assert entry["errors"] and all(set(e) == {"type", "message", "details", "extra_info"} for e in entry["errors"])
        return
    run = Executor(REGISTRY, cache=LRUCache(1 << 20)).execute(prompt, "fuzz", execute_outputs=result.outputs)
    assert run.status in ("success", "error")
    if run.status == "error":
        assert run.error["exception_message"] and run.error["traceback"]
