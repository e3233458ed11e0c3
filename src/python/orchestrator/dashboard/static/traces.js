// Traces: the list (filtered by resource, outcome and least duration, newest first) and one
// trace's waterfall: a bar per span, offset by its start, as wide as it lasted, indented under
// its parent; a click shows the span's attributes, error spans are marked.

import { getJson } from "./api.js";
import { addOptions, element, formatMs, formatTime, refreshing } from "./dom.js";

const LIST_REFRESH_MS = 3000;
const LIST_LIMIT = 200;
const INDENT_PX = 16;
// A trace's spans arrive in the services' export batches: its waterfall is asked again until
// hidden, and redrawn when more came.
const TRACE_REFRESH_MS = 3000;
const MIN_BAR_PERCENT = 0.4;

export function tracesPage(resourceNames) {
  const ui = {
    rows: document.querySelector("#traces tbody"),
    resource: document.getElementById("trace-resource"),
    outcome: document.getElementById("trace-outcome"),
    outcomes: document.getElementById("trace-outcomes"),
    minMs: document.getElementById("trace-min-ms"),
    count: document.getElementById("trace-count"),
  };
  let generation = 0;

  function row(trace) {
    const tr = element("tr");
    tr.dataset.traceId = trace.trace_id;
    tr.dataset.error = String(trace.error);
    const cells = [
      ["started", formatTime(trace.start_ms)],
      ["name", null],
      ["resources", trace.resources.join(", ")],
      ["outcome", null],
      ["duration", formatMs(trace.duration_ms)],
      ["spans", String(trace.spans)],
    ];
    for (const [field, text] of cells) {
      const td = element("td", text ?? undefined);
      td.dataset.field = field;
      tr.append(td);
    }
    const link = element("a", trace.name || trace.trace_id.slice(0, 16));
    link.href = `#trace/${trace.trace_id}`;
    tr.children[1].append(link);
    const outcome = element("span", trace.outcome || "-", "pill");
    outcome.dataset.outcome = trace.error ? "error" : trace.outcome || "";
    tr.children[3].append(outcome);
    return tr;
  }

  async function load() {
    const mine = ++generation;
    let answer;
    try {
      answer = await getJson("/api/telemetry/traces", {
        resource: ui.resource.value,
        outcome: ui.outcome.value.trim(),
        min_ms: ui.minMs.value,
        limit: LIST_LIMIT,
      });
    } catch (error) {
      if (mine === generation) ui.count.textContent = error.message;
      return;
    }
    if (mine !== generation) return; // a newer request (filters changed) answers instead
    const traces = answer.traces;
    ui.rows.replaceChildren(...traces.map(row));
    ui.count.textContent = `${traces.length} traces`;
    addOptions(ui.resource, [...resourceNames(), ...traces.flatMap((trace) => trace.resources)]);
    const known = new Set([...ui.outcomes.options].map((option) => option.value));
    for (const trace of traces) {
      if (trace.outcome && !known.has(trace.outcome)) {
        ui.outcomes.append(new Option(trace.outcome));
        known.add(trace.outcome);
      }
    }
  }

  for (const input of [ui.resource, ui.outcome, ui.minMs]) input.addEventListener("input", load);
  return refreshing(load, LIST_REFRESH_MS);
}

// Spans in waterfall order: each parent followed by its children, siblings by start; a span
// whose parent is not in the trace (not received) counts as a root.
export function orderSpans(spans) {
  const ids = new Set(spans.map((span) => span.span_id));
  const children = new Map();
  const roots = [];
  for (const span of spans) {
    const parent = span.parent_span_id && ids.has(span.parent_span_id) ? span.parent_span_id : null;
    if (parent === null) roots.push(span);
    else {
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).push(span);
    }
  }
  const ordered = [];
  const byStart = (a, b) => a.start_ms - b.start_ms;
  const visit = (span, depth) => {
    ordered.push({ span, depth });
    for (const child of (children.get(span.span_id) || []).sort(byStart)) visit(child, depth + 1);
  };
  for (const root of roots.sort(byStart)) visit(root, 0);
  return ordered;
}

function detailTable(entries) {
  const table = element("table", undefined, "attributes");
  for (const [name, value] of entries) {
    const tr = element("tr");
    const th = element("th", name);
    th.scope = "row";
    tr.append(th, element("td", typeof value === "string" ? value : JSON.stringify(value)));
    table.append(tr);
  }
  return table;
}

