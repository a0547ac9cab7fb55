"""Installing, updating, enabling, disabling and removing packs in `custom_nodes/`.

Nothing is left half-done: a pack is fetched into a staging folder, its requirements are resolved
(and refused if they would change what Loom depends on) and installed, and only then is it moved
into place and recorded in the manifest. A pack's `install.py` runs only with `allow_scripts`.
Changes take effect at the next start of Loom (modules cannot be unloaded from a process).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from nodes.custom_loader import custom_nodes_dirs
from server.packs import deps, manifest, sources
from server.packs.isolated import venv_dir, venv_python

SCRIPT_TIMEOUT_S = 1800
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]*$")


class PackError(RuntimeError):
    """A pack operation that cannot be done; the message says why."""


@dataclass
class Result:
    name: str
    entry: dict
    notes: list[str] = field(default_factory=list)
    restart_required: bool = True


def custom_nodes_dir() -> Path:
    return custom_nodes_dirs()[0]


def check_name(name: str) -> str:
    if not _NAME.match(name) or name.endswith(".disabled") or name in ("__pycache__",) or "/" in name:
        raise PackError(f"{name!r} is not a usable pack name (letters, digits, '.', '_', '-', ' '; "
                        f"not starting with '.', not ending in '.disabled')")
    return name


def pack_location(cn_dir: Path, name: str) -> tuple[Path | None, bool]:
    """(where the pack is, enabled?) for a folder or single-file pack, enabled or disabled."""
    for candidate, enabled in ((cn_dir / name, True), (cn_dir / f"{name}.py", True),
                               (cn_dir / f"{name}.disabled", False), (cn_dir / f"{name}.py.disabled", False)):
        if candidate.exists():
            return candidate, enabled
    return None, False


def read_metadata(pack: Path) -> dict:
    """Version and description from pyproject `[project]` (and `[tool.comfy]`), when present."""
    pyproject = pack / "pyproject.toml" if pack.is_dir() else None
    if pyproject is None or not pyproject.is_file():
        return {}
    try:
        data = tomllib.loads(pyproject.read_text())
    except tomllib.TOMLDecodeError as e:
        raise PackError(f"{pyproject.name} of the pack is not valid TOML: {e}") from e
    project = data.get("project", {})
    comfy = data.get("tool", {}).get("comfy", {})
    return {k: v for k, v in {
        "project_name": project.get("name"), "version": project.get("version"),
        "description": project.get("description"), "display_name": comfy.get("DisplayName"),
        "publisher": comfy.get("PublisherId"),
    }.items() if v}


def create_venv(venv: Path) -> str:
    """A venv without pip that sees Loom's site-packages after its own (see isolated.py)."""
    if not venv_python(venv).exists():
        done = subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)],
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise PackError(f"could not create the virtual environment {venv}: {done.stderr.strip()}")
    python = str(venv_python(venv))
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, timeout=60).stdout.strip()
    loom_site = sysconfig.get_paths()["purelib"]
    Path(purelib, "_loom_parent.pth").write_text(f"import site; site.addsitedir({loom_site!r})\n")
    return python


def _run_install_script(pack: Path, python: str, allow_scripts: bool, notes: list[str]) -> None:
    script = pack / "install.py"
    if not script.is_file():
        return
    if not allow_scripts:
        notes.append("the pack has an install.py, which was NOT run (pass --allow-scripts to run it)")
        return
    done = subprocess.run([python, "install.py"], cwd=pack, capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_S)
    if done.returncode != 0:
        raise PackError(f"the pack's install.py failed (exit {done.returncode}):\n{done.stderr.strip()[-2000:]}")
    notes.append("ran the pack's install.py")


def _resolve_and_install(pack: Path, isolated: bool, python: str | None, pip_args: list[str],
                         notes: list[str]) -> None:
    requirements = deps.read_requirements(pack)
    plan = deps.plan(requirements, pip_args, python=python if isolated else None, isolated=isolated)
    deps.install(plan, pip_args, python=python if isolated else None)
    if plan.install:
        where = "its virtual environment" if isolated else "Loom's environment"
        notes.append(f"installed into {where}: {', '.join(plan.specs)}")


