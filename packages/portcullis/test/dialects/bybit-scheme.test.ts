/**
 * The Bybit scheme on its own: Bybit's documented signing example, the error mapping for every
 * catalogue code, and the documentation's table of it.
 */
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { BYBIT_ERRORS, createBybitScheme } from "../../src/dialects/bybit/index.js";
import { type AuthScheme, RequestContext } from "../../src/contract/request.js";
import { ERROR_CODES, deny, errorCatalogue } from "../../src/errors/catalogue.js";
import type { VerificationKey } from "../../src/contract/verification-key.js";
import { MemoryHotStore } from "../../src/storage/memory/hot.js";
import { runScheme } from "../support/scheme.js";
import { hmacVerificationKey } from "../support/keys.js";

const root = fileURLToPath(new URL("../../../../", import.meta.url));

function bybitScheme(): AuthScheme {
  const scheme = createBybitScheme({ scheme: "https", futureSkewMs: 1000 });
  if (scheme === null) throw new Error("the Bybit scheme is not built");
  return scheme;
}

function hmacKey(id: string, secret: string): VerificationKey {
  return hmacVerificationKey(secret, { id, account: "docs", scopes: ["read", "trade"], dialects: ["bybit"] });
}

function context(method: string, url: string, headers: Record<string, string>, body: string, now: number): RequestContext {
  const ctx = new RequestContext({ method, url, headers, body: Buffer.from(body), socketAddress: "127.0.0.1" }, "req-1", now);
  const q = url.indexOf("?");
  ctx.path = q < 0 ? url : url.slice(0, q);
  ctx.query = q < 0 ? null : url.slice(q + 1);
  return ctx;
}


describe("Bybit's documented example (v5 Integration Guidance, Authentication)", () => {
  // The documented GET request, copied exactly: its target, X-BAPI-API-KEY, X-BAPI-TIMESTAMP and
  // X-BAPI-RECV-WINDOW. Bybit publishes no secret for it, so the secret below is ours and the
  // signature was computed independently (Python's hmac) over the documented string to sign.
  const url = "/v5/order/realtime?category=option&symbol=BTC-29JUL22-25000-C";
  const headers = {
    "x-bapi-api-key": "XXXXXXXXXX",
    "x-bapi-timestamp": "1658384314791",
    "x-bapi-recv-window": "5000",
    "x-bapi-sign": "ef62619de7746c2ba1e95311f4493c4b2bc4f15680008d08b5241282ebd50964",
  };
  const secret = "bybit-docs-example-secret";

  it("verifies; the string to sign is timestamp + key + recv_window + query string", async () => {
    const toSign = "1658384314791XXXXXXXXXX5000category=option&symbol=BTC-29JUL22-25000-C";
    expect(createHmac("sha256", secret).update(toSign).digest("hex")).toBe(headers["x-bapi-sign"]);
    // Its memory began before the documented example was signed (no restart since).
    const hot = new MemoryHotStore({ epochStart: 0 });
    const key = hmacKey("XXXXXXXXXX", secret);
    expect(await runScheme(bybitScheme(), context("GET", url, headers, "", 1658384314791), key, hot)).toBeUndefined();
    expect((await runScheme(bybitScheme(), context("GET", url, headers, "", 1658384314791), key, hot))?.code).toBe("NONCE_REPLAYED");
    // Bybit signs the query string as sent: the same parameters in another order are another request.
    const reordered = "/v5/order/realtime?symbol=BTC-29JUL22-25000-C&category=option";
    expect((await runScheme(bybitScheme(), context("GET", reordered, headers, "", 1658384314791), key, hot))?.code).toBe("SIGNATURE_INVALID");
    // Server time 5 s after the timestamp is still inside the recv_window; 5001 ms is not.
    const later = { ...headers, "x-bapi-timestamp": "1658384309791" };
    later["x-bapi-sign"] = createHmac("sha256", secret).update(`1658384309791XXXXXXXXXX5000${url.slice(url.indexOf("?") + 1)}`).digest("hex");
    expect((await runScheme(bybitScheme(), context("GET", url, later, "", 1658384314792), key, hot))?.code).toBe("CREATED_TOO_OLD");
  });
});

describe("errors in Bybit's shape", () => {
  it("every catalogue code renders as {retCode, retMsg, result, retExtInfo, time} with Bybit's code and a status", () => {
    const scheme = bybitScheme();
    for (const code of ERROR_CODES) {
      const before = Date.now();
      const rendered = scheme.render(deny(code), "req-1");
      const body = JSON.parse(rendered.body) as { time: number };
      expect(body, code).toEqual({ retCode: BYBIT_ERRORS[code].retCode, retMsg: BYBIT_ERRORS[code].retMsg, result: {}, retExtInfo: {}, time: body.time });
      expect(body.time).toBeGreaterThanOrEqual(before);
      expect(rendered.status, code).toBe(BYBIT_ERRORS[code].status);
      // The caller's refusals are never 5xx; the gateway's own faults (and the upstream's) are.
      expect(rendered.status >= 500, code).toBe(errorCatalogue[code].status >= 500);
    }
  });

  it("docs/dialects/bybit.md lists the mapping of every catalogue code, as the code has it", () => {
    const doc = readFileSync(`${root}docs/dialects/bybit.md`, "utf8");
    for (const code of ERROR_CODES) {
      const e = BYBIT_ERRORS[code];
      expect(doc, code).toContain(`| \`${code}\` | ${e.status} | \`${e.retCode}\` | ${e.retMsg} |`);
    }
  });
});
