import { randomUUID } from "node:crypto";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { DecisionRecorder } from "../audit/log.js";
import type { PolicyDecider } from "../contract/policy.js";
import type { RequestContext } from "../contract/request.js";
import { type Denial, deny } from "../errors/catalogue.js";
import { createHoldHook } from "../holds/hook.js";
import type { HoldService } from "../holds/service.js";
import { addLimitHeaders } from "../limits/headers.js";
import type { Logger } from "../log/logger.js";
import { CidrSet, parseIp } from "../net/ip.js";
import { Lifecycle } from "../pipeline/lifecycle.js";
import type { Pipeline } from "../pipeline/pipeline.js";
import { readBody, sendDenial, sendJson } from "./http.js";
import type { IdentitySigner } from "./identity.js";
import { ServerLifecycle } from "./lifecycle.js";
import { OperationEndpoints } from "./operation-endpoints.js";
import { type Forwarder, heldReleaser, heldRequestOf } from "./proxy.js";
import { renderRefusal } from "./render.js";
import { SessionEndpoints } from "./session-endpoints.js";

/**
 * The authorizer ("gateway": { "mode": "authorizer" }, docs/deploy/authorizer.md): Portcullis
 * decides, the venue's own proxy (nginx, Envoy, HAProxy, Traefik) forwards. Two protocols on one
 * listener, both a thin surface over the one request lifecycle (audit surface "authorizer"):
 *
 * - nginx, `POST|GET|… /portcullis/v1/authz/nginx` with `X-Original-URI: <the client's target>`:
 *   nginx proxies the whole request here (method, headers, body) with `proxy_intercept_errors on`.
 *   Allowed: `399` with the identity headers and `Portcullis-Target` (the target to forward,
 *   a dialect's credential parameter removed); nginx's `error_page 399 = @venue` hands the request
 *   (its buffered body re-sent) to the venue's API with those headers. Refused or held: the answer
 *   itself (status, dialect body, RateLimit / Retry-After), which nginx passes to the client as is.
 * - forward-auth (Envoy `ext_authz` HTTP service, HAProxy, Traefik): any other path is the
 *   original request (method, target, headers, body). Allowed: `200` with the identity headers;
 *   refused: the refusal itself. A held operation cannot be told from an allowed one by a proxy
 *   that takes every 2xx as allow (a venue dialect's held answer is a 200), so this protocol never
 *   holds: what the policy would hold is refused HOLD_NOT_SUPPORTED.
 *
 * The authorizer only answers its trusted proxies (`gateway.trustedProxies`): any other peer is
 * refused AUTHORIZER_PEER_UNTRUSTED, so the forwarded client address and the original target are
 * only ever believed from them. The request's concurrency slot is released when the authorizer
 * answers (it cannot see the upstream's answer). Identity headers are signed over the target the
 * proxy forwards and the body as the client sent it (a proxy cannot rewrite a body).
 */
export interface AuthorizerOptions {
  readonly pipeline: Pipeline;
  readonly identity: IdentitySigner;
  readonly logger: Logger;
  /** The peers allowed to ask (the proxies): CIDR blocks; at least one. */
  readonly trustedProxies: readonly string[];
  /** Largest request body accepted, in bytes. Default 1 MiB. */
  readonly bodyLimit?: number;
  readonly now?: () => number;
  readonly sessions?: SessionEndpoints;
  readonly audit?: DecisionRecorder | undefined;
  /**
   * Stage 10. With `forwarder` (the config's `gateway.upstream`), the nginx protocol holds what the
   * policy holds, and Portcullis releases it itself to the upstream; without it, a hold is refused
   * HOLD_NOT_SUPPORTED.
   */
  readonly holds?: { readonly policy: PolicyDecider | null; readonly service: HoldService; readonly operations?: OperationEndpoints; readonly forwarder: Forwarder | null } | undefined;
  /** The scheme clients use (for X-Forwarded-Proto on released holds). */
  readonly scheme?: "http" | "https";
}

/** The nginx protocol's path; anything else outside /portcullis/ is a forward-auth request. */
export const NGINX_PATH = "/portcullis/v1/authz/nginx";
/** The nginx protocol's answer to an allowed request: nginx intercepts it (error_page 399 = @venue). */
export const NGINX_ALLOW_STATUS = 399;
/** The header of an nginx protocol request that carries the client's request target ($request_uri). */
export const ORIGINAL_URI = "x-original-uri";
/** The target nginx forwards (the client's, a dialect's credential parameter removed). */
export const TARGET_HEADER = "portcullis-target";