export function tracePage() {
  const ui = {
    id: document.getElementById("trace-id"),
    status: document.getElementById("trace-status"),
    waterfall: document.getElementById("waterfall"),
    detail: document.getElementById("span-detail"),
    logsLink: document.getElementById("trace-logs-link"),
  };

  let traceId = "";
  let shownSpans = -1;
  let selected = "";

  function showSpan(span, rowNode) {
    selected = span.span_id;
    for (const node of ui.waterfall.querySelectorAll(".span-row[aria-selected]")) {
      node.removeAttribute("aria-selected");
    }
    rowNode.setAttribute("aria-selected", "true");
    const heading = element("h3", `${span.name} · ${span.resource}`);
    const facts = [
      ["span_id", span.span_id],
      ["kind", span.kind],
      ["status", span.status_message ? `${span.status}: ${span.status_message}` : span.status],
      ["duration", formatMs(span.duration_ms)],
      ...Object.entries(span.attributes || {}),
    ];
    const parts = [heading, detailTable(facts)];
    if (span.events && span.events.length) {
      parts.push(element("h4", "Events"));
      parts.push(
        detailTable(span.events.map((event) => [`${formatTime(event.time_ms)} ${event.name}`, event.attributes])),
      );
    }
    ui.detail.replaceChildren(...parts);
    ui.detail.hidden = false;
  }

  function render(trace) {
    const ordered = orderSpans(trace.spans);
    const start = Math.min(...trace.spans.map((span) => span.start_ms));
    const end = Math.max(...trace.spans.map((span) => span.end_ms));
    const total = Math.max(end - start, 0.001);
    const axis = element("div", undefined, "span-row axis");
    axis.append(element("div", "span", "span-label"));
    const ticks = element("div", undefined, "span-track");
    for (const fraction of [0, 0.25, 0.5, 0.75, 1]) {
      const tick = element("span", formatMs(total * fraction), "tick");
      tick.style.left = `${fraction * 100}%`;
      ticks.append(tick);
    }
    axis.append(ticks, element("div", "duration", "span-duration"));
    const rows = ordered.map(({ span, depth }) => {
      const node = element("div", undefined, "span-row");
      node.dataset.spanId = span.span_id;
      node.dataset.parentSpanId = span.parent_span_id || "";
      node.dataset.depth = String(depth);
      node.dataset.status = span.status;
      node.dataset.name = span.name;
      node.tabIndex = 0;
      const label = element("div", undefined, "span-label");
      label.style.paddingLeft = `${depth * INDENT_PX}px`;
      if (span.status === "error") label.append(element("span", "!", "error-mark"));
      label.append(element("span", span.name, "span-name"), element("span", span.resource, "hint"));
      const track = element("div", undefined, "span-track");
      const bar = element("div", undefined, "bar");
      bar.dataset.resource = span.resource;
      bar.style.left = `${((span.start_ms - start) / total) * 100}%`;
      bar.style.width = `${Math.max((span.duration_ms / total) * 100, MIN_BAR_PERCENT)}%`;
      bar.title = `${span.name}: ${formatMs(span.duration_ms)}`;
      track.append(bar);
      node.append(label, track, element("div", formatMs(span.duration_ms), "span-duration"));
      const select = () => showSpan(span, node);
      node.addEventListener("click", select);
      node.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") select();
      });
      if (span.span_id === selected) showSpan(span, node);
      return node;
    });
    ui.waterfall.replaceChildren(axis, ...rows);
    const errors = trace.spans.filter((span) => span.status === "error").length;
    ui.status.textContent =
      `${trace.spans.length} spans, ${formatMs(total)}` + (errors ? `, ${errors} with errors` : "");
  }

  async function load() {
    const asked = traceId;
    let trace;
    try {
      trace = await getJson(`/api/telemetry/traces/${encodeURIComponent(asked)}`);
    } catch (error) {
      if (asked === traceId && shownSpans < 0) ui.status.textContent = `trace ${asked}: ${error.message}`;
      return;
    }
    if (asked !== traceId || trace.spans.length === shownSpans) return;
    shownSpans = trace.spans.length;
    render(trace);
  }

  return refreshing(load, TRACE_REFRESH_MS, (where) => {
    traceId = where.id;
    shownSpans = -1;
    selected = "";
    ui.id.textContent = where.id;
    ui.logsLink.href = `#logs?trace_id=${encodeURIComponent(where.id)}`;
    ui.detail.hidden = true;
    ui.waterfall.replaceChildren();
    ui.status.textContent = "loading…";
  });
}
