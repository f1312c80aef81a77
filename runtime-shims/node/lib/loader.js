'use strict';
/**
 * Finds the author's handler.
 *
 * HOTFN_FUNCTION_DIR (default: the working directory, /function in the image) holds the
 * function; HOTFN_HANDLER = "<module>[:<export>]" names it, default "func.js:handler". The
 * module path is relative to the function directory. A CommonJS module is required; an ES
 * module (func.mjs, or "type": "module") is imported. Without an explicit export name, a module
 * whose export is itself a function (`module.exports = async (req) => ...`) works too.
 */

const path = require('node:path');
const { pathToFileURL } = require('node:url');

class LoadError extends Error {
  get name() {
    return 'LoadError';
  }
}

function handlerSpec(env = process.env) {
  const spec = env.HOTFN_HANDLER || 'func.js:handler';
  const colon = spec.lastIndexOf(':');
  // "C:\..." never reaches us (Linux images), but a bare module name has no colon at all.
  if (colon <= 0) return { module: spec, exportName: null };
  return { module: spec.slice(0, colon), exportName: spec.slice(colon + 1) || null };
}

async function loadModule(file) {
  try {
    return require(file);
  } catch (err) {
    // require() cannot load ES modules on Node 18/20; import() can (and loads CommonJS too,
    // but require first keeps start-up fastest for the common case).
    if (err && err.code === 'ERR_REQUIRE_ESM') return import(pathToFileURL(file).href);
    throw err;
  }
}

/** The handler function; LoadError (with the cause) when it cannot be found or loaded. */
async function loadHandler(env = process.env) {
  const functionDir = path.resolve(env.HOTFN_FUNCTION_DIR || process.cwd());
  const { module: moduleName, exportName } = handlerSpec(env);
  const file = path.resolve(functionDir, moduleName);
  let exported;
  try {
    exported = await loadModule(file);
  } catch (err) {
    throw new LoadError(`cannot load ${file}: ${(err && err.stack) || err}`, { cause: err });
  }
  const name = exportName || 'handler';
  let handler = exported == null ? undefined : exported[name];
  // An ES module's CommonJS-style default export: export default { handler }.
  if (handler === undefined && exported && exported.default != null) {
    handler = exported.default[name];
  }
  if (handler === undefined && !exportName) {
    if (typeof exported === 'function') handler = exported;
    else if (exported && typeof exported.default === 'function') handler = exported.default;
  }
  if (typeof handler !== 'function') {
    throw new LoadError(
      `${file} exports no function '${name}' (expected module.exports.${name} = async (request) => ...)`,
    );
  }
  return handler;
}

module.exports = { loadHandler, LoadError, handlerSpec };