const OWN_PREFIX = "/portcullis/";

type Protocol = "nginx" | "forward-auth";

/** What hand on returns: the allowed answer's headers. */
type Allowed = Record<string, string | string[]>;

export class Authorizer {
  readonly server: Server;
  private readonly options: AuthorizerOptions;
  private readonly bodyLimit: number;
  private readonly now: () => number;
  private readonly trusted: CidrSet;
  private readonly timingNames: readonly string[];
  private readonly listener: ServerLifecycle;
  private readonly nginx: Lifecycle<ServerResponse, Allowed>;
  private readonly forwardAuth: Lifecycle<ServerResponse, Allowed>;

  constructor(options: AuthorizerOptions) {
    this.options = options;
    this.bodyLimit = options.bodyLimit ?? 1024 * 1024;
    if (!Number.isSafeInteger(this.bodyLimit) || this.bodyLimit < 0) throw new TypeError("bodyLimit must be a non-negative integer");
    this.now = options.now ?? Date.now;
    this.trusted = new CidrSet(options.trustedProxies);
    if (this.trusted.size === 0) throw new TypeError("the authorizer needs trustedProxies: the proxies allowed to ask it");
    this.timingNames = options.pipeline.stageNames;
    this.listener = new ServerLifecycle({ requestTimeout: 30_000, headersTimeout: 10_000, keepAliveTimeout: 75_000, bodyLimit: this.bodyLimit }, this.handle);
    this.server = this.listener.server;
    const holds = options.holds;
    const policy = holds?.policy ?? null;
    const forwarder = holds?.forwarder ?? null;
    const lifecycle = (protocol: Protocol): Lifecycle<ServerResponse, Allowed> =>
      new Lifecycle({
        pipeline: options.pipeline,
        surface: "authorizer",
        audit: options.audit ?? null,
        logger: options.logger,
        exchange: {
          handOn: (ctx) => this.allow(ctx, protocol),
          render: (ctx, outcome, res) => {
            renderRefusal(res, ctx, outcome, { now: this.now(), timingNames: this.timingNames, close: this.listener.closing, refusal: () => null });
            if (outcome.kind === "answered") this.writeAllowed(res, ctx, protocol, outcome.answer);
          },
        },
        hold:
          holds === undefined || policy === null
            ? null
            : createHoldHook({
                policy,
                holds: holds.service,
                // Only the nginx protocol can answer a hold (its answer is not an allow), and only
                // when Portcullis can forward the release itself.
                capture: protocol === "nginx" && forwarder !== null ? (ctx) => heldRequestOf(ctx, options.pipeline.credentialHeaders) : null,
                logger: options.logger,
              }),
      });
    this.nginx = lifecycle("nginx");
    this.forwardAuth = lifecycle("forward-auth");
    if (holds !== undefined && forwarder !== null) holds.service.setRequestReleaser(heldReleaser(forwarder, options.identity, options.scheme ?? "http", this.now));
  }

