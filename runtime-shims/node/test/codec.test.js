'use strict';
// The codec against the shared vectors (docs/protocol-vectors.json) and the protocol's rules.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const msgpack = require('@msgpack/msgpack');
const {
  FrameReader,
  FrameTooLarge,
  MalformedFrame,
  TruncatedFrame,
  decodePayload,
  encodeFrame,
  encodeFrameParts,
  maxFrameSizeFromEnv,
  DEFAULT_MAX_FRAME_SIZE,
} = require('../lib/codec');

const VECTORS_PATH = path.resolve(__dirname, '../../../docs/protocol-vectors.json');
const vectors = JSON.parse(fs.readFileSync(VECTORS_PATH, 'utf8'));
const hex = (text) => Buffer.from(text, 'hex');

/** The keys each frame type has in v1; anything else in a vector is an unknown key. */
const KNOWN_KEYS = {
  ready: ['type', 'version', 'runtime'],
  request: ['type', 'call_id', 'method', 'url', 'path', 'query', 'headers', 'body', 'deadline', 'app', 'route', 'params'],
  response: ['type', 'call_id', 'status', 'headers', 'body'],
  error: ['type', 'call_id', 'error_type', 'message', 'trace'],
};

/** JSON form of a decoded frame, as in the vectors: bin is {"$bin": hex}. */
function toJson(value) {
  if (value instanceof Uint8Array) return { $bin: Buffer.from(value).toString('hex') };
  if (Array.isArray(value)) return value.map(toJson);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toJson(v)]));
  }
  return value;
}

function fromJson(value) {
  if (Array.isArray(value)) return value.map(fromJson);
  if (value && typeof value === 'object') {
    if (Object.keys(value).length === 1 && typeof value.$bin === 'string') return hex(value.$bin);
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fromJson(v)]));
  }
  return value;
}

/** The vector's frame without the keys a v1 decoder does not know. */
function knownPart(frame) {
  return Object.fromEntries(Object.entries(frame).filter(([k]) => KNOWN_KEYS[frame.type].includes(k)));
}

/** Every frame in `bytes`, fed to a FrameReader `step` bytes at a time, then EOF. */
function readAll(bytes, { step = bytes.length, max = vectors.max_frame_size } = {}) {
  const reader = new FrameReader(max);
  const frames = [];
  for (let i = 0; i < bytes.length; i += step) {
    reader.push(bytes.subarray(i, i + step));
    for (let p; (p = reader.next()) !== null; ) frames.push(decodePayload(p));
  }
  reader.end();
  for (let p; (p = reader.next()) !== null; ) frames.push(decodePayload(p));
  assert.ok(reader.closed);
  return frames;
}

test('the vectors file is protocol v1 with the default limit', () => {
  assert.equal(vectors.version, 1);
  assert.equal(vectors.max_frame_size, DEFAULT_MAX_FRAME_SIZE);
  assert.ok(vectors.valid.length > 0 && vectors.invalid.length > 0);
});

for (const vector of vectors.valid) {
  test(`valid vector ${vector.name}: decodes to its frame`, () => {
    const [frame, ...rest] = readAll(hex(vector.bytes));
    assert.equal(rest.length, 0);
    assert.deepEqual(toJson(frame), knownPart(vector.frame));
  });

  test(`valid vector ${vector.name}: decodes whatever way the stream is cut`, () => {
    const bytes = hex(vector.bytes);
    for (const step of [1, 2, 3, 5, 7]) {
      assert.deepEqual(toJson(readAll(bytes, { step })[0]), knownPart(vector.frame));
    }
  });

  test(`valid vector ${vector.name}: the encoder's bytes decode back to the frame`, () => {
    const frame = fromJson(knownPart(vector.frame));
    const bytes = encodeFrame(frame);
    assert.equal(bytes.readUInt32BE(0), bytes.length - 4);
    // Our decoder, and an independent lenient one: the map itself must be right too.
    assert.deepEqual(toJson(readAll(bytes)[0]), knownPart(vector.frame));
    assert.deepEqual(toJson(msgpack.decode(bytes.subarray(4))), knownPart(vector.frame));
  });
}

