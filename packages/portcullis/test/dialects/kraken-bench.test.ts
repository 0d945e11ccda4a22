/**
 * A quick microbenchmark of the Kraken dialect's hot path (the final benchmark harness comes
 * later): parsing the credential and verifying the signature (stages 3 and 6) must cost at most
 * 4x one raw HMAC-SHA512 over the same bytes (URI path + nonce + POST data). Medians of
 * interleaved runs, so a busy machine slows both sides alike.
 */
import { createHash, createHmac, createSecretKey, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { grantedPermissions } from "../../src/authz/permissions.js";
import { createKrakenScheme } from "../../src/dialects/kraken/index.js";
import type { VerificationKey } from "../../src/keys/cache.js";
import { generateKeyId } from "../../src/keys/ids.js";
import { RequestContext } from "../../src/pipeline/context.js";

const secret = randomBytes(64);
const keyId = generateKeyId("test");
const key: VerificationKey = {
  record: {
    id: keyId,
    environment: "test",
    account: "bench",
    subAccount: null,
    label: "",
    algorithm: "hmac-sha256",
    publicKey: null,
    scopes: ["trade"],
    ipAllowlist: [],
    dialects: ["kraken"],
    expiresAt: null,
    windowMs: null,
    status: "active",
    statusReason: null,
    createdAt: 0,
    updatedAt: 0,
    lastUsedAt: null,
    revision: 1,
  },
  hmacKey: createSecretKey(Buffer.from(secret.toString("base64"), "utf8")),
  hmacKeyDecoded: createSecretKey(secret),
  publicKey: null,
  dialects: new Set(["kraken"]),
  passphrase: null,
  allowlist: null,
  permissions: grantedPermissions(["trade"]),
  nativeAlgorithms: ["hmac-sha256"],
  windowMs: 5000,
  scopesText: "trade",
};

const path = "/0/private/AddOrder";
const nonce = "1616492376594";
const body = Buffer.from(`nonce=${nonce}&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25`);
const apiSign = createHmac("sha512", secret).update(path).update(createHash("sha256").update(nonce).update(body).digest()).digest("base64");
const headers = { "api-key": keyId, "api-sign": apiSign, "content-type": "application/x-www-form-urlencoded" };
const message = Buffer.concat([Buffer.from(path), Buffer.from(nonce), body]);

function timePerCall(fn: () => void, calls: number): number {
  const start = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) fn();
  return Number(process.hrtime.bigint() - start) / calls;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

describe("Kraken verification cost", () => {
  it("is at most 4x one raw HMAC-SHA512 of the same message", () => {
    const scheme = createKrakenScheme({ scheme: "http", futureSkewMs: 1000 });
    const ctx = new RequestContext({ method: "POST", url: path, headers, body, socketAddress: "127.0.0.1" }, "bench", 0);
    ctx.path = path;
    const hmacKey = key.hmacKeyDecoded;
    if (hmacKey === null) throw new Error("no key");
    const raw = (): void => {
      createHmac("sha512", hmacKey).update(message).digest();
    };
    const verify = (): void => {
      const credential = scheme.extract(ctx);
      if ("ok" in credential || credential.verify(ctx, key) !== undefined) throw new Error("does not verify");
    };
    for (let i = 0; i < 3; i++) {
      timePerCall(raw, 5_000);
      timePerCall(verify, 5_000);
    }
    const raws: number[] = [];
    const verifies: number[] = [];
    for (let i = 0; i < 7; i++) {
      raws.push(timePerCall(raw, 10_000));
      verifies.push(timePerCall(verify, 10_000));
    }
    const ratio = median(verifies) / median(raws);
    console.log(`kraken verify ${median(verifies).toFixed(0)} ns, raw HMAC-SHA512 ${median(raws).toFixed(0)} ns, ratio ${ratio.toFixed(2)}`);
    expect(ratio).toBeLessThanOrEqual(4);
  });
});
