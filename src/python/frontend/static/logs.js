// The logs panel: the server's events from /ws/logs and the page's own, newest last.
import { ui } from "./view.js";

const MAX_LOG_LINES = 300;
const LOGS_RETRY_MS = 5000;

function addLogLine({ timestamp, level, source, message }) {
  const item = document.createElement("li");
  const level_ = String(level || "INFO").toUpperCase();
  item.className = `log-${level_.toLowerCase()}`;
  const time = document.createElement("time");
  const when = timestamp ? new Date(timestamp) : new Date();
  time.dateTime = isNaN(when) ? "" : when.toISOString();
  time.textContent = isNaN(when) ? String(timestamp) : when.toLocaleTimeString();
  const tag = document.createElement("span");
  tag.className = "log-level";
  tag.textContent = level_;
  const from = document.createElement("span");
  from.className = "log-source";
  from.textContent = source || "?";
  const text = document.createElement("span");
  text.className = "log-message";
  text.textContent = message;
  item.append(time, " ", tag, " ", from, " ", text);
  const stick = ui.logs.scrollTop + ui.logs.clientHeight >= ui.logs.scrollHeight - 8;
  ui.logs.append(item);
  while (ui.logs.childElementCount > MAX_LOG_LINES) ui.logs.firstElementChild.remove();
  if (stick) ui.logs.scrollTop = ui.logs.scrollHeight;
}

export function browserLog(level, message) {
  addLogLine({ timestamp: new Date().toISOString(), level, source: "browser", message });
}

/** The server's events, when the server shares them with this address (config.logs_stream). */
export function followServerLogs(shared) {
  if (!shared) {
    browserLog("INFO", "the server shares its events only with its own machine (APP_LOGS_STREAM)");
    return;
  }
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/logs`);
  socket.onmessage = (event) => {
    try {
      addLogLine(JSON.parse(event.data));
    } catch {
      addLogLine({ level: "INFO", source: "frontend", message: String(event.data) });
    }
  };
  socket.onclose = () => setTimeout(() => followServerLogs(true), LOGS_RETRY_MS);
}
