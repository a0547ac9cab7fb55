"""Build a graph on an empty canvas with the mouse and keyboard only, queue it, see the image."""


def test_build_from_empty_canvas_and_run(editor):
    ed = editor
    ed.js("() => document.getElementById('btn-new').click()")
    ed.page.wait_for_function("loomApp.graph._nodes.length === 0")
    ed.shot("empty_canvas")

    # 1. Double-click, type, Enter: fuzzy search by display name.
    source = ed.add_by_search((260, 300), "empty imag", "EmptyImage")
    ed.shot("search_added_empty_image")

    # 2. Drag a link from its IMAGE output into empty space: the search offers only nodes that
    # take an IMAGE; choosing one connects it.
    x0, y0 = ed.slot_pos(source, 0, is_input=False)
    ed.page.mouse.move(x0, y0)
    ed.page.mouse.down()
    ed.page.mouse.move(x0 + 150, y0 + 40, steps=8)
    ed.page.mouse.move(x0 + 250, y0 + 60, steps=8)
    ed.page.mouse.up()
    ed.page.locator(".loom-search input").wait_for(state="visible", timeout=15000)
    filtered = ed.page.locator(".loom-search li").evaluate_all("els => els.map(e => e.dataset.type)")
    assert "ImageInvert" in filtered and "SaveImage" in filtered
    assert "EmptyLatentImage" not in filtered, "a node without an IMAGE input was offered"
    ed.shot("link_dropped_search_filtered")
    ed.page.keyboard.type("invert")
    ed.page.keyboard.press("Enter")
    invert = ed.node_ids("ImageInvert")[0]

    # 3. Same again from the invert node's output to a Save Image node.
    x1, y1 = ed.slot_pos(invert, 0, is_input=False)
    ed.page.mouse.move(x1, y1)
    ed.page.mouse.down()
    ed.page.mouse.move(x1 + 200, y1 + 30, steps=10)
    ed.page.mouse.up()
    ed.page.locator(".loom-search input").wait_for(state="visible")
    ed.page.keyboard.type("save image")
    ed.page.keyboard.press("Enter")
    save = ed.node_ids("SaveImage")[0]

    links = ed.js("() => loomApp.serializeWorkflow().links.map(l => [l[1], l[3], l[5]])")
    assert sorted(links) == sorted([[source, invert, "IMAGE"], [invert, save, "IMAGE"]])
    ed.js("() => loomApp.fitView()")
    ed.shot("graph_built")

    # 4. Type-checked: an IMAGE output cannot feed a LATENT input.
    refused = ed.js("""() => {
        const lat = LiteGraph.createNode('LatentUpscaleBy'); loomApp.graph.add(lat);
        const ok = loomApp.graph.getNodeById(%s).connect(0, lat, 0);
        loomApp.graph.remove(lat); return ok === null; }""".replace("%s", str(source)))
    assert refused

    # 5. Queue with the toolbar button; the image appears on the Save Image node.
    ed.page.click("#btn-queue")
    ed.wait_images(save)
    ed.wait_idle()
    ed.shot("ran_image_on_save_node")
    img = ed.js("(id) => { const e = loomApp.execution.images.get(String(id)); return e.images[0].dataset.filename; }", save)
    assert img.endswith(".png")
    assert (ed.server.data_dir / "output" / img).exists() or any((ed.server.data_dir).rglob(img))
    ed.page.click("#btn-panel-gallery")
    ed.page.locator(".gallery img").first.wait_for()
    ed.shot("gallery_panel")
    assert not ed.errors
