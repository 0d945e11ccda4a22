import { randomUUID } from "node:crypto";
import type { TlsCredentials } from "./tls.js";
import { peerCertThumbprint } from "../net/client-cert.js";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { DecisionRecorder } from "../audit/log.js";
import { type Denial, deny } from "../errors/catalogue.js";
import { SessionEndpoints } from "./session-endpoints.js";
import { isProbe, serveProbe } from "./probes.js";
import type { Readiness } from "../core/readiness.js";
import type { Logger } from "../log/logger.js";
import type { RequestContext } from "../contract/request.js";
import { Lifecycle, type Outcome } from "../pipeline/lifecycle.js";
import type { Pipeline } from "../pipeline/pipeline.js";
import { readBody, sendDenial, sendJson, serverTimingHeader, whenClosed } from "./http.js";
import type { IdentitySigner } from "./identity.js";
import { ServerLifecycle } from "./lifecycle.js";
import { type Forwarder, addForwarding, heldReleaser, heldRequestOf, upstreamRequestHeaders } from "./proxy.js";
import { renderRefusal } from "./render.js";
import { addLimitHeaders } from "../limits/headers.js";
import { addKeyWarning } from "../keys/warning.js";
import type { UpgradeHandler } from "./websocket/index.js";
import type { PolicyDecider } from "../contract/policy.js";
import { createHoldHook } from "../holds/hook.js";
import type { HoldService } from "../holds/service.js";
import { OperationEndpoints } from "./operation-endpoints.js";
import type { WalletEndpoints } from "./wallet-endpoints.js";
import { HPKE_SUITE, type HpkeKeyring } from "../custody/hpke.js";

export interface GatewayOptions {
  readonly pipeline: Pipeline;
  readonly forwarder: Forwarder;
  /** Serve HTTPS (docs/tls.md): the listener's certificate, key and mutual TLS; absent: plain HTTP. */
  readonly tls?: TlsCredentials | undefined;
  readonly identity: IdentitySigner;
  readonly logger: Logger;
  /** Largest request body accepted, in bytes. Default 1 MiB. */
  readonly bodyLimit?: number;
  /** The scheme clients use (for X-Forwarded-Proto). */
  readonly scheme?: "http" | "https";
  readonly now?: () => number;
  /** The session endpoints (logon, refresh, logout); without them those paths are not found. */
  readonly sessions?: SessionEndpoints;
  /** Wallet logon, agent registration and revocation (docs/wallets.md); absent: not served. */
  readonly wallets?: WalletEndpoints;
  /** WebSocket upgrades (websocket/proxy.ts); without it, an upgrade request is served as plain HTTP. */
  readonly websocket?: UpgradeHandler;
  /**
   * Benchmark baseline only: forward every request without running the pipeline (no
   * authentication, no identity headers). Never set in a deployment; `portcullis start` cannot.
   */
  readonly passThrough?: boolean;
  /** Records every decision in the audit log (the core's `audit`). */
  readonly audit?: DecisionRecorder | undefined;
  /**
   * Stage 10: the high-value policy and the hold service (docs/approvals.md). The gateway holds what
   * the policy holds, releases ready operations through its forwarder, and serves
   * /portcullis/v1/operations/{id} (with `operations`). Without it, nothing is judged.
   */
  readonly holds?: { readonly policy: PolicyDecider | null; readonly service: HoldService; readonly operations?: OperationEndpoints } | undefined;
  /** The dependencies /portcullis/v1/readyz checks (gateway/probes.ts); without it, ready means alive. */
  readonly readiness?: Readiness | null;
  /** The HPKE keys of sealed orders (docs/sealed-orders.md): served at /portcullis/v1/hpke; null or absent: not found there. */
  readonly sealing?: HpkeKeyring | null;
}

/** The gateway's HPKE public keys (docs/sealed-orders.md). */
export const HPKE_PATH = "/portcullis/v1/hpke";
/** The largest answer to an order the open-notional ledger reads (larger ones keep their reservation). */
const ANSWER_READ_LIMIT = 64 * 1024;

/** The gateway's own endpoints, under /portcullis/v1/ so they never collide with the upstream's. */
const OWN_PREFIX = "/portcullis/";

/**
 * The gateway: an HTTP reverse proxy that runs every request through the pipeline and forwards
 * the ones it allows. Bad input of any kind is answered with a JSON error and a stable code;
 * anything unexpected is logged with the request id and answered 500 without details. When the
 * pipeline records stage timings (its `timing` option), every answer carries Server-Timing.
 */
export class Gateway {
  readonly server: Server;
  private readonly options: GatewayOptions;
  private readonly bodyLimit: number;
  private readonly now: () => number;
  private readonly scheme: string;
  private readonly timingNames: readonly string[];
  private readonly lifecycle: Lifecycle<ServerResponse, Denial | null>;
  private readonly listener: ServerLifecycle;

