/**
 * The gateway-upstream identity headers on their own (`IdentitySigner` and `portcullis/upstream`'s
 * `createIdentityVerifier`), on a frozen clock: one set of headers is good for one request — its
 * method, target and body — once, within seconds.
 */
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { IDENTITY_HEADERS, IdentitySigner, type PortcullisIdentity, createIdentityVerifier } from "../../src/gateway/identity.js";

const SECRET = "identity-unit-test-secret-0123456789abcdef";
const T0 = 1_700_000_000_000;
const ORDER = "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.01&price=50000";
const MARKET_BUY = "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=1";

let seq = 0;
function signed(options: { method?: string; url?: string; body?: string; timestamp?: number; requestId?: string } = {}) {
  const method = options.method ?? "POST";
  const url = options.url ?? "/api/v3/order";
  const body = Buffer.from(options.body ?? ORDER);
  const identity: PortcullisIdentity = {
    requestId: options.requestId ?? `req-${String(++seq)}`,
    keyId: "pck_test_v1_k",
    account: "alice",
    subAccount: null,
    scopes: ["read", "trade"],
    clientIp: "203.0.113.7",
    timestamp: options.timestamp ?? T0,
  };
  const headers: Record<string, string> = {};
  new IdentitySigner(SECRET).write(headers, method, url, body, identity, "read,trade");
  return { req: { method, url, headers }, body };
}

function verifier(clock: { ms: number }, options: { maxAgeMs?: number; maxEntries?: number } = {}) {
  return createIdentityVerifier(SECRET, { ...options, now: () => clock.ms });
}

