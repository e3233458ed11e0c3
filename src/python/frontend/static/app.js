// The voice conversation page: configuration, connection state machine, microphone → Opus →
// Ogg → WebSocket, and WebSocket → Ogg → Opus → jitter buffer → speakers.
import { OggDemuxer, OggOpusMuxer, isOpusHead, isOpusTags, opusPacketDurationUs } from "./ogg.js";

// 20 ms is the frame size the backend's Ogg reader was verified with; one Ogg page then carries
// one model frame (config.protocol.frame_samples) worth of packets.
const OPUS_FRAME_US = 20000;
const OPUS_BITRATE = 32000;
const MIC_BLOCK_MS = 20;
const PLAYBACK_TARGET_MS = 120;
const PLAYBACK_MAX_MS = 320;
const STATS_REPORT_MS = 100;
const MAX_LOG_LINES = 300;
const LOGS_RETRY_MS = 5000;

// Counters for tests and the indicator; they only ever grow.
const stats = {
  samplesDecoded: 0,
  pagesSent: 0,
  bytesSent: 0,
  textPieces: 0,
  reconnects: 0,
  samplesCaptured: 0,
  // Samples the jitter buffer handed to the speakers, at the AudioContext's rate.
  samplesPlayed: 0,
  underruns: 0,
  // Loudest decoded sample so far: tells a played-back echo from decoded silence.
  peakDecoded: 0,
};
window.voiceStats = stats;

