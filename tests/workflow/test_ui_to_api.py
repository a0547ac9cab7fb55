"""UI workflow -> API prompt: links, modes, virtual nodes, widget values."""

from __future__ import annotations

import pytest
from workflow_builders import BYPASS, MUTE, WorkflowBuilder, image_chain, load_data

from engine.workflow import WorkflowError, convert_ui_to_api


def convert(wf: dict, object_info: dict):
    return convert_ui_to_api(wf, object_info)


def test_default_workflow_converts_to_the_known_api_prompt(object_info):
    result = convert(load_data("default_workflow.json"), object_info)
    assert result.missing_node_types == [] and result.warnings == []
    assert result.prompt == {
        "3": {"inputs": {"seed": 156680208700286, "steps": 20, "cfg": 8, "sampler_name": "euler",
                         "scheduler": "normal", "denoise": 1, "model": ["4", 0], "positive": ["6", 0],
                         "negative": ["7", 0], "latent_image": ["5", 0]},
              "class_type": "KSampler", "_meta": {"title": "KSampler"}},
        "4": {"inputs": {"ckpt_name": "v1-5-pruned-emaonly-fp16.safetensors"},
              "class_type": "CheckpointLoaderSimple", "_meta": {"title": "Load Checkpoint"}},
        "5": {"inputs": {"width": 512, "height": 512, "batch_size": 1},
              "class_type": "EmptyLatentImage", "_meta": {"title": "Empty Latent Image"}},
        "6": {"inputs": {"text": "beautiful scenery nature glass bottle landscape, , purple galaxy bottle,",
                         "clip": ["4", 1]},
              "class_type": "CLIPTextEncode", "_meta": {"title": "CLIP Text Encode (Prompt)"}},
        "7": {"inputs": {"text": "text, watermark", "clip": ["4", 1]},
              "class_type": "CLIPTextEncode", "_meta": {"title": "CLIP Text Encode (Prompt)"}},
        "8": {"inputs": {"samples": ["3", 0], "vae": ["4", 2]},
              "class_type": "VAEDecode", "_meta": {"title": "VAE Decode"}},
        # SaveImage saved no widgets_values: the widget default is sent, as the frontend does.
        "9": {"inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]},
              "class_type": "SaveImage", "_meta": {"title": "Save Image"}},
    }


def test_muted_node_is_left_out_and_its_consumer_loses_the_link(object_info):
    wf = WorkflowBuilder()
    load, (inv,), save = image_chain(wf, [MUTE])
    prompt = convert(wf.build(), object_info).prompt
    assert str(inv["id"]) not in prompt
    assert prompt[str(save["id"])]["inputs"] == {"filename_prefix": "out"}


def test_bypass_chain_passes_the_input_through(object_info):
    wf = WorkflowBuilder()
    load, middles, save = image_chain(wf, [BYPASS, 0, BYPASS, BYPASS])
    prompt = convert(wf.build(), object_info).prompt
    kept = middles[1]
    assert set(prompt) == {str(load["id"]), str(kept["id"]), str(save["id"])}
    assert prompt[str(kept["id"])]["inputs"]["image"] == [str(load["id"]), 0]
    assert prompt[str(save["id"])]["inputs"]["images"] == [str(kept["id"]), 0]


def test_bypassed_lora_matches_inputs_by_type(object_info):
    """LoraLoader bypassed: MODEL goes to the model input, CLIP to the clip input."""
    wf = WorkflowBuilder()
    ckpt = wf.node("CheckpointLoaderSimple", outputs=["MODEL", "CLIP", "VAE"], widgets=["model.safetensors"])
    lora = wf.node("LoraLoader", inputs=[("model", "MODEL"), ("clip", "CLIP")], outputs=["MODEL", "CLIP"],
                   widgets=["style.safetensors", 1.0, 1.0], mode=BYPASS)
    wf.link(ckpt, 0, lora, 0)
    wf.link(ckpt, 1, lora, 1)
    enc = wf.node("CLIPTextEncode", inputs=[("clip", "CLIP")], outputs=["CONDITIONING"], widgets=["a cat"])
    wf.link(lora, 1, enc, 0)
    sampler = wf.node("KSampler", inputs=[("model", "MODEL"), ("positive", "CONDITIONING")], outputs=["LATENT"],
                      widgets=[1, "fixed", 20, 7.5, "euler", "normal", 1.0])
    wf.link(lora, 0, sampler, 0)
    wf.link(enc, 0, sampler, 1)
    prompt = convert(wf.build(), object_info).prompt
    assert prompt[str(enc["id"])]["inputs"]["clip"] == [str(ckpt["id"]), 1]
    assert prompt[str(sampler["id"])]["inputs"]["model"] == [str(ckpt["id"]), 0]


