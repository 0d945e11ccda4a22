import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { decodeEntry } from "../../src/audit/canonical.js";
import type { AuditSource, StoredEntry } from "../../src/audit/store.js";
import { verifyAudit } from "../../src/audit/verify.js";
import { newOperationId } from "../../src/contract/policy.js";
import { CodedError } from "../../src/errors/catalogue.js";
import { LOCK_AUDIT, schemaLockKey } from "../../src/storage/postgres/migrations.js";
import { PostgresStore, type PostgresStoreOptions } from "../../src/storage/postgres/store.js";
import { SqliteStore } from "../../src/storage/sqlite/store.js";
import type { Advanced, ApproverRow, DurableStore, HeldRow, KeyChange, KeyRow } from "../../src/storage/types.js";
import { keyRecord } from "../support/keys.js";
import { SHARED_POSTGRES_URL, adminQuery, dropSchema, postgresReachable, uniqueSchema } from "../support/postgres.js";
import { IN_CI, loudSkip } from "../support/redis.js";

/**
 * One contract for approvers and held operations (storage/types.ts HoldStore, docs/approvals.md),
 * two stores: SqliteStore (a temp file, emptied before each test) and PostgresStore (one schema for
 * this file, emptied before each test, dropped at the end). A "process" is a store instance with
 * its own connection (SQLite) or pool (PostgreSQL): the races run across two of them. Every method
 * of HoldStore, every refusal, the audit entries written in each transition's transaction (and
 * `verifyAudit` over the chain), the KEK floor over held envelopes, and cancel-on-revoke through
 * the store's key transitions. Times are fixed values; nothing sleeps. Without a PostgreSQL the
 * PostgreSQL half is skipped loudly, except in CI (CI=true), where it fails.
 */

const pgUp = await postgresReachable(SHARED_POSTGRES_URL);
const runPg = pgUp || IN_CI;
if (!runPg) loudSkip("the PostgreSQL half of the holds contract suite", `no PostgreSQL answers at ${SHARED_POSTGRES_URL}`);

const T0 = 1_700_000_000_000;
const HOUR = 3_600_000;
const LEASE = 60_000;

interface Handle {
  readonly s: DurableStore;
  readonly audit: AuditSource;
  close(): Promise<void>;
}

interface Backend {
  readonly name: "sqlite" | "postgres";
  start(): Promise<void>;
  reset(): Promise<void>;
  /** A new instance ("process") on the current data. */
  open(): Promise<Handle>;
  end(): Promise<void>;
}

let sqliteDir: string | null = null;
let sqlitePath = "";
const sqliteBackend: Backend = {
  name: "sqlite",
  start: () => Promise.resolve(),
  reset: () => {
    if (sqliteDir !== null) rmSync(sqliteDir, { recursive: true, force: true });
    sqliteDir = mkdtempSync(join(tmpdir(), "pc-holds-contract-"));
    sqlitePath = join(sqliteDir, "portcullis.db");
    return Promise.resolve();
  },
  open: () => {
    const store = new SqliteStore(sqlitePath);
    return Promise.resolve({ s: store, audit: store.audit, close: () => store.close() });
  },
  end: () => {
    if (sqliteDir !== null) rmSync(sqliteDir, { recursive: true, force: true });
    return Promise.resolve();
  },
};

const SCHEMA = uniqueSchema("holds");
const openPg = (options: Partial<PostgresStoreOptions> = {}): Promise<PostgresStore> =>
  PostgresStore.open({ url: SHARED_POSTGRES_URL, schema: SCHEMA, poolSize: 6, ...options });
const PG_TABLES = ["keys", "key_changes", "meta", "approvers", "held_operations", "held_approvals", "audit_log", "audit_checkpoints", "audit_keys", "audit_archives", "audit_spill_replays"];
const postgresBackend: Backend = {
  name: "postgres",
  async start() {
    await (await openPg()).close();
  },
  async reset() {
    await adminQuery(SHARED_POSTGRES_URL, `TRUNCATE ${PG_TABLES.map((t) => `${SCHEMA}.${t}`).join(", ")}`);
  },
  async open() {
    const store = await openPg();
    // The whole DurableStore, checked by the compiler.
    const s: DurableStore = store;
    return { s, audit: store.audit, close: () => store.close() };
  },
  end: () => dropSchema(SHARED_POSTGRES_URL, SCHEMA),
};

const backends: Backend[] = runPg ? [sqliteBackend, postgresBackend] : [sqliteBackend];

async function stored(source: AuditSource): Promise<StoredEntry[]> {
  const out: StoredEntry[] = [];
  for await (const chunk of source.entryChunks()) out.push(...chunk);
  return out;
}

/** Each list of an `advance` answer in id order (a backend may answer them in another). */
const sorted = (a: Advanced): Advanced => ({ ready: [...a.ready].sort(), expired: [...a.expired].sort(), unknown: [...a.unknown].sort() });

const events = async (source: AuditSource): Promise<string[]> => (await stored(source)).map((e) => e.event);

/** An envelope's header as custody writes it (format 0x01, KEK version u32be) and 16 bytes of body. */
function envelope(kekVersion: number, fill = 0xab): Buffer {
  const b = Buffer.alloc(23, fill);
  b.writeUInt8(1, 0);
  b.writeUInt32BE(kekVersion, 1);
  return b;
}

let keyCounter = 0;
/** Inserts an active key (an Ed25519 one: no envelope) and answers its id. */
async function key(s: DurableStore, overrides: Partial<KeyRow> = {}): Promise<string> {
  keyCounter++;
  const id = `pck_test_v1_${String(keyCounter).padStart(28, "0")}`;
  const row: KeyRow = {
    ...keyRecord({ id, algorithm: "ed25519", publicKey: "pem", createdAt: T0, updatedAt: T0, account: "acct-1" }),
    secretEnvelope: null,
    passphraseHash: null,
    passphraseEnvelope: null,
    ...overrides,
  };
  await s.keys.insert(row, change("create", T0));
  return id;
}

function change(action: KeyChange["action"], at = T0 + 1_000): KeyChange {
  return { action, actor: "cli:test", at, detail: {} };
}

/** Two tiers: two of treasury, then one of risk. */
const TIERS = [
  { group: "treasury", count: 2 },
  { group: "risk", count: 1 },
];

let holdCounter = 0;
function held(keyId: string | null, overrides: Partial<HeldRow> = {}): HeldRow {
  holdCounter++;
  return {
    id: newOperationId(),
    state: "pending",
    kind: "withdrawal",
    target: "request",
    keyId,
    account: "acct-1",
    owner: "mallory",
    summary: { operation: "withdrawal", asset: "USDT", amount: "2500", address: "0xaa", n: holdCounter },
    policyVersion: 3,
    rule: "large-withdrawals",
    tiers: TIERS,
    notBefore: null,
    expiresAt: T0 + HOUR,
    createdAt: T0 + holdCounter,
    updatedAt: T0 + holdCounter,
    requestDigest: "ab".repeat(32),
    held: envelope(1, holdCounter & 0xff),
    outcomeStatus: null,
    outcome: null,
    claimedBy: null,
    claimedAt: null,
    reason: null,
    ...overrides,
  };
}