const $ = (id) => document.getElementById(id);
const ui = {
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

let config = null;
let kinds = null; // protocol kind name → byte, from config.protocol.kinds
let audio = null; // {context, player, mic, workletLoaded}
let current = null; // the connection in use, see connect()
let wanted = false; // the user asked to be connected (Connect pressed, Disconnect not)
let reconnectTimer = null;
let lastMicLevel = 0;
let micProblem = null; // why the microphone is not sending, shown again after each handshake

const WORKLET_URL = new URL("./audio-worklet.js", import.meta.url);

// ---------------------------------------------------------------- state and status

function setState(state, message) {
  document.body.dataset.state = state;
  ui.badge.textContent = STATE_LABELS[state];
  ui.status.textContent = message;
  ui.connect.textContent = wanted ? "Disconnect" : "Connect";
  ui.connect.classList.toggle("danger", wanted);
  ui.connect.disabled = config === null;
}

function showError(message) {
  ui.error.textContent = message;
  ui.error.hidden = false;
}

function clearError() {
  ui.error.textContent = "";
  ui.error.hidden = true;
}

/** The server's 0x05 reason, said in words a user can act on; the reason itself is kept. */
function describeServerError(reason) {
  const retry = wanted ? ` Retrying in ${Math.round(config.reconnect_delay_ms / 1000)} s.` : "";
  if (reason.startsWith("busy")) {
    return `The voice server is busy: every conversation slot is taken.${retry} (Server said: ${reason})`;
  }
  if (reason.startsWith("not ready")) {
    return `The voice model is still loading.${retry} (Server said: ${reason})`;
  }
  if (reason.startsWith("bad ") || reason.startsWith("unknown voice_prompt")) {
    return `The server refused the conversation settings: ${reason}`;
  }
  return `The server ended the conversation: ${reason}`;
}

// ---------------------------------------------------------------- logs panel

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

function browserLog(level, message) {
  addLogLine({ timestamp: new Date().toISOString(), level, source: "browser", message });
}

function followServerLogs() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/logs`);
  socket.onmessage = (event) => {
    try {
      addLogLine(JSON.parse(event.data));
    } catch {
      addLogLine({ level: "INFO", source: "frontend", message: String(event.data) });
    }
  };
  socket.onclose = () => setTimeout(followServerLogs, LOGS_RETRY_MS);
}

// ---------------------------------------------------------------- transcript

function startTranscriptTurn() {
  const turn = document.createElement("p");
  turn.className = "turn";
  ui.transcript.append(turn);
  return turn;
}

function appendTranscript(connection, text) {
  if (!connection.turn) connection.turn = startTranscriptTurn();
  connection.turn.textContent += text;
  ui.transcript.scrollTop = ui.transcript.scrollHeight;
}

// ---------------------------------------------------------------- audio graph

async function ensureAudio() {
  const protocol = config.protocol;
  if (!audio) {
    // Created on the Connect click: browsers start audio only after a user gesture.
    const context = new AudioContext({ sampleRate: protocol.sample_rate, latencyHint: "interactive" });
    audio = { context, player: null, mic: null, workletLoaded: null };
  }
  const context = audio.context;
  if (!audio.player) {
    audio.workletLoaded ??= context.audioWorklet.addModule(WORKLET_URL).catch((error) => {
      audio.workletLoaded = null; // the next Connect tries again
      throw error;
    });
    await audio.workletLoaded;
    const player = new AudioWorkletNode(context, "jitter-buffer-player", {
      numberOfInputs: 0,
      numberOfOutputs: 1,
      outputChannelCount: [1],
      processorOptions: {
        targetMs: PLAYBACK_TARGET_MS,
        maxMs: PLAYBACK_MAX_MS,
        reportMs: STATS_REPORT_MS,
      },
    });
    player.port.onmessage = (event) => showPlayback(event.data);
    player.connect(context.destination);
    audio.player = player;
  }
  if (context.state === "suspended") context.resume();
  if (!audio.mic) audio.mic = await openMicrophone(context, protocol.sample_rate);
}

/** Stops the capture: the browser's recording indicator goes off after Disconnect. */
function closeMicrophone() {
  if (!audio || !audio.mic) return;
  const { stream, source, capture, captureContext } = audio.mic;
  audio.mic = null;
  for (const track of stream.getTracks()) track.stop();
  capture.port.onmessage = null;
  source.disconnect();
  capture.disconnect();
  if (captureContext !== audio.context) captureContext.close();
  lastMicLevel = 0;
}

async function openMicrophone(context, sampleRate) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new Error("this browser gives no microphone access here (is the page on https or localhost?)");
  }
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: {
      echoCancellation: true,
      noiseSuppression: true,
      channelCount: 1,
      sampleRate,
    },
  });
  let captureContext = context;
  let source;
  try {
    source = context.createMediaStreamSource(stream);
  } catch (error) {
    // Firefox cannot feed a microphone into a context of another rate than the device's:
    // capture in a context of the device's rate instead; the worklet resamples.
    browserLog("INFO", `capturing at the device's rate (${error.message})`);
    captureContext = new AudioContext({ latencyHint: "interactive" });
    await captureContext.audioWorklet.addModule(WORKLET_URL);
    source = captureContext.createMediaStreamSource(stream);
  }
  const capture = new AudioWorkletNode(captureContext, "mic-capture", {
    numberOfInputs: 1,
    numberOfOutputs: 1,
    outputChannelCount: [1],
    channelCount: 1,
    channelCountMode: "explicit",
    processorOptions: {
      targetRate: sampleRate,
      blockSamples: Math.round((sampleRate * MIC_BLOCK_MS) / 1000),
    },
  });
  capture.port.onmessage = (event) => onMicBlock(event.data);
  source.connect(capture);
  // The node writes silence; the connection only keeps the audio thread pulling it.
  capture.connect(captureContext.destination);
  browserLog("INFO", `microphone open: ${stream.getAudioTracks()[0].label || "default device"}`);
  return { stream, source, capture, captureContext };
}

function onMicBlock({ samples, level }) {
  lastMicLevel = Math.max(level, lastMicLevel * 0.85);
  stats.samplesCaptured += samples.length;
  const connection = current;
  if (!connection || !connection.encoder || connection.encoder.state !== "configured") return;
  const data = new AudioData({
    format: "f32",
    sampleRate: config.protocol.sample_rate,
    numberOfFrames: samples.length,
    numberOfChannels: 1,
    timestamp: connection.encodedUs,
    data: samples,
  });
  connection.encodedUs += (samples.length * 1e6) / config.protocol.sample_rate;
  try {
    connection.encoder.encode(data);
  } finally {
    data.close();
  }
}

// ---------------------------------------------------------------- sending: Opus → Ogg pages

