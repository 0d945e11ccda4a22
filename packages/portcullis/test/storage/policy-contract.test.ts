import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { decodeEntry } from "../../src/audit/canonical.js";
import type { AuditSource, StoredEntry } from "../../src/audit/store.js";
import { verifyAudit } from "../../src/audit/verify.js";
import type { Decimal } from "../../src/contract/operations.js";
import { LOCK_AUDIT, LOCK_POLICY, nameLockKey, schemaLockKey } from "../../src/storage/postgres/migrations.js";
import { decimalToNumeric, numericToDecimal } from "../../src/storage/postgres/policy.js";
import { PostgresStore, type PostgresStoreOptions } from "../../src/storage/postgres/store.js";
import { SqliteStore } from "../../src/storage/sqlite/store.js";
import type { AddressRow, AddressStore, PolicyStore, PolicyVersionRow, SpendQuery, SpendStore } from "../../src/storage/types.js";
import { IN_CI, loudSkip } from "../support/redis.js";
import { SHARED_POSTGRES_URL, adminQuery, dropSchema, postgresReachable, uniqueSchema } from "../support/postgres.js";

/**
 * One contract for the policy's durable state, two stores: SqliteStore (a temp file) and
 * PostgresStore (one schema for this file, emptied before each test, dropped at the end) —
 * PolicyStore, AddressStore and SpendStore, with their audit entries in the audit chain. A
 * "process" is a store instance with its own connection (SQLite) or pool (PostgreSQL). Times are
 * fixed values; nothing sleeps. Without a PostgreSQL the PostgreSQL half is skipped loudly, except
 * in CI (CI=true), where it fails.
 */

const pgUp = await postgresReachable(SHARED_POSTGRES_URL);
const runPg = pgUp || IN_CI;
if (!runPg) loudSkip("the PostgreSQL half of the policy-store contract suite", `no PostgreSQL answers at ${SHARED_POSTGRES_URL}`);

const T0 = 1_700_000_000_000;
const DAY = 86_400_000;

interface Handle {
  readonly policies: PolicyStore;
  readonly addresses: AddressStore;
  readonly spend: SpendStore;
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
    sqliteDir = mkdtempSync(join(tmpdir(), "pc-policy-contract-"));
    sqlitePath = join(sqliteDir, "portcullis.db");
    return Promise.resolve();
  },
  open: () => {
    const store = new SqliteStore(sqlitePath);
    return Promise.resolve({ policies: store.policies, addresses: store.addresses, spend: store.spend, audit: store.audit, close: () => store.close() });
  },
  end: () => {
    if (sqliteDir !== null) rmSync(sqliteDir, { recursive: true, force: true });
    return Promise.resolve();
  },
};

const SCHEMA = uniqueSchema("policy");
const openPg = (options: Partial<PostgresStoreOptions> = {}): Promise<PostgresStore> =>
  PostgresStore.open({ url: SHARED_POSTGRES_URL, schema: SCHEMA, poolSize: 4, ...options });
const postgresBackend: Backend = {
  name: "postgres",
  async start() {
    await (await openPg()).close();
  },
  async reset() {
    await adminQuery(
      SHARED_POSTGRES_URL,
      `TRUNCATE ${["policy_versions", "address_book", "policy_spend", "audit_log", "audit_checkpoints", "audit_keys", "audit_archives", "audit_spill_replays"].map((t) => `${SCHEMA}.${t}`).join(", ")}`,
    );
  },
  async open() {
    const store = await openPg();
    return { policies: store.policies, addresses: store.addresses, spend: store.spend, audit: store.audit, close: () => store.close() };
  },
  end: () => dropSchema(SHARED_POSTGRES_URL, SCHEMA),
};

const backends: Backend[] = runPg ? [sqliteBackend, postgresBackend] : [sqliteBackend];

async function stored(source: AuditSource): Promise<StoredEntry[]> {
  const out: StoredEntry[] = [];
  for await (const chunk of source.entryChunks()) out.push(...chunk);
  return out;
}

