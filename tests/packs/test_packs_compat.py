"""The ComfyUI compatibility layer: what packs import (folder_paths, comfy.*, nodes, server)."""

from __future__ import annotations

import asyncio
import importlib

import pytest
import torch
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from nodes import context
from nodes.custom_loader import ensure_compat_path

ensure_compat_path()


def test_folder_paths_follows_loom_folders(data_dirs):
    import folder_paths

    ckpt_dir = data_dirs.models_dirs[0] / "checkpoints"
    (ckpt_dir / "sub").mkdir(parents=True)
    (ckpt_dir / "sub" / "a.safetensors").write_bytes(b"x")
    (ckpt_dir / "notes.txt").write_text("not a model")
    assert folder_paths.get_filename_list("checkpoints") == ["sub/a.safetensors"]
    assert folder_paths.get_full_path("checkpoints", "sub/a.safetensors") == str(ckpt_dir / "sub" / "a.safetensors")
    assert folder_paths.get_full_path("checkpoints", "../../etc/passwd") is None
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        folder_paths.get_full_path_or_raise("checkpoints", "missing.safetensors")
    assert folder_paths.models_dir == str(data_dirs.models_dirs[0])
    assert folder_paths.get_output_directory() == str(data_dirs.output_dir)
    assert folder_paths.get_folder_paths("unet") == folder_paths.get_folder_paths("diffusion_models")
    assert folder_paths.folder_names_and_paths["checkpoints"][1] == folder_paths.supported_pt_extensions
    assert folder_paths.filter_files_extensions(["a.PT", "b.txt"], [".pt"]) == ["a.PT"]
    assert folder_paths.filter_files_extensions(["a", "b"], []) == ["a", "b"]


def test_annotated_paths_and_save_path(data_dirs):
    import folder_paths

    (data_dirs.output_dir / "x.png").write_bytes(b"png")
    assert folder_paths.get_annotated_filepath("x.png [output]") == str(data_dirs.output_dir / "x.png")
    assert folder_paths.exists_annotated_filepath("x.png [output]")
    assert not folder_paths.exists_annotated_filepath("x.png")  # default folder is input
    assert not folder_paths.exists_annotated_filepath("../../x.png [output]")
    folder, name, counter, subfolder, _ = folder_paths.get_save_image_path("sub/img", folder_paths.get_output_directory())
    assert (folder, name, counter, subfolder) == (str(data_dirs.output_dir / "sub"), "img", 1, "sub")


def test_pack_added_model_folder_reaches_loom(data_dirs, tmp_path):
    """A pack's new model kind (the IPAdapter idiom) and extra folders are seen by Loom's own listing."""
    import folder_paths

    from nodes import paths

    extra = tmp_path / "more_ckpts"
    extra.mkdir()
    (extra / "b.ckpt").write_bytes(b"x")
    folder_paths.add_model_folder_path("checkpoints", str(extra))
    assert "b.ckpt" in paths.get_filename_list("checkpoints")

    ip = tmp_path / "ipadapter"
    ip.mkdir()
    (ip / "ip.bin").write_bytes(b"x")
    folder_paths.folder_names_and_paths["ipadapter"] = ([str(ip)], folder_paths.supported_pt_extensions)
    assert folder_paths.get_filename_list("ipadapter") == ["ip.bin"]
    folder_paths._push_to_loom()
    assert paths.get_full_path("ipadapter", "ip.bin") == ip / "ip.bin"
    with pytest.raises(KeyError):
        folder_paths.get_folder_paths("no_such_kind")


