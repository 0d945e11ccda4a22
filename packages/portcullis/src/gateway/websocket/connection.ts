import { randomUUID } from "node:crypto";
import type WebSocket from "ws";
import type { RawData } from "ws";
import { type Credential, type MessageSigning, RequestContext } from "../../contract/request.js";
import { type Denial, type ErrorCode, deny } from "../../errors/catalogue.js";
import type { VerificationKey } from "../../contract/verification-key.js";
import type { Logger } from "../../log/logger.js";
import type { ClientAddress } from "../../net/client-address.js";
import type { Exchange, Lifecycle, Outcome } from "../../pipeline/lifecycle.js";
import type { IdentitySigner } from "../identity.js";
import { addForwarding } from "../proxy.js";
import { logonKeyDenial, sessionStatus } from "./binance.js";
import { closeCodeFor } from "./close-codes.js";
import { type BinanceSessionMethod, type WebSocketMethod, type WebSocketRoute, isBinanceSessionMethod } from "./config.js";
import { type Identity, IdentityCredential, type IdentityChecks, currentKey, expiryOf, isDenial } from "./identity.js";
import { type MessageId, type MessageRenderer, type Params, encodeRequest, isBadMessage, parseMessage } from "./messages.js";
import { UpstreamLeg } from "./upstream.js";

/** Timers for expiries, injectable so tests can drive them from a frozen clock. */
export interface Timers {
  set(fn: () => void, delayMs: number): unknown;
  clear(handle: unknown): void;
}

/** The longest delay setTimeout takes; a later expiry is re-armed when it fires. */
const MAX_DELAY_MS = 2 ** 31 - 1;
/** An upgrade carries no body: its identity headers bind the digest of no bytes. */
const NO_BODY = new Uint8Array(0);

export const realTimers: Timers = {
  set(fn, delayMs) {
    const t = setTimeout(fn, Math.min(Math.max(0, delayMs), MAX_DELAY_MS));
    t.unref();
    return t;
  },
  clear(handle) {
    clearTimeout(handle as NodeJS.Timeout);
  },
};

/** What every connection shares: the proxy's checks, message lifecycle, signer and registry. */
export interface ConnectionContext {
  /** Re-checks of an identity between messages (key changes, expiries). */
  readonly checks: IdentityChecks;
  /** Every message is decided, handed on, audited and answered through it (MESSAGE_EXCHANGE). */
  readonly messages: Lifecycle<MessageTarget, Denial | null>;
  readonly identity: IdentitySigner;
  /** The upstream's WebSocket origin (ws:// or wss://). */
  readonly upstream: string;
  readonly upstreamTimeoutMs: number;
  readonly maxUpstreamMessageBytes: number;
  readonly maxPendingMessages: number;
  /** The scheme clients use (X-Forwarded-Proto). */
  readonly scheme: string;
  readonly logger: Logger;
  readonly now: () => number;
  readonly timers: Timers;
  /** Revocation bookkeeping: which connections depend on which keys and sessions. */
  track(connection: Connection, keyId: string, sessionId: string | null): void;
  untrack(connection: Connection, keyId: string | null): void;
}

interface Leg {
  readonly leg: UpstreamLeg;
  /** Null for the anonymous leg. */
  readonly identity: Identity | null;
  /** Messages sent while it opens: answered with the failure if it never does. */
  readonly waiting: MessageId[];
}

function toBuffer(data: RawData): Buffer {
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
}

const EMPTY = Buffer.alloc(0);
const NO_HEADERS = Object.freeze({});
const NO_PARAMS: Params = Object.freeze({});
const NO_CREDENTIALS: ReadonlySet<string> = new Set();

/**
 * Refusals of a message acting for the connection's identity that mean the identity is over (the
 * key or session, checked by the pipeline's key stage, no longer holds): they end the connection
 * (with the reason's close code) rather than answer the message. A block earned by failures
 * (KEY_BLOCKED) is only the message's refusal.
 */