function startEncoder(connection) {
  if (typeof AudioEncoder !== "function") {
    showError(
      "This browser cannot encode audio (WebCodecs is missing; it needs Chrome/Edge on https or localhost). You can listen, but not speak."
    );
    return;
  }
  if (!audio || !audio.mic) return; // nothing to encode; micProblem says why
  const protocol = config.protocol;
  const samplesPerPacket = (protocol.sample_rate * OPUS_FRAME_US) / 1e6;
  connection.muxer = new OggOpusMuxer({
    inputSampleRate: protocol.sample_rate,
    channels: 1,
    packetsPerPage: Math.max(1, Math.round(protocol.frame_samples / samplesPerPacket)),
  });
  for (const page of connection.muxer.headerPages()) sendPage(connection, page);
  connection.encoder = new AudioEncoder({
    output: (chunk) => {
      const packet = new Uint8Array(chunk.byteLength);
      chunk.copyTo(packet);
      for (const page of connection.muxer.addPacket(packet, chunk.duration)) sendPage(connection, page);
    },
    error: (error) => {
      browserLog("ERROR", `audio encoder: ${error.message}`);
      showError(`Your microphone audio could not be encoded: ${error.message}`);
    },
  });
  connection.encoder.configure({
    codec: "opus",
    sampleRate: protocol.sample_rate,
    numberOfChannels: 1,
    bitrate: OPUS_BITRATE,
    opus: { frameDuration: OPUS_FRAME_US },
  });
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

// ---------------------------------------------------------------- receiving: Ogg → Opus → PCM

function configureDecoder(connection, head) {
  if (connection.decoder && connection.decoder.state !== "closed") connection.decoder.close();
  connection.decoder = new AudioDecoder({
    output: (data) => {
      try {
        if (current !== connection) return;
        const samples = new Float32Array(data.numberOfFrames);
        data.copyTo(samples, { planeIndex: 0, format: "f32-planar" });
        stats.samplesDecoded += data.numberOfFrames;
        for (const sample of samples) stats.peakDecoded = Math.max(stats.peakDecoded, Math.abs(sample));
        audio.player.port.postMessage({ type: "pcm", samples, sampleRate: data.sampleRate }, [
          samples.buffer,
        ]);
      } finally {
        data.close();
      }
    },
    error: (error) => browserLog("ERROR", `audio decoder: ${error.message}`),
  });
  const decoderConfig = {
    codec: "opus",
    sampleRate: config.protocol.sample_rate,
    numberOfChannels: 1,
  };
  if (head) decoderConfig.description = head;
  connection.decoder.configure(decoderConfig);
}

function receiveAudio(connection, payload) {
  if (typeof AudioDecoder !== "function" || !audio || !audio.player) return;
  for (const packet of connection.demuxer.push(payload)) {
    if (isOpusHead(packet)) {
      configureDecoder(connection, packet);
      continue;
    }
    if (isOpusTags(packet)) continue;
    // A decoder closes itself after an error; the next packet gets a fresh one.
    if (!connection.decoder || connection.decoder.state === "closed") configureDecoder(connection, null);
    const duration = opusPacketDurationUs(packet);
    connection.decoder.decode(
      new EncodedAudioChunk({ type: "key", timestamp: connection.decodedUs, duration, data: packet })
    );
    connection.decodedUs += duration;
  }
}

// ---------------------------------------------------------------- connection state machine

function chatUrl() {
  const query = new URLSearchParams({
    text_prompt: ui.prompt.value,
    voice_prompt: ui.voice.value,
    temperature: ui.temperature.value,
    temperature_text: ui.temperatureText.value,
    top_k: ui.topK.value,
  });
  if (ui.seed.value.trim() !== "") query.set("seed", ui.seed.value.trim());
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
    live: false,
    errorReason: null,
    demuxer: new OggDemuxer(),
    decoder: null,
    decodedUs: 0,
    encoder: null,
    encodedUs: 0,
    muxer: null,
    turn: null,
  };
  current = connection;
  audio && audio.player && audio.player.port.postMessage({ type: "reset" });
  const target = config.use_proxy ? `${config.proxy_path} (relay)` : new URL(url).host;
  browserLog("INFO", `connecting to ${target}`);
  try {
    connection.ws = new WebSocket(url);
  } catch (error) {
    current = null;
    disconnected(`Cannot open the WebSocket: ${error.message}`);
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
    disconnected(message);
  };
}

