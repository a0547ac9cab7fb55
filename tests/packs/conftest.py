"""Fixtures for the node-pack tests. Nothing reaches the network: pip is pointed at a folder of
tiny wheels built here (`--no-index --find-links`), including a fake `numpy 1.26.0` that exists only
to be refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from pack_helpers import TEST_DEP, make_wheel


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("wheelhouse")
    make_wheel(d, "numpy", "1.26.0", files={"numpy/__init__.py": "raise ImportError('fake numpy for tests')\n"})
    make_wheel(d, TEST_DEP, "1.0.0", files={f"{TEST_DEP}/__init__.py": "VALUE = 42\n"})
    make_wheel(d, TEST_DEP, "2.0.0", files={f"{TEST_DEP}/__init__.py": "VALUE = 2000\n"})
    return d


@pytest.fixture
def pip_local(monkeypatch, wheelhouse) -> list[str]:
    """pip sees only the wheelhouse (through its environment variables, as a user's pip.conf would)."""
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheelhouse))
    return ["--no-index", "--find-links", str(wheelhouse)]


@pytest.fixture
def cn_dir(tmp_path, monkeypatch, data_dirs) -> Path:
    """An empty custom_nodes folder that the loader, installer and CLI use."""
    d = tmp_path / "custom_nodes"
    d.mkdir()
    monkeypatch.setenv("LOOM_CUSTOM_NODES_DIR", str(d))
    return d
