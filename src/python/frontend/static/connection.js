// One conversation at a time over the backend's /api/chat (or the frontend's relay): the
// connection state machine, the protocol's message kinds, the reconnect after a drop.
import { chatQuery } from "./form.js";
import { browserLog } from "./logs.js";
import { closeMicrophone, ensureMicrophone, startSending } from "./microphone.js";
import { OpusReceiver, ensurePlayer, resetPlayer } from "./playback.js";
import { stats } from "./stats.js";
import { appendTranscript, clearError, newTranscriptTurn, showError, showState } from "./view.js";

let config = null;
let kinds = null; // protocol kind name → byte, from config.protocol.kinds
let current = null; // the connection in use, see connect()
let wanted = false; // the user asked to be connected (Connect pressed, Disconnect not)
let reconnectTimer = null;
let micProblem = null; // why the microphone is not sending, shown again after each handshake

/** Takes the server's /api/config; Connect works from now on. */
export function configure(loaded) {
  config = loaded;
  kinds = config.protocol.kinds;
}

export function setState(state, message) {
  showState(state, message, { wanted, ready: config !== null });
}

export function toggle() {
  return wanted ? disconnect() : connect();
}

/**
 * Whether trying again can succeed: a busy or still-loading server can, and so can a lost
 * connection (reason null: no 0x05 came). Refused settings or a failure of the model cannot:
 * retrying them every few seconds would only repeat the error.
 */
function retryable(reason) {
  return reason === null || reason.startsWith("busy") || reason.startsWith("not ready");
}

/** The server's 0x05 reason, said in words a user can act on; the reason itself is kept. */
function describeServerError(reason) {
  const retry =
    wanted && retryable(reason)
      ? ` Retrying in ${Math.round(config.reconnect_delay_ms / 1000)} s.`
      : "";
  if (reason.startsWith("busy")) {
    return `The voice server is busy: every conversation slot is taken.${retry} (Server said: ${reason})`;
  }
  if (reason.startsWith("not ready")) {
    return `The voice model is still loading.${retry} (Server said: ${reason})`;
  }
  if (reason.startsWith("idle") || reason.startsWith("conversation limit")) {
    return `The server ended the conversation (${reason}). Connect to start a new one.`;
  }
  if (reason.startsWith("bad ") || reason.startsWith("unknown voice_prompt")) {
    return `The server refused the conversation settings: ${reason}. Change them, then Connect.`;
  }
  return `The server ended the conversation: ${reason}`;
}

function chatUrl() {
  const query = chatQuery();
  if (config.use_proxy) {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    return `${scheme}://${location.host}${config.proxy_path}?${query}`;
  }
  return `${config.moshi_ws_url}?${query}`;
}

async function refreshBackend() {
  // With several backends the server hands out a free one per conversation (MOSHI_WS_URLS), so
  // each connect asks again; through the relay the server chooses by itself.
  if (config.use_proxy) return;
  try {
    const response = await fetch("/api/config", { cache: "no-store" });
    if (response.ok) config.moshi_ws_url = (await response.json()).moshi_ws_url;
  } catch (error) {
    browserLog("WARNING", `keeping ${config.moshi_ws_url}: /api/config failed (${error.message})`);
  }
}

async function ensureAudio() {
  const context = await ensurePlayer(config.protocol.sample_rate);
  await ensureMicrophone(context, config.protocol.sample_rate, (samples) => {
    if (current && current.sender) current.sender.encode(samples);
  });
}

