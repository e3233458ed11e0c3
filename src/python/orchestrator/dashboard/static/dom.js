// Small DOM helpers shared by the dashboard's views. Text from the server always goes in as
// textContent, never as HTML.

export const SVG_NS = "http://www.w3.org/2000/svg";

export function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

export function svg(tag, attributes = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

export function formatMs(ms) {
  if (ms === null || ms === undefined) return "-";
  if (ms >= 1000) return `${(ms / 1000).toFixed(ms >= 10000 ? 1 : 2)} s`;
  if (ms >= 10) return `${Math.round(ms)} ms`;
  return `${ms.toFixed(1)} ms`;
}

export function formatTime(ms) {
  return new Date(ms).toLocaleTimeString([], { hour12: false });
}

// Adds an option for each name the select does not offer yet.
export function addOptions(select, names) {
  const known = new Set([...select.options].map((option) => option.value));
  for (const name of names) {
    if (!known.has(name)) {
      select.add(new Option(name, name));
      known.add(name);
    }
  }
}

// A view that loads at once when shown, then again every periodMs until hidden.
export function refreshing(load, periodMs, onShow = () => {}) {
  let timer = null;
  return {
    show(where) {
      onShow(where);
      clearInterval(timer);
      load();
      timer = setInterval(load, periodMs);
    },
    hide() {
      clearInterval(timer);
      timer = null;
    },
  };
}
