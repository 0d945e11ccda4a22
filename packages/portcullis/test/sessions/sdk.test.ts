/**
 * The client SDK's sessions against a real gateway socket (frozen clock shared by the gateway and
 * the client): logon, requests signed with the session, refresh before expiry on its own, a new
 * logon after the maximum lifetime, logout, and refusals surfacing as PortcullisApiError.
 */
import { PortcullisApiError, createClient, generateKeyPair } from "@portcullis/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type TestGateway, makeGateway } from "../support/gateway.js";

let t: TestGateway;
let base: string;

beforeAll(async () => {
  t = await makeGateway({ sessions: true });
  const address = await t.gateway.listen(0, "127.0.0.1");
  base = `http://127.0.0.1:${address.port}`;
});
afterAll(async () => {
  await t.close();
});

const MINUTE = 60_000;

async function refusal(p: Promise<unknown>): Promise<PortcullisApiError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PortcullisApiError);
  return err as PortcullisApiError;
}

function keyClient(keyId: string, secret: string) {
  return createClient({ baseUrl: base, keyId, secret, now: t.clock.now });
}

describe("SDK sessions", () => {
  it("logs on with an HMAC key and signs with the session", async () => {
    const { key, secret } = await t.createKey({ scopes: ["read", "trade"] });
    const session = await keyClient(key.id, secret ?? "").logon();
    expect(session.keyId).toMatch(/^pcs_test_v1_/);
    expect(session.algorithm).toBe("hmac-sha256");
    expect(session.session).toMatchObject({ apiKeyId: key.id, scopes: ["read", "trade"], expiresAt: t.clock.ms + 15 * MINUTE });
    expect(await session.json("GET", "/api/v3/account")).toEqual({ ok: true, url: "/api/v3/account" });
    expect(await session.json<object>("POST", "/api/v3/order", { json: { symbol: "BTCUSDT" } })).toMatchObject({ ok: true });
    expect(t.upstream.requests.at(-1)?.headers["portcullis-key-id"]).toBe(key.id);
  });

  it("an Ed25519 key: one signature at logon, HMAC afterwards", async () => {
    const pair = await generateKeyPair("ed25519");
    const { key } = await t.createKey({ algorithm: "ed25519", publicKey: pair.publicKeyPem });
    const client = createClient({ baseUrl: base, keyId: key.id, privateKey: pair.privateKeyPem, algorithm: "ed25519", now: t.clock.now });
    const session = await client.logon({ scopes: ["read"] });
    expect(await session.json("GET", "/api/v3/account")).toMatchObject({ ok: true });
    const err = await refusal(session.json("POST", "/api/v3/order", { json: {} }));
    expect({ status: err.status, code: err.code }).toEqual({ status: 403, code: "SCOPE_MISSING" });
  });

  it("refreshes by itself before the expiry, and logs on again after the maximum lifetime", async () => {
    const { key, secret } = await t.createKey({ sessionTtl: "10h" });
    const session = await keyClient(key.id, secret ?? "").logon();
    const first = session.session;
    t.clock.advance(7 * 60 * MINUTE);
    await session.json("GET", "/api/v3/account");
    expect(session.session.keyid).toBe(first.keyid);
    // Within the last fifth of its lifetime: the next request refreshes first.
    t.clock.advance(60 * MINUTE + 1);
    await session.json("GET", "/api/v3/account");
    const refreshed = session.session;
    expect(refreshed.keyid).not.toBe(first.keyid);
    expect(refreshed.expiresAt).toBe(t.clock.ms + 10 * 60 * MINUTE);
    // Refreshing is capped at 24 h after logon; then the client logs on again with the key.
    t.clock.advance(9 * 60 * MINUTE);
    await session.json("GET", "/api/v3/account");
    t.clock.advance(8 * 60 * MINUTE + 1);
    await session.json("GET", "/api/v3/account");
    expect(session.session.expiresAt).toBe(t.clock.ms + 10 * 60 * MINUTE);
  });

  it("logs out: the session is refused afterwards", async () => {
    const { key, secret } = await t.createKey({});
    const session = await keyClient(key.id, secret ?? "").logon({ ttl: "5m" });
    expect(session.session.expiresAt).toBe(t.clock.ms + 5 * MINUTE);
    await session.logout();
    const err = await refusal(session.json("GET", "/api/v3/account"));
    expect({ status: err.status, code: err.code }).toEqual({ status: 401, code: "SESSION_REVOKED" });
  });

  it("a refused logon is a PortcullisApiError; bad options a TypeError", async () => {
    const { key, secret } = await t.createKey({ scopes: ["read"] });
    const client = keyClient(key.id, secret ?? "");
    const err = await refusal(client.logon({ scopes: ["trade"] }));
    expect({ status: err.status, code: err.code }).toEqual({ status: 403, code: "SESSION_SCOPE_NOT_HELD" });
    await expect(client.logon({ ttl: 5 } as never)).rejects.toThrow(TypeError);
    await expect(client.logon({ refreshMarginMs: -1 })).rejects.toThrow(TypeError);
  });
});
