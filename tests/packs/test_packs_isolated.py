"""Isolated packs: their own virtual environment and process, behind the same node interface."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from pack_helpers import TEST_DEP, write_pack

from engine.cache import NullCache
from engine.execution import Executor
from engine.validation import validate_prompt
from nodes import context
from nodes.custom_loader import load_custom_nodes
from nodes.registry import builtin_registry
from server.packs import deps, install, isolated

ISOLATED_PACK = f'''
import os
import time
import torch
import comfy.utils
import {TEST_DEP}


class WhereAmI:
    @classmethod
    def INPUT_TYPES(cls):
        return {{"required": {{"image": ("IMAGE",), "steps": ("INT", {{"default": 3, "min": 1}})}},
                "optional": {{"extra": ("LATENT",)}}}}

    RETURN_TYPES = ("IMAGE", "INT", "INT", "LATENT")
    RETURN_NAMES = ("image", "pid", "dep_value", "latent")
    FUNCTION = "run"
    CATEGORY = "isolated"

    def run(self, image, steps, extra=None):
        bar = comfy.utils.ProgressBar(steps)
        for _ in range(steps):
            bar.update(1)
        latent = {{"samples": torch.zeros(1, 4, 2, 2), "batch_index": [0]}}
        return (1.0 - image, os.getpid(), {TEST_DEP}.VALUE, latent)


class Slow:
    @classmethod
    def INPUT_TYPES(cls):
        return {{"required": {{"seconds": ("FLOAT", {{"default": 30.0}})}}}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self, seconds):
        bar = comfy.utils.ProgressBar(1000)
        end = time.time() + seconds
        while time.time() < end:
            time.sleep(0.02)
            bar.update(1)   # raises InterruptProcessing once Loom interrupts
        return (0,)


class Crash:
    @classmethod
    def INPUT_TYPES(cls):
        return {{"required": {{}}}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self):
        os._exit(7)


class Fails:
    @classmethod
    def INPUT_TYPES(cls):
        return {{"required": {{"x": ("INT", {{"default": 1}})}}}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def VALIDATE_INPUTS(cls, x):
        return True if x >= 0 else "x must not be negative"

    def run(self, x):
        raise ValueError("the pack's node failed on purpose")


NODE_CLASS_MAPPINGS = {{"IsoWhereAmI": WhereAmI, "IsoSlow": Slow, "IsoCrash": Crash, "IsoFails": Fails}}
NODE_DISPLAY_NAME_MAPPINGS = {{"IsoWhereAmI": "Where am I (isolated)"}}
'''


@pytest.fixture(scope="module")
def iso(tmp_path_factory, wheelhouse):
    """One isolated install shared by the tests here (creating a venv and pip-installing is slow)."""
    base = tmp_path_factory.mktemp("iso")
    cn_dir = base / "custom_nodes"
    cn_dir.mkdir()
    src = write_pack(base / "src", "isopack", ISOLATED_PACK, requirements__txt=f"{TEST_DEP}==2.0.0\n")
    result = install.install_pack(str(src), isolated=True, cn_dir=cn_dir,
                                  pip_args=["--no-index", "--find-links", str(wheelhouse)])
    yield cn_dir, result
    isolated.stop_all()


@pytest.fixture
def registry(iso, data_dirs):
    cn_dir, _ = iso
    reg = builtin_registry()
    infos = load_custom_nodes(reg, dirs=[cn_dir])
    assert infos[0].error is None, infos[0].error
    assert infos[0].isolated
    return reg


def test_install_makes_a_venv_with_the_packs_own_requirement(iso):
    cn_dir, result = iso
    assert result.entry["isolated"] is True
    python = result.entry["python"]
    assert python.startswith(str(cn_dir / ".venvs" / "isopack"))
    assert any(f"{TEST_DEP}==2.0.0" in n and "virtual environment" in n for n in result.notes)
    # the requirement is in the pack's venv, not in Loom's environment
    in_venv = subprocess.run([python, "-c", f"import {TEST_DEP}, torch; print({TEST_DEP}.VALUE)"],
                             capture_output=True, text=True)
    assert in_venv.stdout.strip() == "2000", in_venv.stderr
    in_loom = subprocess.run([sys.executable, "-c", f"import {TEST_DEP}"], capture_output=True, text=True)
    assert in_loom.returncode != 0


def test_isolated_node_runs_in_its_own_process_through_the_engine(registry):
    assert registry.object_info("IsoWhereAmI")["IsoWhereAmI"]["display_name"] == "Where am I (isolated)"
    assert registry.object_info("IsoWhereAmI")["IsoWhereAmI"]["python_module"] == "custom_nodes.isopack"
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 4, "batch_size": 1, "color": 0}},
        "2": {"class_type": "IsoWhereAmI", "inputs": {"image": ["1", 0], "steps": 3}},
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 1]}},
        "4": {"class_type": "PreviewAny", "inputs": {"source": ["2", 2]}},
        "5": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
        "6": {"class_type": "PreviewAny", "inputs": {"source": ["2", 3]}},
    }
    v = validate_prompt(registry, prompt)
    assert v.ok, v.node_errors
    events = []
    result = Executor(registry, cache=NullCache()).execute(prompt, "p", execute_outputs=v.outputs,
                                                             on_event=events.append)
    assert result.status == "success", result.messages
    child_pid = int(result.outputs["3"]["text"][0])
    assert child_pid != os.getpid()
    assert result.outputs["4"]["text"] == ["2000"]
    progress = [(e.data["node"], e.data["value"]) for e in events if e.type == "progress"]
    assert progress == [("2", 1), ("2", 2), ("2", 3)]


def test_values_cross_the_boundary_intact(registry):
    cls = registry.get("IsoWhereAmI").cls
    image = torch.rand(2, 3, 5, 3)
    out_image, pid, value, latent = cls().run_isolated(image=image, steps=1, extra={"samples": torch.ones(1)})
    assert torch.allclose(out_image, 1.0 - image) and out_image.dtype == torch.float32
    assert latent["batch_index"] == [0] and latent["samples"].shape == (1, 4, 2, 2)
    with pytest.raises(TypeError, match="cannot be passed"):
        cls().run_isolated(image=image, steps=1, extra=object())


def test_errors_validation_interrupt_and_crash_leave_loom_running(registry):
    fails = registry.get("IsoFails").cls
    assert fails.VALIDATE_INPUTS(x=-1) == "x must not be negative"
    v = validate_prompt(registry, {"1": {"class_type": "IsoFails", "inputs": {"x": -1}},
                                   "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}})
    assert not v.ok and "x must not be negative" in str(v.node_errors)
    with pytest.raises(isolated.IsolatedPackError, match="failed on purpose"):
        fails().run_isolated(x=1)

    flag = context.InterruptFlag()
    token = context.set_current(context.NodeContext("p", "9", "9", flag, on_progress=lambda *a: flag.set()))
    try:
        with pytest.raises(context.InterruptProcessing):
            registry.get("IsoSlow").cls().run_isolated(seconds=30.0)
    finally:
        context.reset_current(token)

    first_pid = registry.get("IsoWhereAmI").cls().run_isolated(image=torch.zeros(1, 1, 1, 3), steps=1)[1]
    with pytest.raises(isolated.IsolatedPackError, match=r"exited \(code 7\)"):
        registry.get("IsoCrash").cls().run_isolated()
    # the next call starts a fresh process
    second_pid = registry.get("IsoWhereAmI").cls().run_isolated(image=torch.zeros(1, 1, 1, 3), steps=1)[1]
    assert second_pid != first_pid and second_pid != os.getpid()


def test_isolated_install_still_refuses_the_torch_family(tmp_path, wheelhouse):
    cn_dir = tmp_path / "cn"
    src = write_pack(tmp_path / "src", "wantstorch", "NODE_CLASS_MAPPINGS = {}\n", requirements__txt="torch<2\n")
    with pytest.raises(deps.DependencyConflict, match="torch"):
        install.install_pack(str(src), isolated=True, cn_dir=cn_dir,
                             pip_args=["--no-index", "--find-links", str(wheelhouse)])
    assert not (cn_dir / ".venvs" / "wantstorch").exists() and not (cn_dir / "wantstorch").exists()
