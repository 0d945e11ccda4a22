/**
 * A quick microbenchmark of the OKX dialect's hot path (the final benchmark harness comes later):
 * what the scheme does per request — parse the four headers (stage 3), check the time (5), verify
 * the signature and the passphrase (6, the passphrase on its fast path after the first success),
 * claim the signature as single-use (7) — must cost at most 4x one raw HMAC-SHA256 over the same
 * pre-hash bytes (timestamp + method + requestPath + body). Every request is distinct, as real
 * traffic is; the contexts are built before the clock starts (the pipeline builds one per request
 * whatever the scheme). Medians of interleaved runs, so a busy machine slows both sides alike.
 */
import { createHmac, createSecretKey, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { grantedPermissions } from "../../src/authz/permissions.js";
import { createOkxScheme } from "../../src/dialects/okx/index.js";
import type { AuthScheme, HotState } from "../../src/dialects/scheme.js";
import type { VerificationKey } from "../../src/keys/cache.js";
import { generateKeyId } from "../../src/keys/ids.js";
import { PassphraseCheck, hashPassphrase } from "../../src/keys/passphrase.js";
import { RequestContext } from "../../src/pipeline/context.js";
import { MemoryNonceStore } from "../../src/storage/memory/nonces.js";
import { MemorySequenceStore } from "../../src/storage/memory/sequences.js";

const secret = randomBytes(32).toString("base64url");
const passphrase = "Bench-Passphrase-1";
const keyId = generateKeyId("test");
const NOW = Date.UTC(2026, 10, 22, 12);
const BATCH = 5_000;
const CHUNK = 250;

async function benchKey(): Promise<VerificationKey> {
  return {
    record: {
      id: keyId,
      environment: "test",
      account: "bench",
      subAccount: null,
      label: "",
      algorithm: "hmac-sha256",
      publicKey: null,
      scopes: ["read", "trade"],
      ipAllowlist: [],
      dialects: ["okx"],
      expiresAt: null,
      windowMs: null,
      status: "active",
      statusReason: null,
      createdAt: 0,
      updatedAt: 0,
      lastUsedAt: null,
      revision: 1,
    },
    hmacKey: createSecretKey(Buffer.from(secret, "utf8")),
    hmacKeyDecoded: null,
    publicKey: null,
    dialects: new Set(["okx"]),
    passphrase: new PassphraseCheck(await hashPassphrase(passphrase)),
    allowlist: null,
    permissions: grantedPermissions(["read", "trade"]),
    nativeAlgorithms: ["hmac-sha256"],
    windowMs: 5000,
    scopesText: "read,trade",
  };
}

interface Batch {
  readonly contexts: RequestContext[];
  readonly prehashes: Buffer[];
}

/** `BATCH` distinct signed requests (each a millisecond apart), and their pre-hash bytes. */
function batch(method: string, url: string, body: string): Batch {
  const contexts: RequestContext[] = [];
  const prehashes: Buffer[] = [];
  for (let i = 0; i < BATCH; i++) {
    const timestamp = new Date(NOW - i).toISOString();
    const prehash = Buffer.from(timestamp + method + url + body);
    const headers = {
      "ok-access-key": keyId,
      "ok-access-sign": createHmac("sha256", secret).update(prehash).digest("base64"),
      "ok-access-timestamp": timestamp,
      "ok-access-passphrase": passphrase,
    };
    const ctx = new RequestContext({ method, url, headers, body: Buffer.from(body), socketAddress: "127.0.0.1" }, "bench", NOW);
    const q = url.indexOf("?");
    ctx.path = q < 0 ? url : url.slice(0, q);
    ctx.query = q < 0 ? null : url.slice(q + 1);
    contexts.push(ctx);
    prehashes.push(prehash);
  }
  return { contexts, prehashes };
}

function timeVerify(scheme: AuthScheme, key: VerificationKey, hot: HotState, contexts: readonly RequestContext[]): number {
  const start = process.hrtime.bigint();
  for (const ctx of contexts) {
    const credential = scheme.extract(ctx);
    if ("ok" in credential) throw new Error(credential.code);
    const denial = credential.fresh(ctx, key) ?? credential.verify(ctx, key) ?? credential.replay(ctx, key, hot);
    if (denial !== undefined) throw new Error(denial instanceof Promise ? "asynchronous" : denial.code);
  }
  return Number(process.hrtime.bigint() - start) / contexts.length;
}

function timeHmac(key: VerificationKey, prehashes: readonly Buffer[]): number {
  const hmacKey = key.hmacKey;
  if (hmacKey === null) throw new Error("no key");
  let sink = 0;
  const start = process.hrtime.bigint();
  for (const prehash of prehashes) sink ^= createHmac("sha256", hmacKey).update(prehash).digest()[0] ?? 0;
  const ns = Number(process.hrtime.bigint() - start) / prehashes.length;
  if (sink < 0) throw new Error("unreachable");
  return ns;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

describe("OKX verification cost", () => {
  it.each([
    ["GET", "/api/v5/account/balance?ccy=BTC,USDT", ""],
    ["POST", "/api/v5/trade/order", '{"instId":"BTC-USDT","tdMode":"cash","clOrdId":"b15","side":"buy","ordType":"limit","px":"59000.5","sz":"0.01"}'],
  ])("%s %s: at most 4x one raw HMAC-SHA256 of the pre-hash", async (method, url, body) => {
    const scheme = createOkxScheme({ scheme: "http", futureSkewMs: 1000 });
    if (scheme === null) throw new Error("the OKX scheme is not built");
    const key = await benchKey();
    // The first passphrase check of a loaded key is the slow one; the benchmark measures the rest.
    expect(await key.passphrase?.check(passphrase)).toBe(true);
    const { contexts, prehashes } = batch(method, url, body);
    const ratios: number[] = [];
    const verifies: number[] = [];
    const raws: number[] = [];
    for (let round = 0; round < 12; round++) {
      // A fresh replay store per round: the same requests are new to it.
      const hot = { nonces: new MemoryNonceStore(), sequences: new MemorySequenceStore() };
      for (let start = 0; start < BATCH; start += CHUNK) {
        const chunk = contexts.slice(start, start + CHUNK);
        const bytes = prehashes.slice(start, start + CHUNK);
        // Back-to-back pairs, in alternating order; the first two rounds warm up.
        let v: number;
        let r: number;
        if ((start / CHUNK) % 2 === 0) {
          v = timeVerify(scheme, key, hot, chunk);
          r = timeHmac(key, bytes);
        } else {
          r = timeHmac(key, bytes);
          v = timeVerify(scheme, key, hot, chunk);
        }
        if (round < 2) continue;
        verifies.push(v);
        raws.push(r);
        ratios.push(v / r);
      }
    }
    const ratio = median(ratios);
    console.log(`okx ${method}: verify ${median(verifies).toFixed(0)} ns, raw HMAC-SHA256 ${median(raws).toFixed(0)} ns, median of ${ratios.length} paired ratios ${ratio.toFixed(2)}`);
    expect(ratio).toBeLessThanOrEqual(4);
  });
});
