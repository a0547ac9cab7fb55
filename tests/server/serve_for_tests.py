"""`loom serve` exactly as users run it, with the test-only nodes added to the built-in registry."""

import os
import sys
from pathlib import Path

# Make modules look absent (to test the errors users see without them).
for _name in filter(None, os.environ.get("LOOM_TEST_HIDE_MODULES", "").split(",")):
    sys.modules[_name] = None

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))
sys.path.insert(0, str(HERE))

import srv_test_nodes  # noqa: E402

import nodes.registry  # noqa: E402

_builtin_registry = nodes.registry.builtin_registry


def _with_test_nodes():
    registry = _builtin_registry()
    registry.register_mappings(srv_test_nodes.NODE_CLASS_MAPPINGS, None, "srv_test_nodes")
    return registry


nodes.registry.builtin_registry = _with_test_nodes

from server.cli import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
