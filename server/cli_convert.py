"""`loom convert WORKFLOW`: print a workflow (UI or API JSON, or a PNG that holds one) as an API prompt.

Exit status: 0 converted; 1 converted, but some node types are unknown (named on stderr);
2 the file could not be read or converted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from engine.workflow import WorkflowError, load_workflow_file, to_api_prompt


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "convert", help="print a workflow file as an API-format prompt",
        description="Convert a UI workflow (JSON, or a PNG with embedded metadata) into the API prompt "
                    "format and print it; an API prompt is printed back normalised.")
    parser.add_argument("workflow", metavar="WORKFLOW", help="a .json workflow or a .png holding one")
    parser.add_argument("-o", "--output", metavar="FILE", help="write the prompt here instead of stdout")
    parser.add_argument("--object-info", metavar="FILE",
                        help="use this saved /object_info JSON for the node definitions instead of Loom's nodes")
    parser.add_argument("--no-custom-nodes", action="store_true", help="load the built-in nodes only")
    parser.add_argument("--custom-nodes", metavar="DIR", action="append",
                        help="load node packs from this folder instead of the configured ones (repeatable)")
    parser.add_argument("--compact", action="store_true", help="print the JSON on one line")
    parser.add_argument("-q", "--quiet", action="store_true", help="do not print warnings")
    return parser


def _fail(message: str) -> int:
    print(f"loom convert: error: {message}", file=sys.stderr)
    return 2


def _object_info(args: argparse.Namespace) -> dict:
    if args.object_info:
        try:
            info = json.loads(Path(args.object_info).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise WorkflowError(f"--object-info {args.object_info}: {e}") from None
        if not isinstance(info, dict):
            raise WorkflowError(f"--object-info {args.object_info}: not an object of node definitions")
        return info
    from nodes.registry import builtin_registry

    # Node packs like to print banners when imported: keep stdout for the prompt alone.
    with contextlib.redirect_stdout(sys.stderr):
        registry = builtin_registry()
        if not args.no_custom_nodes:
            from nodes.custom_loader import load_custom_nodes

            dirs = [Path(d) for d in args.custom_nodes] if args.custom_nodes else None
            load_custom_nodes(registry, dirs)
        return registry.object_info()


def run(args: argparse.Namespace) -> int:
    try:
        _kind, data = load_workflow_file(args.workflow)
        result = to_api_prompt(data, _object_info(args))
    except WorkflowError as e:
        return _fail(str(e))
    if not args.quiet:
        for warning in result.warnings:
            print(f"loom convert: warning: {warning}", file=sys.stderr)
    text = json.dumps(result.prompt, ensure_ascii=False, indent=None if args.compact else 2)
    if args.output:
        try:
            Path(args.output).write_text(text + "\n", encoding="utf-8")
        except OSError as e:
            return _fail(f"cannot write {args.output}: {e.strerror or e}")
    else:
        print(text)
    if result.missing_node_types:
        print(f"loom convert: error: unknown node types: {', '.join(result.missing_node_types)}", file=sys.stderr)
        return 1
    return 0
