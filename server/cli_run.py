"""`loom run WORKFLOW`: run a workflow from the command line, with progress, and say where outputs went.

Exit status: 0 success; 1 the workflow is invalid or a node failed; 2 the file could not be read;
130 interrupted (Ctrl+C).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from typing import Any, TextIO

from engine import events as ev
from engine.events import Event


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "run", help="run a workflow (API JSON, UI JSON or a PNG holding one)",
        description="Run a workflow on this machine, showing a line per node and a bar per sampler.")
    parser.add_argument("workflow", metavar="WORKFLOW", help="a .json workflow (UI or API format) or a .png holding one")
    parser.add_argument("--output-dir", metavar="DIR", help="write outputs here (default: <data-dir>/output)")
    parser.add_argument("--set", dest="overrides", metavar="NODE.INPUT=VALUE", action="append", default=[],
                        help="change an input before running; NODE is a node id or title, VALUE is JSON or text "
                             "(repeatable), e.g. --set 3.seed=42 --set 'Positive.text=a red circle'")
    parser.add_argument("--data-dir", metavar="DIR", help="folder holding input/, output/ and temp/")
    parser.add_argument("--models-dir", metavar="DIR", help="models folder (default: the repo's models/)")
    parser.add_argument("--no-custom-nodes", "--disable-custom-nodes", dest="no_custom_nodes", action="store_true",
                        help="load the built-in nodes only (with --custom-nodes-allow: only those packs)")
    parser.add_argument("--custom-nodes-allow", metavar="LIST", help="comma-separated node packs to load, no others")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the output paths and errors")
    return parser


def parse_override(text: str) -> tuple[str, str, Any]:
    target, sep, raw = text.partition("=")
    node, dot, name = target.rpartition(".")
    if not sep or not dot or not node or not name:
        raise ValueError(f"--set {text!r}: expected NODE.INPUT=VALUE")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return node, name, value


def apply_overrides(prompt: dict, overrides: list[str]) -> None:
    for text in overrides:
        node, name, value = parse_override(text)
        matches = [node] if node in prompt else [
            nid for nid, info in prompt.items() if (info.get("_meta") or {}).get("title") == node]
        if not matches:
            raise ValueError(f"--set {text!r}: no node with id or title {node!r}")
        if len(matches) > 1:
            raise ValueError(f"--set {text!r}: {len(matches)} nodes are titled {node!r}; use a node id "
                             f"({', '.join(matches)})")
        prompt[matches[0]]["inputs"][name] = value


class ConsolePrinter:
    """Draws engine events: a line per node, a bar per sampler (redrawn in place on a terminal)."""

    def __init__(self, prompt: dict, stream: TextIO = sys.stderr, quiet: bool = False):
        self.prompt = prompt
        self.stream = stream
        self.quiet = quiet
        self.tty = stream.isatty()
        self.started: dict[str, float] = {}
        self.current: str | None = None
        self.count = 0
        self._bar_open = False

    def name(self, node_id: str) -> str:
        info = self.prompt.get(node_id, {})
        title = (info.get("_meta") or {}).get("title")
        class_type = info.get("class_type", "?")
        return f"{class_type} #{node_id}" + (f" ({title})" if title and title != class_type else "")

    def _line(self, text: str) -> None:
        if self._bar_open:
            self.stream.write("\n")
            self._bar_open = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def _end_node(self) -> None:
        if self.current is not None:
            spent = time.perf_counter() - self.started[self.current]
            self._line(f"  done {self.name(self.current)} in {spent:.2f}s")
            self.current = None

    def pack_message(self, event: str, data: Any, sid: str | None = None) -> None:
        """A node pack's own message (PromptServer.instance.send_sync), shown as one line."""
        if not self.quiet:
            text = json.dumps(data, default=str)
            self._line(f"  {event}: {text if len(text) <= 120 else text[:117] + '...'}")

    def __call__(self, event: Event) -> None:
        if self.quiet:
            return
        data = event.data
        if event.type == ev.EXECUTION_CACHED and data["nodes"]:
            self._line(f"cached: {', '.join(self.name(n) for n in data['nodes'])}")
        elif event.type == ev.EXECUTING:
            self._end_node()
            self.count += 1
            self.current = data["node"]
            self.started[self.current] = time.perf_counter()
            self._line(f"[{self.count}] {self.name(self.current)}")
        elif event.type == ev.PROGRESS:
            value, maximum = data["value"], data["max"]
            width = 30
            filled = int(width * value / maximum) if maximum else width
            bar = f"  [{'#' * filled}{'-' * (width - filled)}] {value}/{maximum}"
            if self.tty:
                self.stream.write("\r" + bar)
                self._bar_open = True
                self.stream.flush()
            elif value == maximum:
                self._line(bar)
        elif event.type in (ev.EXECUTION_SUCCESS, ev.EXECUTION_ERROR, ev.EXECUTION_INTERRUPTED):
            if event.type != ev.EXECUTION_ERROR or data.get("exception_type") != "ExecutionBlocked":
                self._end_node()


