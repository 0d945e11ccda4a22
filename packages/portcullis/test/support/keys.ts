import type { KeyRecord } from "../../src/keys/model.js";

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
    ...overrides,
  };
}
