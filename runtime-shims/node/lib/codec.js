'use strict';
/**
 * The hot-container frame protocol, version 1 (docs/protocol.md), sans I/O.
 *
 * A frame is a big-endian uint32 payload length followed by exactly one msgpack map. This
 * module turns payloads into validated frames and frames into wire bytes; it never touches a
 * stream, so it is tested byte by byte against docs/protocol-vectors.json.
 *
 * @msgpack/msgpack does the msgpack work. It is lenient where the protocol is strict:
 *   - str must be valid UTF-8 (the library silently substitutes U+FFFD or garbage);
 *   - int fields must be msgpack ints (the library turns a float 200.0 into the number 200);
 *   - map keys must be str and ext types are refused (public options cover these two).
 * The first two wrap Decoder methods that are private in its TypeScript (decodeUtf8String,
 * readF32, readF64): the package version is pinned exactly, and test/codec.test.js fails if an
 * upgrade changes those internals.
 */

const { Decoder, Encoder } = require('@msgpack/msgpack');
const { isUtf8 } = require('node:buffer');

const PROTOCOL_VERSION = 1;
const DEFAULT_MAX_FRAME_SIZE = 6 * 1024 * 1024;
const LENGTH_SIZE = 4;
const MAX_UINT32 = 0xffffffff;

class ProtocolError extends Error {
  get name() {
    return this.constructor.name;
  }
}

/** The length prefix announces more than the limit; raised before any payload is buffered. */
class FrameTooLarge extends ProtocolError {
  constructor(size, limit, what = 'frame') {
    super(`${what} of ${size} bytes exceeds the ${limit}-byte limit`);
    this.size = size;
    this.limit = limit;
  }
}

class MalformedFrame extends ProtocolError {}

/** The stream ended inside a frame (in its length prefix or its payload). */
class TruncatedFrame extends ProtocolError {}

// -- strict msgpack decoding -------------------------------------------------------------

/** A decoded msgpack float: never a valid value for an int field. */
class MsgpackFloat {
  constructor(value) {
    this.value = value;
  }
}

// Node >= 18.14 ships buffer.isUtf8 (bookworm has 18.19); the fallback keeps older ones working.
const fatalUtf8 = new TextDecoder('utf-8', { fatal: true });
const isValidUtf8 =
  isUtf8 ||
  ((bytes) => {
    try {
      fatalUtf8.decode(bytes);
      return true;
    } catch {
      return false;
    }
  });

function utf8Valid(bytes, start, end) {
  // Almost every str in a frame is short ASCII (keys, methods, header names): a JS loop beats
  // a native call for those.
  if (end - start <= 64) {
    let i = start;
    while (i < end && bytes[i] < 0x80) i++;
    if (i === end) return true;
  }
  return isValidUtf8(bytes.subarray(start, end));
}

const refuseExtensions = {
  decode: (_data, extType) => {
    throw new MalformedFrame(`msgpack ext type ${extType} is not allowed in frames`);
  },
};

function strMapKey(key) {
  if (typeof key !== 'string') {
    throw new MalformedFrame(`map keys must be msgpack str, not ${typeof key}`);
  }
  return key;
}

class StrictDecoder extends Decoder {
  constructor() {
    super({ extensionCodec: refuseExtensions, mapKeyConverter: strMapKey });
  }

  decodeUtf8String(byteLength, headerOffset) {
    const start = this.pos + headerOffset;
    const end = start + byteLength;
    // Out of bounds: let the library raise its own "insufficient data" error.
    if (end <= this.bytes.byteLength && !utf8Valid(this.bytes, start, end)) {
      throw new MalformedFrame('msgpack str is not valid UTF-8');
    }
    return super.decodeUtf8String(byteLength, headerOffset);
  }

  readF32() {
    return new MsgpackFloat(super.readF32());
  }

  readF64() {
    return new MsgpackFloat(super.readF64());
  }
}

// -- frame validation ----------------------------------------------------------------------

function typeName(value) {
  if (value === null) return 'nil';
  if (value instanceof Uint8Array) return 'bin';
  if (value instanceof MsgpackFloat) return 'float';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'object') return 'map';
  if (typeof value === 'number') return 'int';
  if (typeof value === 'string') return 'str';
  return typeof value;
}

function fail(map, key, expected) {
  const value = map[key];
  if (value === undefined) throw new MalformedFrame(`${map.type} frame lacks '${key}'`);
  throw new MalformedFrame(
    `${map.type} frame field '${key}' must be ${expected}, not ${typeName(value)}`,
  );
}

function str(map, key) {
  const value = map[key];
  if (typeof value !== 'string') fail(map, key, 'str');
  return value;
}

function int(map, key) {
  const value = map[key];
  if (typeof value !== 'number' || !Number.isInteger(value)) fail(map, key, 'int');
  return value;
}