function onMessage(connection, bytes) {
  if (bytes.length === 0) return;
  const kind = bytes[0];
  const payload = bytes.subarray(1);
  if (kind === kinds.handshake) {
    connection.live = true;
    clearError();
    if (micProblem) showError(micProblem);
    setState("live", "Live: speak whenever you like.");
    browserLog("INFO", "conversation live");
    startEncoder(connection);
  } else if (kind === kinds.audio) {
    receiveAudio(connection, payload);
  } else if (kind === kinds.text) {
    stats.textPieces += 1;
    appendTranscript(connection, new TextDecoder().decode(payload));
  } else if (kind === kinds.error) {
    connection.errorReason = new TextDecoder().decode(payload);
    showError(describeServerError(connection.errorReason));
  }
  // control, metadata and ping carry nothing this page acts on.
}

function teardown(connection) {
  for (const codec of [connection.encoder, connection.decoder]) {
    if (codec && codec.state !== "closed") codec.close();
  }
  connection.encoder = null;
  connection.decoder = null;
}

function disconnected(message) {
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

// ---------------------------------------------------------------- indicators

function showPlayback(report) {
  stats.underruns = Math.max(stats.underruns, report.underruns);
  stats.samplesPlayed = Math.max(stats.samplesPlayed, report.playedSamples);
  ui.buffer.textContent = `${Math.round(report.bufferedMs)} ms`;
  ui.bufferDetail.textContent = `${report.underruns} underruns, ${Math.round(report.droppedMs)} ms dropped`;
}

function formatBytes(bytes) {
  return bytes < 1e6 ? `${(bytes / 1e3).toFixed(1)} kB` : `${(bytes / 1e6).toFixed(2)} MB`;
}

function drawIndicators() {
  // dBFS from -60 to 0 on the meter: speech sits around -30..-10.
  const db = 20 * Math.log10(Math.max(lastMicLevel, 1e-6));
  const fraction = Math.min(1, Math.max(0, (db + 60) / 60));
  ui.micFill.style.width = `${(fraction * 100).toFixed(1)}%`;
  ui.micMeter.setAttribute("aria-valuenow", String(Math.round(db)));
  ui.micText.textContent = audio && audio.mic ? `${Math.round(db)} dB` : "off";
  ui.sent.textContent = `${stats.pagesSent} pages, ${formatBytes(stats.bytesSent)}`;
  lastMicLevel *= 0.9;
  requestAnimationFrame(drawIndicators);
}

// ---------------------------------------------------------------- setup form

function fillForm() {
  const defaults = config.defaults;
  ui.prompt.value = defaults.text_prompt;
  for (const voice of config.voices) ui.voice.add(new Option(voice, voice));
  ui.voice.value = defaults.voice_prompt;
  ui.temperature.value = defaults.temperature;
  ui.temperatureText.value = defaults.temperature_text;
  ui.topK.value = defaults.top_k;
  for (const persona of config.personas) {
    const chip = document.createElement("button");
    chip.type = "button";
    chip.className = "chip";
    chip.textContent = persona.name;
    chip.title = persona.text_prompt;
    chip.addEventListener("click", () => {
      ui.prompt.value = persona.text_prompt;
      markPersona();
    });
    chip.dataset.prompt = persona.text_prompt;
    ui.personas.append(chip);
  }
  markPersona();
  ui.version.textContent = config.version ? `version ${config.version}` : "";
}

function markPersona() {
  for (const chip of ui.personas.querySelectorAll(".chip")) {
    chip.setAttribute("aria-pressed", String(chip.dataset.prompt === ui.prompt.value));
  }
}

async function main() {
  setState("disconnected", "Loading configuration…");
  ui.connect.addEventListener("click", () => (wanted ? disconnect() : connect()));
  ui.prompt.addEventListener("input", markPersona);
  ui.clearTranscript.addEventListener("click", () => {
    ui.transcript.replaceChildren();
    if (current) current.turn = null;
  });
  followServerLogs();
  try {
    const response = await fetch("/api/config", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    config = await response.json();
  } catch (error) {
    showError(`Could not load the configuration (/api/config): ${error.message}. Reload to retry.`);
    setState("disconnected", "Not configured.");
    return;
  }
  kinds = config.protocol.kinds;
  fillForm();
  if (!window.isSecureContext) {
    showError("This page is not a secure context (use https or localhost): the browser will not open the microphone or encode audio.");
  }
  setState("disconnected", "Ready. Press Connect to start a conversation.");
  requestAnimationFrame(drawIndicators);
}

main();
