"""`loom nodes`: install, list, update, enable, disable and remove ComfyUI node packs.

    loom nodes install SOURCE[@REF] [--isolated] [--allow-scripts] [--name NAME]
    loom nodes list [--json] [--no-load]
    loom nodes update|enable|disable|remove NAME
    loom nodes providers CLASS_TYPE...

SOURCE is a git URL (https, ssh, file://, ...), a local folder or .py file, or a local .zip.
Changes take effect when Loom next starts. Packs live in custom_nodes/ (or $LOOM_CUSTOM_NODES_DIR).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _pip_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--find-links", action="append", default=[], metavar="DIR_OR_URL",
                   help="extra place pip looks for packages (passed to pip)")
    p.add_argument("--index-url", help="pip's package index (passed to pip)")
    p.add_argument("--no-index", action="store_true", help="pip uses only --find-links")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("nodes", help="manage ComfyUI node packs", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--custom-nodes-dir", type=Path, help="the packs folder (default custom_nodes/)")
    sub = p.add_subparsers(dest="nodes_command", metavar="ACTION")

    inst = sub.add_parser("install", help="install a pack from git, a folder or a .zip")
    inst.add_argument("source", help="git URL, folder, .py file or .zip; git sources take @REF (branch, tag, commit)")
    inst.add_argument("--name", help="folder name in custom_nodes/ (default: from the source)")
    inst.add_argument("--isolated", action="store_true",
                      help="give the pack its own virtual environment and run its nodes in their own process")
    inst.add_argument("--allow-scripts", action="store_true", help="run the pack's install.py (off by default)")
    _pip_options(inst)

    lst = sub.add_parser("list", help="installed packs, their nodes and how loading went")
    lst.add_argument("--json", action="store_true", help="machine-readable output")
    lst.add_argument("--no-load", action="store_true", help="do not import the packs (no node counts or errors)")

    upd = sub.add_parser("update", help="pull the newest code and re-check requirements")
    upd.add_argument("name")
    upd.add_argument("--allow-scripts", action="store_true", help="run the pack's install.py afterwards")
    _pip_options(upd)

    for action, text in (("enable", "enable a disabled pack"), ("disable", "disable a pack (renamed to .disabled)"),
                         ("remove", "delete a pack and its virtual environment")):
        sp = sub.add_parser(action, help=text)
        sp.add_argument("name")

    prov = sub.add_parser("providers", help="which known packs provide these node types")
    prov.add_argument("class_types", nargs="+")
    return p


def pip_args_from(args: argparse.Namespace) -> list[str]:
    out: list[str] = []
    for link in getattr(args, "find_links", []) or []:
        out += ["--find-links", link]
    if getattr(args, "index_url", None):
        out += ["--index-url", args.index_url]
    if getattr(args, "no_index", False):
        out.append("--no-index")
    return out


def _print_result(result, verb: str) -> None:
    print(f"{verb} {result.name}")
    for note in result.notes:
        print(f"  {note}")
    if result.restart_required:
        print("  restart Loom (loom serve) for this to take effect")


def _list(args: argparse.Namespace) -> int:
    from server.packs.status import list_packs

    registry = None
    if not args.no_load:
        from nodes.custom_loader import default_registry

        registry = default_registry(load_packs=True)
    rows = list_packs(registry)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no node packs installed")
        return 0
    print(f"{'name':28} {'version':10} {'state':9} {'nodes':>5} {'load s':>7}  source")
    for r in rows:
        state = "isolated" if r["isolated"] and r["enabled"] else ("enabled" if r["enabled"] else "disabled")
        if r["missing"]:
            state = "missing"
        nodes = "" if r["node_count"] is None else str(r["node_count"])
        secs = "" if r["load_seconds"] is None else f"{r['load_seconds']:.2f}"
        source = (r["source"] or "(not installed by loom)") + (f"@{r['ref']}" if r["ref"] else "")
        print(f"{r['name'][:28]:28} {(r['version'] or '-')[:10]:10} {state:9} {nodes:>5} {secs:>7}  {source}")
        if r["load_error"]:
            first = [line for line in r["load_error"].strip().splitlines() if line.strip()][-1]
            print(f"    load error: {first}")
        for note in r["side_effects"]:
            print(f"    at import: {note}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.custom_nodes_dir is not None:
        os.environ["LOOM_CUSTOM_NODES_DIR"] = str(args.custom_nodes_dir.resolve())
    from server.packs import deps, install, manifest, sources

    command = args.nodes_command
    try:
        if command == "install":
            result = install.install_pack(args.source, name=args.name, isolated=args.isolated,
                                          allow_scripts=args.allow_scripts, pip_args=pip_args_from(args))
            _print_result(result, "installed")
        elif command == "list":
            return _list(args)
        elif command == "update":
            result = install.update_pack(args.name, pip_args=pip_args_from(args), allow_scripts=args.allow_scripts)
            _print_result(result, "updated")
        elif command in ("enable", "disable"):
            result = install.set_enabled(args.name, command == "enable")
            _print_result(result, f"{command}d")
        elif command == "remove":
            _print_result(install.remove_pack(args.name), "removed")
        elif command == "providers":
            from nodes.pack_index import providers_for

            found = providers_for(args.class_types)
            for class_type in args.class_types:
                packs = found.get(class_type) or []
                print(f"{class_type}: {', '.join(p['url'] for p in packs) if packs else 'no known pack'}")
            return 0 if all(found.get(c) for c in args.class_types) else 1
        else:
            print("loom nodes: give an action (install, list, update, enable, disable, remove, providers)",
                  file=sys.stderr)
            return 2
    except deps.DependencyConflict as e:
        print(f"loom nodes {command}: {e}", file=sys.stderr)
        return 3
    except (install.PackError, sources.SourceError, deps.PipError, manifest.ManifestError) as e:
        print(f"loom nodes {command}: {e}", file=sys.stderr)
        return 1
    return 0
