// HTTP and WebSocket client for the server's ComfyUI-dialect API.
// Events from the socket are re-dispatched as DOM CustomEvents named after the message type
// ("status", "executing", "progress", ...) plus "b_preview" for binary preview frames and
// "reconnecting"/"reconnected" for the socket's own state.

const CLIENT_ID_KEY = "loom.clientId";

// Binary frame types (dialect: 4-byte big-endian event type first).
const PREVIEW_IMAGE = 1;
const PROGRESS_TEXT = 3;
const PREVIEW_IMAGE_WITH_METADATA = 4;

export class ApiError extends Error {
  constructor(message, status, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export class LoomApi extends EventTarget {
  constructor(base = "") {
    super();
    this.base = base;
    // The clientId survives a reload of the tab (sessionStorage), so the server can tell a
    // reconnecting page which node of its prompt is running.
    // Minted here (not left to the server) so a prompt queued before the socket opens still
    // names the client its events belong to.
    this.clientId = sessionStorage.getItem(CLIENT_ID_KEY) || randomHex(16);
    sessionStorage.setItem(CLIENT_ID_KEY, this.clientId);
    this.socket = null;
    this.connected = false;
    this._retryMs = 300;
  }

  url(route) {
    return `${this.base}/api${route}`;
  }

  async fetchApi(route, options = {}) {
    return fetch(this.url(route), { cache: "no-store", ...options });
  }

  async getJson(route) {
    const res = await this.fetchApi(route);
    if (!res.ok) throw new ApiError(`GET ${route} failed: HTTP ${res.status}`, res.status, await safeJson(res));
    return res.json();
  }

  async postJson(route, body) {
    const res = await this.fetchApi(route, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body ?? {}),
    });
    const data = await safeJson(res);
    if (!res.ok) throw new ApiError(`POST ${route} failed: HTTP ${res.status}`, res.status, data);
    return data;
  }

  getObjectInfo() {
    return this.getJson("/object_info");
  }

  /** Queues an API prompt; a 400 comes back as ApiError whose body has error and node_errors. */
  queuePrompt(prompt, { workflow, front = false, number, extraData = {} } = {}) {
    const body = {
      client_id: this.clientId,
      prompt,
      extra_data: { ...extraData, extra_pnginfo: { workflow } },
    };
    if (front) body.front = true;
    if (number != null) body.number = number;
    return this.postJson("/prompt", body);
  }

  interrupt() {
    return this.postJson("/interrupt", {});
  }

  async getQueue() {
    return this.getJson("/queue");
  }

  async getHistory(maxItems = 64) {
    return this.getJson(`/history?max_items=${maxItems}`);
  }

  deleteQueueItem(promptId) {
    return this.postJson("/queue", { delete: [promptId] });
  }

  clearHistory() {
    return this.postJson("/history", { clear: true });
  }

  viewUrl({ filename, subfolder = "", type = "output" }) {
    const q = new URLSearchParams({ filename, subfolder, type });
    return this.url(`/view?${q}`);
  }

  async uploadImage(file, { subfolder = "", type = "input", overwrite = false } = {}) {
    const form = new FormData();
    form.append("image", file, file.name);
    form.append("type", type);
    if (subfolder) form.append("subfolder", subfolder);
    if (overwrite) form.append("overwrite", "true");
    const res = await this.fetchApi("/upload/image", { method: "POST", body: form });
    const data = await safeJson(res);
    if (!res.ok) throw new ApiError(`upload failed: HTTP ${res.status} ${data?.error?.message ?? data?.error ?? ""}`, res.status, data);
    return data;
  }

  // -- user data: the workflow library lives under workflows/ ----------------------------------
  userdataPath(path) {
    return `/userdata/${encodeURIComponent(path)}`;
  }

  async listUserdata(dir) {
    const res = await this.fetchApi(`/userdata?dir=${encodeURIComponent(dir)}&recurse=true&split=false`);
    if (res.status === 404) return [];
    if (!res.ok) throw new ApiError(`listing ${dir} failed: HTTP ${res.status}`, res.status, await safeJson(res));
    return res.json();
  }

