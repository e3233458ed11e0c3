// The orchestrator's dashboard: the resources table, their graph and one resource's console
// log, kept live by Server-Sent Events (the browser reconnects them by itself; the log resumes
// after the last line it showed); the telemetry views (traces, metrics, structured logs) behind
// hash navigation. Every text from the server is put in with textContent, never as HTML.

import { onRunChange, startRunSelector } from "./api.js";
import { element } from "./dom.js";
import { renderGraph } from "./graph.js";
import { metricsPage } from "./metrics.js";
import { startNavigation } from "./nav.js";
import { structuredLogsPage } from "./structured_logs.js";
import { tracePage, tracesPage } from "./traces.js";

const MAX_LINES = 5000; // lines kept in the page (and held while paused)
const ACTION_HEADER = "X-Dashboard-Action";

const ui = {
  streamState: document.getElementById("stream-state"),
  rows: document.querySelector("#resources tbody"),
  actionStatus: document.getElementById("action-status"),
  logResource: document.getElementById("log-resource"),
  search: document.getElementById("log-search"),
  pause: document.getElementById("log-pause"),
  count: document.getElementById("log-count"),
  lines: document.getElementById("log-lines"),
  graph: document.getElementById("graph"),
  runSelect: document.getElementById("run-select"),
  telemetryStatus: document.getElementById("telemetry-status"),
};

let resources = [];
let receivedAt = performance.now();
let logSource = null;
let paused = false;
let held = [];
let dropped = 0;

