// A line chart in SVG, drawn by the page: one path per series over a shared time axis, the
// y axis from zero to a rounded maximum, a legend with each series' last value.

import { formatTime, svg } from "./dom.js";

const WIDTH = 460;
const HEIGHT = 170;
const LEFT = 48;
const RIGHT = 10;
const TOP = 10;
const BOTTOM = 22;
const GRID_LINES = 4;

function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

export function formatValue(value) {
  if (Number.isInteger(value)) return String(value);
  const size = Math.abs(value);
  if (size >= 100) return value.toFixed(0);
  if (size >= 1) return value.toFixed(2).replace(/\.?0+$/, "");
  return value.toPrecision(2);
}

// series: [{name, label, points: [[time_ms, value], ...]}]; scale divides the values shown.
export function drawChart(target, series, { scale = 1 } = {}) {
  const all = series.flatMap((one) => one.points);
  const times = all.map(([time]) => time);
  const t0 = Math.min(...times);
  const t1 = Math.max(...times, t0 + 1);
  const top = niceMax(Math.max(...all.map(([, value]) => value / scale), 0));
  const x = (time) => LEFT + ((time - t0) / (t1 - t0)) * (WIDTH - LEFT - RIGHT);
  const y = (value) => TOP + (1 - value / scale / top) * (HEIGHT - TOP - BOTTOM);
  const parts = [];
  for (let line = 0; line <= GRID_LINES; line += 1) {
    const value = (top * line) / GRID_LINES;
    const at = y(value * scale);
    parts.push(svg("line", { x1: LEFT, x2: WIDTH - RIGHT, y1: at, y2: at, class: "grid" }));
    parts.push(svg("text", { x: LEFT - 6, y: at + 4, class: "axis-label", "text-anchor": "end" }, formatValue(value)));
  }
  parts.push(svg("text", { x: LEFT, y: HEIGHT - 6, class: "axis-label" }, formatTime(t0)));
  parts.push(
    svg("text", { x: WIDTH - RIGHT, y: HEIGHT - 6, class: "axis-label", "text-anchor": "end" }, formatTime(t1)),
  );
  series.forEach((one, index) => {
    const points = one.points;
    const d = points
      .map(([time, value], at) => `${at ? "L" : "M"}${x(time).toFixed(1)} ${y(value).toFixed(1)}`)
      .join(" ");
    const path = svg("path", { d, class: `series series-${index % 4}` });
    path.dataset.series = one.name;
    path.dataset.points = String(points.length);
    path.dataset.last = points.length ? String(points[points.length - 1][1]) : "";
    path.dataset.max = String(Math.max(...points.map(([, value]) => value)));
    parts.push(path);
    if (points.length === 1) {
      const [time, value] = points[0];
      parts.push(svg("circle", { cx: x(time), cy: y(value), r: 2.5, class: `series-dot series-${index % 4}` }));
    }
  });
  target.setAttribute("viewBox", `0 0 ${WIDTH} ${HEIGHT}`);
  target.replaceChildren(...parts);
}
