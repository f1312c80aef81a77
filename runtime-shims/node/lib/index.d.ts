// Type declarations for hotfn-runtime, the Node.js shim: what a handler receives and may
// return. A function in TypeScript:
//
//   import type { Handler } from 'hotfn-runtime';
//   export const handler: Handler = async (request) => ({ status: 200, body: { ok: true } });

/** [name, value] pairs, in order, repeats kept. */
export type Pairs = Array<[string, string]>;

export declare class Request {
  /** "GET", "POST", ... */
  readonly method: string;
  /** The full URL the client asked for. */
  readonly url: string;
  /** The path within the app, no query: /users/7 */
  readonly path: string;
  /** Percent-decoded, in order, repeats kept. */
  readonly query: Pairs;
  /** In the order received, names lower case, repeats kept. */
  readonly headers: Pairs;
  readonly body: Buffer;
  readonly callId: string;
  /** When hotfn gives up on this call: ms since the Unix epoch (0 when unknown). */
  readonly deadline: number;
  readonly app: string;
  readonly route: string;
  /** Path parameters the route matched: {id: "7"} for /users/:id, {rest: "a/b"} for /api/*rest. */
  readonly params: Record<string, string>;
  /** The first value of a header (any case), or `fallback`. */
  header(name: string): string | undefined;
  header<T>(name: string, fallback: T): string | T;
  /** Every value of a header, in order. */
  headerValues(name: string): string[];
  /** The first value of a query parameter, or `fallback`. */
  queryParam(name: string): string | undefined;
  queryParam<T>(name: string, fallback: T): string | T;
  /** The body as UTF-8 text. */
  text(): string;
  /** The body parsed as JSON. */
  json(): any;
  /** Milliseconds left before the deadline (negative once past; Infinity when unknown). */
  remainingMs(): number;
}

export type Body = string | Buffer | Uint8Array | ArrayBuffer | ArrayBufferView | null | undefined
  | object | unknown[];

/** A response object: any of status, headers, body. */
export interface ResponseObject {
  status?: number;
  headers?: Record<string, string | string[]> | Pairs;
  body?: Body;
}

/** What a handler may return (or resolve to): a body alone answers 200. */
export type HandlerResult = ResponseObject | Body;

export type Handler = (request: Request) => HandlerResult | Promise<HandlerResult>;

/** The shim's version (package.json's) and the ready frame's runtime string. */
export declare const SHIM_VERSION: string;
export declare const RUNTIME: string;

export declare class ResponseError extends TypeError {}
export declare class LoadError extends Error {}
export declare function toResponse(result: HandlerResult): { status: number; headers: Pairs; body: Buffer };
export declare function main(env?: NodeJS.ProcessEnv): unknown;
