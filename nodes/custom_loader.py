"""Loading ComfyUI node packs from `custom_nodes/` into a NodeRegistry.

What a pack sees is what ComfyUI gives it: a package with `__init__.py` (or a single `.py`)
imported under the module name ComfyUI uses, with `folder_paths`, `comfy.*`, `nodes` and `server`
importable (the `compat/` folder goes first on sys.path). What Loom adds:

- A pack that fails to import is reported with its traceback (and a hint when what it missed is
  a part of ComfyUI Loom does not provide) and skipped; start-up goes on.
- A pack that hangs at import is abandoned after `import_timeout` seconds. The import runs in a
  daemon thread; Python cannot kill a thread, so the abandoned import keeps running in the
  background (holding its own module's import lock, and whatever it holds), its nodes are never
  registered, and what it does later is not watched. An import that needs the main thread
  (signal handlers) fails in this thread with the usual error.
- What a pack changes outside its folder while importing (files under the repo and data folders,
  sys.path, environment variables, attributes of Loom's modules) is reported on its PackInfo and
  logged. Packs cannot replace built-in nodes.
- Packs installed with `loom nodes install --isolated` run in their own process
  (`server.packs.isolated`, imported only when such a pack is present).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import sys
import threading
import time
import tomllib
import traceback
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodes import paths
from nodes.registry import NodeRegistry, PackInfo

log = logging.getLogger("loom.packs")

COMPAT_DIR = paths.REPO_ROOT / "compat"
MANIFEST_NAME = ".loom-packs.json"
# Top-level names the compatibility layer answers for; an ImportError naming one of them gets a hint.
COMPAT_ROOTS = ("comfy", "comfy_extras", "comfy_execution", "comfy_api", "comfy_api_nodes", "folder_paths",
                "latent_preview", "execution", "node_helpers", "app", "nodes", "server", "comfy_config")
LOOM_MODULE_PREFIXES = ("nodes", "engine", "server", "folder_paths", "comfy", "comfy_execution")
_WATCH_SKIP_DIRS = {".git", ".venv", ".venvs", "node_modules", "__pycache__", ".pytest_cache", ".ruff_cache",
                    ".hypothesis"}


@dataclass
class LoadedPack(PackInfo):
    """PackInfo plus what Loom learnt while loading it."""

    side_effects: list[str] = field(default_factory=list)
    ignored_nodes: list[str] = field(default_factory=list)  # clashed with built-in nodes
    isolated: bool = False
    timed_out: bool = False


def ensure_compat_path() -> None:
    """Put compat/ first on sys.path (only in this process: nothing is shadowed for other programs)."""
    entry = str(COMPAT_DIR)
    if sys.path[:1] != [entry]:
        while entry in sys.path:
            sys.path.remove(entry)
        sys.path.insert(0, entry)


def custom_nodes_dirs() -> list[Path]:
    """Where packs live: $LOOM_CUSTOM_NODES_DIR (os.pathsep-separated) if set, else the configured
    folders (custom_nodes/ plus any from extra_model_paths.yaml). The first one receives installs."""
    env = os.environ.get("LOOM_CUSTOM_NODES_DIR")
    if env:
        return [Path(p).expanduser().resolve() for p in env.split(os.pathsep) if p]
    return list(paths.folders().custom_nodes_dirs)


def read_manifest(custom_nodes_dir: Path) -> dict[str, dict]:
    """The `.loom-packs.json` entries by pack name ({} when there is none or it is unreadable)."""
    path = custom_nodes_dir / MANIFEST_NAME
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    packs = data.get("packs") if isinstance(data, dict) else None
    return packs if isinstance(packs, dict) else {}


def discover(dirs: list[Path]) -> list[Path]:
    """Pack candidates in ComfyUI's order: each folder's entries sorted, skipping what ComfyUI skips."""
    found = []
    for d in dirs:
        if not d.is_dir():
            continue
        for entry in sorted(d.iterdir(), key=lambda p: p.name):
            name = entry.name
            if name == "__pycache__" or name.startswith(".") or name.endswith(".disabled"):
                continue
            if entry.is_file() and entry.suffix != ".py":
                continue
            found.append(entry)
    return found


def pack_name(path: Path) -> str:
    return path.stem if path.is_file() else path.name


def sys_module_name(path: Path) -> str:
    """ComfyUI's module naming: the path (without .py) for a file, dots as `_x_` for a folder."""
    return str(path.with_suffix("")) if path.is_file() else str(path).replace(".", "_x_")


# -- side effects ---------------------------------------------------------------------------------
@dataclass
class _Snapshot:
    sys_path: list[str]
    environ: dict[str, str]
    files: dict[str, tuple[float, int]]
    attrs: dict[str, dict[str, int]]


