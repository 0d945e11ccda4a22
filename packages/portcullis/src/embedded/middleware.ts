import { randomUUID } from "node:crypto";
import { peerCertThumbprint } from "../net/client-cert.js";
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import type { Portcullis } from "../core/core.js";
import { type Denial, deny } from "../errors/catalogue.js";
import { readBody, sendDenial, sendJson, whenClosed } from "../gateway/http.js";
import { heldRequestOf } from "../gateway/proxy.js";
import type { PolicyDecider } from "../contract/policy.js";
import { createHoldHook } from "../holds/hook.js";
import type { HoldService, RequestReleaser } from "../holds/service.js";
import { renderHeld } from "../dialects/held.js";
import type { HoldHook } from "../pipeline/lifecycle.js";
import type { PortcullisIdentity } from "../gateway/identity.js";
import { addKeyWarning } from "../keys/warning.js";
import { addLimitHeaders, limitHeaders } from "../limits/headers.js";
import type { RequestContext } from "../contract/request.js";
import { Lifecycle, type Outcome } from "../pipeline/lifecycle.js";
import { SessionEndpoints } from "../gateway/session-endpoints.js";

/**
 * Embedded mode: the pipeline as middleware inside the venue's own Node service, instead of a
 * separate gateway. The middleware reads the body (it must see the exact bytes the signature
 * covers), runs every stage, and either answers the denial itself or hands the request on with
 * `req.portcullis` (who is calling) and `req.rawBody` (the bytes, to parse as you like).
 *
 *   const portcullis = new Portcullis({ ... });
 *   app.use(createMiddleware(portcullis));          // Express / Connect
 *   http.createServer((req, res) => mw(req, res, () => handle(req, res)));   // node:http
 *
 * Because the middleware consumes the body stream, put it before any body parser and parse
 * `req.rawBody` instead. Limits apply as in the gateway: the RateLimit headers (and a dialect's
 * own) are set on the response before `next()`, and a key's concurrency slot is released when the
 * response closes.
 */
/** Who is calling: the same facts the gateway sends upstream, plus the matched route. */
export interface PortcullisCaller extends Omit<PortcullisIdentity, "timestamp"> {
  /** The matched route, "METHOD /pattern". */
  readonly route: string;
}

export interface PortcullisRequest extends IncomingMessage {
  /** Set on authenticated requests; absent on public routes. */
  portcullis?: PortcullisCaller;
  rawBody?: Buffer;
}

export interface MiddlewareOptions {
  /** Largest body accepted, in bytes. Default 1 MiB. */
  readonly bodyLimit?: number;
  /** Called for every denial before it is answered (for logging / metrics). */
  readonly onDenied?: (denial: Denial, ctx: RequestContext | null) => void;
  /**
   * Stage 10 (docs/approvals.md): the policy and the hold service. There is no upstream to release
   * a held request to, so the application gives `release` (called once per released operation with
   * the request exactly as held; its answer is recorded) and runs `service.start()`; without
   * `release`, a request the policy holds is refused, fail closed (HOLD_NOT_SUPPORTED).
   */
  readonly holds?: { readonly policy: PolicyDecider; readonly service: HoldService; readonly release?: RequestReleaser };
}

/** The embedded surfaces' hold hook (null without a policy), registering the application's releaser. */
export function embeddedHoldHook(core: Portcullis, options: MiddlewareOptions): HoldHook | null {
  const holds = options.holds;
  if (holds === undefined) return null;
  const release = holds.release;
  if (release !== undefined) holds.service.setRequestReleaser(release);
  return createHoldHook({
    policy: holds.policy,
    holds: holds.service,
    logger: core.logger,
    capture: release === undefined ? null : (ctx) => heldRequestOf(ctx, core.pipeline.credentialHeaders),
  });
}

export type Next = (err?: unknown) => void;

export function callerOf(ctx: RequestContext): PortcullisCaller | undefined {
  const key = ctx.key;
  if (key === null || ctx.route === null) return undefined;
  return {
    requestId: ctx.requestId,
    keyId: key.record.id,
    account: key.record.account,
    subAccount: key.record.subAccount,
    scopes: key.scopes,
    clientIp: ctx.client?.text ?? "",
    route: ctx.route.id,
  };
}

