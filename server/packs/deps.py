"""A pack's Python requirements: checked against Loom's own before anything is installed.

`pip install --dry-run --report` resolves the pack's requirements (requirements.txt and
pyproject `[project] dependencies`). The install goes ahead only if the resolution changes nothing
Loom depends on: Loom's declared requirements (read from the installed `loom` distribution) and
everything they pull in, plus the torch family, which is never installed for a pack (it would
pull multi-GB builds and break the shared torch). Then exactly the resolved distributions are
installed with `--no-deps`, so what was checked is what lands. pip's own configuration (PIP_*
variables, pip.conf, `--find-links`/`--index-url` passed through) decides where packages come from.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

PIP_TIMEOUT_S = 1800
# Never installed or changed for a pack, isolated or not: they share Loom's torch.
TORCH_FAMILY = {"torch", "torchvision", "torchaudio", "triton", "xformers"}
# Always guarded even if the loom metadata does not list them (what ComfyUI packs most often pin).
CORE = {"torch", "diffusers", "transformers", "numpy", "safetensors", "accelerate", "peft", "pillow", "aiohttp",
        "scipy", "huggingface-hub", "tokenizers"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Change:
    name: str
    installed: str | None   # the version installed now (None: not installed)
    new: str
    reason: str             # why Loom cares

    def __str__(self) -> str:
        now = self.installed or "not installed"
        return f"{self.name} {now} -> {self.new} ({self.reason})"


class DependencyConflict(RuntimeError):
    """The pack's requirements would change packages Loom depends on."""

    def __init__(self, message: str, packages: list[str]):
        super().__init__(message)
        self.packages = packages


class PipError(RuntimeError):
    pass


@dataclass
class Plan:
    """What `pip install` would do for a pack's requirements."""

    requirements: list[str] = field(default_factory=list)
    install: list[dict] = field(default_factory=list)      # pip report "install" items
    changes: list[Change] = field(default_factory=list)    # of packages Loom cares about

    @property
    def specs(self) -> list[str]:
        out = []
        for item in self.install:
            meta = item["metadata"]
            out.append(item["download_info"]["url"] if item.get("is_direct") else f"{meta['name']}=={meta['version']}")
        return out


def read_requirements(pack_dir: Path) -> list[str]:
    """pip arguments for the pack's requirements: `-r requirements.txt` and pyproject dependencies."""
    args: list[str] = []
    req = pack_dir / "requirements.txt"
    if req.is_file() and any(line.strip() and not line.strip().startswith("#") for line in req.read_text().splitlines()):
        args += ["-r", str(req)]
    pyproject = pack_dir / "pyproject.toml"
    if pyproject.is_file():
        try:
            deps = tomllib.loads(pyproject.read_text()).get("project", {}).get("dependencies", [])
        except tomllib.TOMLDecodeError as e:
            raise PipError(f"{pyproject} is not valid TOML: {e}") from e
        args += [d for d in deps if isinstance(d, str) and d.strip()]
    return args


def loom_dependencies() -> dict[str, str]:
    """canonical name -> why it matters: Loom's requirements and everything they require, installed."""
    from packaging.requirements import Requirement

    guarded: dict[str, str] = {}
    try:
        roots = md.requires("loom") or []
    except md.PackageNotFoundError:
        roots = []
    queue: list[tuple[str, str]] = []
    for raw in roots:
        req = Requirement(raw)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            spec = f"{req.name}{req.specifier}" if str(req.specifier) else req.name
            queue.append((req.name, f"Loom requires {spec}"))
    queue += [(n, "Loom relies on it") for n in CORE]
    while queue:
        name, reason = queue.pop(0)  # breadth first: Loom's own requirements give the reason
        key = canonical(name)
        if key in guarded:
            continue
        guarded[key] = reason
        try:
            dist_requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        for raw in dist_requires:
            try:
                req = Requirement(raw)
            except Exception:
                continue
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                queue.append((req.name, f"needed by {name}"))
    return guarded


def _installed_versions(python: str | None) -> dict[str, str]:
    if python is None:
        return {canonical(d.metadata["Name"]): d.version for d in md.distributions() if d.metadata["Name"]}
    code = ("import importlib.metadata as m, json; print(json.dumps({d.metadata['Name']: d.version "
            "for d in m.distributions() if d.metadata['Name']}))")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120)
    return {canonical(k): v for k, v in json.loads(out.stdout or "{}").items()}


def _pip(args: list[str], python: str | None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pip"]
    if python is not None:
        cmd += ["--python", python]
    cmd += args
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        raise PipError(f"pip took longer than {PIP_TIMEOUT_S} s") from e


def plan(requirements: list[str], pip_args: list[str] | None = None, python: str | None = None,
         isolated: bool = False) -> Plan:
    """Resolve without installing; raise DependencyConflict if anything guarded would change.

    `python` is another interpreter to resolve for (an isolated pack's venv); there only the torch
    family is guarded, since the pack's own versions stay inside its venv.
    """
    result = Plan(requirements=list(requirements))
    if not requirements:
        return result
    done = _pip(["install", "--dry-run", "--report", "-", "--quiet", "--disable-pip-version-check",
                 *(pip_args or []), *requirements], python)
    if done.returncode != 0:
        _raise_resolution_failure(done.stderr or done.stdout, isolated)
    try:
        report = json.loads(done.stdout)
    except ValueError as e:
        raise PipError(f"pip's report could not be read: {done.stdout[:500]}") from e
    result.install = report.get("install", [])
    guarded = {n: "Loom shares torch with every pack" for n in TORCH_FAMILY}
    if not isolated:
        guarded = {**loom_dependencies(), **guarded}
    installed = _installed_versions(python)
    for item in result.install:
        name = item["metadata"]["name"]
        key = canonical(name)
        if key in guarded or key.startswith("nvidia-"):
            reason = guarded.get(key, "a CUDA library for torch")
            result.changes.append(Change(name, installed.get(key), item["metadata"]["version"], reason))
    if result.changes:
        names = [c.name for c in result.changes]
        lines = "\n  ".join(str(c) for c in result.changes)
        hint = "" if isolated else "\nInstall it with --isolated to give it its own environment."
        raise DependencyConflict(f"refused: the pack's requirements would change packages Loom depends on:\n"
                                 f"  {lines}{hint}", names)
    return result


def _raise_resolution_failure(stderr: str, isolated: bool) -> None:
    names = sorted(set(re.findall(r"(?:Cannot install|No matching distribution found for|conflict is caused by:\n?\s*)"
                                  r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", stderr)))
    guarded = loom_dependencies() if not isolated else {n: "" for n in TORCH_FAMILY}
    touched = [n for n in names if canonical(n) in guarded]
    detail = stderr.strip().splitlines()
    message = "\n  ".join(line for line in detail if line.strip())[-2000:]
    if touched:
        raise DependencyConflict(f"refused: the pack's requirements conflict with packages Loom depends on "
                                 f"({', '.join(touched)}):\n  {message}", touched)
    raise PipError(f"pip could not resolve the pack's requirements{' (' + ', '.join(names) + ')' if names else ''}:"
                   f"\n  {message}")


def install(p: Plan, pip_args: list[str] | None = None, python: str | None = None) -> None:
    """Install exactly what the plan resolved."""
    if not p.install:
        return
    done = _pip(["install", "--no-deps", "--quiet", "--disable-pip-version-check", *(pip_args or []), *p.specs],
                python)
    if done.returncode != 0:
        raise PipError(f"pip install failed:\n{done.stderr.strip() or done.stdout.strip()}")
