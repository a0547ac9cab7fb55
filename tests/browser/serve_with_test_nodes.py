"""`loom serve` (server.cli.main, unchanged) with the browser test nodes added to the built-in registry."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))
sys.path.insert(0, str(HERE))

import browser_test_nodes  # noqa: E402

import nodes.registry  # noqa: E402

_builtin_registry = nodes.registry.builtin_registry


def _with_test_nodes():
    registry = _builtin_registry()
    registry.register_mappings(browser_test_nodes.NODE_CLASS_MAPPINGS, browser_test_nodes.NODE_DISPLAY_NAME_MAPPINGS,
                               "browser_test_nodes")
    return registry


nodes.registry.builtin_registry = _with_test_nodes

from server.cli import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