for (const vector of vectors.invalid) {
  test(`invalid vector ${vector.name}: rejected as ${vector.error}`, () => {
    const bytes = hex(vector.bytes);
    const reader = new FrameReader(vectors.max_frame_size);
    if (vector.error === 'oversized') {
      // Refused on the 4 prefix bytes alone: nothing after them is needed (or buffered).
      reader.push(bytes.subarray(0, 4));
      assert.throws(() => reader.next(), FrameTooLarge);
      return;
    }
    if (vector.error === 'truncated') {
      reader.push(bytes);
      assert.equal(reader.next(), null, 'must wait for more data before EOF');
      reader.end();
      assert.throws(() => reader.next(), TruncatedFrame);
      return;
    }
    assert.equal(vector.error, 'malformed');
    reader.push(bytes);
    assert.throws(() => {
      const payload = reader.next();
      assert.notEqual(payload, null, 'a malformed frame is complete: it must not wait for data');
      decodePayload(payload);
    }, MalformedFrame);
  });
}

test('oversized: refused before the frame buffer is allocated', (t) => {
  const alloc = t.mock.method(Buffer, 'allocUnsafe');
  const reader = new FrameReader(1000);
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32BE(0xfffffff0);
  // The prefix cut across two chunks, as a pipe may deliver it.
  reader.push(prefix.subarray(0, 2));
  assert.equal(reader.next(), null);
  reader.push(prefix.subarray(2));
  assert.throws(() => reader.next(), (err) => err instanceof FrameTooLarge && err.size === 0xfffffff0);
  assert.ok(alloc.mock.calls.every((call) => call.arguments[0] <= 4), 'no payload-sized allocation');
});

test('a frame exactly at the limit is accepted, one byte more is not', () => {
  const frame = { type: 'response', call_id: 'c', status: 200, headers: [], body: Buffer.alloc(0) };
  const size = encodeFrame(frame).length - 4;
  assert.equal(readAll(encodeFrame(frame, size), { max: size }).length, 1);
  assert.throws(() => encodeFrame(frame, size - 1), FrameTooLarge);
  assert.throws(() => readAll(encodeFrame(frame), { max: size - 1 }), FrameTooLarge);
});

test('a 5 MiB body round-trips, fed in 64 KiB chunks', () => {
  const body = Buffer.alloc(5 * 1024 * 1024);
  for (let i = 0; i < body.length; i++) body[i] = (i * 7919) & 0xff;
  const bytes = encodeFrame({ type: 'response', call_id: 'big', status: 200, headers: [], body });
  const [frame] = readAll(bytes, { step: 64 * 1024 });
  assert.ok(frame.body.equals(body));
});

test('encodeFrameParts writes a body after the map, uncopied', () => {
  const body = Buffer.from('hello body');
  const { parts, size } = encodeFrameParts({ type: 'response', call_id: 'c', status: 201, headers: [['a', 'b']], body });
  assert.equal(parts[parts.length - 1], body);
  assert.equal(size, parts.reduce((n, p) => n + p.length, 0));
  for (const length of [0, 1, 255, 256, 65535, 65536, 70000]) {
    const frame = { type: 'response', call_id: 'c', status: 200, headers: [], body: Buffer.alloc(length, 0x61) };
    assert.equal(readAll(encodeFrame(frame))[0].body.length, length);
  }
});

test('several frames in one chunk are all read, in order', () => {
  const frames = ['a', 'b', 'c'].map((id) => ({ type: 'error', call_id: id, error_type: 'E', message: id, trace: '' }));
  const decoded = readAll(Buffer.concat(frames.map((f) => encodeFrame(f))));
  assert.deepEqual(decoded.map((f) => f.call_id), ['a', 'b', 'c']);
});

// Strictness beyond the vectors: the places where @msgpack/msgpack alone would be lenient.
const READY = { type: 'ready', version: 1, runtime: 'x' };
const rawPayload = (bytes) => Buffer.from(bytes);

