"""Fixtures: the example workflows in workflows/ run with the models the repository ships, on the CPU."""

from __future__ import annotations

import pytest

from tests.workflows_run.workflows_run_support import MODELS, WorkflowRunner, load_builder


@pytest.fixture(scope="session")
def builder():
    return load_builder()


@pytest.fixture(scope="session")
def runner(tmp_path_factory, builder) -> WorkflowRunner:
    ckpt = MODELS / "checkpoints" / builder.DEMO_CKPT
    if not ckpt.is_file():
        pytest.fail(f"the shipped demo checkpoint {ckpt} is missing")
    return WorkflowRunner(tmp_path_factory.mktemp("workflows_run"))
