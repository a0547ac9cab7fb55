// The page around the canvas: toolbar, banner, toasts, modal dialogs, error reports,
// file open/save/drop. Side panels (queue, gallery, library, templates, packs) are in panels.js;
// the cache readout is cacheReadout.js.

import { CacheReadout } from "./cacheReadout.js";
import { packsOf } from "./specialNodes.js";
import { describeNodeError, providerLinks, providerNames } from "./errors.js";
import { Panels } from "./panels.js";
import { installShortcuts, SHORTCUTS } from "./shortcuts.js";

const $ = (sel) => document.querySelector(sel);

export class LoomUI {
  constructor(app) {
    this.app = app;
    this.panels = new Panels(app, this);
    this.cache = new CacheReadout(app, this);
    this.dirty = false;
  }

  install() {
    const { app } = this;
    const click = (id, fn) => $(id).addEventListener("click", () => this.guard(fn));
    const menu = $("#workflow-menu");
    $("#btn-workflow-menu").addEventListener("click", (e) => {
      e.stopPropagation();
      menu.hidden = !menu.hidden;
    });
    document.addEventListener("click", () => (menu.hidden = true));
    click("#btn-new", () => this.newWorkflow());
    click("#btn-open", () => $("#file-input").click());
    click("#btn-save", () => this.saveToLibrary());
    click("#btn-save-as", () => this.saveToLibrary({ askName: true }));
    click("#btn-download", () => this.downloadWorkflow());
    click("#btn-export-api", () => this.exportApi());
    click("#btn-library", () => this.panels.show("library"));
    click("#btn-templates", () => this.panels.show("templates"));
    click("#btn-undo", () => app.history.undo());
    click("#btn-redo", () => app.history.redo());
    click("#btn-refresh", () => this.refreshDefs());
    click("#btn-queue", () => app.queue({ batch: this.batchCount() }));
    click("#btn-queue-front", () => app.queue({ batch: this.batchCount(), front: true }));
    click("#btn-interrupt", () => app.interrupt());
    click("#btn-panel-queue", () => (this.cache.refreshSoon(0), this.panels.toggle("queue")));
    click("#btn-panel-gallery", () => this.panels.toggle("gallery"));
    click("#btn-panel-packs", () => this.panels.toggle("packs"));
    click("#btn-help", () => this.showHelp());
    $("#side-close").addEventListener("click", () => this.panels.hide());
    $("#file-input").addEventListener("change", (e) => {
      const file = e.target.files?.[0];
      e.target.value = "";
      if (file) this.guard(() => this.app.handleFile(file));
    });
    this.installDrop();
    installShortcuts(app, this);
    this.cache.install();
    app.execution.onChange(() => this.updateRunStatus());
    app.api.addEventListener("reconnecting", () => this.setConnection(false));
    app.api.addEventListener("reconnected", () => this.setConnection(true));
    app.api.addEventListener("connected", () => this.setConnection(true));
    window.addEventListener("resize", () => this.resizeCanvas());
    this.resizeCanvas();
  }

  /** Runs an action and reports its failure in plain words instead of losing it. */
  async guard(fn) {
    try {
      return await fn();
    } catch (e) {
      console.error(e);
      this.toast(e.message ?? String(e), "error");
      return undefined;
    }
  }

  batchCount() {
    return Math.max(1, Math.min(100, Number($("#batch-count").value) || 1));
  }

  resizeCanvas() {
    const host = $("#canvas-host");
    const canvas = this.app.canvas;
    if (!canvas) return;
    canvas.resize(host.clientWidth, host.clientHeight);
    canvas.setDirty(true, true);
  }

  setTitle(name) {
    $("#workflow-title").textContent = (name ?? "Unsaved workflow") + (this.dirty ? " •" : "");
    document.title = `${name ?? "Untitled"} – Loom`;
  }

  markDirty() {
    if (this.dirty) return;
    this.dirty = true;
    this.setTitle(this.app.workflowName);
  }

  markClean() {
    this.dirty = false;
    this.setTitle(this.app.workflowName);
  }

