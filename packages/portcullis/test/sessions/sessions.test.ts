/**
 * Sessions through the gateway (in-process inject, frozen clock): logon with any credential type,
 * session-signed requests, refresh, logout, and every way a session is refused, each with its code.
 */
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createIdentityVerifier } from "../../src/gateway/identity.js";
import { SessionAuthority } from "../../src/sessions/authority.js";
import { readEntries } from "../audit/support.js";
import { IDENTITY_SECRET, type TestGateway, makeGateway } from "../support/gateway.js";
import { signRequest, type SignAlg } from "../support/harness.js";
import { initDataDir, openDataDir } from "../../src/core/data-dir.js";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";

interface SessionJson {
  keyid: string;
  secret: string;
  expiresAt: number;
  scopes: string[];
  apiKeyId: string;
  boundAddress: string | null;
}

interface Answer {
  status: number;
  code: string | undefined;
  json: Record<string, unknown>;
  headers: Record<string, unknown>;
}

let t: TestGateway;
let keyId: string;
let secret: string;
/** Every session token and secret a test was given: none may appear in a log line. */
const issued: string[] = [];

beforeAll(async () => {
  t = await makeGateway({ sessions: true });
  const created = await t.createKey({ scopes: ["read", "trade"] });
  keyId = created.key.id;
  secret = created.secret ?? "";
});
afterAll(async () => {
  await t.close();
});

const MINUTE = 60_000;

async function send(
  method: string,
  url: string,
  id: string,
  key: string | KeyObject,
  options: { body?: string; alg?: SignAlg; created?: number; nonce?: string; remoteAddress?: string } = {},
): Promise<Answer> {
  const headers = signRequest({
    method,
    url,
    keyId: id,
    key,
    created: options.created ?? t.clock.seconds,
    ...(options.body === undefined ? {} : { body: options.body }),
    ...(options.alg === undefined ? {} : { alg: options.alg }),
    ...(options.nonce === undefined ? {} : { nonce: options.nonce }),
  });
  const res = await t.inject({
    method,
    url,
    headers: options.body === undefined ? headers : { ...headers, "content-type": "application/json" },
    ...(options.body === undefined ? {} : { payload: options.body }),
    ...(options.remoteAddress === undefined ? {} : { remoteAddress: options.remoteAddress }),
  });
  const json = res.payload === "" ? {} : res.json<Record<string, unknown>>();
  expect(res.payload).not.toMatch(/\bat .*\.(ts|js):\d+/);
  return { status: res.statusCode, code: typeof json.code === "string" ? json.code : undefined, json, headers: res.headers };
}

