/**
 * Key rotation, updates and the session epoch, through the key service and a gateway with a
 * frozen clock: the successor works at once, the old key works until its grace ends and is then
 * refused, every change that must end a key's sessions moves its epoch, and answers warn before a
 * key expires.
 */
import { valueOrThrow } from "../../src/errors/result.js";
import { type KeyObject, generateKeyPairSync } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PortcullisError } from "../../src/errors/catalogue.js";
import { compileKey } from "../../src/keys/cache.js";
import { parseRotateKeyInput, parseUpdateKeyInput } from "../../src/keys/input.js";
import type { KeyView } from "../../src/contract/keys.js";
import { type TestGateway, makeGateway } from "../support/gateway.js";
import { signRequest } from "../support/harness.js";

let t: TestGateway;
beforeAll(async () => {
  t = await makeGateway();
});
afterAll(async () => {
  await t.close();
});

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

async function get(keyId: string, key: string | KeyObject, alg?: "ed25519"): Promise<{ status: number; code: string | undefined; headers: Record<string, unknown> }> {
  const headers = signRequest({ method: "GET", url: "/api/v3/account", keyId, key, created: t.clock.seconds, ...(alg === undefined ? {} : { alg }) });
  const res = await t.inject({ method: "GET", url: "/api/v3/account", headers });
  const body = res.json<{ code?: string }>();
  return { status: res.statusCode, code: res.statusCode === 200 ? undefined : body.code, headers: res.headers };
}

async function refusal(p: Promise<unknown>): Promise<PortcullisError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PortcullisError);
  return err as PortcullisError;
}

const rotate = (id: string, raw: Record<string, unknown> = {}) => t.core.keys.rotate(id, valueOrThrow(parseRotateKeyInput(raw)), "test");
const update = (id: string, raw: Record<string, unknown>) => t.core.keys.update(id, valueOrThrow(parseUpdateKeyInput(raw)), "test");