  updateUndoButtons() {
    $("#btn-undo").disabled = !this.app.history.canUndo;
    $("#btn-redo").disabled = !this.app.history.canRedo;
  }

  setConnection(up) {
    document.body.classList.toggle("disconnected", !up);
    this.updateRunStatus();
  }

  updateRunStatus() {
    const ex = this.app.execution;
    const el = $("#run-status");
    const text = el.querySelector(".text");
    el.className = "run-status";
    if (!this.app.api.connected) {
      el.classList.add("offline");
      text.textContent = "reconnecting…";
      return;
    }
    const pending = ex.queueRemaining ?? 0;
    if (ex.isRunning) {
      el.classList.add("running");
      const node = ex.runningNode ? this.app.graph.getNodeById(Number(ex.runningNode)) : null;
      const p = ex.progress;
      const step = p && p.max ? ` ${p.value}/${p.max}` : "";
      text.textContent = `running${node ? ` ${node.title}` : ""}${step}${pending > 1 ? ` · ${pending - 1} queued` : ""}`;
    } else {
      text.textContent = pending ? `${pending} queued` : "idle";
    }
    this.panels.onExecutionChange();
  }

  // -- messages ---------------------------------------------------------------------------------
  toast(message, kind = "info", ms = 4000) {
    const el = document.createElement("div");
    el.className = `toast ${kind}`;
    el.textContent = message;
    const box = $("#toasts");
    box.append(el);
    while (box.children.length > 4) box.firstElementChild.remove();
    setTimeout(() => el.remove(), kind === "error" ? ms * 2 : ms);
    return el;
  }

  banner(html, kind = "warn") {
    const el = $("#banner");
    if (!html) {
      el.hidden = true;
      el.innerHTML = "";
      return;
    }
    el.className = `banner ${kind}`;
    el.innerHTML = html;
    const close = document.createElement("button");
    close.textContent = "✕";
    close.title = "Dismiss";
    close.addEventListener("click", () => this.banner(null));
    el.append(close);
    el.hidden = false;
    this.resizeCanvas();
  }

  /** `packs`: {type: pack name}; `links`: {type: [{title, url}]} install sources the server knows. */
  showMissingTypes(types, packs = {}, links = {}) {
    if (!types?.length) {
      if ($("#banner").dataset.kind === "missing") this.banner(null);
      return;
    }
    const install = (t) => (links[t] ?? [])
      .map((p) => ` <button class="small install" data-source="${esc(p.url)}" title="Open the node packs panel with ${esc(p.url)} filled in">Install ${esc(p.title)}…</button>`)
      .join("");
    const items = types
      .map((t) => `<li><code>${esc(t)}</code>${packs[t] ? ` — from the node pack <b>${esc(packs[t])}</b>` : ""}${install(t)}</li>`)
      .join("");
    this.banner(
      `<b>This workflow uses node types this server does not have.</b> They are kept as red placeholders and saved unchanged; install the node packs that provide them to run it.<ul class="missing">${items}</ul>`,
    );
    $("#banner").dataset.kind = "missing";
    for (const b of document.querySelectorAll("#banner button.install")) {
      b.addEventListener("click", () => this.guard(() => this.panels.packs.openWith(b.dataset.source)));
    }
  }

  /** Opens a modal; returns {el, close}. `buttons` = [{label, value, primary}] resolves `result`. */
  modal(title, body, buttons = [{ label: "Close", value: null }]) {
    const back = document.createElement("div");
    back.className = "modal-back";
    const box = document.createElement("div");
    box.className = "modal";
    box.setAttribute("role", "dialog");
    const h = document.createElement("h2");
    h.textContent = title;
    const content = document.createElement("div");
    content.className = "modal-body";
    if (typeof body === "string") content.innerHTML = body;
    else if (body) content.append(body);
    const foot = document.createElement("div");
    foot.className = "modal-foot";
    box.append(h, content, foot);
    back.append(box);
    document.body.append(back);
    let resolve;
    const result = new Promise((r) => (resolve = r));
    const close = (value = null) => {
      back.remove();
      document.removeEventListener("keydown", onKey, true);
      resolve(value);
    };
    const onKey = (e) => {
      if (e.key === "Escape") {
        e.stopPropagation();
        close(null);
      }
    };
    document.addEventListener("keydown", onKey, true);
    back.addEventListener("mousedown", (e) => e.target === back && close(null));
    for (const b of buttons) {
      const btn = document.createElement("button");
      btn.textContent = b.label;
      if (b.primary) btn.className = "primary";
      btn.addEventListener("click", () => close(typeof b.value === "function" ? b.value() : b.value));
      foot.append(btn);
    }
    return { el: box, close, result };
  }

