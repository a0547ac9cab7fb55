// The side panel: queue and history (reload a past run), the gallery of output images,
// the workflow library on the server, the templates and the node packs (packsPanel.js).

import { el } from "./dom.js";
import { PacksPanel } from "./packsPanel.js";
import { readPngText } from "./pnginfo.js";

const TITLES = { queue: "Queue & history", gallery: "Gallery", library: "Workflow library", templates: "Templates", packs: "Node packs" };

export class Panels {
  constructor(app, ui) {
    this.app = app;
    this.ui = ui;
    this.current = null;
    this._timer = null;
    this.packs = new PacksPanel(app, ui, this);
  }

  get side() {
    return document.getElementById("side-panel");
  }

  show(name) {
    this.current = name;
    this.side.hidden = false;
    this.side.dataset.panel = name;
    document.getElementById("side-title").textContent = TITLES[name];
    this.ui.resizeCanvas();
    return this.render();
  }

  hide() {
    this.current = null;
    this.side.hidden = true;
    this.ui.resizeCanvas();
  }

  toggle(name) {
    return this.current === name ? this.hide() : this.show(name);
  }

  refreshIfShown(name) {
    if (this.current === name) this.render();
  }

  refreshSoon() {
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this.current === "queue" && this.render(), 250);
  }

  onExecutionChange() {
    if (this.current === "gallery" && this._galleryCount !== this.app.execution.gallery.length) this.render();
    if (this.current === "queue") {
      const key = `${this.app.execution.promptId}|${this.app.execution.queueRemaining}`;
      if (key !== this._queueKey) {
        this._queueKey = key;
        this.refreshSoon();
      }
    }
  }

  async render() {
    const body = document.getElementById("side-body");
    const seq = (this._renderSeq = (this._renderSeq ?? 0) + 1);
    let content;
    try {
      content = await this[`render_${this.current}`]();
    } catch (e) {
      content = el("p", { class: "error" }, `Could not load: ${e.message}`);
    }
    // A slower, older render must not replace a newer one.
    if (seq === this._renderSeq) body.replaceChildren(content);
  }

  // -- queue & history ----------------------------------------------------------------------------
  async render_queue() {
    const { api } = this.app;
    const [queue, history] = await Promise.all([api.getQueue(), api.getHistory(50)]);
    const root = el("div", { class: "queue-panel" });
    const running = queue.queue_running ?? [];
    const pending = queue.queue_pending ?? [];
    root.append(el("h3", {}, `Running (${running.length})`));
    for (const item of running) root.append(this.queueRow(item, "running"));
    root.append(el("h3", {}, `Pending (${pending.length})`));
    for (const item of [...pending].sort((a, b) => a[0] - b[0])) root.append(this.queueRow(item, "pending"));
    const entries = Object.entries(history ?? {}).reverse();
    const head = el("h3", {}, `History (${entries.length})`);
    if (entries.length) {
      head.append(
        el("button", { class: "small", onclick: () => this.ui.guard(async () => (await api.clearHistory(), this.render())) }, "Clear"),
      );
    }
    root.append(head);
    for (const [id, item] of entries) root.append(this.historyRow(id, item));
    return root;
  }

  queueRow(item, state) {
    const [number, promptId, prompt] = item;
    const count = Object.keys(prompt ?? {}).length;
    const row = el("div", { class: `job ${state}`, "data-prompt-id": promptId },
      el("span", { class: "num" }, `#${number}`),
      el("span", { class: "what" }, `${count} nodes`),
      el("span", { class: "state" }, state));
    if (state === "pending") {
      row.append(el("button", { class: "small", onclick: () => this.ui.guard(async () => (await this.app.api.deleteQueueItem(promptId), this.render())) }, "Cancel"));
    } else {
      row.append(el("button", { class: "small danger", onclick: () => this.app.interrupt() }, "Stop"));
    }
    return row;
  }

  historyRow(promptId, item) {
    const status = item.status?.status_str ?? (item.status?.completed ? "success" : "unknown");
    const number = item.prompt?.[0];
    const images = Object.values(item.outputs ?? {}).flatMap((o) => o.images ?? []);
    const row = el("div", { class: `job ${status}`, "data-prompt-id": promptId });
    if (images[0]) row.append(el("img", { class: "thumb", src: this.app.api.viewUrl(images[0]), alt: images[0].filename, loading: "lazy" }));
    row.append(
      el("span", { class: "num" }, `#${number ?? "?"}`),
      el("span", { class: "what" }, `${images.length} image${images.length === 1 ? "" : "s"}`),
      el("span", { class: "state" }, status),
    );
    const workflow = item.prompt?.[3]?.extra_pnginfo?.workflow;
    row.append(
      el("button", {
        class: "small",
        title: "Load the workflow this run was queued with",
        disabled: workflow ? null : "disabled",
        onclick: () => this.ui.guard(async () => {
          await this.app.loadWorkflow(workflow, { name: null });
          this.ui.toast(`Loaded the workflow of run #${number ?? promptId.slice(0, 8)}`);
        }),
      }, "Load"),
    );
    return row;
  }

  // -- gallery --------------------------------------------------------------------------------------
  render_gallery() {
    const items = this.app.execution.gallery;
    this._galleryCount = items.length;
    if (!items.length) return el("p", { class: "muted" }, "Images made in this session appear here.");
    const grid = el("div", { class: "gallery" });
    for (const item of items) {
      grid.append(el("img", { src: item.url, alt: item.ref.filename, title: item.ref.filename, onclick: () => this.openImage(item) }));
    }
    return grid;
  }

  openImage(item) {
    const img = el("img", { src: item.url, class: "big", alt: item.ref.filename });
    this.ui.modal(item.ref.filename, el("div", { class: "image-view" }, img), [
      {
        label: "Load its workflow",
        value: () => this.ui.guard(async () => {
          const buf = await (await fetch(item.url)).arrayBuffer();
          const text = await readPngText(buf);
          const json = text.workflow ?? text.prompt;
          if (!json) throw new Error(`${item.ref.filename} has no embedded workflow`);
          await this.app.loadWorkflow(JSON.parse(json), { name: null });
        }),
      },
      { label: "Close", value: null, primary: true },
    ]);
  }

  // -- library ------------------------------------------------------------------------------------------
  async render_library() {
    const { api } = this.app;
    const files = (await api.listUserdata("workflows")).map((f) => (typeof f === "string" ? f : f.path ?? f.name)).filter((f) => f?.endsWith(".json"));
    const root = el("div", { class: "library" });
    root.append(
      el("div", { class: "row" },
        el("button", { class: "primary", onclick: () => this.ui.guard(() => this.ui.saveToLibrary({ askName: !this.app.workflowName })) }, "Save current"),
        el("button", { onclick: () => this.ui.guard(() => this.ui.saveToLibrary({ askName: true })) }, "Save as…")),
    );
    if (!files.length) root.append(el("p", { class: "muted" }, "No saved workflows yet."));
    for (const file of files.sort()) {
      const name = file.replace(/\.json$/, "");
      root.append(
        el("div", { class: "lib-item", "data-name": name },
          el("span", { class: "name", title: name }, name),
          el("button", { class: "small", onclick: () => this.ui.guard(() => this.openFromLibrary(name)) }, "Open"),
          el("button", { class: "small danger", onclick: () => this.ui.guard(() => this.deleteFromLibrary(name)) }, "Delete")),
      );
    }
    return root;
  }

  async openFromLibrary(name) {
    const text = await this.app.api.getUserdata(`workflows/${name}.json`);
    let json;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new Error(`workflows/${name}.json is not valid JSON: ${e.message}`);
    }
    await this.app.loadWorkflow(json, { name });
    this.ui.markClean();
    this.ui.toast(`Opened ${name}`);
  }

  async deleteFromLibrary(name) {
    const ok = await this.ui.modal("Delete workflow", `<p>Delete <b>${name.replace(/</g, "&lt;")}</b> from the library? This cannot be undone.</p>`, [
      { label: "Cancel", value: false },
      { label: "Delete", value: true, primary: true },
    ]).result;
    if (!ok) return;
    await this.app.api.deleteUserdata(`workflows/${name}.json`);
    if (this.app.workflowName === name) {
      this.app.workflowName = null;
      this.ui.setTitle(null);
    }
    this.ui.toast(`Deleted ${name}`);
    this.render();
  }

  // -- node packs (packsPanel.js) -------------------------------------------------------------------
  render_packs() {
    return this.packs.render();
  }

  // -- templates ---------------------------------------------------------------------------------------
  async render_templates() {
    const templates = await this.app.api.getJson("/workflow_templates");
    const root = el("div", { class: "library" });
    const packs = Object.entries(templates ?? {});
    if (!packs.length) root.append(el("p", { class: "muted" }, "The server offers no templates."));
    for (const [pack, names] of packs) {
      root.append(el("h3", {}, pack));
      for (const n of names ?? []) {
        const file = String(n).endsWith(".json") ? String(n) : `${n}.json`;
        const label = file.replace(/\.json$/, "");
        root.append(
          el("div", { class: "lib-item", "data-name": label },
            el("span", { class: "name" }, label),
            el("button", { class: "small", onclick: () => this.ui.guard(() => this.openTemplate(pack, file)) }, "Open")),
        );
      }
    }
    return root;
  }

  async openTemplate(pack, file) {
    const res = await this.app.api.fetchApi(`/workflow_templates/${encodeURIComponent(pack)}/${file.split("/").map(encodeURIComponent).join("/")}`);
    if (!res.ok) throw new Error(`template ${pack}/${file}: HTTP ${res.status}`);
    await this.app.loadWorkflow(await res.json(), { name: null });
    this.ui.toast(`Opened template ${file.replace(/\.json$/, "")}`);
  }
}
