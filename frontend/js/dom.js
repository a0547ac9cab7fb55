// el("div", {class: "x", onclick: fn, title: "t"}, child, "text", ...): a DOM element in one call.
// Attributes that are null or undefined are left out; `on...` keys add event listeners.

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v != null) e.setAttribute(k, v);
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}
