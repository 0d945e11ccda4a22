/**
 * `riskProfile`, the pure computation: each number from the key, the limits, the routes, the
 * guardrails and the policy in force (the largest withdrawal is exactly what the policy allows:
 * its hold threshold, its velocity caps, its destination and source rules), the score, and the
 * sensitivities' directions and values.
 */
import { describe, expect, it } from "vitest";
import { PERMISSIONS } from "../../src/contract/permissions.js";
import { RouteTable } from "../../src/authz/routes.js";
import type { BehaviourScore } from "../../src/contract/behaviour.js";
import { SCORE_WEIGHTS, SATURATION, type Sensitivity, riskProfile } from "../../src/exposure/profile.js";
import { CAPPED, NOW, ROUTES, inputs, key, policyOf } from "./support.js";

const find = (list: readonly Sensitivity[], control: string): Sensitivity => {
  const s = list.find((x) => x.control === control);
  if (s === undefined) throw new Error(`no sensitivity ${control} in ${list.map((x) => x.control).join(", ")}`);
  return s;
};

const HOLD_OVER_1000 = { rules: [CAPPED.rules[1], CAPPED.rules[2]] };

describe("withdrawals: exactly what the policy allows in an hour", () => {
  it("a daily cap of 5,000 and a hold over 1,000: 1,000 at a time, 5,000 in the hour, in every asset", () => {
    const p = riskProfile(inputs());
    expect(p.exposure.maxWithdrawalPerHour).toBe(5000);
    expect(p.exposure.maxWithdrawalPerHourKnown).toBe(5000);
    // withdraw route weight 10 under key-weight-1m 1200: (1200 + 60 × 1200) / 10 requests an hour.
    expect(p.exposure.maxWithdrawalsPerHour).toBe(7320);
    const usdt = p.exposure.withdrawals.find((w) => w.asset === "USDT");
    expect(usdt).toEqual({ asset: "USDT", single: "1000", toNewAddress: { amount: "5000", value: 5000 }, toKnownAddress: { amount: "5000", value: 5000 }, valueAssumed: false });
    const btc = p.exposure.withdrawals.find((w) => w.asset === "BTC");
    // 1,000 / 60,000 rounded down at 18 decimals: five of them, and the dust left under the cap.
    expect(btc?.single).toBe("0.016666666666666666");
    expect(btc?.toNewAddress.amount).toBe("0.083333333333333333");
    expect(btc?.toNewAddress.value).toBe(5000);
    // An asset without a reference price fails closed: "over 1,000" holds it.
    expect(p.exposure.withdrawals.find((w) => w.asset === "*")?.toNewAddress).toEqual({ amount: "0", value: 0 });
  });

  it("without a velocity cap, the hold threshold times the requests the limits admit", () => {
    const p = riskProfile(inputs({ policy: policyOf(HOLD_OVER_1000) }));
    expect(p.exposure.maxWithdrawalPerHour).toBe(1000 * 7320);
  });

  it("without limits and without a cap: unbounded (null)", () => {
    expect(riskProfile(inputs({ policy: policyOf(HOLD_OVER_1000), limits: [] })).exposure.maxWithdrawalPerHour).toBeNull();
    // The default policy allows everything: unbounded even with limits.
    expect(riskProfile(inputs({ policy: policyOf(null) })).exposure.maxWithdrawalPerHour).toBeNull();
    // The daily cap still bounds it without limits.
    expect(riskProfile(inputs({ limits: [] })).exposure.maxWithdrawalPerHour).toBe(5000);
  });

  it("a cap over a window shorter than an hour renews: 2,000 per 10 minutes is 12,000 an hour", () => {
    const doc = {
      rules: [
        { name: "10m cap", match: { kind: ["withdraw"], velocity: { window: "10m", per: "account", over: "2000" } }, action: { type: "block", reason: "no" } },
        ...HOLD_OVER_1000.rules,
      ],
    };
    expect(riskProfile(inputs({ policy: policyOf(doc) })).exposure.maxWithdrawalPerHour).toBe(12_000);
  });

  it("a cap per asset unit: BTC over 0.01 held, its value 600 each", () => {
    const doc = {
      rules: [
        { name: "btc", match: { kind: ["withdraw"], asset: ["BTC"], amount: { over: "0.01", unit: "asset" } }, action: { type: "hold", approvals: [{ group: "t", count: 1 }] } },
        { name: "small btc", match: { kind: ["withdraw"], asset: ["BTC"] }, action: { type: "allow" } },
        { name: "others", match: { kind: ["withdraw"] }, action: { type: "block", reason: "no" } },
        { name: "rest", match: {}, action: { type: "allow" } },
      ],
    };
    const p = riskProfile(inputs({ policy: policyOf(doc) }));
    const btc = p.exposure.withdrawals.find((w) => w.asset === "BTC");
    expect(btc?.single).toBe("0.01");
    expect(p.exposure.maxWithdrawalPerHour).toBe(600 * 7320);
  });

  it("new destinations blocked: nothing to a new address, 5,000 to a known one", () => {
    const doc = { rules: [{ name: "new", match: { kind: ["withdraw"], destination: "new" }, action: { type: "block", reason: "no" } }, ...CAPPED.rules] };
    const p = riskProfile(inputs({ policy: policyOf(doc) }));
    expect(p.exposure.maxWithdrawalPerHour).toBe(0);
    expect(p.exposure.maxWithdrawalPerHourKnown).toBe(5000);
  });

  it("a source rule: from anywhere the thief picks an address inside it; the allowlist decides where the key can come from", () => {
    const doc = { rules: [{ name: "office only", match: { kind: ["withdraw"], source: { notIn: ["10.0.0.0/8"] } }, action: { type: "block", reason: "no" } }, ...CAPPED.rules] };
    expect(riskProfile(inputs({ policy: policyOf(doc) })).exposure.maxWithdrawalPerHour).toBe(5000);
    expect(riskProfile(inputs({ policy: policyOf(doc), key: key({ ipAllowlist: ["192.0.2.0/24"] }) })).exposure.maxWithdrawalPerHour).toBe(0);
    expect(riskProfile(inputs({ policy: policyOf(doc), key: key({ ipAllowlist: ["10.1.0.0/16"] }) })).exposure.maxWithdrawalPerHour).toBe(5000);
    // The allowlist a sensitivity proposes is inside the block the policy wants: it moves only the reach.
    const proposed = find(riskProfile(inputs({ policy: policyOf(doc) })).sensitivities, "ip-allowlist");
    expect(proposed.description).toBe("add an IP allowlist of one address (e.g. 10.0.0.0/32)");
    expect(proposed.moves).toEqual([{ field: "reachableFrom", from: "anywhere", to: "1 network" }]);
  });

  it("no withdraw scope, or no withdrawal route: 0; the withdrawAssets guardrail narrows the assets", () => {
    const noScope = riskProfile(inputs({ key: key({ scopes: ["read", "trade"] }) }));
    expect(noScope.exposure.maxWithdrawalPerHour).toBe(0);
    expect(noScope.exposure.withdrawals).toEqual([]);
    const noRoute = riskProfile(inputs({ routes: new RouteTable(ROUTES.filter((r) => r.operation !== "withdraw")).routes }));
    expect(noRoute.exposure.maxWithdrawalPerHour).toBe(0);
    const g = { symbols: null, maxQuantity: null, maxNotional: null, priceBandPct: null, withdrawAssets: ["BTC"], transferAssets: null, maxOpenNotional: null };
    const onlyBtc = riskProfile(inputs({ key: key({ guardrails: g }), policy: policyOf(null) }));
    expect(onlyBtc.exposure.withdrawals.map((w) => w.asset)).toEqual(["BTC"]);
  });
});

