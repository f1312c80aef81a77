'use strict';
// The conformance function (docs/runtimes.md), written with the Node.js shim. The request
// header x-hotfn-test picks the behaviour; tests/test_conformance.py checks every runtime's.

function echo(request) {
  const headers = [
    ['x-method', request.method],
    ['x-call-id', request.callId],
    ...request.headers.filter(([name]) => name.startsWith('x-echo-')),
  ];
  return { status: 200, headers, body: request.body };
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

module.exports.handler = async (request) => {
  switch (request.header('x-hotfn-test', 'echo')) {
    case 'status':
      return {
        status: parseInt(request.header('x-status'), 10),
        headers: { 'x-custom': 'yes' },
        body: 'status',
      };
    case 'raise':
      throw new Error('boom');
    case 'print':
      console.log('noise');
      return echo(request);
    case 'stderr':
      process.stderr.write('log line\n');
      return echo(request);
    case 'sleep':
      await sleep(parseInt(request.header('x-sleep-ms', '0'), 10) || 0);
      return echo(request);
    case 'exit':
      process.exit(3);
      break;
    case 'info':
      return {
        status: 200,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          method: request.method,
          url: request.url,
          path: request.path,
          query: request.query,
          headers: request.headers,
          app: request.app,
          route: request.route,
          params: request.params,
          call_id: request.callId,
          deadline: request.deadline,
          body_length: request.body.length,
          config_value: process.env.CONFORMANCE_CONFIG ?? null,
        }),
      };
    default:
      return echo(request);
  }
};