const IDENTITY_OVER: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "KEY_ID_MALFORMED",
  "KEY_UNKNOWN",
  "KEY_ENVIRONMENT_MISMATCH",
  "KEY_REVOKED",
  "KEY_SUSPENDED",
  "KEY_EXPIRED",
  "KEY_IDLE_EXPIRED",
  "KEY_CHANGED",
  "KEY_STORE_UNAVAILABLE",
  "DIALECT_NOT_ALLOWED",
  "IP_NOT_ALLOWED",
  "SESSION_INVALID",
  "SESSION_EXPIRED",
  "SESSION_REVOKED",
  "SESSION_ADDRESS_MISMATCH",
]);

/** What a message's lifecycle answers through: its connection, and the message. */
export class MessageTarget {
  /** What hand on does for it: forward it upstream, or answer a Binance session method. */
  action: "forward" | BinanceSessionMethod = "forward";

  constructor(
    readonly connection: Connection,
    readonly id: MessageId,
    /** The method ("" for a frame that is not a message). */
    readonly method: string,
    readonly params: Params | null,
  ) {}
}

/** The message surface's part in the lifecycle (the proxy builds the Lifecycle with it, once). */
export const MESSAGE_EXCHANGE: Exchange<MessageTarget, Denial | null> = {
  handOn: (ctx, target) => target.connection.handOn(ctx, target),
  render: (ctx, outcome, target) => {
    target.connection.render(ctx, outcome, target);
  },
};

/** Reasons that, on a Binance route, are first told in Binance's words (it revokes a session so). */
const BINANCE_REVOKED = deny("KEY_REVOKED");

/**
 * One client connection: its identity (from the upgrade, or a Binance logon), its upstream legs
 * (one per identity it acts for, see upstream.ts), and every message it sends, through the request
 * lifecycle in order: shape and method (default deny), then the pipeline's stages with the
 * message's credential (its own signature, or the connection's identity): key, freshness,
 * signature, scopes, then replay and limits together; then forwarded, re-serialised without its
 * credentials, on the identity's leg. A refused message is answered and the connection stays open; the connection is
 * closed only when its identity ends (ctx.track feeds changes to `keyChanged` / `sessionEnded`;
 * expiries arm a timer) or its upstream goes.
 */
export class Connection {
  readonly id = randomUUID();
  readonly connectedSince: number;
  /** The identity messages act for by default (null: anonymous). */
  identity: Identity | null;
  /** Why the connection ended (or is ending); null while it lives. */
  ending: Denial | null = null;
  /** Answered the last ping (heartbeat). */
  alive = true;
  private ws: WebSocket | null = null;
  private readonly legs = new Map<string, Leg>();
  private readonly ctx: ConnectionContext;
  private expiryTimer: unknown = null;
  private pending = 0;
  private paused = false;
  private chain: Promise<void> = Promise.resolve();
  private protocols: readonly string[];
  /** The parameters removed from every message forwarded: the route's scheme's credentials. */
  private readonly credentialParams: ReadonlySet<string>;

  constructor(
    ctx: ConnectionContext,
    readonly route: WebSocketRoute,
    readonly client: ClientAddress,
    /** The client certificate's thumbprint (mutual TLS, docs/tls.md), or null: checked for every message like the address. */
    readonly clientCert: string | null,
    /** The request target of the upgrade (path and query), forwarded as is. */
    readonly target: string,
    readonly authority: string | undefined,
    readonly renderer: MessageRenderer,
    /** How the route's scheme signs single messages (null: messages are never signed). */
    private readonly signing: MessageSigning | null,
    identity: Identity | null,
    private key: VerificationKey | null,
    protocols: readonly string[],
  ) {
    this.ctx = ctx;
    this.identity = identity;
    this.connectedSince = ctx.now();
    this.protocols = protocols;
    this.credentialParams = signing?.credentialParams ?? NO_CREDENTIALS;
  }

