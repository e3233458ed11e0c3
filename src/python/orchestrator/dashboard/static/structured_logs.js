// Structured logs (the services' OTLP log records): a table filtered by resource, least level
// and text, newest first; a record with a trace id links to that trace's waterfall.

import { getJson } from "./api.js";
import { addOptions, element, formatTime, refreshing } from "./dom.js";

const REFRESH_MS = 3000;
const LIMIT = 500;
const SEARCH_DELAY_MS = 250;

export function structuredLogsPage(resourceNames) {
  const ui = {
    rows: document.querySelector("#slogs tbody"),
    resource: document.getElementById("slog-resource"),
    level: document.getElementById("slog-level"),
    search: document.getElementById("slog-search"),
    count: document.getElementById("slog-count"),
  };
  let typing = null;
  let traceId = "";
  let generation = 0;

  function row(log) {
    const tr = element("tr");
    tr.dataset.seq = String(log.seq);
    tr.dataset.level = log.level;
    const level = element("span", log.level, "pill");
    level.dataset.level = log.level;
    const trace = element("td");
    if (log.trace_id) {
      const link = element("a", log.trace_id.slice(0, 12));
      link.href = `#trace/${log.trace_id}`;
      link.title = `trace ${log.trace_id}`;
      link.className = "trace-link";
      trace.append(link);
    }
    const cells = [
      element("td", formatTime(log.time_ms)),
      element("td"),
      element("td", log.resource),
      element("td", log.logger),
      element("td", log.message, "message"),
      trace,
    ];
    cells[1].append(level);
    for (const [cell, field] of cells.map((cell, at) => [cell, ["time", "level", "resource", "logger", "message", "trace"][at]])) {
      cell.dataset.field = field;
    }
    tr.append(...cells);
    return tr;
  }

  async function load() {
    const mine = ++generation;
    addOptions(ui.resource, resourceNames());
    let logs;
    try {
      logs = (
        await getJson("/api/telemetry/logs", {
          resource: ui.resource.value,
          level: ui.level.value,
          q: ui.search.value.trim(),
          trace_id: traceId,
          limit: LIMIT,
        })
      ).logs;
    } catch (error) {
      if (mine === generation) ui.count.textContent = error.message;
      return;
    }
    if (mine !== generation) return;
    ui.rows.replaceChildren(...logs.map(row));
    const scope = traceId ? ` of trace ${traceId.slice(0, 12)}` : "";
    ui.count.textContent = `${logs.length} records${scope}`;
  }

  ui.resource.addEventListener("change", load);
  ui.level.addEventListener("change", load);
  ui.search.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(load, SEARCH_DELAY_MS);
  });
  return refreshing(load, REFRESH_MS, (where) => {
    traceId = where.params?.get("trace_id") || "";
  });
}
