import { randomUUID } from "node:crypto";
import { type IncomingMessage, STATUS_CODES, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { AuthScheme, RequestContext } from "../contract/request.js";
import { type Denial, PortcullisError, deny, errorBody, serviceErrorBody } from "../errors/catalogue.js";
import { limitHeaders } from "../limits/headers.js";
import type { Outcome } from "../pipeline/lifecycle.js";
import { parseJson } from "../contract/json.js";

/** Shared HTTP plumbing for the gateway, the admin API and the embedded middleware. */

const EMPTY = Buffer.alloc(0);

/**
 * A JSON request body (an empty body is `{}`), its objects without a prototype (contract/json.ts);
 * JSON_MALFORMED when it does not parse.
 */
export function parseJsonBody(body: Buffer): unknown {
  if (body.length === 0) return Object.create(null) as unknown;
  try {
    return parseJson(body.toString("utf8"));
  } catch {
    throw new PortcullisError("JSON_MALFORMED");
  }
}

/**
 * Reads a request body up to `limit` bytes. A declared Content-Length above the limit is refused
 * before a byte is read; a chunked body is cut off as soon as it passes the limit. A request with
 * neither Content-Length nor Transfer-Encoding has no body (RFC 9112 section 6.3) and resolves at
 * once.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer | Denial> | Buffer | Denial {
  const lengthHeader = req.headers["content-length"];
  const chunked = req.headers["transfer-encoding"] !== undefined;
  if (lengthHeader === undefined && !chunked) {
    req.resume();
    return EMPTY;
  }
  if (lengthHeader !== undefined) {
    const refusal = declaredBodyRefusal(req, limit);
    if (refusal !== null) return refusal;
    if (Number(lengthHeader) === 0 && !chunked) {
      req.resume();
      return EMPTY;
    }
  }
  return collectBody(req, limit);
}

/** Why `readBody` refuses a request's body before reading a byte of it (its Content-Length), or null. */
export function declaredBodyRefusal(req: IncomingMessage, limit: number): Denial | null {
  const lengthHeader = req.headers["content-length"];
  if (lengthHeader === undefined) return null;
  const declared = Number(lengthHeader);
  if (!Number.isSafeInteger(declared) || declared < 0) return deny("HTTP_MALFORMED", "bad content-length");
  if (declared > limit) return deny("BODY_TOO_LARGE", `declared ${declared} > ${limit}`);
  return null;
}

/**
 * Collects a body stream up to `limit` bytes; past it, stops reading and answers BODY_TOO_LARGE.
 * A stream that errors or is aborted answers BODY_INCOMPLETE.
 */
export function collectBody(stream: NodeJS.ReadableStream, limit: number): Promise<Buffer | Denial> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (value: Buffer | Denial): void => {
      if (done) return;
      done = true;
      stream.removeListener("data", onData);
      stream.removeListener("end", onEnd);
      stream.removeListener("error", onError);
      stream.removeListener("aborted", onError);
      resolve(value);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        // Stop reading: the connection is closed after the 413 is sent.
        stream.pause();
        finish(deny("BODY_TOO_LARGE", `more than ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      finish(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size));
    };
    const onError = (): void => {
      finish(deny("BODY_INCOMPLETE"));
    };
    stream.on("data", onData);
    stream.on("end", onEnd);
    stream.on("error", onError);
    stream.on("aborted", onError);
  });
}

export interface ResponseExtras {
  readonly serverTiming?: string | undefined;
  readonly close?: boolean;
  /** The scheme whose wire format the refusal takes (a venue dialect); default the native format. */
  readonly renderer?: AuthScheme | null | undefined;
  /** More headers (rate-limit fields, Retry-After); they win over a renderer's. */
  readonly headers?: Readonly<Record<string, string>> | undefined;
}

/** Sends a JSON body with the security headers every Portcullis answer carries. */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: string,
  requestId: string,
  extras?: ResponseExtras,
  more?: Readonly<Record<string, string>>,
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const headers: Record<string, string | number> = {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "portcullis-request-id": requestId,
  };
  if (extras?.serverTiming !== undefined) headers["server-timing"] = extras.serverTiming;
  if (extras?.close === true) headers.connection = "close";
  if (more !== undefined) for (const name in more) headers[name] = more[name] as string;
  res.writeHead(status, headers);
  res.end(body);
}

/**
 * Sends a denial: in the native shape `{ code, message, requestId }`, or in the venue's own shape
 * and codes when a dialect renders it.
 */
export function sendDenial(res: ServerResponse, denial: Denial, requestId: string, extras?: ResponseExtras): void {
  const close = extras?.close === true || denial.code === "BODY_TOO_LARGE" || denial.code === "HTTP_MALFORMED";
  const rendered = renderDenial(denial, requestId, extras?.renderer, extras?.headers);
  sendJson(res, rendered.status, rendered.body, requestId, { serverTiming: extras?.serverTiming, close }, rendered.headers);
}

/**
 * A refusal as `sendDenial` writes it: its status, body (the native format, or the scheme's wire
 * format) and the headers beyond those `sendJson` adds (a renderer's, then `more`, which win).
 */
export function renderDenial(
  denial: Denial,
  requestId: string,
  renderer?: AuthScheme | null,
  more?: Readonly<Record<string, string>>,
): { readonly status: number; readonly body: string; readonly headers: Readonly<Record<string, string>> | undefined } {
  if (renderer === undefined || renderer === null) return { status: denial.status, body: errorBody(denial, requestId), headers: more };
  const rendered = renderer.render(denial, requestId);
  return { status: rendered.status, body: rendered.body, headers: more === undefined ? rendered.headers : { ...rendered.headers, ...more } };
}

/** Formats stage timings as a Server-Timing header value (stages that did not run are left out). */
export function serverTimingHeader(names: readonly string[], durations: readonly number[], extra?: Readonly<Record<string, number>>): string {
  const parts: string[] = [];
  for (let i = 0; i < durations.length; i++) {
    const d = durations[i];
    if (d !== undefined && !Number.isNaN(d)) parts.push(`${names[i] ?? `s${i}`};dur=${d.toFixed(3)}`);
  }
  if (extra !== undefined) for (const [name, dur] of Object.entries(extra)) parts.push(`${name};dur=${dur.toFixed(3)}`);
  return parts.join(", ");
}

/**
 * The lifecycle's finish hook for an HTTP answer: `release` once the response is over (written to
 * its end, or abandoned by the client).
 */
export function whenClosed(res: ServerResponse, release: () => void): void {
  if (res.closed) release();
  else res.once("close", release);
}

/**
 * node:http's 'clientError': answers a request it could not parse in the JSON error format
 * (HTTP_MALFORMED, or HEADERS_TOO_LARGE) and closes, instead of node's empty answer. It carries
 * the headers every Portcullis answer carries (`sendJson`), a request id of its own included.
 */
export function rejectUnparsable(err: NodeJS.ErrnoException, socket: Duplex): void {
  // A TLS failure on an established connection (a renegotiation attempt: refused, docs/tls.md)
  // leaves nothing to answer in: the connection is closed.
  const code = err.code ?? "";
  if (!socket.writable || code === "ECONNRESET" || code.startsWith("ERR_TLS_") || code.startsWith("ERR_SSL_")) {
    socket.destroy();
    return;
  }
  const denial = err.code === "HPE_HEADER_OVERFLOW" ? deny("HEADERS_TOO_LARGE") : deny("HTTP_MALFORMED");
  const requestId = randomUUID();
  const body = errorBody(denial, requestId);
  socket.end(
    `HTTP/1.1 ${denial.status} ${STATUS_CODES[denial.status] ?? ""}\r\n` +
      `content-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
      `cache-control: no-store\r\nx-content-type-options: nosniff\r\nportcullis-request-id: ${requestId}\r\nconnection: close\r\n\r\n${body}`,
  );
}

/** The answer of one of the gateway's own JSON endpoints (operations, wallets). */
export interface JsonAnswer {
  readonly status: number;
  readonly body: string;
}

/**
 * Renders a lifecycle outcome of a gateway JSON endpoint, with the request's limit headers: a
 * refusal natively, a service error with its status, a held request's ticket (202), or the answer.
 */
export function renderJsonOutcome(ctx: RequestContext, outcome: Outcome<JsonAnswer>, res: ServerResponse): void {
  const headers = limitHeaders(ctx);
  switch (outcome.kind) {
    case "refused":
      sendDenial(res, outcome.denial, ctx.requestId, { headers });
      return;
    case "failed":
      sendJson(res, outcome.error.status, serviceErrorBody(outcome.error, ctx.requestId), ctx.requestId, undefined, headers);
      return;
    case "held":
      sendJson(res, 202, JSON.stringify(outcome.ticket), ctx.requestId, undefined, headers);
      return;
    case "answered":
      sendJson(res, outcome.answer.status, outcome.answer.body, ctx.requestId, undefined, headers);
  }
}