  /** Not narrowed across awaits, unlike a read of `ending` (a change may land during one). */
  private endedBy(): Denial | null {
    return this.ending;
  }

  private get log(): Logger {
    return this.ctx.logger;
  }

  /**
   * Before the upgrade completes: registers the identity, re-checks it (a change may have landed
   * while the pipeline ran), and opens the upstream leg for it. Null when the upgrade may
   * complete, else why not.
   */
  async prepare(): Promise<Denial | null> {
    const identity = this.identity;
    if (identity !== null) {
      this.ctx.track(this, identity.keyId, identity.sessionId);
      const current = await currentKey(this.ctx.checks, identity, this.client, this.clientCert, this.ctx.now());
      if (isDenial(current)) this.end(current);
      else this.key = current;
    }
    if (this.ending !== null) return this.ending;
    const leg = this.legFor(identity, this.key).leg;
    const failure = await leg.opened;
    if (failure !== null) {
      this.end(failure);
      return failure;
    }
    // A change may have ended the connection while its leg opened.
    const ended = this.endedBy();
    if (ended !== null) return ended;
    // The client gets the subprotocol the upstream chose, and later legs ask for that one.
    this.protocols = leg.protocol === "" ? [] : [leg.protocol];
    this.armExpiry();
    return null;
  }

  /** The subprotocol to complete the client's upgrade with (false: none). */
  get protocol(): string | false {
    return this.protocols[0] ?? false;
  }

  /** After the upgrade: the client's socket. */
  attach(ws: WebSocket): void {
    this.ws = ws;
    ws.on("message", (data, isBinary) => {
      this.onMessage(data, isBinary);
    });
    ws.on("pong", () => {
      this.alive = true;
    });
    ws.on("error", (err) => {
      this.log.debug({ connection: this.id, reason: err.message }, "websocket client error");
    });
    ws.on("close", (code) => {
      this.dispose(code);
    });
    if (this.ending !== null) this.closeSocket(this.ending);
    else this.log.info({ connection: this.id, route: this.route.id, keyId: this.identity?.keyId, client: this.client.text }, "websocket connected");
  }

  // --- ending --------------------------------------------------------------------------------

  /** Ends the connection because of `denial` (close code and reason from it). Idempotent. */
  end(denial: Denial): void {
    if (this.ending !== null) return;
    this.ending = denial;
    this.clearExpiry();
    for (const { leg } of this.legs.values()) leg.close(1000);
    this.legs.clear();
    if (this.ws !== null) this.closeSocket(denial);
  }

  private closeSocket(denial: Denial): void {
    const ws = this.ws;
    if (ws === null) return;
    const code = closeCodeFor(denial.code);
    this.log.info({ connection: this.id, route: this.route.id, keyId: this.identity?.keyId, code: denial.code, close: code, detail: denial.detail }, "websocket closed by the gateway");
    try {
      // Binance revokes a session with this message; its clients expect it before anything else.
      if (this.route.dialect === "binance" && code >= 4000 && ws.readyState === ws.OPEN) ws.send(this.renderer.error(null, BINANCE_REVOKED));
      ws.close(code, denial.code);
    } catch {
      ws.terminate();
    }
  }

  /** The client socket closed: release everything. */
  dispose(code = 1006): void {
    if (this.ending === null) {
      this.ending = deny("UPSTREAM_CLOSED", `client closed with ${code}`);
      this.log.info({ connection: this.id, route: this.route.id, keyId: this.identity?.keyId, close: code }, "websocket closed by the client");
    }
    this.clearExpiry();
    for (const { leg } of this.legs.values()) leg.close(1000);
    this.legs.clear();
    this.ctx.untrack(this, null);
  }