function bin(map, key) {
  const value = map[key];
  if (!(value instanceof Uint8Array)) fail(map, key, 'bin');
  // Zero-copy view on the payload: a 5 MiB body is never copied again.
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

function pairs(map, key) {
  const value = map[key];
  if (!Array.isArray(value)) fail(map, key, 'array');
  for (const pair of value) {
    if (
      !Array.isArray(pair) ||
      pair.length !== 2 ||
      typeof pair[0] !== 'string' ||
      typeof pair[1] !== 'string'
    ) {
      throw new MalformedFrame(`${map.type} frame field '${key}' must hold [str, str] pairs`);
    }
  }
  return value;
}

function strMap(map, key) {
  const value = map[key];
  if (typeName(value) !== 'map') fail(map, key, 'map');
  for (const k in value) {
    if (typeof value[k] !== 'string') {
      throw new MalformedFrame(`${map.type} frame field '${key}' must map str to str`);
    }
  }
  return value;
}

/** A validated frame holding only the keys of its type (unknown keys are dropped). */
function frameFromMap(map) {
  if (typeName(map) !== 'map') {
    throw new MalformedFrame(`frame payload must be a map, not ${typeName(map)}`);
  }
  // A switch, not a lookup table: `type` is peer data and must not reach Object.prototype.
  switch (map.type) {
    case 'request':
      return {
        type: 'request',
        call_id: str(map, 'call_id'),
        method: str(map, 'method'),
        url: str(map, 'url'),
        path: str(map, 'path'),
        query: pairs(map, 'query'),
        headers: pairs(map, 'headers'),
        body: bin(map, 'body'),
        deadline: int(map, 'deadline'),
        app: str(map, 'app'),
        route: str(map, 'route'),
        params: strMap(map, 'params'),
      };
    case 'response':
      return {
        type: 'response',
        call_id: str(map, 'call_id'),
        status: int(map, 'status'),
        headers: pairs(map, 'headers'),
        body: bin(map, 'body'),
      };
    case 'error':
      return {
        type: 'error',
        call_id: str(map, 'call_id'),
        error_type: str(map, 'error_type'),
        message: str(map, 'message'),
        trace: str(map, 'trace'),
      };
    case 'ready':
      return {
        type: 'ready',
        version: int(map, 'version'),
        runtime: str(map, 'runtime'),
        // Optional (protocol 2.2.1): how many calls the container takes at once.
        ...(map.concurrency !== undefined ? { concurrency: int(map, 'concurrency') } : {}),
      };
    case undefined:
      throw new MalformedFrame("frame lacks 'type'");
    default:
      throw new MalformedFrame(`unknown frame type ${JSON.stringify(map.type)}`);
  }
}

const decoder = new StrictDecoder();

/** One validated frame from one complete payload (the bytes after the length prefix). */
function decodePayload(payload) {
  let map;
  try {
    map = decoder.decode(payload);
  } catch (err) {
    if (err instanceof ProtocolError) throw err;
    // DecodeError (bad type byte, __proto__ key), RangeError (truncated, trailing bytes).
    throw new MalformedFrame(`payload is not one msgpack map: ${err.message}`);
  }
  return frameFromMap(map);
}

// -- encoding --------------------------------------------------------------------------------

// Frames are built by the shim from str, int, array, map and bin only: no extension codec needed.
const encoder = new Encoder({ initialBufferSize: 4096 });
const EMPTY_BIN = new Uint8Array(0);

// A JS string may hold lone UTF-16 surrogates, which msgpack would encode as invalid UTF-8 and
// hotfn would reject as malformed: replace them with U+FFFD. Only strings with surrogates pay.
const SURROGATE = /[\uD800-\uDFFF]/;
const wellFormed = String.prototype.toWellFormed
  ? (s) => s.toWellFormed()
  : (s) => (SURROGATE.test(s) ? Buffer.from(s, 'utf8').toString('utf8') : s);

function binHeader(size) {
  if (size < 0x100) return Buffer.from([0xc4, size]);
  const header = Buffer.allocUnsafe(size < 0x10000 ? 3 : 5);
  if (size < 0x10000) {
    header[0] = 0xc5;
    header.writeUInt16BE(size, 1);
  } else {
    header[0] = 0xc6;
    header.writeUInt32BE(size, 1);
  }
  return header;
}

/**
 * A frame as a list of buffers whose concatenation is its wire form: [prefix, map, (bin
 * header, body)]. A frame's `body` is moved to the end of the map and written after the map
 * instead of being copied into the encoder (a 5 MiB response costs no extra copy).
 *
 * The buffers are only valid until the next call: the map is a view on the encoder's reused
 * buffer. Throws FrameTooLarge if the payload would exceed `maxFrameSize`.
 */
function encodeFrameParts(frame, maxFrameSize = DEFAULT_MAX_FRAME_SIZE) {
  const body = frame.body;
  let map = frame;
  if (body !== undefined) {
    if (!(body instanceof Uint8Array)) throw new TypeError('frame body must be a Uint8Array');
    map = { ...frame };
    delete map.body;
    map.body = EMPTY_BIN; // last key: its 2 bytes (c4 00) are replaced below
  }
  let head = encoder.encodeSharedRef(map);
  let size = head.length;
  let tail = [];
  if (body !== undefined && body.length > 0) {
    head = head.subarray(0, head.length - 2);
    const header = binHeader(body.length);
    size = head.length + header.length + body.length;
    tail = [header, body];
  }
  if (size > maxFrameSize) throw new FrameTooLarge(size, maxFrameSize, `${frame.type} frame`);
  const prefix = Buffer.allocUnsafe(LENGTH_SIZE);
  prefix.writeUInt32BE(size, 0);
  return { parts: [prefix, head, ...tail], size: LENGTH_SIZE + size };
}

/** A frame's wire bytes as one fresh Buffer. */
function encodeFrame(frame, maxFrameSize = DEFAULT_MAX_FRAME_SIZE) {
  const { parts, size } = encodeFrameParts(frame, maxFrameSize);
  return Buffer.concat(parts, size);
}

/** The ready frame; a concurrency above 1 is announced (protocol 2.2.1), 1 is not. */
function readyFrame(runtime, concurrency = 1) {
  const frame = { type: 'ready', version: PROTOCOL_VERSION, runtime: wellFormed(runtime) };
  if (concurrency > 1) frame.concurrency = concurrency;
  return frame;
}

function responseFrame(callId, status, headers, body) {
  return { type: 'response', call_id: callId, status, headers, body };
}

function errorFrame(callId, errorType, message, trace) {
  return {
    type: 'error',
    call_id: callId,
    error_type: wellFormed(errorType),
    message: wellFormed(message),
    trace: wellFormed(trace),
  };
}

// -- stream decoding ---------------------------------------------------------------------------

/**
 * Turns a byte stream into payloads, one frame at a time.
 *
 * push(chunk) buffers, end() marks EOF, next() returns the next complete payload, null when
 * more data is needed, or throws: FrameTooLarge as soon as the length prefix is in (nothing is
 * allocated for the frame), MalformedFrame for a zero length, TruncatedFrame when the stream
 * ended inside a frame. Chunks are kept as they came and joined once per frame, so reading is
 * O(n) however the stream is cut; a payload inside a single chunk is not copied at all.
 */
class FrameReader {
  constructor(maxFrameSize = DEFAULT_MAX_FRAME_SIZE) {
    this.maxFrameSize = maxFrameSize;
    this.chunks = [];
    this.offset = 0; // bytes of chunks[0] already consumed
    this.buffered = 0; // bytes not yet consumed, over all chunks
    this.payloadSize = -1; // the current frame's length, once its prefix is read
    this.ended = false;
  }

  push(chunk) {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  end() {
    this.ended = true;
  }

  /** Whether the stream ended cleanly between frames with nothing left over. */
  get closed() {
    return this.ended && this.buffered === 0 && this.payloadSize === -1;
  }

  next() {
    if (this.payloadSize === -1) {
      if (this.buffered < LENGTH_SIZE) return this.short();
      const size = this.take(LENGTH_SIZE).readUInt32BE(0);
      if (size === 0) throw new MalformedFrame('frame length 0');
      if (size > this.maxFrameSize) throw new FrameTooLarge(size, this.maxFrameSize);
      this.payloadSize = size;
    }
    if (this.buffered < this.payloadSize) return this.short();
    const payload = this.take(this.payloadSize);
    this.payloadSize = -1;
    return payload;
  }

  short() {
    if (this.ended && (this.buffered > 0 || this.payloadSize !== -1)) {
      throw new TruncatedFrame('stream ended inside a frame');
    }
    return null;
  }

  /** The next n buffered bytes (n <= this.buffered). */
  take(n) {
    const first = this.chunks[0];
    if (first.length - this.offset >= n) {
      const out = first.subarray(this.offset, this.offset + n);
      this.advance(n);
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.chunks[0];
      const count = Math.min(chunk.length - this.offset, n - filled);
      chunk.copy(out, filled, this.offset, this.offset + count);
      filled += count;
      this.advance(count);
    }
    return out;
  }

  advance(n) {
    this.offset += n;
    this.buffered -= n;
    if (this.offset === this.chunks[0].length) {
      this.chunks.shift();
      this.offset = 0;
    }
  }
}

/** HOTFN_MAX_FRAME_SIZE, or the default when unset or not a positive integer. */
function maxFrameSizeFromEnv(env = process.env) {
  const raw = env.HOTFN_MAX_FRAME_SIZE;
  if (raw === undefined || !/^\s*\d+\s*$/.test(raw)) return DEFAULT_MAX_FRAME_SIZE;
  const value = Number(raw);
  return value > 0 && value <= MAX_UINT32 ? value : DEFAULT_MAX_FRAME_SIZE;
}

module.exports = {
  PROTOCOL_VERSION,
  DEFAULT_MAX_FRAME_SIZE,
  ProtocolError,
  FrameTooLarge,
  MalformedFrame,
  TruncatedFrame,
  decodePayload,
  encodeFrame,
  encodeFrameParts,
  readyFrame,
  responseFrame,
  errorFrame,
  wellFormed,
  FrameReader,
  maxFrameSizeFromEnv,
};
