/**
 * Test support for risk profiles: a key record built field by field, a route table and limits like
 * a venue's, a policy compiled from its document, reference prices.
 */
import { RouteTable, type RouteSpec } from "../../src/authz/routes.js";
import type { KeyRecord } from "../../src/contract/keys.js";
import type { LimitSpec } from "../../src/contract/limits.js";
import { valueOrThrow } from "../../src/errors/result.js";
import type { RiskInputs } from "../../src/exposure/profile.js";
import { StaticPrices } from "../../src/operations/prices.js";
import { canonicalDigest } from "../../src/policy/canonical.js";
import { parsePolicyDocument } from "../../src/policy/document.js";
import { CompiledPolicy, DEFAULT_POLICY, DEFAULT_POLICY_JSON } from "../../src/policy/engine.js";

export const NOW = Date.UTC(2026, 11, 1, 12, 0, 0);
const DAY = 86_400_000;

export const PRICE_TABLE = { assets: { USDT: "1", BTC: "60000" }, symbols: { BTCUSDT: "60000" } };
export const prices = new StaticPrices(PRICE_TABLE);

export const ROUTES: RouteSpec[] = [
  { method: "GET", path: "/api/v3/account", permission: "read", weight: 20 },
  { method: "POST", path: "/api/v3/order", permission: "trade", weight: 1, tags: ["order"], operation: "order.place" },
  { method: "DELETE", path: "/api/v3/order", permission: "trade", weight: 1, tags: ["cancel"], operation: "order.cancel" },
  { method: "POST", path: "/sapi/v1/capital/withdraw/apply", permission: "withdraw", weight: 10, operation: "withdraw" },
];

/** key-weight-1m 1200 (20,400 weight an hour: 1200 + 60 × 1200 = 73,200), orders-10s 100 (100 + 360 × 100 = 36,100 an hour). */
export const LIMITS: LimitSpec[] = [
  { name: "ip-weight-1m", scope: "ip", kind: "weight", limit: 6000, windowMs: 60_000 },
  { name: "key-weight-1m", scope: "key", kind: "weight", limit: 1200, windowMs: 60_000 },
  { name: "orders-10s", scope: "account", kind: "orders", limit: 100, windowMs: 10_000 },
];

export function key(over: Partial<KeyRecord> = {}): KeyRecord {
  return {
    id: "pk_test_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    environment: "test",
    account: "acct-1",
    subAccount: null,
    label: "bot",
    algorithm: "hmac-sha256",
    publicKey: null,
    scopes: ["read", "trade", "withdraw"],
    ipAllowlist: [],
    dialects: ["native"],
    expiresAt: null,
    windowMs: null,
    status: "active",
    statusReason: null,
    createdAt: NOW - 100 * DAY,
    updatedAt: NOW - 100 * DAY,
    lastUsedAt: NOW - DAY,
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
    ...over,
  };
}

export function policyOf(document: unknown, version = 1): CompiledPolicy {
  if (document === null) return new CompiledPolicy(DEFAULT_POLICY, 0, canonicalDigest(DEFAULT_POLICY_JSON), prices);
  return new CompiledPolicy(valueOrThrow(parsePolicyDocument(document)), version, canonicalDigest(document), prices);
}

/** Daily cap of 5,000 (per key), and a hold over 1,000; everything else allowed. */
export const CAPPED = {
  rules: [
    { name: "daily cap", match: { kind: ["withdraw"], velocity: { window: "24h", per: "key", over: "5000" } }, action: { type: "block", reason: "daily cap" } },
    { name: "big", match: { kind: ["withdraw"], amount: { over: "1000" } }, action: { type: "hold", approvals: [{ group: "treasury", count: 1 }] } },
    { name: "rest", match: {}, action: { type: "allow" } },
  ],
};

export function inputs(over: Partial<RiskInputs> = {}): RiskInputs {
  return {
    key: key(),
    limits: LIMITS,
    routes: new RouteTable(ROUTES).routes,
    policy: policyOf(CAPPED),
    prices,
    assets: Object.keys(PRICE_TABLE.assets),
    symbols: Object.keys(PRICE_TABLE.symbols),
    anomaly: null,
    idleExpiryMs: null,
    now: NOW,
    ...over,
  };
}
