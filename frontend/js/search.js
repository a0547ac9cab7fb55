// The node search dialog: opened by double-clicking the canvas or by dropping a link on empty
// space (then only nodes with a socket that fits the link are offered, and the new node is
// connected). Fuzzy over name, display name, category and socket types.

import { LiteGraph } from "../vendor/litegraph.es.js";
import { inputSpecs, outputSpecs, socketType } from "./nodeSpec.js";

const MAX_RESULTS = 60;

export function typesFit(outputType, inputType) {
  return LiteGraph.isValidConnection(outputType, inputType);
}

/** Scores `needle` as a fuzzy subsequence of `hay` (higher is better; -1 for no match). */
export function fuzzyScore(needle, hay) {
  if (!needle) return 0;
  const h = hay.toLowerCase();
  const n = needle.toLowerCase();
  const at = h.indexOf(n);
  if (at === 0) return 100 + n.length;
  if (at > 0) return 80 - Math.min(at, 30) + n.length + (/[\s_/(]/.test(h[at - 1]) ? 10 : 0);
  let score = 0;
  let j = 0;
  let run = 0;
  for (let i = 0; i < h.length && j < n.length; i++) {
    if (h[i] === n[j]) {
      j++;
      run++;
      score += run * 2;
    } else {
      run = 0;
    }
  }
  return j === n.length ? score : -1;
}

export class NodeSearch {
  constructor(app) {
    this.app = app;
    this.entries = [];
    this.el = null;
  }

  index(objectInfo) {
    this.entries = Object.entries(objectInfo).map(([type, def]) => ({
      type,
      title: def.display_name ?? type,
      category: def.category ?? "",
      inputs: inputSpecs(def).map((s) => socketType(s)),
      outputs: outputSpecs(def).map((o) => o.type),
      description: def.description ?? "",
    }));
    for (const type of ["Reroute", "Note"]) {
      this.entries.push({ type, title: type, category: "utils", inputs: type === "Reroute" ? ["*"] : [], outputs: type === "Reroute" ? ["*"] : [], description: "" });
    }
  }

  /** Ranked matches for a query; `link` = {type, wants: "input"|"output"} filters by socket fit. */
  search(query, link = null) {
    const words = query.trim().split(/\s+/).filter(Boolean);
    const results = [];
    for (const e of this.entries) {
      if (link) {
        const pool = link.wants === "input" ? e.inputs : e.outputs;
        const fits = pool.some((t) => (link.wants === "input" ? typesFit(link.type, t) : typesFit(t, link.type)));
        if (!fits) continue;
      }
      let total = 0;
      let ok = true;
      for (const w of words) {
        const best = Math.max(
          fuzzyScore(w, e.title) * 1.2,
          fuzzyScore(w, e.type) * 1.1,
          fuzzyScore(w, e.category) * 0.6,
          ...e.inputs.map((t) => fuzzyScore(w, t) * 0.5),
          ...e.outputs.map((t) => fuzzyScore(w, t) * 0.5),
        );
        if (best < 0) {
          ok = false;
          break;
        }
        total += best;
      }
      if (ok) results.push({ entry: e, score: total });
    }
    results.sort((a, b) => b.score - a.score || a.entry.title.localeCompare(b.entry.title));
    return results.slice(0, MAX_RESULTS).map((r) => r.entry);
  }

  /**
   * Opens the dialog at client position (x, y). `graphPos` is where the node goes;
   * `link` = {node, slot, type, wants} connects the new node to a dragged link.
   */
  open({ x, y, graphPos, link = null }) {
    this.close();
    const el = document.createElement("div");
    el.className = "loom-search";
    el.innerHTML = `<input type="search" placeholder="Search nodes (name, category, type)…" aria-label="Search nodes">
      ${link ? `<div class="loom-search-filter">${link.wants === "input" ? "accepts" : "produces"} <b></b></div>` : ""}
      <ul role="listbox"></ul>`;
    if (link) el.querySelector(".loom-search-filter b").textContent = link.type;
    document.body.append(el);
    const w = 420;
    el.style.left = `${Math.max(8, Math.min(x - 20, innerWidth - w - 8))}px`;
    el.style.top = `${Math.max(8, Math.min(y - 20, innerHeight - 380))}px`;
    const input = el.querySelector("input");
    const list = el.querySelector("ul");
    let items = [];
    let active = 0;
    const render = () => {
      items = this.search(input.value, link);
      active = Math.min(active, Math.max(0, items.length - 1));
      list.replaceChildren(
        ...items.map((e, i) => {
          const li = document.createElement("li");
          li.className = i === active ? "active" : "";
          li.dataset.type = e.type;
          const title = document.createElement("span");
          title.className = "title";
          title.textContent = e.title;
          const cat = document.createElement("span");
          cat.className = "category";
          cat.textContent = e.category;
          li.append(title, cat);
          li.addEventListener("mousedown", (ev) => {
            ev.preventDefault();
            this.choose(e, graphPos, link);
          });
          return li;
        }),
      );
      list.children[active]?.scrollIntoView({ block: "nearest" });
    };
    input.addEventListener("input", () => {
      active = 0;
      render();
    });
    input.addEventListener("keydown", (ev) => {
      ev.stopPropagation();
      if (ev.key === "ArrowDown") active = Math.min(active + 1, items.length - 1);
      else if (ev.key === "ArrowUp") active = Math.max(active - 1, 0);
      else if (ev.key === "Enter") {
        if (items[active]) this.choose(items[active], graphPos, link);
        return;
      } else if (ev.key === "Escape") {
        this.close();
        return;
      } else return;
      ev.preventDefault();
      render();
    });
    input.addEventListener("blur", () => setTimeout(() => this.el === el && this.close(), 150));
    this.el = el;
    render();
    input.focus();
    return el;
  }

  close() {
    this.el?.remove();
    this.el = null;
  }

  choose(entry, graphPos, link) {
    this.close();
    const { app } = this;
    const node = LiteGraph.createNode(entry.type);
    if (!node) {
      app.ui.toast(`Cannot create a node of type ${entry.type}`, "error");
      return null;
    }
    node.pos = [graphPos[0], graphPos[1]];
    app.graph.add(node);
    if (link) connectToNew(link, node);
    app.canvas.selectNode(node);
    app.history.checkpoint();
    app.canvas.setDirty(true, true);
    return node;
  }
}

function connectToNew(link, node) {
  if (link.wants === "input") {
    const slot = node.inputs.findIndex((s) => typesFit(link.type, s.type) && s.link == null);
    if (slot >= 0) link.node.connect(link.slot, node, slot);
  } else {
    const slot = node.outputs.findIndex((s) => typesFit(s.type, link.type));
    if (slot >= 0) node.connect(slot, link.node, link.slot);
    // The node was placed at the drop point; move it left of the target so the link reads left-to-right.
    node.pos[0] -= node.size[0];
  }
}
