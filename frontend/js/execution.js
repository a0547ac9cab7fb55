// What the server tells us about runs, drawn on the canvas: the running node outlined with its
// step progress, cached nodes marked, live previews and output images inside the nodes,
// validation and execution errors on the nodes (and inputs) they concern.

import { LGraphCanvas, LiteGraph } from "../vendor/litegraph.es.js";

const RUNNING = "#3fb950";
const CACHED = "#58a6ff";
const ERROR = "#ff4d4f";

export class ExecutionState {
  constructor(app) {
    this.app = app;
    this.promptId = null;
    this.runningNode = null;
    this.progress = null; // {value, max, node}
    this.cached = new Set();
    this.executed = new Set();
    this.outputs = {}; // nodeId -> ui output dict
    this.images = new Map(); // nodeId -> {images: [HTMLImageElement], preview: bool}
    this.nodeErrors = {}; // validation: nodeId -> {errors, class_type}
    this.execError = null; // {node_id, exception_message, traceback, ...}
    this.gallery = []; // [{url, filename, promptId, nodeId}]
    this.listeners = new Set();
    this.runCount = 0;
  }

  onChange(fn) {
    this.listeners.add(fn);
  }

  changed() {
    for (const fn of this.listeners) fn(this);
    this.app.canvas?.setDirty(true, true);
  }