  async getUserdata(path) {
    const res = await this.fetchApi(this.userdataPath(path));
    if (!res.ok) throw new ApiError(`reading ${path} failed: HTTP ${res.status}`, res.status, await safeJson(res));
    return res.text();
  }

  async putUserdata(path, text, { overwrite = true } = {}) {
    const res = await this.fetchApi(`${this.userdataPath(path)}?overwrite=${overwrite}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: text,
    });
    if (!res.ok) throw new ApiError(`saving ${path} failed: HTTP ${res.status}`, res.status, await safeJson(res));
    return safeJson(res);
  }

  async deleteUserdata(path) {
    const res = await this.fetchApi(this.userdataPath(path), { method: "DELETE" });
    if (!res.ok && res.status !== 404) throw new ApiError(`deleting ${path} failed: HTTP ${res.status}`, res.status, null);
  }

  // -- WebSocket -----------------------------------------------------------------------------------
  /** Resolves once the socket is open (or after `ms`, so a server without /ws still works). */
  waitConnected(ms = 3000) {
    if (this.connected) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok) => {
        clearTimeout(timer);
        this.removeEventListener("connected", onOpen);
        resolve(ok);
      };
      const onOpen = () => done(true);
      const timer = setTimeout(() => done(false), ms);
      this.addEventListener("connected", onOpen);
    });
  }

  connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const query = this.clientId ? `?clientId=${encodeURIComponent(this.clientId)}` : "";
    const socket = new WebSocket(`${proto}//${location.host}${this.base}/ws${query}`);
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    let opened = false;
    socket.addEventListener("open", () => {
      opened = true;
      const wasReconnect = this._everConnected;
      this._everConnected = true;
      this.connected = true;
      this._retryMs = 300;
      socket.send(JSON.stringify({ type: "feature_flags", data: { supports_preview_metadata: true } }));
      this.emit(wasReconnect ? "reconnected" : "connected", {});
    });
    socket.addEventListener("close", () => {
      if (this.socket !== socket) return;
      this.connected = false;
      if (opened) this.emit("reconnecting", {});
      setTimeout(() => this.connect(), this._retryMs);
      this._retryMs = Math.min(this._retryMs * 2, 5000);
    });
    socket.addEventListener("message", (event) => this._onMessage(event));
  }

  _onMessage(event) {
    if (event.data instanceof ArrayBuffer) {
      this._onBinary(event.data);
      return;
    }
    let msg;
    try {
      msg = JSON.parse(event.data);
    } catch {
      console.warn("loom: unparseable socket message", event.data);
      return;
    }
    if (msg.type === "status" && msg.data?.sid) {
      this.clientId = msg.data.sid;
      sessionStorage.setItem(CLIENT_ID_KEY, this.clientId);
    }
    this.emit(msg.type, msg.data ?? {});
  }

  _onBinary(buffer) {
    const view = new DataView(buffer);
    const type = view.getUint32(0);
    if (type === PREVIEW_IMAGE) {
      const imageType = view.getUint32(4) === 2 ? "image/png" : "image/jpeg";
      this.emit("b_preview", { blob: new Blob([buffer.slice(8)], { type: imageType }), nodeId: null });
    } else if (type === PREVIEW_IMAGE_WITH_METADATA) {
      const metaLen = view.getUint32(4);
      const meta = JSON.parse(new TextDecoder().decode(buffer.slice(8, 8 + metaLen)));
      const blob = new Blob([buffer.slice(8 + metaLen)], { type: meta.image_type || "image/png" });
      this.emit("b_preview", { blob, nodeId: meta.display_node_id ?? meta.node_id ?? null, promptId: meta.prompt_id });
    } else if (type === PROGRESS_TEXT) {
      const len = view.getUint32(4);
      const nodeId = new TextDecoder().decode(buffer.slice(8, 8 + len));
      const text = new TextDecoder().decode(buffer.slice(8 + len));
      this.emit("progress_text", { nodeId, text });
    }
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

// crypto.randomUUID needs a secure context; a LAN address over http is not one.
function randomHex(bytes) {
  return [...crypto.getRandomValues(new Uint8Array(bytes))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function safeJson(res) {
  const text = await res.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return { error: text };
  }
}
