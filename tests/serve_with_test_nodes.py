"""`loom serve` exactly as users run it (server.cli.main, unchanged), with test-only nodes added to the
built-in registry:

    python tests/serve_with_test_nodes.py <file of test nodes>.py serve --port ...

The nodes file's NODE_CLASS_MAPPINGS (and NODE_DISPLAY_NAME_MAPPINGS, if any) are registered.
"""

import importlib
import os
import sys
from pathlib import Path

# Make modules look absent (to test the errors users see without them).
for _name in filter(None, os.environ.get("LOOM_TEST_HIDE_MODULES", "").split(",")):
    sys.modules[_name] = None

NODES_FILE = Path(sys.argv[1]).resolve()
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(NODES_FILE.parent))

test_nodes = importlib.import_module(NODES_FILE.stem)

import nodes.registry  # noqa: E402

_builtin_registry = nodes.registry.builtin_registry


def _with_test_nodes():
    registry = _builtin_registry()
    registry.register_mappings(test_nodes.NODE_CLASS_MAPPINGS, getattr(test_nodes, "NODE_DISPLAY_NAME_MAPPINGS", None),
                               NODES_FILE.stem)
    return registry


nodes.registry.builtin_registry = _with_test_nodes

from server.cli import main  # noqa: E402

sys.exit(main(sys.argv[2:]))
