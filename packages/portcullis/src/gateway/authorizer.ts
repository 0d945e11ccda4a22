import { randomUUID } from "node:crypto";
import type { TlsCredentials } from "./tls.js";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { DecisionRecorder } from "../audit/log.js";
import type { PolicyDecider } from "../contract/policy.js";
import type { RequestContext } from "../contract/request.js";
import { type Denial, deny } from "../errors/catalogue.js";
import { createHoldHook } from "../holds/hook.js";
import type { HoldService } from "../holds/service.js";
import { addLimitHeaders, limitHeaders } from "../limits/headers.js";
import type { Logger } from "../log/logger.js";
import { CidrSet, parseIp } from "../net/ip.js";
import { Lifecycle, type Outcome } from "../pipeline/lifecycle.js";
import type { Pipeline } from "../pipeline/pipeline.js";
import { readBody, renderDenial, sendDenial, sendJson } from "./http.js";
import type { IdentitySigner } from "./identity.js";
import { ServerLifecycle } from "./lifecycle.js";
import { OperationEndpoints } from "./operation-endpoints.js";
import { type Forwarder, heldReleaser, heldRequestOf } from "./proxy.js";
import { REFUSAL_HEADER, REFUSAL_KEY_INFO, RefusalTokens } from "./refusal-token.js";
import { renderRefusal } from "./render.js";
import { SessionEndpoints } from "./session-endpoints.js";
import type { WalletEndpoints } from "./wallet-endpoints.js";
import { isProbe, serveProbe } from "./probes.js";
import type { Readiness } from "../core/readiness.js";

/**
 * The authorizer ("gateway": { "mode": "authorizer" }, docs/deploy/authorizer.md): Portcullis
 * decides, the venue's own proxy (nginx, Envoy, HAProxy, Traefik) forwards. Three protocols on one
 * listener, each a thin surface over the one request lifecycle (audit surface "authorizer"):
 *
 * - nginx, `POST|GET|… /portcullis/v1/authz/nginx` with `X-Original-URI: <the client's target>`:
 *   nginx proxies the whole request here (method, headers, body) with `proxy_intercept_errors on`.
 *   Allowed: `399` with the identity headers and `Portcullis-Target` (the target to forward,
 *   a dialect's credential parameter removed); nginx's `error_page 399 = @venue` hands the request
 *   (its buffered body re-sent) to the venue's API with those headers. Refused or held: the answer
 *   itself (status, dialect body, RateLimit / Retry-After), which nginx passes to the client as is.
 * - nginx `auth_request`, `GET /portcullis/v1/authz/auth-request` (a subrequest: no body) with
 *   `X-Original-Method`, `X-Original-URI` and `X-Original-Body` (the original request's
 *   `content-length=…; transfer-encoding=…`), for requests without a body only: one that has or may
 *   have a body (nginx forwards it after an allow, and Portcullis never saw it), or whose
 *   X-Original-Body is missing, is refused AUTHORIZER_BODY_UNSEEN. Allowed: `200` with the identity
 *   headers (over the original method, `Portcullis-Target` and an empty body). Refused: `403` with
 *   the real refusal sealed in `Portcullis-Refusal` (refusal-token.ts), which nginx's
 *   `error_page 401 403 = @portcullis_refusal` brings back to `/portcullis/v1/authz/refusal` to be
 *   written with its real status. Never holds (an allow forwards at once): HOLD_NOT_SUPPORTED.
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
  /** Serve HTTPS (docs/tls.md) to the venue's proxy; absent: plain HTTP. */
  readonly tls?: TlsCredentials | undefined;
  readonly identity: IdentitySigner;
  readonly logger: Logger;
  /** The peers allowed to ask (the proxies): CIDR blocks; at least one. */
  readonly trustedProxies: readonly string[];
  /** Largest request body accepted, in bytes. Default 1 MiB. */
  readonly bodyLimit?: number;
  readonly now?: () => number;
  readonly sessions?: SessionEndpoints;
  /** Wallet logon, agent registration and revocation (docs/wallets.md); absent: not served. */
  readonly wallets?: WalletEndpoints;
  readonly audit?: DecisionRecorder | undefined;
  /**
   * Stage 10. With `forwarder` (the config's `gateway.upstream`), the nginx protocol holds what the
   * policy holds, and Portcullis releases it itself to the upstream; without it, a hold is refused
   * HOLD_NOT_SUPPORTED.
   */
  readonly holds?: { readonly policy: PolicyDecider | null; readonly service: HoldService; readonly operations?: OperationEndpoints; readonly forwarder: Forwarder | null } | undefined;
  /** The dependencies /portcullis/v1/readyz checks (gateway/probes.ts); without it, ready means alive. */
  readonly readiness?: Readiness | null;
  /** The scheme clients use (for X-Forwarded-Proto on released holds). */
  readonly scheme?: "http" | "https";
}

