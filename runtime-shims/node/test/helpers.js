'use strict';
// Shared by the tests: drive bin/hotfn-node.js in a child process, as hotfn does.

const { spawn } = require('node:child_process');
const path = require('node:path');
const { FrameReader, decodePayload, encodeFrame } = require('../lib/codec');

const SHIM_DIR = path.resolve(__dirname, '..');
const BIN = path.join(SHIM_DIR, 'bin', 'hotfn-node.js');
const CONFORMANCE_DIR = path.join(SHIM_DIR, 'conformance');
const FIXTURES_DIR = path.join(__dirname, 'fixtures');

/** Environment for a child: the test process's, minus anything that would change the mode. */
function childEnv(extra) {
  const env = { ...process.env };
  for (const key of Object.keys(env)) {
    if (/^(HOTFN_|HEADER_|PARAM_)/.test(key) || ['METHOD', 'REQUEST_URL', 'ROUTE', 'APP_NAME', 'CALL_ID', 'DEADLINE'].includes(key)) {
      delete env[key];
    }
  }
  return { ...env, ...extra };
}

let nextCallId = 1;
const liveChildren = new Set();

/** Kill children a failed test left running (they would keep the test process alive). */
function killAll() {
  for (const child of liveChildren) child.kill('SIGKILL');
}

function requestFrame(overrides = {}) {
  return {
    type: 'request',
    call_id: `call-${nextCallId++}`,
    method: 'POST',
    url: 'http://localhost:8080/r/demo/hello?name=ada',
    path: '/hello',
    query: [['name', 'ada']],
    headers: [['host', 'localhost:8080']],
    body: Buffer.alloc(0),
    deadline: Date.now() + 30000,
    app: 'demo',
    route: '/hello',
    params: {},
    ...overrides,
  };
}

/** A hot shim in a child process: send frames, await frames, await its exit. */
class HotChild {
  constructor({ functionDir = CONFORMANCE_DIR, handler, env = {} } = {}) {
    const extra = { HOTFN_FORMAT: 'hot', HOTFN_FUNCTION_DIR: functionDir, ...env };
    if (handler) extra.HOTFN_HANDLER = handler;
    this.child = spawn(process.execPath, [BIN], { env: childEnv(extra), stdio: ['pipe', 'pipe', 'pipe'] });
    this.reader = new FrameReader(Number(env.HOTFN_MAX_FRAME_SIZE) || undefined);
    this.frames = [];
    this.waiters = [];
    this.stderr = '';
    this.stdoutEnded = false;
    this.child.stdout.on('data', (chunk) => {
      this.reader.push(chunk);
      for (let payload; (payload = this.reader.next()) !== null; ) {
        this.frames.push(decodePayload(payload));
      }
      this.wake();
    });
    this.child.stdout.on('end', () => {
      this.stdoutEnded = true;
      this.reader.end();
      this.wake();
    });
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (text) => {
      this.stderr += text;
    });
    // EPIPE when a test writes to a child that already exited on purpose.
    this.child.stdin.on('error', () => {});
    liveChildren.add(this.child);
    this.exited = new Promise((resolve) => {
      this.child.on('close', (code, signal) => {
        liveChildren.delete(this.child);
        resolve({ code, signal, stderr: this.stderr });
      });
    });
  }

  wake() {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /** The next frame the child wrote; rejects if its stdout ends first. */
  async nextFrame() {
    while (this.frames.length === 0) {
      if (this.stdoutEnded) {
        throw new Error(`child stdout ended without a frame; stderr:\n${this.stderr}`);
      }
      await new Promise((resolve) => this.waiters.push(resolve));
    }
    return this.frames.shift();
  }

  async ready() {
    const frame = await this.nextFrame();
    if (frame.type !== 'ready') throw new Error(`expected ready, got ${frame.type}`);
    return frame;
  }

  sendRaw(bytes) {
    this.child.stdin.write(bytes);
  }

  send(frame) {
    this.sendRaw(encodeFrame(frame, 0xffffffff));
  }

  /** Send a request frame and await the answer. */
  async call(overrides = {}) {
    const frame = requestFrame(overrides);
    this.send(frame);
    const answer = await this.nextFrame();
    if (answer.call_id !== frame.call_id) {
      throw new Error(`answer for ${answer.call_id}, expected ${frame.call_id}`);
    }
    return answer;
  }

  close() {
    this.child.stdin.end();
    return this.exited;
  }

  kill() {
    this.child.kill('SIGKILL');
    return this.exited;
  }
}

/** Run the shim once in cold mode; resolves with {code, stdout (Buffer), stderr}. */
function runCold({ functionDir = CONFORMANCE_DIR, handler, env = {}, stdin = Buffer.alloc(0) } = {}) {
  const extra = { HOTFN_FORMAT: 'default', HOTFN_FUNCTION_DIR: functionDir, ...env };
  if (handler) extra.HOTFN_HANDLER = handler;
  const child = spawn(process.execPath, [BIN], { env: childEnv(extra), stdio: ['pipe', 'pipe', 'pipe'] });
  const stdout = [];
  let stderr = '';
  child.stdout.on('data', (chunk) => stdout.push(chunk));
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (text) => {
    stderr += text;
  });
  child.stdin.on('error', () => {});
  child.stdin.end(stdin);
  liveChildren.add(child);
  return new Promise((resolve) => {
    child.on('close', (code) => {
      liveChildren.delete(child);
      resolve({ code, stdout: Buffer.concat(stdout), stderr });
    });
  });
}

module.exports = { killAll, HotChild, runCold, requestFrame, childEnv, BIN, CONFORMANCE_DIR, FIXTURES_DIR, SHIM_DIR };
