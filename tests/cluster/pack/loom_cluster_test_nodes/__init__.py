"""The server tests' slow and failing nodes as a node pack, so Ray workers (which load packs, not test
modules) have them too. The cluster tests point LOOM_CUSTOM_NODES_DIR at this pack's folder."""

import importlib.util
from pathlib import Path

_source = Path(__file__).resolve().parents[3] / "server" / "srv_test_nodes.py"
_spec = importlib.util.spec_from_file_location("loom_srv_test_nodes", _source)
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)

NODE_CLASS_MAPPINGS = dict(_module.NODE_CLASS_MAPPINGS)