  /** Terminates a connection that did not answer the last ping; else pings it. */
  heartbeat(): void {
    const ws = this.ws;
    if (ws === null || this.ending !== null) return;
    if (!this.alive) {
      ws.terminate();
      return;
    }
    this.alive = false;
    try {
      ws.ping();
    } catch {
      ws.terminate();
    }
  }

  /** Shutdown: every connection closes with 1001; after the grace, whatever is left is cut. */
  terminate(): void {
    this.ws?.terminate();
  }

  get isOpen(): boolean {
    return this.ws !== null && this.ending === null;
  }

  get settled(): boolean {
    return this.ws === null || this.ws.readyState === this.ws.CLOSED;
  }

  // --- revocation and expiry -------------------------------------------------------------------

  /** A key this connection depends on changed (in this process or another): check it again. */
  async keyChanged(keyId: string): Promise<void> {
    if (this.ending !== null) return;
    // Evicted by the core before the event: this reloads it from the store.
    const now = this.ctx.now();
    const identity = this.identity;
    if (identity !== null && identity.keyId === keyId) {
      const current = await currentKey(this.ctx.checks, identity, this.client, this.clientCert, now);
      if (isDenial(current)) {
        this.end(current);
        return;
      }
      this.key = current;
      this.armExpiry();
    }
    for (const [name, entry] of [...this.legs]) {
      const legIdentity = entry.identity;
      if (legIdentity === null || legIdentity === identity || legIdentity.keyId !== keyId) continue;
      const current = await currentKey(this.ctx.checks, legIdentity, this.client, this.clientCert, now);
      if (isDenial(current)) {
        entry.leg.close(1000);
        this.legs.delete(name);
      }
    }
  }

  /** A session was logged out. */
  sessionEnded(sessionId: string): void {
    if (this.identity?.sessionId === sessionId) this.end(deny("SESSION_REVOKED", "logged out"));
  }

  private armExpiry(): void {
    this.clearExpiry();
    const key = this.key;
    if (key === null || this.identity === null || this.ending !== null) return;
    const at = expiryOf(key);
    if (at === Number.POSITIVE_INFINITY) return;
    this.expiryTimer = this.ctx.timers.set(() => {
      this.expiryTimer = null;
      this.expired().catch((err: unknown) => {
        this.log.error({ connection: this.id, err }, "websocket expiry check failed");
        this.end(deny("INTERNAL"));
      });
    }, at - this.ctx.now());
  }

  private clearExpiry(): void {
    if (this.expiryTimer !== null) this.ctx.timers.clear(this.expiryTimer);
    this.expiryTimer = null;
  }

  private async expired(): Promise<void> {
    const identity = this.identity;
    const key = this.key;
    if (identity === null || key === null || this.ending !== null) return;
    const now = this.ctx.now();
    if (expiryOf(key) > now) {
      // A timer capped at setTimeout's longest delay, or fired early: wait again.
      this.armExpiry();
      return;
    }
    const current = await currentKey(this.ctx.checks, identity, this.client, this.clientCert, now);
    if (this.identity !== identity) return;
    this.end(isDenial(current) ? current : deny(key.session !== null ? "SESSION_EXPIRED" : "KEY_EXPIRED"));
  }

  // --- messages --------------------------------------------------------------------------------

  private onMessage(data: RawData, isBinary: boolean): void {
    if (this.ending !== null) return;
    this.pending++;
    if (this.pending > this.ctx.maxPendingMessages && !this.paused && this.ws !== null) {
      // Backpressure: stop reading the client until its messages are checked.
      this.paused = true;
      this.ws.pause();
    }
    const bytes = toBuffer(data);
    this.chain = this.chain
      .then(() => this.process(bytes, isBinary))
      .catch((err: unknown) => {
        this.log.error({ connection: this.id, err }, "websocket message fault");
        this.end(deny("INTERNAL"));
      })
      .finally(() => {
        this.pending--;
        if (this.paused && this.pending <= this.ctx.maxPendingMessages / 2 && this.ws !== null) {
          this.paused = false;
          this.ws.resume();
        }
      });
  }

