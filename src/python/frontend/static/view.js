// What the page shows: the connection state, errors, the transcript and the live indicators.
import { stats } from "./stats.js";

const $ = (id) => document.getElementById(id);
export const ui = {
  badge: $("state-badge"),
  connect: $("connect"),
  status: $("status"),
  error: $("error"),
  prompt: $("text-prompt"),
  personas: $("personas"),
  voice: $("voice"),
  temperature: $("temperature"),
  temperatureText: $("temperature-text"),
  topK: $("top-k"),
  seed: $("seed"),
  micMeter: $("mic-meter"),
  micFill: $("mic-fill"),
  micText: $("mic-text"),
  buffer: $("buffer-ms"),
  bufferDetail: $("buffer-detail"),
  sent: $("sent"),
  transcript: $("transcript"),
  clearTranscript: $("clear-transcript"),
  logs: $("logs"),
  version: $("version"),
};

const STATE_LABELS = {
  disconnected: "Disconnected",
  connecting: "Connecting",
  warming: "Warming up",
  live: "Live",
};

/** `wanted`: the user asked to be connected; `ready`: the configuration is loaded. */
export function showState(state, message, { wanted, ready }) {
  document.body.dataset.state = state;
  ui.badge.textContent = STATE_LABELS[state];
  ui.status.textContent = message;
  ui.connect.textContent = wanted ? "Disconnect" : "Connect";
  ui.connect.classList.toggle("danger", wanted);
  ui.connect.disabled = !ready;
}

export function showError(message) {
  ui.error.textContent = message;
  ui.error.hidden = false;
}

export function clearError() {
  ui.error.textContent = "";
  ui.error.hidden = true;
}

// ---------------------------------------------------------------- transcript

// Each conversation's text goes to a paragraph of its own, made when its first text arrives.
let turn = null;

export function newTranscriptTurn() {
  turn = null;
}

export function appendTranscript(text) {
  if (!turn) {
    turn = document.createElement("p");
    turn.className = "turn";
    ui.transcript.append(turn);
  }
  turn.textContent += text;
  ui.transcript.scrollTop = ui.transcript.scrollHeight;
}

export function clearTranscript() {
  ui.transcript.replaceChildren();
  turn = null;
}

// ---------------------------------------------------------------- indicators

let micLevel = 0;

export function showMicLevel(level) {
  micLevel = Math.max(level, micLevel * 0.85);
}

export function resetMicLevel() {
  micLevel = 0;
}

export function showPlayback(report) {
  ui.buffer.textContent = `${Math.round(report.bufferedMs)} ms`;
  ui.bufferDetail.textContent = `${report.underruns} underruns, ${Math.round(report.droppedMs)} ms dropped`;
}

function formatBytes(bytes) {
  return bytes < 1e6 ? `${(bytes / 1e3).toFixed(1)} kB` : `${(bytes / 1e6).toFixed(2)} MB`;
}

/** Redraws the meter and the sent counter every animation frame from now on. */
export function startIndicators(microphoneOpen) {
  const draw = () => {
    // dBFS from -60 to 0 on the meter: speech sits around -30..-10.
    const db = 20 * Math.log10(Math.max(micLevel, 1e-6));
    const fraction = Math.min(1, Math.max(0, (db + 60) / 60));
    ui.micFill.style.width = `${(fraction * 100).toFixed(1)}%`;
    ui.micMeter.setAttribute("aria-valuenow", String(Math.round(db)));
    ui.micText.textContent = microphoneOpen() ? `${Math.round(db)} dB` : "off";
    ui.sent.textContent = `${stats.pagesSent} pages, ${formatBytes(stats.bytesSent)}`;
    micLevel *= 0.9;
    requestAnimationFrame(draw);
  };
  requestAnimationFrame(draw);
}
