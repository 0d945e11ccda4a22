import { randomUUID } from "node:crypto";
import type WebSocket from "ws";
import type { RawData } from "ws";
import { AUTHENTICATED } from "../../authz/permissions.js";
import type { Credential, MessageSigning } from "../../dialects/scheme.js";
import { type Denial, deny } from "../../errors/catalogue.js";
import type { VerificationKey } from "../../keys/cache.js";
import type { Logger } from "../../log/logger.js";
import type { ClientAddress } from "../../net/client-address.js";
import { RequestContext } from "../../pipeline/context.js";
import type { ReplayClaim } from "../../storage/types.js";
import type { IdentitySigner } from "../identity.js";
import { type Admitter, admitMessage, recordAuthFailure } from "./admission.js";
import { logonKeyDenial, sessionStatus } from "./binance.js";
import { closeCodeFor } from "./close-codes.js";
import { type BinanceSessionMethod, type WebSocketMethod, type WebSocketRoute, isBinanceSessionMethod } from "./config.js";
import { type Identity, type IdentityChecks, currentKey, expiryOf, isDenial, keyDenial, lookupKey } from "./identity.js";
import { type MessageId, type MessageRenderer, type Params, encodeRequest, isBadMessage, parseMessage } from "./messages.js";
import { UpstreamLeg } from "./upstream.js";

/** Timers for expiries, injectable so tests can drive them from a frozen clock. */
export interface Timers {
  set(fn: () => void, delayMs: number): unknown;
  clear(handle: unknown): void;
}

/** The longest delay setTimeout takes; a later expiry is re-armed when it fires. */
const MAX_DELAY_MS = 2 ** 31 - 1;

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