describe("orders: limits and guardrails", () => {
  it("the tightest limit of the cheapest order route: orders-10s 100 → 100 + 360 × 100 an hour; unbounded notional without guardrails", () => {
    const p = riskProfile(inputs());
    expect(p.exposure.maxOrdersPerHour).toBe(36_100);
    expect(p.exposure.maxOrderNotional).toBeNull();
    expect(p.exposure.maxOrderNotionalPerHour).toBeNull();
  });

  it("a key's override by name replaces the limit; no limits: unbounded; no trade scope: 0", () => {
    expect(riskProfile(inputs({ key: key({ limits: { "orders-10s": 10 } }) })).exposure.maxOrdersPerHour).toBe(10 + 360 * 10);
    expect(riskProfile(inputs({ limits: [] })).exposure.maxOrdersPerHour).toBeNull();
    const noTrade = riskProfile(inputs({ key: key({ scopes: ["read", "withdraw"] }) }));
    expect(noTrade.exposure).toMatchObject({ maxOrdersPerHour: 0, maxOrderNotional: 0, maxOrderNotionalPerHour: 0 });
  });

  it("maxNotional bounds one order and the hour; maxQuantity × reference price (and its band) on the listed symbols", () => {
    const base = { symbols: null, maxQuantity: null, maxNotional: null, priceBandPct: null, withdrawAssets: null, transferAssets: null, maxOpenNotional: null };
    const notional = riskProfile(inputs({ key: key({ guardrails: { ...base, maxNotional: "10000" } }) }));
    expect(notional.exposure.maxOrderNotional).toBe(10_000);
    expect(notional.exposure.maxOrderNotionalPerHour).toBe(10_000 * 36_100);
    const quantity = riskProfile(inputs({ key: key({ guardrails: { ...base, symbols: ["BTC-USDT"], maxQuantity: "0.5" } }) }));
    expect(quantity.exposure.maxOrderNotional).toBe(30_000);
    const banded = riskProfile(inputs({ key: key({ guardrails: { ...base, symbols: ["BTCUSDT"], maxQuantity: "0.5", priceBandPct: "5" } }) }));
    expect(banded.exposure.maxOrderNotional).toBe(31_500);
  });

  it("maxOpenNotional is the value the key's orders may hold open at once: null without it, 0 without the trade scope", () => {
    const base = { symbols: null, maxQuantity: null, maxNotional: null, priceBandPct: null, withdrawAssets: null, transferAssets: null, maxOpenNotional: null };
    expect(riskProfile(inputs({ key: key({ guardrails: { ...base, maxOpenNotional: "250000.5" } }) })).exposure.maxOpenNotional).toBe(250_000.5);
    expect(riskProfile(inputs()).exposure.maxOpenNotional).toBeNull();
    expect(riskProfile(inputs({ key: key({ scopes: ["read"], guardrails: { ...base, maxOpenNotional: "1000" } }) })).exposure.maxOpenNotional).toBe(0);
  });

  it("a policy that holds orders over 50,000 bounds one order", () => {
    const doc = { rules: [{ name: "big orders", match: { kind: ["order.place"], amount: { over: "50000" } }, action: { type: "hold", approvals: [{ group: "t", count: 1 }] } }, ...CAPPED.rules] };
    expect(riskProfile(inputs({ policy: policyOf(doc) })).exposure.maxOrderNotional).toBe(50_000);
  });
});

