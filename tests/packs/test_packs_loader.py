"""Loading packs from custom_nodes/: what is loaded, what is skipped, failures, hangs, side effects."""

from __future__ import annotations

import logging
import os
import sys
import textwrap
import time

import pytest
from pack_helpers import node_code, write_pack

from nodes.custom_loader import load_custom_nodes
from nodes.registry import NodeRegistry, builtin_registry


def load(cn_dir, registry=None, **kw):
    registry = registry if registry is not None else NodeRegistry()
    return registry, {p.name: p for p in load_custom_nodes(registry, dirs=[cn_dir], **kw)}


def test_folder_and_single_file_packs_load_with_comfy_conventions(cn_dir):
    write_pack(cn_dir, "pkg_pack", """
        from .impl import Thing          # relative imports work, as in ComfyUI
        NODE_CLASS_MAPPINGS = {"PkgThing": Thing}
        NODE_DISPLAY_NAME_MAPPINGS = {"PkgThing": "Pkg Thing"}
        WEB_DIRECTORY = "./js"
        """, impl__py=node_code("unused").replace("class Node", "class Thing").split("NODE_CLASS")[0],
        **{"js/ext__js": "console.log('x')"})
    (cn_dir / "single_file.py").write_text(node_code("SingleNode", "7"))
    (cn_dir / "readme.txt").write_text("not a pack")
    registry, packs = load(cn_dir)
    assert set(packs) == {"pkg_pack", "single_file"}
    assert packs["pkg_pack"].node_names == ["PkgThing"] and packs["pkg_pack"].error is None
    info = registry.object_info("PkgThing")["PkgThing"]
    assert info["python_module"] == "custom_nodes.pkg_pack" and info["display_name"] == "Pkg Thing"
    assert registry.get("PkgThing").cls.RELATIVE_PYTHON_MODULE == "custom_nodes.pkg_pack"
    assert registry.web_dirs["pkg_pack"] == (cn_dir / "pkg_pack" / "js").resolve()
    assert packs["single_file"].node_names == ["SingleNode"]
    # ComfyUI's module names: the folder path with dots as _x_, a file's path without .py
    assert packs["pkg_pack"].module_name == str(cn_dir / "pkg_pack").replace(".", "_x_")
    assert packs["single_file"].module_name == str(cn_dir / "single_file")
    assert registry.packs == list(packs.values())


def test_skipped_entries_allow_list_and_disable(cn_dir):
    write_pack(cn_dir, "good", node_code("GoodNode"))
    write_pack(cn_dir, "off.disabled", node_code("OffNode"))
    write_pack(cn_dir, ".hidden", node_code("HiddenNode"))
    write_pack(cn_dir, "__pycache__", node_code("CacheNode"))
    write_pack(cn_dir, "other", node_code("OtherNode"))
    _, packs = load(cn_dir)
    assert set(packs) == {"good", "other"}
    _, packs = load(cn_dir, allow=["other"])
    assert set(packs) == {"other"}
    _, packs = load(cn_dir, disabled=True)
    assert packs == {}
    _, packs = load(cn_dir, disabled=True, allow=["good"])
    assert set(packs) == {"good"}


def test_broken_pack_is_reported_and_the_rest_loads(cn_dir, caplog):
    write_pack(cn_dir, "a_broken", """
        import definitely_not_installed_module_xyz
        """)
    write_pack(cn_dir, "b_needs_comfy", """
        from comfy.sd import load_checkpoint_guess_config
        """)
    write_pack(cn_dir, "c_exits", "raise SystemExit(3)\n")
    write_pack(cn_dir, "d_no_mappings", "X = 1\n")
    write_pack(cn_dir, "e_good", node_code("StillLoaded"))
    with caplog.at_level(logging.INFO, logger="loom.packs"):
        registry, packs = load(cn_dir)
    assert "definitely_not_installed_module_xyz" in packs["a_broken"].error
    assert "Traceback" in packs["a_broken"].error and "loom nodes install" in packs["a_broken"].error
    assert "does not provide comfy.sd.load_checkpoint_guess_config" in packs["b_needs_comfy"].error
    assert "SystemExit" in packs["c_exits"].error
    assert "no NODE_CLASS_MAPPINGS" in packs["d_no_mappings"].error
    assert "StillLoaded" in registry and packs["e_good"].error is None
    assert registry.load_errors.keys() >= {"custom_nodes.a_broken", "custom_nodes.c_exits"}
    text = caplog.text
    assert "Import times for custom nodes:" in text and "(IMPORT FAILED)" in text
    assert "Cannot import" in text


