'use strict';
// Hot mode, end to end through a child process running bin/hotfn-node.js (as in the image).

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { HotChild, FIXTURES_DIR, killAll } = require('./helpers');

test.after(killAll);
const { DEFAULT_MAX_FRAME_SIZE } = require('../lib/codec');

const header = (frame, name) => frame.headers.filter(([k]) => k === name).map(([, v]) => v);

test('sends a ready frame first, then serves until stdin closes, exit 0', async () => {
  const child = new HotChild();
  const ready = await child.ready();
  assert.equal(ready.version, 1);
  // The shim's one version string is package.json's (what npm publishes).
  const { version } = require('../package.json');
  assert.match(version, /^\d+\.\d+\.\d+$/);
  assert.equal(ready.runtime, `node/${process.versions.node} hotfn-node/${version}`);
  const answer = await child.call({ body: Buffer.from('hi') });
  assert.equal(answer.type, 'response');
  assert.equal(answer.body.toString(), 'hi');
  const { code, stderr } = await child.close();
  assert.equal(code, 0, stderr);
});

test('stdin closed before any request: exit 0', async () => {
  const child = new HotChild();
  await child.ready();
  assert.equal((await child.close()).code, 0);
});

test('echo: every byte value 0-255, method, call id', async () => {
  const child = new HotChild();
  await child.ready();
  const body = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  const answer = await child.call({ body, method: 'PUT', call_id: 'call-bytes' });
  assert.equal(answer.status, 200);
  assert.ok(answer.body.equals(body));
  assert.deepEqual(answer.headers.slice(0, 2), [['x-method', 'PUT'], ['x-call-id', 'call-bytes']]);
  await child.close();
});

test('echo: a 5 MiB body, several times in a row', async () => {
  const child = new HotChild();
  await child.ready();
  const body = crypto.randomBytes(5 * 1024 * 1024);
  for (let i = 0; i < 3; i++) {
    const answer = await child.call({ body });
    assert.equal(answer.type, 'response');
    assert.ok(answer.body.equals(body));
  }
  assert.equal((await child.close()).code, 0);
});

test('echo: repeated and non-ASCII headers keep order and values', async () => {
  const child = new HotChild();
  await child.ready();
  const echoed = [['x-echo-a', '1'], ['x-echo-b', 'zwei'], ['x-echo-a', '2'], ['x-echo-name', 'Zoë – 東京']];
  const answer = await child.call({ headers: [['host', 'h'], ...echoed, ['accept', '*/*']] });
  assert.deepEqual(answer.headers.slice(2), echoed);
  await child.close();
});

test('status and headers from a response object', async () => {
  const child = new HotChild();
  await child.ready();
  const answer = await child.call({ headers: [['x-hotfn-test', 'status'], ['x-status', '418']] });
  assert.equal(answer.status, 418);
  assert.deepEqual(header(answer, 'x-custom'), ['yes']);
  assert.equal(answer.body.toString(), 'status');
  await child.close();
});

test('a throwing handler gives an error frame and the loop goes on', async () => {
  const child = new HotChild();
  await child.ready();
  const error = await child.call({ headers: [['x-hotfn-test', 'raise']] });
  assert.equal(error.type, 'error');
  assert.equal(error.error_type, 'Error');
  assert.equal(error.message, 'boom');
  assert.match(error.trace, /func\.js/);
  const next = await child.call({ body: Buffer.from('still here') });
  assert.equal(next.body.toString(), 'still here');
  assert.equal((await child.close()).code, 0);
});

test('rejections, non-Error throws and unsendable results are error frames too', async () => {
  const child = new HotChild({ functionDir: FIXTURES_DIR, handler: 'kinds.js' });
  await child.ready();
  const kind = (k) => child.call({ headers: [['x-kind', k]] });
  let e = await kind('reject');
  assert.deepEqual([e.type, e.error_type, e.message], ['error', 'TypeError', 'rejected']);
  e = await kind('sync-throw');
  assert.deepEqual([e.error_type, e.message], ['RangeError', 'sync']);
  e = await kind('custom-error');
  assert.deepEqual([e.error_type, e.message], ['NotFound', 'nope']);
  e = await kind('throw-string');
  assert.deepEqual([e.error_type, e.message, e.trace], ['Error', 'non-Error value thrown: just a string', '']);
  e = await kind('number');
  assert.deepEqual([e.type, e.error_type], ['error', 'ResponseError']);
  e = await kind('bad-status');
  assert.match(e.message, /status must be an integer from 100 to 599/);
  assert.equal((await kind('string')).body.toString(), 'héllo');
  assert.equal((await child.close()).code, 0);
});