def install_pack(source: str, name: str | None = None, isolated: bool = False, allow_scripts: bool = False,
                 pip_args: list[str] | None = None, cn_dir: Path | None = None) -> Result:
    cn_dir = cn_dir or custom_nodes_dir()
    src = sources.parse(source)
    name = check_name(name or src.default_name)
    if pack_location(cn_dir, name)[0] is not None:
        raise PackError(f"a pack named {name!r} is already installed; use `loom nodes update {name}` "
                        f"or remove it first")
    cn_dir.mkdir(parents=True, exist_ok=True)
    staging = cn_dir / f".staging-{name}-{uuid.uuid4().hex[:8]}"
    venv = venv_dir(cn_dir, name)
    notes: list[str] = []
    try:
        commit = sources.fetch(src, staging)
        single = list(staging.iterdir()) if src.kind == "folder" and Path(src.location).is_file() else None
        meta = read_metadata(staging)
        python = create_venv(venv) if isolated else sys.executable
        _resolve_and_install(staging, isolated, python, pip_args or [], notes)
        if single:
            dest = cn_dir / f"{name}.py"
            shutil.move(str(single[0]), dest)
        else:
            dest = cn_dir / name
            shutil.move(str(staging), dest)
        if dest.is_dir():
            _run_install_script(dest, python, allow_scripts, notes)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if isolated:
            shutil.rmtree(venv, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    entry = {"name": name, "version": meta.get("version"), "description": meta.get("description"),
             "source": src.location, "kind": src.kind, "ref": src.ref, "commit": commit,
             "installed_at": manifest.now_iso(), "updated_at": None, "isolated": isolated, "enabled": True}
    if isolated:
        entry["python"] = python
    with manifest.editing(cn_dir) as packs:
        packs[name] = entry
    return Result(name, entry, notes)


def update_pack(name: str, pip_args: list[str] | None = None, allow_scripts: bool = False,
                cn_dir: Path | None = None) -> Result:
    """Pull the newest code (git) or re-copy the source (folder, zip), then re-resolve requirements.
    If the new requirements are refused, the previous code is put back."""
    cn_dir = cn_dir or custom_nodes_dir()
    entry = manifest.read(cn_dir).get(name)
    if entry is None:
        raise PackError(f"{name!r} is not in the manifest (was it installed with `loom nodes install`?)")
    where, enabled = pack_location(cn_dir, name)
    if where is None:
        raise PackError(f"{name!r} is in the manifest but its folder is missing; remove and install it again")
    isolated = bool(entry.get("isolated"))
    python = entry.get("python") or sys.executable
    notes: list[str] = []
    if entry.get("kind") == "git":
        old = sources.git(["rev-parse", "HEAD"], cwd=where)
        sources.git(["fetch", "--quiet", "--tags", "origin"], cwd=where)
        target = entry.get("ref") or _upstream(where)
        sources.git(["checkout", "--quiet", target], cwd=where)
        if not entry.get("ref") or _is_branch(where, target):
            sources.git(["merge", "--ff-only", "--quiet", f"origin/{target}"], cwd=where)
        try:
            _resolve_and_install(where, isolated, python, pip_args or [], notes)
        except Exception:
            sources.git(["checkout", "--quiet", old], cwd=where)
            raise
        commit = sources.git(["rev-parse", "HEAD"], cwd=where)
        notes.append("already up to date" if commit == old else f"updated {old[:10]} -> {commit[:10]}")
    else:
        src = sources.Source(entry["kind"], entry["source"])
        staging = cn_dir / f".staging-{name}-{uuid.uuid4().hex[:8]}"
        try:
            sources.fetch(src, staging)
            _resolve_and_install(staging, isolated, python, pip_args or [], notes)
            backup = where.with_name(f".old-{where.name}-{uuid.uuid4().hex[:8]}")
            os.replace(where, backup)
            os.replace(staging, where)
            shutil.rmtree(backup, ignore_errors=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        commit = None
        notes.append(f"re-copied from {entry['source']}")
    _run_install_script(where, python, allow_scripts, notes)
    meta = read_metadata(where)
    with manifest.editing(cn_dir) as packs:
        packs[name].update(version=meta.get("version"), description=meta.get("description"), commit=commit,
                           updated_at=manifest.now_iso(), enabled=enabled)
        entry = packs[name]
    return Result(name, entry, notes)


def _upstream(repo: Path) -> str:
    branch = sources.git(["rev-parse", "--abbrev-ref", "HEAD"], cwd=repo)
    if branch != "HEAD":
        return branch
    head = sources.git(["symbolic-ref", "--short", "refs/remotes/origin/HEAD"], cwd=repo)
    return head.removeprefix("origin/")


def _is_branch(repo: Path, ref: str) -> bool:
    try:
        sources.git(["rev-parse", "--verify", "--quiet", f"refs/remotes/origin/{ref}"], cwd=repo)
        return True
    except sources.SourceError:
        return False


def set_enabled(name: str, enabled: bool, cn_dir: Path | None = None) -> Result:
    """Disable by renaming to `<name>.disabled` (as ComfyUI-Manager does); enable by renaming back."""
    cn_dir = cn_dir or custom_nodes_dir()
    where, is_enabled = pack_location(cn_dir, name)
    if where is None:
        raise PackError(f"no pack named {name!r} in {cn_dir}")
    notes = []
    if is_enabled != enabled:
        target = where.with_name(where.name + ".disabled") if not enabled else where.with_name(
            where.name.removesuffix(".disabled"))
        if target.exists():
            raise PackError(f"cannot rename {where.name} to {target.name}: it already exists")
        os.replace(where, target)
        notes.append(f"renamed {where.name} -> {target.name}")
    else:
        notes.append(f"already {'enabled' if enabled else 'disabled'}")
    entry: dict = {}
    if name in manifest.read(cn_dir):
        with manifest.editing(cn_dir) as packs:
            packs[name]["enabled"] = enabled
            entry = packs[name]
    return Result(name, entry, notes, restart_required=is_enabled != enabled)


def remove_pack(name: str, cn_dir: Path | None = None) -> Result:
    cn_dir = cn_dir or custom_nodes_dir()
    where, _ = pack_location(cn_dir, name)
    in_manifest = name in manifest.read(cn_dir)
    if where is None and not in_manifest:
        raise PackError(f"no pack named {name!r} in {cn_dir}")
    notes = []
    if where is not None:
        if where.is_dir():
            shutil.rmtree(where)
        else:
            where.unlink()
        notes.append(f"deleted {where}")
    venv = venv_dir(cn_dir, name)
    if venv.exists():
        shutil.rmtree(venv)
        notes.append(f"deleted its virtual environment {venv}")
    entry: dict = {}
    if in_manifest:
        with manifest.editing(cn_dir) as packs:
            entry = packs.pop(name)
    return Result(name, entry, notes)
