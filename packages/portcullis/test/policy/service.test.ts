/**
 * The policy service over a real SQLite store: velocity across many small withdrawals per key and
 * per account with a frozen clock (the window's edges; `forget` gives the room back; concurrent
 * decisions on one store and on two stores of one file never overshoot a cap); the address book's
 * cooldown to the millisecond and immediate removal, read by the destination conditions; applying
 * a policy allowed, blocked and held (released exactly once, the exact document held); versions
 * refreshed from another process's apply; every change audited in its own transaction.
 */
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { PolicySubject, PolicyDecision } from "../../src/contract/policy.js";
import { AddressBook } from "../../src/governance/address-book.js";
import { PolicyService } from "../../src/governance/policy-service.js";
import { parseDecimal } from "../../src/operations/decimal.js";
import { SqliteStore } from "../../src/storage/sqlite/store.js";
import { CLI_USER, OPERATOR, type PolicyFixture, policyFixture } from "./support.js";

const H = 3_600_000;
const CATCH_ALL = { name: "rest", action: { type: "allow" } };

let f: PolicyFixture;
beforeEach(async () => {
  f = await policyFixture();
});
afterEach(async () => {
  await f.cleanup();
});

function withdrawal(amount: string, more: Partial<PolicySubject> = {}, asset = "USDT", address = "TADDR1"): PolicySubject {
  const d = parseDecimal(amount);
  if (d === null) throw new Error(amount);
  return { operation: { kind: "withdraw", asset, amount: d, address, addressName: null, network: null, tag: null }, account: "acme", keyId: "k1", client: "10.0.0.1", at: f.clock.ms, ...more };
}

async function apply(rules: unknown[], service = f.policy): Promise<void> {
  const out = await service.apply({ rules: [...rules, CATCH_ALL] }, OPERATOR);
  expect(out.state).toBe("applied");
}

let refs = 0;
const ref = (): string => `op-${++refs}`;

function auditEvents(store = f.store): { event: string; detail?: Record<string, unknown> }[] {
  return store.audit.query({ limit: 1000 }).map((r) => JSON.parse(r.entry) as { event: string; detail?: Record<string, unknown> });
}