def _output_files(outputs: dict) -> list[str]:
    from nodes import paths

    files = []
    for ui in outputs.values():
        for item in ui.get("images", []) + ui.get("files", []):
            if isinstance(item, dict) and "filename" in item:
                try:
                    folder = paths.directory_for_type(item.get("type", "output"))
                    files.append(str(paths.safe_join(folder, item.get("subfolder", ""), item["filename"])))
                except paths.UnsafePath:
                    continue
    return files


def run(args: argparse.Namespace) -> int:
    from engine.execution import Executor
    from engine.validation import validate_prompt
    from engine.workflow import UI, WorkflowError, load_workflow_file, to_api_prompt
    from nodes import context, paths

    paths.configure(args.data_dir, args.models_dir, output_dir=args.output_dir, seed_examples=True)
    try:
        import torch

        torch.set_num_threads(max(1, torch.get_num_threads()))
    except ImportError:  # pragma: no cover
        pass
    from nodes.custom_loader import default_registry

    allow = [a for a in args.custom_nodes_allow.split(",") if a.strip()] if args.custom_nodes_allow else None
    registry = default_registry(load_packs=bool(allow) or not args.no_custom_nodes, allow=allow,
                                disabled=args.no_custom_nodes)
    try:
        kind, data = load_workflow_file(args.workflow)
        conversion = to_api_prompt(data, registry.object_info())
    except WorkflowError as e:
        print(f"loom run: error: {e}", file=sys.stderr)
        return 2
    if conversion.missing_node_types:
        print("loom run: error: this workflow uses node types that are not installed: "
              + ", ".join(conversion.missing_node_types), file=sys.stderr)
        return 1
    prompt = conversion.prompt
    try:
        apply_overrides(prompt, args.overrides)
    except ValueError as e:
        print(f"loom run: error: {e}", file=sys.stderr)
        return 2
    validation = validate_prompt(registry, prompt)
    if not validation.ok:
        print("loom run: the workflow is not valid:", file=sys.stderr)
        for line in validation.describe(prompt):
            print(f"  - {line}", file=sys.stderr)
        return 1
    for line in validation.describe(prompt):  # outputs that will be skipped
        print(f"loom run: warning: skipped: {line}", file=sys.stderr)

    extra_data = {"extra_pnginfo": {"workflow": data}} if kind == UI else {}
    printer = ConsolePrinter(prompt, quiet=args.quiet)
    from server import compat_bridge

    compat_bridge.bind_headless(printer.pack_message)  # packs' PromptServer.send_sync lands in this log
    interrupt = context.InterruptFlag()
    results: list = []
    worker = threading.Thread(target=lambda: results.append(Executor(registry).execute(
        prompt, str(uuid.uuid4()), extra_data, validation.outputs, printer, interrupt)), daemon=True)
    started = time.perf_counter()
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.2)
    except KeyboardInterrupt:
        interrupt.set()
        print("\nloom run: interrupting...", file=sys.stderr)
        worker.join()
    result = results[0]
    if result.status == "interrupted":
        print("loom run: interrupted", file=sys.stderr)
        return 130
    if result.status == "error":
        err = result.error or {}
        print(f"loom run: {printer.name(err.get('node_id', '?'))} failed: {err.get('exception_message')}",
              file=sys.stderr)
        tail = "".join(err.get("traceback", [])[-3:]).rstrip()
        if tail:
            print(tail, file=sys.stderr)
        return 1
    files = _output_files(result.outputs)
    if not args.quiet:
        print(f"finished in {time.perf_counter() - started:.2f}s", file=sys.stderr)
    for path in files:
        print(path)
    if not files and not args.quiet:
        print("loom run: the workflow produced no files", file=sys.stderr)
    return 0