describe("rotation", () => {
  it("gives an HMAC key a successor with the same settings and a new secret; the old key works for the grace period, then expires", async () => {
    const old = await t.createKey({ account: "mm-1", scopes: ["read", "trade"], ipAllowlist: ["127.0.0.1"], label: "bot", windowMs: 10_000, sessionTtl: "1h" });
    const rotated = await rotate(old.key.id, { grace: "2h" });
    const successor = rotated.key;
    expect(rotated.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(rotated.secret).not.toBe(old.secret);
    expect(successor).toMatchObject({
      account: "mm-1",
      scopes: ["read", "trade"],
      ipAllowlist: ["127.0.0.1/32"],
      label: "bot",
      windowMs: 10_000,
      sessionTtlMs: HOUR,
      algorithm: "hmac-sha256",
      rotatedFrom: old.key.id,
      rotatedTo: null,
      expiresAt: null,
      effectiveStatus: "active",
    });
    expect(rotated.predecessor).toMatchObject({ id: old.key.id, rotatedTo: successor.id, expiresAt: t.clock.ms + 2 * HOUR, effectiveStatus: "active" });
    // Both are visible in keys show.
    expect(await t.core.keys.get(old.key.id)).toMatchObject({ rotatedTo: successor.id });
    expect(await t.core.keys.get(successor.id)).toMatchObject({ rotatedFrom: old.key.id });

    expect((await get(successor.id, rotated.secret ?? "")).status).toBe(200);
    const during = await get(old.key.id, old.secret ?? "");
    expect(during.status).toBe(200);
    expect(during.headers["portcullis-key-rotation"]).toBe("rotated");
    expect(during.headers["portcullis-key-expires"]).toBe(new Date(t.clock.ms + 2 * HOUR).toISOString());
    // The key cache would serve the old record for up to a minute; the change feed evicted it.
    t.clock.advance(2 * HOUR);
    expect(await get(old.key.id, old.secret ?? "")).toMatchObject({ status: 401, code: "KEY_EXPIRED" });
    const after = await get(successor.id, rotated.secret ?? "");
    expect(after.status).toBe(200);
    expect(after.headers["portcullis-key-expires"]).toBeUndefined();
  });

  it("with grace 0 stops the old key at once (a leaked key)", async () => {
    const old = await t.createKey({});
    const rotated = await rotate(old.key.id, { grace: "0" });
    expect(rotated.predecessor.effectiveStatus).toBe("expired");
    expect(await get(old.key.id, old.secret ?? "")).toMatchObject({ status: 401, code: "KEY_EXPIRED" });
    expect((await get(rotated.key.id, rotated.secret ?? "")).status).toBe(200);
  });

  it("needs the successor's public key for an asymmetric key, and can move an HMAC key to a key pair", async () => {
    const first = generateKeyPairSync("ed25519");
    const old = await t.createKey({ algorithm: "ed25519", publicKey: first.publicKey.export({ type: "spki", format: "pem" }).toString() });
    const missing = await refusal(rotate(old.key.id));
    expect(missing.code).toBe("VALIDATION_FAILED");
    expect(missing.fields).toEqual({ publicKey: "required" });
    const second = generateKeyPairSync("ed25519");
    const rotated = await rotate(old.key.id, { publicKey: second.publicKey.export({ type: "spki", format: "pem" }).toString() });
    expect(rotated.secret).toBeNull();
    expect((await get(rotated.key.id, second.privateKey, "ed25519")).status).toBe(200);
    // The successor's key is the new one: the old private key does not sign for it.
    expect(await get(rotated.key.id, first.privateKey, "ed25519")).toMatchObject({ status: 401, code: "SIGNATURE_INVALID" });

    const hmac = await t.createKey({});
    const moved = await rotate(hmac.key.id, { publicKey: second.publicKey.export({ type: "spki", format: "pem" }).toString() });
    expect(moved.key.algorithm).toBe("ed25519");
  });

  it("keeps an OKX key's passphrase, sealed again for the successor", async () => {
    const old = await t.createKey({ dialects: ["okx"], passphrase: "Trading-Passphrase-1" });
    const rotated = await rotate(old.key.id);
    const material = await t.core.keys.loadMaterial(rotated.key.id);
    if (material === null) throw new Error("no successor");
    const check = compileKey(material, 5000).passphrase;
    expect(check).not.toBeNull();
    expect(await check?.check("Trading-Passphrase-1")).toBe(true);
    expect(await check?.check("another-passphrase")).toBe(false);
  });

  it("keeps a Kraken key's secret in Kraken's form", async () => {
    const old = await t.createKey({ dialects: ["kraken"] });
    const rotated = await rotate(old.key.id);
    expect(Buffer.from(rotated.secret ?? "", "base64")).toHaveLength(64);
  });

  it("refuses to rotate a key twice, a revoked key, or an unknown key, changing nothing", async () => {
    const old = await t.createKey({});
    const rotated = await rotate(old.key.id);
    const twice = await refusal(rotate(old.key.id));
    expect(twice.code).toBe("KEY_STATE_CONFLICT");
    expect(twice.publicMessage).toContain(rotated.key.id);
    const revoked = await t.createKey({});
    await t.core.keys.revoke(revoked.key.id, "test");
    expect((await refusal(rotate(revoked.key.id))).code).toBe("KEY_STATE_CONFLICT");
    expect((await refusal(rotate("pck_test_v1_000000000000000000000000000000"))).code).toBe("KEY_NOT_FOUND");
    expect((await t.core.keys.list({ account: "acct-1", limit: 1000 })).filter((k) => k.rotatedFrom === old.key.id)).toHaveLength(1);
  });

  it("validates the grace period", () => {
    expect(parseRotateKeyInput({})).toEqual({ ok: true, value: { graceMs: DAY, publicKey: undefined } });
    expect(parseRotateKeyInput({ grace: 0 })).toMatchObject({ ok: true, value: { graceMs: 0 } });
    for (const grace of ["31d", "-1h", "soon", 1.5, "500ms"]) {
      expect(parseRotateKeyInput({ grace })).toMatchObject({ ok: false, code: "VALIDATION_FAILED", fields: { grace: expect.any(String) as unknown } });
    }
    expect(parseRotateKeyInput({ publicKey: 42 })).toMatchObject({ ok: false, message: expect.stringMatching(/publicKey/) as unknown });
    expect(parseRotateKeyInput({ graceMs: 1 })).toMatchObject({ ok: false, message: expect.stringMatching(/graceMs: unknown field/) as unknown });
    // A failure the caller cannot go on from becomes a PortcullisError with the fields at fault.
    expect(() => valueOrThrow(parseRotateKeyInput({ grace: "soon" }))).toThrow(PortcullisError);
  });
});

describe("a rotation policy (maximum age)", () => {
  it("sets the expiry, warns before it, and gives the successor a fresh maximum age", async () => {
    const key = await t.createKey({ maxAge: "30d" });
    expect(key.key).toMatchObject({ maxAgeMs: 30 * DAY, expiresAt: t.clock.ms + 30 * DAY });
    expect((await get(key.key.id, key.secret ?? "")).headers["portcullis-key-expires"]).toBeUndefined();
    // The warning window is 7 days (a quarter of 30 days is longer).
    t.clock.advance(23 * DAY + 1);
    const warned = await get(key.key.id, key.secret ?? "");
    expect(warned.status).toBe(200);
    expect(warned.headers["portcullis-key-rotation"]).toBe("due");
    expect(warned.headers["portcullis-key-expires"]).toBe(new Date(key.key.createdAt + 30 * DAY).toISOString());
    const rotated = await rotate(key.key.id, { grace: "1h" });
    expect(rotated.key).toMatchObject({ maxAgeMs: 30 * DAY, expiresAt: t.clock.ms + 30 * DAY });
  });

  it("warns a short-lived key in the last quarter of its maximum age", async () => {
    const key = await t.createKey({ maxAge: "1d" });
    t.clock.advance(17 * HOUR);
    expect((await get(key.key.id, key.secret ?? "")).headers["portcullis-key-rotation"]).toBeUndefined();
    t.clock.advance(2 * HOUR);
    expect((await get(key.key.id, key.secret ?? "")).headers["portcullis-key-rotation"]).toBe("due");
  });

  it("refuses a maximum age out of range", async () => {
    for (const maxAge of ["30m", "6y", "often"]) {
      expect((await refusal(Promise.resolve().then(() => t.createKey({ maxAge })))).fields).toHaveProperty("maxAge");
    }
  });
});

describe("updates and the session epoch", () => {
  it("moves the epoch on every change that must end the key's sessions, and only then", async () => {
    const { key } = await t.createKey({});
    expect(key.sessionEpoch).toBe(0);
    const steps: [string, () => Promise<KeyView>, number][] = [
      ["a label", () => update(key.id, { label: "renamed" }), 0],
      ["the session lifetime", () => update(key.id, { sessionTtl: "2h" }), 0],
      ["the same scopes", () => update(key.id, { scopes: ["trade", "read"] }), 0],
      ["narrower scopes", () => update(key.id, { scopes: ["read"] }), 1],
      ["an allowlist", () => update(key.id, { ipAllowlist: ["10.0.0.0/8"] }), 1],
      ["address binding on", () => update(key.id, { sessionBindAddress: true }), 1],
      ["address binding off", () => update(key.id, { sessionBindAddress: false }), 0],
      ["end-sessions", () => t.core.keys.endSessions(key.id, "test", "lost laptop"), 1],
      ["suspend", () => t.core.keys.suspend(key.id, "test"), 1],
      ["resume", () => t.core.keys.resume(key.id, "test"), 1],
      ["limits", () => t.core.keys.setLimits(key.id, {}, "test"), 0],
      ["revoke", () => t.core.keys.revoke(key.id, "test"), 1],
    ];
    let epoch = 0;
    for (const [what, step, moves] of steps) {
      const after = await step();
      epoch += moves;
      expect({ what, epoch: after.sessionEpoch }).toEqual({ what, epoch });
    }
    const view = await t.core.keys.get(key.id);
    expect(view).toMatchObject({ label: "renamed", scopes: ["read"], ipAllowlist: ["10.0.0.0/8"], sessionTtlMs: 2 * HOUR, sessionBindAddress: false, status: "revoked" });
  });

  it("a narrowed scope is refused by the running gateway at once", async () => {
    const key = await t.createKey({ scopes: ["read", "trade"] });
    expect((await get(key.key.id, key.secret ?? "")).status).toBe(200);
    await update(key.key.id, { scopes: ["trade"] });
    expect(await get(key.key.id, key.secret ?? "")).toMatchObject({ status: 403, code: "SCOPE_MISSING" });
  });

  it("refuses bad updates with the fields named, and changes nothing", async () => {
    const { key } = await t.createKey({ label: "keep" });
    const cases: [Record<string, unknown>, string][] = [
      [{}, "body"],
      [{ scopes: [] }, "scopes"],
      [{ scopes: ["root"] }, "scopes"],
      [{ ipAllowlist: ["999.1.1.1"] }, "ipAllowlist"],
      [{ sessionTtl: "25h" }, "sessionTtl"],
      [{ sessionTtl: "30s" }, "sessionTtl"],
      [{ sessionBindAddress: "yes" }, "sessionBindAddress"],
      [{ account: "other" }, "account"],
      [{ label: "a\u0000b" }, "label"],
    ];
    for (const [raw, field] of cases) {
      const err = await refusal(Promise.resolve().then(() => update(key.id, raw)));
      expect({ raw, code: err.code, field: Object.keys(err.fields ?? {}) }).toEqual({ raw, code: "VALIDATION_FAILED", field: [field] });
    }
    t.clock.advance(2 * HOUR);
    expect((await refusal(update(key.id, { maxAge: "1h" }))).fields).toEqual({ maxAge: "shorter than the key's age" });
    expect(await t.core.keys.get(key.id)).toMatchObject({ label: "keep", revision: key.revision });
  });

  it("refuses to update a revoked or unknown key", async () => {
    const { key } = await t.createKey({});
    await t.core.keys.revoke(key.id, "test");
    expect((await refusal(update(key.id, { label: "x" }))).code).toBe("KEY_STATE_CONFLICT");
    expect((await refusal(t.core.keys.endSessions(key.id, "test"))).code).toBe("KEY_STATE_CONFLICT");
    expect((await refusal(update("pck_test_v1_000000000000000000000000000000", { label: "x" }))).code).toBe("KEY_NOT_FOUND");
  });
});
