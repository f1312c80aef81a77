'use strict';
/**
 * What a handler may return, normalised to {status, headers: [[name, value]...], body: Buffer}.
 *
 *   string                    -> 200, text/plain; charset=utf-8
 *   Buffer / Uint8Array / ArrayBuffer / other typed array -> 200, the bytes
 *   undefined / null          -> 200, empty body
 *   {status, headers, body}   -> a response object: an object whose keys are all among
 *                                status, headers and body (at least one of them)
 *   any other object or array -> 200, JSON, application/json
 *
 * A response object's body may be any of the above (an object or array is JSON-encoded with
 * content-type application/json unless headers already name a content type). Its headers are
 * an object ({name: value} or {name: [value, value]}) or an array of [name, value] pairs.
 */

const { wellFormed } = require('./codec');

const EMPTY = Buffer.alloc(0);
const RESPONSE_KEYS = new Set(['status', 'headers', 'body']);

class ResponseError extends TypeError {
  get name() {
    return 'ResponseError';
  }
}

function isResponseObject(value) {
  let keys = 0;
  for (const key in value) {
    if (!RESPONSE_KEYS.has(key)) return false;
    keys++;
  }
  return keys > 0;
}

function isPlainData(value) {
  if (Array.isArray(value)) return true;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** A body as bytes, plus the content type it implies when the author named none. */
function bodyBytes(body) {
  if (body === undefined || body === null) return [EMPTY, null];
  if (typeof body === 'string') return [Buffer.from(body, 'utf8'), 'text/plain; charset=utf-8'];
  if (Buffer.isBuffer(body)) return [body, null];
  if (ArrayBuffer.isView(body)) {
    return [Buffer.from(body.buffer, body.byteOffset, body.byteLength), null];
  }
  if (body instanceof ArrayBuffer) return [Buffer.from(body), null];
  if (typeof body === 'object' && isPlainData(body)) {
    return [Buffer.from(JSON.stringify(body), 'utf8'), 'application/json'];
  }
  throw new ResponseError(
    'a handler must return a string, Buffer, Uint8Array, null/undefined, a plain object or ' +
      `array (sent as JSON) or a {status, headers, body} response, not ${describe(body)}`,
  );
}

function describe(value) {
  if (value === null) return 'null';
  if (typeof value !== 'object') return typeof value;
  return (value.constructor && value.constructor.name) || 'object';
}

function headerPairs(headers) {
  if (headers === undefined || headers === null) return [];
  const out = [];
  const add = (name, value) => {
    if (value === undefined || value === null) return;
    out.push([wellFormed(String(name)), wellFormed(String(value))]);
  };
  if (Array.isArray(headers)) {
    for (const pair of headers) {
      if (!Array.isArray(pair) || pair.length !== 2) {
        throw new ResponseError('response headers given as an array must hold [name, value] pairs');
      }
      add(pair[0], pair[1]);
    }
  } else if (typeof headers === 'object') {
    for (const name of Object.keys(headers)) {
      const value = headers[name];
      if (Array.isArray(value)) for (const item of value) add(name, item);
      else add(name, value);
    }
  } else {
    throw new ResponseError(`response headers must be an object or an array of pairs, not ${describe(headers)}`);
  }
  return out;
}

function hasContentType(headers) {
  for (const [name] of headers) if (name.toLowerCase() === 'content-type') return true;
  return false;
}

/** Normalise a handler's result; throws ResponseError when it cannot be sent. */
function toResponse(result) {
  if (
    result === null ||
    typeof result !== 'object' ||
    ArrayBuffer.isView(result) ||
    result instanceof ArrayBuffer ||
    Array.isArray(result) ||
    !isResponseObject(result)
  ) {
    const [body, contentType] = bodyBytes(result);
    return { status: 200, headers: contentType ? [['content-type', contentType]] : [], body };
  }
  const status = result.status === undefined ? 200 : result.status;
  if (!Number.isInteger(status) || status < 100 || status > 599) {
    throw new ResponseError(`response status must be an integer from 100 to 599, not ${JSON.stringify(status)}`);
  }
  const headers = headerPairs(result.headers);
  const [body, contentType] = bodyBytes(result.body);
  if (contentType && !hasContentType(headers)) headers.push(['content-type', contentType]);
  return { status, headers, body };
}

module.exports = { toResponse, ResponseError };
