import type { IncomingMessage, ServerResponse } from "node:http";
import { Readable } from "node:stream";
import type { Portcullis } from "../core.js";
import { renderNative } from "../dialects/native.js";
import type { AuthScheme } from "../contract/request.js";
import { type Denial, deny } from "../errors/catalogue.js";
import { collectBody } from "../gateway/http.js";
import { limitHeaders } from "../limits/headers.js";
import { type MiddlewareOptions, type PortcullisCaller, allowedHeaders, callerOf, verifyEmbedded } from "./middleware.js";

/**
 * Embedded mode for Fastify, without depending on it: a `preParsing` hook. It reads the raw
 * payload (the signature covers the exact bytes), runs the pipeline, answers a denial itself, and
 * otherwise hands Fastify a fresh stream of the same bytes, so your content-type parsers and
 * schemas work as before. The caller is on `request.portcullis`, the bytes on `request.rawBody`.
 *
 *   fastify.addHook("preParsing", portcullisPreParsing(portcullis));
 */
export interface FastifyRequestLike {
  readonly raw: IncomingMessage;
  portcullis?: PortcullisCaller;
  rawBody?: Buffer;
}

export interface FastifyReplyLike {
  readonly raw: ServerResponse;
  code(status: number): FastifyReplyLike;
  header(name: string, value: string): FastifyReplyLike;
  send(payload: string): FastifyReplyLike;
}

export function portcullisPreParsing(
  core: Portcullis,
  options: MiddlewareOptions = {},
): (request: FastifyRequestLike, reply: FastifyReplyLike, payload: NodeJS.ReadableStream) => Promise<NodeJS.ReadableStream | FastifyReplyLike> {
  const bodyLimit = options.bodyLimit ?? 1024 * 1024;
  const onDenied = options.onDenied ?? (() => undefined);
  const refuse = (reply: FastifyReplyLike, denial: Denial, requestId: string, renderer: AuthScheme | null = null, extra?: Record<string, string>): FastifyReplyLike => {
    const rendered = renderer === null ? renderNative(denial, requestId) : renderer.render(denial, requestId);
    let r = reply.code(rendered.status).header("content-type", "application/json; charset=utf-8").header("cache-control", "no-store");
    for (const [name, value] of Object.entries(rendered.headers ?? {})) r = r.header(name, value);
    for (const [name, value] of Object.entries(extra ?? {})) r = r.header(name, value);
    return r.send(rendered.body);
  };
  return async (request, reply, payload) => {
    const declared = Number(request.raw.headers["content-length"] ?? 0);
    if (declared > bodyLimit) {
      onDenied(deny("BODY_TOO_LARGE"), null);
      return refuse(reply, deny("BODY_TOO_LARGE"), "embedded");
    }
    const body = await collectBody(payload, bodyLimit);
    if (!Buffer.isBuffer(body)) {
      core.audit.refused(body, { requestId: "embedded", method: request.raw.method, url: request.raw.url, socketAddress: request.raw.socket.remoteAddress }, "embedded");
      onDenied(body, null);
      return refuse(reply, body, "embedded");
    }
    const ctx = await verifyEmbedded(core, request.raw, body);
    if (ctx.denial !== null) {
      onDenied(ctx.denial, ctx);
      return refuse(reply, ctx.denial, ctx.requestId, ctx.renderer, limitHeaders(ctx));
    }
    reply.raw.once("close", () => {
      core.pipeline.finish(ctx);
    });
    for (const [name, value] of Object.entries(allowedHeaders(ctx))) reply.header(name, value);
    request.rawBody = body;
    const caller = callerOf(ctx);
    if (caller !== undefined) request.portcullis = caller;
    const replay = Readable.from([body]) as Readable & { receivedEncodedLength?: number };
    replay.receivedEncodedLength = body.length;
    return replay;
  };
}
