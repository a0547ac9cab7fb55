// The editor: one LiteGraph canvas over one graph, node types from the server, and the
// operations the toolbar, the shortcuts, the tests (window.loomApp) and extensions call.

import { LGraph, LGraphCanvas, LiteGraph } from "../vendor/litegraph.es.js";
import { LoomApi } from "./api.js";
import { apiPromptToWorkflow } from "./apiToGraph.js";
import { workflowToPrompt } from "./convert.js";
import { defaultWorkflow } from "./defaultGraph.js";
import { hideUndrawn, setDomWidgetContainer } from "./domWidget.js";
import { providerLinks, providerNames } from "./errors.js";
import { ExecutionState, installNodeDecorations } from "./execution.js";
import { ExtensionManager } from "./extensions.js";
import { UndoHistory } from "./history.js";
import { refreshComboValues, registerNodeDefs } from "./nodeTypes.js";
import { readPngText } from "./pnginfo.js";
import { NodeSearch } from "./search.js";
import { packsOf, registerMissingTypes, registerSpecialNodes } from "./specialNodes.js";
import { applyTheme } from "./theme.js";
import { applySeedControls } from "./widgets.js";

const AUTOSAVE_KEY = "loom.workflow";

export class LoomApp {
  constructor() {
    this.api = new LoomApi();
    this.objectInfo = {};
    this.graph = null;
    this.canvas = null;
    this.execution = new ExecutionState(this);
    this.history = new UndoHistory(this);
    this.search = new NodeSearch(this);
    this.extensions = new ExtensionManager(this);
    this.missingTypes = [];
    this.workflowName = null; // path in the library (workflows/<name>.json) once saved there
    this.ui = null; // set by ui.js
  }

  async setup(canvasEl, ui) {
    this.ui = ui;
    setDomWidgetContainer(document.getElementById("canvas-host"));
    LiteGraph.catch_exceptions = true;
    this.graph = new LGraph();
    this.canvas = new LGraphCanvas(canvasEl, this.graph);
    this.graph.primaryCanvas = this.canvas;
    applyTheme(this.canvas);
    installNodeDecorations(this.execution);
    this.canvas.onDrawOverlay = () => hideUndrawn();
    this._bindCanvasEvents(canvasEl);
    ui.install();
    registerSpecialNodes();
    await this.extensions.load();
    await this.extensions.invokeAsync("init", this);
    await this.refreshNodeDefs({ register: true });
    this.execution.bind(this.api);
    this.api.connect();
    await Promise.all([this.loadInitialWorkflow(), this.api.waitConnected()]);
    await this.extensions.invokeAsync("setup", this);
    setInterval(() => this._autosave(), 1000);
  }

  _bindCanvasEvents(canvasEl) {
    canvasEl.addEventListener("litegraph:canvas", (e) => {
      const d = e.detail;
      if (d.subType === "empty-double-click") {
        const ev = d.originalEvent;
        this.search.open({ x: ev.clientX, y: ev.clientY, graphPos: this.canvas.convertEventToCanvasOffset(ev) });
      } else if (d.subType === "empty-release") {
        const ev = d.originalEvent;
        const first = d.linkReleaseContext?.links?.[0];
        if (!first) return;
        // Dragged from an output: offer nodes with a fitting input, and vice versa.
        const fromOutput = !!first.output;
        const slotDef = fromOutput ? first.output : first.input;
        const link = { node: first.node, slot: first.slot, type: slotDef?.type ?? "*", wants: fromOutput ? "input" : "output" };
        const graphPos = this.canvas.convertEventToCanvasOffset(ev);
        setTimeout(() => this.search.open({ x: ev.clientX, y: ev.clientY, graphPos, link }), 0);
      }
    });
    // Structural edits (move, connect, delete, paste, ...) end with a pointer or key release.
    for (const type of ["pointerup", "keyup"]) canvasEl.addEventListener(type, () => setTimeout(() => this.history.checkpoint(), 0));
    const origAfterChange = this.canvas.onAfterChange;
    this.canvas.onAfterChange = (graph) => {
      origAfterChange?.call(this.canvas, graph);
      this.history.checkpointSoon(50);
    };
  }

  async refreshNodeDefs({ register = false } = {}) {
    let info = await this.api.getObjectInfo();
    info = (await this.extensions.invokeAsync("addCustomNodeDefs", info, this)) ?? info;
    this.objectInfo = info;
    if (register) registerNodeDefs(info, this);
    else {
      // New types (a pack installed meanwhile) get registered; combo lists of nodes update.
      const fresh = Object.fromEntries(Object.entries(info).filter(([k]) => !LiteGraph.registered_node_types[k] || LiteGraph.registered_node_types[k].loomPlaceholder));
      registerNodeDefs(fresh, this);
      refreshComboValues(this.graph, info);
    }
    this.search.index(info);
    return info;
  }