test('invalid UTF-8 anywhere (a header value, a long str, a key) is malformed', () => {
  const headerValue = msgpack.encode({ ...READY, runtime: 'AAAA' });
  const at = headerValue.indexOf(Buffer.from('AAAA'));
  const bad = Buffer.from(headerValue);
  bad[at + 1] = 0xc3; // a lead byte followed by 'A': not UTF-8
  assert.throws(() => decodePayload(bad), MalformedFrame);

  const long = Buffer.from(msgpack.encode({ ...READY, runtime: 'é'.repeat(200) }));
  long[long.length - 1] = 0xff;
  assert.throws(() => decodePayload(long), MalformedFrame);

  const key = Buffer.from(msgpack.encode({ ...READY, zz: 1 }));
  key[key.indexOf(Buffer.from('zz'))] = 0xfe;
  assert.throws(() => decodePayload(key), MalformedFrame);
  // Valid multi-byte UTF-8 still decodes.
  assert.equal(decodePayload(msgpack.encode({ ...READY, runtime: 'Zoë – 東京 🚀' })).runtime, 'Zoë – 東京 🚀');
});

test('a float where an int belongs is malformed, even an integral one', () => {
  const payload = msgpack.encode({ type: 'response', call_id: 'c', status: 200, headers: [], body: new Uint8Array() });
  const i = payload.indexOf(0xcc); // status 200 as uint8 -> float64 200.0
  const floatStatus = Buffer.concat([payload.subarray(0, i), Buffer.from([0xcb]), Buffer.from(new Float64Array([200]).buffer).reverse(), payload.subarray(i + 2)]);
  assert.throws(() => decodePayload(floatStatus), /'status' must be int, not float/);
  // A float in a key nobody knows is ignored like any unknown value.
  assert.equal(decodePayload(msgpack.encode({ ...READY, extra: 1.5 })).version, 1);
});

test('non-str map keys, nested ext values and bool ints are malformed', () => {
  assert.throws(() => decodePayload(rawPayload([0x82, 0xa4, ...Buffer.from('type'), 0xa5, ...Buffer.from('ready'), 0x01, 0x02])), MalformedFrame);
  assert.throws(() => decodePayload(msgpack.encode({ ...READY, extra: [new Date(0)] })), MalformedFrame);
  assert.throws(() => decodePayload(msgpack.encode({ ...READY, version: true })), /must be int, not boolean/);
  assert.throws(() => decodePayload(msgpack.encode({ ...READY, type: 'constructor' })), /unknown frame type/);
});

test('request params must map str to str; pairs must be pairs of str', () => {
  const req = {
    type: 'request', call_id: 'c', method: 'GET', url: 'u', path: '/', query: [], headers: [],
    body: new Uint8Array(), deadline: 1, app: 'a', route: '/', params: {},
  };
  assert.deepEqual(decodePayload(msgpack.encode(req)).params, {});
  assert.throws(() => decodePayload(msgpack.encode({ ...req, params: { id: 7 } })), MalformedFrame);
  assert.throws(() => decodePayload(msgpack.encode({ ...req, params: [] })), MalformedFrame);
  assert.throws(() => decodePayload(msgpack.encode({ ...req, query: [['a', 'b', 'c']] })), MalformedFrame);
  assert.throws(() => decodePayload(msgpack.encode({ ...req, headers: [['a', 1]] })), MalformedFrame);
});

test('lone surrogates in strings sent are replaced, keeping the frame valid UTF-8', () => {
  const { errorFrame } = require('../lib/codec');
  const bytes = encodeFrame(errorFrame('c', 'E', 'bad \ud800 half', ''));
  assert.equal(readAll(bytes)[0].message, 'bad \ufffd half');
});

test('HOTFN_MAX_FRAME_SIZE: positive integers only, default otherwise', () => {
  assert.equal(maxFrameSizeFromEnv({}), DEFAULT_MAX_FRAME_SIZE);
  assert.equal(maxFrameSizeFromEnv({ HOTFN_MAX_FRAME_SIZE: '1024' }), 1024);
  for (const bad of ['', '0', '-5', '1.5', 'abc', '99999999999']) {
    assert.equal(maxFrameSizeFromEnv({ HOTFN_MAX_FRAME_SIZE: bad }), DEFAULT_MAX_FRAME_SIZE, bad);
  }
});