  constructor(options: GatewayOptions) {
    this.options = options;
    this.bodyLimit = options.bodyLimit ?? 1024 * 1024;
    if (!Number.isSafeInteger(this.bodyLimit) || this.bodyLimit < 0) throw new TypeError("bodyLimit must be a non-negative integer");
    this.now = options.now ?? Date.now;
    this.scheme = options.scheme ?? "http";
    this.timingNames = options.pipeline.stageNames;
    this.listener = new ServerLifecycle({ requestTimeout: 30_000, headersTimeout: 10_000, keepAliveTimeout: 5_000, bodyLimit: this.bodyLimit, tls: options.tls }, this.handle);
    this.server = this.listener.server;
    const websocket = options.websocket;
    if (websocket !== undefined) {
      this.server.on("upgrade", (req: IncomingMessage, socket: Socket, head: Buffer) => {
        websocket.handleUpgrade(req, socket, head, this.listener.admit);
      });
    }
    this.lifecycle = new Lifecycle({
      pipeline: options.pipeline,
      surface: "gateway",
      audit: options.audit ?? null,
      logger: options.logger,
      exchange: {
        handOn: (ctx, res) => this.forward(ctx, res),
        render: (ctx, outcome, res) => {
          this.render(ctx, outcome, res);
        },
        untilDone: whenClosed,
      },
      hold: options.holds?.policy === undefined || options.holds.policy === null ? null : createHoldHook({ policy: options.holds.policy, holds: options.holds.service, capture: (ctx) => heldRequestOf(ctx, options.pipeline.credentialHeaders), logger: options.logger }),
    });
    options.holds?.service.setRequestReleaser(heldReleaser(options.forwarder, options.identity, this.scheme, this.now));
  }

  private get closing(): boolean {
    return this.listener.closing;
  }