describe("identity headers (v2)", () => {
  it("carry the body's SHA-256 and a v2 MAC", () => {
    const { req } = signed();
    expect(req.headers[IDENTITY_HEADERS.contentDigest]).toBe(createHash("sha256").update(ORDER).digest("base64url"));
    expect(req.headers[IDENTITY_HEADERS.signature]).toMatch(/^v2=[A-Za-z0-9_-]{43}$/);
  });

  it("a captured header set replayed is refused", () => {
    const verify = verifier({ ms: T0 });
    const { req, body } = signed();
    expect(verify(req, body)).toMatchObject({ ok: true, identity: { account: "alice", scopes: ["read", "trade"] } });
    expect(verify(req, body)).toEqual({ ok: false, reason: "replayed" });
    expect(verify({ ...req, headers: { ...req.headers } }, Buffer.from(ORDER))).toEqual({ ok: false, reason: "replayed" });
  });

  it("the same headers with another body are refused, before or after the original was seen", () => {
    const verify = verifier({ ms: T0 });
    const { req, body } = signed();
    expect(verify(req, Buffer.from(MARKET_BUY))).toEqual({ ok: false, reason: "body-mismatch" });
    expect(verify(req, Buffer.alloc(0))).toEqual({ ok: false, reason: "body-mismatch" });
    expect(verify(req, body)).toMatchObject({ ok: true });
    expect(verify(req, Buffer.from(MARKET_BUY))).toEqual({ ok: false, reason: "body-mismatch" });
    // Swapping the digest header for the new body's breaks the MAC.
    const forged = { ...req, headers: { ...req.headers, [IDENTITY_HEADERS.contentDigest]: createHash("sha256").update(MARKET_BUY).digest("base64url") } };
    expect(verify(forged, Buffer.from(MARKET_BUY))).toEqual({ ok: false, reason: "bad-signature" });
  });

  it("a tampered method or target is refused", () => {
    const verify = verifier({ ms: T0 });
    const { req, body } = signed();
    expect(verify({ ...req, method: "DELETE" }, body)).toEqual({ ok: false, reason: "bad-signature" });
    expect(verify({ ...req, url: "/sapi/v1/capital/withdraw/apply" }, body)).toEqual({ ok: false, reason: "bad-signature" });
    expect(verify({ ...req, url: "/api/v3/order?x=1" }, body)).toEqual({ ok: false, reason: "bad-signature" });
    for (const name of Object.values(IDENTITY_HEADERS)) {
      if (name === IDENTITY_HEADERS.signature) continue;
      const value = req.headers[name];
      if (value === undefined) continue;
      expect(verify({ ...req, headers: { ...req.headers, [name]: `${value}0` } }, body), name).not.toMatchObject({ ok: true });
    }
    // Refusals do not use up the request id.
    expect(verify(req, body)).toMatchObject({ ok: true });
  });

  it("the default window is 5 s: stale after it (and as far ahead), fresh within", () => {
    const clock = { ms: T0 };
    const verify = verifier(clock);
    const late = signed();
    clock.ms = T0 + 5_001;
    expect(verify(late.req, late.body)).toEqual({ ok: false, reason: "stale" });
    const early = signed({ timestamp: T0 + 10_002 });
    expect(verify(early.req, early.body)).toEqual({ ok: false, reason: "stale" });
    const edge = signed({ timestamp: T0 + 1 });
    clock.ms = T0 + 5_001;
    expect(verify(edge.req, edge.body)).toMatchObject({ ok: true });
    expect(createIdentityVerifier(SECRET, { maxAgeMs: 30_000, now: () => T0 + 29_000 })(signed().req, Buffer.from(ORDER))).toMatchObject({ ok: true });
  });

  it("a full replay cache drops its oldest id and refuses everything no newer than it as stale", () => {
    const clock = { ms: T0 };
    const verify = verifier(clock, { maxEntries: 2 });
    const first = signed({ timestamp: T0 - 3_000 });
    const second = signed({ timestamp: T0 - 2_000 });
    const third = signed({ timestamp: T0 - 1_000 });
    expect(verify(first.req, first.body)).toMatchObject({ ok: true });
    expect(verify(second.req, second.body)).toMatchObject({ ok: true });
    expect(verify(third.req, third.body)).toMatchObject({ ok: true });
    // The first id left the cache; its replay is still refused, and so is anything as old.
    expect(verify(first.req, first.body)).toEqual({ ok: false, reason: "stale" });
    const asOld = signed({ timestamp: T0 - 3_000 });
    expect(verify(asOld.req, asOld.body)).toEqual({ ok: false, reason: "stale" });
    expect(verify(second.req, second.body)).toEqual({ ok: false, reason: "replayed" });
    const fresh = signed();
    expect(verify(fresh.req, fresh.body)).toMatchObject({ ok: true });
    // Expired ids leave the cache without moving the floor.
    clock.ms = T0 + 4_500;
    const later = signed({ timestamp: T0 + 4_000 });
    expect(verify(later.req, later.body)).toMatchObject({ ok: true });
  });

  it("format v1 is refused as unsupported; missing and malformed headers are told apart", () => {
    const verify = verifier({ ms: T0 });
    const { req, body } = signed();
    const sig = req.headers[IDENTITY_HEADERS.signature] ?? "";
    expect(verify({ ...req, headers: { ...req.headers, [IDENTITY_HEADERS.signature]: `v1=${sig.slice(3)}` } }, body)).toEqual({ ok: false, reason: "unsupported-version" });
    expect(verify({ ...req, headers: {} }, body)).toEqual({ ok: false, reason: "missing" });
    const noDigest = Object.fromEntries(Object.entries(req.headers).filter(([name]) => name !== IDENTITY_HEADERS.contentDigest));
    expect(verify({ ...req, headers: noDigest }, body)).toEqual({ ok: false, reason: "malformed" });
    expect(verify({ ...req, headers: { ...req.headers, [IDENTITY_HEADERS.requestId]: "" } }, body)).toEqual({ ok: false, reason: "malformed" });
  });

  it("a WebSocket upgrade binds the digest of no bytes", () => {
    const verify = verifier({ ms: T0 });
    const { req } = signed({ method: "GET", url: "/ws-api/v3", body: "" });
    expect(verify(req, Buffer.from("x"))).toEqual({ ok: false, reason: "body-mismatch" });
    expect(verify(req, new Uint8Array(0))).toMatchObject({ ok: true });
  });

  it("refuses bad options at construction", () => {
    expect(() => createIdentityVerifier(SECRET, { maxAgeMs: 0 })).toThrow(TypeError);
    expect(() => createIdentityVerifier(SECRET, { maxAgeMs: 60_001 })).toThrow(TypeError);
    expect(() => createIdentityVerifier(SECRET, { maxAgeMs: 1.5 })).toThrow(TypeError);
    expect(() => createIdentityVerifier(SECRET, { maxEntries: 0 })).toThrow(TypeError);
    expect(() => createIdentityVerifier("short")).toThrow(TypeError);
  });
});
