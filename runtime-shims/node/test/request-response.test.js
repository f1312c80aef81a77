'use strict';
// The author-facing pieces in-process: request helpers, env parsing, response rules, loop.

const test = require('node:test');
const assert = require('node:assert/strict');
const { PassThrough } = require('node:stream');
const { Request, requestFromEnv, splitUrl, appPath } = require('../lib/request');
const { toResponse, ResponseError } = require('../lib/response');
const { serveHot } = require('../lib/hot');
const { FrameReader, decodePayload, encodeFrame } = require('../lib/codec');

const request = (over = {}) =>
  new Request({
    method: 'GET', url: 'u', path: '/', query: [['a', '1'], ['a', '2']],
    headers: [['accept', 'x'], ['x-multi', '1'], ['X-Multi', '2']], body: Buffer.from('{"k": 1}'),
    callId: 'c', deadline: 0, app: 'a', route: '/', params: {}, ...over,
  });

test('header() is case-insensitive and returns the first value; headerValues() all', () => {
  const r = request();
  assert.equal(r.header('ACCEPT'), 'x');
  assert.equal(r.header('x-multi'), '1');
  assert.equal(r.header('missing'), undefined);
  assert.equal(r.header('missing', 'dflt'), 'dflt');
  assert.deepEqual(r.headerValues('x-MULTI'), ['1', '2']);
  assert.equal(r.queryParam('a'), '1');
  assert.equal(r.text(), '{"k": 1}');
  assert.deepEqual(r.json(), { k: 1 });
  assert.equal(r.remainingMs(), Infinity);
  assert.ok(request({ deadline: Date.now() + 5000 }).remainingMs() > 4000);
});

test('URLs: path and query verbatim, /r/<app> stripped', () => {
  assert.deepEqual(splitUrl('http://h:1/r/app/x/../y?q=1#frag'), { path: '/r/app/x/../y', query: 'q=1' });
  assert.deepEqual(splitUrl('http://h'), { path: '/', query: '' });
  assert.deepEqual(splitUrl('/plain/path?x'), { path: '/plain/path', query: 'x' });
  assert.equal(appPath('/r/app/x', 'app'), '/x');
  assert.equal(appPath('/r/app', 'app'), '/');
  assert.equal(appPath('/r/apple/x', 'app'), '/r/apple/x');
  assert.equal(appPath('/other', 'app'), '/other');
});

test('requestFromEnv: defaults when the environment says nothing', () => {
  const r = requestFromEnv({}, Buffer.alloc(0));
  assert.deepEqual(
    [r.method, r.url, r.path, r.query, r.headers, r.callId, r.deadline, r.app, r.route, r.params],
    ['GET', '', '/', [], [], '', 0, '', '', {}],
  );
  assert.equal(requestFromEnv({ DEADLINE: 'soon' }, Buffer.alloc(0)).deadline, 0);
  assert.deepEqual(requestFromEnv({ HEADER_X_A_B: 'v', PARAM_USER_ID: '9' }, Buffer.alloc(0)).params, { user_id: '9' });
  assert.deepEqual(requestFromEnv({ HEADER_X_A_B: 'v' }, Buffer.alloc(0)).headers, [['x-a-b', 'v']]);
});

test('toResponse: the documented return kinds', () => {
  const json = (v) => Buffer.from(JSON.stringify(v));
  assert.deepEqual(toResponse('s'), { status: 200, headers: [['content-type', 'text/plain; charset=utf-8']], body: Buffer.from('s') });
  assert.deepEqual(toResponse(undefined), { status: 200, headers: [], body: Buffer.alloc(0) });
  assert.deepEqual(toResponse([1]), { status: 200, headers: [['content-type', 'application/json']], body: json([1]) });
  assert.deepEqual(toResponse(new ArrayBuffer(2)).body, Buffer.alloc(2));
  assert.deepEqual(toResponse(new Uint16Array([1])).body, Buffer.from([1, 0]));
  assert.deepEqual(toResponse({ body: null }), { status: 200, headers: [], body: Buffer.alloc(0) });
  assert.deepEqual(toResponse({ status: 204 }), { status: 204, headers: [], body: Buffer.alloc(0) });
  // An author-named content type wins over the implied one.
  assert.deepEqual(toResponse({ headers: { 'Content-Type': 'text/html' }, body: '<p>' }).headers, [['Content-Type', 'text/html']]);
  assert.deepEqual(toResponse({ headers: [['x', null], ['y', undefined]] }).headers, []);
  // Not only status/headers/body: plain data, sent as JSON.
  assert.deepEqual(toResponse({ status: 'ok', count: 1 }).body, json({ status: 'ok', count: 1 }));
  for (const bad of [5, true, Symbol('s'), () => 1, new Map(), { status: 600 }, { status: 200.5 }, { headers: 'x' }, { headers: [['a']] }]) {
    assert.throws(() => toResponse(bad), ResponseError);
  }
});

test('serveHot in-process: a sync handler, frames in, frames out', async () => {
  const input = new PassThrough();
  const out = new FrameReader();
  const frames = [];
  const write = (parts) => {
    out.push(Buffer.concat(parts)); // parts are only valid during the call: copy
    for (let p; (p = out.next()) !== null; ) frames.push(decodePayload(p));
  };
  const done = serveHot((req) => `${req.method} ${req.body}`, { input, write, maxFrameSize: 1 << 20, runtime: 'test' });
  const frame = {
    type: 'request', call_id: 'c1', method: 'GET', url: 'u', path: '/', query: [], headers: [],
    body: Buffer.from('b'), deadline: 1, app: 'a', route: '/', params: {},
  };
  // Two frames in one chunk, then EOF.
  input.end(Buffer.concat([encodeFrame(frame), encodeFrame({ ...frame, call_id: 'c2', method: 'PUT' })]));
  assert.equal(await done, 0);
  assert.deepEqual(frames.map((f) => [f.type, f.call_id, f.body && f.body.toString()]), [
    ['ready', undefined, undefined],
    ['response', 'c1', 'GET b'],
    ['response', 'c2', 'PUT b'],
  ]);
});
