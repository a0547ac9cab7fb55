// A multiline text widget: a real <textarea> laid over the canvas where the widget row is.
// Each frame the widget's draw() places its element; elements of nodes not drawn in a frame
// (scrolled away, collapsed) are hidden by hideUndrawn(); removing the node removes the element.

const live = new Set();
let frame = 0;
let container = null;

export function setDomWidgetContainer(el) {
  container = el;
}

/** Called once per canvas frame, after the nodes are drawn. */
export function hideUndrawn() {
  for (const w of live) {
    if (w.drawnFrame !== frame) w.element.style.display = "none";
  }
  frame++;
}

export function addTextareaWidget(node, name, value, { placeholder = "" } = {}) {
  const element = document.createElement("textarea");
  element.className = "loom-textarea";
  element.placeholder = placeholder;
  element.spellcheck = false;
  element.value = value ?? "";
  element.dataset.widget = name;
  element.style.display = "none";
  (container ?? document.body).append(element);

  const widget = {
    type: "customtext",
    name,
    options: {},
    element,
    node,
    drawnFrame: -1,
    get value() {
      return element.value;
    },
    set value(v) {
      element.value = v ?? "";
    },
    computeLayoutSize() {
      return { minHeight: 60, maxHeight: 1e6, minWidth: 160 };
    },
    draw(ctx, drawNode, width, y) {
      const canvas = drawNode.graph?.primaryCanvas ?? window.loomApp?.canvas;
      if (!canvas) return;
      const height = (this.computedHeight ?? 60) - 4;
      const disabled = drawNode.getSlotFromWidget?.(this)?.link != null;
      if (disabled || canvas.low_quality) {
        // A linked input (or a far zoom) shows a plain box in the canvas instead of the element.
        ctx.fillStyle = "#1a1d23";
        ctx.strokeStyle = "#3a3f4b";
        ctx.beginPath();
        ctx.roundRect(10, y, width - 20, height, 6);
        ctx.fill();
        ctx.stroke();
        element.style.display = "none";
        this.drawnFrame = -2;
        return;
      }
      this.drawnFrame = frame;
      const { scale, offset } = canvas.ds;
      const rect = canvas.canvas.getBoundingClientRect();
      const host = (container ?? document.body).getBoundingClientRect();
      const left = rect.left - host.left + (drawNode.pos[0] + 10 + offset[0]) * scale;
      const top = rect.top - host.top + (drawNode.pos[1] + y + offset[1]) * scale;
      const s = element.style;
      s.display = "block";
      s.left = `${left}px`;
      s.top = `${top}px`;
      s.width = `${width - 20}px`;
      s.height = `${height}px`;
      s.transform = `scale(${scale})`;
      s.opacity = drawNode.mode === 2 || drawNode.mode === 4 ? "0.5" : "1";
    },
    onRemove() {
      element.remove();
      live.delete(this);
    },
  };
  element.addEventListener("input", () => {
    node.onWidgetChanged?.(name, element.value, undefined, widget);
  });
  element.addEventListener("change", () => window.loomApp?.history.checkpoint());
  // Keys typed into the textarea are text, never canvas shortcuts.
  element.addEventListener("keydown", (e) => e.stopPropagation());
  live.add(widget);
  node.addCustomWidget(widget);
  return widget;
}