def test_hanging_pack_is_abandoned_after_the_timeout(cn_dir):
    write_pack(cn_dir, "a_hangs", """
        import time
        while True:
            time.sleep(0.05)
        """)
    write_pack(cn_dir, "b_after", node_code("AfterHang"))
    start = time.monotonic()
    registry, packs = load(cn_dir, import_timeout=1.0)
    assert time.monotonic() - start < 10
    assert packs["a_hangs"].timed_out and "did not finish within 1 s" in packs["a_hangs"].error
    assert packs["a_hangs"].node_names == []
    assert "AfterHang" in registry


def test_packs_cannot_replace_builtin_nodes(cn_dir):
    write_pack(cn_dir, "clash", node_code("SaveImage").replace(
        'NODE_CLASS_MAPPINGS = {"SaveImage": Node}', 'NODE_CLASS_MAPPINGS = {"SaveImage": Node, "ClashOwn": Node}'))
    registry = builtin_registry()
    builtin_cls = registry.get("SaveImage").cls
    registry, packs = load(cn_dir, registry)
    assert registry.get("SaveImage").cls is builtin_cls
    assert packs["clash"].ignored_nodes == ["SaveImage"] and packs["clash"].node_names == ["ClashOwn"]


def test_side_effects_outside_the_pack_are_reported(cn_dir, data_dirs, monkeypatch):
    marker = data_dirs.user_dir / "written_by_pack.txt"
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delenv("LOOM_TEST_PACK_VAR", raising=False)
    import nodes.paths

    monkeypatch.setattr(nodes.paths, "safe_join", nodes.paths.safe_join)  # restored after the test
    write_pack(cn_dir, "noisy", textwrap.dedent(f"""
        import os, sys
        import nodes.paths
        open({str(marker)!r}, "w").write("hello")
        open(os.path.join(os.path.dirname(__file__), "own_cache.txt"), "w").write("inside: not reported")
        sys.path.append("/tmp/loom-pack-extra-path")
        os.environ["LOOM_TEST_PACK_VAR"] = "1"
        nodes.paths.safe_join = lambda *a: None
        """) + node_code("NoisyNode"))
    _, packs = load(cn_dir)
    notes = packs["noisy"].side_effects
    assert f"created file {marker}" in notes
    assert not any("own_cache.txt" in n for n in notes)
    assert "added to sys.path: /tmp/loom-pack-extra-path" in notes
    assert "environment variable LOOM_TEST_PACK_VAR set" in notes
    assert "replaced nodes.paths.{safe_join}" in notes
    assert os.environ.pop("LOOM_TEST_PACK_VAR") == "1"


def test_v3_entrypoint_with_v1_classes_and_pyproject_web(cn_dir):
    write_pack(cn_dir, "v3pack", """
        class V3Node:
            NODE_ID = "V3Style"
            @classmethod
            def INPUT_TYPES(cls):
                return {"required": {}}
            RETURN_TYPES = ("INT",)
            FUNCTION = "go"
            def go(self):
                return (3,)

        class Ext:
            async def get_node_list(self):
                return [V3Node]

        async def comfy_entrypoint():
            return Ext()
        """, pyproject__toml='[project]\nname = "v3-pack"\nversion = "0.1.0"\n[tool.comfy]\nweb = "webdir"\n',
        **{"webdir/a__js": "//"})
    registry, packs = load(cn_dir)
    assert packs["v3pack"].node_names == ["V3Style"]
    assert registry.web_dirs["v3-pack"] == (cn_dir / "v3pack" / "webdir").resolve()