  async promptText(title, label, value = "") {
    const wrap = document.createElement("label");
    wrap.className = "field";
    wrap.textContent = label;
    const input = document.createElement("input");
    input.value = value;
    wrap.append(input);
    const m = this.modal(title, wrap, [
      { label: "Cancel", value: null },
      { label: "OK", value: () => input.value.trim(), primary: true },
    ]);
    input.addEventListener("keydown", (e) => {
      e.stopPropagation();
      if (e.key === "Enter") m.close(input.value.trim());
      if (e.key === "Escape") m.close(null);
    });
    setTimeout(() => input.select(), 0);
    return m.result;
  }

  showHelp() {
    const rows = SHORTCUTS.map(([keys, what]) => `<tr><td>${keys.map((k) => `<kbd>${esc(k)}</kbd>`).join(" ")}</td><td>${esc(what)}</td></tr>`).join("");
    const mouse = [
      ["Double-click empty canvas", "search and add a node"],
      ["Drag a link into empty space", "add a node that fits, already connected"],
      ["Right-click", "menus: add node by category, groups, node options (title, colour, mode, …)"],
      ["Drag with Ctrl / Shift", "select several nodes with a rectangle"],
      ["Wheel / drag empty space", "zoom / pan"],
      ["Drop a .json or .png", "load its workflow"],
    ]
      .map(([a, b]) => `<tr><td>${esc(a)}</td><td>${esc(b)}</td></tr>`)
      .join("");
    this.modal("Keyboard shortcuts", `<table class="shortcuts">${rows}</table><h3>Mouse</h3><table class="shortcuts">${mouse}</table>`);
  }

  // -- errors -----------------------------------------------------------------------------------
  showValidationError(body) {
    const nodeErrors = body?.node_errors ?? {};
    const lines = [];
    for (const [id, entry] of Object.entries(nodeErrors)) {
      const node = this.app.graph.getNodeById(Number(id));
      const title = node?.title ?? entry.class_type ?? `node ${id}`;
      for (const err of entry.errors ?? []) lines.push(`<li><b>${esc(title)}</b> <span class="muted">#${esc(id)}</span>: ${esc(describeNodeError(err))}</li>`);
    }
    const top = body?.error;
    const headline = top?.message ?? "The server refused the workflow";
    const details = top?.details ? `<p class="muted">${esc(top.details)}</p>` : "";
    if (top?.type === "missing_node_type") {
      // The server names the missing types (and, when it knows, the packs that provide them).
      const info = top.extra_info ?? {};
      const types = new Set([...this.app.missingTypes, ...(info.missing_node_types ?? []), ...(info.class_type ? [info.class_type] : [])]);
      const packs = { ...packsOf(this.app.serializeWorkflow(), [...types]), ...providerNames(info.providers) };
      this.showMissingTypes([...types], packs, providerLinks(info.providers));
    }
    this.toast(`Not queued: ${headline}`, "error");
    this.errorPanel(`<p><b>${esc(headline)}</b></p>${details}${lines.length ? `<ul class="errors">${lines.join("")}</ul>` : ""}`);
  }

