"""Running a validated prompt: dependency order, the dialect's node semantics, caching, events.

`Executor.execute()` is the engine's one entry point for a run. It is synchronous (the server calls
it from a worker thread) and drives an asyncio loop of its own so that async node functions can
run side by side, as they do in the dialect.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
from collections.abc import Callable
from typing import Any

from engine import events as ev
from engine.cache import KeyInterner, LRUCache, OutputCache
from engine.events import Event, EventSink
from engine.graph import DependencyCycleError, DuplicateNodeError, DynamicPrompt, ExecutionList
from engine.progress import ProgressTracker
from engine.results import first_blocker, merge_results
from engine.run_report import RunResult, blocked_error, interrupted, node_error
from engine.signature import KeyBuilder, unwrap_constant
from nodes import context
from nodes.graph_builder import GraphBuilder
from nodes.interface import ExecutionBlocker, NodeDef, is_link
from nodes.registry import NodeRegistry

log = logging.getLogger("loom.engine")


class _NodeFailed(Exception):
    def __init__(self, node_id: str, error: BaseException):
        self.node_id = node_id
        self.error = error


_FINISHED, _PENDING = "finished", "pending"


class _Run:
    """The state of one execution of one prompt."""

    def __init__(self, executor: Executor, prompt: dict, prompt_id: str, extra_data: dict,
                 output_ids: list[str], emit: EventSink, interrupt: context.InterruptFlag):
        self.executor = executor
        self.prompt_id = prompt_id
        self.extra_data = extra_data
        self.emit = emit
        self.interrupt = interrupt
        self.dynprompt = DynamicPrompt(prompt)
        self.output_ids = list(output_ids)
        registry = executor.registry
        self.node_defs: dict[str, NodeDef] = {}
        for info in prompt.values():
            class_type = info.get("class_type")
            if class_type not in self.node_defs:
                node_def = registry.get(class_type)
                if node_def is not None:
                    self.node_defs[class_type] = node_def
        self.keys = KeyBuilder(self.dynprompt, self.node_defs, executor.interner)
        self.values: dict[str, list[list[Any]]] = {}   # node id -> per output slot, the list of values
        self.ui: dict[str, dict] = {}
        self.executed: list[str] = []
        self.executed_set: set[str] = set()
        self.lazy_done: dict[str, set[str]] = {}
        self.pending_expansion: dict[str, list] = {}
        self.async_tasks: dict[str, asyncio.Task] = {}
        self.blocker_reported: set[int] = set()
        self.progress = ProgressTracker(prompt_id, self.dynprompt, emit)
        self._lazy_cache: dict[str, frozenset[str]] = {}
        self._specs: dict[str, dict] = {}

    # -- helpers ----------------------------------------------------------------------------------
    def node_def(self, node_id: str) -> NodeDef:
        class_type = self.dynprompt.get_node(node_id)["class_type"]
        node_def = self.node_defs.get(class_type)
        if node_def is None:
            node_def = self.executor.registry.get(class_type)
            if node_def is None:
                raise KeyError(f"Node type {class_type!r} is not installed")
            self.node_defs[class_type] = node_def
        return node_def

    def specs(self, class_type: str) -> dict:
        specs = self._specs.get(class_type)
        if specs is None:
            specs = self.node_defs[class_type].inputs()
            self._specs[class_type] = specs
        return specs

    def lazy_inputs(self, node_id: str) -> frozenset[str]:
        lazy = self._lazy_cache.get(node_id)
        if lazy is None:
            class_type = self.dynprompt.get_node(node_id)["class_type"]
            if self.executor.registry.get(class_type) is None:
                return frozenset()  # reported when the node itself runs
            self.node_def(node_id)
            lazy = frozenset(n for n, s in self.specs(class_type).items() if s.lazy)
            self._lazy_cache[node_id] = lazy
        return lazy

    def is_available(self, node_id: str) -> bool:
        return node_id in self.values

    def display_id(self, node_id: str) -> str:
        return self.dynprompt.get_display_node_id(node_id)

    # -- the run ----------------------------------------------------------------------------------
    async def run(self) -> RunResult:
        result = RunResult(self.prompt_id, "success")
        self._message(result, ev.EXECUTION_START, {"prompt_id": self.prompt_id, "timestamp": ev.timestamp_ms()})
        try:
            self.keys.compute(self.output_ids)
        except DependencyCycleError as e:
            return self._fail(result, e.cycle[0], e)
        cached_ids = self._load_cached(list(self.keys.keys))
        result.cached = cached_ids
        self._message(result, ev.EXECUTION_CACHED,
                      {"nodes": cached_ids, "prompt_id": self.prompt_id, "timestamp": ev.timestamp_ms()})
        output_set = set(self.output_ids)
        self.queue = ExecutionList(self.dynprompt, self.is_available, self.lazy_inputs, output_set)
        for node_id in self.output_ids:
            if node_id in self.values:  # a cached output only re-sends its ui
                if node_id in self.ui:
                    self._send_executed(node_id, self.ui[node_id])
                self._mark_executed(node_id)
            else:
                self.queue.add_node(node_id)
        try:
            await self._drain()
        except context.InterruptProcessing:
            return self._interrupted(result)
        except _NodeFailed as failure:
            if isinstance(failure.error, context.InterruptProcessing):
                return self._interrupted(result, failure.node_id)
            return self._fail(result, failure.node_id, failure.error)
        self._finish(result)
        self._message(result, ev.EXECUTION_SUCCESS, {"prompt_id": self.prompt_id, "timestamp": ev.timestamp_ms()})
        return result

    def _load_cached(self, node_ids: list[str]) -> list[str]:
        """Take every cache hit among `node_ids` into this run; returns the ids that hit."""
        cache = self.executor.cache
        keys = self.keys.keys
        hits = []
        for node_id in node_ids:
            entry = cache.get(keys[node_id])
            if entry is not None:
                self.values[node_id] = entry.outputs
                if entry.ui is not None:
                    self.ui[node_id] = entry.ui
                hits.append(node_id)
        return hits

    async def _drain(self) -> None:
        queue = self.queue
        while not queue.is_empty():
            self.interrupt.check()
            node_id = queue.next_ready()
            if node_id is None:
                if self.async_tasks:
                    await asyncio.wait(list(self.async_tasks.values()), return_when=asyncio.FIRST_COMPLETED)
                    continue
                stuck = queue.stuck_nodes()
                raise _NodeFailed(stuck[0], DependencyCycleError(stuck))
            try:
                state = await self._execute(node_id)
            except _NodeFailed:
                raise
            except (context.InterruptProcessing, KeyboardInterrupt) as e:
                raise _NodeFailed(node_id, context.InterruptProcessing(str(e))) from e
            except Exception as e:
                raise _NodeFailed(node_id, e) from e
            if state == _FINISHED:
                queue.complete(node_id)
            else:
                queue.requeue(node_id)
        for task in self.async_tasks.values():  # pragma: no cover - defensive
            task.cancel()

    # -- one node ---------------------------------------------------------------------------------
    async def _execute(self, node_id: str) -> str:
        info = self.dynprompt.get_node(node_id)
        node_def = self.node_def(node_id)
        if node_id in self.values:  # a cached node staged only because it is an output
            if node_id in self.ui:
                self._send_executed(node_id, self.ui[node_id])
            self._mark_executed(node_id)
            return _FINISHED
        if node_id in self.async_tasks:
            return self._finish_async(node_id, node_def)
        if node_id in self.pending_expansion:
            return self._finish_expansion(node_id, node_def)

        inputs, missing = self._gather_inputs(node_id, info["inputs"], node_def)
        if node_def.has_lazy_check:
            needed = self._lazy_needs(node_id, node_def, inputs, missing)
            if needed:
                for name in needed:
                    self.queue.add_strong_link(info["inputs"][name][0], node_id)
                return _PENDING

        self.progress.start(node_id)
        display = self.display_id(node_id)
        self.emit(Event(ev.EXECUTING, {"node": display, "display_node": display, "prompt_id": self.prompt_id}))
        self._current_inputs = inputs
        instance = self.executor.instance(node_id, node_def)
        func = getattr(instance, node_def.function_name)
        results = self._map_over_lists(node_id, node_def, func, inputs, expanding=True)
        if any(inspect.isawaitable(r) for r in results):
            self._start_async(node_id, node_def, results)
            return _PENDING
        return self._complete(node_id, node_def, results)

    def _complete(self, node_id: str, node_def: NodeDef, results: list) -> str:
        expansions = [r for r in results if isinstance(r, dict) and "expand" in r]
        if expansions:
            return self._expand(node_id, node_def, results)
        outputs, ui = merge_results(node_def, results)
        self._store(node_id, outputs, ui)
        return _FINISHED

    def _store(self, node_id: str, outputs: list[list[Any]], ui: dict | None) -> None:
        self.values[node_id] = outputs
        if ui:
            self.ui[node_id] = ui
            self._send_executed(node_id, ui)
        self.executor.cache.put(self.keys.key(node_id), outputs, ui or None)
        self._mark_executed(node_id)
        self.progress.finish(node_id)

    def _mark_executed(self, node_id: str) -> None:
        if node_id not in self.executed_set:
            self.executed_set.add(node_id)
            self.executed.append(node_id)

    def _send_executed(self, node_id: str, ui: dict) -> None:
        display = self.display_id(node_id)
        self.emit(Event(ev.EXECUTED, {"node": display, "display_node": display, "output": ui,
                                      "prompt_id": self.prompt_id}))

    # -- inputs -----------------------------------------------------------------------------------
    def _gather_inputs(self, node_id: str, raw_inputs: dict, node_def: NodeDef) -> tuple[dict, set]:
        """Each input as a list of values (the dialect's list semantics), plus the names not yet evaluated."""
        specs = self.specs(node_def.class_type)
        inputs: dict[str, list] = {}
        missing: set[str] = set()
        for name, value in raw_inputs.items():
            spec = specs.get(name)
            if is_link(value) and not (spec is not None and spec.raw_link):
                source_values = self.values.get(value[0])
                if source_values is None and not self.dynprompt.has_node(value[0]):
                    raise KeyError(f"input '{name}' links to node {value[0]}, which does not exist")
                if source_values is None:
                    inputs[name] = [None]
                    missing.add(name)
                else:
                    inputs[name] = source_values[int(value[1])]
            elif spec is not None and spec.section != "hidden":
                inputs[name] = [unwrap_constant(value)]
        for name, spec in specs.items():
            if spec.section == "hidden":
                inputs[name] = [self._hidden_value(spec.type, node_id)]
        return inputs, missing

    def _hidden_value(self, kind: str, node_id: str) -> Any:
        if kind == "PROMPT":
            return self.dynprompt.get_original_prompt()
        if kind == "DYNPROMPT":
            return self.dynprompt
        if kind == "EXTRA_PNGINFO":
            return self.extra_data.get("extra_pnginfo")
        if kind == "UNIQUE_ID":
            return node_id
        if kind == "AUTH_TOKEN_COMFY_ORG":
            return self.extra_data.get("auth_token_comfy_org")
        if kind == "API_KEY_COMFY_ORG":
            return self.extra_data.get("api_key_comfy_org")
        return None

    def _lazy_needs(self, node_id: str, node_def: NodeDef, inputs: dict, missing: set[str]) -> list[str]:
        instance = self.executor.instance(node_id, node_def)
        asked = self._map_over_lists(node_id, node_def, instance.check_lazy_status, inputs, expanding=False)
        names: list[str] = []
        for result in asked:
            for name in result or ():
                if name in missing and name not in names:
                    names.append(name)
        done = self.lazy_done.setdefault(node_id, set())
        names = [n for n in names if n not in done]
        done.update(names)
        return names

    # -- calling the function ----------------------------------------------------------------------
    def _map_over_lists(self, node_id: str, node_def: NodeDef, func: Callable, inputs: dict,
                        expanding: bool) -> list:
        """Call `func` once (INPUT_IS_LIST) or once per list index, the dialect's broadcasting."""
        if node_def.input_is_list:
            calls = [inputs]
        else:
            lengths = [len(v) for v in inputs.values()]
            count = max(lengths) if lengths else 1
            if lengths and min(lengths) == 0:
                count = 0
            calls = [{k: v[i if i < len(v) else -1] for k, v in inputs.items()} for i in range(count)]
        results = []
        real_id = self.dynprompt.get_real_node_id(node_id)
        for index, kwargs in enumerate(calls):
            self.interrupt.check()
            blocker = first_blocker(kwargs, node_def.input_is_list)
            if blocker is not None:
                self._report_blocker(node_id, blocker)
                results.append(ExecutionBlocker(None))
                continue
            ctx = context.NodeContext(self.prompt_id, self.display_id(node_id), real_id, self.interrupt,
                                      self.progress.on_progress, index)
            token = context.set_current(ctx)
            try:
                if expanding:
                    GraphBuilder.set_default_prefix(node_id, index, 0)
                results.append(func(**kwargs))
            finally:
                context.reset_current(token)
        return results

    def _start_async(self, node_id: str, node_def: NodeDef, results: list) -> None:
        async def gather() -> list:
            return [await r if inspect.isawaitable(r) else r for r in results]

        task = asyncio.get_running_loop().create_task(gather())
        unblock = self.queue.add_external_block(node_id)
        task.add_done_callback(lambda _t: unblock())
        self.async_tasks[node_id] = task

    def _finish_async(self, node_id: str, node_def: NodeDef) -> str:
        task = self.async_tasks.pop(node_id)
        results = task.result()  # re-raises the node's exception
        return self._complete(node_id, node_def, results)

    # -- results ----------------------------------------------------------------------------------
    def _report_blocker(self, node_id: str, blocker: ExecutionBlocker) -> None:
        """A blocker with a message is reported once, at the first node it stops; after that it is silent."""
        if blocker.message is not None and id(blocker) not in self.blocker_reported:
            self.blocker_reported.add(id(blocker))
            self.emit(Event(ev.EXECUTION_ERROR, blocked_error(
                self.prompt_id, self.display_id(node_id), self.dynprompt.get_node(node_id)["class_type"],
                self.executed, blocker.message)))

    # -- expansion --------------------------------------------------------------------------------
    def _expand(self, node_id: str, node_def: NodeDef, results: list) -> str:
        display = self.display_id(node_id)
        new_outputs = []
        new_ids = []
        for r in results:
            if not (isinstance(r, dict) and "expand" in r):
                continue
            for new_id, new_info in r["expand"].items():
                if self.dynprompt.has_node(new_id):
                    raise DuplicateNodeError(f"Node {new_id} already exists (expansion of {node_id})")
                new_info = dict(new_info)
                new_info.setdefault("inputs", {})
                self.dynprompt.add_ephemeral_node(new_id, new_info, node_id,
                                                  new_info.get("override_display_id") or display)
                new_ids.append(new_id)
                new_def = self.executor.registry.get(new_info.get("class_type"))
                if new_def is None:
                    raise KeyError(f"Expansion of node {node_id} uses unknown node type {new_info.get('class_type')!r}")
                self.node_defs.setdefault(new_def.class_type, new_def)
                if new_def.output_node:
                    new_outputs.append(new_id)
        self.pending_expansion[node_id] = results
        self.keys.compute(new_ids)
        self._load_cached(new_ids)
        for new_id in new_outputs:
            self.queue.output_ids.add(new_id)
            self.queue.add_node(new_id)
        for r in results:
            values = r.get("result", ()) if isinstance(r, dict) else r
            for value in values if isinstance(values, (tuple, list)) else ():
                if is_link(value):
                    self.queue.add_strong_link(value[0], node_id)
        return _PENDING

    def _finish_expansion(self, node_id: str, node_def: NodeDef) -> str:
        results = self.pending_expansion.pop(node_id)
        outputs, ui = merge_results(node_def, results, lambda link: self.values[link[0]][int(link[1])])
        self._store(node_id, outputs, ui)
        return _FINISHED

    # -- endings ----------------------------------------------------------------------------------
    def _message(self, result: RunResult, kind: str, data: dict) -> None:
        result.messages.append((kind, data))
        self.emit(Event(kind, data))

    def _finish(self, result: RunResult) -> None:
        result.executed = list(self.executed)
        for node_id, ui in self.ui.items():
            if node_id in self.executed_set or node_id in self.dynprompt.original_prompt:
                result.outputs[self.display_id(node_id)] = ui
        for node_id in self.executed:
            result.meta[node_id] = {
                "node_id": node_id, "display_node": self.display_id(node_id),
                "parent_node": self.dynprompt.get_parent_node_id(node_id),
                "real_node_id": self.dynprompt.get_real_node_id(node_id)}

    def _interrupted(self, result: RunResult, node_id: str | None = None) -> RunResult:
        self._finish(result)
        result.status = "interrupted"
        node_type = None
        if node_id is not None and self.dynprompt.has_node(node_id):
            node_type = self.dynprompt.get_node(node_id)["class_type"]
            self.progress.fail(node_id)
        self._message(result, ev.EXECUTION_INTERRUPTED, interrupted(
            self.prompt_id, node_id and self.display_id(node_id), node_type, self.executed))
        return result

    def _fail(self, result: RunResult, node_id: str, error: BaseException) -> RunResult:
        self._finish(result)
        result.status = "error"
        node_type = None
        if self.dynprompt.has_node(node_id):
            node_type = self.dynprompt.get_node(node_id)["class_type"]
            self.progress.fail(node_id)
        data = node_error(self.prompt_id, self.display_id(node_id) if node_type else node_id, node_type,
                          self.executed, error, getattr(self, "_current_inputs", {}),
                          [n for n in self.values if n in self.executed_set])
        result.error = data
        self._message(result, ev.EXECUTION_ERROR, data)
        return result


def _run_coroutine(coro: Any) -> Any:
    """asyncio.run, also from a thread whose event loop is already running (a notebook, a sync test
    client): then the run gets a loop of its own on a helper thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="loom-run") as pool:
        return pool.submit(asyncio.run, coro).result()


class Executor:
    """Runs prompts against a node registry, keeping outputs cached between runs."""

    def __init__(self, registry: NodeRegistry, cache: OutputCache | None = None):
        self.registry = registry
        self.cache = cache if cache is not None else LRUCache()
        self.interner = KeyInterner()
        self._instances: dict[tuple[str, str], Any] = {}

    def instance(self, node_id: str, node_def: NodeDef) -> Any:
        """Node objects live across runs, per (node id, class), as packs expect (e.g. LoraLoader)."""
        key = (node_id, node_def.class_type)
        obj = self._instances.get(key)
        if obj is None:
            obj = node_def.cls()
            self._instances[key] = obj
        return obj

    def execute(self, prompt: dict, prompt_id: str, extra_data: dict | None = None,
                execute_outputs: list[str] | None = None, on_event: EventSink | None = None,
                interrupt: context.InterruptFlag | None = None) -> RunResult:
        """Run a validated prompt. `execute_outputs` defaults to every output node in it."""
        if self.interner.full():  # keys are stable only while the interner is: start both afresh
            self.interner.clear()
            self.cache.clear()
        flag = interrupt if interrupt is not None else context.global_interrupt()
        flag.clear()
        if execute_outputs is None:
            execute_outputs = [nid for nid, info in prompt.items()
                               if (d := self.registry.get(info.get("class_type"))) is not None and d.output_node]
        run = _Run(self, prompt, prompt_id, extra_data or {}, execute_outputs, on_event or ev.discard, flag)
        result = _run_coroutine(run.run())
        self._keep_instances(run)
        return result

    def _keep_instances(self, run: _Run) -> None:
        """Drop node objects whose node is gone from the latest prompt."""
        dynprompt = run.dynprompt
        for key in list(self._instances):
            node_id, class_type = key
            if not dynprompt.has_node(node_id) or dynprompt.get_node(node_id)["class_type"] != class_type:
                del self._instances[key]

    def reset(self) -> None:
        """Forget every cached output and node object (the server's /free with free_memory)."""
        self.cache.clear()
        self.interner.clear()
        self._instances.clear()