test('every kind of return value becomes the right response', async () => {
  const child = new HotChild({ functionDir: FIXTURES_DIR, handler: 'kinds.js' });
  await child.ready();
  const kind = (k, extra = {}) => child.call({ ...extra, headers: [['x-kind', k], ...(extra.headers || [])] });
  let r = await kind('string');
  assert.deepEqual([r.status, r.headers, r.body.toString()], [200, [['content-type', 'text/plain; charset=utf-8']], 'héllo']);
  r = await kind('buffer');
  assert.deepEqual([r.status, r.headers, [...r.body]], [200, [], [1, 2, 3]]);
  assert.deepEqual([...(await kind('uint8array')).body], [4, 5]);
  for (const k of ['undefined', 'null']) {
    r = await kind(k);
    assert.deepEqual([r.type, r.status, r.headers, r.body.length], ['response', 200, [], 0]);
  }
  r = await kind('object');
  assert.deepEqual(r.headers, [['content-type', 'application/json']]);
  assert.deepEqual(JSON.parse(r.body), { hello: 'world', n: [1, 2] });
  r = await kind('response-json');
  assert.equal(r.status, 201);
  assert.deepEqual(r.headers, [['x-a', '1'], ['x-a', '2'], ['content-type', 'application/json']]);
  assert.deepEqual(JSON.parse(r.body), { ok: true });
  r = await kind('response-headers-object');
  assert.deepEqual([r.status, r.headers], [202, [['set-cookie', 'a=1'], ['set-cookie', 'b=2'], ['x-n', '5'], ['content-type', 'text/plain; charset=utf-8']]]);
  r = await kind('lone-surrogate');
  assert.deepEqual(r.headers, [['x-s', 'a\ufffdb'], ['content-type', 'text/plain; charset=utf-8']]);
  await child.close();
});

test('the request object: fields, header(), text(), json()', async () => {
  const child = new HotChild({ functionDir: FIXTURES_DIR, handler: 'kinds.js' });
  await child.ready();
  const r = await child.call({
    call_id: 'call-req', method: 'PATCH', url: 'http://h/r/demo/users/7?tag=a&tag=b', path: '/users/7',
    query: [['tag', 'a'], ['tag', 'b']], headers: [['x-kind', 'request'], ['x-kind', 'second']],
    body: Buffer.from('{"a": [1, "ü"]}'), deadline: 2 ** 40, app: 'demo', route: '/users/:id', params: { id: '7' },
  });
  assert.deepEqual(JSON.parse(r.body), {
    method: 'PATCH', url: 'http://h/r/demo/users/7?tag=a&tag=b', path: '/users/7',
    query: [['tag', 'a'], ['tag', 'b']], headers: [['x-kind', 'request'], ['x-kind', 'second']],
    callId: 'call-req', deadline: 2 ** 40, app: 'demo', route: '/users/:id', params: { id: '7' },
    header: 'request', text: '{"a": [1, "ü"]}', json: { a: [1, 'ü'] },
  });
  await child.close();
});

test('async handlers: a sleeping call completes before the next one starts', async () => {
  const child = new HotChild();
  await child.ready();
  const started = Date.now();
  const answer = await child.call({ headers: [['x-hotfn-test', 'sleep'], ['x-sleep-ms', '100']], body: Buffer.from('z') });
  assert.ok(Date.now() - started >= 100);
  assert.equal(answer.body.toString(), 'z');
  await child.close();
});

test('EOF while a call runs: the answer is still sent, then exit 0', async () => {
  const child = new HotChild();
  await child.ready();
  const frame = { headers: [['x-hotfn-test', 'sleep'], ['x-sleep-ms', '100']], body: Buffer.from('late') };
  const answer = child.call(frame);
  child.child.stdin.end();
  assert.equal((await answer).body.toString(), 'late');
  assert.equal((await child.exited).code, 0);
});

test('console.log and process.stdout never corrupt frames; they go to stderr', async () => {
  const child = new HotChild({ functionDir: FIXTURES_DIR, handler: 'noisy.js' });
  await child.ready();
  for (let i = 0; i < 3; i++) {
    const answer = await child.call({ body: Buffer.from(`call ${i}`) });
    assert.equal(answer.body.toString(), `call ${i}`);
  }
  const { code, stderr } = await child.close();
  assert.equal(code, 0);
  for (const line of ['noise at load', 'raw stdout write at load', 'console.log noise', 'console.info noise',
    'console.debug noise', "dir: 'noise'", 'group noise', 'process.stdout.write noise']) {
    assert.ok(stderr.includes(line), `stderr lacks ${line}`);
  }
});

test('conformance print/stderr behaviours log and still echo', async () => {
  const child = new HotChild();
  await child.ready();
  for (const which of ['print', 'stderr']) {
    const answer = await child.call({ headers: [['x-hotfn-test', which]], body: Buffer.from(which) });
    assert.equal(answer.body.toString(), which);
  }
  const { stderr } = await child.close();
  assert.match(stderr, /^noise$/m);
  assert.match(stderr, /^log line$/m);
});