def test_bypass_prefers_exact_type_over_the_same_slot(object_info):
    """Output 0 of a bypassed node whose input 0 has another type takes the first input of the wanted type."""
    wf = WorkflowBuilder()
    ckpt = wf.node("CheckpointLoaderSimple", outputs=["MODEL", "CLIP", "VAE"], widgets=["model.safetensors"])
    odd = wf.node("LoraLoader", inputs=[("clip", "CLIP"), ("model", "MODEL")], outputs=["MODEL", "CLIP"],
                  widgets=["style.safetensors", 1.0, 1.0], mode=BYPASS)
    wf.link(ckpt, 1, odd, 0)
    wf.link(ckpt, 0, odd, 1)
    sampler = wf.node("KSampler", inputs=[("model", "MODEL")], outputs=["LATENT"],
                      widgets=[1, "fixed", 20, 7.5, "euler", "normal", 1.0])
    wf.link(odd, 0, sampler, 0)
    prompt = convert(wf.build(), object_info).prompt
    assert prompt[str(sampler["id"])]["inputs"]["model"] == [str(ckpt["id"]), 0]


def test_bypass_without_matching_input_drops_link_keeps_widget_value_and_warns(object_info):
    wf = WorkflowBuilder()
    load = wf.node("LoadImage", outputs=["IMAGE", "MASK"], widgets=["cat.png", "image"])
    scale = wf.node("ImageScale", inputs=[("image", "IMAGE")], outputs=["IMAGE"],
                    widgets=["bilinear", 64, 64, "disabled"], mode=BYPASS)
    wf.link(load, 0, scale, 0)
    # A primitive-typed consumer: TextJoin.b is a STRING widget socket fed by the bypassed IMAGE node.
    join = wf.node("TextJoin", inputs=[("b", "STRING", "b")], outputs=["STRING"], widgets=["kept"])
    wf.link(scale, 0, join, 0, "STRING")
    result = convert(wf.build(), object_info)
    assert result.prompt[str(join["id"])]["inputs"] == {"b": "kept"}
    assert any("bypassed node" in w and "STRING" in w for w in result.warnings)


def test_legacy_reroute_chain_and_reroute_into_bypass(object_info):
    wf = WorkflowBuilder()
    load = wf.node("LoadImage", outputs=["IMAGE", "MASK"], widgets=["cat.png", "image"])
    r1 = wf.node("Reroute", inputs=[("", "*")], outputs=["IMAGE"])
    r2 = wf.node("Reroute", inputs=[("", "*")], outputs=["IMAGE"])
    inv = wf.node("ImageInvert", inputs=[("image", "IMAGE")], outputs=["IMAGE"], mode=BYPASS)
    r3 = wf.node("Reroute", inputs=[("", "*")], outputs=["*"])
    save = wf.node("SaveImage", inputs=[("images", "IMAGE")], widgets=["out"])
    wf.link(load, 0, r1, 0)
    wf.link(r1, 0, r2, 0)
    wf.link(r2, 0, inv, 0)
    wf.link(inv, 0, r3, 0)
    wf.link(r3, 0, save, 0)
    prompt = convert(wf.build(), object_info).prompt
    assert set(prompt) == {str(load["id"]), str(save["id"])}
    assert prompt[str(save["id"])]["inputs"]["images"] == [str(load["id"]), 0]


def test_unconnected_reroute_gives_nothing(object_info):
    wf = WorkflowBuilder()
    r = wf.node("Reroute", inputs=[("", "*")], outputs=["*"])
    save = wf.node("SaveImage", inputs=[("images", "IMAGE")], widgets=["out"])
    wf.link(r, 0, save, 0)
    prompt = convert(wf.build(), object_info).prompt
    assert prompt == {str(save["id"]): {"inputs": {"filename_prefix": "out"}, "class_type": "SaveImage",
                                        "_meta": {"title": "Save Image"}}}


def test_native_reroutes_of_version_1_keep_the_real_link(object_info):
    wf = WorkflowBuilder(version=1)
    load, _, save = image_chain(wf, [])
    data = wf.build(reroutes=[{"id": 1, "pos": [10, 10], "linkIds": [1]},
                              {"id": 2, "parentId": 1, "pos": [20, 10], "linkIds": [1]}])
    data["links"][0]["parentId"] = 2
    prompt = convert(data, object_info).prompt
    assert prompt[str(save["id"])]["inputs"]["images"] == [str(load["id"]), 0]


