/**
 * WebSocket routes beyond the demo's: limits per message (429-equivalent answers, never a close;
 * all or nothing), a native-format route that needs a signed upgrade, the upstream unreachable
 * or gone, subprotocols, heartbeats, and random frames that must never crash or 5xx.
 */
import { generateKeyPairSync, sign as cryptoSign } from "node:crypto";
import { createServer as createHttpServer } from "node:http";
import { type AddressInfo, connect as tcp, createServer } from "node:net";
import { WebSocketServer } from "ws";
import { webSocketSignaturePayload } from "../../src/dialects/binance/signature.js";
import fc from "fast-check";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import type { WebSocketRouteSpec } from "../../src/gateway/websocket/index.js";
import { DEMO_WEBSOCKET_ROUTES } from "@portcullis/demo-exchange";
import { signRequest } from "../support/harness.js";
import { type Answer, type WsStack, WsClient, refusedUpgrade, signedUpgrade, startWsStack } from "../support/websocket.js";

const PATH = "/ws-api/v3";
let s: WsStack | null = null;
const clients: WsClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.ws.terminate();
  await s?.close();
  s = null;
});
afterAll(async () => {
  await s?.close();
});

async function stack(options: Parameters<typeof startWsStack>[0] = {}): Promise<WsStack> {
  s = await startWsStack(options);
  return s;
}

async function connect(st: WsStack, headers: Record<string, string> = {}, protocols: string[] = []): Promise<WsClient> {
  const c = await WsClient.connect(`${st.wsUrl}${PATH}`, headers, protocols);
  clients.push(c);
  return c;
}

async function signedConnection(st: WsStack, scopes = ["read", "trade"]): Promise<{ id: string; secret: string; c: WsClient }> {
  const created = await st.createKey({ account: `acct-${String(clients.length)}`, scopes, dialects: ["native", "binance"] });
  const secret = created.secret ?? "";
  return { id: created.key.id, secret, c: await connect(st, signedUpgrade(st, PATH, created.key.id, secret)) };
}

const MARKET_BUY = { symbol: "BTCUSDT", side: "BUY", type: "MARKET", quantity: "0.01" };
const strikesOff = { strikes: 1_000_000, strikeWindowMs: 60_000, banBaseMs: 30_000, banMaxMs: 3_600_000, authFailuresPerIp: 1_000, authFailuresPerKey: 1_000, authFailureWindowMs: 60_000, authBlockMs: 300_000 };

describe("limits apply per message, like HTTP requests, against the same buckets", () => {
  it("a burst beyond the key's weight gets 429 -1003 answers, not a close; a refused message consumes nothing", async () => {
    const st = await stack({
      core: {
        limits: {
          specs: [
            { name: "key-weight-1m", scope: "key", kind: "weight", limit: 50, windowMs: 60_000 },
            { name: "orders-10s", scope: "account", kind: "orders", limit: 2, windowMs: 10_000 },
          ],
          shield: strikesOff,
        },
      },
    });
    // The upgrade weighs 2: 48 left.
    const { id, secret, c } = await signedConnection(st);
    expect((await c.request("account.status")).status).toBe(200); // 28 left
    expect((await c.request("account.status")).status).toBe(200); // 8 left
    const limited = await c.request("account.status");
    expect(limited).toEqual({ id: "r3", status: 429, error: { code: -1003, msg: "Too much request weight used; please use WebSocket Streams for live updates to avoid polling the API." } });
    expect(c.ws.readyState).toBe(c.ws.OPEN);
    expect((await c.request("order.place", MARKET_BUY)).status).toBe(200); // 7 left, 1 order
    expect((await c.request("order.place", MARKET_BUY)).status).toBe(200); // 6 left, 2 orders
    expect(await c.request("order.place", MARKET_BUY)).toMatchObject({ status: 429, error: { code: -1015, msg: "Too many new orders." } });
    // The refused order took no weight: exactly 6 remain for openOrders.status (weight 6).
    expect((await c.request("openOrders.status", { symbol: "BTCUSDT" })).status).toBe(200);
    expect((await c.request("openOrders.status", { symbol: "BTCUSDT" })).status).toBe(429);
    // Public methods are charged to the address only.
    expect((await c.request("time")).status).toBe(200);
    // HTTP requests of the key share the budget: nothing is left for the REST twin either.
    const headers = signRequest({ method: "GET", url: "/api/v3/openOrders?symbol=BTCUSDT", host: st.host, keyId: id, key: secret, created: st.clock.seconds });
    const rest = await fetch(`${st.httpUrl}/api/v3/openOrders?symbol=BTCUSDT`, { headers });
    expect(rest.status).toBe(429);
  });
});

const NATIVE_ROUTE: WebSocketRouteSpec = {
  path: PATH,
  weight: 1,
  methods: {
    time: { permission: "public" },
    "account.status": { permission: "read", weight: 20 },
    "order.place": { permission: "trade", tags: ["order"] },
  },
};