function version(v: number, overrides: Partial<PolicyVersionRow> = {}): PolicyVersionRow {
  return { version: v, document: `{"rules":[],"v":${v}}`, digest: `${v}`.repeat(64).slice(0, 64), rules: v, createdAt: T0 + v, createdBy: "cli:ops", ...overrides };
}

let addressCounter = 0;
function address(overrides: Partial<AddressRow> = {}): AddressRow {
  addressCounter++;
  return {
    id: `adr_${String(addressCounter).padStart(8, "0")}`,
    account: "alice",
    asset: "BTC",
    address: "bc1qexample",
    network: null,
    tag: null,
    label: "cold wallet",
    addedAt: T0,
    addedBy: "key:k1",
    usableFrom: T0 + DAY,
    removedAt: null,
    removedBy: null,
    ...overrides,
  };
}

const dec = (coefficient: bigint, scale: number): Decimal => ({ coefficient, scale });

/** a - b compared by value: -1, 0, 1. */
function compare(a: Decimal, b: Decimal): number {
  const scale = Math.max(a.scale, b.scale);
  const x = a.coefficient * 10n ** BigInt(scale - a.scale);
  const y = b.coefficient * 10n ** BigInt(scale - b.scale);
  return x < y ? -1 : x > y ? 1 : 0;
}

function add(a: Decimal, b: Decimal): Decimal {
  const scale = Math.max(a.scale, b.scale);
  return dec(a.coefficient * 10n ** BigInt(scale - a.scale) + b.coefficient * 10n ** BigInt(scale - b.scale), scale);
}

function query(overrides: Partial<SpendQuery> = {}): SpendQuery {
  return { kind: "withdrawal", keyId: "k1", account: "alice", at: T0, windows: [{ per: "key", windowMs: DAY }, { per: "account", windowMs: DAY }], ...overrides };
}

/** Records `value` unconditionally (at `at`, under `ref`). */
function record(spend: SpendStore, ref: string, value: Decimal | null, at: number, who: { keyId?: string | null; account?: string | null; kind?: string } = {}): Promise<unknown> {
  const keyId = who.keyId === undefined ? "k1" : who.keyId;
  const account = who.account === undefined ? "alice" : who.account;
  const kind = who.kind ?? "withdrawal";
  return spend.decide(query({ keyId, account, kind, at }), () => ({ record: { ref, kind, keyId, account, asset: "BTC", value, at }, result: null }));
}

