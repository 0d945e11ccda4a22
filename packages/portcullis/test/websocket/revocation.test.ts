/**
 * Revocation closes live WebSocket connections, measured: revoke, suspend, logout, end-sessions,
 * scope and allowlist changes, key and session expiry (on the frozen clock), a revocation by the
 * CLI in another process on the same data directory, and graceful shutdown. Each close carries
 * its code (4xxx) and the error code as its reason.
 */
import { generateKeyPairSync, sign, type KeyObject } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { webSocketSignaturePayload } from "../../src/dialects/binance/signature.js";
import { parseToken } from "../../src/sessions/token.js";
import { runCli } from "../support/cli.js";
import { signRequest } from "../support/harness.js";
import { type Closed, type WsStack, WsClient, signedUpgrade, startWsStack } from "../support/websocket.js";

const PATH = "/ws-api/v3";
const MINUTE = 60_000;
let s: WsStack;
const clients: WsClient[] = [];
const latencies: Record<string, number> = {};

beforeAll(async () => {
  s = await startWsStack();
});
afterAll(async () => {
  for (const c of clients) c.ws.terminate();
  await s.close();
  // The figures the report quotes (real time, loopback, this machine).
  console.log(`revocation-to-close latency (ms): ${JSON.stringify(latencies)}`);
});

async function connect(headers: Record<string, string> = {}): Promise<WsClient> {
  const c = await WsClient.connect(`${s.wsUrl}${PATH}`, headers);
  clients.push(c);
  return c;
}

async function hmacKey(account: string, extra: Record<string, unknown> = {}): Promise<{ id: string; secret: string }> {
  const created = await s.createKey({ account, scopes: ["read", "trade"], dialects: ["native", "binance"], ...extra });
  return { id: created.key.id, secret: created.secret ?? "" };
}

async function keyConnection(account: string, extra: Record<string, unknown> = {}): Promise<{ key: { id: string; secret: string }; c: WsClient }> {
  const key = await hmacKey(account, extra);
  const c = await connect(signedUpgrade(s, PATH, key.id, key.secret));
  expect((await c.request("account.status")).status).toBe(200);
  return { key, c };
}

async function logon(keyId: string, secret: string, scopes?: string[]): Promise<{ keyid: string; secret: string }> {
  const body = scopes === undefined ? "" : JSON.stringify({ scopes });
  const headers = signRequest({ method: "POST", url: "/portcullis/v1/session", host: s.host, keyId, key: secret, created: s.clock.seconds, ...(body === "" ? {} : { body }) });
  const res = await fetch(`${s.httpUrl}/portcullis/v1/session`, { method: "POST", headers: { ...headers, "content-type": "application/json" }, ...(body === "" ? {} : { body }) });
  expect(res.status).toBe(201);
  return (await res.json()) as { keyid: string; secret: string };
}

async function sessionConnection(account: string, extra: Record<string, unknown> = {}): Promise<{ key: { id: string; secret: string }; session: { keyid: string; secret: string }; c: WsClient }> {
  const key = await hmacKey(account, extra);
  const session = await logon(key.id, key.secret);
  const c = await connect(signedUpgrade(s, PATH, session.keyid, session.secret));
  expect((await c.request("account.status")).status).toBe(200);
  return { key, session, c };
}

/** Runs `change`, then measures how long until `c` is closed (from the moment the change started). */
async function closedAfter(name: string, c: WsClient, change: () => Promise<unknown>): Promise<Closed> {
  const start = Date.now();
  await change();
  const closed = await Promise.race([c.closed, new Promise<never>((_, reject) => setTimeout(() => { reject(new Error(`${name}: not closed within 2 s`)); }, 2_000))]);
  latencies[name] = closed.at - start;
  expect(closed.at - start, name).toBeLessThan(1_000);
  return closed;
}