describe("a native route: authentication at the upgrade only, errors in the native format", () => {
  it("an unsigned upgrade is refused: 401 CREDENTIALS_MISSING with the native body, before the upgrade completes", async () => {
    const st = await stack({ routes: [NATIVE_ROUTE] });
    const refused = await refusedUpgrade(WsClient.connect(`${st.wsUrl}${PATH}`));
    expect(refused.status).toBe(401);
    expect(refused.json).toMatchObject({ code: "CREDENTIALS_MISSING", message: expect.stringContaining("signed request") as unknown });
    expect(typeof refused.json.requestId).toBe("string");
    expect(refused.headers["portcullis-request-id"]).toBe(refused.json.requestId);
  });

  it("signed: trades; a method beyond the key's scopes, an unmapped method and a limit answer with native codes", async () => {
    const st = await stack({
      routes: [NATIVE_ROUTE],
      core: { limits: { specs: [{ name: "key-weight-1m", scope: "key", kind: "weight", limit: 41, windowMs: 60_000 }], shield: strikesOff } },
    });
    const reader = await signedConnection(st, ["read"]);
    expect(await reader.c.request("order.place", MARKET_BUY)).toEqual({ id: "r1", status: 403, error: { code: "SCOPE_MISSING", message: "This API key does not have the permission this route requires." } });
    expect(await reader.c.request("session.logon", { apiKey: reader.id })).toMatchObject({ status: 400, error: { code: "METHOD_NOT_FOUND" } });
    expect((await reader.c.request("account.status")).status).toBe(200);
    expect((await reader.c.request("account.status")).status).toBe(200);
    const limited = await reader.c.request("account.status");
    expect(limited).toMatchObject({ status: 429, error: { code: "RATE_LIMITED" } });
    expect((limited.error as { retryAfterMs?: number }).retryAfterMs).toBeGreaterThan(0);
    const trader = await signedConnection(st);
    expect(await trader.c.request("order.place", MARKET_BUY)).toMatchObject({ status: 200, result: { status: "FILLED" } });
  });
});

describe("the upstream", () => {
  it("unreachable: the upgrade is refused 502 UPSTREAM_UNAVAILABLE, nothing is left open", async () => {
    const dead = createServer();
    await new Promise<void>((resolve) => dead.listen(0, "127.0.0.1", resolve));
    const port = (dead.address() as { port: number }).port;
    await new Promise<void>((resolve) => dead.close(() => { resolve(); }));
    const st = await stack({ upstream: `http://127.0.0.1:${String(port)}` });
    const created = await st.createKey({ scopes: ["read"], dialects: ["native", "binance"] });
    const refused = await refusedUpgrade(WsClient.connect(`${st.wsUrl}${PATH}`, signedUpgrade(st, PATH, created.key.id, created.secret ?? "")));
    expect({ status: refused.status, code: refused.json.code }).toEqual({ status: 502, code: "UPSTREAM_UNAVAILABLE" });
    // An unsigned upgrade to the Binance route is refused in Binance's format.
    const anonymous = await refusedUpgrade(WsClient.connect(`${st.wsUrl}${PATH}`));
    expect({ status: anonymous.status, json: anonymous.json }).toEqual({ status: 502, json: { code: -1001, msg: "Internal error; unable to process your request. Please try again." } });
    expect(st.proxy.size).toBe(0);
  });

  it("an upstream connection opened later that the upstream refuses: its messages are answered 502, the connection stays", async () => {
    // An upstream that accepts anonymous connections and refuses every identified one.
    const picky = createHttpServer((_req, res) => res.writeHead(404).end());
    const wss = new WebSocketServer({ noServer: true });
    picky.on("upgrade", (req, socket, head) => {
      if (req.headers["portcullis-key-id"] !== undefined) {
        socket.end("HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => {
        ws.on("message", (data) => {
          const m = JSON.parse((data as Buffer).toString("utf8")) as { id: string };
          ws.send(JSON.stringify({ id: m.id, status: 200, result: {} }));
        });
      });
    });
    await new Promise<void>((resolve) => picky.listen(0, "127.0.0.1", resolve));
    try {
      const st = await stack({ upstream: `http://127.0.0.1:${String((picky.address() as AddressInfo).port)}` });
      const pair = generateKeyPairSync("ed25519");
      const created = await st.createKey({ scopes: ["read"], dialects: ["binance"], algorithm: "ed25519", publicKey: pair.publicKey.export({ type: "spki", format: "pem" }).toString() });
      const c = await connect(st);
      expect((await c.request("time")).status).toBe(200);
      const params = { apiKey: created.key.id, timestamp: st.clock.ms };
      const signature = cryptoSign(null, Buffer.from(webSocketSignaturePayload(params), "utf8"), pair.privateKey).toString("base64");
      expect((await c.request("session.logon", { ...params, signature })).status).toBe(200);
      expect(await c.request("account.status", { timestamp: st.clock.ms })).toEqual({ id: "r3", status: 502, error: { code: -1001, msg: "Internal error; unable to process your request. Please try again." } });
      expect(c.ws.readyState).toBe(c.ws.OPEN);
      expect((await c.request("session.status")).status).toBe(200);
    } finally {
      for (const ws of wss.clients) ws.terminate();
      picky.closeAllConnections();
      await new Promise<void>((resolve) => picky.close(() => { resolve(); }));
    }
  });

  it("an upstream that closes: the client is closed with 1014 UPSTREAM_CLOSED", async () => {
    const st = await stack();
    const { c } = await signedConnection(st);
    st.exchange.closeWebSockets();
    const closed = await c.closed;
    expect({ code: closed.code, reason: closed.reason }).toEqual({ code: 1014, reason: "UPSTREAM_CLOSED" });
  });

  it("the identity the upstream saw is the gateway's, and the subprotocol is the one the upstream chose", async () => {
    const st = await stack();
    const created = await st.createKey({ account: "proto-acct", scopes: ["read"], dialects: ["native", "binance"] });
    const c = await connect(st, signedUpgrade(st, PATH, created.key.id, created.secret ?? ""), ["json.v1", "json.v0"]);
    expect(c.ws.protocol).toBe("json.v1");
    expect((await c.request("account.status")).status).toBe(200);
    expect(st.exchange.accounts()).toContain("proto-acct");
  });
});

