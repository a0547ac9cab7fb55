"""The dialect's execution semantics, run through the real Executor."""

import threading

import pytest
import testing_nodes

from engine.validation import validate_prompt
from nodes.context import InterruptFlag


def run(executor, prompt, recorder=None, prompt_id="p", **kw):
    validation = validate_prompt(executor.registry, prompt)
    assert validation.ok, validation.node_errors
    return executor.execute(prompt, prompt_id, execute_outputs=validation.outputs, on_event=recorder, **kw)


def out(result, node_id):
    return result.outputs[node_id]["value"]


def test_dependency_order_and_event_sequence(executor, recorder):
    prompt = {"1": {"class_type": "Int", "inputs": {"value": 2}},
              "2": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": 3}},
              "3": {"class_type": "Output", "inputs": {"value": ["2", 0]}}}
    result = run(executor, prompt, recorder)
    assert result.status == "success" and out(result, "3") == [5]
    assert recorder.types() == ["execution_start", "execution_cached", "executing", "executing", "executing",
                                "executed", "execution_success"]
    assert [d["node"] for d in recorder.of("executing")] == ["1", "2", "3"]
    assert recorder.of("executed")[0] == {"node": "3", "display_node": "3", "output": {"value": [5]}, "prompt_id": "p"}
    states = recorder.of("progress_state")[-1]["nodes"]
    assert {k: v["state"] for k, v in states.items()} == {"1": "finished", "2": "finished", "3": "finished"}
    assert [m[0] for m in result.messages] == ["execution_start", "execution_cached", "execution_success"]


def test_list_semantics(executor):
    prompt = {"1": {"class_type": "ListOut", "inputs": {"count": 4}},                 # [0,1,2,3]
              "2": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": 10}},          # mapped: [10..13]
              "3": {"class_type": "ListSum", "inputs": {"values": ["2", 0]}},          # INPUT_IS_LIST: 46
              "4": {"class_type": "Output", "inputs": {"value": ["3", 0]}},
              "5": {"class_type": "Output", "inputs": {"value": ["2", 0]}}}
    result = run(executor, prompt)
    assert out(result, "4") == [46]
    assert out(result, "5") == [10, 11, 12, 13]  # an output node runs once per list item; ui lists merge


def test_shorter_list_repeats_its_last_item(executor):
    prompt = {"1": {"class_type": "ListOut", "inputs": {"count": 3}},
              "2": {"class_type": "ListOut", "inputs": {"count": 1}},
              "3": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": ["2", 0]}},
              "4": {"class_type": "Output", "inputs": {"value": ["3", 0]}}}
    assert out(run(executor, prompt), "4") == [0, 1, 2]


def test_lazy_input_only_evaluates_the_branch_asked_for(executor, calls):
    prompt = {"1": {"class_type": "Int", "inputs": {"value": 7}},
              "2": {"class_type": "Raise", "inputs": {"value": 1}},   # would fail if it ran
              "3": {"class_type": "LazySwitch", "inputs": {"switch": True, "on_true": ["1", 0], "on_false": ["2", 0]}},
              "4": {"class_type": "Output", "inputs": {"value": ["3", 0]}}}
    result = run(executor, prompt)
    assert result.status == "success" and out(result, "4") == [7]
    assert "2" not in result.executed


def test_node_expansion(executor, calls, recorder):
    prompt = {"1": {"class_type": "SumExpand", "inputs": {"n": 5}},
              "2": {"class_type": "Output", "inputs": {"value": ["1", 0]}}}
    result = run(executor, prompt, recorder)
    assert out(result, "2") == [10]
    assert calls["Add"] == 4
    expanded = [m for m in result.meta.values() if m["parent_node"] == "1"]
    assert len(expanded) == 5 and all(m["display_node"] == "1" for m in expanded)
    # the expanded nodes show as their parent in events
    assert {d["node"] for d in recorder.of("executing")} == {"1", "2"}
    calls.clear()
    prompt["2"]["inputs"]["value"] = ["1", 0]
    prompt["3"] = {"class_type": "Output", "inputs": {"value": ["1", 0]}}
    result = run(executor, prompt)  # same expansion: everything cached
    assert out(result, "3") == [10] and calls.get("SumExpand") is None and calls.get("Add") is None


