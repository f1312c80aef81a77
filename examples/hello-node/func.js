'use strict';
// A hot Node.js function: one warm container serves request after request.

let calls = 0; // lives as long as the warm container

module.exports.handler = async (request) => {
  calls += 1;
  if (request.method === 'POST' && request.header('content-type') === 'application/json') {
    const order = request.json();
    console.log('order for', order.customer); // the call's log (stderr), never the client's body
    return { status: 201, headers: { location: `/orders/${order.id}` }, body: { ok: true } };
  }
  return `Hello, ${request.queryParam('name', 'world')}, from Node ${process.version} (call ${calls} of this container)\n`;
};
