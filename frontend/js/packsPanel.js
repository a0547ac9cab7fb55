// The node packs panel: what is installed (version, source, node count, load time, load error)
// and the server's pack operations (GET /api/nodes, POST /api/nodes/install|enable|disable|
// update|remove), each answer told in plain words. An installed or enabled pack is loaded into the
// running server, so the node definitions are fetched again and its nodes can be added at once.

import { el } from "./dom.js";

export class PacksPanel {
  constructor(app, ui, panels) {
    this.app = app;
    this.ui = ui;
    this.panels = panels;
    this.draft = { source: "", isolated: false };
    this.message = null; // {kind: ok|warn|error|busy, text, details?, notes?}
    this.busy = null; // "install" or a pack name while its operation runs
    this._busyKind = null;
    this.ops = 0; // operations started: marks which one the message answers
  }

  /** Opens the panel with the install box filled in (the missing-node banner's "Install…"). */
  openWith(source) {
    this.draft.source = source;
    this.message = { kind: "info", text: "Check the source, then press Install." };
    return this.panels.show("packs");
  }

  rerender() {
    return this.panels.current === "packs" ? this.panels.render() : undefined;
  }

  async render() {
    const listing = await this.app.api.getJson("/nodes");
    const packs = listing.packs ?? [];
    const root = el("div", { class: "packs-panel" });
    root.append(this.installBox());
    if (this.message) root.append(messageBox(this.message, this.ops));
    if (listing.restart_required) {
      root.append(el("p", { class: "pack-msg warn", "data-kind": "restart" },
        "Restart Loom to finish: packs disabled, updated or removed keep their loaded nodes until the next start."));
    }
    const manifestError = packs.find((p) => p.manifest_error)?.manifest_error;
    if (manifestError) root.append(el("p", { class: "pack-msg error" }, `The packs manifest could not be read: ${manifestError}`));
    root.append(el("h3", {}, `Installed (${packs.length})`));
    if (!packs.length) root.append(el("p", { class: "muted" }, "No node packs are installed."));
    for (const pack of packs) root.append(this.packRow(pack));
    return root;
  }

  installBox() {
    const input = el("input", {
      type: "text", class: "pack-source", spellcheck: "false", value: this.draft.source,
      placeholder: "git URL, folder or .zip path, optional @ref",
      title: "e.g. https://github.com/owner/pack, file:///srv/packs/pack.git@v1.2, /home/me/pack.zip",
    });
    input.value = this.draft.source;
    input.addEventListener("input", () => (this.draft.source = input.value));
    input.addEventListener("keydown", (e) => {
      e.stopPropagation();
      if (e.key === "Enter") this.ui.guard(() => this.install());
    });
    const isolated = el("input", { type: "checkbox", class: "pack-isolated" });
    isolated.checked = this.draft.isolated;
    isolated.addEventListener("change", () => (this.draft.isolated = isolated.checked));
    const button = el("button", { class: "primary pack-install-btn", onclick: () => this.ui.guard(() => this.install()) },
      this.busy === "install" ? "Installing…" : "Install");
    if (this.busy) button.disabled = true;
    return el("div", { class: "pack-install" },
      el("label", { class: "pack-install-label" }, "Install a node pack"),
      input,
      el("div", { class: "row" },
        el("label", { class: "check", title: "Give the pack its own virtual environment: its requirements may then differ from Loom's" },
          isolated, " isolated"),
        button));
  }

