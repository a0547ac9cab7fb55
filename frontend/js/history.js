// Undo/redo by snapshots: after every edit the serialised workflow (without the viewport) is
// compared with the last snapshot and pushed when it differs. Undo loads the previous snapshot.

const LIMIT = 100;

export class UndoHistory {
  constructor(app) {
    this.app = app;
    this.stack = [];
    this.index = -1;
    this.suspended = 0;
    this._timer = null;
  }

  snapshot() {
    const wf = this.app.serializeWorkflow();
    if (wf.extra) delete wf.extra.ds;
    return JSON.stringify(wf);
  }

  /** Starts a fresh history whose only state is the current graph (after a load). */
  reset() {
    this.stack = [this.snapshot()];
    this.index = 0;
    this.app.ui?.updateUndoButtons?.();
  }

  /** Records the graph if it changed since the last record; returns whether it did. */
  checkpoint() {
    clearTimeout(this._timer);
    this._timer = null;
    if (this.suspended) return false;
    const snap = this.snapshot();
    if (snap === this.stack[this.index]) return false;
    this.stack.length = this.index + 1;
    this.stack.push(snap);
    if (this.stack.length > LIMIT) this.stack.shift();
    this.index = this.stack.length - 1;
    this.app.onGraphEdited?.();
    this.app.ui?.updateUndoButtons?.();
    return true;
  }

  /** Coalesces bursts (typing, dragging a number) into one step. */
  checkpointSoon(ms = 300) {
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this.checkpoint(), ms);
  }

  get canUndo() {
    return this.index > 0;
  }

  get canRedo() {
    return this.index < this.stack.length - 1;
  }

  async undo() {
    this.checkpoint(); // an edit not recorded yet becomes the step being undone
    if (!this.canUndo) return false;
    this.index--;
    await this._restore();
    return true;
  }

  async redo() {
    if (!this.canRedo) return false;
    this.index++;
    await this._restore();
    return true;
  }

  async _restore() {
    this.suspended++;
    try {
      await this.app.loadWorkflow(JSON.parse(this.stack[this.index]), { keepView: true, keepHistory: true });
    } finally {
      this.suspended--;
    }
    this.app.ui?.updateUndoButtons?.();
  }
}
