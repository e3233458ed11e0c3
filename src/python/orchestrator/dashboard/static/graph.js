// The resource graph: the browser, then each resource after those that call it (frontend, then
// moshi-backend), drawn as SVG; nodes carry their state (coloured by the stylesheet), edges go
// from caller to callee.

import { svg } from "./dom.js";

export const BROWSER = "browser";
const NODE_W = 150;
const NODE_H = 46;
const GAP_X = 70;
const GAP_Y = 18;
const PAD = 8;

// Column of each node: the browser first, a resource one column after the last that calls it.
function columns(resources) {
  const names = new Set(resources.map((resource) => resource.name));
  const callers = new Map(resources.map((resource) => [resource.name, []]));
  for (const resource of resources) {
    for (const callee of resource.depends_on || []) {
      if (callers.has(callee)) callers.get(callee).push(resource.name);
    }
  }
  const column = new Map([[BROWSER, 0]]);
  const place = (name, seen) => {
    if (column.has(name)) return column.get(name);
    if (seen.has(name)) return 1; // a cycle: nothing to order it by
    seen.add(name);
    const from = callers.get(name).filter((caller) => names.has(caller));
    const at = from.length ? 1 + Math.max(...from.map((caller) => place(caller, seen))) : 1;
    column.set(name, at);
    return at;
  };
  for (const name of names) place(name, new Set());
  return column;
}

function edgesOf(resources) {
  const names = new Set(resources.map((resource) => resource.name));
  const edges = [];
  for (const resource of resources) {
    const calledBy = resources.some((other) => (other.depends_on || []).includes(resource.name));
    if (!calledBy) edges.push([BROWSER, resource.name]);
    for (const callee of resource.depends_on || []) {
      if (names.has(callee)) edges.push([resource.name, callee]);
    }
  }
  return edges;
}

export function renderGraph(target, resources) {
  const column = columns(resources);
  const rows = new Map();
  const position = new Map();
  for (const name of [BROWSER, ...resources.map((resource) => resource.name)]) {
    const at = column.get(name);
    const row = rows.get(at) || 0;
    rows.set(at, row + 1);
    position.set(name, { x: PAD + at * (NODE_W + GAP_X), y: PAD + row * (NODE_H + GAP_Y) });
  }
  const width = PAD * 2 + (Math.max(...rows.keys()) + 1) * (NODE_W + GAP_X) - GAP_X;
  const height = PAD * 2 + Math.max(...rows.values()) * (NODE_H + GAP_Y) - GAP_Y;
  const marker = svg("marker", {
    id: "arrow",
    viewBox: "0 0 10 10",
    refX: 10,
    refY: 5,
    markerWidth: 8,
    markerHeight: 8,
    orient: "auto-start-reverse",
  });
  marker.append(svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow-head" }));
  const defs = svg("defs");
  defs.append(marker);
  const parts = [defs];
  for (const [from, to] of edgesOf(resources)) {
    const a = position.get(from);
    const b = position.get(to);
    const line = svg("line", {
      x1: a.x + NODE_W,
      y1: a.y + NODE_H / 2,
      x2: b.x,
      y2: b.y + NODE_H / 2,
      class: "edge",
      "marker-end": "url(#arrow)",
    });
    line.dataset.from = from;
    line.dataset.to = to;
    parts.push(line);
  }
  const states = new Map(resources.map((resource) => [resource.name, resource]));
  for (const [name, { x, y }] of position) {
    const resource = states.get(name);
    const state = resource ? resource.state : "external";
    const group = svg("g", { class: "node", transform: `translate(${x} ${y})` });
    group.dataset.resource = name;
    group.dataset.state = state;
    const title = svg("title", {}, resource?.waiting_for ? `${state} for ${resource.waiting_for}` : state);
    group.append(
      title,
      svg("rect", { width: NODE_W, height: NODE_H, rx: 8 }),
      svg("text", { x: NODE_W / 2, y: 19, class: "node-name" }, name),
      svg("text", { x: NODE_W / 2, y: 36, class: "node-state" }, resource ? state : "user"),
    );
    parts.push(group);
  }
  target.setAttribute("viewBox", `0 0 ${width} ${height}`);
  target.setAttribute("width", String(width));
  target.setAttribute("height", String(height));
  target.replaceChildren(...parts);
}
