"""The `loom` command line. Each subcommand lives in its own module with `add_parser` and `run`."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# Each subcommand module has add_parser(subparsers) -> parser and run(args) -> int.
SUBCOMMANDS = ("server.cli_serve", "server.cli_run", "server.cli_convert", "server.cli_nodes", "server.cli_workers")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="loom", description="Loom: node-graph workflows for diffusion models.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in SUBCOMMANDS:
        module = importlib.import_module(module_name)
        sub = module.add_parser(subparsers)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