describe("reach, scopes, age, anomaly and the score", () => {
  it("reachable from anywhere, or from the allowlist's networks with their address count", () => {
    expect(riskProfile(inputs()).exposure.reachableFrom).toEqual({ from: "anywhere", cidrs: [], networks: 0, addresses: null });
    const listed = riskProfile(inputs({ key: key({ ipAllowlist: ["10.0.0.0/24", "192.0.2.7/32"] }) }));
    expect(listed.exposure.reachableFrom).toEqual({ from: "allowlist", cidrs: ["10.0.0.0/24", "192.0.2.7/32"], networks: 2, addresses: 257 });
    // The reach part: the widest block's host bits (IPv6 above a /64, one subscriber).
    expect(listed.scoreParts.reach).toBe(5);
    expect(riskProfile(inputs({ key: key({ ipAllowlist: ["2001:db8::/64"] }) })).scoreParts.reach).toBe(0);
    expect(riskProfile(inputs({ key: key({ ipAllowlist: ["2001:db8::/48"] }) })).scoreParts.reach).toBe(5);
    expect(riskProfile(inputs()).scoreParts.reach).toBe(20);
  });

  it("scopes with their breadth, age, rotation state and the anomaly score", () => {
    const anomaly: BehaviourScore = { keyId: "k", account: "acct-1", at: NOW, score: 80, basis: "key", seen: 100, contributions: [] };
    const p = riskProfile(inputs({ anomaly, key: key({ maxAgeMs: 90 * 86_400_000, rotatedFrom: "pk_test_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb" }), idleExpiryMs: 30 * 86_400_000 }));
    expect(p.exposure.scopes).toEqual({ count: 3, list: ["read", "trade", "withdraw"], breadth: Math.round((3 / PERMISSIONS.length) * 1000) / 1000 });
    expect(p.exposure.ageDays).toBe(100);
    expect(p.exposure.rotation).toEqual({ rotatedFrom: "pk_test_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", rotatedTo: null, maxAgeMs: 90 * 86_400_000, expiresAt: null, idleExpiresAt: NOW - 86_400_000 + 30 * 86_400_000 });
    expect(p.exposure.anomalyScore).toBe(80);
    expect(p.exposure.riskState).toBeNull();
    const risk = { state: "step-up" as const, actionId: `an_${"0".repeat(32)}`, reason: "score 80", since: NOW - 1000, until: NOW + 60_000 };
    expect(riskProfile(inputs({ key: key({ risk }) })).exposure.riskState).toBe("step-up");
    expect(riskProfile(inputs({ key: key({ risk: { ...risk, until: NOW } }) })).exposure.riskState).toBeNull();
    expect(p.scoreParts.anomaly).toBe(4);
    // Hygiene halves for a key with a rotation policy.
    expect(p.scoreParts.hygiene).toBe(Math.round(10 * 5 * (100 / 365) * 0.5) / 10);
  });

  it("the score is the documented sum of its parts", () => {
    const p = riskProfile(inputs());
    const s = (x: number): number => Math.log10(1 + x) / Math.log10(1 + SATURATION);
    expect(p.scoreParts.withdrawal).toBe(Math.round(10 * SCORE_WEIGHTS.withdrawal * s(5000)) / 10);
    expect(p.scoreParts).toMatchObject({ trading: 25, reach: 20, scopes: Math.round(10 * SCORE_WEIGHTS.scopes * Math.round((3 / PERMISSIONS.length) * 1000) / 1000) / 10, anomaly: 0 });
    const sum = Object.values(p.scoreParts).reduce((a, b) => a + b, 0);
    expect(p.riskScore).toBe(Math.round(sum * 10) / 10);
    expect(p.riskScore).toBeGreaterThan(60);
  });

  it("a key a thief cannot use scores 0: revoked, expired, suspended, stopped for idleness", () => {
    expect(riskProfile(inputs({ key: key({ status: "revoked" }) }))).toMatchObject({ riskScore: 0, usable: false, status: "revoked" });
    expect(riskProfile(inputs({ key: key({ expiresAt: NOW - 1 }) }))).toMatchObject({ riskScore: 0, usable: false, status: "expired" });
    expect(riskProfile(inputs({ key: key({ status: "suspended" }) })).riskScore).toBe(0);
    expect(riskProfile(inputs({ idleExpiryMs: 86_400_000 })).riskScore).toBe(0);
    expect(riskProfile(inputs({ idleExpiryMs: 2 * 86_400_000 })).riskScore).toBeGreaterThan(0);
  });

  it("an allowlisted, guarded, read-only key scores far below an unrestricted one", () => {
    const quiet = riskProfile(inputs({ key: key({ scopes: ["read"], ipAllowlist: ["192.0.2.7/32"] }) }));
    expect(quiet.riskScore).toBeLessThan(5);
  });
});

