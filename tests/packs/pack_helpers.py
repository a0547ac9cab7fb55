"""Helpers for the node-pack tests: packs written on the fly, git repositories, tiny wheels, the CLI."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GIT_ENV = {"GIT_AUTHOR_NAME": "Loom Test", "GIT_AUTHOR_EMAIL": "test@loom.invalid",
           "GIT_COMMITTER_NAME": "Loom Test", "GIT_COMMITTER_EMAIL": "test@loom.invalid",
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
TEST_DEP = "loomtestdep"  # a tiny package that only the wheelhouse has


def make_wheel(outdir: Path, name: str, version: str, requires: tuple[str, ...] = (),
               files: dict[str, str] | None = None) -> Path:
    """A minimal valid wheel (pure Python), written by hand so no build backend is needed."""
    files = dict(files or {})
    norm = name.replace("-", "_")
    dist_info = f"{norm}-{version}.dist-info"
    files[f"{dist_info}/METADATA"] = (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                                      + "".join(f"Requires-Dist: {r}\n" for r in requires))
    files[f"{dist_info}/WHEEL"] = "Wheel-Version: 1.0\nGenerator: loom-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = []
    for path, content in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(content.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(content.encode())}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = "\n".join(record) + "\n"
    path = outdir / f"{norm}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for p, c in files.items():
            zf.writestr(p, c)
    return path


def write_pack(root: Path, name: str, code: str, **files: str) -> Path:
    """A folder pack: __init__.py from `code`, other files from keyword arguments (dots as '__')."""
    pack = root / name
    pack.mkdir(parents=True, exist_ok=True)
    (pack / "__init__.py").write_text(textwrap.dedent(code))
    for fname, content in files.items():
        target = pack / fname.replace("__", ".")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(content))
    return pack


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, env={**os.environ, **GIT_ENV}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def init_repo(path: Path) -> Path:
    git(path, "init", "-q", "-b", "main")
    return path


def node_code(class_type: str, value: str = "1", extra: str = "") -> str:
    """A pack with one node returning INT `value`."""
    return textwrap.dedent(f"""
    class Node:
        @classmethod
        def INPUT_TYPES(cls):
            return {{"required": {{}}}}
        RETURN_TYPES = ("INT",)
        FUNCTION = "go"
        CATEGORY = "test"
        def go(self):
            return ({value},)

    NODE_CLASS_MAPPINGS = {{"{class_type}": Node}}
    """) + textwrap.dedent(extra)


def loom_cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "server.cli", *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV, "OMP_NUM_THREADS": "1", **(env or {})}, timeout=timeout)
