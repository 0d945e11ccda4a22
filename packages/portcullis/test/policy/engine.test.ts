/**
 * The engine, pure: first match wins; each condition at its edges (kind, account, key, asset,
 * source in / notIn, amount over in reference value and in asset units, destination new / known /
 * younger than, velocity); holds with two tiers and a delay; an unknown price fails closed; the
 * dry-run trace names every rule evaluated and a reason per condition; `judges`.
 */
import { describe, expect, it } from "vitest";
import type { Decimal, Withdraw } from "../../src/contract/operations.js";
import type { GovernedOperation, PolicySubject } from "../../src/contract/policy.js";
import { valueOrThrow } from "../../src/errors/result.js";
import { parseDecimal } from "../../src/operations/decimal.js";
import { StaticPrices } from "../../src/operations/prices.js";
import { parsePolicyDocument } from "../../src/policy/document.js";
import { CompiledPolicy, type PolicyFacts } from "../../src/policy/engine.js";
import { parseOperationInput } from "../../src/policy/operation-input.js";
import { PRICES } from "./support.js";

const AT = Date.UTC(2026, 10, 22, 12);
const H = 3_600_000;

function compile(rules: unknown[], prices = new StaticPrices(PRICES)): CompiledPolicy {
  return new CompiledPolicy(valueOrThrow(parsePolicyDocument({ rules: [...rules, { name: "rest", action: { type: "allow" } }] })), 7, "d".repeat(64), prices);
}

function dec(text: string): Decimal {
  const d = parseDecimal(text);
  if (d === null) throw new Error(text);
  return d;
}

function withdraw(amount: string, asset = "USDT", more: Partial<Withdraw> = {}): Withdraw {
  return { kind: "withdraw", asset, amount: dec(amount), address: "TADDR1", addressName: null, network: null, tag: null, ...more };
}

function subject(operation: GovernedOperation, more: Partial<PolicySubject> = {}): PolicySubject {
  return { operation, account: "acme", keyId: "k1", client: "10.1.2.3", at: AT, ...more };
}

const NONE: PolicyFacts = { destination: null };

function ruleOf(p: CompiledPolicy, s: PolicySubject, facts: PolicyFacts = NONE): string {
  return p.decide(s, facts).rule;
}