function formatUptime(seconds) {
  if (seconds === null || seconds === undefined) return "-";
  const total = Math.max(0, Math.floor(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

function cell(row, field, content) {
  const td = element("td");
  td.dataset.field = field;
  if (content instanceof Node) td.append(content);
  else td.textContent = content;
  row.append(td);
  return td;
}

function renderResources() {
  const rows = resources.map((resource) => {
    const row = element("tr");
    row.dataset.resource = resource.name;
    const name = element("th", resource.name);
    name.scope = "row";
    row.append(name);
    cell(row, "kind", resource.kind);
    const state = element("span", resource.state, "pill");
    state.dataset.state = resource.state;
    if (resource.detail) state.title = resource.detail;
    const stateCell = cell(row, "state", state);
    if (resource.waiting_for) {
      stateCell.append(element("span", ` for ${resource.waiting_for}`, "hint waiting-for"));
    }
    if (resource.progress !== null && resource.progress !== undefined) {
      stateCell.append(element("span", ` ${Math.round(resource.progress * 100)}%`, "hint"));
    }
    const health = element("span", resource.health, "pill");
    health.dataset.health = resource.health;
    cell(row, "health", health);
    const links = element("div", undefined, "links");
    for (const endpoint of resource.endpoints) links.append(element("code", endpoint));
    for (const link of resource.links) {
      const anchor = element("a", link.label);
      anchor.href = link.url;
      anchor.target = "_blank";
      anchor.rel = "noopener";
      links.append(anchor);
    }
    cell(row, "endpoints", links);
    cell(row, "image", resource.image);
    cell(row, "uptime", formatUptime(resource.uptime_s));
    cell(row, "restarts", String(resource.restarts));
    const actions = element("div", undefined, "actions");
    for (const action of resource.actions) {
      const button = element("button", action[0].toUpperCase() + action.slice(1));
      button.type = "button";
      button.dataset.action = action;
      button.setAttribute("aria-label", `${action} ${resource.name}`);
      button.addEventListener("click", () => act(resource.name, action, button));
      actions.append(button);
    }
    cell(row, "actions", actions);
    return row;
  });
  ui.rows.replaceChildren(...rows);
  renderGraph(ui.graph, resources);
}

function tickUptimes() {
  const elapsed = (performance.now() - receivedAt) / 1000;
  for (const resource of resources) {
    if (resource.uptime_s === null) continue;
    const td = ui.rows.querySelector(
      `tr[data-resource="${CSS.escape(resource.name)}"] td[data-field="uptime"]`,
    );
    if (td) td.textContent = formatUptime(resource.uptime_s + elapsed);
  }
}

async function act(name, action, button) {
  button.disabled = true;
  ui.actionStatus.textContent = `${action} ${name}…`;
  try {
    const response = await fetch(`/api/resources/${encodeURIComponent(name)}/${action}`, {
      method: "POST",
      headers: { [ACTION_HEADER]: "1" },
    });
    const text = await response.text();
    ui.actionStatus.textContent = response.ok ? `${action} of ${name} requested` : text;
  } catch (error) {
    ui.actionStatus.textContent = `${action} of ${name} failed: ${error.message}`;
  } finally {
    button.disabled = false;
  }
}

function updateLogChoices(names) {
  const current = ui.logResource.value;
  const known = new Set([...ui.logResource.options].map((option) => option.value));
  for (const name of names) {
    if (!known.has(name)) ui.logResource.add(new Option(name, name));
  }
  if (!current && names.length) {
    const hash = new URLSearchParams(location.hash.slice(1));
    const wanted = hash.get("console") || hash.get("logs");
    const first = resources.length ? resources[0].name : names[0];
    ui.logResource.value = names.includes(wanted) ? wanted : names.includes(first) ? first : names[0];
    followLogs(ui.logResource.value);
  }
}

function matches(text) {
  const wanted = ui.search.value.trim().toLowerCase();
  return !wanted || text.toLowerCase().includes(wanted);
}

function fillText(target, text) {
  // The match is highlighted by splitting the text, never by writing HTML.
  target.replaceChildren();
  const wanted = ui.search.value.trim().toLowerCase();
  if (!wanted) {
    target.textContent = text;
    return;
  }
  const lower = text.toLowerCase();
  let from = 0;
  for (let at = lower.indexOf(wanted); at !== -1; at = lower.indexOf(wanted, from)) {
    target.append(text.slice(from, at), element("mark", text.slice(at, at + wanted.length)));
    from = at + wanted.length;
  }
  target.append(text.slice(from));
}

function lineNode(line) {
  const node = element("div", undefined, `line level-${line.level}`);
  node.dataset.seq = String(line.seq);
  node.dataset.text = line.text;
  const time = new Date(line.at * 1000).toLocaleTimeString([], { hour12: false });
  node.append(element("span", time, "time"));
  const text = element("span", undefined, "text");
  fillText(text, line.text);
  node.append(text);
  node.hidden = !matches(line.text);
  return node;
}

function appendLines(lines) {
  const atBottom = ui.lines.scrollHeight - ui.lines.scrollTop - ui.lines.clientHeight < 40;
  ui.lines.append(...lines.map(lineNode));
  while (ui.lines.childElementCount > MAX_LINES) ui.lines.firstElementChild.remove();
  if (atBottom) ui.lines.scrollTop = ui.lines.scrollHeight;
  updateCount();
}

function updateCount() {
  const all = ui.lines.childElementCount;
  const shown = ui.lines.querySelectorAll(".line:not([hidden])").length;
  let text = ui.search.value.trim() ? `${shown} of ${all} lines` : `${all} lines`;
  if (paused) text += ` · paused, ${held.length} new`;
  if (dropped) text += ` · ${dropped} dropped`;
  ui.count.textContent = text;
}

function followLogs(name) {
  if (logSource) logSource.close();
  ui.lines.replaceChildren();
  held = [];
  dropped = 0;
  updateCount();
  logSource = new EventSource(`/api/logs/${encodeURIComponent(name)}`);
  logSource.addEventListener("line", (event) => {
    const line = JSON.parse(event.data);
    if (paused) {
      held.push(line);
      if (held.length > MAX_LINES) held.shift();
      updateCount();
    } else {
      appendLines([line]);
    }
  });
  logSource.addEventListener("dropped", (event) => {
    dropped += JSON.parse(event.data).count;
    updateCount();
  });
}

function refilter() {
  for (const node of ui.lines.children) {
    node.hidden = !matches(node.dataset.text);
    fillText(node.querySelector(".text"), node.dataset.text);
  }
  updateCount();
}

function setPaused(value) {
  paused = value;
  ui.pause.setAttribute("aria-pressed", String(paused));
  ui.pause.textContent = paused ? "Resume" : "Pause";
  if (!paused && held.length) {
    const lines = held;
    held = [];
    appendLines(lines);
  }
  updateCount();
}

function connectResources() {
  const source = new EventSource("/api/resources/stream");
  source.addEventListener("open", () => {
    ui.streamState.dataset.state = "live";
    ui.streamState.textContent = "Live";
  });
  source.addEventListener("error", () => {
    ui.streamState.dataset.state = "reconnecting";
    ui.streamState.textContent = "Reconnecting…";
  });
  source.addEventListener("resources", (event) => {
    const data = JSON.parse(event.data);
    resources = data.resources;
    receivedAt = performance.now();
    renderResources();
    updateLogChoices(data.logs);
  });
}

ui.logResource.addEventListener("change", () => {
  history.replaceState(null, "", `#console=${encodeURIComponent(ui.logResource.value)}`);
  followLogs(ui.logResource.value);
});
ui.search.addEventListener("input", refilter);
ui.pause.addEventListener("click", () => setPaused(!paused));
setInterval(tickUptimes, 1000);
connectResources();
startRunSelector(ui.runSelect, ui.telemetryStatus);
const resourceNames = () => resources.map((resource) => resource.name);
const refresh = startNavigation({
  resources: { show() {}, hide() {} },
  traces: tracesPage(resourceNames),
  trace: tracePage(),
  metrics: metricsPage(resourceNames),
  logs: structuredLogsPage(resourceNames),
});
onRunChange(refresh);
