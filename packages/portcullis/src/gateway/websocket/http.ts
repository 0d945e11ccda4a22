import { randomUUID } from "node:crypto";
import { type IncomingMessage, type RequestListener, STATUS_CODES, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { AuthScheme, RequestContext } from "../../contract/request.js";
import { type Denial, deny, errorBody } from "../../errors/catalogue.js";
import { limitHeaders } from "../../limits/headers.js";

/** HTTP on an upgrade's socket, before (or instead of) the WebSocket protocol. */

/** Answers an upgrade request with an HTTP error (native, or a dialect's format) and closes. */
export function refuse(socket: Duplex, denial: Denial, requestId: string, ctx: RequestContext | null, renderer: AuthScheme | undefined): void {
  if (socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  const rendered = renderer === undefined ? { status: denial.status, body: errorBody(denial, requestId), headers: undefined } : renderer.render(denial, requestId);
  const headers: Record<string, string> = {
    "content-type": "application/json; charset=utf-8",
    "content-length": String(Buffer.byteLength(rendered.body)),
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "portcullis-request-id": requestId,
    ...rendered.headers,
    ...(ctx === null ? undefined : limitHeaders(ctx)),
    connection: "close",
  };
  const head = Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join("");
  socket.end(`HTTP/1.1 ${rendered.status} ${STATUS_CODES[rendered.status] ?? ""}\r\n${head}\r\n${rendered.body}`);
}

/**
 * Serves an upgrade request that is not for a WebSocket (`Upgrade: h2c`) as the ordinary HTTP
 * request it also is, on its socket, then closes. One with a body is refused: once node hands
 * the socket over, the body is no longer parsed for us.
 */
export function serveAsHttp(req: IncomingMessage, socket: Duplex, listener: RequestListener): void {
  const length = req.headers["content-length"];
  if (req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0")) {
    refuse(socket, deny("HTTP_MALFORMED", "a non-WebSocket upgrade with a body"), randomUUID(), null, undefined);
    return;
  }
  const res = new ServerResponse(req);
  res.shouldKeepAlive = false;
  // The upgrade's socket is the request's (node types it as a Duplex in the event).
  const raw = req.socket;
  res.assignSocket(raw);
  res.once("finish", () => {
    res.detachSocket(raw);
    raw.end();
  });
  listener(req, res);
}
