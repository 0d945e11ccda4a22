/**
 * A quick microbenchmark of the Bybit dialect's hot path (the final benchmark harness comes
 * later): what the scheme does per request — parse the headers (stage 3), check the time (5),
 * verify the signature (6), claim it as single-use (7) — must cost at most 4x one raw
 * verification of the same signed text (timestamp + key + recv_window + payload): an HMAC-SHA256
 * for an HMAC key, an RSA-SHA256 verification for an RSA key. Every request is distinct, as real
 * traffic is; the contexts are built before the clock starts. Medians of back-to-back pairs in
 * alternating order, so a busy machine slows both sides alike.
 */
import { createHmac, createSecretKey, generateKeyPairSync, randomBytes, sign as cryptoSign, verify as cryptoVerify } from "node:crypto";
import { describe, expect, it } from "vitest";
import { grantedPermissions } from "../../src/authz/permissions.js";
import { createBybitScheme } from "../../src/dialects/bybit/index.js";
import type { AuthScheme, HotState } from "../../src/dialects/scheme.js";
import type { VerificationKey } from "../../src/keys/cache.js";
import { generateKeyId } from "../../src/keys/ids.js";
import { RequestContext } from "../../src/pipeline/context.js";
import { MemoryNonceStore } from "../../src/storage/memory/nonces.js";
import { MemorySequenceStore } from "../../src/storage/memory/sequences.js";

const secret = randomBytes(32).toString("base64url");
const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const keyId = generateKeyId("test");
const NOW = 1_795_000_000_000;
const CHUNK = 250;

function benchKey(algorithm: "hmac-sha256" | "rsa"): VerificationKey {
  return {
    record: {
      id: keyId,
      environment: "test",
      account: "bench",
      subAccount: null,
      label: "",
      algorithm,
      publicKey: null,
      scopes: ["read", "trade"],
      ipAllowlist: [],
      dialects: ["bybit"],
      expiresAt: null,
      windowMs: null,
      status: "active",
      statusReason: null,
      createdAt: 0,
      updatedAt: 0,
      lastUsedAt: null,
      revision: 1,
    },
    hmacKey: algorithm === "rsa" ? null : createSecretKey(Buffer.from(secret, "utf8")),
    hmacKeyDecoded: null,
    publicKey: algorithm === "rsa" ? rsa.publicKey : null,
    dialects: new Set(["bybit"]),
    passphrase: null,
    allowlist: null,
    permissions: grantedPermissions(["read", "trade"]),
    nativeAlgorithms: [],
    windowMs: 5000,
    scopesText: "read,trade",
  };
}

interface Request {
  readonly ctx: RequestContext;
  /** The signed text, and the signature as bytes. */
  readonly text: Buffer;
  readonly signature: Buffer;
}

/** `count` distinct signed requests (each a millisecond apart). */
function requests(algorithm: "hmac-sha256" | "rsa", method: string, url: string, body: string, count: number): Request[] {
  const out: Request[] = [];
  const q = url.indexOf("?");
  const payload = method === "GET" ? (q < 0 ? "" : url.slice(q + 1)) : body;
  for (let i = 0; i < count; i++) {
    const timestamp = String(NOW - i);
    const text = Buffer.from(`${timestamp}${keyId}5000${payload}`);
    const signature = algorithm === "rsa" ? cryptoSign("sha256", text, rsa.privateKey) : createHmac("sha256", secret).update(text).digest();
    const headers = {
      "x-bapi-api-key": keyId,
      "x-bapi-timestamp": timestamp,
      "x-bapi-recv-window": "5000",
      "x-bapi-sign": signature.toString(algorithm === "rsa" ? "base64" : "hex"),
    };
    const ctx = new RequestContext({ method, url, headers, body: Buffer.from(body), socketAddress: "127.0.0.1" }, "bench", NOW);
    ctx.path = q < 0 ? url : url.slice(0, q);
    ctx.query = q < 0 ? null : url.slice(q + 1);
    out.push({ ctx, text, signature });
  }
  return out;
}

function timeVerify(scheme: AuthScheme, key: VerificationKey, hot: HotState, batch: readonly Request[]): number {
  const start = process.hrtime.bigint();
  for (const { ctx } of batch) {
    const credential = scheme.extract(ctx);
    if ("ok" in credential) throw new Error(credential.code);
    const denial = credential.fresh(ctx, key) ?? credential.verify(ctx, key) ?? credential.replay(ctx, key, hot);
    if (denial !== undefined) throw new Error(denial instanceof Promise ? "asynchronous" : denial.code);
  }
  return Number(process.hrtime.bigint() - start) / batch.length;
}

/** The floor: one HMAC-SHA256 over the signed text, or one RSA-SHA256 verification of it. */
function timeRaw(key: VerificationKey, batch: readonly Request[]): number {
  const { hmacKey, publicKey } = key;
  let sink = 0;
  const start = process.hrtime.bigint();
  for (const { text, signature } of batch) {
    if (hmacKey !== null) sink ^= createHmac("sha256", hmacKey).update(text).digest()[0] ?? 0;
    else if (publicKey !== null && cryptoVerify("sha256", text, publicKey, signature)) sink ^= 1;
  }
  const ns = Number(process.hrtime.bigint() - start) / batch.length;
  if (sink < 0) throw new Error("unreachable");
  return ns;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

describe("Bybit verification cost", () => {
  it.each([
    ["hmac-sha256", "GET", "/v5/account/wallet-balance?accountType=UNIFIED&coin=BTC,USDT", "", 5_000],
    ["hmac-sha256", "POST", "/v5/order/create", '{"category":"spot","symbol":"BTCUSDT","side":"Buy","orderType":"Limit","qty":"0.01","price":"59000.5"}', 5_000],
    ["rsa", "POST", "/v5/order/create", '{"category":"spot","symbol":"BTCUSDT","side":"Buy","orderType":"Limit","qty":"0.01","price":"59000.5"}', 500],
  ] as const)("%s %s: at most 4x one raw verification of the signed text", (algorithm, method, url, body, count) => {
    const scheme = createBybitScheme({ scheme: "http", futureSkewMs: 1000 });
    if (scheme === null) throw new Error("the Bybit scheme is not built");
    const key = benchKey(algorithm);
    const all = requests(algorithm, method, url, body, count);
    const chunk = Math.min(CHUNK, count / 5);
    const ratios: number[] = [];
    const verifies: number[] = [];
    const raws: number[] = [];
    for (let round = 0; round < 12; round++) {
      // A fresh replay store per round: the same requests are new to it.
      const hot = { nonces: new MemoryNonceStore(), sequences: new MemorySequenceStore() };
      for (let start = 0; start < count; start += chunk) {
        const part = all.slice(start, start + chunk);
        let v: number;
        let r: number;
        if ((start / chunk) % 2 === 0) {
          v = timeVerify(scheme, key, hot, part);
          r = timeRaw(key, part);
        } else {
          r = timeRaw(key, part);
          v = timeVerify(scheme, key, hot, part);
        }
        if (round < 2) continue;
        verifies.push(v);
        raws.push(r);
        ratios.push(v / r);
      }
    }
    const ratio = median(ratios);
    console.log(`bybit ${algorithm} ${method}: verify ${median(verifies).toFixed(0)} ns, raw ${median(raws).toFixed(0)} ns, median of ${ratios.length} paired ratios ${ratio.toFixed(2)}`);
    expect(ratio).toBeLessThanOrEqual(4);
  });
});