def test_unimplemented_names_fail_loudly_but_hasattr_is_false():
    import comfy.model_management
    import comfy.sd
    import folder_paths

    assert not hasattr(comfy.sd, "load_checkpoint_guess_config")
    with pytest.raises(NotImplementedError, match="comfy.sd.load_checkpoint_guess_config"):
        comfy.sd.load_checkpoint_guess_config("x")
    with pytest.raises(NotImplementedError, match="load_models_gpu"):
        comfy.model_management.load_models_gpu([])
    with pytest.raises(NotImplementedError, match="set_output_directory"):
        folder_paths.set_output_directory("/tmp")
    with pytest.raises(ImportError, match="comfy.ldm"):
        importlib.import_module("comfy.ldm.modules.attention")


def test_progress_bar_reports_through_loom_context():
    import comfy.utils

    seen = []
    ctx = context.NodeContext("p1", "7", "7", context.InterruptFlag(), on_progress=lambda *a: seen.append(a[:3]))
    token = context.set_current(ctx)
    try:
        bar = comfy.utils.ProgressBar(4)
        bar.update(1)
        bar.update_absolute(3)
        bar.update(5)  # clamped to the total
        ctx.interrupt.set()
        with pytest.raises(context.InterruptProcessing):
            bar.update(1)
    finally:
        context.reset_current(token)
    assert seen == [("7", 1, 4), ("7", 3, 4), ("7", 4, 4)]


def test_interrupt_helpers_act_on_the_running_node():
    import comfy.model_management as mm

    import nodes

    assert mm.InterruptProcessingException is context.InterruptProcessing
    flag = context.InterruptFlag()
    token = context.set_current(context.NodeContext("p", "1", "1", flag))
    try:
        assert not mm.processing_interrupted()
        nodes.interrupt_processing()
        assert flag.is_set() and mm.processing_interrupted()
        with pytest.raises(context.InterruptProcessing):
            mm.throw_exception_if_processing_interrupted()
        with pytest.raises(context.InterruptProcessing):
            nodes.before_node_execution()
        mm.interrupt_current_processing(False)
        assert not flag.is_set()
    finally:
        context.reset_current(token)
    assert not context.global_interrupt().is_set()


def test_devices_and_cli_args():
    import comfy.cli_args
    import comfy.model_management as mm

    assert mm.get_torch_device().type in ("cpu", "cuda", "mps")
    assert mm.intermediate_device() == torch.device("cpu")
    assert mm.is_device_cpu(torch.device("cpu")) and not mm.is_device_mps(torch.device("cpu"))
    assert mm.get_free_memory(torch.device("cpu")) > 0
    assert comfy.cli_args.args.disable_metadata is False
    with pytest.raises(NotImplementedError, match="args.some_new_flag"):
        _ = comfy.cli_args.args.some_new_flag


def test_common_upscale_and_tiled_scale():
    import comfy.utils

    x = torch.rand(2, 3, 8, 12)
    up = comfy.utils.common_upscale(x, 24, 16, "bilinear", "disabled")
    assert up.shape == (2, 3, 16, 24)
    cropped = comfy.utils.common_upscale(x, 8, 8, "nearest-exact", "center")
    assert cropped.shape == (2, 3, 8, 8)
    # An identity upscaler stitched from overlapping tiles gives the input back.
    out = comfy.utils.tiled_scale(x, lambda t: t, tile_x=5, tile_y=4, overlap=1, upscale_amount=1, out_channels=3)
    assert torch.allclose(out, x, atol=1e-5)
    doubled = comfy.utils.tiled_scale(x, lambda t: torch.nn.functional.interpolate(t, scale_factor=2),
                                      tile_x=6, tile_y=6, overlap=2, upscale_amount=2, out_channels=3)
    assert doubled.shape == (2, 3, 16, 24)
    assert comfy.utils.repeat_to_batch_size(torch.zeros(2, 1), 5).shape == (5, 1)