async function connect() {
  clearTimeout(reconnectTimer);
  reconnectTimer = null;
  wanted = true;
  setState("connecting", "Connecting to the voice server…");
  try {
    await ensureAudio();
    micProblem = null;
  } catch (error) {
    micProblem = `No microphone: ${error.message}. You will hear the model but it will not hear you.`;
    showError(micProblem);
    browserLog("WARNING", `audio unavailable: ${error.message}`);
  }
  await refreshBackend();
  if (!wanted) {
    closeMicrophone(); // Disconnect was pressed while the microphone was opening
    return;
  }
  if (current) return; // a second Connect while the first was opening the microphone
  const url = chatUrl();
  const connection = {
    ws: null,
    opened: false,
    errorReason: null,
    receiver: new OpusReceiver(config.protocol.sample_rate),
    sender: null,
  };
  current = connection;
  newTranscriptTurn();
  resetPlayer();
  const target = config.use_proxy ? `${config.proxy_path} (relay)` : new URL(url).host;
  browserLog("INFO", `connecting to ${target}`);
  try {
    connection.ws = new WebSocket(url);
  } catch (error) {
    current = null;
    disconnected(`Cannot open the WebSocket: ${error.message}`, false);
    return;
  }
  connection.ws.binaryType = "arraybuffer";
  connection.ws.onopen = () => {
    if (current !== connection) return;
    connection.opened = true;
    setState("warming", "Connected. Waiting for the model to start the conversation…");
  };
  connection.ws.onmessage = (event) => {
    if (current !== connection || !(event.data instanceof ArrayBuffer)) return;
    onMessage(connection, new Uint8Array(event.data));
  };
  connection.ws.onclose = (event) => {
    if (current !== connection) return;
    teardown(connection);
    current = null;
    let message;
    if (connection.errorReason) message = describeServerError(connection.errorReason);
    else if (!connection.opened) message = `Could not reach the voice server (${target}).`;
    else message = `The connection closed (code ${event.code}${event.reason ? `: ${event.reason}` : ""}).`;
    browserLog(connection.errorReason ? "WARNING" : "INFO", message);
    if (connection.errorReason) showError(message);
    disconnected(message, retryable(connection.errorReason));
  };
}

function onMessage(connection, bytes) {
  if (bytes.length === 0) return;
  const kind = bytes[0];
  const payload = bytes.subarray(1);
  if (kind === kinds.handshake) {
    clearError();
    if (micProblem) showError(micProblem);
    setState("live", "Live: speak whenever you like.");
    browserLog("INFO", "conversation live");
    connection.sender = startSending(config.protocol, (page) => sendPage(connection, page));
  } else if (kind === kinds.audio) {
    connection.receiver.push(payload);
  } else if (kind === kinds.text) {
    stats.textPieces += 1;
    appendTranscript(new TextDecoder().decode(payload));
  } else if (kind === kinds.error) {
    connection.errorReason = new TextDecoder().decode(payload);
    showError(describeServerError(connection.errorReason));
  }
  // control, metadata and ping carry nothing this page acts on.
}

function sendPage(connection, page) {
  const ws = connection.ws;
  if (ws.readyState !== WebSocket.OPEN) return;
  const message = new Uint8Array(page.length + 1);
  message[0] = kinds.audio;
  message.set(page, 1);
  ws.send(message);
  stats.pagesSent += 1;
  stats.bytesSent += message.length;
}

function teardown(connection) {
  if (connection.sender) connection.sender.close();
  connection.sender = null;
  connection.receiver.close();
}

function disconnected(message, retry = true) {
  if (!retry) {
    // Connect again is the user's call, once the cause is dealt with.
    wanted = false;
    closeMicrophone();
  }
  if (wanted) {
    const delay = config.reconnect_delay_ms;
    setState("disconnected", `${message} Reconnecting in ${Math.round(delay / 1000)} s…`);
    reconnectTimer = setTimeout(() => {
      stats.reconnects += 1;
      connect();
    }, delay);
  } else {
    setState("disconnected", message);
  }
}

function disconnect() {
  wanted = false;
  clearTimeout(reconnectTimer);
  reconnectTimer = null;
  const connection = current;
  current = null;
  if (connection) {
    teardown(connection);
    if (connection.ws) connection.ws.close(1000, "user disconnected");
  }
  closeMicrophone();
  browserLog("INFO", "disconnected by the user");
  setState("disconnected", "Disconnected.");
}