/** Sends raw HTTP on a fresh TCP connection and returns everything the gateway answered. */
function raw(st: WsStack, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const [host, port] = st.host.split(":");
    const socket = tcp(Number(port), host ?? "127.0.0.1");
    let answer = "";
    socket.on("data", (d: Buffer) => (answer += d.toString("utf8")));
    socket.on("end", () => {
      resolve(answer);
    });
    socket.on("error", reject);
    socket.write(request);
  });
}

describe("upgrades that are not WebSockets", () => {
  it("an h2c upgrade is served as the plain HTTP request it also is (as before the gateway took upgrades); one with a body is refused 400", async () => {
    const st = await stack();
    const plain = await raw(st, `GET /api/v3/time HTTP/1.1\r\nHost: ${st.host}\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n`);
    expect(plain).toMatch(/^HTTP\/1\.1 200 /);
    expect(plain).toContain(`{"serverTime":${String(st.clock.ms)}}`);
    const withBody = await raw(st, `POST /api/v3/order HTTP/1.1\r\nHost: ${st.host}\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 2\r\n\r\n{}`);
    expect(withBody).toMatch(/^HTTP\/1\.1 400 /);
    expect(withBody).toContain('"code":"HTTP_MALFORMED"');
    // A WebSocket upgrade that is not a valid opening handshake is refused too.
    const badKey = await raw(st, `GET ${PATH} HTTP/1.1\r\nHost: ${st.host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n\r\n`);
    expect(badKey).toMatch(/^HTTP\/1\.1 400 /);
    expect(badKey).toContain('"code":"HTTP_MALFORMED"');
  });
});

describe("heartbeat", () => {
  it("the gateway pings its clients (and keeps those that answer)", async () => {
    const st = await stack({ websocket: { pingIntervalMs: 1_000 } });
    const c = await connect(st);
    const pinged = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => { resolve(false); }, 3_000);
      c.ws.once("ping", () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    expect(pinged).toBe(true);
    expect((await c.request("time")).status).toBe(200);
  });
});

describe("random frames", () => {
  it("every frame is answered (never with a 5xx, never a stack trace) and the connection stays usable", async () => {
    const st = await stack({ routes: [...DEMO_WEBSOCKET_ROUTES] });
    const created = await st.createKey({ account: "fuzz", scopes: ["read", "trade"], dialects: ["native", "binance"] });
    const c = await connect(st, signedUpgrade(st, PATH, created.key.id, created.secret ?? ""));
    const next = (): Promise<Answer> =>
      new Promise((resolve) => {
        c.ws.once("message", (data) => {
          resolve(JSON.parse((data as Buffer).toString("utf8")) as Answer);
        });
      });
    const methods = ["time", "ping", "account.status", "order.place", "order.cancel", "openOrders.status", "session.logon", "session.status", "nope", ""];
    const frame = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.json({ maxDepth: 3 }),
      fc.record({
        id: fc.oneof(fc.string({ maxLength: 10 }), fc.integer(), fc.constant(null)),
        method: fc.constantFrom(...methods),
        params: fc.dictionary(fc.constantFrom("symbol", "side", "type", "quantity", "price", "orderId", "apiKey", "signature", "timestamp", "recvWindow", "timeInForce"), fc.oneof(fc.string({ maxLength: 12 }), fc.integer(), fc.double(), fc.boolean())),
      }).map((r) => JSON.stringify(r)),
    );
    await fc.assert(
      fc.asyncProperty(frame, async (text) => {
        const answered = next();
        c.ws.send(text);
        const answer = await answered;
        expect(answer.status).toBeLessThan(500);
        expect(JSON.stringify(answer)).not.toMatch(/\bat .*\.(ts|js):\d+/);
      }),
      { numRuns: 150 },
    );
    expect(c.ws.readyState).toBe(c.ws.OPEN);
    expect((await c.request("time")).status).toBe(200);
  });
});