function person(name: string, groups: string[], publicKey = `pem:${name}`): ApproverRow {
  return { name, publicKey, groups, addedAt: T0 };
}

/** A decision as HoldService makes it (the store does not verify signatures: the service has). */
function vote(name: string, decision: "approve" | "reject" = "approve", at = T0 + 100, reason: string | null = null) {
  return { approver: name, publicKey: `pem:${name}`, decision, signature: `sig:${name}:${decision}`, at, reason };
}

function codeOf(err: unknown): string | undefined {
  if (!(err instanceof CodedError)) return undefined;
  const code: unknown = (err as { code?: unknown }).code;
  return typeof code === "string" ? code : undefined;
}

async function failure(run: () => Promise<unknown>): Promise<unknown> {
  try {
    await run();
  } catch (err) {
    return err;
  }
  throw new Error("expected a failure");
}

/** Registers the usual approvers: alice, bob (treasury), carol (treasury and risk), dave (risk), erin (audit). */
async function register(s: DurableStore): Promise<void> {
  for (const p of [person("alice", ["treasury"]), person("bob", ["treasury"]), person("carol", ["risk", "treasury"]), person("dave", ["risk"]), person("erin", ["audit"])]) {
    expect((await s.holds.addApprover(p, "cli:ops")).ok).toBe(true);
  }
}