def test_execution_blocker(executor, recorder):
    silent = {"1": {"class_type": "Block", "inputs": {"value": 3, "block": True, "message": ""}},
              "2": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": 1}},
              "3": {"class_type": "Output", "inputs": {"value": ["2", 0]}}}
    result = run(executor, silent, recorder)
    assert result.status == "success" and "3" not in result.outputs
    assert recorder.of("execution_error") == []
    loud = {k: {**v, "inputs": dict(v["inputs"])} for k, v in silent.items()}
    loud["1"]["inputs"]["message"] = "blocked on purpose"
    recorder.events.clear()
    result = run(executor, loud, recorder)
    errors = recorder.of("execution_error")
    assert result.status == "success" and len(errors) == 1
    assert errors[0]["exception_type"] == "ExecutionBlocked" and errors[0]["node_id"] == "2"


def test_blocker_inside_a_list_blocks_only_its_item(executor):
    prompt = {"1": {"class_type": "ListOut", "inputs": {"count": 3}},
              "2": {"class_type": "Block", "inputs": {"value": ["1", 0], "block": False, "message": ""}},
              "3": {"class_type": "Output", "inputs": {"value": ["2", 0]}}}
    assert out(run(executor, prompt), "3") == [0, 1, 2]


def test_async_nodes_run_side_by_side(executor):
    spans = []

    class Stamp(testing_nodes.AsyncSleep):
        async def run(self, value, seconds):
            import asyncio
            import time
            start = time.monotonic()
            await asyncio.sleep(seconds)
            spans.append((start, time.monotonic()))
            return (value,)

    executor.registry.register("Stamp", Stamp)
    prompt = {"1": {"class_type": "Stamp", "inputs": {"value": 1, "seconds": 0.3}},
              "2": {"class_type": "Stamp", "inputs": {"value": 2, "seconds": 0.3}},
              "3": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": ["2", 0]}},
              "4": {"class_type": "Output", "inputs": {"value": ["3", 0]}}}
    result = run(executor, prompt)
    assert out(result, "4") == [3]
    (s1, e1), (s2, e2) = spans
    assert s2 < e1 and s1 < e2  # the two sleeps overlapped


def test_hidden_inputs(executor):
    prompt = {"h": {"class_type": "Hidden", "inputs": {}}}
    result = executor.execute(prompt, "p", extra_data={"extra_pnginfo": {"workflow": {"nodes": []}}})
    ui = result.outputs["h"]
    assert ui == {"uid": ["h"], "prompt_nodes": ["h"], "extra": [{"workflow": {"nodes": []}}], "dyn_has_self": [True]}


def test_is_changed_nan_always_runs_and_not_idempotent(executor, calls):
    prompt = {"1": {"class_type": "Changing", "inputs": {"value": 1}},
              "2": {"class_type": "Output", "inputs": {"value": ["1", 0]}}}
    run(executor, prompt)
    run(executor, prompt)
    assert calls["Changing"] == 2
    twins = {"a": {"class_type": "NotIdempotent", "inputs": {"value": 1}},
             "b": {"class_type": "NotIdempotent", "inputs": {"value": 1}},
             "oa": {"class_type": "Output", "inputs": {"value": ["a", 0]}},
             "ob": {"class_type": "Output", "inputs": {"value": ["b", 0]}}}
    run(executor, twins)
    assert calls["NotIdempotent"] == 2  # identical inputs, but keyed by node id


