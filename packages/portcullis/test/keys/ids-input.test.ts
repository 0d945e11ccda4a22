import { describe, expect, it } from "vitest";
import { PortcullisError } from "../../src/errors/catalogue.js";
import { valueOrThrow } from "../../src/errors/result.js";
import { generateKeyId, parseKeyId } from "../../src/contract/ids.js";
import { parseCreateKeyInput, parseDuration } from "../../src/keys/input.js";

const NOW = Date.UTC(2026, 10, 22);

describe("key ids", () => {
  it("are self-describing: prefix, environment, version", () => {
    const live = generateKeyId("live");
    expect(live).toMatch(/^pck_live_v1_[0-9A-Za-z]{28}$/);
    expect(parseKeyId(live)).toEqual({ kind: "key", environment: "live" });
    expect(parseKeyId(generateKeyId("test"))).toEqual({ kind: "key", environment: "test" });
    expect(parseKeyId(generateKeyId("live", "session"))).toEqual({ kind: "session", environment: "live" });
  });

  it("carry a checksum, so a single changed character is refused without a lookup", () => {
    const id = generateKeyId("live");
    let refused = 0;
    for (let i = 12; i < id.length; i++) {
      const c = id[i] === "a" ? "b" : "a";
      if (parseKeyId(id.slice(0, i) + c + id.slice(i + 1)) === null) refused++;
    }
    expect(refused).toBe(id.length - 12);
    expect(parseKeyId(id.replace("live", "test"))).toBeNull();
  });

  it("are unique", () => {
    const ids = new Set(Array.from({ length: 1000 }, () => generateKeyId("test")));
    expect(ids.size).toBe(1000);
  });

  it.each(["", "pck_live_v1_", "pck_prod_v1_0000000000000000000000000000", "xyz_live_v1_0000000000000000000000000000", "pck_live_v2_0000000000000000000000000000"])(
    "refuses %j",
    (id) => {
      expect(parseKeyId(id)).toBeNull();
    },
  );
});

describe("key input validation", () => {
  it("accepts a full valid input and canonicalises it", () => {
    const input = valueOrThrow(
      parseCreateKeyInput(
        { account: "acct-1", scopes: ["trade", "read", "trade"], ipAllowlist: ["10.1.2.3/8", " 2001:db8::/32"], expires: "30d", windowMs: 10_000, label: "bot" },
        NOW,
      ),
    );
    expect(input.scopes).toEqual(["read", "trade"]);
    expect(input.ipAllowlist).toEqual(["10.0.0.0/8", "2001:db8::/32"]);
    expect(input.expiresAt).toBe(NOW + 30 * 86_400_000);
    expect(input.dialects).toEqual(["native"]);
  });

  function fields(raw: unknown): Record<string, string> {
    const parsed = parseCreateKeyInput(raw, NOW);
    if (parsed.ok) throw new Error("expected a validation error");
    expect(parsed.code).toBe("VALIDATION_FAILED");
    return { ...parsed.fields };
  }

  it.each([
    ["account", { scopes: ["read"] }],
    ["account", { account: "", scopes: ["read"] }],
    ["account", { account: "has space", scopes: ["read"] }],
    ["scopes", { account: "a" }],
    ["scopes", { account: "a", scopes: [] }],
    ["scopes", { account: "a", scopes: ["root"] }],
    ["ipAllowlist", { account: "a", scopes: ["read"], ipAllowlist: ["10.0.0.0/33"] }],
    ["ipAllowlist", { account: "a", scopes: ["read"], ipAllowlist: "10.0.0.0/8" }],
    ["expires", { account: "a", scopes: ["read"], expires: "soon" }],
    ["expires", { account: "a", scopes: ["read"], expires: NOW - 1 }],
    ["windowMs", { account: "a", scopes: ["read"], windowMs: 120_000 }],
    ["windowMs", { account: "a", scopes: ["read"], windowMs: 10.5 }],
    ["algorithm", { account: "a", scopes: ["read"], algorithm: "dsa" }],
    ["publicKey", { account: "a", scopes: ["read"], algorithm: "ed25519" }],
    ["publicKey", { account: "a", scopes: ["read"], algorithm: "hmac-sha256", publicKey: "x" }],
    ["dialects", { account: "a", scopes: ["read"], dialects: ["ftx"] }],
    ["label", { account: "a", scopes: ["read"], label: "a\u0000b" }],
    ["bogus", { account: "a", scopes: ["read"], bogus: 1 }],
  ])("reports %s", (field, raw) => {
    expect(Object.keys(fields(raw))).toContain(field);
  });

  it("reports every bad field at once", () => {
    expect(Object.keys(fields({ account: "", scopes: [], windowMs: 1 })).sort()).toEqual(["account", "scopes", "windowMs"]);
  });

  it("refuses a non-object body", () => {
    for (const raw of [null, [], "x", 1]) {
      expect(parseCreateKeyInput(raw, NOW)).toEqual({ ok: false, code: "VALIDATION_FAILED", message: "the body must be a JSON object", fields: {} });
    }
    expect(() => valueOrThrow(parseCreateKeyInput(null, NOW))).toThrow(PortcullisError);
  });

  it("parses durations", () => {
    expect(parseDuration("90s")).toEqual({ ok: true, value: 90_000 });
    expect(parseDuration("2w")).toEqual({ ok: true, value: 1_209_600_000 });
    expect(parseDuration("0d")).toMatchObject({ ok: false, code: "VALIDATION_FAILED" });
    expect(parseDuration("1y")).toMatchObject({ ok: false, code: "VALIDATION_FAILED" });
  });
});
