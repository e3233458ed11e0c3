// Ogg framing (RFC 3533) of an Opus stream (RFC 7845): what the backend's
// sphn.OpusStreamReader accepts, and what it sends back.

// Granule positions of Ogg Opus count 48 kHz samples whatever the coded rate.
const GRANULE_RATE = 48000;
// libopus looks 6.5 ms ahead; RFC 7845 wants that trimmed by the decoder, in 48 kHz samples.
// Chromium's encoder reports its lookahead in 24 kHz samples, so it is not taken from there.
const DEFAULT_PRE_SKIP = 312;
const HEADER_BYTES = 27;
const MAX_SEGMENTS = 255;
const FLAG_CONTINUED = 0x01;
const FLAG_FIRST = 0x02;
const FLAG_LAST = 0x04;

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let r = i << 24;
    for (let bit = 0; bit < 8; bit++) {
      r = r & 0x80000000 ? (r << 1) ^ 0x04c11db7 : r << 1;
    }
    table[i] = r >>> 0;
  }
  return table;
})();

/** CRC-32 of Ogg: polynomial 0x04c11db7, not reflected, initial value 0, no final xor. */
export function oggCrc(bytes) {
  let crc = 0;
  for (let i = 0; i < bytes.length; i++) {
    crc = ((crc << 8) ^ CRC_TABLE[((crc >>> 24) ^ bytes[i]) & 0xff]) >>> 0;
  }
  return crc;
}

const ascii = (text) => Uint8Array.from(text, (c) => c.charCodeAt(0));
const OPUS_HEAD = ascii("OpusHead");
const OPUS_TAGS = ascii("OpusTags");

function startsWith(bytes, magic) {
  if (bytes.length < magic.length) return false;
  return magic.every((value, i) => bytes[i] === value);
}

export const isOpusHead = (packet) => startsWith(packet, OPUS_HEAD);
export const isOpusTags = (packet) => startsWith(packet, OPUS_TAGS);

/** Duration of one Opus packet in microseconds, from its TOC byte (RFC 6716, 3.1). */
export function opusPacketDurationUs(packet) {
  if (packet.length === 0) return 0;
  const toc = packet[0];
  const config = toc >> 3;
  let frameUs;
  if (config < 12) frameUs = [10000, 20000, 40000, 60000][config & 3];
  else if (config < 16) frameUs = [10000, 20000][config & 1];
  else frameUs = [2500, 5000, 10000, 20000][config & 3];
  const code = toc & 3;
  let frames = 1;
  if (code === 1 || code === 2) frames = 2;
  else if (code === 3) frames = packet.length > 1 ? packet[1] & 0x3f : 0;
  return frameUs * frames;
}

function opusHead(channels, inputSampleRate, preSkip) {
  const head = new Uint8Array(19);
  const view = new DataView(head.buffer);
  head.set(OPUS_HEAD, 0);
  head[8] = 1; // version
  head[9] = channels;
  view.setUint16(10, preSkip, true);
  view.setUint32(12, inputSampleRate, true);
  view.setInt16(16, 0, true); // output gain
  head[18] = 0; // channel mapping family 0: mono or stereo
  return head;
}

function opusTags(vendor) {
  const vendorBytes = new TextEncoder().encode(vendor);
  const tags = new Uint8Array(8 + 4 + vendorBytes.length + 4);
  const view = new DataView(tags.buffer);
  tags.set(OPUS_TAGS, 0);
  view.setUint32(8, vendorBytes.length, true);
  tags.set(vendorBytes, 12);
  view.setUint32(12 + vendorBytes.length, 0, true); // no user comments
  return tags;
}

function lacing(length) {
  const values = new Array(Math.floor(length / 255)).fill(255);
  // A packet whose length is a multiple of 255 still needs a terminating segment below 255.
  values.push(length % 255);
  return values;
}

/** Builds the pages of one logical Ogg Opus stream, one page per `packetsPerPage` packets. */
export class OggOpusMuxer {
  constructor({
    inputSampleRate,
    channels = 1,
    packetsPerPage = 4,
    preSkip = DEFAULT_PRE_SKIP,
    vendor = "personaplex-web",
  }) {
    this.inputSampleRate = inputSampleRate;
    this.channels = channels;
    this.packetsPerPage = Math.max(1, packetsPerPage);
    this.preSkip = preSkip;
    this.vendor = vendor;
    this.serial = crypto.getRandomValues(new Uint32Array(1))[0];
    this.sequence = 0;
    this.granule = 0;
    this.packets = [];
  }

  /** Page 1 (OpusHead, beginning of stream) and page 2 (OpusTags); both at granule 0. */
  headerPages() {
    const head = opusHead(this.channels, this.inputSampleRate, this.preSkip);
    return [
      this.page([head], 0, FLAG_FIRST),
      this.page([opusTags(this.vendor)], 0, 0),
    ];
  }