  /** The node:http request listener. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    const requestId = randomUUID();
    this.listener.track(res);
    this.serve(req, res, requestId).catch((err: unknown) => {
      this.options.logger.error({ requestId, err }, "unhandled authorizer error");
      sendDenial(res, deny("INTERNAL"), requestId, { close: true });
    });
  };

  private async serve(req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> {
    const url = req.url ?? "";
    const method = req.method ?? "";
    const path = url.split("?", 1)[0] ?? "";
    const socketAddress = req.socket.remoteAddress;
    const nginx = path === NGINX_PATH;
    if (!nginx && url.startsWith(OWN_PREFIX)) {
      await this.ownEndpoint(req, res, path, requestId);
      return;
    }
    const lifecycle = nginx ? this.nginx : this.forwardAuth;
    let target = url;
    let refusal: Denial | null = null;
    const peer = socketAddress === undefined ? null : parseIp(socketAddress);
    if (peer === null || !this.trusted.has(peer)) {
      refusal = deny("AUTHORIZER_PEER_UNTRUSTED", `peer ${socketAddress ?? "(none)"}`);
    } else if (nginx) {
      const original = req.headers[ORIGINAL_URI];
      if (typeof original !== "string" || !original.startsWith("/")) refusal = deny("HTTP_MALFORMED", `${ORIGINAL_URI} missing or not an origin-form target`);
      else target = original;
    }
    let body: Buffer | Denial;
    if (refusal !== null) {
      req.resume();
      body = refusal;
    } else {
      const read = readBody(req, this.bodyLimit);
      body = read instanceof Promise ? await read : read;
    }
    const headers = nginx ? withoutOriginalUri(req.headers) : req.headers;
    await lifecycle.serve({ method, url: target, headers, body, socketAddress }, requestId, res);
  }

  /**
   * Hand on: the allowed answer's headers — the identity headers over the target the proxy will
   * forward (nginx: the target without a dialect's credential parameter, which nginx forwards as
   * `Portcullis-Target`; forward-auth: the original target, which the proxy forwards unchanged)
   * and the body as the client sent it.
   */
  private allow(ctx: RequestContext, protocol: Protocol): Allowed {
    const out: Allowed = {};
    const target = protocol === "nginx" ? (ctx.credential?.forwarded?.(ctx) ?? ctx).url : ctx.url;
    const key = ctx.key;
    if (key !== null && ctx.client !== null) {
      const record = key.record;
      this.options.identity.write(
        out,
        ctx.method,
        target,
        ctx.body,
        { requestId: ctx.requestId, keyId: record.id, account: record.account, subAccount: record.subAccount, scopes: record.scopes, clientIp: ctx.client.text, timestamp: this.now() },
        key.scopesText,
      );
    } else {
      out["portcullis-request-id"] = ctx.requestId;
    }
    if (protocol === "nginx") out[TARGET_HEADER] = target;
    return out;
  }

  private writeAllowed(res: ServerResponse, ctx: RequestContext, protocol: Protocol, headers: Allowed): void {
    if (res.headersSent) return;
    const extra: Record<string, string> = {};
    addLimitHeaders(extra, ctx);
    res.writeHead(protocol === "nginx" ? NGINX_ALLOW_STATUS : 200, { ...headers, ...extra, "cache-control": "no-store", "content-length": 0, ...(this.listener.closing ? { connection: "close" } : {}) });
    res.end();
  }

  /** Portcullis's own endpoints beside the authorizer: time, health, sessions, held operations. */
  private async ownEndpoint(req: IncomingMessage, res: ServerResponse, path: string, requestId: string): Promise<void> {
    const sessions = this.options.sessions;
    if (sessions !== undefined && SessionEndpoints.serves(path)) {
      await sessions.serve(req, res, requestId, "authorizer");
      return;
    }
    const operations = this.options.holds?.operations;
    if (operations !== undefined && OperationEndpoints.serves(path)) {
      await operations.serve(req, res, requestId);
      return;
    }
    req.resume();
    const method = req.method ?? "";
    if (path === "/portcullis/v1/time" && (method === "GET" || method === "HEAD")) {
      sendJson(res, 200, JSON.stringify({ serverTime: this.now() }), requestId);
      return;
    }
    if (path === "/portcullis/v1/health" && (method === "GET" || method === "HEAD")) {
      const closing = this.listener.closing;
      sendJson(res, closing ? 503 : 200, JSON.stringify({ status: closing ? "draining" : "ok" }), requestId);
      return;
    }
    sendDenial(res, deny("ROUTE_NOT_FOUND"), requestId);
  }

  listen(port: number, host = "127.0.0.1"): Promise<AddressInfo> {
    return this.listener.listen(port, host);
  }

  /** Graceful shutdown: stop accepting, let in-flight requests finish, close what is left after `drainMs`. */
  async close(drainMs = 10_000): Promise<void> {
    if (this.listener.closing) return;
    await this.listener.close(drainMs);
    await this.options.holds?.forwarder?.close();
  }
}

/** The request's headers as the client sent them: nginx's X-Original-URI is the protocol's, not the client's. */
function withoutOriginalUri(headers: IncomingMessage["headers"]): IncomingMessage["headers"] {
  const out: IncomingMessage["headers"] = {};
  for (const name in headers) if (name !== ORIGINAL_URI) out[name] = headers[name];
  return out;
}