/** The nginx protocol's path; anything else outside /portcullis/ is a forward-auth request. */
export const NGINX_PATH = "/portcullis/v1/authz/nginx";
/** The nginx auth_request protocol's path (body-less requests only). */
export const AUTH_REQUEST_PATH = "/portcullis/v1/authz/auth-request";
/** Where nginx brings an auth_request refusal's token back to be written (error_page 401 403). */
export const REFUSAL_PATH = "/portcullis/v1/authz/refusal";
/** The auth_request protocol's header with the original request's method. */
export const ORIGINAL_METHOD = "x-original-method";
/** The auth_request protocol's header telling whether the original request has a body. */
export const ORIGINAL_BODY = "x-original-body";
/** The auth_request protocol's refusal status (nginx's auth_request passes only 401 and 403 on). */
export const AUTH_REQUEST_DENY_STATUS = 403;
/** The nginx protocol's answer to an allowed request: nginx intercepts it (error_page 399 = @venue). */
export const NGINX_ALLOW_STATUS = 399;
/** The header of an nginx protocol request that carries the client's request target ($request_uri). */
export const ORIGINAL_URI = "x-original-uri";
/** The target nginx forwards (the client's, a dialect's credential parameter removed). */
export const TARGET_HEADER = "portcullis-target";

const OWN_PREFIX = "/portcullis/";