  /** The node:http request listener (for use with an existing server). */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    const requestId = randomUUID();
    this.listener.track(res);
    this.serve(req, res, requestId).catch((err: unknown) => {
      this.options.logger.error({ requestId, err }, "unhandled gateway error");
      sendDenial(res, deny("INTERNAL"), requestId, { close: true });
    });
  };

  private async serve(req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> {
    const url = req.url ?? "";
    const method = req.method ?? "";
    if (url.startsWith(OWN_PREFIX)) {
      const path = url.split("?", 1)[0] ?? "";
      if (isProbe(path)) {
        // Before anything else: unauthenticated, not audited, charged to no limit.
        req.resume();
        const probed = serveProbe(path, method, res, requestId, this.listener.draining, this.options.readiness ?? null);
        if (probed !== false) {
          if (probed !== true) await probed;
          return;
        }
      }
      const sessions = this.options.sessions;
      if (sessions !== undefined && SessionEndpoints.serves(url.split("?", 1)[0] ?? "")) {
        await sessions.serve(req, res, requestId);
        return;
      }
      const wallets = this.options.wallets;
      if (wallets !== undefined && wallets.serves(url.split("?", 1)[0] ?? "")) {
        await wallets.serve(req, res, requestId);
        return;
      }
      const operations = this.options.holds?.operations;
      if (operations !== undefined && OperationEndpoints.serves(url.split("?", 1)[0] ?? "")) {
        await operations.serve(req, res, requestId);
        return;
      }
      req.resume();
      const sealing = this.options.sealing ?? null;
      if (sealing !== null && (method === "GET" || method === "HEAD") && url.split("?", 1)[0] === HPKE_PATH) {
        await serveHpkeKeys(sealing, res, requestId);
        return;
      }
      this.ownEndpoint(method, url, res, requestId);
      return;
    }
    let body = readBody(req, this.bodyLimit);
    if (body instanceof Promise) body = await body;
    if (this.options.passThrough === true && Buffer.isBuffer(body)) {
      await this.passThrough(method, url, req, body, res, requestId);
      return;
    }
    await this.lifecycle.serve({ method, url, headers: req.headers, body, socketAddress: req.socket.remoteAddress, clientCert: peerCertThumbprint(req.socket) }, requestId, res);
  }

  /** Hand on: forwards an allowed request upstream, streaming the answer back; an upstream failure is its outcome. */
  private async forward(ctx: RequestContext, res: ServerResponse): Promise<Denial | null> {
    const headers = upstreamRequestHeaders(ctx.headers, this.options.pipeline.credentialHeaders);
    addForwarding(headers, { clientIp: ctx.client?.text ?? "", scheme: this.scheme, authority: ctx.authority, requestId: ctx.requestId });
    // Credentials inside the target or body (a dialect's signature parameter) stay here too.
    const outgoing = ctx.credential?.forwarded?.(ctx) ?? ctx;
    const key = ctx.key;
    if (key !== null && ctx.client !== null) {
      const record = key.record;
      this.options.identity.write(
        headers,
        ctx.method,
        outgoing.url,
        outgoing.body,
        {
          requestId: ctx.requestId,
          keyId: record.id,
          account: record.account,
          subAccount: record.subAccount,
          scopes: record.scopes,
          clientIp: ctx.client.text,
          timestamp: this.now(),
        },
        key.scopesText,
      );
    }
    const responseHeaders: Record<string, string> = { "portcullis-request-id": ctx.requestId };
    addLimitHeaders(responseHeaders, ctx);
    if (key !== null) addKeyWarning(responseHeaders, key, ctx.now);
    if (ctx.timings !== null) {
      // Server-Timing must be set before the upstream's headers are written; the upstream's own
      // duration is only known afterwards, so it is reported in logs, not in the header.
      responseHeaders["server-timing"] = serverTimingHeader(this.timingNames, ctx.timings);
    }
    const request = { method: ctx.method, url: outgoing.url, headers, body: outgoing.body };
    // An order of a key with maxOpenNotional: its answer settles the ledger before the client sees it.
    const failure =
      ctx.openOrder === null
        ? await this.options.forwarder.forward(request, res, responseHeaders)
        : await this.options.forwarder.forwardRead(request, res, responseHeaders, ANSWER_READ_LIMIT, (status, body) => this.options.pipeline.openNotional.settle(ctx, { status, body }, false));
    if (failure !== null) {
      ctx.outcome = failure.code;
      this.options.logger.warn({ requestId: ctx.requestId, code: failure.code, detail: failure.detail }, "upstream failure");
    }
    return failure;
  }

  /** Render: a refusal, or an upstream failure (nothing was sent yet), in the caller's dialect. */
  private render(ctx: RequestContext, outcome: Outcome<Denial | null>, res: ServerResponse): void {
    renderRefusal(res, ctx, outcome, { now: this.now(), timingNames: this.timingNames, close: this.closing, refusal: (answer) => answer });
  }

  private async passThrough(method: string, url: string, req: IncomingMessage, body: Buffer, res: ServerResponse, requestId: string): Promise<void> {
    const headers = upstreamRequestHeaders(req.headers, this.options.pipeline.credentialHeaders);
    const host = req.headers.host;
    addForwarding(headers, { clientIp: req.socket.remoteAddress ?? "", scheme: this.scheme, authority: host === undefined ? undefined : host.toLowerCase(), requestId });
    const failure = await this.options.forwarder.forward({ method, url, headers, body }, res, { "portcullis-request-id": requestId });
    if (failure !== null) sendDenial(res, failure, requestId);
  }

  private ownEndpoint(method: string, url: string, res: ServerResponse, requestId: string): void {
    const path = url.split("?", 1)[0];
    if (path === "/portcullis/v1/time" && (method === "GET" || method === "HEAD")) {
      sendJson(res, 200, JSON.stringify({ serverTime: this.now() }), requestId);
      return;
    }
    if (path === "/portcullis/v1/health" && (method === "GET" || method === "HEAD")) {
      // Draining from the drain's start (gateway.drainDelay), like healthz: a load balancer probing
      // this older path stops sending before the listener closes, not after.
      const draining = this.listener.draining;
      sendJson(res, draining ? 503 : 200, JSON.stringify({ status: draining ? "draining" : "ok" }), requestId, draining ? { close: true } : undefined);
      return;
    }
    sendDenial(res, deny("ROUTE_NOT_FOUND"), requestId);
  }

  /**
   * Starts draining: /portcullis/v1/healthz and readyz answer 503 DRAINING and answers close their
   * connections, while requests are still served (until `close`).
   */
  drain(): void {
    this.listener.draining = true;
  }

  listen(port: number, host = "127.0.0.1"): Promise<AddressInfo> {
    return this.listener.listen(port, host);
  }

  /**
   * Graceful shutdown: stop accepting connections, let in-flight requests finish (answering with
   * `Connection: close`), then close what is left after `drainMs` and release the upstream pool.
   */
  async close(drainMs = 10_000): Promise<void> {
    if (this.closing) return;
    // WebSockets first (1001): an upgraded socket would otherwise hold the server open.
    await this.options.websocket?.close(Math.min(drainMs, 1_000));
    await this.listener.close(drainMs);
    await this.options.forwarder.close();
  }
}

/**
 * GET /portcullis/v1/hpke: the suite and the keys a client may seal with, the current one first,
 * cacheable (public) until the current one stops being current. Without a current key (the
 * rotation timer has not run yet) one is made first; when the store cannot, 503 CUSTODY_UNAVAILABLE.
 */
async function serveHpkeKeys(sealing: HpkeKeyring, res: ServerResponse, requestId: string): Promise<void> {
  if (!sealing.hasCurrent()) {
    try {
      await sealing.refresh();
    } catch {
      sendDenial(res, deny("CUSTODY_UNAVAILABLE", "the HPKE keys could not be rotated"), requestId);
      return;
    }
  }
  const { keys, maxAge } = sealing.published();
  sendJson(res, 200, JSON.stringify({ suite: HPKE_SUITE, keys }), requestId, undefined, { "cache-control": `public, max-age=${maxAge}` });
}
