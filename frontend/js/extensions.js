// Node packs' web scripts (WEB_DIRECTORY, listed by /api/extensions) are ES modules that call
// `app.registerExtension({...})` on the global `app` (also importable from /scripts/app.js).
// Hooks, in the order they run (a subset of ComfyUI's, same names and arguments):
//   init(app)                                  before node definitions are fetched
//   addCustomNodeDefs(defs, app)               may add or edit /object_info entries (return defs)
//   beforeRegisterNodeDef(nodeType, nodeData, app)  patch a node class before it is registered
//   nodeCreated(node, app)                     each node made (by hand, paste or load)
//   loadedGraphNode(node, app)                 each node after a workflow is loaded
//   setup(app)                                 once the editor is up with its first workflow
// A failing extension is reported in the console and a toast; it never stops the editor.

export class ExtensionManager {
  constructor(app) {
    this.app = app;
    this.extensions = [];
    this.failed = [];
  }

  register(ext) {
    if (!ext || typeof ext !== "object" || !ext.name) throw new Error("registerExtension needs an object with a name");
    if (this.extensions.some((e) => e.name === ext.name)) throw new Error(`extension ${ext.name} is already registered`);
    this.extensions.push(ext);
  }

  async load() {
    let urls = [];
    try {
      urls = await this.app.api.getJson("/extensions");
    } catch (e) {
      console.warn("loom: no extension list", e);
      return;
    }
    await Promise.all(
      (urls ?? []).map(async (url) => {
        try {
          await import(new URL(url, location.origin).href);
        } catch (e) {
          this.failed.push({ url, error: String(e) });
          console.error(`loom: extension script ${url} failed to load`, e);
        }
      }),
    );
  }

  invoke(hook, ...args) {
    for (const ext of this.extensions) {
      if (typeof ext[hook] !== "function") continue;
      try {
        ext[hook](...args);
      } catch (e) {
        this._report(ext, hook, e);
      }
    }
  }

  /** Runs a hook on every extension in turn; the last non-undefined result is returned. */
  async invokeAsync(hook, ...args) {
    let result;
    for (const ext of this.extensions) {
      if (typeof ext[hook] !== "function") continue;
      try {
        const r = await ext[hook](...args);
        if (r !== undefined) {
          result = r;
          if (hook === "addCustomNodeDefs") args[0] = r;
        }
      } catch (e) {
        this._report(ext, hook, e);
      }
    }
    return result;
  }

  _report(ext, hook, e) {
    console.error(`loom: extension ${ext.name} failed in ${hook}`, e);
    this.app.ui?.toast(`Extension ${ext.name} failed in ${hook}: ${e.message ?? e}`, "error");
  }
}
