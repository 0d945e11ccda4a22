/**
 * The OKX scheme on its own: OKX's documented signing example, the timestamp parser against a
 * reference, the error mapping for every catalogue code, and the documentation's table of it.
 */
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createOkxScheme, OKX_ERRORS, parseOkxTimestamp } from "../../src/dialects/okx/index.js";
import { type AuthScheme, RequestContext } from "../../src/contract/request.js";
import { ERROR_CODES, deny, errorCatalogue } from "../../src/errors/catalogue.js";
import type { VerificationKey } from "../../src/contract/verification-key.js";
import { hashPassphrase } from "../../src/keys/passphrase.js";
import { MemoryHotStore } from "../../src/storage/memory/hot.js";
import { runScheme } from "../support/scheme.js";
import { hmacVerificationKey } from "../support/keys.js";

const root = fileURLToPath(new URL("../../../../", import.meta.url));

function okxScheme(): AuthScheme {
  const scheme = createOkxScheme({ scheme: "https", futureSkewMs: 1000 });
  if (scheme === null) throw new Error("the OKX scheme is not built");
  return scheme;
}

async function okxKey(secret: string, passphrase: string): Promise<VerificationKey> {
  return hmacVerificationKey(secret, { id: "XXXXXXXXXX", account: "docs", scopes: ["read", "trade"], dialects: ["okx"] }, { passphraseHash: await hashPassphrase(passphrase) });
}

function context(method: string, url: string, headers: Record<string, string>, body: string, now: number): RequestContext {
  const ctx = new RequestContext({ method, url, headers, body: Buffer.from(body), socketAddress: "127.0.0.1" }, "req-1", now);
  const q = url.indexOf("?");
  ctx.path = q < 0 ? url : url.slice(0, q);
  ctx.query = q < 0 ? null : url.slice(q + 1);
  return ctx;
}


describe("OKX's documented example (docs-v5, REST Authentication > Signature)", () => {
  // The documented pieces, copied exactly: the timestamp, GET with its query in requestPath, the
  // POST body (which belongs to /api/v5/account/set-leverage), and the example SecretKey. OKX
  // publishes no resulting signature: the values below were computed independently (Python's
  // hmac and base64) over the documented pre-hash strings.
  const timestamp = "2020-12-08T09:08:57.715Z";
  const secretKey = "22582BD0CFF14C41EDBF1AB98506286D";
  const passphrase = "docs-example-passphrase";
  const examples = [
    { method: "GET", url: "/api/v5/account/balance?ccy=BTC", body: "", sign: "HiZhvSfMtWJA3uUIVXV3a/bSXNPCWvYFXoGCVS8V4zY=" },
    {
      method: "POST",
      url: "/api/v5/account/set-leverage",
      body: '{"instId":"BTC-USDT","lever":"5","mgnMode":"isolated"}',
      sign: "eCnnCgWLjlQ9XnpUkrcny3qNq3WW/81KNrDr/XR6Xv8=",
    },
  ];

  it.each(examples)("$method $url verifies, and its pre-hash is timestamp + method + requestPath + body", async ({ method, url, body, sign }) => {
    expect(createHmac("sha256", secretKey).update(`${timestamp}${method}${url}${body}`).digest("base64")).toBe(sign);
    const headers = {
      "ok-access-key": "XXXXXXXXXX",
      "ok-access-sign": sign,
      "ok-access-timestamp": timestamp,
      "ok-access-passphrase": passphrase,
    };
    const key = await okxKey(secretKey, passphrase);
    // Its memory began before the documented example was signed (no restart since).
    const hot = new MemoryHotStore({ epochStart: 0 });
    const now = Date.parse(timestamp);
    expect(await runScheme(okxScheme(), context(method, url, headers, body, now), key, hot)).toBeUndefined();
    // A second time: the same signature is refused, as a replay.
    expect((await runScheme(okxScheme(), context(method, url, headers, body, now), key, hot))?.code).toBe("NONCE_REPLAYED");
    // Any other byte: another signature.
    const other = await runScheme(okxScheme(), context(method, `${url}${method === "GET" ? "&" : "?"}x=1`, headers, body, now), key, hot);
    expect(other?.code).toBe("SIGNATURE_INVALID");
  });
});

describe("OK-ACCESS-TIMESTAMP", () => {
  it("parses every instant JavaScript prints the OKX way", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: Date.UTC(9999, 11, 31, 23, 59, 59, 999) }), (ms) => {
        expect(parseOkxTimestamp(new Date(ms).toISOString())).toBe(ms);
      }),
    );
  });
  it("refuses every other shape", () => {
    for (const text of ["", "2020-12-08T09:08:57Z", "2020-12-08 09:08:57.715Z", "2020-12-08T09:08:57.715", "+020-12-08T09:08:57.715Z", "2020-13-08T09:08:57.715Z", "2020-12-08T09:60:57.715Z", "2021-02-29T09:08:57.715Z", "1969-12-31T23:59:59.999Z", "２020-12-08T09:08:57.715Z"]) {
      expect(parseOkxTimestamp(text), text).toBeNaN();
    }
    expect(parseOkxTimestamp("2024-02-29T00:00:00.000Z")).toBe(Date.UTC(2024, 1, 29));
  });
});

describe("errors in OKX's shape", () => {
  it("every catalogue code renders as {code, msg, data: []} with OKX's code and a status", () => {
    const scheme = okxScheme();
    for (const code of ERROR_CODES) {
      const rendered = scheme.render(deny(code), "req-1");
      const body = JSON.parse(rendered.body) as { code: unknown; msg: unknown; data: unknown };
      expect(body, code).toEqual({ code: OKX_ERRORS[code].code, msg: OKX_ERRORS[code].msg, data: [] });
      expect(body.code, code).toMatch(/^[0-9]+$/);
      expect(rendered.status, code).toBe(OKX_ERRORS[code].status);
      // Refusals of the caller are 4xx; only the gateway's own faults (and the upstream's) are 5xx.
      expect(rendered.status >= 500, code).toBe(errorCatalogue[code].status >= 500);
    }
  });

  it("docs/dialects/okx.md lists the mapping of every catalogue code, as the code has it", () => {
    const doc = readFileSync(`${root}docs/dialects/okx.md`, "utf8");
    for (const code of ERROR_CODES) {
      const e = OKX_ERRORS[code];
      expect(doc, code).toContain(`| \`${code}\` | ${e.status} | \`${e.code}\` | ${e.msg} |`);
    }
  });
});
