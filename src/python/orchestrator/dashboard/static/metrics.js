// Metrics of one resource, live: a chart per group of instruments (the contract's names),
// refreshed every 2 s; instruments in no group get a chart of their own.

import { chosen, getJson } from "./api.js";
import { addOptions, element, refreshing } from "./dom.js";
import { drawChart, formatValue } from "./chart.js";

const REFRESH_MS = 2000;
// How far back the current run's charts reach (a past run's show all it kept).
const WINDOW_MS = 15 * 60 * 1000;
const GROUPS = [
  { title: "Active conversations", names: ["moshi.conversations.active"] },
  { title: "Step time p50 / p99 (ms)", names: ["moshi.step.duration.p50", "moshi.step.duration.p99"] },
  { title: "Dropped and late frames", names: ["moshi.frames.dropped", "moshi.frames.late"] },
  { title: "Relays", names: ["frontend.relays.active", "frontend.relays.total"] },
  { title: "Process memory (MB)", names: ["process.memory.rss"], scale: 1e6 },
  { title: "Process CPU (cores)", names: ["process.cpu.utilization"] },
];
const GROUPED = new Set(GROUPS.flatMap((group) => group.names));

function chartPanel(title, series, scale) {
  const figure = element("figure", undefined, "chart");
  figure.dataset.chart = title;
  const chart = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  chart.setAttribute("role", "img");
  chart.setAttribute("aria-label", title);
  drawChart(chart, series, { scale });
  const legend = element("figcaption");
  legend.append(element("strong", title));
  series.forEach((one, index) => {
    const last = one.points.length ? one.points[one.points.length - 1][1] / scale : null;
    const item = element("span", undefined, "legend-item");
    item.dataset.series = one.name;
    item.append(element("span", "", `swatch series-${index % 4}`));
    item.append(`${one.name}${one.unit ? ` (${one.unit})` : ""}: `);
    item.append(element("span", last === null ? "-" : formatValue(last), "legend-value"));
    legend.append(item);
  });
  figure.append(legend, chart);
  return figure;
}

export function metricsPage(resourceNames) {
  const ui = {
    resource: document.getElementById("metrics-resource"),
    status: document.getElementById("metrics-status"),
    charts: document.getElementById("charts"),
  };

  async function load() {
    addOptions(ui.resource, resourceNames());
    const resource = ui.resource.value;
    let series;
    try {
      const params = { resource, since_ms: chosen() ? "" : Date.now() - WINDOW_MS };
      series = (await getJson("/api/telemetry/metrics", params)).series;
    } catch (error) {
      ui.status.textContent = error.message;
      return;
    }
    if (resource !== ui.resource.value) return; // changed while asked
    addOptions(ui.resource, series.map((one) => one.resource));
    const mine = series.filter((one) => !resource || one.resource === resource);
    const byName = new Map(mine.map((one) => [one.name, one]));
    const panels = [];
    for (const group of GROUPS) {
      const found = group.names.map((name) => byName.get(name)).filter(Boolean);
      if (found.length) panels.push(chartPanel(group.title, found, group.scale || 1));
    }
    for (const one of mine) {
      if (!GROUPED.has(one.name)) panels.push(chartPanel(one.name, [one], 1));
    }
    ui.charts.replaceChildren(...panels);
    ui.status.textContent = mine.length ? `${mine.length} series` : "no metrics received yet";
  }

  ui.resource.addEventListener("change", load);
  return refreshing(load, REFRESH_MS);
}