def test_reroute_cycle_is_an_error(object_info):
    wf = WorkflowBuilder()
    r1 = wf.node("Reroute", inputs=[("", "*")], outputs=["*"])
    r2 = wf.node("Reroute", inputs=[("", "*")], outputs=["*"])
    save = wf.node("SaveImage", inputs=[("images", "IMAGE")], widgets=["out"])
    wf.link(r1, 0, r2, 0)
    wf.link(r2, 0, r1, 0)
    wf.link(r2, 0, save, 0)
    with pytest.raises(WorkflowError, match="circular"):
        convert(wf.build(), object_info)


def test_primitive_node_feeds_every_target_through_reroutes(object_info):
    wf = WorkflowBuilder()
    prim = wf.node("PrimitiveNode", outputs=["INT"], widgets=[768, "fixed"], title="size")
    latent = wf.node("EmptyLatentImage", inputs=[("width", "INT", "width"), ("height", "INT", "height")],
                     outputs=["LATENT"], widgets=[512, 512, 1])
    reroute = wf.node("Reroute", inputs=[("", "*")], outputs=["INT"])
    scale = wf.node("ImageScale", inputs=[("image", "IMAGE"), ("width", "INT", "width")], outputs=["IMAGE"],
                    widgets=["bilinear", 100, 200, "center"])
    wf.link(prim, 0, latent, "width")
    wf.link(prim, 0, latent, "height")
    wf.link(prim, 0, reroute, 0)
    wf.link(reroute, 0, scale, "width")
    result = convert(wf.build(), object_info)
    prompt = result.prompt
    assert str(prim["id"]) not in prompt and str(reroute["id"]) not in prompt
    assert prompt[str(latent["id"])]["inputs"] == {"width": 768, "height": 768, "batch_size": 1}
    assert prompt[str(scale["id"])]["inputs"] == {"upscale_method": "bilinear", "width": 768, "height": 200,
                                                 "crop": "center"}


def test_widget_converted_to_input_takes_the_link(object_info):
    """Legacy frontends keep the converted widget's value in widgets_values; the link wins."""
    wf = WorkflowBuilder()
    enc_src = wf.node("TextJoin", inputs=[("a", "STRING")], outputs=["STRING"], widgets=["!"])
    enc = wf.node("CLIPTextEncode", inputs=[("clip", "CLIP"), ("text", "STRING", "text")],
                  outputs=["CONDITIONING"], widgets=["stale text"])
    wf.link(enc_src, 0, enc, "text")
    prompt = convert(wf.build(), object_info).prompt
    assert prompt[str(enc["id"])]["inputs"] == {"text": [str(enc_src["id"]), 0]}


def test_force_input_takes_no_widget_value(object_info):
    wf = WorkflowBuilder()
    join = wf.node("TextJoin", inputs=[("a", "STRING")], outputs=["STRING"], widgets=["only b"])
    prompt = convert(wf.build(), object_info).prompt
    assert prompt[str(join["id"])]["inputs"] == {"b": "only b"}


@pytest.mark.parametrize("values", [
    [42, "randomize", 25, 6.5, "dpmpp_2m", "karras", 0.8],   # current frontend
    [42, True, 25, 6.5, "dpmpp_2m", "karras", 0.8],          # legacy boolean control
    [42, 25, 6.5, "dpmpp_2m", "karras", 0.8],                # saved without the control slot
])
def test_seed_control_slot_is_skipped(object_info, values):
    wf = WorkflowBuilder()
    ks = wf.node("KSampler", widgets=values, outputs=["LATENT"])
    result = convert(wf.build(), object_info)
    assert result.prompt[str(ks["id"])]["inputs"] == {"seed": 42, "steps": 25, "cfg": 6.5,
                                                      "sampler_name": "dpmpp_2m", "scheduler": "karras",
                                                      "denoise": 0.8}
    assert result.warnings == []


def test_declared_control_after_generate_and_combo_filter_list(object_info):
    wf = WorkflowBuilder()
    noise = wf.node("RandomNoise", widgets=[7, "increment"], outputs=["NOISE"])
    choice = wf.node("RandomChoice", widgets=["b", "randomize", "", 3], outputs=["STRING"])
    prompt = convert(wf.build(), object_info).prompt
    assert prompt[str(noise["id"])]["inputs"] == {"noise_seed": 7}
    assert prompt[str(choice["id"])]["inputs"] == {"choice": "b", "count": 3}