describe("velocity", () => {
  const CAP = { name: "cap", match: { kind: ["withdraw"], velocity: { window: "24h", per: "key", over: "5000" } }, action: { type: "block", reason: "daily cap" } };

  it("across many small withdrawals per key: exactly what fits under the cap passes", async () => {
    await apply([CAP]);
    const decisions: string[] = [];
    for (let i = 0; i < 101; i++) {
      decisions.push((await f.policy.decide(withdrawal("50"), ref())).rule);
      f.clock.advance(60_000);
    }
    expect(decisions.slice(0, 100).every((r) => r === "rest")).toBe(true);
    expect(decisions[100]).toBe("cap");
    // Blocked decisions are not recorded: a smaller one still does not fit, the key is at 5000.
    expect((await f.policy.decide(withdrawal("0.01"), ref())).rule).toBe("cap");
    // Another key of the account has its own room.
    expect((await f.policy.decide(withdrawal("50", { keyId: "k2" }), ref())).rule).toBe("rest");
  });

  it("the window's edge: a withdrawal counts until exactly one window has passed", async () => {
    await apply([CAP]);
    const start = f.clock.ms;
    expect((await f.policy.decide(withdrawal("5000"), ref())).rule).toBe("rest");
    f.clock.ms = start + 24 * H - 1;
    expect((await f.policy.decide(withdrawal("1", { at: f.clock.ms }), ref())).rule).toBe("cap");
    f.clock.ms = start + 24 * H;
    expect((await f.policy.decide(withdrawal("5000", { at: f.clock.ms }), ref())).rule).toBe("rest");
  });

  it("per account: the keys of an account share its room", async () => {
    await apply([{ name: "acct", match: { velocity: { window: "1h", per: "account", over: "1000" } }, action: { type: "hold", approvals: [{ group: "treasury", count: 1 }] } }]);
    for (const key of ["k1", "k2", "k3", "k4"]) expect((await f.policy.decide(withdrawal("250", { keyId: key }), ref())).rule).toBe("rest");
    const held = await f.policy.decide(withdrawal("0.5", { keyId: "k5" }), "held-1");
    expect(held.rule).toBe("acct");
    // Held operations count too: recorded under their ref.
    expect((await f.policy.decide(withdrawal("0.5", { account: "other" }), ref())).rule).toBe("rest");
    expect((await f.policy.decide(withdrawal("0.5", { keyId: "k6" }), ref())).rule).toBe("acct");
  });

  it("forget gives the room back", async () => {
    await apply([CAP]);
    expect((await f.policy.decide(withdrawal("4000"), "w-1")).rule).toBe("rest");
    expect((await f.policy.decide(withdrawal("2000"), "w-2")).rule).toBe("cap");
    await f.policy.forget("w-1");
    expect((await f.policy.decide(withdrawal("2000"), "w-3")).rule).toBe("rest");
    await f.policy.forget("never-recorded");
  });

  it("an amount without a reference price counts as unknown: the window is over every cap until it passes", async () => {
    await apply([CAP]);
    expect((await f.policy.decide(withdrawal("1", {}, "DOGE"), ref())).rule).toBe("cap"); // unknown value: blocked, not recorded
    f.prices.set("asset", "DOGE", { coefficient: 1n, scale: 1 });
    expect((await f.policy.decide(withdrawal("10", {}, "DOGE"), ref())).rule).toBe("rest");
  });

  it("two concurrent decisions on one store never both pass a cap only one fits under", async () => {
    await apply([CAP]);
    const results = await Promise.all(Array.from({ length: 10 }, () => f.policy.decide(withdrawal("600"), ref())));
    expect(results.filter((d) => d.rule === "rest")).toHaveLength(8);
    expect(results.filter((d) => d.rule === "cap")).toHaveLength(2);
  });

  it("two stores on one SQLite file (two processes' connections) share the ledger atomically", async () => {
    await apply([CAP]);
    const second = new SqliteStore(join(f.dir, "portcullis.db"));
    const other = await PolicyService.open({ store: second, prices: f.prices, now: f.clock.now, pollIntervalMs: 0 });
    try {
      expect(other.version).toBe(1);
      const decisions = await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? f.policy : other).decide(withdrawal("1000"), ref())));
      expect(decisions.filter((d) => d.rule === "rest")).toHaveLength(5);
    } finally {
      other.close();
      await second.close();
    }
  });

  it("the dry run reads the ledger and records nothing", async () => {
    await apply([CAP]);
    await f.policy.decide(withdrawal("4500"), ref());
    const e = await f.policy.explain(withdrawal("600"));
    expect(e.decision.rule).toBe("cap");
    expect(e.trace[0]?.because).toEqual(["kind withdraw is in [withdraw]", "4500 recorded for key k1 in the last 24h + 600 = 5100 is over 5000"]);
    expect((await f.policy.decide(withdrawal("500"), ref())).rule).toBe("rest");
  });
});

