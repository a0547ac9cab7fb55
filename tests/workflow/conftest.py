"""Fixtures for the workflow-format tests: a hand-written /object_info and a UI workflow builder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from workflow_builders import make_object_info


@pytest.fixture
def object_info() -> dict:
    return make_object_info()


@pytest.fixture
def object_info_file(tmp_path) -> Path:
    path = tmp_path / "object_info.json"
    path.write_text(json.dumps(make_object_info()))
    return path
