'use strict';
/** Hot mode (protocol §2): one ready frame, then one answer per request frame until EOF. */

const {
  ProtocolError,
  FrameTooLarge,
  MalformedFrame,
  FrameReader,
  decodePayload,
  encodeFrameParts,
  readyFrame,
  responseFrame,
  errorFrame,
} = require('./codec');
const { requestFromFrame } = require('./request');
const { toResponse } = require('./response');
const fs = require('node:fs');
const { logError, writeAllSync } = require('./io');

// Generous for a log, small next to the 6 MiB frame limit: an error frame must always fit.
const MAX_MESSAGE_CHARS = 16 * 1024;
const MAX_TRACE_CHARS = 64 * 1024;

/** Exit statuses of the shim itself. */
const EXIT_OK = 0;
const EXIT_IO_ERROR = 1;
const EXIT_PROTOCOL_ERROR = 2;

function truncate(text, max) {
  return text.length <= max ? text : `${text.slice(0, max)}... [truncated]`;
}

/** error_type, message and trace of anything a handler threw or rejected with. */
function describeError(err) {
  try {
    return describeErrorUnsafe(err);
  } catch {
    // A hostile error object (throwing getters, a revoked Proxy): still answer the call.
    return { type: 'Error', message: '<error could not be described>', trace: '' };
  }
}

function describeErrorUnsafe(err) {
  if (err instanceof Error || (err && typeof err === 'object' && 'message' in err)) {
    const ctor = err.constructor && err.constructor.name;
    // `class NotFound extends Error {}` keeps name "Error": its class name says more.
    const type = err.name && err.name !== 'Error' ? err.name : ctor || 'Error';
    let message = '';
    try {
      message = String(err.message ?? '');
    } catch {
      message = '<unprintable message>';
    }
    const trace = typeof err.stack === 'string' ? err.stack : '';
    return { type: String(type), message, trace };
  }
  let message;
  try {
    message = String(err);
  } catch {
    message = `<unprintable ${typeof err}>`;
  }
  return { type: 'Error', message: `non-Error value thrown: ${message}`, trace: '' };
}

/**
 * The error frame for `err`, shrunk until it fits the frame limit. Throws FrameTooLarge only
 * when even an empty message does not fit (a limit of a few dozen bytes).
 */
function errorFrameParts(callId, err, maxFrameSize) {
  const { type, message, trace } = describeError(err);
  const attempts = [
    [truncate(message, MAX_MESSAGE_CHARS), truncate(trace, MAX_TRACE_CHARS)],
    [truncate(message, Math.floor(maxFrameSize / 8)), ''],
    ['', ''],
  ];
  for (let i = 0; ; i++) {
    try {
      return encodeFrameParts(errorFrame(callId, truncate(type, 256), ...attempts[i]), maxFrameSize)
        .parts;
    } catch (encodeError) {
      if (!(encodeError instanceof FrameTooLarge) || i === attempts.length - 1) throw encodeError;
    }
  }
}

/** The wire parts of the answer to one call: its response, or an error frame. */
function answerParts(callId, outcome, maxFrameSize) {
  if (!outcome.failed) {
    try {
      const { status, headers, body } = toResponse(outcome.result);
      return encodeFrameParts(responseFrame(callId, status, headers, body), maxFrameSize).parts;
    } catch (err) {
      // Unsendable result or a response over the frame limit: the call fails, the loop goes on.
      return errorFrameParts(callId, err, maxFrameSize);
    }
  }
  return errorFrameParts(callId, outcome.error, maxFrameSize);
}

/**
 * How many calls the container takes at once: HOTFN_CONCURRENCY, a positive int; 1 when unset.
 * Anything else is said on stderr and 1 is used (an old server sends one at a time anyway).
 */
function concurrencyFromEnv(env = process.env) {
  const raw = env.HOTFN_CONCURRENCY;
  if (raw === undefined || raw.trim() === '') return 1;
  const value = /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN;
  if (value >= 1 && value <= MAX_CONCURRENCY) return value;
  logError(`hotfn-node: HOTFN_CONCURRENCY=${raw} is not an int from 1 to ${MAX_CONCURRENCY}; serving one call at a time`);
  return 1;
}
const MAX_CONCURRENCY = 1024;

/**
 * Runs the shim's own per-call code once before the ready frame, so the first real call does
 * not pay for it (lazy compilation of the codec, request and response paths): a request frame
 * encoded and decoded, a Request built, a response and an error frame encoded, all in memory.
 * The handler is never called: it may have side effects.
 */
