"""Subgraph flattening: ids `outer:inner`, IO wiring, promoted widgets, nesting, modes."""

from __future__ import annotations

import pytest
from workflow_builders import (
    BYPASS,
    MUTE,
    SubgraphBuilder,
    WorkflowBuilder,
    compressed_instance_workflow,
    encode_workflow,
    instance,
    nested_workflow,
)

from engine.workflow import WorkflowError, convert_ui_to_api


@pytest.mark.parametrize("version", [1, 0.4])
def test_subgraph_is_flattened_with_outer_inner_ids(object_info, version):
    wf, ckpt, ks, (inst,) = encode_workflow(version)
    result = convert_ui_to_api(wf.build(), object_info)
    inner_id = f"{inst['id']}:50"
    assert result.prompt[inner_id] == {"inputs": {"text": "a cat", "clip": [str(ckpt["id"]), 1]},
                                       "class_type": "CLIPTextEncode",
                                       "_meta": {"title": "CLIP Text Encode (Prompt)"}}
    assert result.prompt[str(ks["id"])]["inputs"]["positive"] == [inner_id, 0]
    assert str(inst["id"]) not in result.prompt
    assert result.warnings == [] and result.missing_node_types == []


def test_each_instance_keeps_its_own_promoted_values(object_info):
    wf, _, ks, (a, b) = encode_workflow(n_instances=2, values=("positive words", "negative words"))
    prompt = convert_ui_to_api(wf.build(), object_info).prompt
    assert prompt[f"{a['id']}:50"]["inputs"]["text"] == "positive words"
    assert prompt[f"{b['id']}:50"]["inputs"]["text"] == "negative words"
    assert prompt[str(ks["id"])]["inputs"]["negative"] == [f"{b['id']}:50", 0]


def test_promoted_values_by_name(object_info):
    wf, _, _, (inst,) = encode_workflow()
    inst["widgets_values_named"] = {"text": "named wins"}
    prompt = convert_ui_to_api(wf.build(), object_info).prompt
    assert prompt[f"{inst['id']}:50"]["inputs"]["text"] == "named wins"


def test_unpromoted_inner_widget_keeps_its_own_value(object_info):
    wf, _, _, (inst,) = encode_workflow()
    inst.pop("widgets_values")
    inst["inputs"][1].pop("widget")
    prompt = convert_ui_to_api(wf.build(), object_info).prompt
    assert prompt[f"{inst['id']}:50"]["inputs"]["text"] == "inner default"


def test_subgraph_input_linked_from_outside(object_info):
    wf, _, _, (inst,) = encode_workflow()
    join = wf.node("TextJoin", inputs=[("a", "STRING")], outputs=["STRING"], widgets=["x"])
    wf.link(join, 0, inst, "text")
    prompt = convert_ui_to_api(wf.build(), object_info).prompt
    assert prompt[f"{inst['id']}:50"]["inputs"]["text"] == [str(join["id"]), 0]


def test_legacy_seed_control_slot_in_promoted_values(object_info):
    sg = SubgraphBuilder("Sampler", inputs=[("seed", "INT"), ("steps", "INT")], outputs=[("LATENT", "LATENT")],
                         first_id=50)
    ks = sg.node("KSampler", inputs=[("seed", "INT", "seed"), ("steps", "INT", "steps")], outputs=["LATENT"],
                 widgets=[0, "fixed", 5, 8.0, "euler", "normal", 1.0])
    sg.link(-10, 0, ks, "seed")
    sg.link(-10, 1, ks, "steps")
    sg.link(ks, 0, -20, 0)
    wf = WorkflowBuilder(version=1)
    wf.subgraphs.append(sg.build())
    inst = instance(wf, sg, widgets=[123, "randomize", 30], promoted=("seed", "steps"))
    inputs = convert_ui_to_api(wf.build(), object_info).prompt[f"{inst['id']}:50"]["inputs"]
    assert inputs["seed"] == 123 and inputs["steps"] == 30 and inputs["cfg"] == 8.0


def test_legacy_proxy_widgets(object_info):
    sg = SubgraphBuilder("Latent", inputs=[("width", "INT")], outputs=[("LATENT", "LATENT")], first_id=50)
    latent = sg.node("EmptyLatentImage", inputs=[("width", "INT", "width")], outputs=["LATENT"],
                     widgets=[512, 512, 1])
    sg.link(-10, 0, latent, "width")
    sg.link(latent, 0, -20, 0)
    wf = WorkflowBuilder(version=1)
    wf.subgraphs.append(sg.build())
    inst = instance(wf, sg, widgets=[640, 832, 9],
                    properties={"proxyWidgets": [["-1", "width"], ["50", "height"], ["7", "nothing"]]})
    result = convert_ui_to_api(wf.build(), object_info)
    assert result.prompt[f"{inst['id']}:50"]["inputs"] == {"width": 640, "height": 832, "batch_size": 1}
    assert any("could not be traced" in w for w in result.warnings)


def test_nested_subgraphs_flatten_to_paths_and_carry_promoted_values(object_info):
    wf, load, inst, save = nested_workflow()
    result = convert_ui_to_api(wf.build(), object_info)
    prompt = result.prompt
    assert set(prompt) == {"1", "20:5:61", "20:6", "21"}
    # The outer instance's promoted width reaches the innermost node; the nested instance's own
    # value (111) is ignored because its input is wired to the outer subgraph's input.
    assert prompt["20:5:61"]["inputs"] == {"upscale_method": "bilinear", "width": 300, "height": 200,
                                          "crop": "disabled", "image": ["1", 0]}
    assert prompt["20:6"]["inputs"] == {"image": ["20:5:61", 0]}
    assert prompt["21"]["inputs"]["images"] == ["20:6", 0]
    assert result.warnings == []