describe("the address book", () => {
  let book: AddressBook;
  beforeEach(() => {
    book = new AddressBook({ store: f.store, policy: f.policy, holder: f.holder, cooldownMs: 24 * H, now: f.clock.now });
  });

  const ENTRY = { account: "acme", asset: "usdt", address: "TADDR1", network: "TRX", label: "cold wallet" };

  it("a new address is known only from added + cooldown, to the millisecond; removal is immediate", async () => {
    await apply([
      { name: "new", match: { kind: ["withdraw"], destination: "new" }, action: { type: "block", reason: "not in the book" } },
    ]);
    const added = await book.add(ENTRY, OPERATOR, null);
    if (added.state !== "applied") throw new Error("expected applied");
    expect(added.result).toMatchObject({ account: "acme", asset: "USDT", network: "TRX", state: "cooling", usableFrom: f.clock.ms + 24 * H });
    const trx = (more: Partial<PolicySubject> = {}): PolicySubject => {
      const s = withdrawal("10", { at: f.clock.ms, ...more });
      return { ...s, operation: { ...s.operation, kind: "withdraw", network: "TRX" } as PolicySubject["operation"] };
    };
    expect((await f.policy.decide(trx(), ref())).rule).toBe("new");
    f.clock.advance(24 * H - 1);
    expect((await f.policy.decide(trx(), ref())).rule).toBe("new");
    f.clock.advance(1);
    expect((await f.policy.decide(trx(), ref())).rule).toBe("rest");
    expect((await book.list({ account: "acme" }, null))[0]?.state).toBe("usable");
    // Another network, another account, another tag: not this entry.
    const other = withdrawal("10", { at: f.clock.ms });
    expect((await f.policy.decide({ ...other, operation: { ...other.operation, kind: "withdraw", network: "ETH" } as PolicySubject["operation"] }, ref())).rule).toBe("new");
    expect((await f.policy.decide(trx({ account: "other" }), ref())).rule).toBe("new");
    expect((await f.policy.decide({ ...trx(), operation: { ...trx().operation, tag: "123" } as PolicySubject["operation"] }, ref())).rule).toBe("new");
    // Without a network the withdrawal matches the entry.
    expect((await f.policy.decide(withdrawal("10", { at: f.clock.ms }), ref())).rule).toBe("rest");
    const removed = await book.remove(added.result.id, OPERATOR, null);
    expect(removed.state).toBe("removed");
    expect((await f.policy.decide(trx(), ref())).rule).toBe("new");
    await expect(book.remove(added.result.id, OPERATOR, null)).rejects.toMatchObject({ code: "ADDRESS_NOT_FOUND" });
    const events = auditEvents();
    expect(events.filter((e) => e.event.startsWith("address."))).toMatchObject([
      { event: "address.add", detail: { id: added.result.id, asset: "USDT", address: "TADDR1", network: "TRX" } },
      { event: "address.remove", detail: { id: added.result.id } },
    ]);
  });

  it("the same address twice is ADDRESS_EXISTS; bad input is VALIDATION_FAILED with its field", async () => {
    await book.add(ENTRY, OPERATOR, null);
    await expect(book.add(ENTRY, OPERATOR, null)).rejects.toMatchObject({ code: "ADDRESS_EXISTS" });
    expect((await book.add({ ...ENTRY, network: "ETH" }, OPERATOR, null)).state).toBe("applied");
    await expect(book.add({ ...ENTRY, address: "has space" }, OPERATOR, null)).rejects.toMatchObject({ code: "VALIDATION_FAILED", fields: { address: expect.any(String) as unknown } });
    await expect(book.add({ ...ENTRY, extra: 1 }, OPERATOR, null)).rejects.toMatchObject({ code: "VALIDATION_FAILED", fields: { extra: "unknown field" } });
    await expect(book.add({ ...ENTRY, label: "two\nlines" }, OPERATOR, null)).rejects.toMatchObject({ code: "VALIDATION_FAILED", fields: { label: expect.any(String) as unknown } });
  });

  it("an account admin reaches its own account's book only", async () => {
    const own = await book.add(ENTRY, OPERATOR, null);
    if (own.state !== "applied") throw new Error("expected applied");
    await expect(book.add({ ...ENTRY, account: "other" }, OPERATOR, "acme")).rejects.toMatchObject({ code: "ADMIN_GRANT_EXCEEDED" });
    expect(await book.list({ account: "acme" }, "other")).toEqual([]);
    await expect(book.remove(own.result.id, OPERATOR, "other")).rejects.toMatchObject({ code: "ADDRESS_NOT_FOUND" });
    expect(await book.list({}, "acme")).toHaveLength(1);
  });

  it("additions are governed: blocked, or held and added (cooling from then) when released", async () => {
    await apply([
      { name: "no btc", match: { kind: ["address.add"], asset: ["BTC"] }, action: { type: "block", reason: "no BTC withdrawals" } },
      { name: "approve", match: { kind: ["address.add"] }, action: { type: "hold", approvals: [{ group: "treasury", count: 1 }] } },
    ]);
    await expect(book.add({ ...ENTRY, asset: "BTC" }, OPERATOR, null)).rejects.toMatchObject({ code: "POLICY_BLOCKED", message: expect.stringMatching(/rule "no btc" of policy version 1 blocks .*no BTC withdrawals/) as unknown });
    const held = await book.add(ENTRY, OPERATOR, null);
    if (held.state !== "held") throw new Error("expected held");
    expect(held.ticket).toMatchObject({ state: "pending", required: { approvals: [{ group: "treasury", count: 1, have: 0 }] } });
    expect(f.holder.held.get(held.ticket.operationId)?.owner).toBe("olivia");
    expect(await book.list({}, null)).toEqual([]);
    f.clock.advance(H);
    const released = (await f.holder.release(held.ticket.operationId)) as { addedAt: number; usableFrom: number; addedBy: string };
    expect(released).toMatchObject({ addedAt: f.clock.ms, usableFrom: f.clock.ms + 24 * H, addedBy: "key:op" });
    await expect(f.holder.release(held.ticket.operationId)).rejects.toThrow(/not pending/);
    expect(await book.list({}, null)).toHaveLength(1);
  });

  it("a held change without a hold service is refused (fail closed)", async () => {
    await apply([{ name: "approve", match: { kind: ["address.add"] }, action: { type: "hold", delay: "1h" } }]);
    const bare = new AddressBook({ store: f.store, policy: f.policy, now: f.clock.now });
    await expect(bare.add(ENTRY, CLI_USER, null)).rejects.toMatchObject({ code: "POLICY_HOLD_UNAVAILABLE" });
  });
});