/** What every connection shares: the proxy's checks, stores, signer and registry. */
export interface ConnectionContext {
  readonly checks: IdentityChecks;
  readonly admitter: Admitter;
  readonly identity: IdentitySigner;
  /** The upstream's WebSocket origin (ws:// or wss://). */
  readonly upstream: string;
  readonly upstreamTimeoutMs: number;
  readonly maxUpstreamMessageBytes: number;
  readonly maxPendingMessages: number;
  readonly futureSkewMs: number;
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

/** Reasons that, on a Binance route, are first told in Binance's words (it revokes a session so). */
const BINANCE_REVOKED = deny("KEY_REVOKED");

/**
 * One client connection: its identity (from the upgrade, or a Binance logon), its upstream legs
 * (one per identity it acts for, see upstream.ts), and every message it sends, checked in order:
 * shape, method (default deny), who (the connection's identity re-checked, or the message's own
 * signature), scopes, then replay and limits together; then forwarded, re-serialised, on the
 * identity's leg. A refused message is answered and the connection stays open; the connection is
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
      const current = await currentKey(this.ctx.checks, identity, this.client, this.ctx.now());
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
      const current = await currentKey(this.ctx.checks, identity, this.client, now);
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
      const current = await currentKey(this.ctx.checks, legIdentity, this.client, now);
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
    const current = await currentKey(this.ctx.checks, identity, this.client, now);
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

  private refuse(id: MessageId, method: string, denial: Denial, retryAfterMs = -1): void {
    this.log.info({ connection: this.id, route: this.route.id, method, keyId: this.identity?.keyId, code: denial.code, detail: denial.detail }, "websocket message refused");
    this.reply(this.renderer.error(id, denial, retryAfterMs));
  }

  private async process(data: Buffer, isBinary: boolean): Promise<void> {
    if (this.ending !== null) return;
    const now = this.ctx.now();
    const message = parseMessage(data, isBinary);
    if (isBadMessage(message)) {
      this.refuse(message.id, "", message.denial);
      return;
    }
    const { id, method: name } = message;
    const method = this.route.methods.get(name);
    if (method === undefined) {
      this.refuse(id, name, deny("METHOD_NOT_FOUND", name));
      return;
    }
    const binance = this.route.dialect === "binance";
    if (binance && isBinanceSessionMethod(name)) {
      await this.sessionMethod(name, id, method, message.params, now);
      return;
    }
    const params = message.params;
    const signing = this.signing;
    let identity = this.identity;
    let key: VerificationKey | null = null;
    let replay: ReplayClaim | null = null;
    if (signing !== null && signing.signed(params)) {
      // A signed request acts for its own key, whatever the connection is logged on with.
      const signed = await this.verifyMessage(signing, params ?? NO_PARAMS, name, now);
      if ("ok" in signed) {
        this.refuse(id, name, signed);
        return;
      }
      ({ key, replay } = signed);
      identity = { keyId: key.record.id, scheme: signed.credential.scheme, via: "signed", token: null, sessionId: null, epoch: key.record.sessionEpoch, since: now };
    } else if (identity !== null) {
      const current = await currentKey(this.ctx.checks, identity, this.client, now);
      if (isDenial(current)) {
        // Missed by the change feed (or not yet delivered): the identity is over.
        this.end(current);
        return;
      }
      key = this.key = current;
      if (signing !== null && identity.via === "logon" && method.permission !== null) {
        // Logged on, a SIGNED request needs no signature, but what the scheme still asks (Binance: a fresh timestamp).
        const credential = signing.loggedOn(params, identity.keyId);
        const stale = "ok" in credential ? credential : await credential.fresh(this.messageContext(name, now), current);
        if (stale !== undefined) {
          this.refuse(id, name, stale);
          return;
        }
      }
    }
    if (method.permission !== null) {
      if (key === null) {
        // On a route whose messages may be signed, why this one carries no usable credential (Binance: -1102 apiKey).
        const missing = signing === null ? undefined : signing.extract(params ?? NO_PARAMS);
        this.refuse(id, name, missing !== undefined && "ok" in missing ? missing : deny("CREDENTIALS_MISSING"));
        return;
      }
      const blocked = this.ctx.admitter.shield.blockedKeyUntil(key.record.id, now);
      if (blocked !== null) {
        this.refuse(id, name, deny("KEY_BLOCKED"), blocked - now);
        return;
      }
      if (method.permission !== AUTHENTICATED && !key.permissions.has(method.permission)) {
        this.refuse(id, name, deny("SCOPE_MISSING", `needs ${method.permission}`));
        return;
      }
    }
    // Public methods are charged to the address only, as public HTTP routes are.
    const refused = await admitMessage(this.ctx.admitter, method.route, this.client.text, method.permission === null ? null : key, replay, now);
    if (refused !== null) {
      if (refused.denial.code === "SESSION_REVOKED") this.end(refused.denial);
      else this.refuse(id, name, refused.denial, refused.retryAfterMs);
      return;
    }
    if (this.endedBy() !== null) return;
    const entry = this.legFor(identity, key);
    const opening = !entry.leg.isOpen;
    if (!entry.leg.send(encodeRequest(id, name, params, this.credentialParams))) this.refuse(id, name, deny("UPSTREAM_UNAVAILABLE", "upstream leg closed or full"));
    else if (opening) entry.waiting.push(id);
  }

  /** The context a message's credential is checked in (its time; no headers, no body). */
  private messageContext(method: string, now: number): RequestContext {
    return new RequestContext({ method, url: this.target, headers: NO_HEADERS, body: EMPTY, socketAddress: this.client.text }, randomUUID(), now);
  }