  /** Adds one packet; returns the pages it completed (usually none or one). */
  addPacket(packet, durationUs) {
    const us = durationUs || opusPacketDurationUs(packet);
    const pages = [];
    const segments = this.packets.reduce((n, p) => n + lacing(p.length).length, 0);
    if (segments + lacing(packet.length).length > MAX_SEGMENTS) pages.push(this.flush());
    this.packets.push(packet);
    this.granule += Math.round((us * GRANULE_RATE) / 1e6);
    if (this.packets.length >= this.packetsPerPage) pages.push(this.flush());
    return pages.filter(Boolean);
  }

  /** The page of the packets gathered so far, or null when there are none. */
  flush(last = false) {
    if (!this.packets.length) return null;
    const page = this.page(this.packets, this.granule, last ? FLAG_LAST : 0);
    this.packets = [];
    return page;
  }

  page(packets, granule, flags) {
    const segmentTable = packets.flatMap((p) => lacing(p.length));
    const bodyLength = packets.reduce((n, p) => n + p.length, 0);
    const page = new Uint8Array(HEADER_BYTES + segmentTable.length + bodyLength);
    const view = new DataView(page.buffer);
    page.set(ascii("OggS"), 0);
    page[4] = 0; // stream structure version
    page[5] = flags;
    // 64-bit granule position, little endian; below 2^53 for about 5900 years of audio.
    view.setUint32(6, granule % 2 ** 32, true);
    view.setUint32(10, Math.floor(granule / 2 ** 32), true);
    view.setUint32(14, this.serial, true);
    view.setUint32(18, this.sequence++, true);
    view.setUint32(22, 0, true); // CRC, computed over the page with this field zeroed
    page[26] = segmentTable.length;
    page.set(segmentTable, HEADER_BYTES);
    let offset = HEADER_BYTES + segmentTable.length;
    for (const p of packets) {
      page.set(p, offset);
      offset += p.length;
    }
    view.setUint32(22, oggCrc(page), true);
    return page;
  }
}

/**
 * Splits an Ogg byte stream, received in pieces of any size, back into packets. Pages may be
 * cut across pieces and packets across pages. Bytes that are not a valid page are skipped until
 * the next capture pattern, so one damaged page costs that page only.
 */
export class OggDemuxer {
  constructor() {
    this.buffer = new Uint8Array(0);
    this.partial = [];
    this.bytesSkipped = 0;
  }

  /** Returns the packets completed by these bytes, in order. */
  push(bytes) {
    const joined = new Uint8Array(this.buffer.length + bytes.length);
    joined.set(this.buffer, 0);
    joined.set(bytes, this.buffer.length);
    const packets = [];
    let offset = 0;
    while (true) {
      const start = findCapture(joined, offset);
      if (start < 0) {
        // Keep a possible beginning of "OggS" for the next piece.
        const keep = Math.min(3, joined.length - offset);
        this.bytesSkipped += joined.length - offset - keep;
        offset = joined.length - keep;
        break;
      }
      this.bytesSkipped += start - offset;
      offset = start;
      if (joined.length - offset < HEADER_BYTES) break;
      const segmentCount = joined[offset + 26];
      const bodyStart = offset + HEADER_BYTES + segmentCount;
      if (joined.length < bodyStart) break;
      let bodyLength = 0;
      for (let i = 0; i < segmentCount; i++) bodyLength += joined[offset + HEADER_BYTES + i];
      const end = bodyStart + bodyLength;
      if (joined.length < end) break;
      const page = joined.slice(offset, end);
      if (!validCrc(page)) {
        // A capture pattern inside payload bytes, or damage: resynchronise one byte further.
        offset += 1;
        this.bytesSkipped += 1;
        continue;
      }
      this.readPage(page, segmentCount, packets);
      offset = end;
    }
    this.buffer = joined.slice(offset);
    return packets;
  }

  readPage(page, segmentCount, packets) {
    const flags = page[5];
    if (!(flags & FLAG_CONTINUED)) this.partial = [];
    let position = HEADER_BYTES + segmentCount;
    for (let i = 0; i < segmentCount; i++) {
      const size = page[HEADER_BYTES + i];
      this.partial.push(page.subarray(position, position + size));
      position += size;
      if (size < 255) {
        packets.push(concat(this.partial));
        this.partial = [];
      }
    }
  }
}

function findCapture(bytes, from) {
  for (let i = from; i + 3 < bytes.length; i++) {
    if (bytes[i] === 0x4f && bytes[i + 1] === 0x67 && bytes[i + 2] === 0x67 && bytes[i + 3] === 0x53) {
      return i;
    }
  }
  return -1;
}

function validCrc(page) {
  const view = new DataView(page.buffer, page.byteOffset, page.byteLength);
  const stated = view.getUint32(22, true);
  const copy = page.slice();
  copy.fill(0, 22, 26);
  return oggCrc(copy) === stated;
}

function concat(parts) {
  if (parts.length === 1) return parts[0].slice();
  const length = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(length);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}