  private reply(text: string): void {
    const ws = this.ws;
    if (ws !== null && ws.readyState === ws.OPEN && this.ending === null) ws.send(text);
  }

  /** Answers a message the connection could not pass on (its leg never opened). */
  private refuse(id: MessageId, method: string, denial: Denial): void {
    this.log.info({ connection: this.id, route: this.route.id, method, keyId: this.identity?.keyId, code: denial.code, detail: denial.detail }, "websocket message refused");
    this.reply(this.renderer.error(id, denial));
  }

  /**
   * One message through the request lifecycle (the proxy's message Lifecycle, surface
   * "websocket"): read, its method as the route, its credential chosen here (its own signature,
   * or the connection's identity), then decided by the pipeline's stages, handed on (`handOn`),
   * audited and answered (`render`), like any request. A frame that is not a message, or names no
   * method of the route, is refused before the stages (and audited all the same).
   */
  private async process(data: Buffer, isBinary: boolean): Promise<void> {
    if (this.ending !== null) return;
    const message = parseMessage(data, isBinary);
    const target = new MessageTarget(this, message.id, isBadMessage(message) ? "" : message.method, isBadMessage(message) ? null : message.params);
    const ctx = new RequestContext({ method: target.method, url: this.route.path, headers: NO_HEADERS, body: EMPTY, socketAddress: this.client.text, clientCert: this.clientCert }, randomUUID(), this.ctx.now());
    ctx.client = this.client;
    ctx.path = this.route.path;
    if (isBadMessage(message)) {
      ctx.denial = message.denial;
    } else {
      const method = this.route.methods.get(message.method);
      if (method === undefined) {
        ctx.denial = deny("METHOD_NOT_FOUND", message.method);
      } else {
        ctx.route = method.route;
        // What the operation stage decodes on a method that declares an operation.
        ctx.messageParams = message.params;
        this.credentialFor(ctx, target, method);
      }
    }
    await this.ctx.messages.serve(ctx, ctx.requestId, target);
  }

  /**
   * Stage 3's part that only the connection knows: what the message acts for. A message signed
   * in its own params (the route's scheme's MessageSigning) acts for its own key; any other for
   * the connection's identity; a method that needs a key refuses a message with neither. A
   * credential that cannot be read is the message's refusal.
   */
  private credentialFor(ctx: RequestContext, target: MessageTarget, method: WebSocketMethod): void {
    const params = target.params;
    const signing = this.signing;
    if (this.route.dialect === "binance" && isBinanceSessionMethod(target.method)) {
      target.action = target.method;
      // session.status and session.logout are public (charged to the address).
      if (target.method === "session.status") return;
      if (this.identity?.via === "upgrade") {
        ctx.denial = deny("CONNECTION_AUTHENTICATED");
        return;
      }
      if (target.method === "session.logout") return;
    }
    if (signing !== null && (target.action === "session.logon" || signing.signed(params))) {
      // session.logon is a SIGNED request; so is any message with a signature (it acts for its own
      // key, whatever the connection is logged on with: Binance's "ad hoc" override).
      const credential = signing.extract(params ?? NO_PARAMS);
      if ("ok" in credential) ctx.denial = credential;
      else ctx.credential = credential;
      return;
    }
    const identity = this.identity;
    if (identity !== null) {
      let freshness: Credential | null = null;
      if (signing !== null && identity.via === "logon" && method.permission !== null) {
        // Logged on, a SIGNED request needs no signature, but what the scheme still asks (Binance: a fresh timestamp).
        const checked = signing.loggedOn(params, identity.keyId);
        if ("ok" in checked) {
          ctx.denial = checked;
          return;
        }
        freshness = checked;
      }
      ctx.credential = new IdentityCredential(identity, freshness);
      return;
    }
    if (method.permission !== null) {
      // On a route whose messages may be signed, the scheme says what is missing (Binance: -1102 apiKey).
      const missing = signing === null ? null : signing.extract(params ?? NO_PARAMS);
      ctx.denial = missing !== null && "ok" in missing ? missing : deny("CREDENTIALS_MISSING");
    }
  }

