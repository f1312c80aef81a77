'use strict';
// Many calls per container (protocol 2.2.1): raw frames to a child, answers matched by call id.

const test = require('node:test');
const assert = require('node:assert/strict');
const { HotChild, FIXTURES_DIR, requestFrame, killAll } = require('./helpers');
const { concurrencyFromEnv } = require('../lib/hot');

test.after(killAll);

const sleepy = (concurrency) =>
  new HotChild({ functionDir: FIXTURES_DIR, handler: 'sleepy.js', env: { HOTFN_CONCURRENCY: String(concurrency) } });

const sleepFrame = (callId, ms, extra = []) =>
  requestFrame({ call_id: callId, body: Buffer.from(`body ${callId}`), headers: [['x-sleep-ms', String(ms)], ...extra] });

/** Sends every frame at once, then reads `count` answers; [answers by arrival, elapsed ms]. */
async function burst(child, frames, count = frames.length) {
  const start = process.hrtime.bigint();
  for (const frame of frames) child.send(frame);
  const answers = [];
  for (let i = 0; i < count; i++) answers.push(await child.nextFrame());
  return [answers, Number(process.hrtime.bigint() - start) / 1e6];
}

test('16 calls in flight: answered in about one wait, by call id, in any order', async () => {
  const child = sleepy(16);
  assert.equal((await child.ready()).concurrency, 16);
  // call-0 waits longest: it must come back after the calls sent after it.
  const frames = Array.from({ length: 16 }, (_, i) => sleepFrame(`c0-${i}`, i === 0 ? 600 : 50));
  const [answers] = await burst(child, frames);
  assert.equal(answers[15].call_id, 'c0-0');
  assert.deepEqual(new Set(answers.map((a) => a.call_id)), new Set(frames.map((f) => f.call_id)));
  for (const a of answers) assert.equal(a.body.toString(), `body ${a.call_id}`);
  const [, elapsed] = await burst(child, Array.from({ length: 16 }, (_, i) => sleepFrame(`c1-${i}`, 50)));
  // One at a time: >= 800 ms.
  assert.ok(elapsed < 400, `16 calls of 50 ms took ${elapsed} ms`);
  assert.equal((await child.close()).code, 0);
});

test('concurrency 1 (the default) keeps one call at a time, in order', async () => {
  const child = new HotChild({ functionDir: FIXTURES_DIR, handler: 'sleepy.js' });
  assert.equal((await child.ready()).concurrency, undefined);
  const frames = [sleepFrame('a', 40), sleepFrame('b', 1)];
  const [answers] = await burst(child, frames);
  assert.deepEqual(answers.map((a) => a.call_id), ['a', 'b']);
  await child.close();
});

test('no more than `concurrency` calls run at once', async () => {
  const child = sleepy(4);
  await child.ready();
  const [, elapsed] = await burst(child, Array.from({ length: 8 }, (_, i) => sleepFrame(`q${i}`, 50)));
  assert.ok(elapsed >= 95, `8 calls of 50 ms, 4 at a time, took only ${elapsed} ms`);
  await child.close();
});

test('EOF with calls in flight: all answered, then exit 0', async () => {
  const child = sleepy(4);
  await child.ready();
  for (let i = 0; i < 4; i++) child.send(sleepFrame(`e${i}`, 30));
  child.child.stdin.end();
  const ids = new Set();
  for (let i = 0; i < 4; i++) ids.add((await child.nextFrame()).call_id);
  assert.equal(ids.size, 4);
  assert.equal((await child.exited).code, 0);
});

test('a crash mid-flight ends the process; what came out is whole frames', async () => {
  const child = sleepy(16);
  await child.ready();
  for (let i = 0; i < 16; i++) {
    child.send(sleepFrame(`x${i}`, i === 8 ? 5 : 5 + (i % 3) * 20, i === 8 ? [['x-kind', 'exit']] : []));
  }
  const { code } = await child.exited;
  assert.equal(code, 3);
  // The helper's reader decodes whatever arrived: a torn frame would have thrown or be left over.
  assert.ok(child.frames.length < 16);
  for (const f of child.frames) assert.equal(f.type, 'response');
  assert.equal(child.reader.next(), null);
});

test('HOTFN_CONCURRENCY: a positive int, else 1', () => {
  assert.equal(concurrencyFromEnv({}), 1);
  assert.equal(concurrencyFromEnv({ HOTFN_CONCURRENCY: ' 16 ' }), 16);
  for (const bad of ['0', '-1', '1.5', 'lots', '99999']) assert.equal(concurrencyFromEnv({ HOTFN_CONCURRENCY: bad }), 1, bad);
});