def _watch_roots() -> list[Path]:
    f = paths.folders()
    roots = [paths.REPO_ROOT, f.data_dir, *f.models_dirs]
    out: list[Path] = []
    for r in roots:
        r = r.resolve()
        if r.is_dir() and not any(r == o or o in r.parents for o in out):
            out.append(r)
    return out


def _scan_files(roots: list[Path]) -> dict[str, tuple[float, int]]:
    files = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d not in _WATCH_SKIP_DIRS]
            for name in filenames:
                p = os.path.join(dirpath, name)
                try:
                    st = os.stat(p)
                except OSError:
                    continue
                files[p] = (st.st_mtime, st.st_size)
    return files


def _loom_attrs() -> dict[str, dict[str, int]]:
    """id() of every attribute of Loom's modules and of the classes they define."""
    out: dict[str, dict[str, int]] = {}
    for mod_name, module in list(sys.modules.items()):
        if not isinstance(module, types.ModuleType) or not mod_name.startswith(LOOM_MODULE_PREFIXES):
            continue
        if mod_name.split(".")[0] not in LOOM_MODULE_PREFIXES or mod_name == __name__:
            continue
        # submodules appear as attributes when first imported: not a change made by the pack
        attrs = {k: id(v) for k, v in list(vars(module).items()) if not isinstance(v, types.ModuleType)}
        out[mod_name] = attrs
        for k, v in list(vars(module).items()):
            if isinstance(v, type) and getattr(v, "__module__", None) == mod_name:
                out[f"{mod_name}.{k}"] = {ak: id(av) for ak, av in list(vars(v).items())}
    return out


def _snapshot() -> _Snapshot:
    return _Snapshot(list(sys.path), dict(os.environ), _scan_files(_watch_roots()), _loom_attrs())


def _side_effects(before: _Snapshot, after: _Snapshot, pack_dir: Path) -> list[str]:
    notes = []
    added = [p for p in after.sys_path if p not in before.sys_path]
    removed = [p for p in before.sys_path if p not in after.sys_path]
    if added:
        notes.append(f"added to sys.path: {', '.join(added)}")
    if removed:
        notes.append(f"removed from sys.path: {', '.join(removed)}")
    for key in sorted(set(before.environ) | set(after.environ)):
        if before.environ.get(key) != after.environ.get(key):
            notes.append(f"environment variable {key} {'unset' if key not in after.environ else 'set'}")
    own = str(pack_dir.resolve())
    for p in sorted(set(after.files) | set(before.files)):
        if p == own or p.startswith(own + os.sep):
            continue
        if p not in before.files:
            notes.append(f"created file {p}")
        elif p not in after.files:
            notes.append(f"deleted file {p}")
        elif before.files[p] != after.files[p]:
            notes.append(f"modified file {p}")
    for mod_name, attrs in after.attrs.items():
        old = before.attrs.get(mod_name)
        if old is None:
            continue
        changed = sorted(k for k, v in attrs.items() if k in old and old[k] != v)
        new = sorted(k for k in attrs if k not in old and not k.startswith("__"))
        if changed:
            notes.append(f"replaced {mod_name}.{{{', '.join(changed)}}}")
        if new:
            notes.append(f"added {mod_name}.{{{', '.join(new)}}}")
    return notes


# -- import -------------------------------------------------------------------------------------------
def _exec_pack(path: Path, module_name: str) -> types.ModuleType:
    init = path if path.is_file() else path / "__init__.py"
    if not init.is_file():
        raise ImportError(f"{path.name} is not a Python package (no __init__.py)")
    for key in [k for k in sys.modules if k == module_name or k.startswith(module_name + ".")]:
        del sys.modules[key]  # a re-load (tests, `loom nodes update`) runs the current code
    spec = importlib.util.spec_from_file_location(
        module_name, init, submodule_search_locations=None if path.is_file() else [str(path)])
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot make an import spec for {init}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


_fallback_loop: asyncio.AbstractEventLoop | None = None


def _thread_loop() -> asyncio.AbstractEventLoop:
    """The loop a pack's import sees as current: the server's when bound, else one kept for packs."""
    global _fallback_loop
    bridge = sys.modules.get("server.compat_bridge")
    instance = getattr(getattr(bridge, "PromptServer", None), "instance", None)
    loop = getattr(instance, "loop", None) if instance is not None else None
    if loop is None:
        if _fallback_loop is None:
            _fallback_loop = asyncio.new_event_loop()
        loop = _fallback_loop
    return loop