describe.each(backends)("policy store contract: $name", (backend) => {
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

  // --- policy versions ---------------------------------------------------------------------------

  it("inserts versions in order, each audited (policy.change) in its transaction; refuses any other version", async () => {
    const a = await instance();
    expect(await a.policies.latest()).toBeNull();
    expect(await a.policies.versions(10)).toEqual([]);
    expect(await a.policies.insert(version(2), {})).toEqual({ ok: false, latest: 0 });
    expect(await a.policies.insert(version(1), { reason: "first" })).toEqual({ ok: true });
    expect(await a.policies.insert(version(1), {})).toEqual({ ok: false, latest: 1 });
    expect(await a.policies.insert(version(3), {})).toEqual({ ok: false, latest: 1 });
    expect(await a.policies.insert(version(0), {})).toEqual({ ok: false, latest: 1 });
    expect(await a.policies.insert(version(2, { createdBy: "key:k9" }), {})).toEqual({ ok: true });

    // Another process reads what this one wrote.
    const b = await instance();
    expect(await b.policies.latest()).toEqual({ version: 2, digest: version(2).digest });
    expect(await b.policies.get(1)).toEqual(version(1));
    expect(await b.policies.get(3)).toBeUndefined();
    expect(await b.policies.get(-1)).toBeUndefined();
    const { document: _d2, ...summary2 } = version(2, { createdBy: "key:k9" });
    const { document: _d1, ...summary1 } = version(1);
    expect(await b.policies.versions(10)).toEqual([summary2, summary1]);
    expect(await b.policies.versions(1)).toEqual([summary2]);

    const entries = await stored(b.audit);
    expect(entries.map((e) => [e.event, e.at])).toEqual([
      ["policy.change", T0 + 1],
      ["policy.change", T0 + 2],
    ]);
    expect(decodeEntry(entries[0]?.entry ?? "")).toMatchObject({ actor: "cli:ops", detail: { reason: "first", version: 1, previous: 0, rules: 1, digest: version(1).digest } });
    expect(decodeEntry(entries[1]?.entry ?? "")).toMatchObject({ actor: "key:k9", detail: { version: 2, previous: 1 } });
    expect(await verifyAudit(b.audit)).toMatchObject({ ok: true, problem: null, verified: 2 });
  });

  it("two processes racing to apply the next version: exactly one wins, the other is told the latest", async () => {
    const a = await instance();
    const b = await instance();
    expect(await a.policies.insert(version(1), {})).toEqual({ ok: true });
    const results = await Promise.all([
      a.policies.insert(version(2, { document: '{"by":"a"}' }), {}),
      b.policies.insert(version(2, { document: '{"by":"b"}' }), {}),
      a.policies.insert(version(2, { document: '{"by":"a2"}' }), {}),
      b.policies.insert(version(2, { document: '{"by":"b2"}' }), {}),
    ]);
    expect(results.filter((r) => r.ok)).toHaveLength(1);
    expect(results.filter((r) => !r.ok)).toEqual([
      { ok: false, latest: 2 },
      { ok: false, latest: 2 },
      { ok: false, latest: 2 },
    ]);
    const winner = ['{"by":"a"}', '{"by":"b"}', '{"by":"a2"}', '{"by":"b2"}'][results.findIndex((r) => r.ok)];
    expect((await b.policies.get(2))?.document).toBe(winner);
    expect((await stored(a.audit)).map((e) => e.event)).toEqual(["policy.change", "policy.change"]);
    expect(await verifyAudit(a.audit)).toMatchObject({ ok: true, verified: 2 });
  });

  // --- address books -----------------------------------------------------------------------------

  it("adds an entry once (same asset, address, network and tag), keeps its cooldown, audits address.add", async () => {
    const a = await instance();
    const first = address();
    expect(await a.addresses.add(first)).toEqual({ ok: true });
    // The same entry again, under another id: the first one is answered, nothing is written.
    expect(await a.addresses.add(address({ label: "again", addedAt: T0 + 5 }))).toEqual({ ok: false, existing: first });
    // Another tag, another network, another asset, another account: other entries.
    const tagged = address({ tag: "memo-1" });
    const networked = address({ network: "bitcoin" });
    const eth = address({ asset: "ETH", address: "0xabc" });
    const bob = address({ account: "bob" });
    for (const row of [tagged, networked, eth, bob]) expect(await a.addresses.add(row)).toEqual({ ok: true });
    expect(await a.addresses.add(address({ tag: "memo-1" }))).toEqual({ ok: false, existing: tagged });

    const b = await instance();
    expect(await b.addresses.get(first.id)).toEqual(first);
    expect(await b.addresses.get("adr_missing")).toBeUndefined();
    expect(await b.addresses.lookup("alice", "BTC", "bc1qexample")).toEqual([first, tagged, networked]);
    expect(await b.addresses.lookup("alice", "BTC", "bc1qother")).toEqual([]);
    expect(await b.addresses.lookup("carol", "BTC", "bc1qexample")).toEqual([]);
    // usable_from is the cooldown's end, kept exactly.
    expect((await b.addresses.get(first.id))?.usableFrom).toBe(T0 + DAY);

    const entries = await stored(b.audit);
    expect(entries.map((e) => [e.event, e.account])).toEqual([
      ["address.add", "alice"],
      ["address.add", "alice"],
      ["address.add", "alice"],
      ["address.add", "alice"],
      ["address.add", "bob"],
    ]);
    expect(decodeEntry(entries[0]?.entry ?? "")).toMatchObject({
      actor: "key:k1",
      detail: { id: first.id, asset: "BTC", address: "bc1qexample", network: null, tag: null, label: "cold wallet", usableFrom: T0 + DAY },
    });
    expect(await verifyAudit(b.audit)).toMatchObject({ ok: true, verified: 5 });
  });

  it("lists by account and asset in order, removed entries only when asked", async () => {
    const a = await instance();
    const rows = [
      address({ account: "bob", asset: "ETH", address: "0x1", addedAt: T0 + 3 }),
      address({ account: "alice", asset: "ETH", address: "0x2", addedAt: T0 + 2 }),
      address({ account: "alice", asset: "BTC", address: "bc1b", addedAt: T0 + 2 }),
      address({ account: "alice", asset: "BTC", address: "bc1a", addedAt: T0 + 1 }),
    ];
    for (const r of rows) expect(await a.addresses.add(r)).toEqual({ ok: true });
    const [bobEth, aliceEth, aliceBtc2, aliceBtc1] = rows as [AddressRow, AddressRow, AddressRow, AddressRow];
    const removed = await a.addresses.remove(aliceBtc2.id, null, "cli:ops", T0 + 10);
    expect(removed).toEqual({ ...aliceBtc2, removedAt: T0 + 10, removedBy: "cli:ops" });
    expect(await a.addresses.list({ limit: 10 })).toEqual([aliceBtc1, aliceEth, bobEth]);
    expect(await a.addresses.list({ limit: 10, removed: true })).toEqual([aliceBtc1, removed, aliceEth, bobEth]);
    expect(await a.addresses.list({ account: "alice", limit: 10 })).toEqual([aliceBtc1, aliceEth]);
    expect(await a.addresses.list({ account: "alice", asset: "BTC", limit: 10, removed: true })).toEqual([aliceBtc1, removed]);
    expect(await a.addresses.list({ asset: "ETH", limit: 1 })).toEqual([aliceEth]);
  });

  it("removes an entry only in the book and of the account given, audits address.remove; the address can be added again", async () => {
    const a = await instance();
    const row = address();
    await a.addresses.add(row);
    expect(await a.addresses.remove(row.id, "bob", "key:k2", T0 + 5)).toBeUndefined();
    expect(await a.addresses.remove("adr_missing", null, "cli:ops", T0 + 5)).toBeUndefined();
    const removed = await a.addresses.remove(row.id, "alice", "key:k1", T0 + 6);
    expect(removed).toEqual({ ...row, removedAt: T0 + 6, removedBy: "key:k1" });
    expect(await a.addresses.remove(row.id, null, "cli:ops", T0 + 7)).toBeUndefined();
    expect(await a.addresses.lookup("alice", "BTC", row.address)).toEqual([]);
    expect(await a.addresses.get(row.id)).toEqual(removed);
    // Removed: a new entry for the same address is a new entry, with a new cooldown.
    const again = address({ addedAt: T0 + 8, usableFrom: T0 + 8 + DAY });
    expect(await a.addresses.add(again)).toEqual({ ok: true });
    expect(await a.addresses.lookup("alice", "BTC", row.address)).toEqual([again]);

    const entries = await stored(a.audit);
    expect(entries.map((e) => [e.event, e.account, e.at])).toEqual([
      ["address.add", "alice", T0],
      ["address.remove", "alice", T0 + 6],
      ["address.add", "alice", T0 + 8],
    ]);
    expect(decodeEntry(entries[1]?.entry ?? "")).toMatchObject({ actor: "key:k1", detail: { id: row.id, asset: "BTC", address: row.address, network: null, tag: null } });
    expect(await verifyAudit(a.audit)).toMatchObject({ ok: true, verified: 3 });
  });

  it("two processes racing to add the same entry, and to remove it: one add, one removal, one entry each", async () => {
    const a = await instance();
    const b = await instance();
    const candidates = Array.from({ length: 6 }, (_, i) => address({ label: `try ${i}`, addedAt: T0 + i }));
    const added = await Promise.all(candidates.map((row, i) => (i % 2 === 0 ? a : b).addresses.add(row)));
    const winners = candidates.filter((_, i) => added[i]?.ok === true);
    expect(winners).toHaveLength(1);
    const winner = winners[0] as AddressRow;
    for (const r of added) if (!r.ok) expect(r.existing).toEqual(winner);
    expect(await a.addresses.list({ limit: 10, removed: true })).toEqual([winner]);

    const removals = await Promise.all([a, b, a, b].map((h, i) => h.addresses.remove(winner.id, null, `cli:p${i}`, T0 + 100 + i)));
    expect(removals.filter((r) => r !== undefined)).toHaveLength(1);
    expect((await stored(b.audit)).map((e) => e.event)).toEqual(["address.add", "address.remove"]);
    expect(await verifyAudit(b.audit)).toMatchObject({ ok: true, verified: 2 });
  });

  it("bad input is refused whole: no row, no audit entry", async () => {
    const a = await instance();
    // The database's own refusals, by code: SQLite's extended result codes, PostgreSQL's SQLSTATEs.
    const notNull = backend.name === "sqlite" ? { code: "SQLITE_CONSTRAINT_NOTNULL" } : { code: "23502" };
    const check = backend.name === "sqlite" ? { code: "SQLITE_CONSTRAINT_CHECK" } : { code: "23514" };
    // A missing required field rejects; nothing is added, nothing audited.
    await expect(a.addresses.add({ ...address(), label: null as unknown as string })).rejects.toMatchObject(notNull);
    await expect(a.addresses.add({ ...address(), account: null as unknown as string })).rejects.toMatchObject(notNull);
    expect(await a.addresses.list({ limit: 10, removed: true })).toEqual([]);
    // A policy version without its document.
    await expect(a.policies.insert({ ...version(1), document: null as unknown as string }, {})).rejects.toMatchObject(notNull);
    expect(await a.policies.latest()).toBeNull();
    // A negative amount is not a spend.
    await expect(record(a.spend, "op_neg", dec(-5n, 0), T0)).rejects.toMatchObject(check);
    // The engine's fault (choose throws) records nothing and rejects with its error.
    await expect(
      a.spend.decide(query(), () => {
        throw new RangeError("engine fault");
      }),
    ).rejects.toThrow("engine fault");
    expect(await a.spend.sums(query({ at: T0 + 1 }))).toEqual([dec(0n, 0), dec(0n, 0)]);
    expect(await stored(a.audit)).toEqual([]);
  });

  // --- the velocity ledger -----------------------------------------------------------------------

  it("sums exactly (decimals of any scale), per key and per account, over (at - window, at]", async () => {
    const a = await instance();
    expect(await a.spend.sums(query())).toEqual([dec(0n, 0), dec(0n, 0)]);
    await record(a.spend, "op_1", dec(1n, 1), T0 - DAY); // 0.1, exactly at the window's start: outside
    await record(a.spend, "op_2", dec(1n, 1), T0 - DAY + 1); // 0.1
    await record(a.spend, "op_3", dec(2n, 1), T0 - 5); // 0.2
    await record(a.spend, "op_4", dec(150n, 2), T0, { keyId: "k2" }); // 1.50, another key of alice
    await record(a.spend, "op_5", dec(2005n, 3), T0, { keyId: "k3", account: "bob" }); // 2.005, bob
    await record(a.spend, "op_6", dec(10n ** 30n + 1n, 20), T0, { kind: "transfer" }); // 10000000000.00000000000000000001
    const b = await instance();
    // 0.1 + 0.2 is 0.3 exactly; alice's account adds 1.50: 1.80 (the largest scale).
    expect(await b.spend.sums(query())).toEqual([dec(3n, 1), dec(180n, 2)]);
    expect(await b.spend.sums(query({ windows: [{ per: "key", windowMs: 2 * DAY }] }))).toEqual([dec(4n, 1)]);
    expect(await b.spend.sums(query({ keyId: "k3", account: "bob" }))).toEqual([dec(2005n, 3), dec(2005n, 3)]);
    expect(await b.spend.sums(query({ kind: "transfer", windows: [{ per: "account", windowMs: 1 }] }))).toEqual([dec(10n ** 30n + 1n, 20)]);
    // No key (or no account): nothing to sum.
    expect(await b.spend.sums(query({ keyId: null }))).toEqual([dec(0n, 0), dec(180n, 2)]);
    expect(await b.spend.sums(query({ account: null, keyId: null }))).toEqual([dec(0n, 0), dec(0n, 0)]);

    // A value not known (no reference price) makes the window's sum unknown.
    await record(b.spend, "op_7", null, T0 + 1, { keyId: "k2" });
    // (At T0 + 1 the window no longer holds op_2.)
    expect(await a.spend.sums(query({ at: T0 + 1 }))).toEqual([dec(2n, 1), null]);

    // forget takes back what was recorded under the ref.
    expect(await a.spend.forget("op_7")).toBe(1);
    expect(await a.spend.forget("op_7")).toBe(0);
    expect(await a.spend.sums(query({ at: T0 + 1 }))).toEqual([dec(2n, 1), dec(170n, 2)]);
    // The ledger is not audited.
    expect(await stored(a.audit)).toEqual([]);
  });

  it("forgets entries older than 31 days as new ones are recorded", async () => {
    const a = await instance();
    await record(a.spend, "op_old", dec(7n, 0), T0);
    const wide = query({ at: T0 + 40 * DAY, windows: [{ per: "key", windowMs: 60 * DAY }] });
    expect(await a.spend.sums(wide)).toEqual([dec(7n, 0)]);
    await record(a.spend, "op_new", dec(1n, 0), T0 + 40 * DAY);
    expect(await a.spend.sums(wide)).toEqual([dec(1n, 0)]);
  });

  it("a decision reads and records in one step: two processes racing never pass a cap only one fits under", async () => {
    const a = await instance();
    const b = await instance();
    const cap = dec(150n, 1); // 15.0
    const each = dec(15n, 1); // 1.5: exactly ten fit
    const decisions = Array.from({ length: 24 }, (_, i) => {
      const keyId = `k${i % 3}`;
      const q = query({ keyId, at: T0 + i, windows: [{ per: "key", windowMs: DAY }, { per: "account", windowMs: DAY }] });
      return (i % 2 === 0 ? a : b).spend.decide(q, (sums) => {
        const account = sums[1];
        if (account === null || account === undefined || compare(add(account, each), cap) > 0) return { record: null, result: "deny" as const };
        return { record: { ref: `op_${i}`, kind: "withdrawal", keyId, account: "alice", asset: "BTC", value: each, at: T0 + i }, result: "allow" as const };
      });
    });
    const results = await Promise.all(decisions);
    expect(results.filter((r) => r === "allow")).toHaveLength(10);
    expect(results.filter((r) => r === "deny")).toHaveLength(14);
    expect((await a.spend.sums(query({ at: T0 + 100 })))[1]).toEqual(cap);
    const perKey = await Promise.all(["k0", "k1", "k2"].map(async (k) => (await b.spend.sums(query({ keyId: k, at: T0 + 100 })))[0] ?? dec(0n, 0)));
    expect(perKey.reduce(add, dec(0n, 0))).toEqual(cap);
  });
});