/** The headers an allowed request's answer carries: rate-limit fields and the key's expiry warning. */
export function allowedHeaders(ctx: RequestContext): Record<string, string> {
  const out: Record<string, string> = {};
  addLimitHeaders(out, ctx);
  if (ctx.key !== null) addKeyWarning(out, ctx.key, ctx.now);
  return out;
}

/** What the embedded lifecycle answers through: the request, its response, and the app's `next`. */
interface EmbeddedTarget {
  readonly req: PortcullisRequest;
  readonly res: ServerResponse;
  readonly next: Next;
}

/** Hand on for every embedded surface: the caller's facts on the request, the allowed answer's headers. */
export function handOnEmbedded(
  ctx: RequestContext,
  request: { portcullis?: PortcullisCaller; rawBody?: Buffer; headers?: IncomingHttpHeaders },
  setHeader: (name: string, value: string) => void,
): void {
  const headers = allowedHeaders(ctx);
  setHeader("portcullis-request-id", ctx.requestId);
  for (const name in headers) setHeader(name, headers[name] as string);
  request.rawBody = ctx.body;
  // A sealed request was opened (docs/sealed-orders.md): the app reads the plaintext, under its own type and length.
  if (ctx.sealed !== null && request.headers !== undefined) request.headers = ctx.headers;
  const caller = callerOf(ctx);
  if (caller !== undefined) request.portcullis = caller;
}

/** The denial an embedded surface answers with: the pipeline's refusal, or our own fault. */
export function embeddedDenial(outcome: Outcome<unknown>): Denial | null {
  return outcome.kind === "refused" ? outcome.denial : outcome.kind === "failed" ? deny(outcome.error.code) : null;
}

export function createMiddleware(core: Portcullis, options: MiddlewareOptions = {}): (req: IncomingMessage, res: ServerResponse, next: Next) => void {
  const bodyLimit = options.bodyLimit ?? 1024 * 1024;
  const onDenied = options.onDenied ?? (() => undefined);
  // With sessions, the middleware answers the session endpoints (logon, refresh, logout) itself.
  const sessions = core.sessions === null ? null : new SessionEndpoints(core);
  const lifecycle = new Lifecycle<EmbeddedTarget, void>({
    pipeline: core.pipeline,
    surface: "embedded",
    audit: core.audit,
    logger: core.logger,
    hold: embeddedHoldHook(core, options),
    exchange: {
      handOn(ctx, { req, res, next }) {
        handOnEmbedded(ctx, req, (name, value) => {
          res.setHeader(name, value);
        });
        next();
      },
      render(ctx, outcome, { res }) {
        if (outcome.kind === "held") {
          const held = renderHeld(ctx.renderer?.name ?? null, outcome.ticket, ctx.operation, ctx.now);
          sendJson(res, held.status, held.body, ctx.requestId, undefined, limitHeaders(ctx));
          return;
        }
        const denial = embeddedDenial(outcome);
        if (denial === null) return;
        onDenied(denial, ctx);
        sendDenial(res, denial, ctx.requestId, { renderer: ctx.renderer, headers: limitHeaders(ctx), close: outcome.kind === "failed" });
      },
      untilDone({ res }, release) {
        whenClosed(res, release);
      },
    },
  });
  const run = async (req: PortcullisRequest, res: ServerResponse, next: Next, requestId: string): Promise<void> => {
    if (sessions !== null && SessionEndpoints.serves((req.url ?? "").split("?", 1)[0] ?? "")) {
      await sessions.serve(req, res, requestId, "embedded", bodyLimit);
      return;
    }
    let body = readBody(req, bodyLimit);
    if (body instanceof Promise) body = await body;
    await lifecycle.serve({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body, socketAddress: req.socket.remoteAddress, clientCert: peerCertThumbprint(req.socket) }, requestId, { req, res, next });
  };
  return (req, res, next) => {
    const requestId = randomUUID();
    run(req, res, next, requestId).catch((err: unknown) => {
      core.logger.error({ requestId, err }, "embedded pipeline error");
      if (!res.headersSent) sendDenial(res, deny("INTERNAL"), requestId, { close: true });
    });
  };
}
