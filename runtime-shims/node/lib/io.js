'use strict';
/** The process's standard streams, arranged so user output can never reach hotfn's stdout. */

const fs = require('node:fs');

/**
 * Point the language's standard output at stderr; the real fd 1 is then written only by the
 * shim, with writeAllSync.
 *
 * process.stdout is a lazy getter: replacing it before anything has touched it means Node never
 * opens a stream on fd 1, so console.log, console.table, process.stdout.write and anything a
 * library does with process.stdout all land in stderr (the call's log). console.log, info and
 * debug are also rebound explicitly, in case the console bound its stream earlier.
 * Must run before the user's module is loaded.
 *
 * Not covered (Node cannot dup2): native code writing to fd 1 and child processes spawned with
 * stdio 'inherit'; give children stdio ['pipe', 2, 2] or 'pipe' instead.
 */
function redirectStdoutToStderr() {
  const stderr = process.stderr;
  Object.defineProperty(process, 'stdout', {
    configurable: true,
    enumerable: true,
    get: () => stderr,
  });
  // console.error writes to the console's stderr stream: the same target, same formatting.
  const toStderr = console.error.bind(console);
  console.log = toStderr;
  console.info = toStderr;
  console.debug = toStderr;
}

/** Sleep without the event loop: only used while a write to a non-blocking fd would block. */
const waitCell = new Int32Array(new SharedArrayBuffer(4));
function pause(ms) {
  Atomics.wait(waitCell, 0, 0, ms);
}

/**
 * Write every byte of `buffers` to `fd`, synchronously and in order.
 *
 * Synchronous on purpose: a frame is written whole before the next call starts, without
 * queueing in a stream, and nothing is lost when the process exits right after. fd 1 is
 * normally a blocking pipe (the shim never opens a stream on it); EAGAIN is still handled in
 * case whoever started us handed over a non-blocking one.
 */
function writeAllSync(fd, buffers) {
  let pending = buffers.filter((b) => b.length > 0);
  while (pending.length > 0) {
    let written;
    try {
      written =
        pending.length === 1
          ? fs.writeSync(fd, pending[0], 0, pending[0].length)
          : fs.writevSync(fd, pending);
    } catch (err) {
      if (err.code === 'EAGAIN') {
        pause(1);
        continue;
      }
      throw err;
    }
    // Drop what was written; a short write leaves the rest of a buffer for the next round.
    while (written > 0) {
      const head = pending[0];
      if (written >= head.length) {
        written -= head.length;
        pending.shift();
      } else {
        pending[0] = head.subarray(written);
        written = 0;
      }
    }
  }
}

/** Write a log line to stderr synchronously (the process may exit right after). */
function logError(message) {
  try {
    writeAllSync(2, [Buffer.from(message.endsWith('\n') ? message : `${message}\n`, 'utf8')]);
  } catch {
    // stderr gone: nothing left to tell anyone.
  }
}

/** All of a readable stream, as one Buffer (chunks joined once: O(n)). */
function readAll(stream) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    stream.on('data', (chunk) => {
      chunks.push(chunk);
      size += chunk.length;
    });
    stream.once('end', () => resolve(Buffer.concat(chunks, size)));
    stream.once('error', reject);
  });
}

module.exports = { redirectStdoutToStderr, writeAllSync, logError, readAll };