def test_timing_log_lists_every_pack(cn_dir, caplog):
    write_pack(cn_dir, "p1", node_code("P1"))
    (cn_dir / "p2.py").write_text(node_code("P2"))
    with caplog.at_level(logging.INFO, logger="loom.packs"):
        load(cn_dir)
    lines = [r.getMessage() for r in caplog.records if "Import times" in r.getMessage()]
    assert len(lines) == 1
    assert str(cn_dir / "p1") in lines[0] and str(cn_dir / "p2.py") in lines[0]
    assert "seconds:" in lines[0]


@pytest.mark.parametrize("name", ["example_pack"])
def test_shipped_example_pack_loads(name):
    from nodes.custom_loader import COMPAT_DIR
    from nodes.paths import REPO_ROOT

    registry, packs = load(REPO_ROOT / "custom_nodes", allow=[name])
    assert packs[name].error is None
    assert set(packs[name].node_names) == {"ExampleGradientImage", "ExampleLazySwitch", "ExampleSplitLines"}
    assert registry.web_dirs[name] == REPO_ROOT / "custom_nodes" / name / "web"
    assert sys.path[0] == str(COMPAT_DIR)


def test_v3_schema_nodes_run_through_the_engine(cn_dir, data_dirs):
    write_pack(cn_dir, "v3schema", """
        from comfy_api.latest import ComfyExtension, io

        class Scale(io.ComfyNode):
            @classmethod
            def define_schema(cls):
                return io.Schema(
                    node_id="V3Scale", display_name="Scale (V3)", category="v3",
                    inputs=[io.Image.Input("image"),
                            io.Float.Input("factor", default=2.0, min=0.0, max=10.0),
                            io.Combo.Input("mode", options=["mul", "add"], default="mul"),
                            io.Int.Input("unused", optional=True)],
                    outputs=[io.Image.Output(display_name="scaled"), io.Float.Output()],
                    hidden=[io.Hidden.unique_id])

            @classmethod
            def validate_inputs(cls, factor):
                return True if factor != 3.0 else "factor 3 is not allowed"

            @classmethod
            def execute(cls, image, factor, mode, unused=None):
                out = image * factor if mode == "mul" else image + factor
                return io.NodeOutput(out, float(cls.hidden.unique_id), ui={"text": [mode]})

        class Ext(ComfyExtension):
            async def get_node_list(self):
                return [Scale]

        async def comfy_entrypoint():
            return Ext()
        """)
    from engine.execution import Executor
    from engine.validation import validate_prompt

    registry = builtin_registry()
    _, packs = load(cn_dir, registry)
    assert packs["v3schema"].error is None, packs["v3schema"].error
    info = registry.object_info("V3Scale")["V3Scale"]
    assert info["display_name"] == "Scale (V3)" and info["output_name"] == ["scaled", "FLOAT"]
    assert info["input"]["required"]["mode"] == [["mul", "add"], {"default": "mul"}]
    assert info["input"]["required"]["factor"] == ["FLOAT", {"default": 2.0, "min": 0.0, "max": 10.0}]
    assert "unused" in info["input"]["optional"] and info["input"]["hidden"] == {"unique_id": "UNIQUE_ID"}
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 2, "height": 2, "batch_size": 1,
                                                          "color": 0x010101}},
              "5": {"class_type": "V3Scale", "inputs": {"image": ["1", 0], "factor": 4.0, "mode": "mul"}},
              "6": {"class_type": "PreviewAny", "inputs": {"source": ["5", 1]}}}
    v = validate_prompt(registry, prompt)
    assert v.ok, v.node_errors
    result = Executor(registry).execute(prompt, "p", execute_outputs=v.outputs)
    assert result.status == "success", result.messages
    assert result.outputs["6"]["text"] == ["5.0"]
    bad = validate_prompt(registry, {**prompt, "5": {**prompt["5"], "inputs": {**prompt["5"]["inputs"], "factor": 3.0}}})
    assert not bad.ok and "factor 3 is not allowed" in str(bad.node_errors)