describe("evaluation", () => {
  it("first match wins, and the catch-all takes the rest", () => {
    const p = compile([
      { name: "w1", match: { kind: ["withdraw"] }, action: { type: "block" } },
      { name: "w2", match: { kind: ["withdraw"] }, action: { type: "allow" } },
    ]);
    expect(p.decide(subject(withdraw("1")), NONE)).toEqual({ action: { type: "block", reason: null }, rule: "w1", version: 7 });
    expect(ruleOf(p, subject({ kind: "order.cancel", symbol: null, orderIds: ["1"], clientOrderId: null }))).toBe("rest");
  });

  it("kind, account, key and asset match by list", () => {
    const p = compile([
      { name: "acct", match: { account: ["acme"], kind: ["transfer"] }, action: { type: "block" } },
      { name: "key", match: { key: ["k2"] }, action: { type: "block" } },
      { name: "asset", match: { asset: ["btc"] }, action: { type: "block" } },
    ]);
    const transfer: GovernedOperation = { kind: "transfer", asset: "USDT", amount: dec("1"), from: "MAIN", to: "FUTURES" };
    expect(ruleOf(p, subject(transfer))).toBe("acct");
    expect(ruleOf(p, subject(transfer, { account: "other" }))).toBe("rest");
    expect(ruleOf(p, subject(withdraw("1"), { keyId: "k2" }))).toBe("key");
    expect(ruleOf(p, subject(withdraw("1"), { keyId: null }))).toBe("rest");
    expect(ruleOf(p, subject(withdraw("1", "BTC")))).toBe("asset");
    expect(ruleOf(p, subject({ kind: "other" }))).toBe("rest");
  });

  it("an address addition's account condition looks at the book's account", () => {
    const p = compile([{ name: "acme book", match: { kind: ["address.add"], account: ["acme"] }, action: { type: "hold", approvals: [{ group: "ops", count: 1 }] } }]);
    const add: GovernedOperation = { kind: "address.add", account: "acme", asset: "USDT", address: "T1", network: null, tag: null, label: "" };
    expect(ruleOf(p, subject(add, { account: "ops" }))).toBe("acme book");
    expect(ruleOf(p, subject({ ...add, account: "other" }, { account: "acme" }))).toBe("rest");
  });

  it("source: in a block, outside all of them; no address is outside (fail closed)", () => {
    const p = compile([
      { name: "office", match: { source: ["10.0.0.0/8", "2001:db8::/32"], kind: ["transfer"] }, action: { type: "allow" } },
      { name: "outside", match: { source: { notIn: ["10.0.0.0/8"] } }, action: { type: "hold", delay: "1h" } },
    ]);
    const transfer: GovernedOperation = { kind: "transfer", asset: "USDT", amount: dec("1"), from: "a", to: "b" };
    expect(ruleOf(p, subject(transfer))).toBe("office");
    expect(ruleOf(p, subject(transfer, { client: "2001:db8::1" }))).toBe("office");
    expect(ruleOf(p, subject(transfer, { client: "11.0.0.1" }))).toBe("outside");
    expect(ruleOf(p, subject(withdraw("1"), { client: "10.255.255.255" }))).toBe("rest");
    expect(ruleOf(p, subject(withdraw("1"), { client: null }))).toBe("outside");
    expect(ruleOf(p, subject(withdraw("1"), { client: "not an ip" }))).toBe("outside");
  });

  it("amount over, in the reference currency: strictly over", () => {
    const p = compile([{ name: "big", match: { amount: { over: "1000" } }, action: { type: "hold", approvals: [{ group: "treasury", count: 2 }] } }]);
    expect(ruleOf(p, subject(withdraw("1000")))).toBe("rest");
    expect(ruleOf(p, subject(withdraw("1000.000001")))).toBe("big");
    expect(ruleOf(p, subject(withdraw("0.0166", "BTC")))).toBe("rest"); // 996
    expect(ruleOf(p, subject(withdraw("0.0167", "BTC")))).toBe("big"); // 1002
    // Kinds without an amount are not "over" anything.
    expect(ruleOf(p, subject({ kind: "key.revoke", keyId: null }))).toBe("rest");
  });

  it("an amount whose value is unknown is over every limit (fail closed)", () => {
    const p = compile([{ name: "big", match: { amount: { over: "1000000000" } }, action: { type: "block" } }]);
    expect(ruleOf(p, subject(withdraw("0.00000001", "DOGE")))).toBe("big");
    const e = p.explain(subject(withdraw("1", "DOGE")), NONE);
    expect(e.trace[0]?.because).toEqual(["the value of 1 DOGE is unknown (no reference price): taken as over 1000000000 (fail closed)"]);
  });

  it("amount over in the asset's own units", () => {
    const p = compile([{ name: "btc", match: { asset: ["BTC"], amount: { over: "2", unit: "asset" } }, action: { type: "block" } }]);
    expect(ruleOf(p, subject(withdraw("2", "BTC")))).toBe("rest");
    expect(ruleOf(p, subject(withdraw("2.00000001", "BTC")))).toBe("btc");
  });

  it("an order's value: notional × the quote's reference value, or unknown", () => {
    const p = compile([{ name: "big order", match: { kind: ["order.place"], amount: { over: "100000" } }, action: { type: "hold", delay: "5m" } }]);
    const order = (json: Record<string, unknown>): GovernedOperation => valueOrThrow(parseOperationInput({ kind: "order.place", side: "buy", ...json }));
    expect(ruleOf(p, subject(order({ symbol: "BTCUSDT", quantity: "1", price: "60000" })))).toBe("rest");
    expect(ruleOf(p, subject(order({ symbol: "BTCUSDT", quantity: "2", price: "60000" })))).toBe("big order");
    expect(ruleOf(p, subject(order({ symbol: "BTCUSDT", quantity: "1" })))).toBe("rest"); // market: × the symbol's reference price
    expect(ruleOf(p, subject(order({ symbol: "XYZABC", quantity: "1", price: "1" })))).toBe("big order"); // unknown quote: fail closed
  });

  it("destination: new, known (past its cooldown), younger than", () => {
    const p = compile([
      { name: "new", match: { destination: "new", asset: ["BTC"] }, action: { type: "block", reason: "add it to the book first" } },
      { name: "young", match: { destination: { youngerThan: "7d" } }, action: { type: "hold", delay: "1h" } },
      { name: "known", match: { destination: "known" }, action: { type: "allow" } },
    ]);
    const btc = subject(withdraw("1", "BTC"));
    expect(ruleOf(p, btc, { destination: null })).toBe("new");
    // Cooling down until one ms from now: still new; at its usable moment: known.
    expect(ruleOf(p, btc, { destination: { addedAt: AT - 24 * H + 1, usableFrom: AT + 1 } })).toBe("new");
    expect(ruleOf(p, btc, { destination: { addedAt: AT - 24 * H, usableFrom: AT } })).toBe("young");
    const usdt = subject(withdraw("1"));
    expect(ruleOf(p, usdt, { destination: null })).toBe("young");
    expect(ruleOf(p, usdt, { destination: { addedAt: AT - 7 * 24 * H + 1, usableFrom: AT - 6 * 24 * H } })).toBe("young");
    expect(ruleOf(p, usdt, { destination: { addedAt: AT - 7 * 24 * H, usableFrom: AT - 6 * 24 * H } })).toBe("known");
    // Only withdrawals have a destination.
    expect(ruleOf(p, subject({ kind: "transfer", asset: "BTC", amount: dec("1"), from: "a", to: "b" }))).toBe("rest");
  });

  it("velocity: recorded + this one, strictly over; unknown sums and values fail closed", () => {
    const p = compile([
      { name: "key day", match: { kind: ["withdraw"], velocity: { window: "24h", per: "key", over: "5000" } }, action: { type: "hold", approvals: [{ group: "treasury", count: 1 }] } },
      { name: "account hour", match: { velocity: { window: "1h", per: "account", over: "100" }, asset: ["ETH"] }, action: { type: "block" } },
    ]);
    expect(p.windows).toEqual([{ per: "key", windowMs: 24 * H }, { per: "account", windowMs: H }]);
    const s = subject(withdraw("1000"));
    expect(ruleOf(p, s, { destination: null, sums: [dec("4000"), dec("0")] })).toBe("rest");
    expect(ruleOf(p, s, { destination: null, sums: [dec("4000.01"), dec("0")] })).toBe("key day");
    expect(ruleOf(p, s, { destination: null, sums: [null, dec("0")] })).toBe("key day");
    expect(ruleOf(p, s, NONE)).toBe("key day"); // sums not read: fail closed
    expect(ruleOf(p, subject(withdraw("0.01", "ETH")), { destination: null, sums: [dec("0"), dec("70")] })).toBe("rest"); // 30 + 70 is not over 100
    expect(ruleOf(p, subject(withdraw("0.011", "ETH")), { destination: null, sums: [dec("0"), dec("70")] })).toBe("account hour");
    // A change made on the data directory has no key: nothing recorded for it.
    expect(ruleOf(p, subject(withdraw("1000"), { keyId: null }), NONE)).toBe("rest");
  });

  it("holds carry their tiers and delay, frozen", () => {
    const p = compile([{ name: "two tiers", match: { kind: ["withdraw"] }, action: { type: "hold", approvals: [{ group: "treasury", count: 2 }, { group: "risk", count: 1 }], delay: "10m" } }]);
    const d = p.decide(subject(withdraw("1")), NONE);
    expect(d).toEqual({ action: { type: "hold", approvals: [{ group: "treasury", count: 2 }, { group: "risk", count: 1 }], delayMs: 600_000 }, rule: "two tiers", version: 7 });
    expect(Object.isFrozen(d)).toBe(true);
    expect(Object.isFrozen(d.action)).toBe(true);
  });

  it("judges a kind only when something but allow can come of it", () => {
    const p = compile([
      { name: "w", match: { kind: ["withdraw"], amount: { over: "1" } }, action: { type: "block" } },
      { name: "t", match: { kind: ["transfer"] }, action: { type: "allow" } },
    ]);
    expect(p.judges("withdraw")).toBe(true);
    expect(p.judges("transfer")).toBe(false);
    expect(p.judges("order.place")).toBe(false);
    const strict = new CompiledPolicy(valueOrThrow(parsePolicyDocument({ rules: [{ name: "no", action: { type: "block" } }] })), 1, "", new StaticPrices());
    expect(strict.judges("order.cancel")).toBe(true);
  });

  it("counts velocity only for kinds a velocity condition applies to (only those write the ledger)", () => {
    const p = compile([
      { name: "cap", match: { kind: ["withdraw"], velocity: { window: "24h", per: "account", over: "5000" } }, action: { type: "block" } },
      { name: "no orders from outside", match: { kind: ["order.place"], source: { notIn: ["10.0.0.0/8"] } }, action: { type: "block" } },
    ]);
    expect(p.judges("order.place")).toBe(true);
    expect(p.countsVelocity("order.place")).toBe(false);
    expect(p.countsVelocity("withdraw")).toBe(true);
    expect(p.countsVelocity("transfer")).toBe(false);
    const any = compile([{ name: "all", match: { velocity: { window: "1h", per: "key", over: "1" } }, action: { type: "block" } }]);
    expect(any.countsVelocity("transfer")).toBe(true);
  });
});