  packRow(pack) {
    const state = pack.missing ? "missing" : !pack.enabled ? "disabled" : pack.load_error ? "failed" : "enabled";
    const row = el("div", { class: `pack ${state}`, "data-name": pack.name, "data-state": state });
    const head = el("div", { class: "pack-head" },
      el("span", { class: "name", title: pack.path ?? "" }, pack.name),
      pack.version ? el("span", { class: "ver" }, `v${pack.version}`) : null,
      pack.kind ? el("span", { class: "chip", title: "where it was installed from" }, pack.kind) : null,
      pack.isolated ? el("span", { class: "chip", title: "it has its own virtual environment" }, "isolated") : null,
      el("span", { class: `chip state ${state}` }, state));
    row.append(head);
    if (pack.source) {
      row.append(el("div", { class: "pack-meta source", title: pack.source }, pack.source,
        pack.ref ? el("span", { class: "ref" }, ` @${pack.ref}`) : null,
        pack.commit ? el("span", { class: "muted" }, ` (${pack.commit.slice(0, 10)})`) : null));
    } else if (!pack.in_manifest) {
      row.append(el("div", { class: "pack-meta muted" }, "put in place by hand (not installed from the editor or `loom nodes`)"));
    }
    row.append(el("div", { class: "pack-meta load", title: (pack.nodes ?? []).join("\n") }, loadLine(pack)));
    if (pack.load_error) row.append(errorDetails(pack.load_error));
    const act = (kind, label, attrs = {}) => el("button", {
      class: `small${kind === "remove" ? " danger" : ""}`, "data-act": kind,
      disabled: this.busy ? "disabled" : null, ...attrs,
      onclick: () => this.ui.guard(() => this.act(kind, pack.name)),
    }, this.busy === pack.name && this._busyKind === kind ? `${label}…` : label);
    row.append(el("div", { class: "pack-actions" },
      pack.enabled ? act("disable", "Disable") : act("enable", "Enable", pack.missing ? { disabled: "disabled" } : {}),
      act("update", "Update", pack.in_manifest && !pack.missing ? {} : { disabled: "disabled", title: "Only packs installed from a source can be updated" }),
      act("remove", "Remove")));
    return row;
  }

  async install() {
    if (this.busy) return undefined; // one operation at a time (the server queues them anyway)
    const source = this.draft.source.trim();
    if (!source) {
      this.message = { kind: "error", text: "Give a git URL, a local folder or a .zip path to install." };
      return this.rerender();
    }
    this.busy = "install";
    this.ops++;
    this.message = { kind: "busy", text: `Installing ${source}… (fetching it and checking its requirements)` };
    await this.rerender();
    try {
      const res = await this.app.api.postJson("/nodes/install", { source, isolated: this.draft.isolated });
      this.draft.source = "";
      this.message = await this.afterLoad("install", res);
    } catch (e) {
      this.message = failure("install", source, e);
    } finally {
      this.busy = null;
    }
    return this.rerender();
  }

  async act(kind, name) {
    if (this.busy) return undefined;
    if (kind === "remove") {
      const ok = await this.ui.modal("Remove node pack",
        el("p", {}, "Delete the pack ", el("b", {}, name), " from custom_nodes (and its virtual environment, if it has one)? Workflows using its nodes will show them as missing after the next start."),
        [{ label: "Cancel", value: false }, { label: "Remove", value: true, primary: true }]).result;
      if (!ok) return undefined;
    }
    this.busy = name;
    this._busyKind = kind;
    this.ops++;
    this.message = { kind: "busy", text: `${capital(kind.replace(/e$/, ""))}ing ${name}…` };
    await this.rerender();
    try {
      const res = await this.app.api.postJson(`/nodes/${kind}`, { name });
      this.message = await this.afterLoad(kind, res);
    } catch (e) {
      this.message = failure(kind, name, e);
    } finally {
      this.busy = null;
    }
    return this.rerender();
  }

  /** The success message; when nodes were loaded, the editor learns them (and revives placeholders). */
  async afterLoad(kind, res) {
    const loaded = res.loaded_nodes ?? [];
    const notes = res.notes ?? [];
    if (loaded.length) {
      await this.app.refreshNodeDefs();
      const known = this.app.missingTypes.filter((t) => this.app.objectInfo[t]);
      if (known.length) {
        // Placeholders of the new types become real nodes: reload the graph as it is now.
        await this.app.loadWorkflow(this.app.serializeWorkflow(), { keepView: true, keepHistory: true });
      }
    }
    const n = loaded.length;
    const nodes = n ? `${n} node${n === 1 ? "" : "s"} loaded (${loaded.join(", ")}); add ${n === 1 ? "it" : "them"} from the node search now.` : "";
    const restart = res.restart_required ? " Restart Loom for this to take effect." : "";
    const already = notes.find((t) => t.startsWith("already"));
    let text;
    if (kind === "install") {
      text = `Installed ${res.name}. ${nodes}`;
      const row = (await this.app.api.getJson("/nodes")).packs?.find((p) => p.name === res.name);
      if (row?.load_error) {
        const last = row.load_error.trimEnd().split("\n").filter((l) => l.trim() && !l.startsWith("Hint:")).pop();
        return { kind: "error", text: `Installed ${res.name}, but it failed to load: ${last?.trim() ?? "see below"}. The traceback is under the pack below.`, notes };
      }
      if (!n) text += restart;
    } else if (already && kind !== "update") {
      text = `${res.name} was ${already}.`;
    } else if (kind === "enable") {
      text = n ? `Enabled ${res.name}: ${nodes}` : `Enabled ${res.name}.${restart}`;
    } else if (kind === "disable") {
      text = `Disabled ${res.name}.${res.restart_required ? " Its nodes stay available until Loom restarts." : ""}`;
    } else if (kind === "remove") {
      text = `Removed ${res.name}.${res.restart_required ? " Its nodes stay loaded until Loom restarts." : ""}`;
    } else {
      text = `Updated ${res.name}.${restart}`;
    }
    if (kind === "update") text = `${text} ${notes.join("; ")}`;
    return { kind: "ok", text: text.trim(), notes: kind === "update" ? [] : notes };
  }
}

