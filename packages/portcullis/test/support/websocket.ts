/**
 * Test support for WebSockets: the demo exchange (its REST and WebSocket API) behind a real
 * gateway with the WebSocket proxy, on loopback ports, the core on a frozen clock whose expiry
 * timers the test drives; and a small real `ws` client that matches answers to requests by id and
 * records when (real time) the connection closed.
 */
import type { PolicyDecider } from "../../src/contract/policy.js";
import { type OpenDataDir, openDataDir } from "../../src/core/data-dir.js";
import { HoldService } from "../../src/holds/service.js";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createHmac, generateKeyPairSync, sign, type KeyObject } from "node:crypto";
import WebSocket from "ws";
import { webSocketSignaturePayload } from "../../src/dialects/binance/signature.js";
import { IdentitySigner } from "../../src/gateway/identity.js";
import { Forwarder } from "../../src/gateway/proxy.js";
import { Gateway } from "../../src/gateway/server.js";
import { WebSocketProxy, compileWebSocketSettings, type Timers, type WebSocketRouteSpec, type WebSocketSpec } from "../../src/gateway/websocket/index.js";
import { DEMO_EXCHANGE_ROUTES, DEMO_WEBSOCKET_ROUTES, type DemoExchange, createDemoExchange } from "@portcullis/demo-exchange";
import type { LimitSpec } from "../../src/contract/limits.js";
import { SessionEndpoints } from "../../src/gateway/session-endpoints.js";
import { IDENTITY_SECRET, captureLogger } from "./gateway.js";
import { type CoreOptions, type FakeClock, type SignSpec, type TestCore, makeCore, signRequest } from "./harness.js";

/** Expiry timers on the frozen clock: they fire when the test advances it. */
export class ManualTimers implements Timers {
  private readonly due = new Set<{ at: number; fn: () => void }>();

  constructor(private readonly clock: FakeClock) {}

  set(fn: () => void, delayMs: number): unknown {
    const timer = { at: this.clock.ms + Math.max(0, delayMs), fn };
    this.due.add(timer);
    return timer;
  }

  clear(handle: unknown): void {
    this.due.delete(handle as { at: number; fn: () => void });
  }

  /** Moves the clock and fires every timer now due, earliest first. */
  advance(ms: number): void {
    this.clock.advance(ms);
    for (;;) {
      const next = [...this.due].filter((t) => t.at <= this.clock.ms).sort((a, b) => a.at - b.at)[0];
      if (next === undefined) return;
      this.due.delete(next);
      next.fn();
    }
  }

  get size(): number {
    return this.due.size;
  }
}

export interface WsStack extends TestCore {
  readonly gateway: Gateway;
  readonly proxy: WebSocketProxy;
  readonly exchange: DemoExchange;
  readonly timers: ManualTimers;
  /** ws://127.0.0.1:port */
  readonly wsUrl: string;
  /** http://127.0.0.1:port */
  readonly httpUrl: string;
  /** host:port, for signing. */
  readonly host: string;
  readonly logLines: string[];
  close(): Promise<void>;
}

export interface WsStackOptions {
  readonly core?: CoreOptions;
  readonly routes?: readonly WebSocketRouteSpec[];
  readonly websocket?: Omit<WebSocketSpec, "routes">;
  /** The upstream origin (default: the demo exchange). */
  readonly upstream?: string;
  readonly upstreamTimeoutMs?: number;
  /** Stage 10 on the WebSocket messages (and the HTTP gateway): a policy over the data directory, with its hold service. */
  readonly policy?: (data: OpenDataDir) => Promise<PolicyDecider>;
}

export async function startWsStack(options: WsStackOptions = {}): Promise<WsStack> {
  const { logger, lines } = captureLogger();
  const t = await makeCore({ sessions: true, routes: DEMO_EXCHANGE_ROUTES, logger, ...options.core });
  const exchange = createDemoExchange({ identitySecret: IDENTITY_SECRET, now: t.clock.now });
  const upstreamServer = createServer((req, res) => {
    exchange.handler(req, res);
  });
  upstreamServer.on("upgrade", exchange.upgrade);
  await listen(upstreamServer);
  const upstream = options.upstream ?? `http://127.0.0.1:${String((upstreamServer.address() as AddressInfo).port)}`;
  const limits: readonly LimitSpec[] = options.core?.limits?.specs ?? [];
  const signer = new IdentitySigner(IDENTITY_SECRET);
  const timers = new ManualTimers(t.clock);
  const data = options.policy === undefined ? null : await openDataDir(t.dataDir);
  const policy = options.policy === undefined || data === null ? null : await options.policy(data);
  const holds = policy === null || data === null ? null : { policy, service: new HoldService({ store: data.store.holds, envelope: data.envelope, policy }) };
  const proxy = new WebSocketProxy({
    core: t.core,
    settings: compileWebSocketSettings({ routes: options.routes ?? DEMO_WEBSOCKET_ROUTES, ...options.websocket }, limits),
    environment: "test",
    identity: signer,
    upstream,
    upstreamTimeoutMs: options.upstreamTimeoutMs ?? 5_000,
    logger,
    now: t.clock.now,
    timers,
    holds,
  });
  const gateway = new Gateway({
    pipeline: t.core.pipeline,
    forwarder: new Forwarder({ upstream, timeoutMs: 5_000 }),
    identity: signer,
    logger,
    now: t.clock.now,
    websocket: proxy,
    ...(t.core.sessions === null ? {} : { sessions: new SessionEndpoints(t.core) }),
    ...(holds === null ? {} : { holds }),
  });
  const address = await gateway.listen(0, "127.0.0.1");
  const host = `127.0.0.1:${String(address.port)}`;
  return {
    ...t,
    gateway,
    proxy,
    exchange,
    timers,
    wsUrl: `ws://${host}`,
    httpUrl: `http://${host}`,
    host,
    logLines: lines,
    async close() {
      await gateway.close(500);
      exchange.closeWebSockets();
      upstreamServer.closeAllConnections();
      await new Promise<void>((resolve) => {
        upstreamServer.close(() => {
          resolve();
        });
      });
      await holds?.service.stop();
      await data?.close();
      await t.cleanup();
    },
  };
}

