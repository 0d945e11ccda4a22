import { generateKeyPairSync } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { PortcullisError } from "../../src/errors/catalogue.js";
import { type TestCore, makeCore, signRequest } from "../support/harness.js";

let t: TestCore | null = null;
afterEach(async () => {
  await t?.cleanup();
  t = null;
});

async function core(): Promise<TestCore> {
  t = await makeCore();
  return t;
}

describe("key service", () => {
  it("creates an HMAC key with a 256-bit secret, shown once", async () => {
    const c = await core();
    const { key, secret } = await c.createKey({ label: "bot 1" });
    expect(key.algorithm).toBe("hmac-sha256");
    expect(key.id).toMatch(/^pck_test_v1_/);
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(secret ?? "", "base64url").length).toBe(32);
    const shown = await c.core.keys.get(key.id);
    expect(JSON.stringify(shown)).not.toContain(secret);
    expect(shown).toMatchObject({ label: "bot 1", status: "active", effectiveStatus: "active", lastUsedAt: null, revision: 1 });
  });

  it("never writes the secret in plaintext: not in the database file, not in any file of the data directory", async () => {
    const c = await core();
    const secrets: string[] = [];
    for (let i = 0; i < 5; i++) secrets.push((await c.createKey({})).secret ?? "");
    for (const file of readdirSync(c.dataDir)) {
      const bytes = readFileSync(join(c.dataDir, file));
      for (const s of secrets) {
        expect(bytes.includes(Buffer.from(s))).toBe(false);
        expect(bytes.includes(Buffer.from(Buffer.from(s, "base64url")))).toBe(false);
      }
    }
  });

  it("stores only the public key of an asymmetric key, and refuses a private key", async () => {
    const c = await core();
    const pair = generateKeyPairSync("ed25519");
    const pem = pair.publicKey.export({ type: "spki", format: "pem" }).toString();
    const { key, secret } = await c.createKey({ publicKey: pem });
    expect(secret).toBeNull();
    expect(key.algorithm).toBe("ed25519");
    expect(key.publicKey).toBe(pem);
    const privatePem = pair.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    const err = await c.createKey({ publicKey: privatePem }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PortcullisError);
    expect((err as PortcullisError).message).toMatch(/private key/);
    expect((err as PortcullisError).message).not.toContain(privatePem.slice(30, 60));
  });

  it("accepts a public JWK and refuses a private one", async () => {
    const c = await core();
    const pair = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const jwk = pair.publicKey.export({ format: "jwk" });
    expect((await c.createKey({ publicKey: JSON.stringify(jwk) })).key.algorithm).toBe("ecdsa-p256");
    const priv = pair.privateKey.export({ format: "jwk" });
    await expect(c.createKey({ publicKey: JSON.stringify(priv) })).rejects.toThrow(/private key material/);
  });

  it.each([
    ["RSA below 2048 bits", () => generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey, /at least 2048/],
    ["EC on another curve", () => generateKeyPairSync("ec", { namedCurve: "P-384" }).publicKey, /P-256/],
    ["X25519", () => generateKeyPairSync("x25519").publicKey, /unsupported key type/],
  ])("refuses %s", async (_name, make, message) => {
    const c = await core();
    await expect(c.createKey({ publicKey: make().export({ type: "spki", format: "pem" }).toString() })).rejects.toThrow(message);
  });

  it("refuses a public key that does not match the requested algorithm", async () => {
    const c = await core();
    const pem = generateKeyPairSync("ed25519").publicKey.export({ type: "spki", format: "pem" }).toString();
    await expect(c.createKey({ publicKey: pem, algorithm: "ecdsa-p256" })).rejects.toThrow(/is ed25519/);
  });

  it("revokes, suspends and resumes with state checks", async () => {
    const c = await core();
    const { key } = await c.createKey({});
    const suspended = await c.core.keys.suspend(key.id, "test", "investigating");
    expect(suspended).toMatchObject({ status: "suspended", statusReason: "investigating", revision: 2 });
    await expect(c.core.keys.suspend(key.id, "test")).rejects.toMatchObject({ code: "KEY_STATE_CONFLICT" });
    expect((await c.core.keys.resume(key.id, "test")).status).toBe("active");
    await expect(c.core.keys.resume(key.id, "test")).rejects.toMatchObject({ code: "KEY_STATE_CONFLICT" });
    expect((await c.core.keys.revoke(key.id, "test")).status).toBe("revoked");
    await expect(c.core.keys.resume(key.id, "test")).rejects.toMatchObject({ code: "KEY_STATE_CONFLICT" });
    await expect(c.core.keys.revoke(key.id, "test")).rejects.toMatchObject({ code: "KEY_STATE_CONFLICT" });
    await expect(c.core.keys.revoke("pck_test_v1_nope", "test")).rejects.toMatchObject({ code: "KEY_NOT_FOUND" });
  });

  it("derives the expired status from the expiry time", async () => {
    const c = await core();
    const { key } = await c.createKey({ expires: "1h" });
    expect((await c.core.keys.get(key.id)).effectiveStatus).toBe("active");
    c.clock.advance(3_600_000);
    expect((await c.core.keys.get(key.id)).effectiveStatus).toBe("expired");
  });

  it("records the last use of a key, batched off the request path", async () => {
    const c = await core();
    const { key, secret } = await c.createKey({});
    expect((await c.core.keys.get(key.id)).lastUsedAt).toBeNull();
    const headers = signRequest({ method: "GET", url: "/api/v3/account", keyId: key.id, key: secret ?? "", created: c.clock.seconds });
    const ctx = await c.core.verify({ method: "GET", url: "/api/v3/account", headers, body: Buffer.alloc(0), socketAddress: "127.0.0.1" });
    expect(ctx.denial).toBeNull();
    expect((await c.core.keys.get(key.id)).lastUsedAt).toBeNull();
    await c.core.flushUsage();
    expect((await c.core.keys.get(key.id)).lastUsedAt).toBe(c.clock.ms);
  });

  it("lists by account and status, paginated by id", async () => {
    const c = await core();
    for (let i = 0; i < 5; i++) await c.createKey({ account: "a" });
    const b = await c.createKey({ account: "b" });
    await c.core.keys.revoke(b.key.id, "test");
    expect((await c.core.keys.list({ account: "a" })).length).toBe(5);
    expect((await c.core.keys.list({ status: "revoked" })).map((k) => k.id)).toEqual([b.key.id]);
    const first = await c.core.keys.list({ account: "a", limit: 2 });
    const next = await c.core.keys.list({ account: "a", limit: 10, after: first[1]?.id ?? "" });
    expect(first.length + next.length).toBe(5);
    expect(new Set([...first, ...next].map((k) => k.id)).size).toBe(5);
  });
});
