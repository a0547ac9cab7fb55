"""Fetching a pack: a git repository (any remote git understands, file:// included, optional
`@ref`), a local folder (copied), or a local .zip archive (extracted, refusing paths that leave it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

GIT_TIMEOUT_S = 600


class SourceError(RuntimeError):
    """The source could not be fetched; the message says why."""


@dataclass
class Source:
    kind: str          # "git" | "folder" | "zip"
    location: str      # URL or absolute path
    ref: str | None = None

    @property
    def default_name(self) -> str:
        tail = self.location.rstrip("/").replace("\\", "/").rsplit("/", 1)[-1]
        tail = tail.rsplit(":", 1)[-1]  # git@host:owner/repo
        for suffix in (".git", ".zip"):
            tail = tail.removesuffix(suffix)
        return tail


_GIT_URL = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|[\w.-]+@[\w.-]+:)", re.I)


def parse(source: str) -> Source:
    """`SOURCE[@ref]` -> Source. A path that exists is never split at '@'."""
    path = Path(source).expanduser()
    if path.exists():
        return _local(path, None)
    location, ref = source, None
    if "@" in source:
        left, right = source.rsplit("@", 1)
        is_ref = bool(right) and ":" not in right  # git@host:owner/repo has its '@' before the ':'
        if "://" in left and "/" not in left.split("://", 1)[1]:
            is_ref = False  # https://user@host/repo: the '@' is part of the URL
        if is_ref and (_GIT_URL.match(left) or Path(left).expanduser().exists()):
            location, ref = left, right
    local = Path(location).expanduser()
    if local.exists():
        return _local(local, ref)
    if _GIT_URL.match(location):
        if location.lower().endswith(".zip"):
            raise SourceError(f"{location}: only local .zip files can be installed (download it first)")
        return Source("git", location, ref)
    raise SourceError(f"{source!r} is not an existing folder, a .zip file or a git URL")


def _local(path: Path, ref: str | None) -> Source:
    path = path.resolve()
    if path.is_dir():
        if (path / ".git").exists() and ref:
            return Source("git", path.as_uri(), ref)
        if ref:
            raise SourceError(f"{path}: '@{ref}' needs a git repository")
        return Source("folder", str(path))
    if path.suffix.lower() == ".zip":
        if ref:
            raise SourceError(f"{path}: '@{ref}' cannot apply to a .zip file")
        return Source("zip", str(path))
    if path.suffix == ".py":
        return Source("folder", str(path))
    raise SourceError(f"{path} is neither a folder, a .py file nor a .zip archive")


def git(args: list[str], cwd: Path | None = None) -> str:
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0")
    try:
        done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S)
    except FileNotFoundError as e:
        raise SourceError("git is not installed") from e
    except subprocess.TimeoutExpired as e:
        raise SourceError(f"git {' '.join(args)} took longer than {GIT_TIMEOUT_S} s") from e
    if done.returncode != 0:
        raise SourceError(f"git {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def fetch(source: Source, dest: Path) -> str | None:
    """Put the pack's files in `dest` (which must not exist). Returns the git commit, if any."""
    if source.kind == "git":
        git(["clone", "--recursive", "--quiet", source.location, str(dest)])
        if source.ref:
            git(["checkout", "--quiet", source.ref], cwd=dest)
            git(["submodule", "update", "--init", "--recursive", "--quiet"], cwd=dest)
        return git(["rev-parse", "HEAD"], cwd=dest)
    if source.kind == "folder":
        src = Path(source.location)
        if src.is_file():
            dest.mkdir(parents=True)
            shutil.copy2(src, dest / src.name)
        else:
            shutil.copytree(src, dest, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".venv", ".venvs"))
        return None
    if source.kind == "zip":
        extract_zip(Path(source.location), dest)
        return None
    raise SourceError(f"unknown source kind {source.kind}")


def extract_zip(archive: Path, dest: Path) -> None:
    """Extract; a single top-level folder becomes the pack root. Members may not leave dest."""
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as e:
        raise SourceError(f"{archive} is not a valid zip archive") from e
    staging = dest.with_name(dest.name + ".unzip")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    root = staging.resolve()
    with zf:
        for member in zf.infolist():
            target = (staging / member.filename).resolve()
            if target != root and root not in target.parents:
                shutil.rmtree(staging, ignore_errors=True)
                raise SourceError(f"{archive}: member {member.filename!r} would be written outside the pack")
            if (member.external_attr >> 16) & 0o170000 == 0o120000:
                shutil.rmtree(staging, ignore_errors=True)
                raise SourceError(f"{archive}: member {member.filename!r} is a symbolic link; refused")
        zf.extractall(staging)
    entries = [p for p in staging.iterdir() if p.name != "__MACOSX"]
    top = entries[0] if len(entries) == 1 and entries[0].is_dir() else staging
    shutil.move(str(top), str(dest))
    shutil.rmtree(staging, ignore_errors=True)
