'use strict';
/**
 * Cold mode (protocol §3): one call per process. The request comes from the environment and
 * stdin, the response body goes to stdout; status and headers are not sent (hotfn answers 200
 * on exit status 0, 502 otherwise).
 */

const { requestFromEnv } = require('./request');
const { toResponse } = require('./response');
const { logError, readAll, writeAllSync } = require('./io');

/** Run one call; resolves with the exit status. */
async function serveCold(handler, { input, env = process.env, write = (parts) => writeAllSync(1, parts) }) {
  const request = requestFromEnv(env, await readAll(input));
  let body;
  try {
    body = toResponse(await handler(request)).body;
  } catch (err) {
    logError(`hotfn-node: the handler failed: ${(err && err.stack) || err}`);
    return 1;
  }
  write([body]);
  return 0;
}

module.exports = { serveCold };
