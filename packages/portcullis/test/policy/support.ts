/**
 * Test support for the policy: a real SQLite store on a temporary file, a frozen clock, reference
 * prices, and a small but real ChangeHolder (the hold service lands separately): it keeps each
 * held change with its payload and releases it exactly once, to the releaser registered for its kind.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ChangeHolder, ChangeKind, HeldTicket, PolicyDecision, PolicySubject } from "../../src/contract/policy.js";
import { PolicyService } from "../../src/governance/policy-service.js";
import { StaticPrices } from "../../src/operations/prices.js";
import { SqliteStore } from "../../src/storage/sqlite/store.js";
import { FakeClock } from "../support/harness.js";

export interface Held {
  readonly operationId: string;
  readonly subject: PolicySubject;
  readonly decision: PolicyDecision;
  readonly payload: unknown;
  readonly owner: string | null;
  state: "pending" | "released" | "failed";
}

export class TestHolder implements ChangeHolder {
  readonly held = new Map<string, Held>();
  private readonly releasers = new Map<ChangeKind, (payload: unknown) => Promise<unknown>>();

  holdChange(operationId: string, subject: PolicySubject, decision: PolicyDecision, payload: unknown, initiatorOwner: string | null): Promise<HeldTicket> {
    // The payload is JSON: keep what a store would keep.
    this.held.set(operationId, { operationId, subject, decision, payload: JSON.parse(JSON.stringify(payload)) as unknown, owner: initiatorOwner, state: "pending" });
    const action = decision.action;
    const approvals = action.type === "hold" ? action.approvals.map((t) => ({ ...t, have: 0 })) : [];
    const delay = action.type === "hold" ? action.delayMs : 0;
    return Promise.resolve({ operationId, state: "pending", required: { approvals, notBefore: delay === 0 ? null : subject.at + delay, expiresAt: subject.at + 86_400_000 } });
  }

  onRelease(kind: ChangeKind, release: (payload: unknown) => Promise<unknown>): void {
    this.releasers.set(kind, release);
  }

  /** Releases a held change once; a second call is refused. */
  async release(operationId: string): Promise<unknown> {
    const h = this.held.get(operationId);
    if (h === undefined || h.state !== "pending") throw new Error(`operation ${operationId} is not pending`);
    const releaser = this.releasers.get(h.subject.operation.kind as ChangeKind);
    if (releaser === undefined) throw new Error("no releaser");
    try {
      const out = await releaser(h.payload);
      h.state = "released";
      return out;
    } catch (err) {
      h.state = "failed";
      throw err;
    }
  }
}

export const PRICES = { assets: { USDT: "1", USDC: "1", BTC: "60000", ETH: "3000" }, symbols: { BTCUSDT: "60000" } };

export interface PolicyFixture {
  readonly dir: string;
  readonly store: SqliteStore;
  readonly clock: FakeClock;
  readonly prices: StaticPrices;
  readonly holder: TestHolder;
  readonly policy: PolicyService;
  cleanup(): Promise<void>;
}

export async function policyFixture(options: { holder?: boolean } = {}): Promise<PolicyFixture> {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-policy-"));
  const store = new SqliteStore(join(dir, "portcullis.db"));
  const clock = new FakeClock();
  const prices = new StaticPrices(PRICES);
  const holder = new TestHolder();
  const policy = await PolicyService.open({ store, prices, now: clock.now, pollIntervalMs: 0, holder: options.holder === false ? null : holder });
  return {
    dir,
    store,
    clock,
    prices,
    holder,
    policy,
    async cleanup() {
      policy.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const OPERATOR = { actor: "key:op", account: "ops", keyId: "op", client: "10.0.0.1", owner: "olivia" } as const;
export const CLI_USER = { actor: "cli:test", account: null, keyId: null, client: null, owner: null } as const;
