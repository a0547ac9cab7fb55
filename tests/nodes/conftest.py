"""Fixtures for the built-in node tests: the registry and a helper that runs one node."""

import pytest

from nodes.registry import builtin_registry


@pytest.fixture(scope="session")
def registry():
    reg = builtin_registry()
    assert not reg.load_errors, reg.load_errors
    return reg


@pytest.fixture
def run_node(registry):
    """run_node("ImageScale", image=..., ...) -> what the node's FUNCTION returns."""

    def run(class_type, **inputs):
        node_def = registry.get(class_type)
        assert node_def is not None, f"{class_type} is not registered"
        return getattr(node_def.cls(), node_def.function_name)(**inputs)

    return run