def _run_with_timeout(fn: Any, timeout: float, thread_name: str) -> tuple[Any, str | None, bool]:
    """Run fn() in a daemon thread: (result, traceback text or None, timed_out)."""
    box: dict[str, Any] = {}

    def target() -> None:
        asyncio.set_event_loop(_thread_loop())
        try:
            box["result"] = fn()
        except BaseException as e:  # SystemExit from a pack must not stop Loom either
            box["error"] = traceback.format_exc()
            box["exc"] = e

    t = threading.Thread(target=target, name=thread_name, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        return None, None, True
    return box.get("result"), _with_hint(box.get("error"), box.get("exc")), False


def _with_hint(error: str | None, exc: BaseException | None) -> str | None:
    if error is None or not isinstance(exc, ImportError):
        return error
    name = exc.name or ""
    root = name.split(".")[0]
    if root in COMPAT_ROOTS:
        missing = name
        if not isinstance(exc, ModuleNotFoundError) and "cannot import name" in str(exc):
            missing = f"{name}.{str(exc).split(chr(39))[1]}"
        return error + f"\nHint: Loom's ComfyUI compatibility layer does not provide {missing}."
    if isinstance(exc, ModuleNotFoundError) and name:
        return error + (f"\nHint: the pack needs the Python package providing {root!r}; install the pack with "
                        f"`loom nodes install` (which installs its requirements) or pip-install it.")
    return error


def _v3_classes(module: types.ModuleType) -> tuple[dict[str, type], str | None]:
    """NODE_CLASS_MAPPINGS from a V3 `comfy_entrypoint()` extension (sync or async)."""
    async def collect() -> list:
        ext = module.comfy_entrypoint()
        ext = await ext if asyncio.iscoroutine(ext) else ext
        nodes_list = ext.get_node_list()
        return await nodes_list if asyncio.iscoroutine(nodes_list) else nodes_list

    classes = asyncio.new_event_loop().run_until_complete(collect())
    mappings: dict[str, type] = {}
    unsupported = []
    for cls in classes:
        if hasattr(cls, "INPUT_TYPES"):
            mappings[getattr(cls, "NODE_ID", cls.__name__)] = cls
            continue
        try:
            from comfy_api.v1_adapter import to_v1  # provided by compat/ when V3 schemas are supported
        except ImportError:
            unsupported.append(cls.__name__)
            continue
        node_id, v1 = to_v1(cls)
        mappings[node_id] = v1
    error = None
    if unsupported:
        error = f"V3 schema nodes are not supported by Loom yet: {', '.join(unsupported)}"
    return mappings, error


def _register(registry: NodeRegistry, info: LoadedPack, mappings: Any, display: Any) -> None:
    python_module = f"custom_nodes.{info.name}"
    display = display if isinstance(display, dict) else {}
    for class_type, cls in dict(mappings).items():
        if class_type in registry.builtin_names:
            info.ignored_nodes.append(class_type)
            log.warning("%s: node %s clashes with a built-in node and is ignored", info.name, class_type)
            continue
        previous = registry.get(class_type)
        try:
            try:
                cls.RELATIVE_PYTHON_MODULE = python_module
            except (AttributeError, TypeError):
                pass
            registry.register_mappings({class_type: cls}, display, python_module)
        except Exception:
            info.error = (info.error or "") + f"node {class_type} could not be read:\n{traceback.format_exc()}"
            continue
        if previous is not None:
            log.warning("%s: node %s replaces the one from %s", info.name, class_type, previous.python_module)
        info.node_names.append(class_type)


def _web_dir(module: types.ModuleType | None, path: Path) -> tuple[str, Path] | None:
    """(key, folder) served at /extensions/<key>/: pyproject `[tool.comfy] web` or WEB_DIRECTORY."""
    base = path if path.is_dir() else path.parent
    pyproject = base / "pyproject.toml" if path.is_dir() else None
    if pyproject is not None and pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text())
            web = data.get("tool", {}).get("comfy", {}).get("web")
            name = data.get("project", {}).get("name")
            if web and name and (base / web).is_dir():
                return name, (base / web).resolve()
        except (OSError, tomllib.TOMLDecodeError):
            log.warning("%s: pyproject.toml could not be read", path.name)
    web_dir = getattr(module, "WEB_DIRECTORY", None) if module is not None else None
    if web_dir:
        folder = (base / web_dir).resolve()
        if folder.is_dir():
            return pack_name(path), folder
    return None


