// Audio-thread half of the voice pipeline: microphone capture and the playback jitter buffer.
// Both run inside the page's AudioContext, whose rate is the global `sampleRate` here.

/**
 * Linear-interpolation resampler that keeps its phase between calls, so that a stream cut into
 * blocks resamples without clicks at the block edges. Speech is band-limited well below the
 * Nyquist frequency of either rate here (Opus at 24 kHz codes at most 12 kHz), which is why
 * no anti-aliasing filter is needed.
 */
class StreamResampler {
  constructor(fromRate, toRate) {
    this.step = fromRate / toRate;
    this.identity = fromRate === toRate;
    this.position = 1; // in input samples; index 0 is the last sample of the previous block
    this.last = 0;
  }

  process(input) {
    if (this.identity || input.length === 0) return input;
    const available = input.length + 1;
    const count = Math.max(0, Math.ceil((available - 1 - this.position) / this.step));
    const output = new Float32Array(count);
    let position = this.position;
    for (let i = 0; i < count; i++) {
      const index = Math.floor(position);
      const fraction = position - index;
      const a = index === 0 ? this.last : input[index - 1];
      const b = input[index];
      output[i] = a + (b - a) * fraction;
      position += this.step;
    }
    this.position = position - input.length;
    this.last = input[input.length - 1];
    return output;
  }
}

/**
 * Microphone tap: resamples to the protocol rate and posts blocks of `blockSamples`, each with
 * its RMS level for the meter. The encoder runs on the main thread (WebCodecs is not available
 * in worklets).
 */
class MicCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { targetRate, blockSamples } = options.processorOptions;
    this.resampler = new StreamResampler(sampleRate, targetRate);
    this.blockSamples = blockSamples;
    this.block = new Float32Array(blockSamples);
    this.filled = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    const samples = this.resampler.process(channel);
    let offset = 0;
    while (offset < samples.length) {
      const take = Math.min(samples.length - offset, this.blockSamples - this.filled);
      this.block.set(samples.subarray(offset, offset + take), this.filled);
      this.filled += take;
      offset += take;
      if (this.filled === this.blockSamples) {
        let energy = 0;
        for (let i = 0; i < this.block.length; i++) energy += this.block[i] * this.block[i];
        const level = Math.sqrt(energy / this.block.length);
        this.port.postMessage({ samples: this.block, level }, [this.block.buffer]);
        this.block = new Float32Array(this.blockSamples);
        this.filled = 0;
      }
    }
    return true;
  }
}

/**
 * Gapless playback of decoded audio with a small jitter buffer: playback starts (and restarts
 * after an underrun) once `targetMs` is buffered; above `maxMs` the oldest audio is dropped back
 * to the target, so that the delay behind the server stays bounded instead of growing with every
 * network hiccup.
 */
class JitterBufferPlayer extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { targetMs, maxMs, reportMs } = options.processorOptions;
    this.target = Math.round((targetMs * sampleRate) / 1000);
    this.max = Math.round((maxMs * sampleRate) / 1000);
    this.reportEvery = Math.max(1, Math.round((reportMs * sampleRate) / 1000 / 128));
    this.queue = [];
    this.head = 0; // read offset into queue[0]
    this.buffered = 0;
    this.playing = false;
    this.resamplers = new Map();
    this.underruns = 0;
    this.droppedSamples = 0;
    this.playedSamples = 0;
    this.blocks = 0;
    this.port.onmessage = (event) => this.receive(event.data);
  }

  receive(message) {
    if (message.type === "reset") {
      this.queue = [];
      this.head = 0;
      this.buffered = 0;
      this.playing = false;
      this.resamplers.clear();
      return;
    }
    if (message.type !== "pcm") return;
    let resampler = this.resamplers.get(message.sampleRate);
    if (!resampler) {
      resampler = new StreamResampler(message.sampleRate, sampleRate);
      this.resamplers.set(message.sampleRate, resampler);
    }
    const samples = resampler.process(message.samples);
    if (samples.length === 0) return;
    this.queue.push(samples);
    this.buffered += samples.length;
    if (this.buffered > this.max) this.drop(this.buffered - this.target);
  }

  drop(count) {
    this.droppedSamples += count;
    this.buffered -= count;
    while (count > 0 && this.queue.length) {
      const available = this.queue[0].length - this.head;
      if (available <= count) {
        count -= available;
        this.queue.shift();
        this.head = 0;
      } else {
        this.head += count;
        count = 0;
      }
    }
  }

  process(_inputs, outputs) {
    const output = outputs[0][0];
    if (!this.playing && this.buffered >= this.target) this.playing = true;
    let written = 0;
    if (this.playing) {
      while (written < output.length && this.queue.length) {
        const chunk = this.queue[0];
        const take = Math.min(output.length - written, chunk.length - this.head);
        output.set(chunk.subarray(this.head, this.head + take), written);
        written += take;
        this.head += take;
        if (this.head === chunk.length) {
          this.queue.shift();
          this.head = 0;
        }
      }
      this.buffered -= written;
      this.playedSamples += written;
      if (written < output.length) {
        this.underruns += 1;
        this.playing = false;
      }
    }
    output.fill(0, written);
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(output);
    if (++this.blocks % this.reportEvery === 0) {
      this.port.postMessage({
        bufferedMs: (this.buffered * 1000) / sampleRate,
        underruns: this.underruns,
        droppedMs: (this.droppedSamples * 1000) / sampleRate,
        playedSamples: this.playedSamples,
        playing: this.playing,
      });
    }
    return true;
  }
}

registerProcessor("mic-capture", MicCapture);
registerProcessor("jitter-buffer-player", JitterBufferPlayer);
