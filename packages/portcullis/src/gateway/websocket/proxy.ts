import { randomUUID } from "node:crypto";
import { peerCertThumbprint } from "../../net/client-cert.js";
import type { IncomingMessage, RequestListener } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer } from "ws";
import type { DecisionRecorder } from "../../audit/log.js";
import { RouteTable } from "../../authz/routes.js";
import type { CoreEvent, Portcullis } from "../../core/core.js";
import type { MessageSigning, RequestContext } from "../../contract/request.js";
import { type Denial, deny } from "../../errors/catalogue.js";
import type { Environment } from "../../contract/ids.js";
import type { Logger } from "../../log/logger.js";
import { Lifecycle, type Outcome } from "../../pipeline/lifecycle.js";
import type { PolicyDecider } from "../../contract/policy.js";
import { createHoldHook } from "../../holds/hook.js";
import type { HoldService } from "../../holds/service.js";
import type { IdentitySigner } from "../identity.js";
import type { WebSocketRoute, WebSocketSettings } from "./config.js";
import { Connection, type ConnectionContext, MESSAGE_EXCHANGE, type Timers, realTimers } from "./connection.js";
import type { Identity } from "./identity.js";
import { refuse, serveAsHttp } from "./http.js";
import { type MessageRenderer, createBinanceMessageRenderer, nativeRenderer } from "./messages.js";

export interface WebSocketProxyOptions {
  readonly core: Portcullis;
  readonly settings: WebSocketSettings;
  readonly environment: Environment;
  readonly identity: IdentitySigner;
  /** The upstream's origin, http(s)://host:port; its WebSocket origin is ws(s)://host:port. */
  readonly upstream: string;
  readonly upstreamTimeoutMs?: number;
  readonly futureSkewMs?: number;
  /** The scheme clients use (X-Forwarded-Proto to the upstream). */
  readonly scheme?: "http" | "https";
  readonly logger: Logger;
  readonly now?: () => number;
  /** Expiry timers (tests drive them from a frozen clock). */
  readonly timers?: Timers;
  /** Where upgrades and messages are audited (surface "websocket"). Default: the core's audit log; null: nowhere. */
  readonly audit?: DecisionRecorder | null;
  /**
   * Stage 10 for messages (docs/approvals.md): the policy judges every message that carries an
   * operation, as it judges the REST twin. A message cannot be held for later release (its
   * connection may be gone by then): one the policy would hold is refused, HOLD_NOT_SUPPORTED.
   * Without it, nothing is judged.
   */
  readonly holds?: { readonly policy: PolicyDecider; readonly service: HoldService } | null;
}

/** An upgrade as the lifecycle answers it: the request, its socket, and the route it asks for. */
interface UpgradeTarget {
  readonly req: IncomingMessage;
  readonly socket: Duplex;
  readonly head: Buffer;
  readonly route: WebSocketRoute | null;
}

const EMPTY = Buffer.alloc(0);
const KEY_RE = /^[A-Za-z0-9+/]{22}==$/;
const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * The gateway's WebSocket proxy (docs/websocket.md). An upgrade request to a configured route runs
 * through the pipeline like any request — signed natively with an API key or a session token, or,
 * on a route that allows it, unsigned and charged to the address — so every refusal code, limit
 * and replay check applies, and a refusal is an HTTP answer before the upgrade completes. Allowed,
 * the gateway opens its own connection to the upstream for the identity (signed identity headers
 * on its upgrade), and only then completes the client's upgrade. Every message is then checked
 * (connection.ts). The proxy watches the core for every change to a key or session a connection
 * depends on and closes those connections at once, with a 4xxx code and the reason's code.
 */
