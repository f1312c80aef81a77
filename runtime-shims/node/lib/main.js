'use strict';
/** The process around a handler: hot (frame loop) or cold (one shot), per HOTFN_FORMAT. */

const { redirectStdoutToStderr, logError } = require('./io');
const { maxFrameSizeFromEnv } = require('./codec');
const { loadHandler } = require('./loader');
const { serveHot, warmUp, concurrencyFromEnv } = require('./hot');
const { serveCold } = require('./cold');
const { RUNTIME } = require('./version');

async function run(env) {
  // Before the user's module runs: its top-level console.log must not reach fd 1 either.
  redirectStdoutToStderr();
  let handler;
  try {
    handler = await loadHandler(env);
  } catch (err) {
    logError(`hotfn-node: ${err.message}`);
    return 1;
  }
  if (env.HOTFN_FORMAT === 'hot') {
    const maxFrameSize = maxFrameSizeFromEnv(env);
    if (env.HOTFN_WARMUP !== 'off') warmUp(maxFrameSize); // off: to measure what it gains
    return serveHot(handler, {
      input: process.stdin,
      maxFrameSize,
      runtime: RUNTIME,
      concurrency: concurrencyFromEnv(env),
    });
  }
  return serveCold(handler, { input: process.stdin, env });
}

/** Entry point of bin/hotfn-node.js: runs, then exits with the status. */
function main(env = process.env) {
  // Every normal path ends in process.exit, so the event loop only runs dry when a handler's
  // promise can never settle (nothing left to wake it). Node would then exit 0 silently, which
  // a cold call would report as a successful empty answer.
  process.once('beforeExit', () => {
    logError('hotfn-node: the handler returned a promise that never settled');
    process.exit(1);
  });
  run(env).then(
    // Explicit exit: timers or sockets the function left open must not keep it alive.
    (status) => process.exit(status),
    (err) => {
      logError(`hotfn-node: internal error: ${(err && err.stack) || err}`);
      process.exit(1);
    },
  );
}

module.exports = { main, run };
