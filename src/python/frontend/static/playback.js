// The speakers' side: the page's AudioContext, Ogg/Opus from the server → WebCodecs decoder →
// the jitter-buffer worklet.
import { browserLog } from "./logs.js";
import { OggDemuxer, isOpusHead, isOpusTags, opusPacketDurationUs } from "./ogg.js";
import { stats } from "./stats.js";
import { showPlayback } from "./view.js";

const PLAYBACK_TARGET_MS = 120;
const PLAYBACK_MAX_MS = 320;
const STATS_REPORT_MS = 100;

// Holds both processors: this module's player and the microphone's capture.
export const WORKLET_URL = new URL("./audio-worklet.js", import.meta.url);

let context = null;
let player = null;
let workletLoaded = null;

/** The AudioContext with the player in it, both made on first use; resumed if suspended. */
export async function ensurePlayer(sampleRate) {
  // Called on the Connect click: browsers start audio only after a user gesture.
  if (!context) context = new AudioContext({ sampleRate, latencyHint: "interactive" });
  if (!player) {
    workletLoaded ??= context.audioWorklet.addModule(WORKLET_URL).catch((error) => {
      workletLoaded = null; // the next Connect tries again
      throw error;
    });
    await workletLoaded;
    const node = new AudioWorkletNode(context, "jitter-buffer-player", {
      numberOfInputs: 0,
      numberOfOutputs: 1,
      outputChannelCount: [1],
      processorOptions: {
        targetMs: PLAYBACK_TARGET_MS,
        maxMs: PLAYBACK_MAX_MS,
        reportMs: STATS_REPORT_MS,
      },
    });
    node.port.onmessage = (event) => onReport(event.data);
    node.connect(context.destination);
    player = node;
  }
  if (context.state === "suspended") context.resume();
  return context;
}

/** Drops what the player still holds of an earlier conversation. */
export function resetPlayer() {
  player && player.port.postMessage({ type: "reset" });
}

function onReport(report) {
  stats.underruns = Math.max(stats.underruns, report.underruns);
  stats.samplesPlayed = Math.max(stats.samplesPlayed, report.playedSamples);
  showPlayback(report);
}

/** One conversation's incoming audio, from the server's Ogg pages to the player. */
export class OpusReceiver {
  constructor(sampleRate) {
    this.sampleRate = sampleRate;
    this.demuxer = new OggDemuxer();
    this.decoder = null;
    this.decodedUs = 0;
    this.closed = false;
  }

  push(payload) {
    if (typeof AudioDecoder !== "function" || !player) return;
    for (const packet of this.demuxer.push(payload)) {
      if (isOpusHead(packet)) {
        this.configure(packet);
        continue;
      }
      if (isOpusTags(packet)) continue;
      // A decoder closes itself after an error; the next packet gets a fresh one.
      if (!this.decoder || this.decoder.state === "closed") this.configure(null);
      const duration = opusPacketDurationUs(packet);
      this.decoder.decode(
        new EncodedAudioChunk({ type: "key", timestamp: this.decodedUs, duration, data: packet })
      );
      this.decodedUs += duration;
    }
  }

  configure(head) {
    if (this.decoder && this.decoder.state !== "closed") this.decoder.close();
    this.decoder = new AudioDecoder({
      output: (data) => {
        try {
          // Output still queued when the conversation ended is not played.
          if (this.closed) return;
          const samples = new Float32Array(data.numberOfFrames);
          data.copyTo(samples, { planeIndex: 0, format: "f32-planar" });
          stats.samplesDecoded += data.numberOfFrames;
          for (const sample of samples) stats.peakDecoded = Math.max(stats.peakDecoded, Math.abs(sample));
          player.port.postMessage({ type: "pcm", samples, sampleRate: data.sampleRate }, [samples.buffer]);
        } finally {
          data.close();
        }
      },
      error: (error) => browserLog("ERROR", `audio decoder: ${error.message}`),
    });
    const decoderConfig = { codec: "opus", sampleRate: this.sampleRate, numberOfChannels: 1 };
    if (head) decoderConfig.description = head;
    this.decoder.configure(decoderConfig);
  }

  close() {
    this.closed = true;
    if (this.decoder && this.decoder.state !== "closed") this.decoder.close();
    this.decoder = null;
  }
}
