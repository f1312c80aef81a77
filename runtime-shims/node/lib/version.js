'use strict';

// One version string: package.json's (the npm package and the ready frame agree).
const SHIM_VERSION = require('../package.json').version;
/** The ready frame's `runtime`: "node/<node version> hotfn-node/<shim version>". */
const RUNTIME = `node/${process.versions.node} hotfn-node/${SHIM_VERSION}`;

module.exports = { SHIM_VERSION, RUNTIME };