export class WebSocketProxy {
  private readonly options: WebSocketProxyOptions;
  private readonly byPath: ReadonlyMap<string, WebSocketRoute>;
  /** Upgrades through the request lifecycle: signed ones, and unsigned ones on anonymous routes. */
  private readonly signed: Lifecycle<UpgradeTarget, Denial | null>;
  private readonly anonymous: Lifecycle<UpgradeTarget, Denial | null>;
  private readonly renderers: ReadonlyMap<WebSocketRoute, MessageRenderer>;
  /** Each route's scheme's message signing (null on a native route: messages are never signed). */
  private readonly signing: ReadonlyMap<WebSocketRoute, MessageSigning | null>;
  private readonly wss: WebSocketServer;
  private readonly ctx: ConnectionContext;
  private readonly connections = new Set<Connection>();
  private readonly byKey = new Map<string, Set<Connection>>();
  private readonly bySession = new Map<string, Set<Connection>>();
  private readonly protocolOf = new WeakMap<IncomingMessage, string | false>();
  private readonly requestIdOf = new WeakMap<IncomingMessage, string>();
  private readonly unwatch: () => void;
  private readonly heartbeat: NodeJS.Timeout;
  private closing = false;

  constructor(options: WebSocketProxyOptions) {
    this.options = options;
    const settings = options.settings;
    this.byPath = new Map(settings.routes.map((r) => [r.path, r]));
    const core = options.core;
    const audit = options.audit === undefined ? core.audit : options.audit;
    const upgrades = {
      handOn: (ctx: RequestContext, t: UpgradeTarget) => this.complete(ctx, t),
      render: (ctx: RequestContext, outcome: Outcome<Denial | null>, t: UpgradeTarget) => {
        const denial = outcome.kind === "refused" ? outcome.denial : outcome.kind === "answered" ? outcome.answer : deny("INTERNAL");
        if (denial !== null) refuse(t.socket, denial, ctx.requestId, ctx.route === null ? null : ctx, ctx.renderer ?? undefined);
      },
    };
    const upgradeLifecycle = (routes: RouteTable): Lifecycle<UpgradeTarget, Denial | null> =>
      new Lifecycle({ pipeline: core.createPipeline(routes), exchange: upgrades, surface: "websocket", audit, logger: options.logger });
    this.signed = upgradeLifecycle(new RouteTable(settings.routes.map((r) => r.signedUpgrade)));
    this.anonymous = upgradeLifecycle(new RouteTable(settings.routes.flatMap((r) => (r.anonymousUpgrade === null ? [] : [r.anonymousUpgrade]))));
    const futureSkewMs = options.futureSkewMs ?? 1000;
    const binance = createBinanceMessageRenderer(futureSkewMs);
    this.renderers = new Map(settings.routes.map((r) => [r, r.dialect === "binance" ? binance : nativeRenderer]));
    this.signing = new Map(
      settings.routes.map((r) => {
        if (r.dialect === null) return [r, null];
        const signing = core.schemes.get(r.dialect)?.message;
        if (signing === undefined) throw new TypeError(`${r.id}: the ${r.dialect} scheme does not sign WebSocket messages`);
        return [r, signing];
      }),
    );
    const upstream = new URL(options.upstream);
    if (upstream.protocol !== "http:" && upstream.protocol !== "https:") throw new TypeError("the upstream must be an http:// or https:// origin");
    const now = options.now ?? Date.now;
    this.ctx = {
      checks: { cache: core.cache, sessions: core.sessions, environment: options.environment },
      messages: new Lifecycle({
        pipeline: core.createPipeline(new RouteTable([]), "messages"),
        exchange: MESSAGE_EXCHANGE,
        surface: "websocket",
        audit,
        logger: options.logger,
        hold: options.holds === undefined || options.holds === null ? null : createHoldHook({ policy: options.holds.policy, holds: options.holds.service, capture: null, logger: options.logger }),
      }),
      identity: options.identity,
      upstream: `${upstream.protocol === "https:" ? "wss:" : "ws:"}//${upstream.host}`,
      upstreamTimeoutMs: options.upstreamTimeoutMs ?? 10_000,
      maxUpstreamMessageBytes: Math.max(settings.maxMessageBytes, 4 * 1024 * 1024),
      maxPendingMessages: settings.maxPendingMessages,
      scheme: options.scheme ?? "http",
      logger: options.logger,
      now,
      timers: options.timers ?? realTimers,
      track: (connection, keyId, sessionId) => {
        this.track(connection, keyId, sessionId);
      },
      untrack: (connection, keyId) => {
        this.untrack(connection, keyId);
      },
    };
    this.wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      maxPayload: settings.maxMessageBytes,
      perMessageDeflate: false,
      handleProtocols: (_protocols, req) => this.protocolOf.get(req) ?? false,
    });
    // The 101 carries the upgrade's request id, like every other answer of the gateway.
    this.wss.on("headers", (headers: string[], req: IncomingMessage) => {
      const id = this.requestIdOf.get(req);
      if (id !== undefined) headers.push(`Portcullis-Request-Id: ${id}`);
    });
    this.unwatch = core.watch((event) => {
      this.changed(event);
    });
    this.heartbeat = setInterval(() => {
      for (const c of this.connections) c.heartbeat();
    }, settings.pingIntervalMs);
    this.heartbeat.unref();
  }

  /** Not narrowed across awaits, unlike a read of `closing`. */
  private isClosing(): boolean {
    return this.closing;
  }

  /** Open client connections (for tests and metrics). */
  get size(): number {
    return this.connections.size;
  }

  /** Does a WebSocket route serve this request target? */
  serves(url: string): boolean {
    return this.byPath.has(url.split("?", 1)[0] ?? "");
  }

  /**
   * node:http's 'upgrade' listener. Never throws; every failure is an HTTP answer on the socket.
   * An upgrade to anything but a WebSocket (h2c, say) is served by `http` as the plain request it
   * also is, as it was before the gateway listened for upgrades.
   */
  readonly handleUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer, http: RequestListener): void => {
    socket.on("error", () => undefined);
    if ((req.headers.upgrade ?? "").toLowerCase() !== "websocket") {
      serveAsHttp(req, socket, http);
      return;
    }
    const requestId = randomUUID();
    this.upgrade(req, socket, head, requestId).catch((err: unknown) => {
      this.options.logger.error({ requestId, err }, "websocket upgrade fault");
      refuse(socket, deny("INTERNAL"), requestId, null, undefined);
    });
  };

  /**
   * An upgrade through the request lifecycle (surface "websocket"): decided by the pipeline like
   * any request, audited, and, allowed, completed by `complete`. What is refused before the
   * stages (the gateway closing, no route, not a valid handshake) is audited all the same.
   */
  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, requestId: string): Promise<void> {
    const url = req.url ?? "";
    const route = this.byPath.get(url.split("?", 1)[0] ?? "") ?? null;
    const target: UpgradeTarget = { req, socket, head, route };
    const malformed = handshakeProblem(req);
    const early = this.closing
      ? deny("GATEWAY_CLOSING")
      : route === null
        ? deny("ROUTE_NOT_FOUND", "no websocket route")
        : malformed !== null
          ? deny("HTTP_MALFORMED", malformed)
          : null;
    const signed = req.headers["signature-input"] !== undefined || req.headers.signature !== undefined;
    const lifecycle = !signed && route?.anonymous === true ? this.anonymous : this.signed;
    await lifecycle.serve({ method: "GET", url, headers: req.headers, body: early ?? EMPTY, socketAddress: req.socket.remoteAddress, clientCert: peerCertThumbprint(req.socket) }, requestId, target);
  }

  /**
   * The upgrade's hand on: the connection for the identity the pipeline found (or none), its
   * upstream leg opened, then the client's upgrade completed. Returns why it could not be (an
   * HTTP answer before the upgrade), or null.
   */
  private async complete(ctx: RequestContext, t: UpgradeTarget): Promise<Denial | null> {
    const { req, socket, head, route } = t;
    const client = ctx.client;
    if (route === null || client === null) return this.failed(ctx, deny("INTERNAL", "an upgrade without its route or client"));
    const key = ctx.key;
    const identity: Identity | null =
      key === null
        ? null
        : {
            keyId: key.record.id,
            scheme: "native",
            via: "upgrade",
            token: key.session === null ? null : ctx.keyId,
            sessionId: key.session?.sid ?? null,
            epoch: key.session?.ep ?? key.record.sessionEpoch,
            since: ctx.now,
          };
    if (gone(socket)) return null;
    const connection = new Connection(this.ctx, route, client, ctx.clientCert, ctx.url, ctx.authority, this.renderers.get(route) ?? nativeRenderer, this.signing.get(route) ?? null, identity, key, requestedProtocols(req));
    this.connections.add(connection);
    const failure = await connection.prepare();
    if (failure !== null || gone(socket) || this.isClosing()) {
      connection.dispose();
      this.connections.delete(connection);
      return this.failed(ctx, failure ?? deny("GATEWAY_CLOSING"));
    }
    this.protocolOf.set(req, connection.protocol);
    this.requestIdOf.set(req, ctx.requestId);
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      ws.once("close", () => {
        this.connections.delete(connection);
      });
      connection.attach(ws);
    });
    return null;
  }

  /** An allowed upgrade that could not complete: its outcome, for the audit log. */
  private failed(ctx: RequestContext, denial: Denial): Denial {
    ctx.outcome = denial.code;
    this.options.logger.info({ requestId: ctx.requestId, code: denial.code, detail: denial.detail, route: ctx.route?.id, keyId: ctx.key?.record.id }, "websocket upgrade failed");
    return denial;
  }

  private changed(event: CoreEvent): void {
    if (event.kind === "session-ended") {
      for (const c of [...(this.bySession.get(event.sessionId) ?? [])]) c.sessionEnded(event.sessionId);
      return;
    }
    for (const id of event.ids) {
      for (const c of [...(this.byKey.get(id) ?? [])]) {
        c.keyChanged(id).catch((err: unknown) => {
          this.options.logger.error({ connection: c.id, err }, "websocket re-check failed");
          c.end(deny("INTERNAL"));
        });
      }
    }
  }

  private track(connection: Connection, keyId: string, sessionId: string | null): void {
    let set = this.byKey.get(keyId);
    if (set === undefined) this.byKey.set(keyId, (set = new Set()));
    set.add(connection);
    if (sessionId !== null) {
      let s = this.bySession.get(sessionId);
      if (s === undefined) this.bySession.set(sessionId, (s = new Set()));
      s.add(connection);
    }
  }

  /** Forgets `connection` for `keyId` (null: for everything). */
  private untrack(connection: Connection, keyId: string | null): void {
    const drop = (map: Map<string, Set<Connection>>, id: string): void => {
      const set = map.get(id);
      if (set === undefined) return;
      set.delete(connection);
      if (set.size === 0) map.delete(id);
    };
    if (keyId !== null) {
      drop(this.byKey, keyId);
      return;
    }
    for (const id of [...this.byKey.keys()]) drop(this.byKey, id);
    for (const id of [...this.bySession.keys()]) drop(this.bySession, id);
  }

  /**
   * Graceful shutdown: no new upgrades; every connection is closed with 1001 GATEWAY_CLOSING and
   * given `graceMs` to finish its closing handshake, then cut.
   */
  async close(graceMs = 1_000): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.unwatch();
    clearInterval(this.heartbeat);
    for (const c of this.connections) c.end(deny("GATEWAY_CLOSING"));
    const deadline = Date.now() + graceMs;
    while ([...this.connections].some((c) => !c.settled) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    for (const c of this.connections) c.terminate();
    this.wss.close();
  }
}

/** The client went away (read anew after every await). */
function gone(socket: Duplex): boolean {
  return socket.destroyed;
}

/** Why an upgrade request is not a valid WebSocket opening handshake (RFC 6455 section 4.2.1), or null. */
function handshakeProblem(req: IncomingMessage): string | null {
  if (req.method !== "GET") return "method";
  if ((req.headers.upgrade ?? "").toLowerCase() !== "websocket") return "upgrade";
  const key = req.headers["sec-websocket-key"];
  if (typeof key !== "string" || !KEY_RE.test(key)) return "sec-websocket-key";
  if (req.headers["sec-websocket-version"] !== "13") return "sec-websocket-version";
  return null;
}

function requestedProtocols(req: IncomingMessage): string[] {
  const header = req.headers["sec-websocket-protocol"];
  if (typeof header !== "string") return [];
  return header
    .split(",")
    .map((p) => p.trim())
    .filter((p) => TOKEN_RE.test(p))
    .slice(0, 8);
}

