// The telemetry API (/api/telemetry/...) as the pages read it, and the run they show: the
// current one unless the run selector names a past run.

const RUNS_REFRESH_MS = 10000;

let chosenRun = "";
const listeners = new Set();

export class ApiError extends Error {}

export function chosen() {
  return chosenRun;
}

export function onRunChange(listener) {
  listeners.add(listener);
}

// JSON of GET path with params (empty ones left out) and the chosen run; ApiError with the
// server's one-line reason otherwise.
export async function getJson(path, params = {}) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries({ ...params, run: chosenRun })) {
    if (value !== "" && value !== null && value !== undefined) query.set(name, String(value));
  }
  const text = query.toString();
  const response = await fetch(text ? `${path}?${text}` : path, { cache: "no-store" });
  if (!response.ok) {
    const reason = (await response.text()).trim();
    throw new ApiError(response.status === 404 && !reason ? "not found" : reason || response.statusText);
  }
  return response.json();
}

function label(run) {
  const at = new Date(run.started_ms);
  const today = at.toDateString() === new Date().toDateString();
  const started = today
    ? at.toLocaleTimeString([], { hour12: false })
    : at.toLocaleString([], { hour12: false, dateStyle: "short", timeStyle: "short" });
  const counts = `${run.spans} spans, ${run.logs} logs`;
  return `${run.current ? "current" : "run"} ${started} · ${counts}`;
}

async function refreshRuns(select) {
  let runs;
  try {
    runs = (await getJson("/api/telemetry/runs")).runs;
  } catch {
    return; // no telemetry (turned off, or an older orchestrator): the selector stays empty
  }
  const options = runs.map((run) => {
    const option = new Option(label(run), run.current ? "" : run.id);
    option.dataset.runId = run.id;
    option.dataset.current = String(run.current);
    return option;
  });
  if (!runs.some((run) => run.current)) options.unshift(new Option("current", ""));
  select.replaceChildren(...options);
  select.value = chosenRun;
  if (select.value !== chosenRun) select.value = "";
}

// What the receiver has had this run, in a few words (its title: whether the services export
// to it).
async function refreshStatus(target) {
  let status;
  try {
    status = await getJson("/api/telemetry/status");
  } catch {
    target.textContent = "no telemetry";
    target.dataset.state = "off";
    return;
  }
  const received = status.received || {};
  let text = status.enabled
    ? `${received.spans ?? 0} spans · ${received.logs ?? 0} logs · ${received.points ?? 0} points`
    : "telemetry off";
  if (status.dropped) text += ` · ${status.dropped} dropped`;
  if (status.services_export_elsewhere) text = "services export elsewhere";
  target.textContent = text;
  target.dataset.state = !status.enabled ? "off" : status.dropped ? "dropping" : "on";
  // The caller's endpoint is not shown: it may carry a credential.
  target.title = status.services_export_elsewhere
    ? "the services export to the caller's OTEL_EXPORTER_OTLP_ENDPOINT, not here"
    : status.endpoint
      ? `OTLP receiver at ${status.endpoint}`
      : "";
}

export function startRunSelector(select, statusNode) {
  select.add(new Option("current", ""));
  select.addEventListener("change", () => {
    chosenRun = select.value;
    for (const listener of listeners) listener(chosenRun);
  });
  const refresh = () => {
    refreshRuns(select);
    refreshStatus(statusNode);
  };
  refresh();
  setInterval(refresh, RUNS_REFRESH_MS);
}