  /**
   * A message signed in its own params (a SIGNED request, or a logon): the scheme's credential,
   * checked as stages 3 to 6 check one (pipeline.ts), and its replay claim.
   */
  private async verifyMessage(signing: MessageSigning, params: Params, method: string, now: number): Promise<{ credential: Credential; key: VerificationKey; replay: ReplayClaim | null } | Denial> {
    const admitter = this.ctx.admitter;
    const ip = this.client.text;
    const blockedIp = admitter.shield.blockedIpUntil(ip, now);
    if (blockedIp !== null) return deny("IP_BLOCKED");
    const credential = signing.extract(params);
    if ("ok" in credential) return credential;
    const looked = await lookupKey(this.ctx.checks, credential.keyId);
    const failed = (denial: Denial, keyId: string | null): Denial => {
      recordAuthFailure(admitter, denial.code, ip, keyId, now);
      return denial;
    };
    if (isDenial(looked)) return failed(looked, null);
    const unusable = keyDenial(looked, this.ctx.checks.environment, credential.scheme, this.client, now);
    if (unusable !== undefined) return failed(unusable, null);
    const blockedKey = admitter.shield.blockedKeyUntil(looked.record.id, now);
    if (blockedKey !== null) return deny("KEY_BLOCKED");
    const ctx = this.messageContext(method, now);
    const stale = await credential.fresh(ctx, looked);
    if (stale !== undefined) return stale;
    const invalid = await credential.verify(ctx, looked);
    if (invalid !== undefined) return failed(invalid, looked.record.id);
    return { credential, key: looked, replay: credential.replayClaim(ctx, looked) };
  }

  // --- Binance session methods ------------------------------------------------------------------

  private async sessionMethod(name: BinanceSessionMethod, id: MessageId, method: WebSocketMethod, params: Params | null, now: number): Promise<void> {
    if (name === "session.status") {
      const refused = await admitMessage(this.ctx.admitter, method.route, this.client.text, null, null, now);
      if (refused !== null) this.refuse(id, name, refused.denial, refused.retryAfterMs);
      else this.reply(this.renderer.result(id, this.status(now)));
      return;
    }
    if (this.identity?.via === "upgrade") {
      this.refuse(id, name, deny("CONNECTION_AUTHENTICATED"));
      return;
    }
    if (name === "session.logout") {
      const refused = await admitMessage(this.ctx.admitter, method.route, this.client.text, null, null, now);
      if (refused !== null) {
        this.refuse(id, name, refused.denial, refused.retryAfterMs);
        return;
      }
      this.forgetIdentity();
      this.reply(this.renderer.result(id, this.status(now)));
      return;
    }
    // session.logon: a SIGNED request with only the signing parameters, from an Ed25519 key.
    const signing = this.signing;
    if (signing === null) {
      // Only a route whose scheme signs messages has session methods (the proxy checks it).
      this.refuse(id, name, deny("METHOD_NOT_FOUND", name));
      return;
    }
    const verified = await this.verifyMessage(signing, params ?? NO_PARAMS, name, now);
    if ("ok" in verified) {
      this.refuse(id, name, verified);
      return;
    }
    const { key, replay } = verified;
    const wrongType = logonKeyDenial(key);
    if (wrongType !== undefined) {
      this.refuse(id, name, wrongType);
      return;
    }
    // Charged like the message it is (weight 2) against the address and the key; the signature is single-use.
    const refused = await admitMessage(this.ctx.admitter, method.route, this.client.text, key, replay, now);
    if (refused !== null) {
      this.refuse(id, name, refused.denial, refused.retryAfterMs);
      return;
    }
    if (this.ending !== null) return;
    this.forgetIdentity();
    const identity: Identity = { keyId: key.record.id, scheme: "binance", via: "logon", token: null, sessionId: null, epoch: key.record.sessionEpoch, since: now };
    this.identity = identity;
    this.key = key;
    this.ctx.track(this, identity.keyId, null);
    this.armExpiry();
    this.log.info({ connection: this.id, route: this.route.id, keyId: identity.keyId }, "websocket logged on");
    this.reply(this.renderer.result(id, this.status(now)));
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
    const headers: Record<string, string> = {
      "x-forwarded-for": this.client.text,
      "x-forwarded-proto": this.ctx.scheme,
      "portcullis-request-id": randomUUID(),
    };
    if (this.authority !== undefined) headers["x-forwarded-host"] = this.authority;
    if (identity !== null && key !== null) {
      const record = key.record;
      this.ctx.identity.write(
        headers,
        "GET",
        this.target,
        {
          requestId: headers["portcullis-request-id"] ?? "",
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
