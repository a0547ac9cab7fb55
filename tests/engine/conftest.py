import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import testing_nodes  # noqa: E402

from engine.cache import LRUCache  # noqa: E402
from engine.execution import Executor  # noqa: E402
from nodes.registry import NodeRegistry  # noqa: E402


@pytest.fixture
def registry():
    reg = NodeRegistry()
    reg.register_mappings(testing_nodes.NODE_CLASS_MAPPINGS, {}, "tests.engine.testing_nodes", builtin=True)
    return reg


@pytest.fixture
def calls():
    testing_nodes.CALLS.clear()
    return testing_nodes.CALLS


class Recorder:
    def __init__(self):
        self.events = []

    def __call__(self, event):
        self.events.append(event)

    def types(self, skip=("progress_state",)):
        return [e.type for e in self.events if e.type not in skip]

    def of(self, kind):
        return [e.data for e in self.events if e.type == kind]


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
def executor(registry):
    return Executor(registry, cache=LRUCache(1 << 30))