describe("the dry run's trace", () => {
  it("lists every rule up to the match, with a reason per condition", () => {
    const p = compile([
      { name: "orders", match: { kind: ["order.place"] }, action: { type: "block" } },
      { name: "big", match: { kind: ["withdraw"], amount: { over: "2000" } }, action: { type: "block" } },
      { name: "young", match: { kind: ["withdraw"], destination: { youngerThan: "24h" }, source: ["10.0.0.0/8"] }, action: { type: "hold", approvals: [{ group: "ops", count: 1 }] } },
    ]);
    const e = p.explain(subject(withdraw("1500")), { destination: { addedAt: AT - 2 * H, usableFrom: AT - H } });
    expect(e.decision.rule).toBe("young");
    expect(e.trace).toEqual([
      { rule: "orders", matched: false, because: ["kind withdraw is not in [order.place]"] },
      { rule: "big", matched: false, because: ["kind withdraw is in [withdraw]", "amount 1500 USDT, worth 1500 in the reference currency, is not over 2000"] },
      {
        rule: "young",
        matched: true,
        because: ["kind withdraw is in [withdraw]", "source 10.1.2.3 is in [10.0.0.0/8]", "destination TADDR1 added 2 h ago is younger than 24h"],
      },
    ]);
  });

  it("explains the catch-all, velocity sums, and a destination not in the book", () => {
    const p = compile([
      { name: "velocity", match: { velocity: { window: "24h", per: "account", over: "5000" } }, action: { type: "block" } },
      { name: "new", match: { destination: "new", asset: ["BTC"] }, action: { type: "block" } },
    ]);
    const e = p.explain(subject(withdraw("1000")), { destination: null, sums: [dec("3000")] });
    expect(e.trace.map((s) => s.because)).toEqual([
      ["3000 recorded for account acme in the last 24h + 1000 = 4000 is not over 5000"],
      ["asset USDT is not in [BTC]", "destination TADDR1 is not in the account's USDT address book: it is new"],
      ["no conditions: the catch-all matches everything"],
    ]);
    expect(e.decision.rule).toBe("rest");
  });
});

describe("operations written as JSON (dry runs)", () => {
  it("reads each kind's fields and refuses unknown ones", () => {
    expect(valueOrThrow(parseOperationInput({ kind: "withdraw", asset: "usdt", amount: "1.5", address: "T1", network: "TRX" }))).toMatchObject({ kind: "withdraw", asset: "USDT", network: "TRX", tag: null });
    const bad = parseOperationInput({ kind: "withdraw", asset: "USDT", amount: 1.5, address: "T1", memo: "x" });
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.fields).toMatchObject({ amount: expect.any(String) as unknown, memo: expect.any(String) as unknown });
    expect(parseOperationInput({ kind: "launch" }).ok).toBe(false);
  });
});