def test_load_torch_file_round_trip(tmp_path):
    import comfy.utils

    sd = {"w": torch.arange(6.0).reshape(2, 3)}
    comfy.utils.save_torch_file(sd, str(tmp_path / "m.safetensors"), metadata={"k": "v"})
    loaded, meta = comfy.utils.load_torch_file(str(tmp_path / "m.safetensors"), return_metadata=True)
    assert torch.equal(loaded["w"], sd["w"]) and meta == {"k": "v"}
    torch.save({"state_dict": sd}, tmp_path / "m.ckpt")
    assert torch.equal(comfy.utils.load_torch_file(str(tmp_path / "m.ckpt"))["w"], sd["w"])


def test_sampler_names_come_from_loom():
    import comfy.samplers

    import nodes

    if "KSampler" not in nodes.NODE_CLASS_MAPPINGS:
        pytest.skip("Loom's KSampler node is not available in this checkout")
    offered = nodes.NODE_CLASS_MAPPINGS["KSampler"].INPUT_TYPES()["required"]["sampler_name"][0]
    assert comfy.samplers.KSampler.SAMPLERS == list(offered)
    assert comfy.samplers.SCHEDULER_NAMES == comfy.samplers.KSampler.SCHEDULERS
    with pytest.raises(NotImplementedError, match="KSampler"):
        comfy.samplers.KSampler(None, 1)


def test_nodes_module_exposes_comfy_names():
    import nodes
    from nodes.interface import MAX_RESOLUTION

    assert nodes.MAX_RESOLUTION == MAX_RESOLUTION
    assert "SaveImage" in nodes.NODE_CLASS_MAPPINGS
    assert nodes.SaveImage is nodes.NODE_CLASS_MAPPINGS["SaveImage"]
    assert not hasattr(nodes, "NoSuchComfyThing")
    from nodes import paths  # submodules still import normally

    assert paths.folders is not None


def test_comfy_execution_and_types():
    from comfy.comfy_types import IO
    from comfy_execution.graph import ExecutionBlocker
    from comfy_execution.graph_utils import GraphBuilder, is_link

    from nodes.interface import ExecutionBlocker as LoomBlocker

    assert ExecutionBlocker is LoomBlocker
    g = GraphBuilder(prefix="x.")
    n = g.node("ImageInvert", image=["1", 0])
    assert is_link(n.out(0)) and g.finalize()["x.0"]["class_type"] == "ImageInvert"
    assert not (IO.ANY != "IMAGE") and IO.IMAGE == "IMAGE" and IO.IMAGE != "MASK"


def test_prompt_server_routes_messages_and_handlers():
    from server import PromptServer, compat_bridge

    inst = PromptServer.instance
    assert "custom_nodes_from_web" in inst.supports

    @inst.routes.get("/loomtest/hello")
    async def hello(request):
        return web.json_response({"hi": True})

    inst.app.router.add_get("/loomtest/recorded", hello)  # recorded before the server exists, replayed at mount
    sent = []
    compat_bridge.bind_headless(lambda event, data, sid: sent.append((event, data, sid)))
    inst.send_sync("loomtest.event", {"x": 1}, "client-1")
    asyncio.run(inst.send("loomtest.async", {"y": 2}))
    assert sent == [("loomtest.event", {"x": 1}, "client-1"), ("loomtest.async", {"y": 2}, None)]

    inst.add_on_prompt_handler(lambda body: {**body, "touched": True})
    inst.add_on_prompt_handler(lambda body: 1 / 0)  # a failing handler is skipped
    assert compat_bridge.trigger_on_prompt({"prompt": {}}) == {"prompt": {}, "touched": True}
    inst.on_prompt_handlers.clear()

    with pytest.raises(AttributeError, match="PromptServer.instance.some_private_thing"):
        _ = inst.some_private_thing

    async def serve():
        app = web.Application()
        assert compat_bridge.mount_routes(app) >= 2
        async with TestClient(TestServer(app)) as client:
            for path in ("/loomtest/hello", "/loomtest/recorded"):
                resp = await client.get(path)
                assert resp.status == 200 and (await resp.json()) == {"hi": True}

    try:
        asyncio.run(serve())
    finally:
        compat_bridge.unbind()
