import { randomUUID } from "node:crypto";
import { peerCertThumbprint } from "../net/client-cert.js";
import type { IncomingMessage, ServerResponse } from "node:http";
import { Readable } from "node:stream";
import type { Portcullis } from "../core/core.js";
import { renderNative } from "../dialects/native.js";
import type { AuthScheme } from "../contract/request.js";
import { type Denial, deny } from "../errors/catalogue.js";
import { collectBody, whenClosed } from "../gateway/http.js";
import { limitHeaders } from "../limits/headers.js";
import { Lifecycle } from "../pipeline/lifecycle.js";
import { type MiddlewareOptions, type PortcullisCaller, embeddedDenial, embeddedHoldHook, handOnEmbedded } from "./middleware.js";
import { renderHeld } from "../dialects/held.js";

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

/** What the Fastify lifecycle answers through, and what the hook gives back to Fastify. */
interface FastifyTarget {
  readonly request: FastifyRequestLike;
  readonly reply: FastifyReplyLike;
  result: NodeJS.ReadableStream | FastifyReplyLike | null;
}

export function portcullisPreParsing(
  core: Portcullis,
  options: MiddlewareOptions = {},
): (request: FastifyRequestLike, reply: FastifyReplyLike, payload: NodeJS.ReadableStream) => Promise<NodeJS.ReadableStream | FastifyReplyLike> {
  const bodyLimit = options.bodyLimit ?? 1024 * 1024;
  const onDenied = options.onDenied ?? (() => undefined);
  const refuse = (reply: FastifyReplyLike, denial: Denial, requestId: string, renderer: AuthScheme | null = null, extra?: Record<string, string>): FastifyReplyLike => {
    const rendered = renderer === null ? renderNative(denial, requestId) : renderer.render(denial, requestId);
    let r = reply.code(rendered.status).header("content-type", "application/json; charset=utf-8").header("cache-control", "no-store").header("portcullis-request-id", requestId);
    for (const [name, value] of Object.entries(rendered.headers ?? {})) r = r.header(name, value);
    for (const [name, value] of Object.entries(extra ?? {})) r = r.header(name, value);
    return r.send(rendered.body);
  };
  const lifecycle = new Lifecycle<FastifyTarget, void>({
    pipeline: core.pipeline,
    surface: "embedded",
    audit: core.audit,
    logger: core.logger,
    hold: embeddedHoldHook(core, options),
    exchange: {
      handOn(ctx, target) {
        handOnEmbedded(ctx, target.request, (name, value) => {
          target.reply.header(name, value);
        });
        // Fastify parses a fresh stream of the same bytes.
        const replay = Readable.from([ctx.body]) as Readable & { receivedEncodedLength?: number };
        replay.receivedEncodedLength = ctx.body.length;
        target.result = replay;
      },
      render(ctx, outcome, target) {
        if (outcome.kind === "held") {
          const held = renderHeld(ctx.renderer?.name ?? null, outcome.ticket, ctx.operation, ctx.now);
          let r = target.reply.code(held.status).header("content-type", "application/json; charset=utf-8").header("cache-control", "no-store").header("portcullis-request-id", ctx.requestId);
          for (const [name, value] of Object.entries(limitHeaders(ctx) ?? {})) r = r.header(name, value);
          target.result = r.send(held.body);
          return;
        }
        const denial = embeddedDenial(outcome);
        if (denial === null) return;
        onDenied(denial, ctx);
        target.result = refuse(target.reply, denial, ctx.requestId, ctx.renderer, limitHeaders(ctx));
      },
      untilDone({ reply }, release) {
        whenClosed(reply.raw, release);
      },
    },
  });
  return async (request, reply, payload) => {
    const requestId = randomUUID();
    const raw = request.raw;
    const declared = Number(raw.headers["content-length"] ?? 0);
    const body = declared > bodyLimit ? deny("BODY_TOO_LARGE") : await collectBody(payload, bodyLimit);
    const target: FastifyTarget = { request, reply, result: null };
    await lifecycle.serve({ method: raw.method ?? "", url: raw.url ?? "", headers: raw.headers, body, socketAddress: raw.socket.remoteAddress, clientCert: peerCertThumbprint(raw.socket) }, requestId, target);
    return target.result ?? refuse(reply, deny("INTERNAL"), requestId);
  };
}
