/**
 * WebSocket upgrades and messages go through the one request lifecycle (surface "websocket"):
 * each upgrade and each message, allowed or refused, is one audit entry with its route (a message's
 * method is its route), code and key, like any HTTP request; and no entry carries a secret, a
 * signature or a session token.
 */
import type { KeyObject } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuditEntry } from "../../src/audit/events.js";
import { readEntries } from "../audit/support.js";
import { type WsStack, WsClient, binanceSign, refusedUpgrade, signedUpgrade, startWsStack, wsEdKey, wsHmacKey } from "../support/websocket.js";

const PATH = "/ws-api/v3";
let s: WsStack;
const clients: WsClient[] = [];

beforeAll(async () => {
  s = await startWsStack();
});
afterAll(async () => {
  for (const c of clients) c.ws.terminate();
  await s.close();
});

async function connect(headers: Record<string, string> = {}, path = PATH): Promise<WsClient> {
  const c = await WsClient.connect(`${s.wsUrl}${path}`, headers);
  clients.push(c);
  return c;
}

function hmacKey(account: string, scopes: string[]): Promise<{ id: string; secret: string }> {
  return wsHmacKey(s, account, scopes);
}

function edKey(account: string, scopes: string[]): Promise<{ id: string; privateKey: KeyObject }> {
  return wsEdKey(s, account, scopes);
}

/** The request decisions the WebSocket surface recorded so far, oldest first. */
async function websocketEntries(): Promise<AuditEntry[]> {
  await s.core.audit.flush();
  return readEntries(s.dataDir).filter((e) => e.event.startsWith("request.") && e.surface === "websocket");
}

const LIMIT_BUY = { symbol: "BTCUSDT", side: "BUY", type: "LIMIT", timeInForce: "GTC", quantity: "0.001", price: "50000" };

