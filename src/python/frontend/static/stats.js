// Counters for the browser tests (window.voiceStats) and the indicators; they only ever grow.
export const stats = {
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