describe.each(backends)("holds contract: $name", (backend) => {
  const open: Handle[] = [];
  const instance = async (): Promise<Handle> => {
    const h = await backend.open();
    open.push(h);
    return h;
  };

  beforeAll(() => backend.start());
  beforeEach(() => backend.reset());
  afterEach(async () => {
    await Promise.all(open.splice(0).map((h) => h.close()));
  });
  afterAll(() => backend.end());

  // --- approvers ---------------------------------------------------------------------------------

  it("registers approvers, adds groups for the same key, refuses another key, removes; each audited", async () => {
    const { s, audit } = await instance();
    expect(await s.holds.addApprover(person("bob", ["treasury"]), "cli:ops")).toEqual({ ok: true, row: person("bob", ["treasury"]) });
    // The same key again: its groups are added (sorted, without repeats), added_at kept.
    expect(await s.holds.addApprover({ ...person("bob", ["risk", "treasury"]), addedAt: T0 + 5 }, "cli:ops")).toEqual({ ok: true, row: person("bob", ["risk", "treasury"]) });
    expect(await s.holds.addApprover(person("bob", ["audit"], "pem:other"), "cli:ops")).toEqual({ ok: false, reason: "exists" });
    expect(await s.holds.addApprover(person("alice", ["treasury"]), "cli:ops")).toEqual({ ok: true, row: person("alice", ["treasury"]) });

    const other = await instance();
    expect(await other.s.holds.approver("bob")).toEqual(person("bob", ["risk", "treasury"]));
    expect(await other.s.holds.approver("nobody")).toBeUndefined();
    // A name no store can hold (U+0000, from the network unchecked) is simply not there.
    expect(await other.s.holds.approver("bo\u0000b")).toBeUndefined();
    expect(await other.s.holds.removeApprover("bo\u0000b", "cli:ops", T0)).toBe(false);
    expect((await other.s.holds.approvers()).map((a) => a.name)).toEqual(["alice", "bob"]);

    expect(await other.s.holds.removeApprover("alice", "cli:ops", T0 + 10)).toBe(true);
    expect(await s.holds.removeApprover("alice", "cli:ops", T0 + 11)).toBe(false);
    expect(await s.holds.approvers()).toEqual([person("bob", ["risk", "treasury"])]);

    const entries = await stored(audit);
    expect(entries.map((e) => e.event)).toEqual(["approver.add", "approver.add", "approver.add", "approver.remove"]);
    expect(decodeEntry(entries[1]?.entry ?? "")).toMatchObject({ actor: "cli:ops", detail: { approver: "bob", groups: ["risk", "treasury"], added: ["risk", "treasury"] } });
    expect(decodeEntry(entries[3]?.entry ?? "")).toMatchObject({ at: T0 + 10, detail: { approver: "alice" } });
    expect(await verifyAudit(audit)).toMatchObject({ ok: true, verified: 4 });
  });

  it("two processes registering one name at once: one key wins, every group of that key is kept", async () => {
    const a = await instance();
    const b = await instance();
    const attempts = ["a", "b", "c", "d", "e", "f", "g", "h"].map((g, i) => person("zed", [g], i % 2 === 0 ? "pem:one" : "pem:two"));
    const results = await Promise.all(attempts.map((p, i) => (i % 2 === 0 ? a : b).s.holds.addApprover(p, "cli:ops")));
    const final = await a.s.holds.approver("zed");
    expect(final).toBeDefined();
    const winners = attempts.filter((p) => p.publicKey === final?.publicKey);
    expect(final?.groups).toEqual(winners.flatMap((p) => p.groups).sort());
    expect(results.filter((r) => r.ok)).toHaveLength(4);
    expect(results.filter((r) => !r.ok)).toEqual(Array.from({ length: 4 }, () => ({ ok: false, reason: "exists" })));
    expect(await events(a.audit)).toEqual(Array.from({ length: 4 }, () => "approver.add"));
  });

  // --- holds: insert and read ----------------------------------------------------------------------

  it("stores a held operation exactly, lists by state and key (newest first), audits operation.hold", async () => {
    const { s, audit } = await instance();
    const k1 = await key(s);
    const k2 = await key(s);
    const first = held(k1, { notBefore: T0 + 50, summary: { nested: { b: 1, a: [1, "x"] }, text: "é\u0000" } });
    const second = held(k2);
    const third = held(null, { target: "change", kind: "policy.change", owner: null, account: null, tiers: [] });
    for (const r of [first, second, third]) await s.holds.insertHold(r, "key:test");
    const other = await instance();
    expect(await other.s.holds.hold(first.id)).toEqual(first);
    expect(await other.s.holds.hold(third.id)).toEqual(third);
    expect(await other.s.holds.hold(newOperationId())).toBeUndefined();
    expect(await other.s.holds.hold("op_\u0000")).toBeUndefined();
    expect((await other.s.holds.holds({ limit: 10 })).map((r) => r.id)).toEqual([third.id, second.id, first.id]);
    expect((await other.s.holds.holds({ limit: 2 })).map((r) => r.id)).toEqual([third.id, second.id]);
    expect((await other.s.holds.holds({ keyId: k1, limit: 10 })).map((r) => r.id)).toEqual([first.id]);
    expect((await other.s.holds.holds({ state: "pending", keyId: k2, limit: 10 })).map((r) => r.id)).toEqual([second.id]);
    expect(await other.s.holds.holds({ state: "ready", limit: 10 })).toEqual([]);
    expect(await other.s.holds.approvals(first.id)).toEqual([]);

    // An id already held is refused whole: no second row, no entry.
    const dup = backend.name === "sqlite" ? { code: "SQLITE_CONSTRAINT_PRIMARYKEY" } : { code: "23505" };
    await expect(s.holds.insertHold({ ...second, kind: "transfer" }, "key:test")).rejects.toMatchObject(dup);
    expect((await s.holds.hold(second.id))?.kind).toBe("withdrawal");

    const entries = (await stored(audit)).filter((e) => e.event === "operation.hold");
    expect(entries).toHaveLength(3);
    expect(decodeEntry(entries[0]?.entry ?? "")).toMatchObject({
      actor: "key:test",
      key: k1,
      account: "acct-1",
      detail: { operation: first.id, kind: "withdrawal", policyVersion: 3, rule: "large-withdrawals", approvals: TIERS, notBefore: T0 + 50, expiresAt: T0 + HOUR },
    });
    expect(await verifyAudit(audit)).toMatchObject({ ok: true });
  });

  // --- decisions -----------------------------------------------------------------------------------

  it("counts approvals toward the first tier of the approver's groups still short, in tier order, and makes it ready", async () => {
    const { s, audit } = await instance();
    await register(s);
    const op = held(await key(s));
    await s.holds.insertHold(op, "key:test");
    // carol is in treasury and risk: treasury is the first tier still short.
    const c = await s.holds.decide(op.id, vote("carol", "approve", T0 + 10), false);
    expect(c).toMatchObject({ ok: true, row: { state: "pending", updatedAt: T0 + 10 } });
    // dave is risk only.
    expect(await s.holds.decide(op.id, vote("dave", "approve", T0 + 11), false)).toMatchObject({ ok: true, row: { state: "pending" } });
    // erin is in no tier's group.
    expect(await s.holds.decide(op.id, vote("erin", "approve", T0 + 12), false)).toEqual({ ok: false, reason: "not-in-group" });
    expect(await s.holds.decide(op.id, vote("erin", "reject", T0 + 12), false)).toEqual({ ok: false, reason: "not-in-group" });
    // alice fills treasury: every tier met, no delay: ready.
    const last = await s.holds.decide(op.id, vote("alice", "approve", T0 + 13), false);
    expect(last).toMatchObject({ ok: true, row: { id: op.id, state: "ready", updatedAt: T0 + 13 } });
    // Nothing more to decide.
    expect(await s.holds.decide(op.id, vote("bob", "approve", T0 + 14), false)).toEqual({ ok: false, reason: "state", current: "ready" });

    expect(await s.holds.approvals(op.id)).toEqual([
      { operationId: op.id, approver: "carol", decision: "approve", tier: 0, signature: "sig:carol:approve", at: T0 + 10 },
      { operationId: op.id, approver: "dave", decision: "approve", tier: 1, signature: "sig:dave:approve", at: T0 + 11 },
      { operationId: op.id, approver: "alice", decision: "approve", tier: 0, signature: "sig:alice:approve", at: T0 + 13 },
    ]);
    const entries = (await stored(audit)).filter((e) => e.event.startsWith("approval.") || e.event.startsWith("operation.")).slice(1);
    expect(entries.map((e) => [e.event, e.at])).toEqual([
      ["approval.sign", T0 + 10],
      ["approval.sign", T0 + 11],
      ["approval.sign", T0 + 13],
      ["operation.ready", T0 + 13],
    ]);
    expect(decodeEntry(entries[1]?.entry ?? "")).toMatchObject({ actor: "approver:dave", detail: { operation: op.id, approver: "dave", group: "risk" } });
    expect(await verifyAudit(audit)).toMatchObject({ ok: true });
  });

  it("a tier of people already counted elsewhere is not met by them: two tiers take distinct people", async () => {
    const { s } = await instance();
    await register(s);
    const op = held(await key(s), { tiers: [{ group: "risk", count: 1 }, { group: "treasury", count: 1 }] });
    await s.holds.insertHold(op, "key:test");
    // carol counts toward risk (first); she cannot also fill treasury.
    expect(await s.holds.decide(op.id, vote("carol", "approve", T0 + 10), false)).toMatchObject({ ok: true, row: { state: "pending" } });
    // dave is risk only, and risk is met.
    expect(await s.holds.decide(op.id, vote("dave", "approve", T0 + 11), false)).toEqual({ ok: false, reason: "not-in-group" });
    expect(await s.holds.decide(op.id, vote("bob", "approve", T0 + 12), false)).toMatchObject({ ok: true, row: { state: "ready" } });
    expect((await s.holds.approvals(op.id)).map((a) => [a.approver, a.tier])).toEqual([
      ["carol", 0],
      ["bob", 1],
    ]);
  });

  it("refuses a decision: not found, expired, approver unknown / removed / key changed, duplicate; none recorded", async () => {
    const { s, audit } = await instance();
    await register(s);
    const op = held(await key(s), { expiresAt: T0 + 500 });
    await s.holds.insertHold(op, "key:test");
    const before = (await stored(audit)).length;
    expect(await s.holds.decide(newOperationId(), vote("alice"), false)).toEqual({ ok: false, reason: "not-found" });
    expect(await s.holds.decide("op_\u0000", vote("alice"), false)).toEqual({ ok: false, reason: "not-found" });
    expect(await s.holds.decide(op.id, vote("alice", "approve", T0 + 500), false)).toEqual({ ok: false, reason: "expired" });
    expect(await s.holds.decide(op.id, vote("nobody"), false)).toEqual({ ok: false, reason: "approver-unknown" });
    expect(await s.holds.decide(op.id, vote("ali\u0000ce"), false)).toEqual({ ok: false, reason: "approver-unknown" });
    // The approver's key changed since the caller verified the signature (removed and added again).
    expect(await s.holds.decide(op.id, { ...vote("alice"), publicKey: "pem:stale" }, false)).toEqual({ ok: false, reason: "approver-unknown" });
    expect(await s.holds.removeApprover("bob", "cli:ops", T0 + 1)).toBe(true);
    expect(await s.holds.decide(op.id, vote("bob"), false)).toEqual({ ok: false, reason: "approver-unknown" });
    expect(await s.holds.approvals(op.id)).toEqual([]);
    expect((await stored(audit)).length).toBe(before + 1); // the removal only

    expect(await s.holds.decide(op.id, vote("alice"), false)).toMatchObject({ ok: true });
    expect(await s.holds.decide(op.id, vote("alice", "approve", T0 + 101), false)).toEqual({ ok: false, reason: "duplicate" });
    expect(await s.holds.decide(op.id, vote("alice", "reject", T0 + 102), false)).toEqual({ ok: false, reason: "duplicate" });
    expect(await s.holds.approvals(op.id)).toHaveLength(1);
  });

  it("a rejection is recorded; it rejects the operation only when rejectCancels", async () => {
    const { s, audit } = await instance();
    await register(s);
    const kept = held(await key(s));
    const ended = held(await key(s));
    await s.holds.insertHold(kept, "key:test");
    await s.holds.insertHold(ended, "key:test");
    expect(await s.holds.decide(kept.id, vote("alice", "reject", T0 + 10, "not today"), false)).toMatchObject({ ok: true, row: { state: "pending", reason: null } });
    expect(await s.holds.decide(ended.id, vote("dave", "reject", T0 + 11, "unknown address"), true)).toMatchObject({
      ok: true,
      row: { state: "rejected", updatedAt: T0 + 11, reason: "rejected by dave: unknown address" },
    });
    expect(await s.holds.decide(ended.id, vote("alice", "approve", T0 + 12), true)).toEqual({ ok: false, reason: "state", current: "rejected" });
    expect(await s.holds.approvals(kept.id)).toEqual([{ operationId: kept.id, approver: "alice", decision: "reject", tier: null, signature: "sig:alice:reject", at: T0 + 10 }]);
    const tail = (await stored(audit)).slice(-3);
    expect(tail.map((e) => e.event)).toEqual(["approval.reject", "approval.reject", "operation.reject"]);
    expect(decodeEntry(tail[2]?.entry ?? "")).toMatchObject({ actor: "approver:dave", detail: { operation: ended.id, approver: "dave", reason: "unknown address" } });
    expect(await s.holds.unsettled(10)).toEqual([ended.id]);
  });

  // --- cancel, advance, claim, finish ----------------------------------------------------------

  it("cancels a pending or ready operation, of the given key only; says why not otherwise", async () => {
    const { s, audit } = await instance();
    const k1 = await key(s);
    const k2 = await key(s);
    const pending = held(k1);
    const ready = held(k1, { state: "ready", tiers: [] });
    const releasing = held(k1, { state: "ready", tiers: [] });
    for (const r of [pending, ready, releasing]) await s.holds.insertHold(r, "key:test");
    expect(await s.holds.claim(releasing.id, "proc-a", T0 + 1)).toMatchObject({ ok: true });

    // Another key's operation is not found, as none at all.
    expect(await s.holds.cancel(pending.id, k2, T0 + 2, `key:${k2}`, "cancelled by the initiator")).toEqual({ ok: false, reason: "not-found" });
    expect(await s.holds.cancel(newOperationId(), null, T0 + 2, "cli:ops", "x")).toEqual({ ok: false, reason: "not-found" });
    expect(await s.holds.cancel(pending.id, k1, T0 + 3, `key:${k1}`, "cancelled by the initiator")).toMatchObject({
      ok: true,
      row: { state: "cancelled", reason: "cancelled by the initiator", updatedAt: T0 + 3 },
    });
    expect(await s.holds.cancel(pending.id, k1, T0 + 4, `key:${k1}`, "again")).toEqual({ ok: false, reason: "state", current: "cancelled" });
    expect(await s.holds.cancel(ready.id, null, T0 + 5, "cli:ops", "cancelled by cli:ops")).toMatchObject({ ok: true, row: { state: "cancelled" } });
    // Sent (or being sent): too late to cancel.
    expect(await s.holds.cancel(releasing.id, null, T0 + 6, "cli:ops", "x")).toEqual({ ok: false, reason: "state", current: "releasing" });
    const cancels = (await stored(audit)).filter((e) => e.event === "operation.cancel");
    expect(cancels.map((e) => decodeEntry(e.entry))).toMatchObject([
      { actor: `key:${k1}`, key: k1, detail: { operation: pending.id, reason: "cancelled by the initiator" } },
      { actor: "cli:ops", detail: { operation: ready.id, reason: "cancelled by cli:ops" } },
    ]);
  });

  it("advance: expires what is past its expiry, readies what is approved with its delay over, marks lapsed claims unknown", async () => {
    const { s, audit } = await instance();
    await register(s);
    const k = await key(s);
    const old = held(k, { expiresAt: T0 + 1_000 });
    const oldReady = held(k, { state: "ready", tiers: [], expiresAt: T0 + 1_000 });
    const delayed = held(k, { tiers: [{ group: "risk", count: 1 }], notBefore: T0 + 2_000, expiresAt: T0 + 10 * HOUR });
    const timeLocked = held(k, { tiers: [], notBefore: T0 + 3_000, expiresAt: T0 + 10 * HOUR });
    const claimed = held(k, { state: "ready", tiers: [], expiresAt: T0 + 10 * HOUR });
    for (const r of [old, oldReady, delayed, timeLocked, claimed]) await s.holds.insertHold(r, "key:test");
    // Approved before its delay is over: still pending.
    expect(await s.holds.decide(delayed.id, vote("dave", "approve", T0 + 100), false)).toMatchObject({ ok: true, row: { state: "pending" } });
    expect(await s.holds.claim(claimed.id, "proc-a", T0 + 200)).toMatchObject({ ok: true, row: { state: "releasing", claimedBy: "proc-a", claimedAt: T0 + 200 } });

    expect(sorted(await s.holds.advance(T0 + 500, LEASE))).toEqual({ ready: [], expired: [], unknown: [] });
    expect(sorted(await s.holds.advance(T0 + 1_000, LEASE))).toEqual({ ready: [], expired: [old.id, oldReady.id].sort(), unknown: [] });
    expect(sorted(await s.holds.advance(T0 + 2_000, LEASE))).toEqual({ ready: [delayed.id], expired: [], unknown: [] });
    expect(sorted(await s.holds.advance(T0 + 3_000, LEASE))).toEqual({ ready: [timeLocked.id], expired: [], unknown: [] });
    expect(await s.holds.readyIds(10)).toEqual([delayed.id, timeLocked.id]);
    expect(await s.holds.readyIds(1)).toEqual([delayed.id]);
    // The claim's lease (from T0 + 200) runs out: the process died mid-release, the outcome is unknown.
    expect(sorted(await s.holds.advance(T0 + 200 + LEASE - 1, LEASE))).toEqual({ ready: [], expired: [], unknown: [] });
    expect(sorted(await s.holds.advance(T0 + 200 + LEASE, LEASE))).toEqual({ ready: [], expired: [], unknown: [claimed.id] });
    expect((await s.holds.hold(claimed.id))?.state).toBe("unknown");
    expect(sorted(await s.holds.advance(T0 + 10 * HOUR - 1, LEASE))).toEqual({ ready: [], expired: [], unknown: [] });
    // Ready ones expire too; releasing and unknown ones never do.
    expect(sorted(await s.holds.advance(T0 + 10 * HOUR, LEASE))).toEqual({ ready: [], expired: [delayed.id, timeLocked.id].sort(), unknown: [] });
    expect((await s.holds.hold(claimed.id))?.state).toBe("unknown");

    const moved = (await stored(audit)).filter((e) => ["operation.expire", "operation.ready", "operation.unknown"].includes(e.event));
    expect(moved.map((e) => e.event).sort()).toEqual(["operation.expire", "operation.expire", "operation.expire", "operation.expire", "operation.ready", "operation.ready", "operation.unknown"]);
    expect(decodeEntry(moved.find((e) => e.event === "operation.unknown")?.entry ?? "")).toMatchObject({ actor: "gateway", detail: { operation: claimed.id, claimedBy: "proc-a", claimedAt: T0 + 200 } });
    expect(await verifyAudit(audit)).toMatchObject({ ok: true });
  });

  it("claim: ready -> releasing once; refuses other states; expires a lapsed one; cancels when the key is not active", async () => {
    const { s, audit } = await instance();
    const active = await key(s);
    const expiring = await key(s, { expiresAt: T0 + 500 });
    const revoked = await key(s);
    const suspended = await key(s);
    expect((await s.keys.transition(revoked, ["active"], "revoked", "test", change("revoke", T0 + 50))).ok).toBe(true);
    expect((await s.keys.transition(suspended, ["active"], "suspended", "test", change("suspend", T0 + 50))).ok).toBe(true);
    const ready = (k: string | null, o: Partial<HeldRow> = {}): HeldRow => held(k, { state: "ready", tiers: [], ...o });
    const ok = ready(active);
    const noKey = ready(null);
    const pending = held(active);
    const lapsed = ready(active, { expiresAt: T0 + 100 });
    const ofExpiredKey = ready(expiring);
    // Stored ready after the key changed (the key change cancelled nothing of it): the claim checks.
    const ofRevoked = ready(revoked);
    const ofSuspended = ready(suspended);
    const ofMissing = ready(`pck_test_v1_${"9".repeat(28)}`);
    for (const r of [ok, noKey, pending, lapsed, ofExpiredKey, ofRevoked, ofSuspended, ofMissing]) await s.holds.insertHold(r, "key:test");

    const claimed = await s.holds.claim(ok.id, "proc-a", T0 + 1_000);
    expect(claimed).toEqual({ ok: true, row: { ...ok, state: "releasing", claimedBy: "proc-a", claimedAt: T0 + 1_000, updatedAt: T0 + 1_000 } });
    expect(await s.holds.claim(ok.id, "proc-b", T0 + 1_001)).toEqual({ ok: false, reason: "state", current: "releasing" });
    expect(await s.holds.claim(noKey.id, "proc-a", T0 + 1_000)).toMatchObject({ ok: true, row: { state: "releasing" } });
    expect(await s.holds.claim(pending.id, "proc-a", T0 + 1_000)).toEqual({ ok: false, reason: "state", current: "pending" });
    expect(await s.holds.claim(newOperationId(), "proc-a", T0 + 1_000)).toEqual({ ok: false, reason: "not-found" });
    expect(await s.holds.claim(lapsed.id, "proc-a", T0 + 1_000)).toEqual({ ok: false, reason: "state", current: "expired" });
    for (const [r, why] of [
      [ofExpiredKey, "key expired"],
      [ofRevoked, "key revoked"],
      [ofSuspended, "key suspended"],
      [ofMissing, "key not found"],
    ] as const) {
      expect(await s.holds.claim(r.id, "proc-a", T0 + 1_000)).toEqual({ ok: false, reason: "state", current: "cancelled" });
      expect(await s.holds.hold(r.id)).toMatchObject({ state: "cancelled", reason: why, updatedAt: T0 + 1_000 });
    }
    const tail = (await stored(audit)).filter((e) => e.at === T0 + 1_000);
    expect(tail.map((e) => e.event)).toEqual(["operation.expire", "operation.cancel", "operation.cancel", "operation.cancel", "operation.cancel"]);
    expect(decodeEntry(tail[2]?.entry ?? "")).toMatchObject({ actor: "gateway", key: revoked, detail: { operation: ofRevoked.id, reason: "key revoked" } });
    expect((await s.holds.unsettled(10)).sort()).toEqual([lapsed.id, ofExpiredKey.id, ofRevoked.id, ofSuspended.id, ofMissing.id].sort());
  });

  it("finish: by the claimant only, from releasing or unknown; records the outcome once", async () => {
    const { s, audit } = await instance();
    const k = await key(s);
    const a = held(k, { state: "ready", tiers: [] });
    const b = held(k, { state: "ready", tiers: [] });
    const c = held(k, { state: "ready", tiers: [] });
    for (const r of [a, b, c]) await s.holds.insertHold(r, "key:test");
    expect(await s.holds.finish(a.id, "proc-a", T0 + 1, 200, envelope(1, 0x01))).toBe(false); // not claimed
    expect((await s.holds.claim(a.id, "proc-a", T0 + 10)).ok).toBe(true);
    expect(await s.holds.finish(a.id, "proc-b", T0 + 11, 200, envelope(1, 0x02))).toBe(false);
    expect(await s.holds.finish(a.id, "proc-a", T0 + 12, 201, envelope(1, 0x03))).toBe(true);
    expect(await s.holds.finish(a.id, "proc-a", T0 + 13, 500, envelope(1, 0x04))).toBe(false);
    expect(await s.holds.hold(a.id)).toMatchObject({ state: "released", outcomeStatus: 201, outcome: envelope(1, 0x03), claimedBy: "proc-a", updatedAt: T0 + 12 });

    // A lease that ran out (unknown): the claimant that comes back still records what happened.
    expect((await s.holds.claim(b.id, "proc-a", T0 + 20)).ok).toBe(true);
    expect(sorted(await s.holds.advance(T0 + 20 + LEASE, LEASE))).toMatchObject({ unknown: [b.id] });
    expect(await s.holds.finish(b.id, "proc-b", T0 + 21 + LEASE, 200, envelope(1))).toBe(false);
    expect(await s.holds.finish(b.id, "proc-a", T0 + 21 + LEASE, 502, envelope(1, 0x05))).toBe(true);
    expect(await s.holds.hold(b.id)).toMatchObject({ state: "released", outcomeStatus: 502, outcome: envelope(1, 0x05) });
    expect(await s.holds.finish(newOperationId(), "proc-a", T0, 200, envelope(1))).toBe(false);
    expect(await s.holds.finish(c.id, "proc-\u0000", T0, 200, envelope(1))).toBe(false);

    const releases = (await stored(audit)).filter((e) => e.event === "operation.release");
    expect(releases.map((e) => decodeEntry(e.entry))).toMatchObject([
      { actor: "gateway", key: k, detail: { operation: a.id, status: 201, claimedBy: "proc-a" } },
      { detail: { operation: b.id, status: 502, claimedBy: "proc-a" } },
    ]);
    // Released operations are never settled (their value was spent).
    expect(await s.holds.unsettled(10)).toEqual([]);
    expect(await s.holds.settle(a.id)).toBe(false);
  });

  it("unsettled lists what ended without release, oldest first; settle marks each once", async () => {
    const a = await instance();
    const b = await instance();
    const k = await key(a.s);
    const x = held(k, { expiresAt: T0 + 10 });
    const y = held(k);
    const z = held(k);
    for (const r of [x, y, z]) await a.s.holds.insertHold(r, "key:test");
    expect(await a.s.holds.unsettled(10)).toEqual([]);
    await a.s.holds.advance(T0 + 10, LEASE); // x expires at T0 + 10
    await a.s.holds.cancel(y.id, null, T0 + 20, "cli:ops", "no");
    expect(await b.s.holds.unsettled(10)).toEqual([x.id, y.id]);
    expect(await b.s.holds.unsettled(1)).toEqual([x.id]);
    expect(await a.s.holds.settle(z.id)).toBe(false); // still pending
    const settled = await Promise.all([a, b, a, b, a, b].map((h) => h.s.holds.settle(x.id)));
    expect(settled.filter(Boolean)).toHaveLength(1);
    expect(await a.s.holds.settle(newOperationId())).toBe(false);
    expect(await b.s.holds.unsettled(10)).toEqual([y.id]);
  });

  // --- cancel-on-revoke ------------------------------------------------------------------------------

  it("revoking or suspending a key cancels its pending and ready operations in the key change's transaction", async () => {
    const { s, audit } = await instance();
    const k = await key(s);
    const other = await key(s);
    const pending = held(k);
    const ready = held(k, { state: "ready", tiers: [] });
    const releasing = held(k, { state: "ready", tiers: [] });
    const otherKeys = held(other);
    for (const r of [pending, ready, releasing, otherKeys]) await s.holds.insertHold(r, "key:test");
    expect((await s.holds.claim(releasing.id, "proc-a", T0 + 5)).ok).toBe(true);

    // A refused key change cancels nothing.
    expect(await s.keys.transition(k, ["suspended"], "revoked", "x", change("revoke", T0 + 9))).toMatchObject({ ok: false, reason: "conflict" });
    // A patch changes no status: nothing cancelled.
    expect((await s.keys.update(k, ["active"], { label: "renamed" }, change("update", T0 + 9))).ok).toBe(true);
    expect((await s.holds.hold(pending.id))?.state).toBe("pending");

    expect((await s.keys.transition(k, ["active"], "revoked", "leaked", { action: "revoke", actor: "cli:sec", at: T0 + 10, detail: {} })).ok).toBe(true);
    const other2 = await instance();
    expect(await other2.s.holds.hold(pending.id)).toMatchObject({ state: "cancelled", reason: "key revoked", updatedAt: T0 + 10 });
    expect(await other2.s.holds.hold(ready.id)).toMatchObject({ state: "cancelled", reason: "key revoked" });
    // Already being released: not cancelled (it was claimed before the revocation committed).
    expect((await other2.s.holds.hold(releasing.id))?.state).toBe("releasing");
    expect((await other2.s.holds.hold(otherKeys.id))?.state).toBe("pending");
    const tail = (await stored(audit)).filter((e) => e.at === T0 + 10);
    expect(tail.map((e) => e.event)).toEqual(["operation.cancel", "operation.cancel", "key.revoke"]);
    expect(tail.slice(0, 2).map((e) => decodeEntry(e.entry))).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ actor: "cli:sec", key: k, detail: { operation: pending.id, reason: "key revoked" } }),
        expect.objectContaining({ actor: "cli:sec", key: k, detail: { operation: ready.id, reason: "key revoked" } }),
      ]),
    );

    // Suspension too.
    expect((await s.keys.transition(other, ["active"], "suspended", "odd", change("suspend", T0 + 20))).ok).toBe(true);
    expect(await s.holds.hold(otherKeys.id)).toMatchObject({ state: "cancelled", reason: "key suspended" });
    expect(await verifyAudit(audit)).toMatchObject({ ok: true });
  });

  // --- the KEK floor over held envelopes --------------------------------------------------------------

  it("held envelopes: listed in pages, rewrapped by compare-and-swap, counted by the floor, refused below it", async () => {
    const { s, audit } = await instance();
    const other = await instance();
    const k = await key(s);
    const ids = [newOperationId(), newOperationId(), newOperationId()].sort();
    const [i1, i2, i3] = ids as [string, string, string];
    const r1 = held(k, { id: i1, state: "ready", tiers: [], held: envelope(1, 0x11) });
    const r2 = held(k, { id: i2, held: envelope(1, 0x22) });
    const r3 = held(k, { id: i3, held: envelope(2, 0x33) });
    for (const r of [r1, r2, r3]) await s.holds.insertHold(r, "key:test");
    expect((await s.holds.claim(i1, "proc-a", T0 + 1)).ok).toBe(true);
    expect(await s.holds.finish(i1, "proc-a", T0 + 2, 200, envelope(1, 0x44))).toBe(true);

    expect(await other.s.envelopes.heldEnvelopes("", 10)).toEqual([
      { id: i1, held: envelope(1, 0x11), outcome: envelope(1, 0x44) },
      { id: i2, held: envelope(1, 0x22), outcome: null },
      { id: i3, held: envelope(2, 0x33), outcome: null },
    ]);
    expect((await other.s.envelopes.heldEnvelopes(i1, 1)).map((e) => e.id)).toEqual([i2]);
    // Three envelopes below version 2: i1's request and answer, i2's request.
    expect(await s.envelopes.raiseKekFloor(2)).toEqual({ raised: false, floor: 0, below: 3 });
    const n = await s.envelopes.replaceHeldEnvelopes([
      { id: i1, column: "held", expected: envelope(1, 0x11), next: envelope(2, 0x11) },
      { id: i1, column: "outcome", expected: envelope(1, 0x44), next: envelope(2, 0x44) },
      { id: i2, column: "held", expected: envelope(1, 0x99), next: envelope(2, 0x22) }, // not what it holds
    ]);
    expect(n).toBe(2);
    expect(await s.envelopes.replaceHeldEnvelopes([])).toBe(0);
    expect(await s.envelopes.raiseKekFloor(2)).toEqual({ raised: false, floor: 0, below: 1 });
    expect(await s.envelopes.replaceHeldEnvelopes([{ id: i2, column: "held", expected: envelope(1, 0x22), next: envelope(2, 0x22) }])).toBe(1);
    expect(await s.envelopes.raiseKekFloor(2)).toEqual({ raised: true, floor: 2, below: 0 });
    const rewraps = await stored(audit);

    // Below the floor, in any instance: a hold, an outcome, a rewrap are refused and write nothing.
    const low = held(k, { held: envelope(1) });
    expect(codeOf(await failure(() => other.s.holds.insertHold(low, "key:test")))).toBe("CUSTODY_KEK_RETIRED");
    expect(await s.holds.hold(low.id)).toBeUndefined();
    const r4 = held(k, { state: "ready", tiers: [], held: envelope(2) });
    await other.s.holds.insertHold(r4, "key:test");
    expect((await other.s.holds.claim(r4.id, "proc-b", T0 + 3)).ok).toBe(true);
    expect(codeOf(await failure(() => other.s.holds.finish(r4.id, "proc-b", T0 + 4, 200, envelope(1))))).toBe("CUSTODY_KEK_RETIRED");
    expect(await s.holds.hold(r4.id)).toMatchObject({ state: "releasing", outcome: null });
    expect(codeOf(await failure(() => other.s.envelopes.replaceHeldEnvelopes([{ id: i3, column: "held", expected: envelope(2, 0x33), next: envelope(1, 0x33) }])))).toBe(
      "CUSTODY_KEK_RETIRED",
    );
    expect((await s.holds.hold(i3))?.held).toEqual(envelope(2, 0x33));
    // At the floor: written.
    expect(await other.s.holds.finish(r4.id, "proc-b", T0 + 5, 200, envelope(2))).toBe(true);
    // The refused writes left no audit entry: only r4's hold, then its release.
    expect((await stored(audit)).slice(rewraps.length).map((e) => e.event)).toEqual(["operation.hold", "operation.release"]);
    expect(await verifyAudit(audit)).toMatchObject({ ok: true });
  });

  // --- races across two processes ---------------------------------------------------------------------

  it("of many claims of one ready operation from two processes, exactly one wins", async () => {
    const a = await instance();
    const b = await instance();
    const k = await key(a.s);
    for (let round = 0; round < 5; round++) {
      const op = held(k, { state: "ready", tiers: [] });
      await a.s.holds.insertHold(op, "key:test");
      const results = await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? a : b).s.holds.claim(op.id, `proc-${i}`, T0 + 100 + i)));
      const winners = results.filter((r) => r.ok);
      expect(winners).toHaveLength(1);
      expect(results.filter((r) => !r.ok)).toEqual(Array.from({ length: 7 }, () => ({ ok: false, reason: "state", current: "releasing" })));
      const winner = results.findIndex((r) => r.ok);
      expect(await b.s.holds.hold(op.id)).toMatchObject({ state: "releasing", claimedBy: `proc-${winner}` });
    }
  });

  it("concurrent decisions by one approver from two processes: one counts, the others are duplicates", async () => {
    const a = await instance();
    const b = await instance();
    await register(a.s);
    const k = await key(a.s);
    for (let round = 0; round < 5; round++) {
      const op = held(k);
      await a.s.holds.insertHold(op, "key:test");
      const results = await Promise.all(Array.from({ length: 6 }, (_, i) => (i % 2 === 0 ? a : b).s.holds.decide(op.id, vote("carol", i % 3 === 2 ? "reject" : "approve", T0 + 100 + i), false)));
      expect(results.filter((r) => r.ok)).toHaveLength(1);
      expect(results.filter((r) => !r.ok)).toEqual(Array.from({ length: 5 }, () => ({ ok: false, reason: "duplicate" })));
      expect(await b.s.holds.approvals(op.id)).toHaveLength(1);
    }
    expect(await verifyAudit(a.audit)).toMatchObject({ ok: true });
  });

  it("concurrent approvals by different people from two processes: each counts once, toward its own tier, and the last makes it ready", async () => {
    const a = await instance();
    const b = await instance();
    await register(a.s);
    const k = await key(a.s);
    for (let round = 0; round < 5; round++) {
      const op = held(k);
      await a.s.holds.insertHold(op, "key:test");
      // alice and bob fill treasury, dave risk; carol (treasury and risk) fills one of them, and
      // whoever comes last finds the operation ready, or no tier of theirs still short.
      const people = ["alice", "bob", "carol", "dave"];
      const results = await Promise.all(people.map((p, i) => (i % 2 === 0 ? a : b).s.holds.decide(op.id, vote(p, "approve", T0 + 100 + i), false)));
      expect(results.filter((r) => r.ok)).toHaveLength(3);
      expect(results.filter((r) => !r.ok)).toEqual([expect.objectContaining({ ok: false, reason: expect.stringMatching(/^(not-in-group|state)$/) as unknown })]);
      const approvals = await b.s.holds.approvals(op.id);
      expect(approvals.filter((x) => x.tier === 0)).toHaveLength(2);
      expect(approvals.filter((x) => x.tier === 1)).toHaveLength(1);
      expect((await a.s.holds.hold(op.id))?.state).toBe("ready");
    }
  });

  it("a claim racing a revocation in another process: either the claim wins (and the operation is not cancelled) or it is cancelled", async () => {
    const a = await instance();
    const b = await instance();
    for (let round = 0; round < 6; round++) {
      const k = await key(a.s);
      const op = held(k, { state: "ready", tiers: [] });
      await a.s.holds.insertHold(op, "key:test");
      const [claimed, revoked] = await Promise.all([
        (round % 2 === 0 ? a : b).s.holds.claim(op.id, "proc-a", T0 + 100),
        (round % 2 === 0 ? b : a).s.keys.transition(k, ["active"], "revoked", "leaked", change("revoke", T0 + 100)),
      ]);
      expect(revoked.ok).toBe(true);
      const final = await a.s.holds.hold(op.id);
      if (claimed.ok) {
        expect(final?.state).toBe("releasing");
      } else {
        expect(claimed).toEqual({ ok: false, reason: "state", current: "cancelled" });
        expect(final).toMatchObject({ state: "cancelled", reason: "key revoked" });
      }
    }
    expect(await verifyAudit(a.audit)).toMatchObject({ ok: true });
  });

  it("concurrent passes of the release loop in two processes move each operation once", async () => {
    const a = await instance();
    const b = await instance();
    const k = await key(a.s);
    const rows = Array.from({ length: 12 }, (_, i) => held(k, { tiers: [], expiresAt: i % 2 === 0 ? T0 + 100 : T0 + HOUR }));
    for (const r of rows) await a.s.holds.insertHold(r, "key:test");
    const passes = await Promise.all([a, b, a, b].map((h) => h.s.holds.advance(T0 + 100, LEASE)));
    const expired = passes.flatMap((p) => p.expired).sort();
    const ready = passes.flatMap((p) => p.ready).sort();
    expect(expired).toEqual(rows.filter((_, i) => i % 2 === 0).map((r) => r.id).sort());
    expect(ready).toEqual(rows.filter((_, i) => i % 2 === 1).map((r) => r.id).sort());
    const moved = (await stored(a.audit)).filter((e) => e.event === "operation.expire" || e.event === "operation.ready");
    expect(moved).toHaveLength(12);
    // And concurrent cancels of one operation: one wins.
    const op = held(k);
    await a.s.holds.insertHold(op, "key:test");
    const cancels = await Promise.all([a, b, a, b].map((h, i) => h.s.holds.cancel(op.id, null, T0 + 200 + i, "cli:ops", `try ${i}`)));
    expect(cancels.filter((r) => r.ok)).toHaveLength(1);
    expect(cancels.filter((r) => !r.ok)).toEqual(Array.from({ length: 3 }, () => ({ ok: false, reason: "state", current: "cancelled" })));
  });
});