describe("sensitivities", () => {
  it("each control's direction and values, largest reduction first", () => {
    const p = riskProfile(inputs());
    const deltas = p.sensitivities.map((s) => s.riskScoreDelta);
    expect(deltas).toEqual([...deltas].sort((a, b) => a - b));
    expect(deltas[0]).toBeLessThan(0);

    const allowlist = find(p.sensitivities, "ip-allowlist");
    expect(allowlist).toMatchObject({ change: "add", moves: [{ field: "reachableFrom", from: "anywhere", to: "1 network" }], riskScoreDelta: -SCORE_WEIGHTS.reach });

    const withdraw = find(p.sensitivities, "scope withdraw");
    expect(withdraw.change).toBe("remove");
    expect(withdraw.moves).toEqual([{ field: "maxWithdrawalPerHour", from: 5000, to: 0 }]);
    // Removing the scope also narrows the scopes part: two permissions of the catalogue instead of three.
    const scopesAfter = Math.round(10 * SCORE_WEIGHTS.scopes * (Math.round((2 / PERMISSIONS.length) * 1000) / 1000)) / 10;
    expect(withdraw.riskScoreDelta).toBeCloseTo(-(p.scoreParts.withdrawal + p.scoreParts.scopes - scopesAfter), 1);

    const notional = find(p.sensitivities, "guardrail maxNotional");
    expect(notional.change).toBe("add");
    expect(notional.moves).toContainEqual({ field: "maxOrderNotional", from: null, to: 10_000 });
    expect(notional.riskScoreDelta).toBeLessThan(0);

    const orders = find(p.sensitivities, "limit orders-10s");
    expect(orders.moves).toEqual([{ field: "maxOrdersPerHour", from: 36_100, to: 73_200 }]);

    const cap = find(p.sensitivities, "policy rule daily cap");
    expect(cap.change).toBe("remove");
    expect(cap.moves).toEqual([{ field: "maxWithdrawalPerHour", from: 5000, to: 7_320_000 }]);
    expect(cap.riskScoreDelta).toBeGreaterThan(0);
    expect(p.sensitivities.indexOf(cap)).toBe(p.sensitivities.length - 1);
  });

  it("removing the only limit makes the order count unbounded; removing an allowlist raises the score", () => {
    const only = riskProfile(inputs({ limits: [{ name: "orders-1m", scope: "account", kind: "orders", limit: 100, windowMs: 60_000 }] }));
    expect(find(only.sensitivities, "limit orders-1m").moves).toContainEqual({ field: "maxOrdersPerHour", from: 100 + 60 * 100, to: null });
    const listed = riskProfile(inputs({ key: key({ ipAllowlist: ["192.0.2.7/32"] }) }));
    const removed = find(listed.sensitivities, "ip-allowlist");
    expect(removed).toMatchObject({ change: "remove", moves: [{ field: "reachableFrom", from: "1 network", to: "anywhere" }], riskScoreDelta: SCORE_WEIGHTS.reach });
  });

  it("limits the configuration lacks are proposed; so is a rotation policy for a key that never expires", () => {
    const p = riskProfile(inputs({ limits: [], policy: policyOf(HOLD_OVER_1000) }));
    const orders = find(p.sensitivities, "limit orders-1m");
    expect(orders.change).toBe("add");
    expect(orders.moves).toContainEqual({ field: "maxOrdersPerHour", from: null, to: 100 + 60 * 100 });
    const weight = find(p.sensitivities, "limit key-weight-1m");
    expect(weight.moves).toContainEqual({ field: "maxWithdrawalPerHour", from: null, to: 1000 * 7320 });
    expect(weight.moves).toContainEqual({ field: "maxOrdersPerHour", from: null, to: 73_200 });
    // Both sides are past the saturation point (a million an hour): the score does not move.
    expect(weight.riskScoreDelta).toBe(0);
    // With the init limits in place, nothing is proposed.
    expect(riskProfile(inputs()).sensitivities.filter((x) => x.change === "add" && x.control.startsWith("limit "))).toEqual([]);
    const rotation = find(p.sensitivities, "rotation");
    expect(rotation).toMatchObject({ change: "add", moves: [], riskScoreDelta: -Math.round(10 * p.scoreParts.hygiene / 2) / 10 });
    expect(riskProfile(inputs({ key: key({ maxAgeMs: 90 * 86_400_000 }) })).sensitivities.map((x) => x.control)).not.toContain("rotation");
  });

  it("a profile without sensitivities when asked (the ranking's cheap pass)", () => {
    expect(riskProfile(inputs(), { sensitivities: false }).sensitivities).toEqual([]);
  });
});