describe.runIf(runPg)("policy store: PostgreSQL only", () => {
  const schemas: string[] = [];
  const stores: PostgresStore[] = [];
  const open = async (options: Partial<PostgresStoreOptions>): Promise<PostgresStore> => {
    const s = await openPg(options);
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

  it("keeps amounts as NUMERIC text with their scale, and back", () => {
    expect(decimalToNumeric(dec(150n, 2))).toBe("1.50");
    expect(decimalToNumeric(dec(5n, 3))).toBe("0.005");
    expect(decimalToNumeric(dec(0n, 0))).toBe("0");
    expect(decimalToNumeric(dec(-25n, 1))).toBe("-2.5");
    expect(decimalToNumeric(dec(10n ** 30n + 1n, 20))).toBe("10000000000.00000000000000000001");
    expect(numericToDecimal("1.50")).toEqual(dec(150n, 2));
    expect(numericToDecimal("0.005")).toEqual(dec(5n, 3));
    expect(numericToDecimal("42")).toEqual(dec(42n, 0));
    expect(() => decimalToNumeric(dec(1n, -1))).toThrow(RangeError);
    expect(() => decimalToNumeric({ coefficient: 1 as unknown as bigint, scale: 0 })).toThrow(RangeError);
    expect(() => numericToDecimal("NaN")).toThrow(RangeError);
  });

  it("an audited change whose entry cannot be written is rolled back (the audit lock held past the lock timeout)", async () => {
    const name = schema("plock");
    const s = await open({ schema: name, lockTimeoutMs: 100 });
    const row = address();
    expect(await s.addresses.add(row)).toEqual({ ok: true });
    const holder = new pg.Client({ connectionString: SHARED_POSTGRES_URL });
    await holder.connect();
    try {
      await holder.query("BEGIN");
      await holder.query("SELECT pg_advisory_xact_lock($1, $2)", [LOCK_AUDIT, schemaLockKey(name)]);
      await expect(s.policies.insert(version(1), {})).rejects.toMatchObject({ code: "55P03" });
      await expect(s.addresses.add(address({ address: "bc1qnew" }))).rejects.toMatchObject({ code: "55P03" });
      await expect(s.addresses.remove(row.id, null, "cli:ops", T0 + 1)).rejects.toMatchObject({ code: "55P03" });
      await holder.query("ROLLBACK");
    } finally {
      await holder.end();
    }
    expect(await s.policies.latest()).toBeNull();
    expect(await s.addresses.list({ limit: 10, removed: true })).toEqual([row]);
    expect((await stored(s.audit)).map((e) => e.event)).toEqual(["address.add"]);
    // Once the lock is free, the same changes go through, audited.
    expect(await s.policies.insert(version(1), {})).toEqual({ ok: true });
    expect((await s.addresses.remove(row.id, null, "cli:ops", T0 + 1))?.removedAt).toBe(T0 + 1);
    expect(await verifyAudit(s.audit)).toMatchObject({ ok: true, verified: 3 });
  });

  it("a new version waits for the policy lock; a spend decision waits only for its own windows", async () => {
    const name = schema("pwait");
    const s = await open({ schema: name, lockTimeoutMs: 100 });
    const holder = new pg.Client({ connectionString: SHARED_POSTGRES_URL });
    await holder.connect();
    try {
      await holder.query("BEGIN");
      await holder.query("SELECT pg_advisory_xact_lock($1, $2)", [LOCK_POLICY, schemaLockKey(name)]);
      await expect(s.policies.insert(version(1), {})).rejects.toMatchObject({ code: "55P03" });
      await holder.query("ROLLBACK");
    } finally {
      await holder.end();
    }
    expect(await s.policies.latest()).toBeNull();

    await record(s.spend, "op_first", dec(1n, 0), T0);
    // Another process in the middle of a decision on alice's account window (holding its lock):
    // bob's decision goes on, alice's next one waits for it (and here times out, recording nothing).
    const outside = new pg.Client({ connectionString: SHARED_POSTGRES_URL });
    await outside.connect();
    try {
      await outside.query("BEGIN");
      await outside.query("SELECT pg_advisory_xact_lock($1::bigint)", [nameLockKey(name, "spend:account", "withdrawal\u0000alice").toString()]);
      await expect(record(s.spend, "op_bob", dec(2n, 0), T0 + 1, { keyId: "k9", account: "bob" })).resolves.toBeNull();
      await expect(record(s.spend, "op_alice", dec(3n, 0), T0 + 1, { keyId: "k2", account: "alice" })).rejects.toMatchObject({ code: "55P03" });
      await outside.query("ROLLBACK");
    } finally {
      await outside.end();
    }
    expect(await s.spend.sums(query({ at: T0 + 2 }))).toEqual([dec(1n, 0), dec(1n, 0)]);
    expect(await s.spend.sums(query({ keyId: "k9", account: "bob", at: T0 + 2 }))).toEqual([dec(2n, 0), dec(2n, 0)]);
  });

  it("migration 4 creates the tables with exact amounts", async () => {
    const name = schema("pmig");
    await open({ schema: name });
    const rows = await adminQuery<{ version: number }>(SHARED_POSTGRES_URL, `SELECT version FROM ${name}.schema_migrations ORDER BY version`);
    expect(rows.map((r) => r.version).slice(0, 4)).toEqual([1, 2, 3, 4]);
    const cols = await adminQuery<{ data_type: string }>(
      SHARED_POSTGRES_URL,
      "SELECT data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'policy_spend' AND column_name = 'value'",
      [name],
    );
    expect(cols).toEqual([{ data_type: "numeric" }]);
  });
});
