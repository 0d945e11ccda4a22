/**
 * Support for the approvals tests: a real data directory (SQLite file, keyring), the hold service
 * over it, a small policy that holds withdrawals (the real engine is another part of issue 14), and
 * approvers with their own Ed25519 keys.
 */
import { newOperationId } from "../../src/contract/policy.js";
import { type KeyObject, generateKeyPairSync, sign } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ApprovalTier, PolicyDecider, PolicyDecision, PolicyExplanation, PolicyKind, PolicySubject } from "../../src/contract/policy.js";
import type { Operation } from "../../src/contract/operations.js";
import { type OpenDataDir as DataDir, initDataDir, openDataDir } from "../../src/core/data-dir.js";
import { approvalMessage, type ApprovalDecision } from "../../src/holds/digest.js";
import { type HeldRequest, HoldService, type HoldServiceOptions, type ReleaseOutcome } from "../../src/holds/service.js";
import { KeyService } from "../../src/keys/service.js";
import { parseCreateKeyInput } from "../../src/keys/input.js";
import { valueOrThrow } from "../../src/errors/result.js";
import { FakeClock } from "../support/harness.js";

/** Holds every withdrawal for `tiers` and `delayMs`; records what it was asked to forget. */
export class HoldWithdrawals implements PolicyDecider {
  readonly decided: string[] = [];
  readonly forgotten: string[] = [];
  constructor(
    public tiers: readonly ApprovalTier[] = [{ group: "treasury", count: 2 }],
    public delayMs = 0,
  ) {}
  judges(kind: PolicyKind): boolean {
    return kind === "withdraw";
  }
  decide(subject: PolicySubject, ref: string): PolicyDecision {
    this.decided.push(ref);
    if (subject.operation.kind !== "withdraw") return { action: { type: "allow" }, rule: "default", version: 0 };
    return { action: { type: "hold", approvals: this.tiers, delayMs: this.delayMs }, rule: "withdrawals", version: 1 };
  }
  explain(subject: PolicySubject): Promise<PolicyExplanation> {
    return Promise.resolve({ decision: this.decide(subject, "explain"), trace: [] });
  }
  forget(ref: string): Promise<void> {
    this.forgotten.push(ref);
    return Promise.resolve();
  }
}

export interface Approver {
  readonly name: string;
  readonly publicPem: string;
  readonly privateKey: KeyObject;
  readonly privatePem: string;
  sign(decision: ApprovalDecision, digest: string): string;
}

export function approver(name: string): Approver {
  const pair = generateKeyPairSync("ed25519");
  return {
    name,
    publicPem: pair.publicKey.export({ type: "spki", format: "pem" }).toString(),
    privateKey: pair.privateKey,
    privatePem: pair.privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    sign: (decision, digest) => sign(null, approvalMessage(decision, digest), pair.privateKey).toString("base64"),
  };
}

export const WITHDRAWAL: Operation = {
  kind: "withdraw",
  asset: "USDT",
  amount: { coefficient: 2500n, scale: 0 },
  address: "0x00000000000000000000000000000000000000aa",
  addressName: null,
  network: "ETH",
  tag: null,
};

export function heldRequest(body = "coin=USDT&amount=2500&address=0xaa&network=ETH"): HeldRequest {
  return { method: "POST", url: "/sapi/v1/capital/withdraw/apply", headers: { "content-type": "application/x-www-form-urlencoded" }, body: Buffer.from(body), clientIp: "127.0.0.1", authority: "gw.test", identity: null };
}

/** What a releaser was handed, in order. */
export class Releases {
  readonly calls: { id: string; request: HeldRequest }[] = [];
  readonly releaser = (request: HeldRequest, row: { id: string }): Promise<ReleaseOutcome> => {
    this.calls.push({ id: row.id, request });
    return Promise.resolve({ status: 200, body: Buffer.from(JSON.stringify({ id: "venue-1" })), contentType: "application/json" });
  };
  count(id: string): number {
    return this.calls.filter((c) => c.id === id).length;
  }
}

export interface HoldsFixture {
  readonly dir: string;
  readonly data: DataDir;
  readonly clock: FakeClock;
  readonly policy: HoldWithdrawals;
  readonly holds: HoldService;
  readonly keys: KeyService;
  /** Another service (another process's) over its own connection to the same data directory. */
  open(options?: Partial<HoldServiceOptions>): Promise<{ data: DataDir; holds: HoldService }>;
  /** A key of `owner` (active), for the initiator. */
  key(owner: string | null): Promise<string>;
  /** Holds a withdrawal initiated by `keyId` as the policy decides. */
  hold(keyId: string, owner: string | null, request?: HeldRequest): Promise<string>;
  cleanup(): Promise<void>;
}

export async function holdsFixture(options: Partial<HoldServiceOptions> = {}, policy = new HoldWithdrawals()): Promise<HoldsFixture> {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-holds-"));
  await initDataDir(dir, "test");
  const data = await openDataDir(dir, { pollIntervalMs: 50 });
  const clock = new FakeClock();
  const make = (d: DataDir, extra: Partial<HoldServiceOptions> = {}): HoldService =>
    new HoldService({ store: d.store.holds, envelope: d.envelope, policy, now: clock.now, pollMs: 1_000_000, ...options, ...extra });
  const holds = make(data);
  const keys = new KeyService({ store: data.store, envelope: data.envelope, environment: "test", now: clock.now });
  const others: DataDir[] = [];
  const services: HoldService[] = [holds];
  return {
    dir,
    data,
    clock,
    policy,
    holds,
    keys,
    async open(extra = {}) {
      const d = await openDataDir(dir, { pollIntervalMs: 50 });
      others.push(d);
      const s = make(d, extra);
      services.push(s);
      return { data: d, holds: s };
    },
    async key(owner) {
      const created = await keys.create(valueOrThrow(parseCreateKeyInput({ account: "acct-1", scopes: ["withdraw"], ...(owner === null ? {} : { owner }) }, clock.ms)), "test");
      return created.key.id;
    },
    async hold(keyId, owner, request = heldRequest()) {
      const id = newOperationId();
      const subject: PolicySubject = { operation: WITHDRAWAL, account: "acct-1", keyId, client: "127.0.0.1", at: clock.ms };
      const decision = policy.decide(subject, id);
      await holds.holdRequest(id, subject, decision, request, owner);
      return id;
    },
    async cleanup() {
      for (const s of services) await s.stop();
      for (const d of others) await d.close();
      await data.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