  async loadInitialWorkflow() {
    const saved = localStorage.getItem(AUTOSAVE_KEY);
    if (saved && !new URLSearchParams(location.search).has("fresh")) {
      try {
        const { workflow, name } = JSON.parse(saved);
        await this.loadWorkflow(workflow);
        this.workflowName = name ?? null;
        this.ui?.setTitle(this.workflowName);
        return;
      } catch (e) {
        console.warn("loom: autosaved workflow could not be restored", e);
      }
    }
    await this.loadWorkflow(await this.fetchDefaultWorkflow());
  }

  /** The server's txt2img template, else the built-in graph of core nodes. */
  async fetchDefaultWorkflow() {
    try {
      const templates = await this.api.getJson("/workflow_templates");
      for (const [pack, names] of Object.entries(templates ?? {})) {
        const hit = (names ?? []).find((n) => String(n).replace(/\.json$/, "") === "txt2img");
        if (!hit) continue;
        const res = await this.api.fetchApi(`/workflow_templates/${encodeURIComponent(pack)}/${hit.endsWith(".json") ? hit : `${hit}.json`}`);
        if (res.ok) return await res.json();
      }
    } catch {
      /* no template route or template: fall back to the built-in graph */
    }
    return defaultWorkflow(this.objectInfo);
  }

  knownTypes() {
    return new Set(Object.entries(LiteGraph.registered_node_types).filter(([, c]) => !c.loomPlaceholder).map(([k]) => k));
  }

  /** Loads a UI workflow (version 0.4 or 1) or an API prompt; unknown types become placeholders. */
  async loadWorkflow(json, { keepView = false, keepHistory = false, name = undefined } = {}) {
    if (typeof json === "string") json = JSON.parse(json);
    if (!json || typeof json !== "object") throw new Error("not a workflow: expected a JSON object");
    if (!Array.isArray(json.nodes) && isApiPrompt(json)) json = apiPromptToWorkflow(json);
    if (!Array.isArray(json.nodes)) throw new Error("not a workflow: it has no \"nodes\" list");
    json = structuredClone(json);
    this.missingTypes = registerMissingTypes(json, this.knownTypes());
    const ds = keepView ? { scale: this.canvas.ds.scale, offset: [...this.canvas.ds.offset] } : null;
    this.execution.clearErrors();
    this.execution.images.clear();
    this.graph.configure(json);
    for (const node of this.graph._nodes) node.buildWidget?.(); // primitives need their targets in place
    for (const node of this.graph._nodes) {
      if (node.loomMissing) node.has_errors = true;
      this.extensions.invoke("loadedGraphNode", node, this);
    }
    if (ds) {
      this.canvas.ds.scale = ds.scale;
      this.canvas.ds.offset = ds.offset;
    } else if (json.extra?.ds) {
      this.canvas.ds.scale = json.extra.ds.scale ?? 1;
      this.canvas.ds.offset = [...(json.extra.ds.offset ?? [0, 0])];
      // A view saved on a bigger screen would hide part of the graph here.
      if (!this.graphFitsView()) this.fitView();
    } else {
      this.fitView();
    }
    this.ui?.showMissingTypes(this.missingTypes, packsOf(json, this.missingTypes));
    if (this.missingTypes.length) this._lookUpProviders(json, this.missingTypes);
    if (name !== undefined) {
      this.workflowName = name;
      this.ui?.setTitle(name);
    }
    if (!keepHistory) this.history.reset();
    this.canvas.setDirty(true, true);
    return this.graph;
  }

  /** Asks the server which known node packs provide the missing types, then updates the banner. */
  async _lookUpProviders(json, types) {
    try {
      const q = types.map((t) => `class_type=${encodeURIComponent(t)}`).join("&");
      const { providers } = await this.api.getJson(`/nodes/providers?${q}`);
      if (this.missingTypes !== types) return; // another workflow was loaded meanwhile
      this.ui?.showMissingTypes(types, { ...packsOf(json, types), ...providerNames(providers) }, providerLinks(providers));
    } catch {
      /* a server without the pack index: the banner keeps what the workflow itself says */
    }
  }

  graphBounds() {
    let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
    for (const n of this.graph._nodes) {
      x0 = Math.min(x0, n.pos[0]);
      y0 = Math.min(y0, n.pos[1] - LiteGraph.NODE_TITLE_HEIGHT);
      x1 = Math.max(x1, n.pos[0] + n.size[0]);
      y1 = Math.max(y1, n.pos[1] + n.size[1]);
    }
    return [x0, y0, x1, y1];
  }

  graphFitsView() {
    if (!this.graph._nodes.length) return true;
    const [x0, y0, x1, y1] = this.graphBounds();
    const [ax, ay] = this.canvas.ds.convertOffsetToCanvas([x0, y0]);
    const [bx, by] = this.canvas.ds.convertOffsetToCanvas([x1, y1]);
    const el = this.canvas.canvas;
    return ax >= 0 && ay >= 0 && bx <= el.clientWidth && by <= el.clientHeight;
  }