  bind(api) {
    const on = (type, fn) => api.addEventListener(type, (e) => fn(e.detail));
    on("execution_start", (d) => {
      this.promptId = d.prompt_id;
      this.cached.clear();
      this.executed.clear();
      this.execError = null;
      this.progress = null;
      this.changed();
    });
    on("execution_cached", (d) => {
      this.promptId ??= d.prompt_id;
      for (const id of d.nodes ?? []) this.cached.add(String(id));
      this.changed();
    });
    on("executing", (d) => {
      const node = d.display_node ?? d.node;
      if (node == null) {
        if (!d.prompt_id || d.prompt_id === this.promptId) this._finish();
        return;
      }
      if (this.runningNode && this.runningNode !== String(node)) this.executed.add(this.runningNode);
      this.promptId = d.prompt_id ?? this.promptId;
      this.runningNode = String(node);
      if (this.progress?.node !== this.runningNode) this.progress = null;
      this.changed();
    });
    on("progress", (d) => {
      this.promptId = d.prompt_id ?? this.promptId;
      const node = d.node != null ? String(d.node) : this.runningNode;
      if (node && !this.runningNode) this.runningNode = node;
      this.progress = { value: d.value, max: d.max, node };
      this.changed();
    });
    on("executed", (d) => {
      const id = String(d.display_node ?? d.node);
      const output = d.output ?? {};
      this.outputs[id] = d.merge && this.outputs[id] ? mergeOutputs(this.outputs[id], output) : output;
      const node = this.app.graph.getNodeById(Number(id)) ?? this.app.graph.getNodeById(id);
      if (output.images?.length) {
        const refs = this.outputs[id].images;
        if (node) this.setNodeImages(node, refs);
        for (const ref of output.images) {
          this.gallery.unshift({ url: this.app.api.viewUrl(ref), ref, promptId: d.prompt_id, nodeId: id });
        }
      }
      this.executed.add(id);
      node?.onExecuted?.(output);
      this.changed();
    });
    on("execution_success", () => this._finish());
    on("execution_interrupted", (d) => {
      this.app.ui.toast(`Run interrupted${d.node_id ? ` at node #${d.node_id}` : ""}`);
      this._finish();
    });
    // Cluster mode (`loom serve --workers ray`): the worker running it was lost; it runs again first.
    on("loom_requeued", (d) => {
      this.app.ui.toast(`Worker ${d.worker} was lost; the run goes again from the front of the queue`, "error");
      this.progress = null;
      this.changed();
    });
    on("execution_error", (d) => {
      this.execError = d;
      const node = this.app.graph.getNodeById(Number(d.node_id));
      this.app.ui.showExecutionError(d, node);
      this._finish();
      if (node) this.app.canvas.centerOnNode?.(node);
    });
    on("b_preview", (d) => {
      const id = d.nodeId != null ? String(d.nodeId) : this.runningNode;
      if (!id || !this.isRunning) return;
      const run = this.runCount;
      const node = this.app.graph.getNodeById(Number(id));
      if (!node) return;
      const url = URL.createObjectURL(d.blob);
      const img = new Image();
      img.onload = () => {
        if (run !== this.runCount) return URL.revokeObjectURL(url); // arrived after its run ended
        const prev = this.images.get(id);
        if (prev?.preview) for (const old of prev.images) URL.revokeObjectURL(old.src);
        this.images.set(id, { images: [img], preview: true });
        this.ensureRoom(node);
        this.app.canvas.setDirty(true, false);
      };
      img.src = url;
    });
    on("status", (d) => {
      this.queueRemaining = d.status?.exec_info?.queue_remaining ?? 0;
      this.changed();
    });
  }

  _finish() {
    this.runCount++;
    if (this.runningNode) this.executed.add(this.runningNode);
    this.runningNode = null;
    this.progress = null;
    this.lastFinishedPrompt = this.promptId;
    this.promptId = null;
    // Previews give way to the final images (or disappear when a node had none).
    for (const [id, entry] of this.images) if (entry.preview) this.images.delete(id);
    for (const [id, out] of Object.entries(this.outputs)) {
      const node = this.app.graph.getNodeById(Number(id));
      if (node && out.images?.length && !this.images.has(id)) this.setNodeImages(node, out.images);
    }
    this.changed();
  }

  get isRunning() {
    return this.promptId != null || this.runningNode != null;
  }

  /** Loads image refs ({filename, subfolder, type}) and shows them inside the node. */
  setNodeImages(node, refs, { fromWidget = false } = {}) {
    const id = String(node.id);
    const entry = { images: [], preview: false, fromWidget, refs };
    this.images.set(id, entry);
    for (const ref of refs) {
      const img = new Image();
      img.onload = () => {
        this.ensureRoom(node);
        this.app.canvas.setDirty(true, false);
      };
      img.src = this.app.api.viewUrl(ref) + (fromWidget ? "" : `&rand=${Math.random().toString(36).slice(2, 8)}`);
      img.dataset.filename = ref.filename;
      entry.images.push(img);
    }
  }

  /** Grows a node so its image has room under the widgets. */
  ensureRoom(node) {
    const top = contentBottom(node);
    if (node.size[1] - top < 180) node.setSize([Math.max(node.size[0], 240), top + 220]);
  }

  setValidationErrors(nodeErrors) {
    this.nodeErrors = nodeErrors ?? {};
    for (const node of this.app.graph._nodes) node.has_errors = String(node.id) in this.nodeErrors || !!node.loomMissing;
    this.changed();
  }

  clearErrors() {
    this.execError = null;
    this.setValidationErrors({});
  }

  drawNodeImages(node, ctx) {
    const entry = this.images.get(String(node.id));
    if (!entry || node.flags.collapsed) return;
    const ready = entry.images.filter((img) => img.complete && img.naturalWidth);
    if (!ready.length) return;
    const top = contentBottom(node) + 4;
    const w = node.size[0] - 16;
    const h = node.size[1] - top - 6;
    if (h < 20) return;
    const cols = Math.ceil(Math.sqrt(ready.length));
    const rows = Math.ceil(ready.length / cols);
    const cw = w / cols;
    const ch = h / rows;
    ready.forEach((img, i) => {
      const scale = Math.min(cw / img.naturalWidth, ch / img.naturalHeight);
      const iw = img.naturalWidth * scale;
      const ih = img.naturalHeight * scale;
      const x = 8 + (i % cols) * cw + (cw - iw) / 2;
      const y = top + Math.floor(i / cols) * ch + (ch - ih) / 2;
      ctx.drawImage(img, x, y, iw, ih);
    });
    if (ready.length === 1 && !entry.preview && !entry.fromWidget) {
      ctx.fillStyle = LiteGraph.WIDGET_SECONDARY_TEXT_COLOR;
      ctx.font = "11px Inter, system-ui, sans-serif";
      ctx.textAlign = "center";
      ctx.fillText(`${ready[0].naturalWidth} × ${ready[0].naturalHeight}`, node.size[0] / 2, node.size[1] - 2);
    }
  }

  /** Per-node decorations drawn after LiteGraph draws the node (ctx is at the node's origin). */
  decorate(node, ctx) {
    const id = String(node.id);
    const w = node.size[0];
    const collapsed = node.flags.collapsed;
    const h = collapsed ? 0 : node.size[1];
    const th = LiteGraph.NODE_TITLE_HEIGHT;
    const outline = (color, width, dash) => {
      ctx.save();
      ctx.strokeStyle = color;
      ctx.lineWidth = width;
      if (dash) ctx.setLineDash(dash);
      ctx.beginPath();
      ctx.roundRect(-4, -th - 4, (collapsed ? node._collapsed_width ?? w : w) + 8, h + th + 8, 10);
      ctx.stroke();
      ctx.restore();
    };
    if (this.runningNode === id) {
      outline(RUNNING, 3);
      const p = this.progress;
      if (p && p.node === id && p.max) {
        ctx.fillStyle = RUNNING;
        ctx.fillRect(0, -th, (w * p.value) / p.max, 4);
        ctx.fillStyle = "#e6edf3";
        ctx.font = "11px Inter, system-ui, sans-serif";
        ctx.textAlign = "right";
        ctx.fillText(`${p.value}/${p.max}`, w - 8, -th - 8);
      }
    } else if (this.cached.has(id)) {
      outline(CACHED, 1.5, [5, 4]);
      badge(ctx, w, th, "cached", CACHED);
    }
    const errors = this.nodeErrors[id]?.errors;
    const isExecError = this.execError && String(this.execError.node_id) === id;
    if (errors?.length || isExecError || node.loomMissing || node.has_errors) {
      outline(ERROR, 3);
      badge(ctx, w, th, node.loomMissing ? "missing" : isExecError ? "failed" : "error", ERROR);
    }
    if (errors?.length && !collapsed) {
      for (const err of errors) {
        const name = err.extra_info?.input_name;
        if (!name) continue;
        const slotIndex = node.inputs?.findIndex((s) => (s.widget?.name ?? s.name) === name) ?? -1;
        const widget = node.widgets?.find((wd) => wd.name === name);
        let pos = null;
        if (widget && !widget.hidden && widget.last_y != null) pos = [6, widget.last_y + LiteGraph.NODE_WIDGET_HEIGHT / 2];
        else if (slotIndex >= 0) {
          const p = node.getConnectionPos(true, slotIndex);
          pos = [p[0] - node.pos[0], p[1] - node.pos[1]];
        }
        if (!pos) continue;
        ctx.save();
        ctx.strokeStyle = ERROR;
        ctx.lineWidth = 2;
        ctx.beginPath();
        if (widget && widget.last_y != null) ctx.roundRect(4, widget.last_y - 1, w - 8, LiteGraph.NODE_WIDGET_HEIGHT + 2, 6);
        else ctx.arc(pos[0], pos[1], 7, 0, Math.PI * 2);
        ctx.stroke();
        ctx.restore();
      }
    }
  }
}

function badge(ctx, w, th, text, color) {
  ctx.save();
  ctx.font = "bold 10px Inter, system-ui, sans-serif";
  const tw = ctx.measureText(text).width + 10;
  ctx.fillStyle = color;
  ctx.beginPath();
  ctx.roundRect(w - tw - 4, -th - 18, tw, 14, 7);
  ctx.fill();
  ctx.fillStyle = "#0d1117";
  ctx.textAlign = "center";
  ctx.fillText(text, w - tw / 2 - 4, -th - 7.5);
  ctx.restore();
}

/** Bottom of the slots and widgets (node coordinates): where images may start. */
export function contentBottom(node) {
  let bottom = 0;
  const rows = Math.max(
    node.inputs?.filter((s) => !s.widget).length ?? 0,
    node.outputs?.length ?? 0,
  );
  bottom = rows * LiteGraph.NODE_SLOT_HEIGHT + 6;
  for (const w of node.widgets ?? []) {
    if (w.hidden || w.last_y == null) continue;
    const h = w.computedHeight ?? LiteGraph.NODE_WIDGET_HEIGHT + 4;
    bottom = Math.max(bottom, w.last_y + h);
  }
  return bottom;
}

function mergeOutputs(a, b) {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = Array.isArray(v) && Array.isArray(a[k]) ? [...a[k], ...v] : v;
  return out;
}

/** Hooks the canvas so every node gets its run decorations and mute/bypass look. */
export function installNodeDecorations(execution) {
  const drawNode = LGraphCanvas.prototype.drawNode;
  LGraphCanvas.prototype.drawNode = function (node, ctx) {
    const mode = node.mode;
    const alpha = this.editor_alpha;
    let restore = null;
    if (mode === 2) this.editor_alpha = 0.35;
    if (mode === 4) {
      restore = [node.color, node.bgcolor];
      node.color = "#6b2a77";
      node.bgcolor = "#3d1846";
      this.editor_alpha = 0.75;
    }
    // Errors get Loom's outline (decorate), not LiteGraph's thick default one.
    const hadErrors = node.has_errors;
    node.has_errors = false;
    try {
      drawNode.call(this, node, ctx);
    } finally {
      node.has_errors = hadErrors;
      this.editor_alpha = alpha;
      if (restore) [node.color, node.bgcolor] = restore;
    }
    if (mode === 2 || mode === 4) {
      ctx.save();
      ctx.font = "bold 10px Inter, system-ui, sans-serif";
      ctx.fillStyle = mode === 4 ? "#d896ff" : "#8b949e";
      ctx.textAlign = "left";
      ctx.fillText(mode === 4 ? "BYPASSED" : "MUTED", 4, -LiteGraph.NODE_TITLE_HEIGHT - 6);
      ctx.restore();
    }
    execution.decorate(node, ctx);
  };
  // Kept so a bench can compare against plain LiteGraph drawing.
  LGraphCanvas.prototype.drawNode.loomOriginal = drawNode;
}