def test_node_error_reports_traceback_and_inputs(executor, recorder):
    prompt = {"1": {"class_type": "Int", "inputs": {"value": 4}},
              "2": {"class_type": "Raise", "inputs": {"value": ["1", 0]}},
              "3": {"class_type": "Output", "inputs": {"value": ["2", 0]}}}
    result = run(executor, prompt, recorder)
    assert result.status == "error" and result.status_str == "error"
    err = recorder.of("execution_error")[0]
    assert err["node_id"] == "2" and err["node_type"] == "Raise"
    assert err["exception_message"] == "boom 4" and err["exception_type"] == "builtins.ValueError"
    assert any("boom" in line for line in err["traceback"])
    assert err["current_inputs"] == {"value": ["4"]} and err["executed"] == ["1"]
    assert "execution_success" not in recorder.types()
    fixed = dict(prompt, **{"2": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": 1}}})
    assert run(executor, fixed).status == "success"


def test_interrupt_mid_run_then_clean_next_run(executor, recorder):
    flag = InterruptFlag()
    started = threading.Event()

    def on_event(event):
        recorder(event)
        if event.type == "progress":
            started.set()
            flag.set()  # interrupt as soon as the node reports its first step

    prompt = {"1": {"class_type": "Slow", "inputs": {"value": 1, "steps": 50, "step_seconds": 0.01}},
              "2": {"class_type": "Output", "inputs": {"value": ["1", 0]}}}
    result = run(executor, prompt, on_event, interrupt=flag)
    assert started.is_set() and result.status == "interrupted"
    interrupted = recorder.of("execution_interrupted")[0]
    assert interrupted["node_id"] == "1" and interrupted["node_type"] == "Slow"
    assert len(recorder.of("progress")) == 1
    recorder.events.clear()
    result = run(executor, prompt, recorder, interrupt=flag)  # the flag is cleared at the start of a run
    assert result.status == "success" and len(recorder.of("progress")) == 50


def test_progress_events(executor, recorder):
    prompt = {"1": {"class_type": "Slow", "inputs": {"value": 1, "steps": 3, "step_seconds": 0.0}},
              "2": {"class_type": "Output", "inputs": {"value": ["1", 0]}}}
    run(executor, prompt, recorder)
    assert [(d["value"], d["max"], d["node"]) for d in recorder.of("progress")] == [(1, 3, "1"), (2, 3, "1"), (3, 3, "1")]


def test_unknown_node_in_unvalidated_prompt_fails_cleanly(executor, recorder):
    result = executor.execute({"1": {"class_type": "Output", "inputs": {"value": ["2", 0]}},
                               "2": {"class_type": "Ghost", "inputs": {}}}, "p", execute_outputs=["1"],
                              on_event=recorder)
    assert result.status == "error" and "Ghost" in recorder.of("execution_error")[0]["exception_message"]


@pytest.mark.parametrize("n", [3])
def test_partial_execution_runs_only_the_target(executor, calls, n):
    prompt = {"1": {"class_type": "Counter", "inputs": {"value": 1, "tag": "a"}},
              "2": {"class_type": "Counter", "inputs": {"value": 2, "tag": "b"}},
              "3": {"class_type": "Output", "inputs": {"value": ["1", 0]}},
              "4": {"class_type": "Output", "inputs": {"value": ["2", 0]}}}
    validation = validate_prompt(executor.registry, prompt, partial_execution_targets=["4"])
    result = executor.execute(prompt, "p", execute_outputs=validation.outputs)
    assert list(result.outputs) == ["4"] and calls == {"Counter:b": 1, "Output": 1}


def test_execute_works_inside_a_running_event_loop(executor):
    import asyncio

    prompt = {"1": {"class_type": "Int", "inputs": {"value": 3}},
              "2": {"class_type": "Output", "inputs": {"value": ["1", 0]}}}

    async def inside():  # e.g. a notebook cell, or a pack calling the engine from async code
        return run(executor, prompt)

    assert out(asyncio.run(inside()), "2") == [3]