describe.runIf(runPg)("holds: PostgreSQL only", () => {
  const schemas: string[] = [];
  const stores: PostgresStore[] = [];
  const open = async (name: string, options: Partial<PostgresStoreOptions> = {}): Promise<PostgresStore> => {
    const s = await openPg({ schema: name, ...options });
    stores.push(s);
    return s;
  };
  const schema = (tag: string): string => {
    const name = uniqueSchema(tag);
    schemas.push(name);
    return name;
  };
  afterAll(async () => {
    await Promise.all(stores.map((s) => s.close()));
    for (const name of schemas) await dropSchema(SHARED_POSTGRES_URL, name);
  });

  /** Resolves once a statement of `schema`'s pool waits for a lock, or `done()` (it did not need to). */
  async function waitingOnLock(name: string, done: () => boolean): Promise<void> {
    for (let i = 0; i < 500; i++) {
      if (done()) return;
      const rows = await adminQuery(SHARED_POSTGRES_URL, "SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'", [`portcullis:${name}`]);
      if (rows.length > 0) return;
      await new Promise((resolve) => setImmediate(resolve));
    }
    throw new Error("no statement waited for the lock");
  }

  it("an approver removed while a decision is in flight is not counted: the decision waits for the removal", async () => {
    const name = schema("hrm");
    const s = await open(name);
    const k = await key(s);
    await register(s);
    const op = held(k);
    await s.holds.insertHold(op, "key:test");
    const remover = new pg.Client({ connectionString: SHARED_POSTGRES_URL });
    await remover.connect();
    try {
      await remover.query("BEGIN");
      await remover.query(`DELETE FROM ${name}.approvers WHERE name = 'alice'`);
      let settled = false;
      const decision = s.holds.decide(op.id, vote("alice"), false).finally(() => {
        settled = true;
      });
      await waitingOnLock(name, () => settled);
      await remover.query("COMMIT");
      expect(await decision).toEqual({ ok: false, reason: "approver-unknown" });
    } finally {
      await remover.end();
    }
    expect(await s.holds.approvals(op.id)).toEqual([]);
  });

  it("a transition whose audit entry cannot be written is rolled back (the audit lock held past the lock timeout)", async () => {
    const name = schema("hlock");
    const s = await open(name, { lockTimeoutMs: 100 });
    const k = await key(s);
    await register(s);
    const op = held(k, { tiers: [{ group: "risk", count: 1 }] });
    await s.holds.insertHold(op, "key:test");
    const holder = new pg.Client({ connectionString: SHARED_POSTGRES_URL });
    await holder.connect();
    try {
      await holder.query("BEGIN");
      await holder.query("SELECT pg_advisory_xact_lock($1, $2)", [LOCK_AUDIT, schemaLockKey(name)]);
      await expect(s.holds.decide(op.id, vote("dave"), false)).rejects.toMatchObject({ code: "55P03" });
      await expect(s.holds.insertHold(held(k), "key:test")).rejects.toMatchObject({ code: "55P03" });
      await expect(s.keys.transition(k, ["active"], "revoked", "x", change("revoke"))).rejects.toMatchObject({ code: "55P03" });
      await holder.query("ROLLBACK");
    } finally {
      await holder.end();
    }
    expect(await s.holds.approvals(op.id)).toEqual([]);
    expect((await s.holds.hold(op.id))?.state).toBe("pending");
    expect((await s.holds.holds({ limit: 10 })).map((r) => r.id)).toEqual([op.id]);
    expect((await s.keys.get(k))?.status).toBe("active");
    expect(await s.holds.decide(op.id, vote("dave"), false)).toMatchObject({ ok: true, row: { state: "ready" } });
    expect(await verifyAudit(s.audit)).toMatchObject({ ok: true });
  });

  it("migration 6 creates the tables: ids in byte order, envelopes as bytea", async () => {
    const name = schema("hmig");
    await open(name);
    const rows = await adminQuery<{ version: number }>(SHARED_POSTGRES_URL, `SELECT version FROM ${name}.schema_migrations ORDER BY version`);
    expect(rows.map((r) => r.version).slice(0, 6)).toEqual([1, 2, 3, 4, 5, 6]);
    const cols = await adminQuery<{ table_name: string; column_name: string; data_type: string; collation_name: string | null }>(
      SHARED_POSTGRES_URL,
      `SELECT table_name, column_name, data_type, collation_name FROM information_schema.columns
       WHERE table_schema = $1 AND ((table_name = 'held_operations' AND column_name IN ('id', 'held', 'outcome', 'settled'))
         OR (table_name = 'approvers' AND column_name = 'name') OR (table_name = 'held_approvals' AND column_name = 'operation_id'))
       ORDER BY table_name, column_name`,
      [name],
    );
    expect(cols).toEqual([
      { table_name: "approvers", column_name: "name", data_type: "text", collation_name: "C" },
      { table_name: "held_approvals", column_name: "operation_id", data_type: "text", collation_name: "C" },
      { table_name: "held_operations", column_name: "held", data_type: "bytea", collation_name: null },
      { table_name: "held_operations", column_name: "id", data_type: "text", collation_name: "C" },
      { table_name: "held_operations", column_name: "outcome", data_type: "bytea", collation_name: null },
      { table_name: "held_operations", column_name: "settled", data_type: "boolean", collation_name: null },
    ]);
    // The table's checks hold whatever writes it.
    await expect(adminQuery(SHARED_POSTGRES_URL, `UPDATE ${name}.held_operations SET state = 'lost'`)).resolves.toEqual([]);
    const s = stores[stores.length - 1] as PostgresStore;
    const op = held(null);
    await s.holds.insertHold(op, "cli:ops");
    await expect(adminQuery(SHARED_POSTGRES_URL, `UPDATE ${name}.held_operations SET state = 'lost'`)).rejects.toMatchObject({ code: "23514" });
  });
});