describe("a change to the key closes its live connections within one second", () => {
  it("revoke: 4001 KEY_REVOKED (measured), after Binance's -2015 notice", async () => {
    const { key, c } = await keyConnection("rv-alice");
    const closed = await closedAfter("revoke", c, () => s.core.keys.revoke(key.id, "test", "leaked"));
    expect({ code: closed.code, reason: closed.reason }).toEqual({ code: 4001, reason: "KEY_REVOKED" });
    expect(c.unsolicited).toEqual([{ id: null, status: 401, error: { code: -2015, msg: "Invalid API-key, IP, or permissions for action." } }]);
  });

  it("revoke by the CLI in another process on the same data directory (the change feed): 4001 within one second of the commit", async () => {
    const { key, c } = await keyConnection("rv-cli");
    const started = Date.now();
    const cli = await runCli(["keys", "revoke", key.id, "--data", s.dataDir, "--reason", "leaked", "--json"]);
    expect(cli.code, cli.stderr).toBe(0);
    const closed = await c.closed;
    // The CLI's own clock stamped the change when it committed it.
    const committed = (JSON.parse(cli.stdout) as { updatedAt: number }).updatedAt;
    latencies["cli revoke (from commit)"] = closed.at - committed;
    latencies["cli revoke (from spawning the CLI)"] = closed.at - started;
    expect({ code: closed.code, reason: closed.reason }).toEqual({ code: 4001, reason: "KEY_REVOKED" });
    expect(closed.at - committed).toBeLessThan(1_000);
  });

  it("suspend: 4003 KEY_SUSPENDED", async () => {
    const { key, c } = await keyConnection("rv-bob");
    const closed = await closedAfter("suspend", c, () => s.core.keys.suspend(key.id, "test"));
    expect({ code: closed.code, reason: closed.reason }).toEqual({ code: 4003, reason: "KEY_SUSPENDED" });
  });

  it("a scope change: 4006 KEY_CHANGED; an allowlist that no longer holds the client: 4007 IP_NOT_ALLOWED", async () => {
    const scoped = await keyConnection("rv-carol");
    const closed = await closedAfter("scope change", scoped.c, () => s.core.keys.update(scoped.key.id, { scopes: ["read"] }, "test"));
    expect({ code: closed.code, reason: closed.reason }).toEqual({ code: 4006, reason: "KEY_CHANGED" });
    const listed = await keyConnection("rv-carol");
    const moved = await closedAfter("allowlist change", listed.c, () => s.core.keys.update(listed.key.id, { ipAllowlist: ["203.0.113.0/24"] }, "test"));
    expect({ code: moved.code, reason: moved.reason }).toEqual({ code: 4007, reason: "IP_NOT_ALLOWED" });
    const still = await keyConnection("rv-carol", { ipAllowlist: ["127.0.0.1"] });
    const widened = await closedAfter("allowlist widened", still.c, () => s.core.keys.update(still.key.id, { ipAllowlist: ["127.0.0.0/8"] }, "test"));
    expect({ code: widened.code, reason: widened.reason }).toEqual({ code: 4006, reason: "KEY_CHANGED" });
  });

  it("end-sessions: 4005 SESSION_REVOKED for a session's connection, 4006 KEY_CHANGED for the key's own", async () => {
    const viaSession = await sessionConnection("rv-dave");
    const viaKey = await connect(signedUpgrade(s, PATH, viaSession.key.id, viaSession.key.secret));
    const closed = await closedAfter("end-sessions", viaSession.c, () => s.core.keys.endSessions(viaSession.key.id, "test"));
    expect({ code: closed.code, reason: closed.reason }).toEqual({ code: 4005, reason: "SESSION_REVOKED" });
    const other = await viaKey.closed;
    expect({ code: other.code, reason: other.reason }).toEqual({ code: 4006, reason: "KEY_CHANGED" });
  });

  it("a change that takes nothing away (limits, label) leaves the connection open", async () => {
    const { key, c } = await keyConnection("rv-erin");
    await s.core.keys.setLimits(key.id, { "key-weight-1m": 10_000 }, "test");
    await s.core.keys.update(key.id, { label: "renamed" }, "test");
    expect((await c.request("account.status")).status).toBe(200);
    expect(c.ws.readyState).toBe(c.ws.OPEN);
  });
});

describe("sessions", () => {
  it("logout (DELETE /portcullis/v1/session, signed with the session): 4005 SESSION_REVOKED", async () => {
    const { session, c } = await sessionConnection("rv-frank");
    const closed = await closedAfter("logout", c, async () => {
      const headers = signRequest({ method: "DELETE", url: "/portcullis/v1/session", host: s.host, keyId: session.keyid, key: session.secret, created: s.clock.seconds });
      const res = await fetch(`${s.httpUrl}/portcullis/v1/session`, { method: "DELETE", headers });
      expect(res.status).toBe(204);
    });
    expect({ code: closed.code, reason: closed.reason }).toEqual({ code: 4005, reason: "SESSION_REVOKED" });
  });

  it("a logout this gateway did not hear of (another gateway's, on a shared hot store) closes on the next message", async () => {
    const { session, c } = await sessionConnection("rv-heidi");
    const parsed = parseToken(session.keyid);
    if (!parsed.ok) throw new Error(parsed.why);
    // What another gateway's logout leaves in the shared hot store, without this process's event.
    await s.core.hot.revokeSession(parsed.claims.sid, parsed.claims.auth + 86_400_000, s.clock.ms);
    await expect(c.request("account.status")).rejects.toThrow(/closed \(4005 SESSION_REVOKED\)/);
    expect(s.exchange.accounts()).toContain("rv-heidi");
  });

  it("the key revoked under a session's connection: 4001 KEY_REVOKED", async () => {
    const { key, c } = await sessionConnection("rv-grace");
    const closed = await closedAfter("revoke under a session", c, () => s.core.keys.revoke(key.id, "test"));
    expect({ code: closed.code, reason: closed.reason }).toEqual({ code: 4001, reason: "KEY_REVOKED" });
  });
});

