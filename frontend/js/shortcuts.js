// Keyboard shortcuts of the editor. LiteGraph handles Ctrl+C/V, Ctrl+A and Delete on the
// canvas itself; these are the rest. Keys typed into inputs and textareas are left alone.

import { LGraphGroup } from "../vendor/litegraph.es.js";

export const SHORTCUTS = [
  [["Ctrl", "Enter"], "Queue the workflow"],
  [["Ctrl", "Shift", "Enter"], "Queue at the front"],
  [["Ctrl", "S"], "Save to the workflow library"],
  [["Ctrl", "O"], "Open a workflow file"],
  [["Ctrl", "Z"], "Undo"],
  [["Ctrl", "Y"], "Redo (also Ctrl+Shift+Z)"],
  [["Ctrl", "C"], "Copy selected nodes"],
  [["Ctrl", "V"], "Paste (links between pasted nodes are kept)"],
  [["Ctrl", "Shift", "V"], "Paste and keep the links from outside nodes"],
  [["Ctrl", "D"], "Duplicate selected nodes"],
  [["Ctrl", "A"], "Select all"],
  [["Delete"], "Delete selected (also Backspace)"],
  [["Ctrl", "M"], "Mute / unmute selected nodes"],
  [["Ctrl", "B"], "Bypass / un-bypass selected nodes"],
  [["Alt", "C"], "Collapse / expand selected nodes"],
  [["Ctrl", "G"], "Group the selected nodes"],
  [["."], "Fit the view to the graph"],
  [["Space", "drag"], "Pan the canvas"],
  [["?"], "This help"],
];

function selectedNodes(app) {
  return Object.values(app.canvas.selected_nodes ?? {});
}

function toggleMode(app, mode) {
  const nodes = selectedNodes(app);
  if (!nodes.length) return;
  const all = nodes.every((n) => n.mode === mode);
  for (const n of nodes) n.mode = all ? 0 : mode;
  app.canvas.setDirty(true, true);
  app.history.checkpoint();
}

export function installShortcuts(app, ui) {
  document.addEventListener("keydown", (e) => {
    const target = e.target;
    if (target instanceof HTMLElement && (target.closest("input, textarea, select, [contenteditable]") || target.closest(".modal-back"))) return;
    const ctrl = e.ctrlKey || e.metaKey;
    const key = e.key.toLowerCase();
    let handled = true;
    if (ctrl && key === "enter") app.queue({ batch: ui.batchCount(), front: e.shiftKey });
    else if (ctrl && key === "s") ui.guard(() => ui.saveToLibrary());
    else if (ctrl && key === "o") document.getElementById("file-input").click();
    else if (ctrl && !e.shiftKey && key === "z") app.history.undo();
    else if (ctrl && (key === "y" || (e.shiftKey && key === "z"))) app.history.redo();
    else if (ctrl && key === "m") toggleMode(app, 2);
    else if (ctrl && key === "b") toggleMode(app, 4);
    else if (ctrl && key === "d") duplicate(app);
    else if (ctrl && key === "g") addGroupForSelection(app);
    else if (e.altKey && key === "c") {
      for (const n of selectedNodes(app)) n.collapse();
      app.history.checkpoint();
    } else if (!ctrl && !e.altKey && e.key === "?") ui.showHelp();
    else if (!ctrl && !e.altKey && e.key === ".") app.fitView();
    else handled = false;
    if (handled) {
      e.preventDefault();
      e.stopPropagation();
    }
  });
  // Let canvas-level keys (copy, paste, delete) work whenever nothing else has focus.
  document.addEventListener("keydown", (e) => {
    if (e.target === document.body && app.canvas) app.canvas.processKey(e);
  });
  document.addEventListener("keyup", (e) => {
    if (e.target === document.body && app.canvas) {
      app.canvas.processKey(e);
      setTimeout(() => app.history.checkpoint(), 0);
    }
  });
}

function duplicate(app) {
  const canvas = app.canvas;
  if (!selectedNodes(app).length) return;
  canvas.copyToClipboard();
  const [x, y] = canvas.graph_mouse;
  canvas.pasteFromClipboard({ position: [x + 20, y + 20] });
  app.history.checkpoint();
}

function addGroupForSelection(app) {
  const nodes = selectedNodes(app);
  if (!nodes.length) return;
  const group = new LGraphGroup("Group");
  group.resizeTo?.(nodes, 10);
  app.graph.add(group);
  app.history.checkpoint();
}
