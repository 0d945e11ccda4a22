/**
 * Refusal tokens of the auth_request protocol: sealed with a key derived from the identity secret
 * (never the identity MAC's key), opened only unaltered, under the same key, before expiry, and
 * carrying nothing but the refusal's status, body and the fixed set of headers.
 */
import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { IdentitySigner } from "../../src/gateway/identity.js";
import { REFUSAL_KEY_INFO, REFUSAL_TTL_MS, RefusalTokens } from "../../src/gateway/refusal-token.js";
import { IDENTITY_SECRET } from "../support/gateway.js";
import { TEST_START } from "../support/harness.js";

const refusal = {
  status: 429,
  body: '{"code":-1003,"msg":"Too many requests."}',
  headers: { "content-type": "application/json; charset=utf-8", ratelimit: "limit=100, remaining=0, reset=30", "retry-after": "30", "portcullis-request-id": "r-1" },
};

describe("refusal tokens", () => {
  const tokens = new RefusalTokens(new IdentitySigner(IDENTITY_SECRET).deriveKey(REFUSAL_KEY_INFO));

  it("open what they sealed, until the expiry", () => {
    const token = tokens.seal(refusal, TEST_START);
    expect(tokens.open(token, TEST_START)).toEqual({ ok: true, refusal });
    expect(tokens.open(token, TEST_START + REFUSAL_TTL_MS - 1)).toMatchObject({ ok: true });
    expect(tokens.open(token, TEST_START + REFUSAL_TTL_MS)).toEqual({ ok: false, reason: "expired" });
  });

  it("every process sharing the identity secret opens them; another secret does not", () => {
    const token = tokens.seal(refusal, TEST_START);
    expect(new RefusalTokens(new IdentitySigner(IDENTITY_SECRET).deriveKey(REFUSAL_KEY_INFO)).open(token, TEST_START)).toMatchObject({ ok: true });
    expect(new RefusalTokens(new IdentitySigner("another-secret-".repeat(3)).deriveKey(REFUSAL_KEY_INFO)).open(token, TEST_START)).toEqual({ ok: false, reason: "mac" });
    expect(new RefusalTokens(new IdentitySigner(IDENTITY_SECRET).deriveKey("another-label")).open(token, TEST_START)).toEqual({ ok: false, reason: "mac" });
  });

  it("are not sealed with the identity MAC's key", () => {
    const token = tokens.seal(refusal, TEST_START);
    const [, payload, mac] = token.split(".");
    const underIdentityKey = createHmac("sha256", IDENTITY_SECRET).update(`pr1.${payload ?? ""}`).digest("base64url");
    expect(mac).not.toBe(underIdentityKey);
  });

  it("refuse an altered payload, a truncated MAC, another version and garbage", () => {
    const token = tokens.seal(refusal, TEST_START);
    const [v, payload, mac] = token.split(".") as [string, string, string];
    const longer = Buffer.from(JSON.stringify({ e: TEST_START + 10 ** 9, s: 200, h: {}, b: "attacker" })).toString("base64url");
    expect(tokens.open(`${v}.${longer}.${mac}`, TEST_START)).toEqual({ ok: false, reason: "mac" });
    expect(tokens.open(`${v}.${payload}.${mac.slice(0, 20)}`, TEST_START)).toEqual({ ok: false, reason: "mac" });
    expect(tokens.open(`pr2.${payload}.${mac}`, TEST_START)).toEqual({ ok: false, reason: "malformed" });
    expect(tokens.open(`${token}.x`, TEST_START)).toEqual({ ok: false, reason: "malformed" });
    expect(tokens.open("x".repeat(20_000), TEST_START)).toEqual({ ok: false, reason: "malformed" });
    expect(tokens.open(undefined, TEST_START)).toEqual({ ok: false, reason: "missing" });
    expect(tokens.open([token, token], TEST_START)).toEqual({ ok: false, reason: "malformed" });
  });

  it("carry only the refusal's own headers, and none with a line break", () => {
    const token = tokens.seal({ ...refusal, headers: { ...refusal.headers, "set-cookie": "a=b", location: "https://attacker", "retry-after": "1\r\nX-Injected: 1" } }, TEST_START);
    const opened = tokens.open(token, TEST_START);
    expect(opened.ok && opened.refusal.headers).toEqual({ "content-type": "application/json; charset=utf-8", ratelimit: "limit=100, remaining=0, reset=30", "portcullis-request-id": "r-1" });
  });
});
