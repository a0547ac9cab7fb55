"""The output cache: id-independent keys, seed-only changes, the RAM budget, no-cache mode."""

from engine.cache import LRUCache, NullCache, value_nbytes
from engine.execution import Executor
from engine.validation import validate_prompt


def run(executor, prompt, recorder=None):
    validation = validate_prompt(executor.registry, prompt)
    assert validation.ok, validation.node_errors
    return executor.execute(prompt, "p", execute_outputs=validation.outputs, on_event=recorder)


def pipeline(seed, ids=("1", "2", "3", "4")):
    a, b, c, d = ids
    return {a: {"class_type": "Counter", "inputs": {"value": 5, "tag": "loader"}},
            b: {"class_type": "Counter", "inputs": {"value": ["" + a, 0], "tag": "encode"}},
            c: {"class_type": "Add", "inputs": {"a": [b, 0], "b": seed}},          # the "sampler"
            d: {"class_type": "Output", "inputs": {"value": [c, 0]}}}


def test_rerun_is_fully_cached(executor, calls, recorder):
    run(executor, pipeline(1))
    calls.clear()
    result = run(executor, pipeline(1), recorder)
    assert calls == {}
    assert set(recorder.of("execution_cached")[0]["nodes"]) == {"1", "2", "3", "4"}
    assert recorder.of("executing") == []          # nothing runs...
    assert recorder.of("executed")[0]["output"] == {"value": [6]}  # ...but the output re-sends its ui
    assert result.outputs == {"4": {"value": [6]}}


def test_seed_change_reruns_only_sampler_and_downstream(executor, calls, recorder):
    run(executor, pipeline(1))
    calls.clear()
    result = run(executor, pipeline(2), recorder)
    assert calls == {"Add": 1, "Output": 1}
    assert [d["node"] for d in recorder.of("executing")] == ["3", "4"]
    assert set(recorder.of("execution_cached")[0]["nodes"]) == {"1", "2"}
    assert result.outputs["4"] == {"value": [7]}


def test_identical_subgraph_under_other_ids_hits(executor, calls):
    run(executor, pipeline(1))
    calls.clear()
    result = run(executor, pipeline(1, ids=("10", "11", "12", "13")))
    assert calls == {} and result.outputs == {"13": {"value": [6]}}


def test_budget_evicts_least_recently_used(registry, calls):
    mib = 1 << 20
    cache = LRUCache(ram_budget_bytes=3 * mib)
    executor = Executor(registry, cache=cache)

    def tensor_prompt(fill):
        return {"t": {"class_type": "Tensor", "inputs": {"n": mib // 4, "fill": fill}},  # 1 MiB of float32
                "o": {"class_type": "Output", "inputs": {"value": ["t", 0]}}}

    for fill in (1.0, 2.0, 3.0, 4.0):
        run(executor, tensor_prompt(fill))
    stats = cache.stats()
    assert stats["bytes"] <= 3 * mib and stats["evictions"] >= 1
    calls.clear()
    run(executor, tensor_prompt(4.0))      # newest: still cached
    assert calls.get("Tensor") is None
    run(executor, tensor_prompt(1.0))      # oldest: evicted, runs again
    assert calls["Tensor"] == 1


def test_no_cache_mode_recomputes(registry, calls):
    executor = Executor(registry, cache=NullCache())
    run(executor, pipeline(1))
    run(executor, pipeline(1))
    assert calls["Counter:loader"] == 2 and executor.cache.stats()["entries"] == 0


def test_stats_count_hits_misses_and_bytes(executor):
    run(executor, pipeline(1))
    first = executor.cache.stats()
    assert first["misses"] == 4 and first["hits"] == 0 and first["entries"] == 4
    run(executor, pipeline(1))
    assert executor.cache.stats()["hits"] == 4


def test_value_nbytes_counts_shared_storage_once():
    import torch

    t = torch.zeros(256, dtype=torch.float32)
    assert value_nbytes([[t, t[:10]], {"samples": t}]) == 1024
    assert value_nbytes([["text", 3, None]]) == 0


def test_reset_forgets_everything(executor, calls):
    run(executor, pipeline(1))
    executor.reset()
    calls.clear()
    run(executor, pipeline(1))
    assert calls["Counter:loader"] == 1
