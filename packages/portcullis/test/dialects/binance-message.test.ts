/**
 * The Binance scheme's message signing (dialects/binance/message.ts) on its own: which parameters
 * are credentials, a signed WebSocket API request's credential (Binance's documented HMAC example,
 * copied exactly), a logged-on connection's message, and every malformed input with its code.
 */
import { describe, expect, it } from "vitest";
import { createBinanceScheme } from "../../src/dialects/binance/index.js";
import { type Credential, type MessageParams, type MessageSigning, RequestContext } from "../../src/contract/request.js";
import type { Denial } from "../../src/errors/catalogue.js";
import { hmacVerificationKey } from "../support/keys.js";
import { DOC_API_KEY, DOC_SECRET, WS_PARAMS, WS_SIGNATURE } from "../support/binance-vectors.js";

// binance-spot-api-docs, web-socket-api.md, "SIGNED request example (HMAC)" (the ACK edition).
const DOC_PARAMS = { ...WS_PARAMS, signature: WS_SIGNATURE };

const scheme = createBinanceScheme({ scheme: "http", futureSkewMs: 1000 });
const key = hmacVerificationKey(DOC_SECRET, { id: DOC_API_KEY, dialects: ["binance"] });

function signing(): MessageSigning {
  const message = scheme.message;
  if (message === undefined) throw new Error("the Binance scheme signs messages");
  return message;
}

function at(now: number): RequestContext {
  return new RequestContext({ method: "order.place", url: "/ws-api/v3", headers: {}, body: Buffer.alloc(0), socketAddress: "127.0.0.1" }, "r1", now);
}

function credential(result: Credential | Denial): Credential {
  if ("ok" in result) throw new Error(`expected a credential, got ${result.code}`);
  return result;
}

function denial(result: Credential | Denial): Denial {
  if (!("ok" in result)) throw new Error("expected a denial");
  return result;
}

describe("the Binance scheme's message signing", () => {
  it("names apiKey and signature as the credentials; a message is signed when it carries a signature", () => {
    expect([...signing().credentialParams].sort()).toEqual(["apiKey", "signature"]);
    expect(signing().signed(DOC_PARAMS)).toBe(true);
    expect(signing().signed({ apiKey: DOC_API_KEY, timestamp: 1 })).toBe(false);
    expect(signing().signed(null)).toBe(false);
  });

  it("verifies Binance's documented example: fresh within its recvWindow, single-use until it expires", async () => {
    const c = credential(signing().extract(DOC_PARAMS));
    expect(c).toMatchObject({ scheme: "binance", keyId: DOC_API_KEY });
    const ctx = at(DOC_PARAMS.timestamp + 50);
    expect(await c.fresh(ctx, key)).toBeUndefined();
    expect(await c.verify(ctx, key)).toBeUndefined();
    expect(c.replayClaim(ctx, key)).toEqual({
      kind: "nonce",
      keyId: DOC_API_KEY,
      value: DOC_PARAMS.signature,
      // Acceptable from 1 s (the clock allowance) before its timestamp, unless the key is younger.
      since: Math.max(DOC_PARAMS.timestamp - 1000, key.record.createdAt),
      expiresAt: DOC_PARAMS.timestamp + 100 + 1000,
    });
    expect(await c.fresh(at(DOC_PARAMS.timestamp + 101), key)).toMatchObject({ code: "CREATED_TOO_OLD" });
    expect(await c.fresh(at(DOC_PARAMS.timestamp - 1000), key)).toMatchObject({ code: "CREATED_IN_FUTURE" });
    const tampered = credential(signing().extract({ ...DOC_PARAMS, quantity: "0.02000000" }));
    expect(await tampered.verify(ctx, key)).toMatchObject({ code: "SIGNATURE_INVALID" });
  });

  it("refuses a malformed signed message with the parameter's code", () => {
    const without = (name: string): MessageParams => Object.fromEntries(Object.entries(DOC_PARAMS).filter(([n]) => n !== name));
    expect(denial(signing().extract(without("apiKey")))).toMatchObject({ code: "PARAM_MISSING", detail: "apiKey" });
    expect(denial(signing().extract({ ...DOC_PARAMS, apiKey: 7 }))).toMatchObject({ code: "PARAM_MISSING", detail: "apiKey" });
    expect(denial(signing().extract(without("timestamp")))).toMatchObject({ code: "PARAM_MISSING", detail: "timestamp" });
    expect(denial(signing().extract({ ...DOC_PARAMS, timestamp: "12a" }))).toMatchObject({ code: "PARAM_INVALID" });
    expect(denial(signing().extract({ ...DOC_PARAMS, recvWindow: 60_001 }))).toMatchObject({ code: "PARAM_INVALID", detail: "recvWindow above 60000" });
    expect(denial(signing().extract({ ...DOC_PARAMS, recvWindow: "" }))).toMatchObject({ code: "PARAM_INVALID", detail: "recvWindow is empty" });
    expect(denial(signing().extract({ ...DOC_PARAMS, signature: "" }))).toMatchObject({ code: "PARAM_MISSING", detail: "signature" });
  });

  it("a logged-on connection's message: freshness only, nothing to verify or claim", async () => {
    const c = credential(signing().loggedOn({ symbol: "BTCUSDT", timestamp: 1_000_000, recvWindow: "2500.5" }, DOC_API_KEY));
    expect(c.keyId).toBe(DOC_API_KEY);
    expect(await c.fresh(at(1_002_000), key)).toBeUndefined();
    expect(await c.verify(at(1_002_000), key)).toBeUndefined();
    expect(c.replayClaim(at(1_002_000), key)).toBeNull();
    expect(await c.fresh(at(1_002_501), key)).toMatchObject({ code: "CREATED_TOO_OLD" });
    expect(denial(signing().loggedOn(null, DOC_API_KEY))).toMatchObject({ code: "PARAM_MISSING", detail: "timestamp" });
  });
});
