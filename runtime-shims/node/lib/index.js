'use strict';
/**
 * hotfn-runtime: runs a Node.js handler as a hotfn function (docs/protocol.md).
 *
 * Authors do not import this: they export `handler` from func.js and the image's entrypoint
 * (bin/hotfn-node.js) does the rest. The pieces are exported for tests and tooling.
 */

const codec = require('./codec');
const { Request, requestFromFrame, requestFromEnv } = require('./request');
const { toResponse, ResponseError } = require('./response');
const { loadHandler, LoadError } = require('./loader');
const { serveHot } = require('./hot');
const { serveCold } = require('./cold');
const { main, run } = require('./main');
const { SHIM_VERSION, RUNTIME } = require('./version');

module.exports = {
  ...codec,
  Request,
  requestFromFrame,
  requestFromEnv,
  toResponse,
  ResponseError,
  loadHandler,
  LoadError,
  serveHot,
  serveCold,
  main,
  run,
  SHIM_VERSION,
  RUNTIME,
};