function warmUp(maxFrameSize) {
  try {
    const frame = {
      type: 'request', call_id: 'warm-up', method: 'POST', url: 'http://localhost/r/warm/up?a=1',
      path: '/up', query: [['a', '1']], headers: [['content-type', 'text/plain']],
      body: Buffer.from('w'), deadline: Date.now(), app: 'warm', route: '/up', params: { a: '1' },
    };
    const reader = new FrameReader(maxFrameSize);
    reader.push(Buffer.concat(encodeFrameParts(frame, maxFrameSize).parts));
    const request = requestFromFrame(decodePayload(reader.next()));
    request.header('content-type');
    answerParts(request.callId, { failed: false, result: { status: 200, headers: { 'x-a': '1' }, body: 'w' } }, maxFrameSize);
    const parts = answerParts(request.callId, { failed: false, result: request.body }, maxFrameSize);
    answerParts(request.callId, { failed: true, error: new Error('warm-up') }, maxFrameSize);
    const devNull = fs.openSync('/dev/null', 'w');
    try {
      writeAllSync(devNull, parts);
    } finally {
      fs.closeSync(devNull);
    }
  } catch (err) {
    // Only a head start: the real calls still work (or fail) on their own.
    logError(`hotfn-node: warm-up failed (calls go on): ${(err && err.message) || err}`);
  }
}

/**
 * Serve `handler` over frames until EOF; resolves with the exit status.
 *
 * input: a readable stream (process.stdin); write(parts): writes a frame's buffers whole and in
 * order, synchronously (default: fd 1), so two answers can never interleave. concurrency: how
 * many calls may be in flight (announced in the ready frame when above 1); answers leave as
 * calls end, in any order. The process is expected to exit with the status.
 */
function serveHot(handler, { input, write = (parts) => writeAllSync(1, parts), maxFrameSize, runtime, concurrency = 1 }) {
  const reader = new FrameReader(maxFrameSize);
  return new Promise((resolve) => {
    let inFlight = 0; // calls awaiting a handler's promise
    let finished = false;

    const finish = (status) => {
      if (finished) return;
      finished = true;
      input.pause();
      resolve(status);
    };

    const reply = (callId, outcome) => {
      if (finished) return;
      try {
        write(answerParts(callId, outcome, maxFrameSize));
      } catch (err) {
        // Writing to stdout failed (hotfn went away): nobody to answer any more.
        logError(`hotfn-node: cannot write a frame, exiting: ${(err && err.stack) || err}`);
        finish(EXIT_IO_ERROR);
      }
    };

    // Starts one call. A sync handler is answered at once (no extra tick on the hot path); a
    // promise counts as in flight until it settles, then the reading goes on.
    const start = (frame) => {
      let result;
      try {
        result = handler(requestFromFrame(frame));
        if (result === null || typeof result !== 'object' || typeof result.then !== 'function') {
          reply(frame.call_id, { failed: false, result });
          return;
        }
      } catch (err) {
        reply(frame.call_id, { failed: true, error: err });
        return;
      }
      inFlight++;
      Promise.resolve(result)
        .then(
          (value) => reply(frame.call_id, { failed: false, result: value }),
          (err) => reply(frame.call_id, { failed: true, error: err }),
        )
        .finally(() => {
          inFlight--;
          pump();
        });
    };

    // Starts every buffered request while fewer than `concurrency` calls are in flight.
    // Re-entered on every chunk and every settled call; never awaits, so never overlaps itself.
    const pump = () => {
      if (finished) return;
      try {
        while (inFlight < concurrency && !finished) {
          const payload = reader.next();
          if (payload === null) break;
          const frame = decodePayload(payload);
          if (frame.type !== 'request') {
            throw new MalformedFrame(`expected a request frame, got a ${frame.type} frame`);
          }
          start(frame);
        }
        // EOF: the calls in flight are answered first.
        if (reader.closed && inFlight === 0) finish(EXIT_OK);
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        logError(`hotfn-node: protocol error, exiting: ${err.message}`);
        finish(EXIT_PROTOCOL_ERROR);
      }
    };

    input.on('data', (chunk) => {
      reader.push(chunk);
      pump();
    });
    input.on('end', () => {
      reader.end();
      pump();
    });
    input.on('error', (err) => {
      logError(`hotfn-node: cannot read stdin, exiting: ${err.message}`);
      finish(EXIT_IO_ERROR);
    });

    try {
      write(encodeFrameParts(readyFrame(runtime, concurrency), maxFrameSize).parts);
    } catch (err) {
      logError(`hotfn-node: cannot send the ready frame, exiting: ${err.message}`);
      finish(EXIT_IO_ERROR);
    }
  });
}

module.exports = { serveHot, warmUp, concurrencyFromEnv, describeError, answerParts, EXIT_OK, EXIT_IO_ERROR, EXIT_PROTOCOL_ERROR };
