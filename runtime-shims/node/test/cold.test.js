'use strict';
// Cold mode, end to end: environment + stdin in, body on stdout, exit status.

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { runCold, FIXTURES_DIR, killAll } = require('./helpers');

test.after(killAll);

const callEnv = {
  METHOD: 'POST',
  REQUEST_URL: 'http://localhost:8080/r/demo/users/7?tag=a&tag=b&q=a%20b+c&empty',
  ROUTE: '/users/:id',
  APP_NAME: 'demo',
  CALL_ID: 'cold-1',
  DEADLINE: '1764284400000',
  PARAM_ID: '7',
  HEADER_X_ECHO_A: '1, 2',
  HEADER_CONTENT_TYPE: 'application/octet-stream',
  CONFORMANCE_CONFIG: 'configured',
};

test('echo: the body on stdout, byte for byte; exit 0', async () => {
  const body = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  const { code, stdout, stderr } = await runCold({ env: callEnv, stdin: body });
  assert.equal(code, 0, stderr);
  assert.ok(stdout.equals(body));
});

test('echo: a 5 MiB body', async () => {
  const body = crypto.randomBytes(5 * 1024 * 1024);
  const { code, stdout } = await runCold({ env: callEnv, stdin: body });
  assert.equal(code, 0);
  assert.ok(stdout.equals(body));
});

test('the request is rebuilt from the environment', async () => {
  const { code, stdout } = await runCold({ env: { ...callEnv, HEADER_X_HOTFN_TEST: 'info' }, stdin: Buffer.from('abc') });
  assert.equal(code, 0);
  const info = JSON.parse(stdout);
  assert.deepEqual(info, {
    method: 'POST',
    url: callEnv.REQUEST_URL,
    path: '/users/7',
    query: [['tag', 'a'], ['tag', 'b'], ['q', 'a b c'], ['empty', '']],
    headers: info.headers, // order follows the environment: checked as a set below
    app: 'demo',
    route: '/users/:id',
    params: { id: '7' },
    call_id: 'cold-1',
    deadline: 1764284400000,
    body_length: 3,
    config_value: 'configured',
  });
  assert.deepEqual(
    new Map(info.headers),
    new Map([['x-echo-a', '1, 2'], ['content-type', 'application/octet-stream'], ['x-hotfn-test', 'info']]),
  );
});

test('console.log goes to stderr, never into the body', async () => {
  const { code, stdout, stderr } = await runCold({ env: { ...callEnv, HEADER_X_HOTFN_TEST: 'print' }, stdin: Buffer.from('body') });
  assert.equal(code, 0);
  assert.equal(stdout.toString(), 'body');
  assert.match(stderr, /^noise$/m);
  const noisy = await runCold({ functionDir: FIXTURES_DIR, handler: 'noisy.js', env: callEnv, stdin: Buffer.from('quiet') });
  assert.equal(noisy.stdout.toString(), 'quiet');
});

test('a throwing handler: message on stderr, empty stdout, exit 1', async () => {
  const { code, stdout, stderr } = await runCold({ env: { ...callEnv, HEADER_X_HOTFN_TEST: 'raise' } });
  assert.equal(code, 1);
  assert.equal(stdout.length, 0);
  assert.match(stderr, /Error: boom/);
});

test('status and headers are not part of a cold answer: only the body', async () => {
  const { code, stdout } = await runCold({ env: { ...callEnv, HEADER_X_HOTFN_TEST: 'status', HEADER_X_STATUS: '404' } });
  assert.equal(code, 0);
  assert.equal(stdout.toString(), 'status');
});

test('exit behaviour: exit status 3', async () => {
  const { code } = await runCold({ env: { ...callEnv, HEADER_X_HOTFN_TEST: 'exit' } });
  assert.equal(code, 3);
});

test('without HOTFN_FORMAT at all, the shim runs cold', async () => {
  const { code, stdout } = await runCold({ env: { HOTFN_FORMAT: '' }, stdin: Buffer.from('plain') });
  assert.equal(code, 0);
  assert.equal(stdout.toString(), 'plain');
});

test('a module that fails to load: exit 1', async () => {
  const { code, stderr } = await runCold({ functionDir: FIXTURES_DIR, handler: 'broken.js' });
  assert.equal(code, 1);
  assert.match(stderr, /broken at load time/);
});

test('an unsendable result: exit 1', async () => {
  const { code, stderr } = await runCold({ functionDir: FIXTURES_DIR, handler: 'kinds.js', env: { HEADER_X_KIND: 'number' } });
  assert.equal(code, 1);
  assert.match(stderr, /ResponseError/);
});

test('a handler promise that can never settle: exit 1, not a silent empty success', async () => {
  const { code, stdout, stderr } = await runCold({ functionDir: FIXTURES_DIR, handler: 'never.js' });
  assert.equal(code, 1);
  assert.equal(stdout.length, 0);
  assert.match(stderr, /never settled/);
});
