"""Running: progress and previews of a slow node, reload mid-run, interrupt, execution errors,
queue/history panel with reload-this-run, batch count, seeds after queueing."""

SLOW = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 1, "color": 0}},
    "2": {"class_type": "BrowserTestSlow", "inputs": {"image": ["1", 0], "seconds": 6.0, "steps": 30}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "slow"}},
}


def test_progress_previews_reload_mid_run_and_interrupt(make_editor, test_nodes_server):
    ed = make_editor(test_nodes_server)
    ed.js("(p) => loomApp.loadWorkflow(p)", SLOW)
    res = ed.queue()
    prompt_id = res[0]["prompt_id"]
    ed.page.wait_for_function("loomApp.execution.runningNode === '2' && loomApp.execution.progress?.value >= 2", timeout=10000)
    ed.page.wait_for_function("loomApp.execution.images.get('2')?.preview === true", timeout=10000)
    ed.shot("running_progress_and_preview")
    assert "running" in ed.page.locator("#run-status").inner_text()

    # Reload the tab: same clientId (sessionStorage), the server re-sends the running node.
    client_id = ed.js("() => loomApp.api.clientId")
    ed.page.reload()
    ed.page.wait_for_function("document.body.dataset.ready")
    assert ed.js("() => loomApp.api.clientId") == client_id
    ed.js("(p) => loomApp.loadWorkflow(p)", SLOW)
    ed.page.wait_for_function("loomApp.execution.runningNode === '2'", timeout=10000)
    ed.page.wait_for_function("loomApp.execution.progress?.value > 0", timeout=10000)
    assert ed.js("() => loomApp.execution.promptId") == prompt_id
    ed.shot("after_reload_progress_resumed")

    # Interrupt from the toolbar: the run stops, the page says so.
    ed.page.click("#btn-interrupt")
    ed.wait_idle(timeout=10000)
    ed.page.locator(".toast", has_text="interrupted").wait_for(timeout=5000)
    ed.shot("interrupted")
    history = test_nodes_server.get_json(f"/api/history/{prompt_id}")
    assert history[prompt_id]["status"]["status_str"] == "error"
    assert any(m[0] == "execution_interrupted" for m in history[prompt_id]["status"]["messages"])


def test_execution_error_shows_message_and_traceback_on_node(make_editor, test_nodes_server):
    ed = make_editor(test_nodes_server)
    ed.js("(p) => loomApp.loadWorkflow(p)", {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "BrowserTestFail", "inputs": {"image": ["1", 0], "message": "kaboom 42"}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "fail"}},
    })
    ed.queue()
    panel = ed.page.locator("#error-panel")
    panel.wait_for(timeout=10000)
    text = panel.inner_text()
    assert "kaboom 42" in text and "Fail (test)" in text and "Traceback" in text
    assert ed.js("() => String(loomApp.execution.execError.node_id)") == "2"
    ed.shot("execution_error")


def test_batch_queue_front_history_reload_and_seed_control(make_editor, test_nodes_server):
    ed = make_editor(test_nodes_server)
    ed.js("(p) => loomApp.loadWorkflow(p)", {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "BrowserTestSlow", "inputs": {"image": ["1", 0], "seconds": 0.3, "steps": 3}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "batch"}},
        "4": {"class_type": "PrimitiveInt", "inputs": {"value": 5}},
    })
    # The primitive's control_after_generate runs after each queue: increment gives 5, 6, 7.
    ed.js("""() => { const n = loomApp.graph.getNodeById(4);
        n.widgets.find(w => w.name === 'control_after_generate').value = 'increment'; }""")
    ed.page.fill("#batch-count", "3")
    ed.page.click("#btn-queue")
    ed.page.wait_for_function("loomApp.graph.getNodeById(4).widgets[0].value === 8", timeout=10000)
    ed.page.click("#btn-queue-front")
    ed.wait_idle(timeout=20000)
    ed.page.wait_for_function("!loomApp.execution.queueRemaining", timeout=20000)
    # Nothing changed between the runs: the last one reuses cached outputs and marks them.
    assert "1" in ed.js("() => [...loomApp.execution.cached]")
    ed.shot("cached_nodes_marked")
    ed.page.click("#btn-panel-queue")
    rows = ed.page.locator(".queue-panel .job.success")
    rows.first.wait_for(timeout=5000)
    assert rows.count() >= 4
    ed.shot("history_panel")
    # Reload-this-run: change the graph, then load the oldest run's workflow back.
    ed.js("() => loomApp.graph.remove(loomApp.graph.getNodeById(4))")
    rows.last.locator("button", has_text="Load").click()
    ed.page.wait_for_function("loomApp.graph._nodes.length === 4")
    assert ed.js("() => loomApp.graph.getNodeById(4).widgets[0].value") == 5