  fitView() {
    if (!this.graph._nodes.length) return;
    const [x0, y0, x1, y1] = this.graphBounds();
    const el = this.canvas.canvas;
    const w = el.clientWidth || 1200;
    const h = el.clientHeight || 800;
    const scale = Math.min(1.1, Math.max(0.1, Math.min(w / (x1 - x0 + 120), h / (y1 - y0 + 120))));
    this.canvas.ds.scale = scale;
    this.canvas.ds.offset = [w / scale / 2 - (x0 + x1) / 2, h / scale / 2 - (y0 + y1) / 2];
    this.canvas.setDirty(true, true);
  }

  serializeWorkflow() {
    const wf = this.graph.serialize();
    wf.extra ??= {};
    wf.extra.ds = { scale: this.canvas.ds.scale, offset: [...this.canvas.ds.offset] };
    wf.extra.frontend = "loom";
    wf.version = 0.4;
    return structuredClone(wf);
  }

  /** The API prompt the queue sends: the same function of the saved JSON as any converter. */
  toApiPrompt(workflow = this.serializeWorkflow()) {
    return workflowToPrompt(workflow, this.objectInfo);
  }

  /**
   * Queues the graph `batch` times (or once per call to the front). Resolves to the server's
   * answers; a validation failure marks the nodes and resolves with {error, node_errors}.
   */
  async queue({ batch = 1, front = false } = {}) {
    const results = [];
    for (let i = 0; i < batch; i++) {
      for (const node of this.graph._nodes) for (const w of node.widgets ?? []) w.beforeQueued?.();
      const workflow = this.serializeWorkflow();
      const prompt = this.toApiPrompt(workflow);
      // Cleared before the request: a node can fail before the response arrives, and its error must stay.
      this.execution.clearErrors();
      this.ui?.clearErrorPanel();
      try {
        const res = await this.api.queuePrompt(prompt, { workflow, front });
        if (res?.node_errors && Object.keys(res.node_errors).length) this.execution.setValidationErrors(res.node_errors);
        results.push(res);
        applySeedControls(this.graph);
        for (const node of this.graph._nodes) for (const w of node.widgets ?? []) w.afterQueued?.();
        this.history.checkpoint();
        this.ui?.onQueued(res);
      } catch (e) {
        const body = e.body ?? { error: { message: e.message } };
        this.execution.setValidationErrors(body.node_errors ?? {});
        this.ui?.showValidationError(body);
        results.push(body);
        break;
      }
    }
    return results;
  }

  async interrupt() {
    await this.api.interrupt();
  }

  // -- files --------------------------------------------------------------------------------------
  /** Loads a dropped or chosen file: workflow JSON, API JSON, or a PNG with embedded metadata. */
  async handleFile(file) {
    const name = file.name ?? "file";
    if (file.type === "image/png" || name.toLowerCase().endsWith(".png")) {
      let text;
      try {
        text = await readPngText(await file.arrayBuffer());
      } catch (e) {
        throw new Error(`${name}: ${e.message}`);
      }
      if (text.workflow) return this.loadWorkflow(JSON.parse(text.workflow), { name: null });
      if (text.prompt) return this.loadWorkflow(JSON.parse(text.prompt), { name: null });
      throw new Error(`${name} has no embedded workflow (no "workflow" or "prompt" text chunk)`);
    }
    if (file.type === "application/json" || name.toLowerCase().endsWith(".json")) {
      let json;
      try {
        json = JSON.parse(await file.text());
      } catch (e) {
        throw new Error(`${name} is not valid JSON: ${e.message}`);
      }
      return this.loadWorkflow(json, { name: null });
    }
    throw new Error(`${name}: only workflow .json files and .png images with an embedded workflow can be loaded`);
  }

  onGraphEdited() {
    this.ui?.markDirty?.();
  }

  _autosave() {
    if (!this.graph) return;
    try {
      localStorage.setItem(AUTOSAVE_KEY, JSON.stringify({ workflow: this.serializeWorkflow(), name: this.workflowName }));
    } catch {
      /* storage full or disabled: autosave is a convenience */
    }
  }

  // ComfyUI-compatible names that simple pack scripts use.
  registerExtension(ext) {
    this.extensions.register(ext);
  }

  graphToPrompt() {
    const workflow = this.serializeWorkflow();
    return Promise.resolve({ workflow, output: this.toApiPrompt(workflow) });
  }

  queuePrompt(number, batchCount = 1) {
    return this.queue({ batch: batchCount, front: number === -1 });
  }

  loadGraphData(json) {
    return this.loadWorkflow(json);
  }
}

function isApiPrompt(json) {
  const values = Object.values(json);
  return values.length > 0 && values.every((v) => v && typeof v === "object" && typeof v.class_type === "string");
}
