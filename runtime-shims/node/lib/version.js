'use strict';

const SHIM_VERSION = '0.1';
/** The ready frame's `runtime`: "node/<node version> hotfn-node/<shim version>". */
const RUNTIME = `node/${process.versions.node} hotfn-node/${SHIM_VERSION}`;

module.exports = { SHIM_VERSION, RUNTIME };