def test_dict_widgets_values_and_widgets_values_named(object_info):
    wf = WorkflowBuilder()
    a = wf.node("ImageScale", inputs=[("image", "IMAGE")], outputs=["IMAGE"],
                widgets={"crop": "center", "width": 10, "height": 20, "upscale_method": "bilinear", "extra": 1})
    b = wf.node("KSampler", outputs=["LATENT"], widgets=[5, "fixed", 9, 1.5, "euler", "simple", 0.5],
                widgets_values_named={"seed": 5, "control_after_generate": "fixed", "steps": 9, "cfg": 1.5,
                                      "sampler_name": "euler", "scheduler": "simple", "denoise": 0.5})
    prompt = convert(wf.build(), object_info).prompt
    assert prompt[str(a["id"])]["inputs"] == {"upscale_method": "bilinear", "width": 10, "height": 20,
                                             "crop": "center"}
    assert prompt[str(b["id"])]["inputs"]["steps"] == 9 and prompt[str(b["id"])]["inputs"]["seed"] == 5


@pytest.mark.parametrize("values", [["cat.png", "image"], ["cat.png"]])
def test_load_image_upload_widget(object_info, values):
    wf = WorkflowBuilder()
    load = wf.node("LoadImage", outputs=["IMAGE", "MASK"], widgets=values)
    mask = wf.node("LoadImageMask", outputs=["MASK"], widgets=["example.png", "red", "image"])
    result = convert(wf.build(), object_info)
    assert result.prompt[str(load["id"])]["inputs"] == {"image": "cat.png"}
    assert result.prompt[str(mask["id"])]["inputs"] == {"image": "example.png", "channel": "red"}
    assert result.warnings == []


def test_optional_widgets_and_missing_values_take_defaults_with_a_warning(object_info):
    """SaveText: text is forceInput, optional `override` has the old defaultInput flag: no widgets."""
    wf = WorkflowBuilder()
    save = wf.node("SaveText", inputs=[("text", "STRING")], widgets=[".md"])
    result = convert(wf.build(), object_info)
    assert result.prompt[str(save["id"])]["inputs"] == {"suffix": ".md", "append": False}
    assert any("append" in w and "default" in w for w in result.warnings)


def test_extra_widget_values_are_reported(object_info):
    wf = WorkflowBuilder()
    wf.node("ImageInvert", inputs=[("image", "IMAGE")], outputs=["IMAGE"])
    node = wf.node("EmptyLatentImage", outputs=["LATENT"], widgets=[64, 64, 1, "surprise"])
    result = convert(wf.build(), object_info)
    assert result.prompt[str(node["id"])]["inputs"] == {"width": 64, "height": 64, "batch_size": 1}
    assert any("surprise" in w for w in result.warnings)


def test_list_constants_are_wrapped(object_info):
    wf = WorkflowBuilder()
    pick = wf.node("MultiPick", outputs=["STRING"], widgets=[["x", "z"]])
    prim = wf.node("PrimitiveNode", outputs=["STRING"], widgets=[["a", "b"]])
    join = wf.node("TextJoin", inputs=[("a", "STRING"), ("b", "STRING", "b")], outputs=["STRING"], widgets=[""])
    wf.link(prim, 0, join, "b")
    prompt = convert(wf.build(), object_info).prompt
    assert prompt[str(pick["id"])]["inputs"] == {"items": {"__value__": ["x", "z"]}}
    assert prompt[str(join["id"])]["inputs"] == {"b": {"__value__": ["a", "b"]}}


def test_unknown_node_types_are_kept_and_reported(object_info):
    wf = WorkflowBuilder()
    load = wf.node("LoadImage", outputs=["IMAGE", "MASK"], widgets=["cat.png", "image"])
    fancy = wf.node("FancyUpscaler", inputs=[("image", "IMAGE")], outputs=["IMAGE"], widgets=[2.0])
    save = wf.node("SaveImage", inputs=[("images", "IMAGE")], widgets=["out"])
    group = wf.node("workflow>MyGroup", outputs=["IMAGE"])
    wf.link(load, 0, fancy, 0)
    wf.link(fancy, 0, save, 0)
    result = convert(wf.build(), object_info)
    assert result.missing_node_types == ["FancyUpscaler", "workflow>MyGroup"]
    assert not result.ok
    assert result.prompt[str(fancy["id"])] == {"inputs": {"image": [str(load["id"]), 0]},
                                               "class_type": "FancyUpscaler", "_meta": {"title": "FancyUpscaler"}}
    assert result.prompt[str(save["id"])]["inputs"]["images"] == [str(fancy["id"]), 0]
    assert str(group["id"]) in result.prompt
    assert any("FancyUpscaler" in w and "left out: [2.0]" in w for w in result.warnings)
    assert any("group node" in w for w in result.warnings)


