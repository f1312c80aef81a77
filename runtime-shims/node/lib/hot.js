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
 * Serve `handler` over frames until EOF; resolves with the exit status.
 *
 * input: a readable stream (process.stdin); write(parts): writes a frame's buffers whole and in
 * order, synchronously (default: fd 1). The process is expected to exit with the status.
 */
function serveHot(handler, { input, write = (parts) => writeAllSync(1, parts), maxFrameSize, runtime }) {
  const reader = new FrameReader(maxFrameSize);
  return new Promise((resolve) => {
    let busy = false;
    let finished = false;

    const finish = (status) => {
      if (finished) return;
      finished = true;
      input.pause();
      resolve(status);
    };

    // Decodes and answers every complete frame buffered, one at a time. Re-entered on every
    // chunk; the `busy` flag keeps a second call from starting while a handler is awaited
    // (the running call picks the new data up when it loops).
    const pump = async () => {
      if (busy || finished) return;
      busy = true;
      try {
        for (;;) {
          const payload = reader.next();
          if (payload === null) break;
          const frame = decodePayload(payload);
          if (frame.type !== 'request') {
            throw new MalformedFrame(`expected a request frame, got a ${frame.type} frame`);
          }
          const outcome = { failed: false, result: undefined, error: undefined };
          try {
            let result = handler(requestFromFrame(frame));
            // Sync handlers skip the await: no extra tick on the hot path.
            if (result !== null && typeof result === 'object' && typeof result.then === 'function') {
              result = await result;
            }
            outcome.result = result;
          } catch (err) {
            outcome.failed = true;
            outcome.error = err;
          }
          write(answerParts(frame.call_id, outcome, maxFrameSize));
        }
        if (reader.closed) finish(EXIT_OK);
      } catch (err) {
        if (err instanceof ProtocolError) {
          logError(`hotfn-node: protocol error, exiting: ${err.message}`);
          finish(EXIT_PROTOCOL_ERROR);
        } else {
          // Writing to stdout failed (hotfn went away): nobody to answer any more.
          logError(`hotfn-node: cannot write a frame, exiting: ${(err && err.stack) || err}`);
          finish(EXIT_IO_ERROR);
        }
      } finally {
        busy = false;
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
      write(encodeFrameParts(readyFrame(runtime), maxFrameSize).parts);
    } catch (err) {
      logError(`hotfn-node: cannot send the ready frame, exiting: ${err.message}`);
      finish(EXIT_IO_ERROR);
    }
  });
}

module.exports = { serveHot, describeError, answerParts, EXIT_OK, EXIT_IO_ERROR, EXIT_PROTOCOL_ERROR };
