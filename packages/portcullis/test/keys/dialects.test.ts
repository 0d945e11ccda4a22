import { afterEach, describe, expect, it } from "vitest";
import { RouteTable, RouteTableError } from "../../src/authz/routes.js";
import { parseCreateKeyInput } from "../../src/keys/input.js";
import { PassphraseCheck, hashPassphrase, verifyPassphraseHash } from "../../src/keys/passphrase.js";
import { type TestCore, makeCore } from "../support/harness.js";

const NOW = Date.UTC(2026, 10, 22);

function fieldsOf(raw: Record<string, unknown>): Record<string, string> {
  const parsed = parseCreateKeyInput({ account: "a", scopes: ["read"], ...raw }, NOW);
  return parsed.ok ? {} : { ...parsed.fields };
}

describe("keys and dialects", () => {
  it("accepts the dialects with credential types they can sign with", () => {
    expect(fieldsOf({ dialects: ["native", "binance", "kraken", "okx", "bybit"], passphrase: "Passw0rd!x" })).toEqual({});
    expect(fieldsOf({ dialects: ["coinbase"], algorithm: "ecdsa-p256", publicKey: "x" })).toEqual({});
  });

  it.each([
    [{ dialects: ["coinbase"] }, "dialects"],
    [{ dialects: ["kraken"], algorithm: "ed25519", publicKey: "x" }, "dialects"],
    [{ dialects: ["okx"] }, "passphrase"],
    [{ dialects: ["binance"], passphrase: "Passw0rd!x" }, "passphrase"],
    [{ dialects: ["okx"], passphrase: "short" }, "passphrase"],
    [{ dialects: ["okx"], passphrase: "has space in it" }, "passphrase"],
    [{ dialects: ["ftx"] }, "dialects"],
  ])("refuses %j", (raw, field) => {
    expect(Object.keys(fieldsOf(raw))).toContain(field);
  });

  let t: TestCore | null = null;
  afterEach(async () => {
    await t?.cleanup();
    t = null;
  });

  it("prints a Kraken key's secret as base64 of 64 bytes, like Kraken", async () => {
    t = await makeCore();
    const { secret } = await t.createKey({ dialects: ["kraken", "binance"] });
    expect(secret).toMatch(/^[A-Za-z0-9+/]{86}==$/);
    expect(Buffer.from(secret ?? "", "base64").length).toBe(64);
    const material = await t.core.keys.loadMaterial((await t.core.keys.list())[0]?.id ?? "");
    expect(material?.hmacKeyDecoded?.symmetricKeySize).toBe(64);
    expect(material?.hmacKey?.symmetricKeySize).toBe(88);
  });

  it("stores an OKX passphrase only as a slow hash, never in a view", async () => {
    t = await makeCore();
    const { key } = await t.createKey({ dialects: ["okx"], passphrase: "Correct-Horse-1" });
    expect(JSON.stringify(await t.core.keys.get(key.id))).not.toContain("Correct-Horse-1");
    const material = await t.core.keys.loadMaterial(key.id);
    expect(material?.passphraseHash).toMatch(/^scrypt\$15\$8\$1\$/);
    expect(await verifyPassphraseHash(material?.passphraseHash ?? "", "Correct-Horse-1")).toBe(true);
    expect(await verifyPassphraseHash(material?.passphraseHash ?? "", "correct-horse-1")).toBe(false);
  });
});

describe("passphrase checks on the request path", () => {
  it("is slow once, then a constant-time compare; a failure is never remembered", async () => {
    const check = new PassphraseCheck(await hashPassphrase("Secret-Phrase-9"));
    const wrong = check.check("nope-nope-nope");
    expect(wrong).toBeInstanceOf(Promise);
    expect(await wrong).toBe(false);
    const first = check.check("Secret-Phrase-9");
    expect(first).toBeInstanceOf(Promise);
    expect(await first).toBe(true);
    expect(check.check("Secret-Phrase-9")).toBe(true);
    expect(check.check("Secret-Phrase-8")).toBe(false);
  });

  it("refuses a malformed stored hash", async () => {
    expect(await verifyPassphraseHash("plaintext", "x")).toBe(false);
    expect(await verifyPassphraseHash("scrypt$40$8$1$AA$AA", "x")).toBe(false);
  });
});

describe("route dialects", () => {
  it("validates the dialect of a route", () => {
    expect(new RouteTable([{ method: "GET", path: "/a", permission: "read", dialect: "binance" }]).match("GET", "/a")?.dialect).toBe("binance");
    expect(() => new RouteTable([{ method: "GET", path: "/a", permission: "read", dialect: "ftx" }])).toThrow(RouteTableError);
    expect(() => new RouteTable([{ method: "GET", path: "/a", permission: "read", dialect: "native" }])).toThrow(/unknown dialect/);
  });
});

describe("passphrase checks under concurrency", () => {
  it("concurrent first checks of one candidate share a single slow hash", async () => {
    const check = new PassphraseCheck(await hashPassphrase("Shared-Phrase-7"));
    const pending = Array.from({ length: 16 }, () => check.check("Shared-Phrase-7"));
    // One slow check under way, shared by all sixteen callers.
    expect(new Set(pending).size).toBe(1);
    expect(await Promise.all(pending.map((p) => Promise.resolve(p)))).toEqual(Array.from({ length: 16 }, () => true));
    expect(check.check("Shared-Phrase-7")).toBe(true);
    // A different candidate gets its own check.
    const other = check.check("Other-Phrase-7");
    expect(other).toBe(false);
  });
});