describe("applying a policy", () => {
  it("version 0 is the built-in catch-all allow; an allowed change is in force at once, audited", async () => {
    expect(await f.policy.show()).toMatchObject({ version: 0, createdBy: "built-in", document: { rules: [{ name: "default allow", match: {}, action: { type: "allow" } }] } });
    expect(f.policy.judges("withdraw")).toBe(false);
    const out = await f.policy.apply({ rules: [{ name: "no withdrawals", match: { kind: ["withdraw"] }, action: { type: "block" } }, CATCH_ALL] }, CLI_USER);
    expect(out).toMatchObject({ state: "applied", decision: { rule: "default allow", version: 0 }, result: { version: 1, rules: 2, createdBy: "cli:test" } });
    expect(f.policy.judges("withdraw")).toBe(true);
    expect((await f.policy.decide(withdrawal("1"), ref())).rule).toBe("no withdrawals");
    const versions = await f.policy.versions();
    expect(versions.map((v) => v.version)).toEqual([1, 0]);
    const events = auditEvents().filter((e) => e.event === "policy.change");
    expect(events).toMatchObject([{ detail: { version: 1, previous: 0, rule: "default allow", digest: expect.stringMatching(/^[0-9a-f]{64}$/) as unknown } }]);
  });

  it("a change the version in force blocks is POLICY_BLOCKED, and nothing changes", async () => {
    await apply([{ name: "frozen", match: { kind: ["policy.change"] }, action: { type: "block", reason: "change freeze" } }]);
    await expect(f.policy.apply({ rules: [CATCH_ALL] }, OPERATOR)).rejects.toMatchObject({ code: "POLICY_BLOCKED", message: expect.stringMatching(/change freeze/) as unknown });
    expect(f.policy.version).toBe(1);
  });

  it("a held change activates exactly the document held, once; a stale one is POLICY_VERSION_CONFLICT", async () => {
    await apply([{ name: "two people", match: { kind: ["policy.change"], source: { notIn: ["192.168.0.0/16"] } }, action: { type: "hold", approvals: [{ group: "risk", count: 2 }], delay: "1h" } }]);
    const next = { description: "next", rules: [{ name: "hold withdrawals", match: { kind: ["withdraw"] }, action: { type: "hold", approvals: [{ group: "treasury", count: 1 }] } }, CATCH_ALL] };
    const held = await f.policy.apply(next, OPERATOR);
    if (held.state !== "held") throw new Error("expected held");
    const kept = f.holder.held.get(held.ticket.operationId);
    expect(kept?.subject.operation).toMatchObject({ kind: "policy.change", version: 2, rules: 2 });
    expect(held.ticket.required.notBefore).toBe(f.clock.ms + H);
    expect(f.policy.version).toBe(1);
    const other = await f.policy.apply({ rules: [CATCH_ALL] }, { ...OPERATOR, client: "192.168.1.1" });
    expect(other.state).toBe("applied");
    // Version 2 exists now: the held change would also be version 2.
    await expect(f.holder.release(held.ticket.operationId)).rejects.toMatchObject({ code: "POLICY_VERSION_CONFLICT" });
    // Version 2 (a catch-all allow) is in force now: the same document, applied again, is version 3 at once.
    const again = await f.policy.apply(next, OPERATOR);
    expect(again).toMatchObject({ state: "applied", result: { version: 3 } });
    expect((await f.policy.show(3)).digest).toBe(kept?.subject.operation.kind === "policy.change" ? kept.subject.operation.digest : "");
  });

  it("released, the held document is in force, with its digest", async () => {
    await apply([{ name: "approve", match: { kind: ["policy.change"] }, action: { type: "hold", approvals: [{ group: "risk", count: 1 }] } }]);
    const held = await f.policy.apply({ rules: [{ name: "x", match: { kind: ["transfer"] }, action: { type: "block" } }, CATCH_ALL] }, OPERATOR);
    if (held.state !== "held") throw new Error("expected held");
    const view = (await f.holder.release(held.ticket.operationId)) as { version: number; digest: string; createdBy: string };
    expect(view).toMatchObject({ version: 2, createdBy: "key:op" });
    expect(f.policy.version).toBe(2);
    expect(f.policy.judges("transfer")).toBe(true);
  });

  it("an invalid document is VALIDATION_FAILED with its paths; an unknown version is POLICY_VERSION_NOT_FOUND", async () => {
    await expect(f.policy.apply({ rules: [{ name: "a", match: { kind: ["withdraw"] }, action: { type: "allow" } }] }, OPERATOR)).rejects.toMatchObject({
      code: "VALIDATION_FAILED",
      fields: { "rules[0].match": expect.stringMatching(/catch-all/) as unknown },
    });
    await expect(f.policy.show(9)).rejects.toMatchObject({ code: "POLICY_VERSION_NOT_FOUND" });
    await expect(f.policy.explain(withdrawal("1"), 9)).rejects.toMatchObject({ code: "POLICY_VERSION_NOT_FOUND" });
  });

  it("another process's apply is seen at the next decision (and the next poll)", async () => {
    const second = new SqliteStore(join(f.dir, "portcullis.db"));
    const other = await PolicyService.open({ store: second, prices: f.prices, now: f.clock.now, pollIntervalMs: 0 });
    try {
      await apply([{ name: "stop", match: { kind: ["withdraw"] }, action: { type: "block" } }], other);
      // judges() answers from the cached version until the next poll (refresh, which the timer runs)…
      expect(f.policy.judges("withdraw")).toBe(false);
      const d: PolicyDecision = await f.policy.decide(withdrawal("1"), ref());
      expect(d).toMatchObject({ rule: "stop", version: 1 });
      // …and a decision refreshes first: the version in force decides.
      expect(f.policy.judges("withdraw")).toBe(true);
      await apply([], other);
      expect(f.policy.judges("withdraw")).toBe(true);
      await f.policy.refresh();
      expect(f.policy.judges("withdraw")).toBe(false);
      expect(f.policy.version).toBe(2);
    } finally {
      other.close();
      await second.close();
    }
  });
});