function loadLine(pack) {
  if (pack.missing) return "its folder is missing: remove it, or install it again";
  if (!pack.enabled) return "disabled (its nodes are not loaded at start)";
  if (!pack.loaded) return "not loaded yet: restart Loom to load it";
  const n = pack.node_count ?? 0;
  const time = pack.load_seconds != null ? formatSeconds(pack.load_seconds) : null;
  if (pack.load_error && !n) return `no nodes: its import failed${time ? ` after ${time}` : ""}`;
  const nodes = `${n} node${n === 1 ? "" : "s"}`;
  return `${nodes}${time ? ` · loaded in ${time}` : ""}${pack.load_error ? ", with errors" : ""}`;
}

function formatSeconds(s) {
  return s < 0.01 ? "<0.01 s" : s < 10 ? `${s.toFixed(2)} s` : `${s.toFixed(1)} s`;
}

/** The traceback folded under its last line (the exception), hints kept in view. */
function errorDetails(text) {
  const lines = String(text).trimEnd().split("\n");
  const hints = lines.filter((l) => l.startsWith("Hint:"));
  const body = lines.filter((l) => !l.startsWith("Hint:"));
  const last = [...body].reverse().find((l) => l.trim()) ?? "failed to load";
  return el("details", { class: "pack-error" },
    el("summary", {}, last.trim()),
    ...hints.map((h) => el("div", { class: "hint" }, h)),
    el("pre", {}, text));
}

function messageBox(m, op) {
  const box = el("div", { class: `pack-msg ${m.kind}`, "data-kind": m.kind, "data-op": op, role: m.kind === "error" ? "alert" : "status" },
    el("div", { class: "text" }, m.text));
  if (m.packages?.length) box.append(el("ul", { class: "packages" }, ...m.packages.map((p) => el("li", {}, el("code", {}, p)))));
  if (m.notes?.length) box.append(el("ul", { class: "notes" }, ...m.notes.map((t) => el("li", {}, t))));
  if (m.details) box.append(el("details", {}, el("summary", {}, "The server's message"), el("pre", {}, m.details)));
  return box;
}

/** A refused or failed operation in plain words, from the server's {error: {type, message, extra_info}}. */
export function failure(kind, what, e) {
  const err = e?.body?.error ?? {};
  const message = typeof err === "string" ? err : err.message ?? e?.message ?? String(e);
  if (e?.status === 403 && err.type === "forbidden") {
    return {
      kind: "error",
      text: "This server refuses to change node packs: it listens on a network address without --auth-token " +
        "(installing a pack runs its code). Restart it on 127.0.0.1 (the default) or with --auth-token TOKEN, " +
        "or use `loom nodes` on its machine.",
      details: message,
    };
  }
  if (e?.status === 409 || err.type === "dependency_conflict") {
    const packages = err.extra_info?.packages ?? [];
    const kept = kind === "update" ? " The previous version was kept." : "";
    return {
      kind: "error",
      text: `Not ${kind === "update" ? "updated" : "installed"}: the pack's requirements would change packages Loom depends on` +
        `${packages.length ? ` (${packages.join(", ")})` : ""}.${kept}` +
        (kind === "install" ? " Tick “isolated” to give the pack its own environment." : ""),
      packages,
      details: message,
    };
  }
  if (e?.status === 401) {
    return { kind: "error", text: "The server wants its access token: open the editor once with /?token=TOKEN.", details: message };
  }
  if (err.type === "pip_failed") {
    return { kind: "error", text: `Could not ${kind} ${what}: pip failed while installing its requirements.`, details: message };
  }
  if (e?.status == null) {
    return { kind: "error", text: `Could not ${kind} ${what}: the server could not be reached (${message}).` };
  }
  const short = message.split("\n")[0];
  return { kind: "error", text: `Could not ${kind} ${what}: ${short}`, details: message.includes("\n") ? message : undefined };
}

function capital(s) {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
