// The output cache made visible: a small readout in the top bar (entries, bytes held / budget,
// hit rate, loaded models) from GET /api/loom/stats, refreshed after every run; a click opens the
// full figures and a "Free memory" action (POST /api/free).

import { esc } from "./ui.js";

const $ = (sel) => document.querySelector(sel);

/** 1536 -> "1.5 KB" (binary units, as RAM is counted); `short`: no decimals from 10 up ("23 KB"). */
export function humanBytes(n, short = false) {
  if (n == null || !Number.isFinite(Number(n))) return "–";
  let v = Number(n);
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 || v >= (short ? 10 : 100) ? Math.round(v) : v.toFixed(1).replace(/\.0$/, "")} ${units[i]}`;
}

/** All workers' caches added up, plus the loaded-model count. */
export function summarize(stats) {
  const caches = Object.values(stats?.workers ?? {}).map((w) => w?.cache).filter(Boolean);
  const sum = (k) => caches.reduce((t, c) => t + (Number(c[k]) || 0), 0);
  const hits = sum("hits");
  const misses = sum("misses");
  return {
    workers: caches.length,
    off: caches.length > 0 && caches.every((c) => c.kind === "none"),
    entries: sum("entries"),
    bytes: sum("bytes"),
    budget: sum("budget_bytes"),
    hits,
    misses,
    evictions: sum("evictions"),
    hitRate: hits + misses ? hits / (hits + misses) : null,
    // local mode: this process's model manager; Ray workers: the model files each one holds
    models: Number(stats?.models?.loaded) ||
      Object.values(stats?.workers ?? {}).reduce((t, w) => t + Object.keys(w?.models ?? {}).length, 0),
  };
}

export class CacheReadout {
  constructor(app, ui) {
    this.app = app;
    this.ui = ui;
    this.stats = null;
    this._timer = null;
  }

  get button() {
    return $("#cache-readout");
  }

  get popover() {
    return $("#cache-popover");
  }

  install() {
    this.button.addEventListener("click", (e) => {
      e.stopPropagation();
      this.togglePopover();
    });
    this.popover.addEventListener("click", (e) => e.stopPropagation());
    document.addEventListener("click", () => (this.popover.hidden = true));
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape") this.popover.hidden = true;
    });
    for (const type of ["execution_success", "execution_error", "execution_interrupted"]) {
      this.app.api.addEventListener(type, () => this.refreshSoon());
    }
    this.app.api.addEventListener("reconnected", () => this.refreshSoon());
    this.refresh();
  }

  refreshSoon(ms = 150) {
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this.refresh(), ms);
  }

  async refresh() {
    try {
      this.stats = await this.app.api.getJson("/loom/stats");
    } catch (e) {
      this.stats = null;
      this.button.textContent = "cache ?";
      this.button.title = `The cache figures could not be read: ${e.message}`;
      return null;
    }
    this.render();
    return this.stats;
  }

  render() {
    const s = summarize(this.stats);
    const b = this.button;
    const models = `${s.models} model${s.models === 1 ? "" : "s"}`;
    const rate = `${Math.round((s.hitRate ?? 0) * 100)}%`;
    // Two short lines: the top bar has little room.
    const top = s.off ? "cache off" : `cache ${s.entries} · ${humanBytes(s.bytes, true)}/${humanBytes(s.budget, true)}`;
    const bottom = s.off || s.hitRate == null ? `no hits yet · ${models}` : `${rate} hits · ${models}`;
    const line = (cls, text) => Object.assign(document.createElement("span"), { className: cls, textContent: text });
    b.replaceChildren(line("l1", top), line("l2", bottom));
    b.dataset.entries = String(s.entries);
    b.dataset.bytes = String(s.bytes);
    b.dataset.hits = String(s.hits);
    b.dataset.misses = String(s.misses);
    b.dataset.models = String(s.models);
    b.title = `Output cache: ${s.entries} outputs held, ${humanBytes(s.bytes)} of ${humanBytes(s.budget)}; ` +
      `${s.hits} hits, ${s.misses} misses, ${s.evictions} evicted. Loaded models: ${s.models}. Click for details.`;
    if (!this.popover.hidden) this.renderPopover();
  }

  togglePopover() {
    const pop = this.popover;
    pop.hidden = !pop.hidden;
    if (!pop.hidden) {
      this.renderPopover();
      this.refresh();
    }
  }

  renderPopover() {
    const pop = this.popover;
    const stats = this.stats ?? {};
    const rows = (pairs) => pairs.map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(v)}</td></tr>`).join("");
    let html = "<h3>Output cache</h3>";
    const workers = Object.entries(stats.workers ?? {});
    if (!workers.length) html += `<p class="muted">No worker reports a cache.</p>`;
    for (const [name, w] of workers) {
      const c = w?.cache ?? {};
      const total = (c.hits ?? 0) + (c.misses ?? 0);
      html += `${workers.length > 1 ? `<h4>${esc(name)}</h4>` : ""}<table class="stats" data-worker="${esc(name)}">${rows([
        ["kind", c.kind === "none" ? "none (--cache-none: nothing kept between runs)" : c.kind ?? "–"],
        ["entries", c.entries ?? 0],
        ["held", `${humanBytes(c.bytes)} of ${humanBytes(c.budget_bytes)}`],
        ["hits / misses", `${c.hits ?? 0} / ${c.misses ?? 0}${total ? ` (${Math.round((100 * (c.hits ?? 0)) / total)}% hits)` : ""}`],
        ["evictions", c.evictions ?? 0],
      ])}</table>`;
    }
    html += "<h3>Models</h3>";
    const m = stats.models;
    if (!m) {
      html += `<p class="muted">No model has been loaded since the server started.</p>`;
    } else {
      html += `<table class="stats models">${rows([
        ["loaded", `${m.loaded ?? 0} of ${m.entries ?? 0} known${m.on_device ? `, ${m.on_device} on ${m.device}` : ""}`],
        ["device", `${m.device ?? "–"} (${m.dtype ?? "–"})${m.low_vram ? ", low VRAM" : ""}`],
        ["RAM", `${humanBytes(m.ram_bytes)} of ${humanBytes(m.ram_budget_bytes)}`],
        ...(m.vram_budget_bytes != null ? [["VRAM", `${humanBytes(m.vram_bytes)} of ${humanBytes(m.vram_budget_bytes)}`]] : []),
      ])}</table>`;
      if (m.keys?.length) html += `<ul class="model-keys">${m.keys.map((k) => `<li><code>${esc(k)}</code></li>`).join("")}</ul>`;
    }
    html += `<div class="actions"><span class="msg muted"></span>
      <button class="small" data-act="refresh" title="Read the figures again">Refresh</button>
      <button class="small danger" data-act="free" title="Drop every cached output and unload the models (done between runs)">Free memory</button></div>`;
    const msg = pop.querySelector(".msg")?.textContent ?? "";
    pop.innerHTML = html;
    pop.querySelector(".msg").textContent = msg;
    pop.querySelector('[data-act="refresh"]').addEventListener("click", () => this.ui.guard(() => this.refresh()));
    pop.querySelector('[data-act="free"]').addEventListener("click", () => this.ui.guard(() => this.freeMemory()));
  }

  /** Asks every worker to drop its cache and unload models; they do it between runs, so poll. */
  async freeMemory() {
    const before = summarize(this.stats);
    await this.app.api.postJson("/free", { unload_models: true, free_memory: true });
    this._say("Freeing…");
    let now = before;
    for (const wait of [100, 200, 400, 800, 1500]) {
      await new Promise((r) => setTimeout(r, wait));
      now = summarize(await this.refresh());
      if (now.entries === 0 && now.models === 0) break;
    }
    const busy = this.app.execution.isRunning ? " (a run is going on: the rest is freed when it ends)" : "";
    const text = `Freed ${humanBytes(Math.max(0, before.bytes - now.bytes))} of cached outputs` +
      `${before.models ? ` and ${before.models - now.models} model${before.models - now.models === 1 ? "" : "s"}` : ""}${busy}`;
    this._say(text);
    this.ui.toast(text);
  }

  _say(text) {
    const msg = this.popover.querySelector(".msg");
    if (msg) msg.textContent = text;
  }
}