def _load_one(registry: NodeRegistry, path: Path, manifest_entry: dict, import_timeout: float) -> LoadedPack:
    name = pack_name(path)
    info = LoadedPack(name=name, path=path, module_name=sys_module_name(path))
    start = time.perf_counter()
    before = _snapshot()
    if manifest_entry.get("isolated"):
        info.isolated = True
        from server.packs.isolated import load_isolated_pack  # lazy: only for isolated packs

        result, error, timed_out = _run_with_timeout(
            lambda: load_isolated_pack(path, name, manifest_entry, timeout=import_timeout),
            import_timeout + 5, f"loom-pack-import:{name}")
        module = None
        mappings = result.mappings if result is not None else None
        display = result.display if result is not None else None
        if result is not None and result.web is not None:
            registry.web_dirs[result.web[0]] = result.web[1]
            info.web_dir = result.web[1]
    else:
        result, error, timed_out = _run_with_timeout(
            lambda: _exec_pack(path, info.module_name), import_timeout, f"loom-pack-import:{name}")
        module = result
        mappings = getattr(module, "NODE_CLASS_MAPPINGS", None) if module is not None else None
        display = getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", None) if module is not None else None
        if module is not None and mappings is None and hasattr(module, "comfy_entrypoint"):
            try:
                mappings, v3_error = _v3_classes(module)
                error = v3_error
            except Exception:
                error = _with_hint(traceback.format_exc(), None)
    if timed_out:
        info.timed_out = True
        info.error = (f"import did not finish within {import_timeout:g} s and was abandoned "
                      f"(it may still be running in the background; its nodes are not registered)")
    elif error:
        info.error = error
    elif mappings is None:
        info.error = "the module has no NODE_CLASS_MAPPINGS (nor a V3 comfy_entrypoint); nothing to register"
    if mappings and not timed_out:
        _register(registry, info, mappings, display)
    web = _web_dir(module, path) if not (timed_out or info.isolated) else None
    if web:
        info.web_dir = web[1]
        registry.web_dirs[web[0]] = web[1]
    folder_paths = sys.modules.get("folder_paths")
    if folder_paths is not None and hasattr(folder_paths, "_push_to_loom"):
        folder_paths._push_to_loom()
    after = _snapshot()
    info.side_effects = _side_effects(before, after, path)
    info.load_seconds = time.perf_counter() - start
    return info


def default_import_timeout() -> float:
    """Seconds a pack's import may take: $LOOM_PACK_IMPORT_TIMEOUT, else 30."""
    try:
        return float(os.environ.get("LOOM_PACK_IMPORT_TIMEOUT") or 30.0)
    except ValueError:
        log.warning("LOOM_PACK_IMPORT_TIMEOUT is not a number; using 30 s")
        return 30.0


def load_custom_nodes(registry: NodeRegistry, dirs: list[Path] | None = None, allow: list[str] | None = None,
                      disabled: bool = False, import_timeout: float | None = None) -> list[PackInfo]:
    """Load every pack in `dirs` (default: the configured custom_nodes folders) into `registry`.

    `allow` names the only packs to load (folder or file names, with or without `.py`); `disabled`
    loads none except those in `allow` (ComfyUI's --disable-all-custom-nodes with its whitelist).
    Returns the packs tried, also appended to `registry.packs`; web folders go to `registry.web_dirs`.
    """
    ensure_compat_path()
    import nodes as nodes_pkg

    nodes_pkg.set_active_registry(registry)
    import_timeout = default_import_timeout() if import_timeout is None else import_timeout
    dirs = [Path(d) for d in (dirs if dirs is not None else custom_nodes_dirs())]
    allowed = {a.strip().removesuffix(".py") for a in allow} if allow is not None else None
    if disabled and allowed is None:
        log.info("custom nodes are disabled")
        return []
    infos: list[PackInfo] = []
    for path in discover(dirs):
        name = pack_name(path)
        if allowed is not None and name not in allowed:
            continue
        entry = read_manifest(path.parent).get(name, {})
        info = _load_one(registry, path, entry, import_timeout)
        infos.append(info)
        registry.packs.append(info)
        if info.error:
            registry.load_errors[f"custom_nodes.{name}"] = info.error
            log.warning("Cannot import %s module for custom nodes:\n%s", path, info.error)
        for note in info.side_effects:
            log.warning("%s changed something outside its folder at import: %s", name, note)
    if infos:
        lines = ["Import times for custom nodes:"]
        for info in sorted(infos, key=lambda i: i.load_seconds):
            failed = " (IMPORT FAILED)" if info.error and not info.node_names else ""
            lines.append(f"{info.load_seconds:6.1f} seconds{failed}: {info.path}")
        log.info("\n".join(lines))
    return infos


def default_registry(load_packs: bool = True, allow: list[str] | None = None, disabled: bool = False,
                     import_timeout: float | None = None) -> NodeRegistry:
    """Built-in nodes plus the packs in the configured custom_nodes folders (for the server and CLI)."""
    import nodes as nodes_pkg
    from nodes.registry import builtin_registry

    registry = builtin_registry()
    nodes_pkg.set_active_registry(registry)
    if load_packs:
        load_custom_nodes(registry, allow=allow, disabled=disabled, import_timeout=import_timeout)
    return registry
