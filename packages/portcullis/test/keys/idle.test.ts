/**
 * Idle expiry of unrestricted trading keys (issue 14): a key that may trade or withdraw from any
 * address stops after the idle expiry without use; every answer to one says when that would be;
 * a key with an IP allowlist, or one that can only read, never stops for idleness; use, and any
 * operator change, renews it. Through a real gateway with a frozen clock.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { valueOrThrow } from "../../src/errors/result.js";
import { parseConfig } from "../../src/config/config.js";
import { DEFAULT_IDLE_EXPIRY_MS, idleExpiresAt, isUnrestrictedTrading } from "../../src/contract/keys.js";
import { parseUpdateKeyInput } from "../../src/keys/input.js";
import { type TestGateway, makeGateway } from "../support/gateway.js";
import { signRequest } from "../support/harness.js";
import { keyRecord } from "../support/keys.js";

const DAY = 86_400_000;
const IDLE = 30 * DAY;

let t: TestGateway;
beforeAll(async () => {
  t = await makeGateway({ idleExpiryMs: IDLE });
});
afterAll(async () => {
  await t.close();
});

async function get(keyId: string, secret: string): Promise<{ status: number; code: string | undefined; idle: unknown }> {
  const headers = signRequest({ method: "GET", url: "/api/v3/account", keyId, key: secret, created: t.clock.seconds });
  const res = await t.inject({ method: "GET", url: "/api/v3/account", headers });
  const body = res.json<{ code?: string }>();
  return { status: res.statusCode, code: res.statusCode === 200 ? undefined : body.code, idle: res.headers["portcullis-key-idle-expires"] };
}

/** Makes the key's last use durable and its cached copy current, as the gateway does in time. */
async function settle(keyId: string): Promise<void> {
  await t.core.flushUsage();
  t.core.cache.evict([keyId]);
}

describe("which keys idle expiry applies to", () => {
  it("keys that may trade or withdraw from any address; never read-only keys or keys with an allowlist", () => {
    expect(isUnrestrictedTrading(keyRecord({ scopes: ["read", "trade"], ipAllowlist: [] }))).toBe(true);
    expect(isUnrestrictedTrading(keyRecord({ scopes: ["withdraw"], ipAllowlist: [] }))).toBe(true);
    expect(isUnrestrictedTrading(keyRecord({ scopes: ["read"], ipAllowlist: [] }))).toBe(false);
    expect(isUnrestrictedTrading(keyRecord({ scopes: ["trade", "withdraw"], ipAllowlist: ["10.0.0.0/8"] }))).toBe(false);
  });

  it("counts from the latest of creation, last use and the last operator change; off means never", () => {
    const record = keyRecord({ createdAt: 1_000, updatedAt: 5_000, lastUsedAt: 3_000 });
    expect(idleExpiresAt(record, IDLE)).toBe(5_000 + IDLE);
    expect(idleExpiresAt(keyRecord({ createdAt: 1_000, updatedAt: 1_000, lastUsedAt: 9_000 }), IDLE)).toBe(9_000 + IDLE);
    expect(idleExpiresAt(record, null)).toBeNull();
  });

  it("is configured as keys.idleExpiry (default 90 days, or off), within 1 to 366 days", () => {
    const base = { gateway: { upstream: "http://127.0.0.1:9" }, routes: [{ method: "GET", path: "/x", permission: "read" }] };
    expect(parseConfig(base, "/tmp").keys.idleExpiryMs).toBe(DEFAULT_IDLE_EXPIRY_MS);
    expect(parseConfig({ ...base, keys: { idleExpiry: "14d" } }, "/tmp").keys.idleExpiryMs).toBe(14 * DAY);
    expect(parseConfig({ ...base, keys: { idleExpiry: "off" } }, "/tmp").keys.idleExpiryMs).toBeNull();
    expect(() => parseConfig({ ...base, keys: { idleExpiry: "12h" } }, "/tmp")).toThrow(/keys.idleExpiry must be from 1d to 366d/);
    expect(() => parseConfig({ ...base, keys: { idleExpiry: "400d" } }, "/tmp")).toThrow(/keys.idleExpiry/);
    expect(() => parseConfig({ ...base, keys: { idle: "14d" } }, "/tmp")).toThrow(/keys/);
  });
});

describe("through the gateway", () => {
  it("an unrestricted trading key works until one idle period after its last use, then is refused with KEY_IDLE_EXPIRED", async () => {
    const created = await t.createKey({ scopes: ["read", "trade"] });
    const id = created.key.id;
    const secret = created.secret as string;
    expect(created.key.idleExpiresAt).toBe(t.clock.ms + IDLE);

    // Every answer says when the key would stop if this were its last request.
    const first = await get(id, secret);
    expect(first.status).toBe(200);
    expect(first.idle).toBe(new Date(t.clock.ms + IDLE).toISOString());
    await settle(id);

    // One millisecond before a full idle period after that use: still works (and is renewed).
    t.clock.advance(IDLE - 1);
    expect((await get(id, secret)).status).toBe(200);
    await settle(id);

    // A full idle period after the last use: refused, and shown as expired.
    t.clock.advance(IDLE);
    const refused = await get(id, secret);
    expect(refused).toMatchObject({ status: 401, code: "KEY_IDLE_EXPIRED", idle: undefined });
    const shown = await t.core.keys.get(id);
    expect(shown.effectiveStatus).toBe("expired");
    expect(shown.idleExpiresAt).toBe((shown.lastUsedAt ?? Number.NaN) + IDLE);

    // An operator renews it by changing it, better by giving it an allowlist: then it never idles out.
    await t.core.keys.update(id, valueOrThrow(parseUpdateKeyInput({ ipAllowlist: ["127.0.0.1"] })), "test");
    const restricted = await get(id, secret);
    expect(restricted).toMatchObject({ status: 200, idle: undefined });
    expect((await t.core.keys.get(id)).idleExpiresAt).toBeNull();
  });

  it("a read-only key and a key with an IP allowlist never stop for idleness", async () => {
    const reader = await t.createKey({ scopes: ["read"] });
    const allowlisted = await t.createKey({ scopes: ["read", "trade"], ipAllowlist: ["127.0.0.1"] });
    t.clock.advance(10 * IDLE);
    expect(await get(reader.key.id, reader.secret as string)).toMatchObject({ status: 200, idle: undefined });
    expect(await get(allowlisted.key.id, allowlisted.secret as string)).toMatchObject({ status: 200, idle: undefined });
  });

  it("a key never used stops one idle period after its creation", async () => {
    const created = await t.createKey({ scopes: ["trade"] });
    t.clock.advance(IDLE);
    expect(await get(created.key.id, created.secret as string)).toMatchObject({ status: 401, code: "KEY_IDLE_EXPIRED" });
  });
});