type Protocol = "nginx" | "forward-auth" | "auth-request";

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
  private readonly authRequest: Lifecycle<ServerResponse, Allowed>;
  private readonly refusals: RefusalTokens;

  constructor(options: AuthorizerOptions) {
    this.options = options;
    this.bodyLimit = options.bodyLimit ?? 1024 * 1024;
    if (!Number.isSafeInteger(this.bodyLimit) || this.bodyLimit < 0) throw new TypeError("bodyLimit must be a non-negative integer");
    this.now = options.now ?? Date.now;
    this.trusted = new CidrSet(options.trustedProxies);
    if (this.trusted.size === 0) throw new TypeError("the authorizer needs trustedProxies: the proxies allowed to ask it");
    this.timingNames = options.pipeline.stageNames;
    this.refusals = new RefusalTokens(options.identity.deriveKey(REFUSAL_KEY_INFO));
    this.listener = new ServerLifecycle({ requestTimeout: 30_000, headersTimeout: 10_000, keepAliveTimeout: 75_000, bodyLimit: this.bodyLimit, tls: options.tls }, this.handle);
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
            if (protocol === "auth-request") {
              this.renderAuthRequest(res, ctx, outcome);
              return;
            }
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
    this.authRequest = lifecycle("auth-request");
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
    const authRequest = path === AUTH_REQUEST_PATH;
    const peer = socketAddress === undefined ? null : parseIp(socketAddress);
    const trusted = peer !== null && this.trusted.has(peer);
    if (isProbe(path)) {
      // Before anything else (the peer need not be a trusted proxy: a load balancer probes).
      req.resume();
      const probed = serveProbe(path, req.method ?? "", res, requestId, this.listener.draining, this.options.readiness ?? null);
      if (probed !== false) {
        if (probed !== true) await probed;
        return;
      }
    }
    if (path === REFUSAL_PATH) {
      this.serveRefusal(req, res, requestId, trusted ? null : deny("AUTHORIZER_PEER_UNTRUSTED", `peer ${socketAddress ?? "(none)"}`));
      return;
    }
    if (!nginx && !authRequest && url.startsWith(OWN_PREFIX)) {
      await this.ownEndpoint(req, res, path, requestId);
      return;
    }
    const lifecycle = nginx ? this.nginx : authRequest ? this.authRequest : this.forwardAuth;
    let target = url;
    let originalMethod = method;
    let refusal: Denial | null = null;
    if (!trusted) {
      refusal = deny("AUTHORIZER_PEER_UNTRUSTED", `peer ${socketAddress ?? "(none)"}`);
    } else if (nginx || authRequest) {
      const original = req.headers[ORIGINAL_URI];
      if (typeof original !== "string" || !original.startsWith("/")) refusal = deny("HTTP_MALFORMED", `${ORIGINAL_URI} missing or not an origin-form target`);
      else target = original;
      if (authRequest && refusal === null) {
        const asked = req.headers[ORIGINAL_METHOD];
        if (typeof asked !== "string" || !METHOD.test(asked)) refusal = deny("HTTP_MALFORMED", `${ORIGINAL_METHOD} missing or not a method`);
        else originalMethod = asked;
        if (refusal === null && !bodyless(req.headers[ORIGINAL_BODY])) refusal = deny("AUTHORIZER_BODY_UNSEEN", `${ORIGINAL_BODY}: ${String(req.headers[ORIGINAL_BODY] ?? "(missing)").slice(0, 100)}`);
      }
    }
    let body: Buffer | Denial;
    if (refusal !== null) {
      req.resume();
      body = refusal;
    } else {
      const read = readBody(req, this.bodyLimit);
      body = read instanceof Promise ? await read : read;
      // A subrequest carrying bytes was not made by the expected configuration (proxy_pass_request_body off).
      if (authRequest && Buffer.isBuffer(body) && body.length > 0) body = deny("AUTHORIZER_BODY_UNSEEN", "the auth_request subrequest carried a body");
    }
    const headers = nginx ? withoutOriginalUri(req.headers) : authRequest ? withoutOriginal(req.headers) : req.headers;
    // The venue's proxy forwards the body as sent: a sealed one could not reach the upstream opened
    // (docs/sealed-orders.md), so it is refused SEALED_NOT_SUPPORTED.
    await lifecycle.serve({ method: originalMethod, url: target, headers, body, socketAddress, opensSealed: false }, requestId, res);
  }

  /**
   * The auth_request protocol's answer. Allowed: 200 with the identity headers. Anything else:
   * 403 (nginx's auth_request passes only 401 and 403 on) with the refusal as the gateway would
   * write it — status, the dialect's body, RateLimit / Retry-After, request id — sealed in
   * Portcullis-Refusal for the refusal endpoint.
   */
  private renderAuthRequest(res: ServerResponse, ctx: RequestContext, outcome: Outcome<Allowed>): void {
    if (outcome.kind === "answered") {
      this.writeAllowed(res, ctx, "auth-request", outcome.answer);
      return;
    }
    if (res.headersSent) return;
    const denial = outcome.kind === "refused" ? outcome.denial : outcome.kind === "held" ? deny("HOLD_NOT_SUPPORTED") : deny("INTERNAL");
    const rendered = renderDenial(denial, ctx.requestId, ctx.renderer, limitHeaders(ctx));
    const token = this.refusals.seal(
      { status: rendered.status, body: rendered.body, headers: { "content-type": "application/json; charset=utf-8", ...rendered.headers, "portcullis-request-id": ctx.requestId } },
      this.now(),
    );
    res.writeHead(AUTH_REQUEST_DENY_STATUS, {
      [REFUSAL_HEADER]: token,
      "portcullis-request-id": ctx.requestId,
      "cache-control": "no-store",
      "content-length": 0,
      ...(this.listener.closing ? { connection: "close" } : {}),
    });
    res.end();
  }

  /**
   * The refusal endpoint: writes the refusal sealed in the Portcullis-Refusal token nginx brings
   * back (error_page 401 403 = @portcullis_refusal), with its real status. A missing, altered,
   * forged or expired token: AUTHORIZER_REFUSAL_INVALID. Only the trusted proxies may ask.
   */
  private serveRefusal(req: IncomingMessage, res: ServerResponse, requestId: string, refusal: Denial | null): void {
    req.resume();
    if (refusal !== null) {
      sendDenial(res, refusal, requestId, { close: this.listener.closing });
      return;
    }
    const opened = this.refusals.open(req.headers[REFUSAL_HEADER], this.now());
    if (!opened.ok) {
      this.options.logger.warn({ requestId, reason: opened.reason }, "refusal token refused");
      sendDenial(res, deny("AUTHORIZER_REFUSAL_INVALID", opened.reason), requestId, { close: this.listener.closing });
      return;
    }
    const sealed = opened.refusal;
    sendJson(res, sealed.status, sealed.body, sealed.headers["portcullis-request-id"] ?? requestId, { close: this.listener.closing }, sealed.headers);
  }

  /**
   * Hand on: the allowed answer's headers — the identity headers over the target the proxy will
   * forward (nginx: the target without a dialect's credential parameter, which nginx forwards as
   * `Portcullis-Target`; forward-auth: the original target, which the proxy forwards unchanged)
   * and the body as the client sent it.
   */
  private allow(ctx: RequestContext, protocol: Protocol): Allowed {
    const out: Allowed = {};
    const target = protocol === "forward-auth" ? ctx.url : (ctx.credential?.forwarded?.(ctx) ?? ctx).url;
    // auth_request: the venue receives no body (the protocol refuses every request that has one).
    const body = protocol === "auth-request" ? EMPTY : ctx.body;
    const key = ctx.key;
    if (key !== null && ctx.client !== null) {
      const record = key.record;
      this.options.identity.write(
        out,
        ctx.method,
        target,
        body,
        { requestId: ctx.requestId, keyId: record.id, account: record.account, subAccount: record.subAccount, scopes: record.scopes, clientIp: ctx.client.text, timestamp: this.now() },
        key.scopesText,
      );
    } else {
      out["portcullis-request-id"] = ctx.requestId;
    }
    if (protocol !== "forward-auth") out[TARGET_HEADER] = target;
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
    const wallets = this.options.wallets;
    if (wallets !== undefined && wallets.serves(path)) {
      await wallets.serve(req, res, requestId, "authorizer");
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
      // Draining from the drain's start, like healthz (see server.ts).
      const draining = this.listener.draining;
      sendJson(res, draining ? 503 : 200, JSON.stringify({ status: draining ? "draining" : "ok" }), requestId, draining ? { close: true } : undefined);
      return;
    }
    sendDenial(res, deny("ROUTE_NOT_FOUND"), requestId);
  }

  /** Starts draining: the probes answer 503 DRAINING, answers close their connections; requests are still served. */
  drain(): void {
    this.listener.draining = true;
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

const EMPTY = Buffer.alloc(0);
/** An HTTP method as nginx's $request_method gives it. */
const METHOD = /^[A-Z][A-Z-]{0,31}$/;
/**
 * Whether X-Original-Body (`content-length=$content_length; transfer-encoding=$http_transfer_encoding`)
 * says the original request has no body: no or a zero Content-Length and no Transfer-Encoding.
 * Missing, repeated or unreadable, it cannot tell, and the request may have one.
 */
function bodyless(value: string | string[] | undefined): boolean {
  if (typeof value !== "string") return false;
  const m = /^content-length=([0-9]*); transfer-encoding=(.*)$/s.exec(value);
  return m !== null && /^0*$/.test(m[1] ?? "x") && m[2] === "";
}

/** The client's headers without the auth_request protocol's own. */
function withoutOriginal(headers: IncomingMessage["headers"]): IncomingMessage["headers"] {
  const out: IncomingMessage["headers"] = {};
  for (const name in headers) if (name !== ORIGINAL_URI && name !== ORIGINAL_METHOD && name !== ORIGINAL_BODY) out[name] = headers[name];
  return out;
}

/** The request's headers as the client sent them: nginx's X-Original-URI is the protocol's, not the client's. */
function withoutOriginalUri(headers: IncomingMessage["headers"]): IncomingMessage["headers"] {
  const out: IncomingMessage["headers"] = {};
  for (const name in headers) if (name !== ORIGINAL_URI) out[name] = headers[name];
  return out;
}