async function logon(id = keyId, key: string | KeyObject = secret, body?: Record<string, unknown>, options: { alg?: SignAlg; remoteAddress?: string } = {}): Promise<SessionJson> {
  const res = await send("POST", "/portcullis/v1/session", id, key, { ...options, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  expect(res.status, JSON.stringify(res.json)).toBe(201);
  expect(res.headers["cache-control"]).toBe("no-store");
  const session = res.json as unknown as SessionJson;
  issued.push(session.keyid, session.secret);
  return session;
}

const account = (s: SessionJson, options: { created?: number; nonce?: string; remoteAddress?: string } = {}): Promise<Answer> => send("GET", "/api/v3/account", s.keyid, s.secret, options);

describe("logon and session requests", () => {
  it("logs on with an HMAC key and signs later requests with the session: forwarded with the key's identity", async () => {
    const s = await logon();
    expect(s.keyid).toMatch(/^pcs_test_v1_[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{86}$/);
    expect(s.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(s).toMatchObject({ expiresAt: t.clock.ms + 15 * MINUTE, scopes: ["read", "trade"], apiKeyId: keyId, boundAddress: null });
    const res = await account(s);
    expect(res.status).toBe(200);
    const got = t.upstream.requests.at(-1);
    const identity = createIdentityVerifier(IDENTITY_SECRET, { now: t.clock.now })({ method: got?.method, url: got?.url, headers: got?.headers ?? {} }, got?.rawBody ?? Buffer.alloc(0));
    expect(identity).toMatchObject({ ok: true, identity: { keyId, account: "acct-1", scopes: ["read", "trade"] } });
    expect(JSON.stringify(got?.headers)).not.toContain(s.keyid);
    // A session's request with a body covers it with content-digest, like any native request.
    const order = await send("POST", "/api/v3/order", s.keyid, s.secret, { body: '{"symbol":"BTCUSDT"}' });
    expect(order.status).toBe(200);
  });

  it("an Ed25519 key pays one signature at logon; the session is HMAC", async () => {
    const pair = generateKeyPairSync("ed25519");
    const created = await t.createKey({ algorithm: "ed25519", publicKey: pair.publicKey.export({ type: "spki", format: "pem" }).toString() });
    const s = await logon(created.key.id, pair.privateKey, undefined, { alg: "ed25519" });
    expect((await account(s)).status).toBe(200);
  });

  it("a session may narrow the key's scopes, never widen them", async () => {
    const readOnly = await logon(keyId, secret, { scopes: ["read"] });
    expect(readOnly.scopes).toEqual(["read"]);
    expect((await account(readOnly)).status).toBe(200);
    const order = await send("POST", "/api/v3/order", readOnly.keyid, readOnly.secret, { body: "{}" });
    expect({ status: order.status, code: order.code }).toEqual({ status: 403, code: "SCOPE_MISSING" });
    const upstreamIdentity = t.upstream.requests.at(-1)?.headers["portcullis-scopes"];
    expect(upstreamIdentity).toBe("read");
    const wider = await send("POST", "/portcullis/v1/session", keyId, secret, { body: JSON.stringify({ scopes: ["read", "withdraw"] }) });
    expect({ status: wider.status, code: wider.code }).toEqual({ status: 403, code: "SESSION_SCOPE_NOT_HELD" });
  });

  it("binds a session to the logon's address when asked (or when the key asks)", async () => {
    const bound = await logon(keyId, secret, { bindAddress: true });
    expect(bound.boundAddress).toBe("127.0.0.1");
    expect((await account(bound)).status).toBe(200);
    expect(await account(bound, { remoteAddress: "127.0.0.2" })).toMatchObject({ status: 403, code: "SESSION_ADDRESS_MISMATCH" });
    const keyBound = await t.createKey({ sessionBindAddress: true });
    const s = await logon(keyBound.key.id, keyBound.secret ?? "", undefined, { remoteAddress: "127.0.0.3" });
    expect(s.boundAddress).toBe("127.0.0.3");
  });

  it("uses the key's session lifetime; a logon may ask for less, not more", async () => {
    const long = await t.createKey({ sessionTtl: "2h" });
    expect((await logon(long.key.id, long.secret ?? "")).expiresAt).toBe(t.clock.ms + 120 * MINUTE);
    expect((await logon(long.key.id, long.secret ?? "", { ttl: "5m" })).expiresAt).toBe(t.clock.ms + 5 * MINUTE);
    for (const body of [{ ttl: "3h" }, { ttl: "30s" }, { ttl: 300 }, { scopes: "read" }, { bindAddress: "yes" }, { forever: true }, [1]]) {
      const res = await send("POST", "/portcullis/v1/session", long.key.id, long.secret ?? "", { body: JSON.stringify(body) });
      expect({ body, status: res.status, code: res.code }).toEqual({ body, status: 400, code: "VALIDATION_FAILED" });
    }
    const bad = await send("POST", "/portcullis/v1/session", long.key.id, long.secret ?? "", { body: "{nope" });
    expect(bad.code).toBe("JSON_MALFORMED");
  });

  it("never lets a session outlive its key", async () => {
    const short = await t.createKey({ expires: "10m" });
    expect((await logon(short.key.id, short.secret ?? "")).expiresAt).toBe(t.clock.ms + 10 * MINUTE);
  });
});

describe("refused sessions, each with its code", () => {
  it("a tampered token: any change to its claims or signature", async () => {
    const s = await logon();
    const [head = "", signature = ""] = s.keyid.split(".");
    const prefix = "pcs_test_v1_";
    const claims = JSON.parse(Buffer.from(head.slice(prefix.length), "base64url").toString("utf8")) as Record<string, unknown>;
    const other = await t.createKey({ scopes: ["read", "trade", "withdraw"] });
    const forge = (patch: Record<string, unknown>): string => `${prefix}${Buffer.from(JSON.stringify({ ...claims, ...patch }), "utf8").toString("base64url")}.${signature}`;
    for (const token of [
      forge({ scp: ["read", "trade", "withdraw"] }),
      forge({ exp: (claims.exp as number) + 60 * MINUTE }),
      forge({ key: other.key.id }),
      forge({ ep: 7 }),
      // One character of the signature or of the payload changed (the 40th: all 6 of its bits count).
      `${head}.${signature.slice(0, 40)}${signature[40] === "A" ? "B" : "A"}${signature.slice(41)}`,
      `${head.slice(0, 40)}${head[40] === "A" ? "B" : "A"}${head.slice(41)}.${signature}`,
      // The same signature bytes, spelled with non-zero unused bits in its last character.
      `${head}.${signature.slice(0, -1)}${String.fromCharCode((signature.at(-1) ?? "A").charCodeAt(0) + 1)}`,
      "pcs_test_v1_garbage",
    ]) {
      const res = await send("GET", "/api/v3/account", token, s.secret);
      expect({ token, status: res.status, code: res.code }).toEqual({ token, status: 401, code: "SESSION_INVALID" });
    }
  });

  it("a token of another deployment (another signing key), or of the other environment", async () => {
    const dir = mkdtempSync(join(tmpdir(), "portcullis-other-"));
    try {
      await initDataDir(dir, "test");
      const data = await openDataDir(dir);
      const foreign = await SessionAuthority.open({ meta: data.store, envelope: data.envelope, environment: "test" });
      const live = await SessionAuthority.open({ meta: data.store, envelope: data.envelope, environment: "live" });
      await data.store.close();
      const key = await t.core.cache.load(keyId);
      if (key === null) throw new Error("no key");
      const issued = await foreign.logon(key, {}, "127.0.0.1", t.clock.ms);
      expect((await send("GET", "/api/v3/account", issued.keyid, issued.secret)).code).toBe("SESSION_INVALID");
      const liveToken = await live.logon(key, {}, "127.0.0.1", t.clock.ms);
      expect((await send("GET", "/api/v3/account", liveToken.keyid, liveToken.secret)).code).toBe("KEY_ENVIRONMENT_MISMATCH");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the token alone is useless: a proof with a wrong secret, or another session's secret", async () => {
    const a = await logon();
    const other = await t.createKey({});
    const b = await logon(other.key.id, other.secret ?? "");
    for (const key of ["x".repeat(43), b.secret, secret]) {
      expect(await send("GET", "/api/v3/account", a.keyid, key)).toMatchObject({ status: 401, code: "SIGNATURE_INVALID" });
    }
  });

  it("a replayed proof", async () => {
    const s = await logon();
    expect((await account(s, { nonce: "session-replay-nonce-1" })).status).toBe(200);
    expect(await account(s, { nonce: "session-replay-nonce-1" })).toMatchObject({ status: 409, code: "NONCE_REPLAYED" });
  });

  it("an expired session, at the exact edge", async () => {
    const s = await logon(keyId, secret, { ttl: "1m" });
    t.clock.advance(MINUTE - 1);
    expect((await account(s)).status).toBe(200);
    t.clock.advance(1);
    expect(await account(s)).toMatchObject({ status: 401, code: "SESSION_EXPIRED" });
    // Refresh needs a live session.
    expect((await send("POST", "/portcullis/v1/session/refresh", s.keyid, s.secret)).code).toBe("SESSION_EXPIRED");
  });

  it("clock skew at the edges: the proof's created within the key's window, not beyond", async () => {
    const s = await logon();
    expect((await account(s, { created: t.clock.seconds - 5 })).status).toBe(200);
    expect(await account(s, { created: t.clock.seconds - 7 })).toMatchObject({ status: 401, code: "CREATED_TOO_OLD" });
    expect((await account(s, { created: t.clock.seconds + 1 })).status).toBe(200);
    expect(await account(s, { created: t.clock.seconds + 2 })).toMatchObject({ status: 401, code: "CREATED_IN_FUTURE" });
  });

  it("logout, then reuse", async () => {
    const s = await logon();
    const keep = await logon();
    expect((await account(s)).status).toBe(200);
    const out = await send("DELETE", "/portcullis/v1/session", s.keyid, s.secret);
    expect(out.status).toBe(204);
    expect(await account(s)).toMatchObject({ status: 401, code: "SESSION_REVOKED" });
    expect((await send("POST", "/portcullis/v1/session/refresh", s.keyid, s.secret)).code).toBe("SESSION_REVOKED");
    expect((await send("DELETE", "/portcullis/v1/session", s.keyid, s.secret)).code).toBe("SESSION_REVOKED");
    // Only that session ended.
    expect((await account(keep)).status).toBe(200);
  });

  it.each([
    ["revoke", (id: string) => t.core.keys.revoke(id, "test"), 401, "KEY_REVOKED"],
    ["suspend", (id: string) => t.core.keys.suspend(id, "test"), 403, "KEY_SUSPENDED"],
    ["end-sessions", (id: string) => t.core.keys.endSessions(id, "test"), 401, "SESSION_REVOKED"],
    ["a scope change", (id: string) => t.core.keys.update(id, { scopes: ["read", "withdraw"] }, "test"), 401, "SESSION_REVOKED"],
    ["an allowlist change", (id: string) => t.core.keys.update(id, { ipAllowlist: ["127.0.0.0/8"] }, "test"), 401, "SESSION_REVOKED"],
  ])("%s ends the key's sessions at once (and refresh after it is refused)", async (_what, change, status, code) => {
    const key = await t.createKey({});
    const s = await logon(key.key.id, key.secret ?? "");
    expect((await account(s)).status).toBe(200);
    await change(key.key.id);
    expect(await account(s)).toMatchObject({ status, code });
    expect((await send("POST", "/portcullis/v1/session/refresh", s.keyid, s.secret)).code).toBe(code);
  });

  it("a suspended key's sessions stay ended after it resumes", async () => {
    const key = await t.createKey({});
    const s = await logon(key.key.id, key.secret ?? "");
    await t.core.keys.suspend(key.key.id, "test");
    await t.core.keys.resume(key.key.id, "test");
    expect(await account(s)).toMatchObject({ status: 401, code: "SESSION_REVOKED" });
    expect((await account(await logon(key.key.id, key.secret ?? ""))).status).toBe(200);
  });

  it("logon with a session, refresh or logout with the API key", async () => {
    const s = await logon();
    expect(await send("POST", "/portcullis/v1/session", s.keyid, s.secret)).toMatchObject({ status: 400, code: "SESSION_NOT_ALLOWED" });
    expect(await send("POST", "/portcullis/v1/session/refresh", keyId, secret)).toMatchObject({ status: 400, code: "SESSION_REQUIRED" });
    expect(await send("DELETE", "/portcullis/v1/session", keyId, secret)).toMatchObject({ status: 400, code: "SESSION_REQUIRED" });
  });

  it("an unsigned or unknown session endpoint", async () => {
    const res = await t.inject({ method: "POST", url: "/portcullis/v1/session" });
    expect({ status: res.statusCode, code: res.json<{ code: string }>().code }).toEqual({ status: 401, code: "CREDENTIALS_MISSING" });
    expect((await send("GET", "/portcullis/v1/session", keyId, secret)).code).toBe("ROUTE_NOT_FOUND");
    expect((await send("PUT", "/portcullis/v1/session/refresh", keyId, secret)).code).toBe("ROUTE_NOT_FOUND");
  });
});

describe("refresh", () => {
  it("keeps the session (id, secret, scopes) and moves its expiry, at most 24 hours after logon", async () => {
    const s = await logon(keyId, secret, { scopes: ["read"], ttl: "10m" });
    t.clock.advance(9 * MINUTE);
    const res = await send("POST", "/portcullis/v1/session/refresh", s.keyid, s.secret);
    expect(res.status).toBe(200);
    const next = res.json as unknown as SessionJson;
    expect(next).toMatchObject({ secret: s.secret, scopes: ["read"], expiresAt: t.clock.ms + 10 * MINUTE });
    expect(next.keyid).not.toBe(s.keyid);
    // The old token still works until its own expiry; a logout ends both.
    expect((await account(s)).status).toBe(200);
    expect((await account(next)).status).toBe(200);
    expect((await send("DELETE", "/portcullis/v1/session", next.keyid, next.secret)).status).toBe(204);
    expect((await account(s)).code).toBe("SESSION_REVOKED");
  });

  it("stops at the maximum lifetime", async () => {
    const long = await t.createKey({ sessionTtl: "12h" });
    const start = t.clock.ms;
    const refresh = async (s: SessionJson): Promise<Answer> => send("POST", "/portcullis/v1/session/refresh", s.keyid, s.secret);
    let s = await logon(long.key.id, long.secret ?? "");
    t.clock.advance(11 * 60 * MINUTE);
    s = (await refresh(s)).json as unknown as SessionJson;
    expect(s.expiresAt).toBe(start + 23 * 60 * MINUTE);
    t.clock.advance(11 * 60 * MINUTE);
    s = (await refresh(s)).json as unknown as SessionJson;
    // Capped at logon + 24 h, not now + 12 h.
    expect(s.expiresAt).toBe(start + 24 * 60 * MINUTE);
    expect(await refresh(s)).toMatchObject({ status: 401, code: "SESSION_LIFETIME_EXCEEDED" });
    expect((await account(s)).status).toBe(200);
  });
});

describe("the audit log", () => {
  it("records logon, refresh and logout by session id (never the token or secret), and every session request's decision", async () => {
    const key = await t.createKey({ account: "acct-audit" });
    const s = await logon(key.key.id, key.secret ?? "", { scopes: ["read"] });
    const sid = (JSON.parse(Buffer.from((s.keyid.split(".")[0] ?? "").slice("pcs_test_v1_".length), "base64url").toString("utf8")) as { sid: string }).sid;
    await account(s);
    await send("POST", "/portcullis/v1/session/refresh", s.keyid, s.secret);
    await send("DELETE", "/portcullis/v1/session", s.keyid, s.secret);
    await t.core.audit.flush();
    const entries = readEntries(t.dataDir).filter((e) => e.key === key.key.id);
    const events = entries.map((e) => `${e.event}${e.route === undefined ? "" : ` ${e.route}`}`);
    // The lifecycle audits a request after handing it on (so its entry can say how that went):
    // the endpoint's own event comes first, then the request's decision.
    expect(events).toEqual([
      "key.create",
      "session.create",
      "request.allow POST /portcullis/v1/session",
      "request.allow GET /api/v3/account",
      "session.refresh",
      "request.allow POST /portcullis/v1/session/refresh",
      "session.revoke",
      "request.allow DELETE /portcullis/v1/session",
    ]);
    for (const e of entries.filter((x) => x.event.startsWith("session."))) {
      expect(e).toMatchObject({ actor: `key:${key.key.id}`, account: "acct-audit", client: "127.0.0.1", detail: { session: sid } });
    }
    expect(entries.find((e) => e.event === "session.create")?.detail).toMatchObject({ scopes: ["read"], boundAddress: null });
    const text = JSON.stringify(entries);
    expect(text).not.toContain(s.keyid.split(".")[1]);
    expect(text).not.toContain(s.secret);
  });
});

describe("logs", () => {
  it("carry no session token and no session secret, refusals included", () => {
    expect(issued.length).toBeGreaterThan(20);
    expect(t.logLines.some((line) => line.includes("session request refused") || line.includes("request denied"))).toBe(true);
    const leaks = t.logLines.filter((line) => issued.some((credential) => line.includes(credential) || line.includes(credential.split(".")[0] ?? credential)));
    expect(leaks).toEqual([]);
  });
});

describe("a gateway without sessions", () => {
  it("refuses session tokens and has no session endpoints", async () => {
    const plain = await makeGateway();
    try {
      const created = await plain.createKey({});
      const s = await logon();
      const headers = signRequest({ method: "GET", url: "/api/v3/account", keyId: s.keyid, key: s.secret, created: plain.clock.seconds });
      const res = await plain.inject({ method: "GET", url: "/api/v3/account", headers });
      expect(res.json<{ code: string }>().code).toBe("SESSION_INVALID");
      const logonHeaders = signRequest({ method: "POST", url: "/portcullis/v1/session", keyId: created.key.id, key: created.secret ?? "", created: plain.clock.seconds });
      expect((await plain.inject({ method: "POST", url: "/portcullis/v1/session", headers: logonHeaders })).statusCode).toBe(404);
    } finally {
      await plain.close();
    }
  });
});