test('an oversized frame is refused on its length prefix: exit non-zero', async () => {
  const child = new HotChild({ env: { HOTFN_MAX_FRAME_SIZE: '1024' } });
  await child.ready();
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32BE(1025);
  child.sendRaw(prefix); // no payload, stdin left open: the shim must not wait for one
  const { code, stderr } = await child.exited;
  assert.notEqual(code, 0);
  assert.match(stderr, /exceeds the 1024-byte limit/);
});

test('the default limit is 6 MiB', async () => {
  const child = new HotChild();
  await child.ready();
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32BE(DEFAULT_MAX_FRAME_SIZE + 1);
  child.sendRaw(prefix);
  const { code, stderr } = await child.exited;
  assert.notEqual(code, 0);
  assert.match(stderr, /exceeds the 6291456-byte limit/);
});

test('a response over the limit becomes an error frame; the loop goes on', async () => {
  const child = new HotChild({ functionDir: FIXTURES_DIR, handler: 'kinds.js', env: { HOTFN_MAX_FRAME_SIZE: '4096' } });
  await child.ready();
  const error = await child.call({ headers: [['x-kind', 'big'], ['x-size', '5000']] });
  assert.deepEqual([error.type, error.error_type], ['error', 'FrameTooLarge']);
  assert.match(error.message, /exceeds the 4096-byte limit/);
  const ok = await child.call({ headers: [['x-kind', 'big'], ['x-size', '3000']] });
  assert.equal(ok.body.length, 3000);
  assert.equal((await child.close()).code, 0);
});

test('malformed frames end the process with a non-zero status', async (t) => {
  const cases = {
    'not msgpack': Buffer.from([0, 0, 0, 2, 0xc1, 0xc1]),
    'length zero': Buffer.from([0, 0, 0, 0]),
    'a ready frame instead of a request': require('../lib/codec').encodeFrame({ type: 'ready', version: 1, runtime: 'x' }),
    'request missing call_id': (() => {
      const msgpack = require('@msgpack/msgpack');
      const payload = Buffer.from(msgpack.encode({ type: 'request', method: 'GET' }));
      const prefix = Buffer.alloc(4);
      prefix.writeUInt32BE(payload.length);
      return Buffer.concat([prefix, payload]);
    })(),
  };
  for (const [name, bytes] of Object.entries(cases)) {
    await t.test(name, async () => {
      const child = new HotChild();
      await child.ready();
      child.sendRaw(bytes);
      const { code, stderr } = await child.exited;
      assert.notEqual(code, 0);
      assert.match(stderr, /hotfn-node: protocol error/);
    });
  }
});

test('stdin ending inside a frame: exit non-zero', async () => {
  const child = new HotChild();
  await child.ready();
  child.sendRaw(Buffer.from([0, 0, 0, 100, 0x8c]));
  const { code, stderr } = await child.close();
  assert.notEqual(code, 0);
  assert.match(stderr, /stream ended inside a frame/);
});

test('EOF exits even when the function keeps timers alive', async () => {
  const child = new HotChild({ functionDir: FIXTURES_DIR, handler: 'background.js' });
  await child.ready();
  assert.equal((await child.call({ body: Buffer.from('x') })).body.toString(), 'x');
  assert.equal((await child.close()).code, 0);
});

test('exit behaviour: process.exit(3) in a handler ends the container with 3', async () => {
  const child = new HotChild();
  await child.ready();
  child.send(require('./helpers').requestFrame({ headers: [['x-hotfn-test', 'exit']] }));
  assert.equal((await child.exited).code, 3);
});

test('a module that fails to load: stderr, exit 1, no ready frame', async () => {
  for (const handler of ['broken.js', 'no-handler.js', 'missing.js']) {
    const child = new HotChild({ functionDir: FIXTURES_DIR, handler });
    const { code, stderr } = await child.exited;
    assert.equal(code, 1, handler);
    assert.equal(child.frames.length, 0);
    assert.match(stderr, /hotfn-node: /);
  }
  const { stderr } = await new HotChild({ functionDir: FIXTURES_DIR, handler: 'broken.js' }).exited;
  assert.match(stderr, /broken at load time/);
});

test('handler forms: module.exports = fn, and ES modules', async () => {
  for (const [handler, expected] of [['sync.js', 'sync POST'], ['esm.mjs', 'esm /hello']]) {
    const child = new HotChild({ functionDir: FIXTURES_DIR, handler });
    await child.ready();
    assert.equal((await child.call()).body.toString(), expected);
    await child.close();
  }
});

test('a hostile thrown object still gives an error frame', async () => {
  const child = new HotChild({ functionDir: FIXTURES_DIR, handler: 'hostile.js' });
  await child.ready();
  const e = await child.call();
  assert.deepEqual([e.type, e.message], ['error', '<error could not be described>']);
  assert.equal((await child.close()).code, 0);
});
