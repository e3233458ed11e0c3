// The voice conversation page: loads /api/config, then the Connect button starts conversations.
// Microphone → Opus → Ogg → WebSocket (microphone.js), WebSocket → Ogg → Opus → jitter buffer →
// speakers (playback.js), the connection state machine (connection.js), what the page shows
// (view.js, form.js, logs.js).
import { configure, setState, toggle } from "./connection.js";
import { fillForm, markPersona } from "./form.js";
import { followServerLogs } from "./logs.js";
import { microphoneOpen } from "./microphone.js";
import { clearTranscript, showError, startIndicators, ui } from "./view.js";

async function main() {
  setState("disconnected", "Loading configuration…");
  ui.connect.addEventListener("click", toggle);
  ui.prompt.addEventListener("input", markPersona);
  ui.clearTranscript.addEventListener("click", clearTranscript);
  let config;
  try {
    const response = await fetch("/api/config", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    config = await response.json();
  } catch (error) {
    showError(`Could not load the configuration (/api/config): ${error.message}. Reload to retry.`);
    setState("disconnected", "Not configured.");
    return;
  }
  configure(config);
  fillForm(config);
  followServerLogs(config.logs_stream);
  if (!window.isSecureContext) {
    showError("This page is not a secure context (use https or localhost): the browser will not open the microphone or encode audio.");
  }
  setState("disconnected", "Ready. Press Connect to start a conversation.");
  startIndicators(microphoneOpen);
}

main();