describe("the audit log, surface websocket", () => {
  it("records upgrades, allowed and refused (by the stages, or before them), with their codes", async () => {
    const key = await hmacKey("audit-ws-alice", ["read"]);
    const c = await connect(signedUpgrade(s, PATH, key.id, key.secret));
    await c.close();
    await refusedUpgrade(WsClient.connect(`${s.wsUrl}${PATH}`, signedUpgrade(s, PATH, key.id, `${key.secret}x`)));
    const unmapped = await refusedUpgrade(WsClient.connect(`${s.wsUrl}/ws-api/v9`));
    const anonymous = await connect();
    await anonymous.close();
    const entries = await websocketEntries();
    expect(entries.filter((e) => e.key === key.id).map((e) => ({ event: e.event, method: e.method, route: e.route, code: e.code, actor: e.actor }))).toEqual([
      { event: "request.allow", method: "GET", route: `GET ${PATH}`, code: undefined, actor: `key:${key.id}` },
      { event: "request.deny", method: "GET", route: `GET ${PATH}`, code: "SIGNATURE_INVALID", actor: "anonymous" },
    ]);
    expect(entries.find((e) => e.requestId === unmapped.headers["portcullis-request-id"])).toMatchObject({ event: "request.deny", code: "ROUTE_NOT_FOUND", path: "/ws-api/v9" });
    expect(entries.some((e) => e.event === "request.allow" && e.route === `GET ${PATH}` && e.key === undefined)).toBe(true);
  });

  it("records every message: its method as the route, the connection's identity or its own signature as the key, allowed or refused with its code", async () => {
    const reader = await hmacKey("audit-ws-bob", ["read"]);
    const c = await connect(signedUpgrade(s, PATH, reader.id, reader.secret));
    expect((await c.request("account.status")).status).toBe(200);
    expect((await c.request("order.place", LIMIT_BUY)).status).toBe(401);
    expect((await c.request("order.list")).status).toBe(400);
    expect((await c.request("time")).status).toBe(200);
    const trader = await hmacKey("audit-ws-carol", ["read", "trade"]);
    const signed = binanceSign({ ...LIMIT_BUY, apiKey: trader.id, timestamp: s.clock.ms }, trader.secret);
    expect((await c.request("order.place", signed)).status).toBe(200);
    expect((await c.request("order.place", { ...signed, quantity: "0.002" })).status).toBe(400);
    expect((await c.request("order.place", signed)).status).toBe(400);
    await c.send("{nope", null);
    const entries = (await websocketEntries()).filter((e) => e.method !== "GET");
    const seen = entries.slice(-8).map((e) => ({ event: e.event, method: e.method, route: e.route, key: e.key, code: e.code }));
    expect(seen).toEqual([
      { event: "request.allow", method: "account.status", route: `WS ${PATH} account.status`, key: reader.id, code: undefined },
      { event: "request.deny", method: "order.place", route: `WS ${PATH} order.place`, key: reader.id, code: "SCOPE_MISSING" },
      { event: "request.deny", method: "order.list", route: undefined, key: undefined, code: "METHOD_NOT_FOUND" },
      // A public method is charged to the address, as a public HTTP route is.
      { event: "request.allow", method: "time", route: `WS ${PATH} time`, key: undefined, code: undefined },
      { event: "request.allow", method: "order.place", route: `WS ${PATH} order.place`, key: trader.id, code: undefined },
      { event: "request.deny", method: "order.place", route: `WS ${PATH} order.place`, key: trader.id, code: "SIGNATURE_INVALID" },
      { event: "request.deny", method: "order.place", route: `WS ${PATH} order.place`, key: trader.id, code: "NONCE_REPLAYED" },
      { event: "request.deny", method: "", route: undefined, key: undefined, code: "JSON_MALFORMED" },
    ]);
    expect(entries.every((e) => e.client === "127.0.0.1")).toBe(true);
    const text = JSON.stringify(entries);
    for (const secret of [reader.secret, trader.secret, String(signed.signature)]) expect(text).not.toContain(secret);
  });

  it("records Binance's session methods: a logon as the signed request it is, its refusal by key type as the outcome", async () => {
    const ed = await edKey("audit-ws-dave", ["read", "trade"]);
    const hmac = await hmacKey("audit-ws-dave", ["read"]);
    const c = await connect();
    expect((await c.request("session.logon", binanceSign({ apiKey: hmac.id, timestamp: s.clock.ms }, hmac.secret))).error?.code).toBe(-4056);
    expect((await c.request("session.logon", { apiKey: ed.id, timestamp: s.clock.ms })).error?.code).toBe(-1102);
    const logon = binanceSign({ apiKey: ed.id, timestamp: s.clock.ms }, ed.privateKey);
    expect((await c.request("session.logon", logon)).status).toBe(200);
    expect((await c.request("order.place", { ...LIMIT_BUY, timestamp: s.clock.ms - 60_000 })).error?.code).toBe(-1021);
    expect((await c.request("order.place", { ...LIMIT_BUY, timestamp: s.clock.ms })).status).toBe(200);
    expect((await c.request("session.logout")).status).toBe(200);
    const entries = (await websocketEntries()).filter((e) => e.method !== "GET");
    expect(entries.slice(-6).map((e) => ({ event: e.event, method: e.method, key: e.key, code: e.code, outcome: (e.detail as { outcome?: string } | undefined)?.outcome }))).toEqual([
      { event: "request.allow", method: "session.logon", key: hmac.id, code: undefined, outcome: "LOGON_KEY_TYPE_NOT_SUPPORTED" },
      // Refused at stage 3, as an HTTP request whose credential cannot be read: no key named.
      { event: "request.deny", method: "session.logon", key: undefined, code: "PARAM_MISSING", outcome: undefined },
      { event: "request.allow", method: "session.logon", key: ed.id, code: undefined, outcome: undefined },
      { event: "request.deny", method: "order.place", key: ed.id, code: "CREATED_TOO_OLD", outcome: undefined },
      { event: "request.allow", method: "order.place", key: ed.id, code: undefined, outcome: undefined },
      { event: "request.allow", method: "session.logout", key: undefined, code: undefined, outcome: undefined },
    ]);
    expect(JSON.stringify(entries)).not.toContain(String(logon.signature));
  });
});