def test_notes_and_frontend_only_nodes_are_dropped_silently(object_info):
    wf = WorkflowBuilder()
    wf.node("Note", widgets=["remember the milk"])
    wf.node("MarkdownNote", widgets=["# title"])
    wf.node("Label (rgthree)")
    load = wf.node("LoadImage", outputs=["IMAGE", "MASK"], widgets=["cat.png", "image"])
    result = convert(wf.build(), object_info)
    assert list(result.prompt) == [str(load["id"])]
    assert result.missing_node_types == [] and result.warnings == []


def test_set_and_get_nodes_act_as_wireless_reroutes(object_info):
    wf = WorkflowBuilder()
    load = wf.node("LoadImage", outputs=["IMAGE", "MASK"], widgets=["cat.png", "image"])
    setter = wf.node("SetNode", inputs=[("IMAGE", "IMAGE")], outputs=["*"], widgets=["picture"])
    getter = wf.node("GetNode", outputs=["IMAGE"], widgets=["picture"])
    save = wf.node("SaveImage", inputs=[("images", "IMAGE")], widgets=["out"])
    wf.link(load, 0, setter, 0)
    wf.link(getter, 0, save, 0)
    prompt = convert(wf.build(), object_info).prompt
    assert prompt[str(save["id"])]["inputs"]["images"] == [str(load["id"]), 0]


def test_title_and_pack_metadata_go_to_meta(object_info):
    wf = WorkflowBuilder()
    node = wf.node("LoadImage", outputs=["IMAGE", "MASK"], widgets=["cat.png", "image"], title="Reference",
                   properties={"cnr_id": "comfy-core", "ver": "0.3.64", "Node name for S&R": "LoadImage"})
    prompt = convert(wf.build(), object_info).prompt
    assert prompt[str(node["id"])]["_meta"] == {"title": "Reference", "cnr_id": "comfy-core", "ver": "0.3.64"}


def test_dangling_link_id_is_reported(object_info):
    wf = WorkflowBuilder()
    save = wf.node("SaveImage", inputs=[("images", "IMAGE")], widgets=["out"])
    save["inputs"][0]["link"] = 99
    result = convert(wf.build(), object_info)
    assert result.prompt[str(save["id"])]["inputs"] == {"filename_prefix": "out"}
    assert any("link 99" in w for w in result.warnings)


def test_null_and_malformed_links_are_skipped_with_a_warning(object_info):
    wf = WorkflowBuilder()
    image_chain(wf, [])
    data = wf.build()
    data["links"] += [None, [7, "x"]]
    result = convert(data, object_info)
    assert len(result.prompt) == 2
    assert any("malformed link" in w for w in result.warnings)


@pytest.mark.parametrize("mutate, message", [
    (lambda wf: wf["nodes"].append({"id": 50}), "node 50 has no 'type'"),
    (lambda wf: wf["nodes"].append({"type": "LoadImage"}), "has no 'id'"),
    (lambda wf: wf["nodes"].append(dict(wf["nodes"][0])), "two nodes have the id"),
    (lambda wf: wf["nodes"][0].update(widgets_values=5), "widgets_values"),
    (lambda wf: wf["nodes"][0].update(inputs={"a": 1}), "'inputs' is not a list"),
    (lambda wf: wf.update(links={}), "'links' is not a list"),
])
def test_malformed_workflows_raise_clear_errors(object_info, mutate, message):
    wf = WorkflowBuilder()
    image_chain(wf, [])
    data = wf.build()
    mutate(data)
    with pytest.raises(WorkflowError, match=message):
        convert(data, object_info)


def test_version_1_links_as_objects(object_info):
    wf = WorkflowBuilder(version=1)
    load, (inv,), save = image_chain(wf, [0])
    prompt = convert(wf.build(), object_info).prompt
    assert prompt[str(inv["id"])]["inputs"] == {"image": [str(load["id"]), 0]}
    assert prompt[str(save["id"])]["inputs"] == {"filename_prefix": "out", "images": [str(inv["id"]), 0]}
