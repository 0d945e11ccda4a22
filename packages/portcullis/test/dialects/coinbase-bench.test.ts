/**
 * A quick microbenchmark of the Coinbase dialect's hot path (the final benchmark harness comes
 * later): parsing the token, the freshness checks and verifying it with jose (stages 3, 5 and 6,
 * one request after another, each awaited) must cost at most 4x one raw signature verification
 * (node:crypto, synchronous) of the same signing input with the same key. Medians of interleaved
 * runs, so a busy machine slows both sides alike.
 */
import { type KeyObject, generateKeyPairSync, randomBytes, verify as cryptoVerify } from "node:crypto";
import { SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { grantedPermissions } from "../../src/authz/permissions.js";
import { createCoinbaseScheme } from "../../src/dialects/coinbase/index.js";
import type { VerificationKey } from "../../src/keys/cache.js";
import { generateKeyId } from "../../src/keys/ids.js";
import type { KeyAlgorithm } from "../../src/keys/model.js";
import { RequestContext } from "../../src/pipeline/context.js";

const NOW = Date.UTC(2026, 10, 22, 12, 0, 0);
const PATH = "/api/v3/brokerage/accounts";

function verificationKey(id: string, algorithm: KeyAlgorithm, publicKey: KeyObject): VerificationKey {
  return {
    record: {
      id,
      environment: "test",
      account: "bench",
      subAccount: null,
      label: "",
      algorithm,
      publicKey: publicKey.export({ type: "spki", format: "pem" }).toString(),
      scopes: ["read"],
      ipAllowlist: [],
      dialects: ["coinbase"],
      expiresAt: null,
      windowMs: null,
      status: "active",
      statusReason: null,
      createdAt: 0,
      updatedAt: 0,
      lastUsedAt: null,
      revision: 1,
    },
    hmacKey: null,
    hmacKeyDecoded: null,
    publicKey,
    dialects: new Set(["coinbase"]),
    passphrase: null,
    allowlist: null,
    permissions: grantedPermissions(["read"]),
    nativeAlgorithms: [],
    windowMs: 5000,
    scopesText: "read",
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

async function timePerCall(fn: () => Promise<void> | void, calls: number): Promise<number> {
  const start = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) await fn();
  return Number(process.hrtime.bigint() - start) / calls;
}

describe.each([
  ["ES256", "ecdsa-p256"],
  ["EdDSA", "ed25519"],
] as const)("Coinbase verification cost (%s)", (alg, algorithm) => {
  it("is at most 4x one raw signature verification of the same signing input", async () => {
    const { publicKey, privateKey } = algorithm === "ecdsa-p256" ? generateKeyPairSync("ec", { namedCurve: "P-256" }) : generateKeyPairSync("ed25519");
    const id = generateKeyId("test");
    const kid = `organizations/bench-org/apiKeys/${id}`;
    const key = verificationKey(id, algorithm, publicKey);
    const nbf = Math.floor(NOW / 1000);
    const jwt = await new SignJWT({ sub: kid, iss: "cdp", nbf, exp: nbf + 120, uri: `GET gateway.test${PATH}` })
      .setProtectedHeader({ alg, kid, typ: "JWT", nonce: randomBytes(16).toString("hex") })
      .sign(privateKey);
    const [header = "", payload = "", signature = ""] = jwt.split(".");
    const input = Buffer.from(`${header}.${payload}`);
    const sig = Buffer.from(signature, "base64url");

    const scheme = createCoinbaseScheme({ scheme: "http", futureSkewMs: 1000 });
    const ctx = new RequestContext({ method: "GET", url: PATH, headers: { host: "gateway.test", authorization: `Bearer ${jwt}` }, body: Buffer.alloc(0), socketAddress: "127.0.0.1" }, "bench", NOW);
    ctx.path = PATH;
    ctx.authority = "gateway.test";

    const raw = (): void => {
      const ok = algorithm === "ecdsa-p256" ? cryptoVerify("sha256", input, { key: publicKey, dsaEncoding: "ieee-p1363" }, sig) : cryptoVerify(null, input, publicKey, sig);
      if (!ok) throw new Error("raw does not verify");
    };
    const verify = async (): Promise<void> => {
      const credential = scheme.extract(ctx);
      if ("ok" in credential) throw new Error(credential.code);
      const fresh = await credential.fresh(ctx, key);
      const verified = await credential.verify(ctx, key);
      if (fresh !== undefined || verified !== undefined) throw new Error("does not verify");
    };

    // Warm up (this also imports the key's CryptoKey, once).
    await timePerCall(raw, 300);
    await timePerCall(verify, 300);
    const ratios: number[] = [];
    const rawTimes: number[] = [];
    const verifyTimes: number[] = [];
    for (let round = 0; round < 15; round++) {
      const r = await timePerCall(raw, 200);
      const v = await timePerCall(verify, 200);
      rawTimes.push(r);
      verifyTimes.push(v);
      ratios.push(v / r);
    }
    const ratio = median(ratios);
    console.log(
      `coinbase ${alg}: raw verify ${(median(rawTimes) / 1000).toFixed(1)} µs, dialect stages 3+5+6 ${(median(verifyTimes) / 1000).toFixed(1)} µs, ratio ${ratio.toFixed(2)}x`,
    );
    expect(ratio).toBeLessThanOrEqual(4);
  });
});