  /**
   * The lifecycle's hand on for an allowed message: a session method's answer (Binance's
   * session.logon / status / logout, answered by the gateway), or the message forwarded,
   * re-serialised without its credentials, on the leg of the identity it acts for. Returns why it
   * could not be (rendered as the message's answer), or null.
   */
  handOn(ctx: RequestContext, target: MessageTarget): Denial | null {
    if (this.endedBy() !== null) return null;
    switch (target.action) {
      case "session.status":
        this.reply(this.renderer.result(target.id, this.status(ctx.now)));
        return null;
      case "session.logout":
        this.forgetIdentity();
        this.reply(this.renderer.result(target.id, this.status(ctx.now)));
        return null;
      case "session.logon":
        return this.logon(ctx, target);
      case "forward":
        break;
    }
    let identity = this.identity;
    let key = this.key;
    const credential = ctx.credential;
    if (ctx.key !== null && credential !== null) {
      if (credential instanceof IdentityCredential) {
        identity = credential.identity;
        if (identity === this.identity) this.key = ctx.key;
      } else {
        identity = { keyId: ctx.key.record.id, scheme: credential.scheme, via: "signed", token: null, sessionId: null, epoch: ctx.key.record.sessionEpoch, since: ctx.now };
      }
      key = ctx.key;
    }
    const entry = this.legFor(identity, key);
    const opening = !entry.leg.isOpen;
    if (!entry.leg.send(encodeRequest(target.id, target.method, target.params, this.credentialParams))) {
      const failure = deny("UPSTREAM_UNAVAILABLE", "upstream leg closed or full");
      ctx.outcome = failure.code;
      return failure;
    }
    if (opening) entry.waiting.push(target.id);
    return null;
  }

  /** The lifecycle's render: a refusal answered (the connection stays), or the connection ended when its identity is over. */
  render(ctx: RequestContext, outcome: Outcome<Denial | null>, target: MessageTarget): void {
    // Messages carry no operation and this lifecycle has no hold hook, so nothing is held here; were
    // one ever held, it is refused (fail closed: a message cannot be stored and released later).
    const denial = outcome.kind === "refused" ? outcome.denial : outcome.kind === "answered" ? outcome.answer : outcome.kind === "held" ? deny("HOLD_NOT_SUPPORTED") : deny(outcome.error.code);
    if (denial === null) return;
    const credential = ctx.credential;
    if (outcome.kind === "refused" && credential instanceof IdentityCredential && credential.identity === this.identity && IDENTITY_OVER.has(denial.code)) {
      // Missed by the change feed (or not yet delivered): the identity is over.
      this.end(denial);
      return;
    }
    // A refusal by the stages is logged by the lifecycle; one by hand on (or a fault) here.
    if (outcome.kind !== "refused") this.log.info({ connection: this.id, requestId: ctx.requestId, route: this.route.id, method: target.method, keyId: ctx.key?.record.id, code: denial.code, detail: denial.detail }, "websocket message refused");
    this.reply(this.renderer.error(target.id, denial, ctx.retryAfterMs));
  }

  // --- Binance session methods ------------------------------------------------------------------