describe("expiry (timers on the frozen clock)", () => {
  it("the session token expires: 4002 SESSION_EXPIRED, at its expiry and not before", async () => {
    const { c } = await sessionConnection("ex-alice");
    s.timers.advance(15 * MINUTE - 1);
    expect((await c.request("account.status")).status).toBe(200);
    s.timers.advance(1);
    const closed = await c.closed;
    expect({ code: closed.code, reason: closed.reason }).toEqual({ code: 4002, reason: "SESSION_EXPIRED" });
  });

  it("the key expires: 4004 KEY_EXPIRED", async () => {
    const { c } = await keyConnection("ex-bob", { expires: "2h" });
    s.timers.advance(2 * 60 * MINUTE);
    const closed = await c.closed;
    expect({ code: closed.code, reason: closed.reason }).toEqual({ code: 4004, reason: "KEY_EXPIRED" });
  });

  it("a rotation's grace period ends the old key's connection when it ends", async () => {
    const { key, c } = await keyConnection("ex-carol");
    await s.core.keys.rotate(key.id, { graceMs: 10 * MINUTE, publicKey: undefined }, "test");
    expect((await c.request("account.status")).status).toBe(200);
    s.timers.advance(10 * MINUTE);
    const closed = await c.closed;
    expect({ code: closed.code, reason: closed.reason }).toEqual({ code: 4004, reason: "KEY_EXPIRED" });
  });
});

describe("Binance logons and signed requests", () => {
  function ed(): { publicKey: string; privateKey: KeyObject } {
    const pair = generateKeyPairSync("ed25519");
    return { publicKey: pair.publicKey.export({ type: "spki", format: "pem" }).toString(), privateKey: pair.privateKey };
  }

  it("a logged-on connection closes when its key is revoked; a key that only signed one request closes nothing", async () => {
    const pair = ed();
    const created = await s.createKey({ account: "bn-alice", scopes: ["read", "trade"], dialects: ["binance"], algorithm: "ed25519", publicKey: pair.publicKey });
    const c = await connect();
    const params = { apiKey: created.key.id, timestamp: s.clock.ms };
    const signature = sign(null, Buffer.from(webSocketSignaturePayload(params), "utf8"), pair.privateKey).toString("base64");
    expect((await c.request("session.logon", { ...params, signature })).status).toBe(200);
    const closed = await closedAfter("revoke under a logon", c, () => s.core.keys.revoke(created.key.id, "test"));
    expect({ code: closed.code, reason: closed.reason }).toEqual({ code: 4001, reason: "KEY_REVOKED" });

    const other = await hmacKey("bn-bob");
    const anonymous = await connect();
    const order = { symbol: "BTCUSDT", side: "BUY", type: "MARKET", quantity: "0.01", apiKey: other.id, timestamp: s.clock.ms };
    const { createHmac } = await import("node:crypto");
    const hmac = createHmac("sha256", Buffer.from(other.secret, "utf8")).update(webSocketSignaturePayload(order), "utf8").digest("hex");
    expect((await anonymous.request("order.place", { ...order, signature: hmac })).status).toBe(200);
    await s.core.keys.revoke(other.id, "test");
    expect((await anonymous.request("time")).status).toBe(200);
    const again = { ...order, timestamp: s.clock.ms + 1 };
    const hmac2 = createHmac("sha256", Buffer.from(other.secret, "utf8")).update(webSocketSignaturePayload(again), "utf8").digest("hex");
    expect(await anonymous.request("order.place", { ...again, signature: hmac2 })).toMatchObject({ status: 401, error: { code: -2015 } });
    expect(anonymous.ws.readyState).toBe(anonymous.ws.OPEN);
  });
});

describe("graceful shutdown", () => {
  it("closes every connection with 1001 GATEWAY_CLOSING, then refuses new upgrades", async () => {
    const own = await startWsStack();
    try {
      const created = await own.createKey({ account: "gs-alice", scopes: ["read"], dialects: ["native", "binance"] });
      const a = await WsClient.connect(`${own.wsUrl}${PATH}`, signedUpgrade(own, PATH, created.key.id, created.secret ?? ""));
      const b = await WsClient.connect(`${own.wsUrl}${PATH}`);
      const closing = own.gateway.close(2_000);
      const [ca, cb] = await Promise.all([a.closed, b.closed]);
      await closing;
      expect([ca.code, ca.reason, cb.code, cb.reason]).toEqual([1001, "GATEWAY_CLOSING", 1001, "GATEWAY_CLOSING"]);
      expect(own.proxy.size).toBe(0);
    } finally {
      await own.close();
    }
  });
});
