"""Engine overhead per node: validation, cold run, cached re-run, against calling the nodes directly.

    .venv/bin/python bench/engine_overhead.py [--sizes 100 1000 10000] [--repeat 3]

Graphs are chains (each node feeds the next) and wide fan-outs (one source feeding N output nodes) of
nodes that do almost nothing, so what is measured is the engine itself. Times are the best of
`--repeat` runs; "overhead" is (engine time - direct calls) / nodes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("OMP_NUM_THREADS", "1")

from engine.cache import LRUCache  # noqa: E402
from engine.execution import Executor  # noqa: E402
from engine.validation import validate_prompt  # noqa: E402
from nodes.registry import NodeRegistry  # noqa: E402


class BenchAdd:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"a": ("INT", {"default": 0, "min": -(1 << 62), "max": 1 << 62}),
                             "b": ("INT", {"default": 1, "min": -100, "max": 100})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "add"
    CATEGORY = "bench"

    def add(self, a, b):
        return (a + b,)


class BenchSink:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT",)}}

    RETURN_TYPES = ()
    FUNCTION = "sink"
    OUTPUT_NODE = True
    CATEGORY = "bench"

    def sink(self, value):
        return ()


def chain(n: int) -> dict:
    prompt = {"0": {"class_type": "BenchAdd", "inputs": {"a": 0, "b": 1}}}
    for i in range(1, n - 1):
        prompt[str(i)] = {"class_type": "BenchAdd", "inputs": {"a": [str(i - 1), 0], "b": 1}}
    prompt["out"] = {"class_type": "BenchSink", "inputs": {"value": [str(n - 2), 0]}}
    return prompt


def fanout(n: int) -> dict:
    prompt = {"src": {"class_type": "BenchAdd", "inputs": {"a": 0, "b": 1}}}
    for i in range(n - 1):
        prompt[str(i)] = {"class_type": "BenchSink", "inputs": {"value": ["src", 0]}}
    return prompt


def direct(shape: str, n: int) -> None:
    """The same node functions called in a plain loop (the baseline)."""
    add, sink = BenchAdd(), BenchSink()
    if shape == "chain":
        value = add.add(a=0, b=1)[0]
        for _ in range(n - 2):
            value = add.add(a=value, b=1)[0]
        sink.sink(value=value)
    else:
        value = add.add(a=0, b=1)[0]
        for _ in range(n - 1):
            sink.sink(value=value)


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(shape: str, n: int, repeat: int, registry: NodeRegistry) -> dict:
    make = chain if shape == "chain" else fanout
    validate_s = best(lambda: validate_prompt(registry, make(n)), repeat)
    prompt = make(n)
    outputs = validate_prompt(registry, prompt).outputs

    def cold():
        Executor(registry, cache=LRUCache(1 << 30)).execute(prompt, "bench", execute_outputs=outputs)

    cold_s = best(cold, repeat)
    warm_executor = Executor(registry, cache=LRUCache(1 << 30))
    warm_executor.execute(prompt, "bench", execute_outputs=outputs)
    warm_s = best(lambda: warm_executor.execute(prompt, "bench", execute_outputs=outputs), repeat)
    assert warm_executor.cache.stats()["hits"] >= n
    direct_s = best(lambda: direct(shape, n), repeat)
    us = 1e6 / n
    return {"shape": shape, "nodes": n, "validate": validate_s * us, "cold": cold_s * us, "warm": warm_s * us,
            "direct": direct_s * us, "cold_overhead": (cold_s - direct_s) * us, "warm_overhead": warm_s * us}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    registry = NodeRegistry()
    registry.register("BenchAdd", BenchAdd)
    registry.register("BenchSink", BenchSink)
    rows = [measure(shape, n, args.repeat, registry) for shape in ("chain", "fanout") for n in args.sizes]
    print(f"Engine overhead, microseconds per node (best of {args.repeat})")
    print(f"{'graph':<8} {'nodes':>6} | {'validate':>9} {'cold run':>9} {'warm run':>9} {'direct':>8} |"
          f" {'cold overhead':>13} {'warm overhead':>13}")
    print("-" * 92)
    for r in rows:
        print(f"{r['shape']:<8} {r['nodes']:>6} | {r['validate']:>9.2f} {r['cold']:>9.2f} {r['warm']:>9.2f}"
              f" {r['direct']:>8.2f} | {r['cold_overhead']:>13.2f} {r['warm_overhead']:>13.2f}")
    print("\nGoal at 10,000 nodes: cold overhead < 50 us/node, warm (all cached) re-run < 5 us/node.")
    big = [r for r in rows if r["nodes"] == max(args.sizes)]
    ok = all(r["cold_overhead"] < 50 and r["warm_overhead"] < 5 for r in big)
    print("Goal met." if ok else "Goal NOT met.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