  /** session.logon, decided like the signed request it is (charged weight 2 against the address and the key; the signature single-use): only an Ed25519 key logs on. */
  private logon(ctx: RequestContext, target: MessageTarget): Denial | null {
    const key = ctx.key;
    if (key === null) return deny("INTERNAL", "a logon without its key");
    const wrongType = logonKeyDenial(key);
    if (wrongType !== undefined) {
      ctx.outcome = wrongType.code;
      return wrongType;
    }
    this.forgetIdentity();
    const identity: Identity = { keyId: key.record.id, scheme: "binance", via: "logon", token: null, sessionId: null, epoch: key.record.sessionEpoch, since: ctx.now };
    this.identity = identity;
    this.key = key;
    this.ctx.track(this, identity.keyId, null);
    this.armExpiry();
    this.log.info({ connection: this.id, route: this.route.id, keyId: identity.keyId }, "websocket logged on");
    this.reply(this.renderer.result(target.id, this.status(ctx.now)));
    return null;
  }

  private status(now: number): Record<string, unknown> {
    const identity = this.identity;
    return sessionStatus(identity?.keyId ?? null, identity?.since ?? null, this.connectedSince, now);
  }

  /** Logout (or a new logon): the old identity's leg closes and its changes no longer concern us. */
  private forgetIdentity(): void {
    const identity = this.identity;
    if (identity === null) return;
    this.identity = null;
    this.key = null;
    this.clearExpiry();
    for (const [name, entry] of this.legs) {
      if (entry.identity === identity) {
        entry.leg.close(1000);
        this.legs.delete(name);
      }
    }
    this.ctx.untrack(this, identity.keyId);
  }

  // --- upstream legs ---------------------------------------------------------------------------

  /** The leg for an identity (opened on first use), keyed by key and scopes: one identity per leg. */
  private legFor(identity: Identity | null, key: VerificationKey | null): Leg {
    const name = identity === null || key === null ? "" : `${key.record.id}|${key.scopesText}`;
    const existing = this.legs.get(name);
    if (existing !== undefined && !existing.leg.isClosed) return existing;
    // No header of the client's upgrade is carried (the leg may act for another identity than
    // the upgrade's): only the forwarding headers every request to the upstream carries, the
    // identity's, and the subprotocols asked for.
    const headers: Record<string, string> = {};
    const requestId = randomUUID();
    addForwarding(headers, { clientIp: this.client.text, scheme: this.ctx.scheme, authority: this.authority, requestId });
    if (identity !== null && key !== null) {
      const record = key.record;
      this.ctx.identity.write(
        headers,
        "GET",
        this.target,
        NO_BODY,
        {
          requestId,
          keyId: record.id,
          account: record.account,
          subAccount: record.subAccount,
          scopes: record.scopes,
          clientIp: this.client.text,
          timestamp: this.ctx.now(),
        },
        key.scopesText,
      );
      if (identity !== this.identity) this.ctx.track(this, identity.keyId, null);
    }
    const leg: UpstreamLeg = new UpstreamLeg(
      {
        url: `${this.ctx.upstream}${this.target}`,
        headers,
        protocols: this.protocols,
        timeoutMs: this.ctx.upstreamTimeoutMs,
        maxPayload: this.ctx.maxUpstreamMessageBytes,
        maxQueued: this.ctx.maxPendingMessages,
      },
      {
        message: (data, isBinary) => {
          const ws = this.ws;
          if (ws !== null && ws.readyState === ws.OPEN && this.ending === null) ws.send(toBuffer(data), { binary: isBinary });
        },
        closed: (code, reason) => {
          if (this.legs.get(name)?.leg !== leg) return;
          this.legs.delete(name);
          this.end(deny("UPSTREAM_CLOSED", `${code} ${reason}`));
        },
      },
    );
    const entry: Leg = { leg, identity, waiting: [] };
    this.legs.set(name, entry);
    leg.opened.then(
      (failure) => {
        const waiting = entry.waiting.splice(0);
        if (failure === null || this.legs.get(name) !== entry) return;
        // A leg opened for a later identity could not open: its messages are answered, the
        // connection stays (the next message for that identity tries again).
        this.legs.delete(name);
        for (const id of waiting) this.refuse(id, "", failure);
      },
      () => undefined,
    );
    return entry;
  }
}
