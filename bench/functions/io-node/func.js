'use strict';
// Benchmark function (Node): wait x-wait-ms (default 10) as if on I/O, then echo the body. With
// HOTFN_CONCURRENCY=N the shim overlaps N such waits (the concurrency bench).
const { setTimeout: sleep } = require('node:timers/promises');

module.exports.handler = async (request) => {
  await sleep(Number(request.header('x-wait-ms') || 10));
  return request.body;
};