def test_nested_promoted_widget_without_outer_value_shows_the_nested_value(object_info):
    """The outer instance saved no width: its promoted widget shows the nested instance's (111)."""
    wf, load, inst, save = nested_workflow()
    inst.pop("widgets_values")
    prompt = convert_ui_to_api(wf.build(), object_info).prompt
    assert prompt["20:5:61"]["inputs"]["width"] == 111


def test_nested_subgraph_without_any_promoted_value_keeps_inner_widget(object_info):
    wf, load, inst, save = nested_workflow()
    inst.pop("widgets_values")
    wf.subgraphs[0]["nodes"][0].pop("widgets_values")  # the nested instance
    prompt = convert_ui_to_api(wf.build(), object_info).prompt
    assert prompt["20:5:61"]["inputs"]["width"] == 100


def test_muted_subgraph_contents_do_not_run(object_info):
    wf, load, inst, save = nested_workflow()
    inst["mode"] = MUTE
    prompt = convert_ui_to_api(wf.build(), object_info).prompt
    assert set(prompt) == {"1", "21"}
    assert prompt["21"]["inputs"] == {"filename_prefix": "out"}


def test_bypassed_subgraph_passes_its_input_through(object_info):
    wf, load, inst, save = nested_workflow()
    inst["mode"] = BYPASS
    prompt = convert_ui_to_api(wf.build(), object_info).prompt
    assert set(prompt) == {"1", "21"}
    assert prompt["21"]["inputs"]["images"] == ["1", 0]


def test_bypassed_node_inside_a_subgraph_reaches_the_outer_source(object_info):
    wf, load, inst, save = nested_workflow()
    outer_def = wf.subgraphs[0]
    inner_def = outer_def["definitions"]["subgraphs"][0]
    inner_def["nodes"][0]["mode"] = BYPASS  # the ImageScale
    outer_def["nodes"][1]["mode"] = BYPASS  # the ImageInvert
    prompt = convert_ui_to_api(wf.build(), object_info).prompt
    assert set(prompt) == {"1", "21"}
    assert prompt["21"]["inputs"]["images"] == ["1", 0]


def test_subgraph_input_wired_straight_to_its_output(object_info):
    sg = SubgraphBuilder("Pass", inputs=[("image", "IMAGE")], outputs=[("IMAGE", "IMAGE")])
    sg.link(-10, 0, -20, 0, "IMAGE")
    wf = WorkflowBuilder(version=1)
    wf.subgraphs.append(sg.build())
    load = wf.node("LoadImage", outputs=["IMAGE", "MASK"], widgets=["cat.png", "image"])
    inst = instance(wf, sg)
    save = wf.node("SaveImage", inputs=[("images", "IMAGE")], widgets=["out"])
    wf.link(load, 0, inst, 0)
    wf.link(inst, 0, save, 0)
    prompt = convert_ui_to_api(wf.build(), object_info).prompt
    assert prompt[str(save["id"])]["inputs"]["images"] == [str(load["id"]), 0]


def test_unconnected_subgraph_output_is_reported(object_info):
    sg = SubgraphBuilder("Empty", inputs=[], outputs=[("IMAGE", "IMAGE")])
    wf = WorkflowBuilder(version=1)
    wf.subgraphs.append(sg.build())
    inst = instance(wf, sg)
    save = wf.node("SaveImage", inputs=[("images", "IMAGE")], widgets=["out"])
    wf.link(inst, 0, save, 0)
    result = convert_ui_to_api(wf.build(), object_info)
    assert result.prompt[str(save["id"])]["inputs"] == {"filename_prefix": "out"}
    assert any("output #0 is not connected" in w for w in result.warnings)


def test_unknown_node_inside_a_subgraph_is_reported_with_its_path(object_info):
    sg = SubgraphBuilder("Odd", inputs=[], outputs=[], first_id=50)
    sg.node("MysteryNode", widgets=[1])
    wf = WorkflowBuilder(version=1)
    wf.subgraphs.append(sg.build())
    inst = instance(wf, sg)
    result = convert_ui_to_api(wf.build(), object_info)
    assert result.missing_node_types == ["MysteryNode"]
    assert result.prompt[f"{inst['id']}:50"]["class_type"] == "MysteryNode"


def test_subgraph_that_contains_itself_is_an_error(object_info):
    sg = SubgraphBuilder("Loop", inputs=[], outputs=[])
    sg.node(sg.id)
    wf = WorkflowBuilder(version=1)
    wf.subgraphs.append(sg.build())
    instance(wf, sg)
    with pytest.raises(WorkflowError, match="contains itself"):
        convert_ui_to_api(wf.build(), object_info)


def test_subgraph_definition_without_id_is_an_error(object_info):
    wf, *_ = encode_workflow()
    data = wf.build()
    del data["definitions"]["subgraphs"][0]["id"]
    with pytest.raises(WorkflowError, match="subgraph definition #0 has no 'id'"):
        convert_ui_to_api(data, object_info)


def test_saved_instance_without_its_unlinked_promoted_sockets(object_info):
    """Saves drop unlinked widget sockets from the instance; promotion comes from the definition."""
    wf, ckpt, inst = compressed_instance_workflow()
    result = convert_ui_to_api(wf.build(), object_info)
    assert result.prompt[f"{inst['id']}:50"]["inputs"] == {"text": "a red fox", "clip": [str(ckpt["id"]), 1]}
    assert result.prompt[f"{inst['id']}:51"]["inputs"]["seed"] == 77
    assert result.warnings == []