function listen(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", resolve);
  });
}

/** The headers of a natively signed upgrade request. */
export function signedUpgrade(stack: WsStack, path: string, keyId: string, key: SignSpec["key"], extra: Partial<SignSpec> = {}): Record<string, string> {
  const { host: _host, ...headers } = signRequest({ method: "GET", url: path, host: stack.host, keyId, key, created: stack.clock.seconds, ...extra });
  return headers;
}

export interface Answer {
  readonly id: string | number | null;
  readonly status: number;
  readonly result?: unknown;
  readonly error?: { readonly code: number | string; readonly msg?: string; readonly message?: string };
}

export interface Closed {
  readonly code: number;
  readonly reason: string;
  /** Date.now() when the close arrived. */
  readonly at: number;
}

/** A real ws client that matches answers to requests by id. */
export class WsClient {
  readonly closed: Promise<Closed>;
  /** Answers with an id nobody asked for (id null: the gateway's own notices). */
  readonly unsolicited: Answer[] = [];
  private readonly waiting = new Map<string, (a: Answer) => void>();
  private next = 1;

  private constructor(readonly ws: WebSocket) {
    this.closed = new Promise((resolve) => {
      ws.on("close", (code, reason) => {
        resolve({ code, reason: reason.toString("utf8"), at: Date.now() });
      });
    });
    ws.on("message", (data) => {
      const answer = JSON.parse((Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as Buffer)).toString("utf8")) as Answer;
      const wait = this.waiting.get(String(answer.id));
      if (wait === undefined) this.unsolicited.push(answer);
      else {
        this.waiting.delete(String(answer.id));
        wait(answer);
      }
    });
  }

  /** Connects; rejects with the HTTP status and body when the upgrade is refused. */
  static connect(url: string, headers: Record<string, string> = {}, protocols: string[] = []): Promise<WsClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, protocols, { headers, perMessageDeflate: false });
      ws.once("open", () => {
        resolve(new WsClient(ws));
      });
      ws.once("unexpected-response", (_req, res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          reject(new UpgradeRefused(res.statusCode ?? 0, Buffer.concat(chunks).toString("utf8"), res.headers));
        });
      });
      ws.once("error", (err) => {
        reject(err);
      });
    });
  }

  /** Sends one request and waits for its answer. */
  request(method: string, params?: Record<string, unknown>, id: string | number = `r${String(this.next++)}`): Promise<Answer> {
    return this.send(JSON.stringify(params === undefined ? { id, method } : { id, method, params }), id);
  }

  /** Sends raw text and waits for the answer with `id`. */
  send(text: string | Buffer, id: string | number | null, binary = false): Promise<Answer> {
    const answered = new Promise<Answer>((resolve, reject) => {
      this.waiting.set(String(id), resolve);
      this.closed.then((c) => {
        reject(new Error(`closed (${String(c.code)} ${c.reason}) before the answer to ${String(id)}`));
      }, reject);
    });
    this.ws.send(text, { binary });
    return answered;
  }

  close(): Promise<Closed> {
    this.ws.close(1000);
    return this.closed;
  }
}

export class UpgradeRefused extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
    readonly headers: Record<string, string | string[] | undefined>,
  ) {
    super(`upgrade refused: ${String(status)} ${body}`);
  }

  get json(): Record<string, unknown> {
    return JSON.parse(this.body) as Record<string, unknown>;
  }
}

/** The refusal of a connect attempt (fails the test if it connected). */
export async function refusedUpgrade(attempt: Promise<WsClient>): Promise<UpgradeRefused> {
  try {
    const client = await attempt;
    await client.close();
  } catch (err) {
    if (err instanceof UpgradeRefused) return err;
    throw err;
  }
  throw new Error("the upgrade was not refused");
}

/** Binance's WebSocket API signature: every parameter but `signature`, sorted, raw UTF-8; Ed25519 base64 or HMAC hex. */
export function binanceSign(params: Record<string, string | number>, key: string | KeyObject): Record<string, string | number> {
  const payload = webSocketSignaturePayload(params);
  const signature = typeof key === "string" ? createHmac("sha256", Buffer.from(key, "utf8")).update(payload, "utf8").digest("hex") : sign(null, Buffer.from(payload, "utf8"), key).toString("base64");
  return { ...params, signature };
}

/** An HMAC key on the stack, for the native scheme and the Binance dialect. */
export async function wsHmacKey(stack: WsStack, account: string, scopes: string[], dialects: string[] = ["native", "binance"]): Promise<{ id: string; secret: string }> {
  const created = await stack.createKey({ account, scopes, dialects });
  return { id: created.key.id, secret: created.secret ?? "" };
}

/** An Ed25519 key on the stack (its private key stays here), for the native scheme and the Binance dialect. */
export async function wsEdKey(stack: WsStack, account: string, scopes: string[]): Promise<{ id: string; privateKey: KeyObject }> {
  const pair = generateKeyPairSync("ed25519");
  const created = await stack.createKey({ account, scopes, dialects: ["native", "binance"], algorithm: "ed25519", publicKey: pair.publicKey.export({ type: "spki", format: "pem" }).toString() });
  return { id: created.key.id, privateKey: pair.privateKey };
}