  showExecutionError(d, node) {
    const title = node?.title ?? d.node_type ?? `node ${d.node_id}`;
    const tb = Array.isArray(d.traceback) ? d.traceback.join("") : d.traceback ?? "";
    this.toast(`${title} failed: ${d.exception_message}`, "error");
    this.errorPanel(
      `<p><b>${esc(title)}</b> <span class="muted">#${esc(d.node_id)} (${esc(d.node_type)})</span> failed:</p>
       <p class="exc">${esc(d.exception_type ?? "Error")}: ${esc(d.exception_message ?? "")}</p>
       ${tb ? `<details open><summary>Traceback</summary><pre>${esc(tb)}</pre></details>` : ""}`,
    );
  }

  errorPanel(html) {
    let el = $("#error-panel");
    if (!el) {
      el = document.createElement("div");
      el.id = "error-panel";
      document.getElementById("canvas-host").append(el);
    }
    el.innerHTML = `<button class="close" title="Dismiss">✕</button>${html}`;
    el.querySelector(".close").addEventListener("click", () => el.remove());
  }

  clearErrorPanel() {
    $("#error-panel")?.remove();
  }

  onQueued(res) {
    this.toast(`Queued${res?.number != null ? ` #${res.number}` : ""}`);
    this.panels.refreshSoon();
  }

  // -- files and library -----------------------------------------------------------------------
  async newWorkflow() {
    await this.app.loadWorkflow({ nodes: [], links: [], groups: [], version: 0.4, last_node_id: 0, last_link_id: 0 }, { name: null });
    this.markClean();
  }

  download(name, text, type = "application/json") {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([text], { type }));
    a.download = name;
    document.body.append(a);
    a.click();
    setTimeout(() => {
      URL.revokeObjectURL(a.href);
      a.remove();
    }, 0);
  }

  baseName() {
    return (this.app.workflowName ?? "workflow").replace(/^workflows\//, "").replace(/\.json$/, "");
  }

  downloadWorkflow() {
    this.download(`${this.baseName()}.json`, JSON.stringify(this.app.serializeWorkflow(), null, 2));
  }

  exportApi() {
    this.download(`${this.baseName()}_api.json`, JSON.stringify(this.app.toApiPrompt(), null, 2));
  }

  async saveToLibrary({ askName = false } = {}) {
    let name = this.app.workflowName;
    if (askName || !name) {
      name = await this.promptText(askName ? "Save as" : "Save workflow", "Name in the workflow library", name ?? "my workflow");
      if (!name) return null;
    }
    name = name.replace(/\.json$/i, "");
    if (/(^|\/)\.\.(\/|$)/.test(name) || name.startsWith("/")) throw new Error(`"${name}" is not a valid workflow name`);
    await this.app.api.putUserdata(`workflows/${name}.json`, JSON.stringify(this.app.serializeWorkflow(), null, 2));
    this.app.workflowName = name;
    this.markClean();
    this.toast(`Saved ${name}`);
    this.panels.refreshIfShown("library");
    return name;
  }

  async refreshDefs() {
    await this.app.refreshNodeDefs();
    this.toast("Node definitions and model lists refreshed");
  }

  installDrop() {
    const overlay = $("#drop-overlay");
    let depth = 0;
    const hasFiles = (e) => [...(e.dataTransfer?.types ?? [])].includes("Files");
    document.addEventListener("dragenter", (e) => {
      if (!hasFiles(e)) return;
      depth++;
      overlay.hidden = false;
    });
    document.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (!depth) overlay.hidden = true;
    });
    document.addEventListener("dragover", (e) => {
      if (hasFiles(e)) e.preventDefault();
    });
    document.addEventListener("drop", (e) => {
      depth = 0;
      overlay.hidden = true;
      const file = e.dataTransfer?.files?.[0];
      if (!file) return;
      e.preventDefault();
      // An image dropped on a node with an upload widget goes to that node.
      const canvas = this.app.canvas;
      const pos = canvas.convertEventToCanvasOffset(e);
      const node = this.app.graph.getNodeOnPos(pos[0], pos[1]);
      if (node?.onDragDrop && file.type.startsWith("image/")) {
        this.guard(() => node.onDragDrop(e));
        return;
      }
      this.guard(() => this.app.handleFile(file));
    });
  }
}

export function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
