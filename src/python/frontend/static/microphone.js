// The microphone's side: capture through the worklet, then WebCodecs Opus → Ogg pages.
import { browserLog } from "./logs.js";
import { OggOpusMuxer } from "./ogg.js";
import { WORKLET_URL } from "./playback.js";
import { stats } from "./stats.js";
import { resetMicLevel, showError, showMicLevel } from "./view.js";

// 20 ms is the frame size the backend's Ogg reader was verified with; one Ogg page then carries
// one model frame (config.protocol.frame_samples) worth of packets.
const OPUS_FRAME_US = 20000;
const OPUS_BITRATE = 32000;
const MIC_BLOCK_MS = 20;

let mic = null; // {stream, source, capture, captureContext, context} while open

export function microphoneOpen() {
  return mic !== null;
}

export async function ensureMicrophone(context, sampleRate, onSamples) {
  if (!mic) mic = await openMicrophone(context, sampleRate, onSamples);
}

async function openMicrophone(context, sampleRate, onSamples) {
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
  capture.port.onmessage = ({ data: { samples, level } }) => {
    showMicLevel(level);
    stats.samplesCaptured += samples.length;
    onSamples(samples);
  };
  source.connect(capture);
  // The node writes silence; the connection only keeps the audio thread pulling it.
  capture.connect(captureContext.destination);
  browserLog("INFO", `microphone open: ${stream.getAudioTracks()[0].label || "default device"}`);
  return { stream, source, capture, captureContext, context };
}

/** Stops the capture: the browser's recording indicator goes off after Disconnect. */
export function closeMicrophone() {
  if (!mic) return;
  const { stream, source, capture, captureContext, context } = mic;
  mic = null;
  for (const track of stream.getTracks()) track.stop();
  capture.port.onmessage = null;
  source.disconnect();
  capture.disconnect();
  if (captureContext !== context) captureContext.close();
  resetMicLevel();
}

/** A conversation's encoder, or null when this browser cannot encode (the page says so). */
export function startSending(protocol, sendPage) {
  if (typeof AudioEncoder !== "function") {
    showError(
      "This browser cannot encode audio (WebCodecs is missing; it needs Chrome/Edge on https or localhost). You can listen, but not speak."
    );
    return null;
  }
  if (!mic) return null; // nothing to encode; the connection's microphone problem says why
  return new OpusSender(protocol, sendPage);
}

/** One conversation's outgoing audio: microphone blocks → Opus packets → Ogg pages. */
class OpusSender {
  constructor(protocol, sendPage) {
    this.sampleRate = protocol.sample_rate;
    this.encodedUs = 0;
    const samplesPerPacket = (protocol.sample_rate * OPUS_FRAME_US) / 1e6;
    const muxer = new OggOpusMuxer({
      inputSampleRate: protocol.sample_rate,
      channels: 1,
      packetsPerPage: Math.max(1, Math.round(protocol.frame_samples / samplesPerPacket)),
    });
    for (const page of muxer.headerPages()) sendPage(page);
    this.encoder = new AudioEncoder({
      output: (chunk) => {
        const packet = new Uint8Array(chunk.byteLength);
        chunk.copyTo(packet);
        for (const page of muxer.addPacket(packet, chunk.duration)) sendPage(page);
      },
      error: (error) => {
        browserLog("ERROR", `audio encoder: ${error.message}`);
        showError(`Your microphone audio could not be encoded: ${error.message}`);
      },
    });
    this.encoder.configure({
      codec: "opus",
      sampleRate: protocol.sample_rate,
      numberOfChannels: 1,
      bitrate: OPUS_BITRATE,
      opus: { frameDuration: OPUS_FRAME_US },
    });
  }

  encode(samples) {
    if (this.encoder.state !== "configured") return;
    const data = new AudioData({
      format: "f32",
      sampleRate: this.sampleRate,
      numberOfFrames: samples.length,
      numberOfChannels: 1,
      timestamp: this.encodedUs,
      data: samples,
    });
    this.encodedUs += (samples.length * 1e6) / this.sampleRate;
    try {
      this.encoder.encode(data);
    } finally {
      data.close();
    }
  }

  close() {
    if (this.encoder.state !== "closed") this.encoder.close();
  }
}
