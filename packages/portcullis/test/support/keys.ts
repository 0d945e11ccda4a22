import { createSecretKey } from "node:crypto";
import type { VerificationKey } from "../../src/contract/verification-key.js";
import { compileKey } from "../../src/keys/cache.js";
import type { KeyRecord } from "../../src/contract/keys.js";

/**
 * A key record as the store would return it for a fresh active HMAC key, with `overrides`
 * (for scheme and cache unit tests that build verification keys without a store).
 */
export function keyRecord(overrides: Partial<KeyRecord> = {}): KeyRecord {
  return {
    id: "pck_test_v1_0000000000000000000000000000",
    environment: "test",
    account: "acct-1",
    subAccount: null,
    label: "",
    algorithm: "hmac-sha256",
    publicKey: null,
    scopes: ["read", "trade"],
    ipAllowlist: [],
    dialects: ["native"],
    expiresAt: null,
    windowMs: null,
    status: "active",
    statusReason: null,
    createdAt: 0,
    updatedAt: 0,
    lastUsedAt: null,
    revision: 1,
    limits: {},
    sessionEpoch: 0,
    sessionTtlMs: null,
    sessionBindAddress: false,
    rotatedFrom: null,
    rotatedTo: null,
    maxAgeMs: null,
    operator: false,
    owner: null,
    guardrails: null,
    risk: null,
    certThumbprint: null,
    agent: null,
    ...overrides,
  };
}

/**
 * An HMAC key compiled as the key cache compiles it: the secret's UTF-8 bytes (and, for Kraken,
 * its base64 decoding), an OKX passphrase hash when given, the gateway's default window.
 */
export function hmacVerificationKey(
  secret: string,
  overrides: Partial<KeyRecord> = {},
  options: { readonly passphraseHash?: string; readonly windowMs?: number } = {},
): VerificationKey {
  const record = keyRecord(overrides);
  return compileKey(
    {
      record,
      hmacKey: createSecretKey(Buffer.from(secret, "utf8")),
      hmacKeyDecoded: record.dialects.includes("kraken") ? createSecretKey(Buffer.from(secret, "base64")) : null,
      publicKey: null,
      passphraseHash: options.passphraseHash ?? null,
    },
    options.windowMs ?? 5000,
  );
}
