import Database from "better-sqlite3";
import { generateKeyPairSync, sign } from "node:crypto";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { decodeEntry, encodeEntry } from "../../src/audit/canonical.js";
import { GENESIS, type SignedCheckpoint, chainHash, checkpointMessage, sealMessage } from "../../src/audit/chain.js";
import { type ArchivableAudit, archiveAudit } from "../../src/audit/archive.js";
import { AuditError } from "../../src/audit/errors.js";
import type { AuditEventName, AuditFields } from "../../src/audit/events.js";
import type { AppendOptions, AppendResult, ArchiveRecord, AuditKey, AuditReader, AuditSource, AuditStore, EntryQuery, StoredEntry } from "../../src/audit/store.js";
import type { SigningKeyProvider } from "../../src/contract/signing.js";
import { openPostgresAuditReadOnly } from "../../src/storage/postgres/audit-reader.js";
import { verifyAudit } from "../../src/audit/verify.js";
import { LOCK_AUDIT, migrate, postgresMigrations, schemaLockKey } from "../../src/storage/postgres/migrations.js";
import { PostgresStore, type PostgresStoreOptions } from "../../src/storage/postgres/store.js";
import { SqliteStore } from "../../src/storage/sqlite/store.js";
import type { KeyChange, KeyRow, KeyStore } from "../../src/storage/types.js";
import { keyRecord } from "../support/keys.js";
import { IN_CI, loudSkip } from "../support/redis.js";
import { SHARED_POSTGRES_URL, adminQuery, dropSchema, postgresReachable, uniqueSchema } from "../support/postgres.js";

/**
 * One audit-log contract, two stores: SqliteAudit (on a temp SqliteStore) and PostgresAudit (on a
 * PostgresStore, one schema for this file, emptied before each test, dropped at the end). A
 * "process" is a store instance with its own connection (SQLite) or pool (PostgreSQL). Times are
 * fixed values; nothing sleeps. Without a PostgreSQL the PostgreSQL half is skipped loudly, except
 * in CI (CI=true), where it fails.
 */

const pgUp = await postgresReachable(SHARED_POSTGRES_URL);
const runPg = pgUp || IN_CI;
if (!runPg) loudSkip("the PostgreSQL half of the audit-store contract suite", `no PostgreSQL answers at ${SHARED_POSTGRES_URL}`);

const T0 = 1_700_000_000_000;

/** What both audit stores offer beyond AuditStore and AuditSource (SQLite synchronously, PostgreSQL with promises). */
interface MarkedAudit {
  appendMarked(entries: readonly AuditFields[], options: AppendOptions, marker: { id: string; previous: string | null } | null): AppendResult | Promise<AppendResult>;
  marked(id: string): { first: number; entries: number } | undefined | Promise<{ first: number; entries: number } | undefined>;
  unmark(id: string): void | Promise<void>;
  commitArchive(record: ArchiveRecord, entry: AuditFields): boolean | Promise<boolean>;
  entryChunks(): Iterable<readonly StoredEntry[]> | AsyncIterable<readonly StoredEntry[]>;
}

interface Handle {
  readonly audit: AuditStore & AuditSource & MarkedAudit & AuditReader & ArchivableAudit;
  readonly keys: KeyStore;
  close(): Promise<void>;
}

interface Backend {
  readonly name: "sqlite" | "postgres";
  start(): Promise<void>;
  reset(): Promise<void>;
  /** A new instance ("process") on the current data. */
  open(): Promise<Handle>;
  /** Runs SQL on the data behind the store's back (an intruder with database access). */
  tamper(sql: string): Promise<void>;
  end(): Promise<void>;
}

let sqliteDir: string | null = null;
let sqlitePath = "";
const sqliteBackend: Backend = {
  name: "sqlite",
  start: () => Promise.resolve(),
  reset: () => {
    if (sqliteDir !== null) rmSync(sqliteDir, { recursive: true, force: true });
    sqliteDir = mkdtempSync(join(tmpdir(), "pc-audit-contract-"));
    sqlitePath = join(sqliteDir, "portcullis.db");
    return Promise.resolve();
  },
  open: () => {
    const store = new SqliteStore(sqlitePath);
    return Promise.resolve({ audit: store.audit, keys: store, close: () => store.close() });
  },
  tamper: (sql) => {
    const db = new Database(sqlitePath);
    try {
      db.exec(sql);
    } finally {
      db.close();
    }
    return Promise.resolve();
  },
  end: () => {
    if (sqliteDir !== null) rmSync(sqliteDir, { recursive: true, force: true });
    return Promise.resolve();
  },
};

const SCHEMA = uniqueSchema("audit");
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
      `TRUNCATE ${["keys", "key_changes", "audit_log", "audit_checkpoints", "audit_keys", "audit_archives", "audit_spill_replays"].map((t) => `${SCHEMA}.${t}`).join(", ")}`,
    );
  },
  async open() {
    const store = await openPg();
    return { audit: store.audit, keys: store, close: () => store.close() };
  },
  tamper: async (sql) => {
    await adminQuery(SHARED_POSTGRES_URL, `SET search_path TO ${SCHEMA}; ${sql}`);
  },
  end: () => dropSchema(SHARED_POSTGRES_URL, SCHEMA),
};

const backends: Backend[] = runPg ? [sqliteBackend, postgresBackend] : [sqliteBackend];

function fields(n: number, overrides: Partial<AuditFields> = {}): AuditFields {
  return { event: "request.allow", at: T0 + n, actor: `key:k${n}`, key: `pck_test_v1_${String(n).padStart(28, "0")}`, account: "alice", requestId: `r${n}`, status: 200, ...overrides };
}

function batch(from: number, count: number): AuditFields[] {
  return Array.from({ length: count }, (_, i) => fields(from + i));
}

async function stored(source: { entryChunks(): Iterable<readonly StoredEntry[]> | AsyncIterable<readonly StoredEntry[]> }): Promise<StoredEntry[]> {
  const out: StoredEntry[] = [];
  for await (const chunk of source.entryChunks()) out.push(...chunk);
  return out;
}

/** The hashes of `entries` appended to an empty chain, computed here from the definition. */
function expectedChain(entries: readonly AuditFields[]): { texts: string[]; hashes: string[] } {
  const texts: string[] = [];
  const hashes: string[] = [];
  let prev = GENESIS;
  entries.forEach((f, i) => {
    const text = encodeEntry(i + 1, f);
    prev = chainHash(prev, text);
    texts.push(text);
    hashes.push(prev);
  });
  return { texts, hashes };
}

const signingKey = generateKeyPairSync("ed25519");
const AUDIT_KEY: AuditKey = {
  kid: "audit-1",
  algorithm: "ed25519",
  publicKey: signingKey.publicKey.export({ type: "spki", format: "pem" }).toString(),
  provider: "envelope",
  createdAt: T0,
};

function checkpoint(seq: number, hash: string, at = T0 + 10_000): SignedCheckpoint {
  const facts = { seq, hash, at, kid: AUDIT_KEY.kid };
  return { ...facts, signature: sign(null, checkpointMessage(facts), signingKey.privateKey) };
}

/** Signs with the test's audit key (archiveAudit's seal). */
const testSigner: SigningKeyProvider = {
  name: "test",
  open: (purpose) =>
    Promise.resolve({
      purpose,
      provider: "envelope",
      kid: AUDIT_KEY.kid,
      algorithm: "ed25519",
      publicKey: signingKey.publicKey,
      sign: (data: Uint8Array) => Promise.resolve(sign(null, data, signingKey.privateKey)),
    }),
};

const ev = (name: string): AuditEventName => name as AuditEventName;
const K1 = `pck_test_v1_${"1".repeat(28)}`;
const K2 = `pck_test_v1_${"2".repeat(28)}`;

/** Entries for the query tests: seq i + 1 is QUERY_ENTRIES[i]. Times repeat (20, 50) on purpose. */
const QUERY_ENTRIES: AuditFields[] = [
  { event: "request.allow", at: T0 + 10, actor: `key:${K1}`, key: K1, account: "alice" },
  { event: "key.create", at: T0 + 20, actor: "cli:test", key: K2, account: "bob" },
  { event: "request.deny", at: T0 + 20, actor: `key:${K1}`, key: K1, account: "alice", code: "SIGNATURE_INVALID", status: 401 },
  { event: "session.create", at: T0 + 30, actor: `key:${K2}`, key: K2, account: "bob" },
  { event: "key.suspend", at: T0 + 40, actor: "cli:test", key: K1, account: "alice" },
  { event: "policy.change", at: T0 + 50, actor: "cli:test" },
  { event: "key.revoke", at: T0 + 50, actor: "cli:test", key: K2, account: "bob" },
  // Names beside "key." in byte order: "key-x" sorts before it, "keys" after "key/".
  { event: ev("key-x.y"), at: T0 + 60, actor: "cli:test", key: K1, account: "alice" },
  { event: ev("keys.list"), at: T0 + 70, actor: "cli:test", key: K1, account: "alice" },
  { event: "request.allow", at: T0 + 80, actor: `key:${K2}`, key: K2, account: "bob" },
];

const seqs = (rows: readonly StoredEntry[]): number[] => rows.map((r) => r.seq);

let idCounter = 0;
function hmacRow(): KeyRow {
  idCounter++;
  const b = Buffer.alloc(23, 0xab);
  b.writeUInt8(1, 0);
  b.writeUInt32BE(1, 1);
  return {
    ...keyRecord({ id: `pck_test_v1_${String(idCounter).padStart(28, "0")}`, createdAt: T0, updatedAt: T0, account: "acct-audit" }),
    secretEnvelope: b,
    passphraseHash: null,
    passphraseEnvelope: null,
  };
}

function change(action: KeyChange["action"], at = T0 + 1_000, detail: Record<string, unknown> = {}): KeyChange {
  return { action, actor: "cli:test", at, detail };
}

describe.each(backends)("audit store contract: $name", (backend) => {
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

  it("appends entries after the head: gap-free seq, each hash over its predecessor, hashAt", async () => {
    const { audit } = await instance();
    expect(await audit.head()).toEqual({ seq: 0, hash: GENESIS });
    const all = batch(1, 5);
    const a = await audit.append(all.slice(0, 3));
    const want = expectedChain(all);
    expect(a).toEqual({ first: 1, head: { seq: 3, hash: want.hashes[2] }, duplicate: false });
    const b = await audit.append(all.slice(3));
    expect(b).toEqual({ first: 4, head: { seq: 5, hash: want.hashes[4] }, duplicate: false });
    expect(await audit.head()).toEqual({ seq: 5, hash: want.hashes[4] });
    expect(await audit.hashAt(2)).toBe(want.hashes[1]);
    expect(await audit.hashAt(6)).toBeUndefined();
    // An empty batch appends nothing.
    expect(await audit.append([])).toEqual({ first: 6, head: { seq: 5, hash: want.hashes[4] }, duplicate: false });
  });

  it("reads entries back: the canonical text, the query columns, in seq order", async () => {
    const { audit } = await instance();
    const all = [fields(1), fields(2, { key: undefined, account: undefined, event: "session.create" }), fields(3, { detail: { reason: "x", n: 2 } })];
    await audit.append(all);
    const rows = await stored(audit);
    const want = expectedChain(all);
    expect(rows.map((r) => r.seq)).toEqual([1, 2, 3]);
    expect(rows.map((r) => r.entry)).toEqual(want.texts);
    expect(rows.map((r) => r.hash)).toEqual(want.hashes);
    expect(rows.map((r) => [r.at, r.event, r.key, r.account])).toEqual([
      [T0 + 1, "request.allow", all[0]?.key, "alice"],
      [T0 + 2, "session.create", null, null],
      [T0 + 3, "request.allow", all[2]?.key, "alice"],
    ]);
    expect(decodeEntry(rows[2]?.entry ?? "")).toMatchObject({ seq: 3, detail: { reason: "x", n: 2 } });
  });

  it("keeps checkpoints (one per seq) and the keys that signed them; the chain verifies against them", async () => {
    const { audit } = await instance();
    await audit.registerKey(AUDIT_KEY);
    await audit.registerKey(AUDIT_KEY);
    expect(await audit.keys()).toEqual([AUDIT_KEY]);
    const { head } = await audit.append(batch(1, 4));
    const c2 = checkpoint(2, (await audit.hashAt(2)) ?? "");
    const c4 = checkpoint(4, head.hash, T0 + 20_000);
    expect(await audit.latestCheckpoint()).toBeUndefined();
    expect(await audit.addCheckpoint(c4)).toBe(true);
    expect(await audit.addCheckpoint(c2)).toBe(true);
    expect(await audit.addCheckpoint(checkpoint(2, head.hash))).toBe(false);
    expect(await audit.latestCheckpoint()).toEqual(c4);
    expect((await audit.checkpoints()).map((c) => c.seq)).toEqual([2, 4]);
    await audit.append(batch(5, 1));
    const report = await verifyAudit(audit);
    expect(report).toMatchObject({ ok: true, problem: null, verified: 5, first: 1, last: 5, checkpoints: 2, unconfirmed: 1, latestCheckpoint: { seq: 4, kid: "audit-1" } });
    expect(report.keys.map((k) => k.kid)).toEqual(["audit-1"]);
  });

  it("a checkpoint the chain does not match, or a forged one, fails verification", async () => {
    const { audit } = await instance();
    await audit.registerKey(AUDIT_KEY);
    await audit.append(batch(1, 3));
    await audit.addCheckpoint(checkpoint(2, "f".repeat(64)));
    expect((await verifyAudit(audit)).problem).toMatchObject({ code: "CHECKPOINT_MISMATCH", seq: 2 });
    const forged = { ...checkpoint(3, (await audit.hashAt(3)) ?? ""), at: T0 + 99 };
    await audit.addCheckpoint(forged);
    expect((await verifyAudit(audit)).problem).toMatchObject({ code: "CHECKPOINT_INVALID", seq: 3 });
  });

  it("replays a spill file exactly once, even replayed twice at once by two processes", async () => {
    const a = await instance();
    const b = await instance();
    await a.audit.append(batch(1, 2));
    const spilled = batch(10, 3);
    const first = await a.audit.append(spilled, { spillId: "spill-1" });
    expect(first).toMatchObject({ first: 3, head: { seq: 5 }, duplicate: false });
    const again = await b.audit.append(spilled, { spillId: "spill-1" });
    expect(again).toEqual({ first: 6, head: first.head, duplicate: true });
    // Two processes replaying one file at the same moment: one appends it, the other finds it done.
    const both = await Promise.all([a.audit.append(batch(20, 2), { spillId: "spill-2" }), b.audit.append(batch(20, 2), { spillId: "spill-2" })]);
    expect(both.map((r) => r.duplicate).sort()).toEqual([false, true]);
    const rows = await stored(a.audit);
    expect(rows.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(rows.filter((r) => r.entry.includes('"requestId":"r20"'))).toHaveLength(1);
    expect((await verifyAudit(b.audit)).ok).toBe(true);
  });

  it("writes a batch's marker with its entries, replacing the writer's previous one", async () => {
    const { audit } = await instance();
    const one = await audit.appendMarked(batch(1, 2), {}, { id: "batch:w:1", previous: null });
    expect(await audit.marked("batch:w:1")).toEqual({ first: 1, entries: 2 });
    const two = await audit.appendMarked(batch(3, 3), {}, { id: "batch:w:2", previous: "batch:w:1" });
    expect([one.first, two.first]).toEqual([1, 3]);
    expect(await audit.marked("batch:w:1")).toBeUndefined();
    expect(await audit.marked("batch:w:2")).toEqual({ first: 3, entries: 3 });
    await audit.unmark("batch:w:2");
    expect(await audit.marked("batch:w:2")).toBeUndefined();
    expect((await audit.head()).seq).toBe(5);
  });

  it("verification reports an altered entry text, an altered hash and a deleted entry", async () => {
    const { audit } = await instance();
    await audit.append(batch(1, 4));
    expect(await verifyAudit(audit)).toMatchObject({ ok: true, verified: 4 });

    await backend.tamper("UPDATE audit_log SET entry = replace(entry, '\"status\":200', '\"status\":201') WHERE seq = 2");
    expect((await verifyAudit(audit)).problem).toMatchObject({ code: "ENTRY_ALTERED", seq: 2 });

    await backend.reset();
    const fresh = (await instance()).audit;
    await fresh.append(batch(1, 4));
    await backend.tamper(`UPDATE audit_log SET hash = '${"a".repeat(64)}' WHERE seq = 3`);
    expect((await verifyAudit(fresh)).problem).toMatchObject({ code: "ENTRY_ALTERED", seq: 3 });

    await backend.reset();
    const third = (await instance()).audit;
    await third.append(batch(1, 4));
    await backend.tamper("DELETE FROM audit_log WHERE seq = 2");
    expect((await verifyAudit(third)).problem).toMatchObject({ code: "ENTRY_MISSING", seq: 2 });
  });

  it("archives a stored prefix: the record replaces its entries and checkpoints, the chain continues after it and verifies", async () => {
    const { audit } = await instance();
    await audit.registerKey(AUDIT_KEY);
    await audit.append(batch(1, 4));
    await audit.addCheckpoint(checkpoint(2, (await audit.hashAt(2)) ?? ""));
    const archive = async (first: number, last: number, prev: string): Promise<{ record: ArchiveRecord; ok: boolean }> => {
      const facts = { first, last, prev, hash: (await audit.hashAt(last)) ?? "none", at: T0 + 50_000, kid: AUDIT_KEY.kid };
      const record: ArchiveRecord = { ...facts, file: `segment-${first}-${last}.jsonl`, digest: "d".repeat(64), signature: sign(null, sealMessage(facts), signingKey.privateKey) };
      const entry: AuditFields = { event: "audit.archive", at: T0 + 50_000, actor: "cli:test", detail: { first, last } };
      return { record, ok: await audit.commitArchive(record, entry) };
    };
    // Not the stored prefix: refused, nothing changes.
    expect((await archive(2, 3, GENESIS)).ok).toBe(false);
    const { record, ok } = await archive(1, 3, GENESIS);
    expect(ok).toBe(true);
    expect(await audit.archives()).toEqual([record]);
    expect(await audit.checkpoints()).toEqual([]);
    expect((await stored(audit)).map((r) => [r.seq, r.event])).toEqual([
      [4, "request.allow"],
      [5, "audit.archive"],
    ]);
    expect(await audit.hashAt(2)).toBeUndefined();
    // The same range again: not the prefix any more.
    expect(await audit.commitArchive(record, { event: "audit.archive", at: T0, actor: "cli:test" })).toBe(false);
    expect(await verifyAudit(audit)).toMatchObject({ ok: true, verified: 2, first: 4, last: 5, archived: { segments: 1, entries: 3, filesVerified: 0 } });
    // Everything stored archived: the head is the archive's, and the next entry follows it.
    const head = await audit.head();
    const whole = await archive(4, 5, record.hash);
    expect(whole.ok).toBe(true);
    expect(await audit.head()).toEqual({ seq: 6, hash: (await audit.hashAt(6)) ?? "" });
    expect(head.seq).toBe(5);
    // The stored entries gone too (removed behind the store's back): the head is the last archive's.
    await backend.tamper("DELETE FROM audit_log");
    expect(await audit.head()).toEqual({ seq: 5, hash: whole.record.hash });
    expect((await audit.append(batch(7, 1))).first).toBe(6);
    expect(await verifyAudit(audit)).toMatchObject({ ok: true, verified: 1, first: 6, last: 6, archived: { segments: 2, entries: 5 } });
  });

  it("query: filters by key, account, events (names and resource.*), since (inclusive) and until (exclusive); oldest first, limited", async () => {
    const { audit } = await instance();
    await audit.append(QUERY_ENTRIES);
    const q = async (query: Partial<EntryQuery>): Promise<number[]> => seqs(await audit.query({ limit: 100, ...query }));
    expect(await q({})).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(await q({ key: K1 })).toEqual([1, 3, 5, 8, 9]);
    expect(await q({ account: "bob" })).toEqual([2, 4, 7, 10]);
    expect(await q({ key: K1, account: "bob" })).toEqual([]);
    expect(await q({ events: ["request.allow"] })).toEqual([1, 10]);
    expect(await q({ events: ["request.allow", "request.deny"] })).toEqual([1, 3, 10]);
    // resource.* is every event of that resource, and only those: not key-x.*, not keys.*.
    expect(await q({ events: ["key.*"] })).toEqual([2, 5, 7]);
    expect(await q({ events: ["key.*", "session.create"], account: "bob" })).toEqual([2, 4, 7]);
    expect(await q({ events: ["keys.*"] })).toEqual([9]);
    expect(await q({ events: ["nothing.*"] })).toEqual([]);
    // An empty list filters nothing (as no list).
    expect(await q({ events: [] })).toHaveLength(10);
    expect(await q({ since: T0 + 20 })).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(await q({ until: T0 + 20 })).toEqual([1]);
    expect(await q({ since: T0 + 20, until: T0 + 50 })).toEqual([2, 3, 4, 5]);
    expect(await q({ since: T0 + 20, until: T0 + 20 })).toEqual([]);
    // Fractional bounds keep their meaning (at >= 20.5 excludes 20; at < 40.5 includes 40).
    expect(await q({ since: T0 + 20.5, until: T0 + 40.5 })).toEqual([4, 5]);
    expect(await q({ key: K2, since: T0 + 25, events: ["key.*"] })).toEqual([7]);
    expect(await q({ limit: 3 })).toEqual([1, 2, 3]);
    expect(await q({ limit: 0 })).toEqual([]);
    // A negative limit is no limit (SQLite's LIMIT -1).
    expect(await q({ limit: -1 })).toHaveLength(10);
    // Values no entry can hold match nothing (PostgreSQL text cannot hold U+0000).
    expect(await q({ key: "a\u0000b" })).toEqual([]);
    expect(await q({ events: ["key\u0000.*"] })).toEqual([]);
    // The rows are the stored entries, columns and all.
    const [row] = await audit.query({ key: K1, events: ["request.deny"], limit: 1 });
    expect(row).toEqual((await stored(audit))[2]);
    expect(decodeEntry(row?.entry ?? "")).toMatchObject({ seq: 3, code: "SIGNATURE_INVALID", status: 401 });
  });

  it("query: newest first when descending, and pages by afterSeq in both directions' terms", async () => {
    const { audit } = await instance();
    await audit.append(QUERY_ENTRIES);
    expect(seqs(await audit.query({ limit: 3, descending: true }))).toEqual([10, 9, 8]);
    expect(seqs(await audit.query({ key: K1, limit: 2, descending: true }))).toEqual([9, 8]);
    // afterSeq keeps entries after it, whatever the order (a tail --follow's new entries).
    expect(seqs(await audit.query({ afterSeq: 7, limit: 100, descending: true }))).toEqual([10, 9, 8]);
    expect(seqs(await audit.query({ afterSeq: 7.5, limit: 100 }))).toEqual([8, 9, 10]);
    // Paging as export does: pages of 2 after the last seq seen, until an empty page.
    const pages: number[][] = [];
    let after = 0;
    for (;;) {
      const page = await audit.query({ account: "alice", limit: 2, afterSeq: after });
      if (page.length === 0) break;
      pages.push(seqs(page));
      after = page[page.length - 1]?.seq ?? after;
    }
    expect(pages).toEqual([[1, 3], [5, 8], [9]]);
    expect(await audit.query({ afterSeq: 10, limit: 5 })).toEqual([]);
    // A limit that is not an integer is the caller's mistake, on both stores.
    await expect(Promise.resolve().then(() => audit.query({ limit: 1.5 }))).rejects.toThrow();
  });

  it("firstAtOrAfter and bounds: the first entry at or after a time, the stored range", async () => {
    const { audit } = await instance();
    expect(await audit.bounds()).toBeNull();
    expect(await audit.firstAtOrAfter(T0)).toBeNull();
    await audit.append(QUERY_ENTRIES);
    expect(await audit.bounds()).toEqual({ first: 1, last: 10 });
    expect(await audit.firstAtOrAfter(T0)).toBe(1);
    expect(await audit.firstAtOrAfter(T0 + 20)).toBe(2);
    expect(await audit.firstAtOrAfter(T0 + 21)).toBe(4);
    expect(await audit.firstAtOrAfter(T0 + 20.5)).toBe(4);
    expect(await audit.firstAtOrAfter(T0 + 50)).toBe(6);
    expect(await audit.firstAtOrAfter(T0 + 81)).toBeNull();
  });

  it("archiveAudit archives a prefix (by time or by seq) into a signed segment; the log verifies, segment and all", async () => {
    const { audit } = await instance();
    const dir = mkdtempSync(join(tmpdir(), "pc-audit-archive-"));
    try {
      await audit.registerKey(AUDIT_KEY);
      await audit.append(QUERY_ENTRIES);
      await audit.addCheckpoint(checkpoint(4, (await audit.hashAt(4)) ?? ""));
      const readSegment = (file: string): Buffer | null => {
        try {
          return readFileSync(join(dir, file));
        } catch {
          return null;
        }
      };
      // Everything before T0 + 40: entries 1–4 (entry 5 is at T0 + 40).
      const first = await archiveAudit({ audit, signer: testSigner, actor: "cli:test", before: T0 + 40, dir, now: () => T0 + 100 });
      expect(first).toMatchObject({ first: 1, last: 4, entries: 4, file: "audit-000000000001-000000000004.jsonl" });
      expect(readdirSync(dir)).toEqual([first?.file]);
      expect(await audit.bounds()).toEqual({ first: 5, last: 11 });
      expect(seqs(await audit.query({ events: ["audit.archive"], limit: 10 }))).toEqual([11]);
      expect(await audit.query({ until: T0 + 40, limit: 10 })).toEqual([]);
      expect(await verifyAudit(audit, { readSegment })).toMatchObject({ ok: true, verified: 11, first: 5, last: 11, archived: { segments: 1, entries: 4, filesVerified: 1 } });
      // Then by seq: the next prefix follows the first.
      const second = await archiveAudit({ audit, signer: testSigner, actor: "cli:test", upTo: 7, dir, now: () => T0 + 200 });
      expect(second).toMatchObject({ first: 5, last: 7 });
      expect(await verifyAudit(audit, { readSegment })).toMatchObject({ ok: true, verified: 12, first: 8, last: 12, archived: { segments: 2, entries: 7, filesVerified: 2 } });
      // Nothing older than the stored entries: nothing to archive.
      expect(await archiveAudit({ audit, signer: testSigner, actor: "cli:test", before: T0, dir })).toBeNull();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("archiveAudit refuses a tampered range (AUDIT_ARCHIVE_REFUSED) and archives nothing", async () => {
    const { audit } = await instance();
    const dir = mkdtempSync(join(tmpdir(), "pc-audit-archive-"));
    try {
      await audit.append(QUERY_ENTRIES);
      await backend.tamper("UPDATE audit_log SET entry = replace(entry, '\"status\":401', '\"status\":200') WHERE seq = 3");
      const err = await archiveAudit({ audit, signer: testSigner, actor: "cli:test", upTo: 5, dir }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AuditError);
      expect(err).toMatchObject({ code: "AUDIT_ARCHIVE_REFUSED", message: expect.stringContaining("entry #3") as unknown });
      expect(readdirSync(dir)).toEqual([]);
      expect(await audit.archives()).toEqual([]);
      expect(await audit.bounds()).toEqual({ first: 1, last: 10 });
      // A range after the tampered entry is not a prefix: archiving always starts at the first stored entry.
      expect((await verifyAudit(audit)).problem).toMatchObject({ code: "ENTRY_ALTERED", seq: 3 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("every key change is an entry of the chain, written with the change", async () => {
    const { audit, keys } = await instance();
    await audit.append(batch(1, 1));
    const row = hmacRow();
    await keys.insert(row, change("create", T0 + 5));
    await keys.transition(row.id, ["active"], "suspended", "checking", change("suspend", T0 + 6, { reason: "checking" }));
    const rows = await stored(audit);
    expect(rows.map((r) => [r.seq, r.event, r.key, r.account])).toEqual([
      [1, "request.allow", "pck_test_v1_0000000000000000000000000001", "alice"],
      [2, "key.create", row.id, "acct-audit"],
      [3, "key.suspend", row.id, "acct-audit"],
    ]);
    expect(decodeEntry(rows[2]?.entry ?? "")).toMatchObject({ actor: "cli:test", at: T0 + 6, detail: { reason: "checking" } });
    // A refused change (the key is not active) writes no entry.
    expect(await keys.transition(row.id, ["active"], "revoked", null, change("revoke", T0 + 7))).toMatchObject({ ok: false });
    expect((await audit.head()).seq).toBe(3);
    expect(await verifyAudit(audit)).toMatchObject({ ok: true, verified: 3 });
  });
});

describe.runIf(runPg)("PostgreSQL audit: one chain across processes, key changes all or nothing", () => {
  const schemas: string[] = [];
  const stores: PostgresStore[] = [];
  const schema = (tag: string): string => {
    const name = uniqueSchema(tag);
    schemas.push(name);
    return name;
  };
  const open = async (options: Partial<PostgresStoreOptions> & { schema: string }): Promise<PostgresStore> => {
    const s = await PostgresStore.open({ url: SHARED_POSTGRES_URL, poolSize: 3, ...options });
    stores.push(s);
    return s;
  };

  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()));
  });
  afterAll(async () => {
    for (const name of schemas) await dropSchema(SHARED_POSTGRES_URL, name);
  });

  it("several processes appending at once extend ONE chain: gap-free, no duplicates, verifies end to end", async () => {
    const name = schema("chain");
    // Four "processes": four stores, four pools; each appends batches and changes keys concurrently.
    const procs = await Promise.all([0, 1, 2, 3].map(() => open({ schema: name })));
    const BATCHES = 15;
    const PER = 3;
    const work = procs.map(async (p, w) => {
      for (let i = 0; i < BATCHES; i++) {
        const entries = Array.from({ length: PER }, (_, j) => fields(1000 * w + 10 * i + j, { requestId: `w${w}-b${i}-e${j}` }));
        await p.audit.append(entries);
        if (i % 5 === 0) await p.insert(hmacRow(), change("create", T0 + i));
      }
    });
    await Promise.all(work);
    const keyEntries = 4 * Math.ceil(BATCHES / 5);
    const total = 4 * BATCHES * PER + keyEntries;

    const counts = await adminQuery<{ n: string; distinct_seq: string; min: string; max: string; distinct_req: string }>(
      SHARED_POSTGRES_URL,
      `SELECT COUNT(*) AS n, COUNT(DISTINCT seq) AS distinct_seq, MIN(seq) AS min, MAX(seq) AS max,
              COUNT(DISTINCT substring(entry from '"requestId":"([^"]+)"')) AS distinct_req FROM ${name}.audit_log`,
    );
    expect(counts[0]).toEqual({ n: String(total), distinct_seq: String(total), min: "1", max: String(total), distinct_req: String(4 * BATCHES * PER) });
    // Each batch is contiguous (appended under the lock in one statement).
    const rows = await stored((procs[0] as PostgresStore).audit);
    for (const r of rows) {
      const m = /"requestId":"w(\d)-b(\d+)-e(\d)"/.exec(r.entry);
      if (m !== null && m[3] !== "0") expect(rows[r.seq - 2]?.entry).toContain(`"requestId":"w${m[1]}-b${m[2]}-e${Number(m[3]) - 1}"`);
    }
    const report = await verifyAudit((procs[3] as PostgresStore).audit);
    expect(report).toMatchObject({ ok: true, problem: null, verified: total, first: 1, last: total });
    expect((await (procs[1] as PostgresStore).audit.head()).seq).toBe(total);
  });

  it("snapshot(): verification reads one consistent view while another process appends and archives", async () => {
    const name = schema("snap");
    const a = await open({ schema: name });
    const b = await open({ schema: name });
    await a.audit.registerKey(AUDIT_KEY);
    await a.audit.append(batch(1, 4));
    const view = await a.audit.snapshot();
    try {
      // Another process archives entries 1–2 and appends after the view was taken.
      const facts = { first: 1, last: 2, prev: GENESIS, hash: (await b.audit.hashAt(2)) ?? "", at: T0, kid: AUDIT_KEY.kid };
      const record: ArchiveRecord = { ...facts, file: "s.jsonl", digest: "d".repeat(64), signature: sign(null, sealMessage(facts), signingKey.privateKey) };
      expect(await b.audit.commitArchive(record, { event: "audit.archive", at: T0, actor: "cli:test" })).toBe(true);
      await b.audit.append(batch(5, 2));
      expect(await verifyAudit(view)).toMatchObject({ ok: true, verified: 4, first: 1, last: 4, archived: { segments: 0 } });
    } finally {
      await view.close();
    }
    expect(await verifyAudit(a.audit)).toMatchObject({ ok: true, verified: 5, first: 3, last: 7, archived: { segments: 1, entries: 2 } });
  });

  it("an append waits for the chain's lock at most lockTimeoutMs, then fails and appends nothing", async () => {
    const name = schema("lock");
    const s = await open({ schema: name });
    await s.audit.append(batch(1, 1));
    const holder = new pg.Client({ connectionString: SHARED_POSTGRES_URL });
    await holder.connect();
    try {
      await holder.query("BEGIN");
      await holder.query("SELECT pg_advisory_xact_lock($1, $2)", [LOCK_AUDIT, schemaLockKey(name)]);
      await expect(s.audit.append(batch(2, 2), { lockTimeoutMs: 50 })).rejects.toMatchObject({ code: "55P03" });
      await holder.query("ROLLBACK");
    } finally {
      await holder.end();
    }
    expect((await s.audit.head()).seq).toBe(1);
    expect((await s.audit.append(batch(2, 2))).first).toBe(2);
    // A lock timeout that is not a number of ms is the caller's mistake.
    await expect(s.audit.append(batch(4, 1), { lockTimeoutMs: Number.NaN })).rejects.toBeInstanceOf(TypeError);
    await expect(s.audit.append(batch(4, 1), { lockTimeoutMs: -1 })).rejects.toBeInstanceOf(TypeError);
    expect((await s.audit.head()).seq).toBe(3);
  });

  it("a key change whose audit entry cannot be written is rolled back, and an entry never outlives its change", async () => {
    const name = schema("kc");
    let failHook = false;
    const s = await open({
      schema: name,
      lockTimeoutMs: 100,
      keyChangeHook: () => (failHook ? Promise.reject(new Error("later step failed")) : Promise.resolve()),
    });
    const row = hmacRow();
    await s.insert(row, change("create", T0));

    // The entry cannot be written (another process holds the chain's lock past the lock timeout): no change.
    const holder = new pg.Client({ connectionString: SHARED_POSTGRES_URL });
    await holder.connect();
    try {
      await holder.query("BEGIN");
      await holder.query("SELECT pg_advisory_xact_lock($1, $2)", [LOCK_AUDIT, schemaLockKey(name)]);
      await expect(s.transition(row.id, ["active"], "revoked", null, change("revoke", T0 + 1))).rejects.toMatchObject({ code: "55P03" });
      const other = hmacRow();
      await expect(s.insert(other, change("create", T0 + 2))).rejects.toMatchObject({ code: "55P03" });
      expect(await s.get(other.id)).toBeUndefined();
      await holder.query("ROLLBACK");
    } finally {
      await holder.end();
    }
    expect((await s.get(row.id))?.status).toBe("active");

    // A later step of the change fails after its entry was written: the entry goes with it.
    failHook = true;
    await expect(s.transition(row.id, ["active"], "suspended", null, change("suspend", T0 + 3))).rejects.toThrow("later step failed");
    expect((await s.get(row.id))?.status).toBe("active");

    const feed = await adminQuery<{ action: string }>(SHARED_POSTGRES_URL, `SELECT action FROM ${name}.key_changes ORDER BY seq`);
    const entries = await stored(s.audit);
    expect(feed.map((r) => r.action)).toEqual(["create"]);
    expect(entries.map((e) => [e.seq, e.event, e.key])).toEqual([[1, "key.create", row.id]]);

    // A rotation records two changes in one transaction: two consecutive entries.
    failHook = false;
    const successor = hmacRow();
    expect(await s.rotate(row.id, successor, T0 + 60_000, change("rotate", T0 + 4, { to: successor.id }), change("create", T0 + 4))).toMatchObject({ ok: true });
    expect((await stored(s.audit)).map((e) => [e.seq, e.event, e.key])).toEqual([
      [1, "key.create", row.id],
      [2, "key.rotate", row.id],
      [3, "key.create", successor.id],
    ]);
    expect(await verifyAudit(s.audit)).toMatchObject({ ok: true, verified: 3 });
  });

  it("the same key change gives the same entry text on SQLite and PostgreSQL", async () => {
    const name = schema("same");
    const s = await open({ schema: name });
    const dir = mkdtempSync(join(tmpdir(), "pc-audit-same-"));
    const lite = new SqliteStore(join(dir, "portcullis.db"));
    try {
      const row = hmacRow();
      for (const store of [s, lite] as KeyStore[]) {
        await store.insert(row, change("create", T0, { scopes: ["read"], note: "é\u2028" }));
        await store.transition(row.id, ["active"], "suspended", "why", change("suspend", T0 + 1, { reason: "why" }));
      }
      const pgRows = await stored(s.audit);
      const liteRows = await stored(lite.audit);
      expect(pgRows.map((r) => [r.entry, r.hash])).toEqual(liteRows.map((r) => [r.entry, r.hash]));
      expect(pgRows).toHaveLength(2);
    } finally {
      await lite.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("migration 3 imports the key changes recorded before it as the chain's first entries", async () => {
    const name = schema("import");
    const pool = new pg.Pool({ connectionString: SHARED_POSTGRES_URL, max: 1 });
    try {
      const client = await pool.connect();
      try {
        await migrate(client, name, postgresMigrations.filter((m) => m.version < 3));
        const row = hmacRow();
        await client.query(`INSERT INTO ${name}.keys (id, environment, account, algorithm, secret_envelope, scopes, ip_allowlist, dialects, status, created_at, updated_at)
          VALUES ($1, 'test', 'acct-old', 'hmac-sha256', $2, '[]', '[]', '[]', 'active', $3, $3)`, [row.id, row.secretEnvelope, T0]);
        await client.query(`INSERT INTO ${name}.key_changes (key_id, action, actor, at, detail) VALUES ($1, 'create', 'cli:old', $2, '{}'), ($1, 'suspend', 'cli:old', $3, '{"reason":"r"}')`, [
          row.id,
          T0,
          T0 + 1,
        ]);
      } finally {
        client.release();
      }
    } finally {
      await pool.end();
    }
    const s = await open({ schema: name });
    const entries = await stored(s.audit);
    expect(entries.map((e) => [e.seq, e.event, e.account])).toEqual([
      [1, "key.create", "acct-old"],
      [2, "key.suspend", "acct-old"],
    ]);
    expect(decodeEntry(entries[1]?.entry ?? "")).toMatchObject({ actor: "cli:old", detail: { reason: "r", imported: true } });
    expect(await verifyAudit(s.audit)).toMatchObject({ ok: true, verified: 2 });
  });
});

describe.runIf(runPg)("PostgreSQL audit: the read-only reader (audit verify|tail|query|export)", () => {
  const schemas: string[] = [];
  afterAll(async () => {
    for (const name of schemas) await dropSchema(SHARED_POSTGRES_URL, name);
  });

  it("reads what the store wrote, and the server refuses any write made through it (25006)", async () => {
    const name = uniqueSchema("reader");
    schemas.push(name);
    const store = await PostgresStore.open({ url: SHARED_POSTGRES_URL, schema: name, poolSize: 2 });
    try {
      await store.audit.registerKey(AUDIT_KEY);
      await store.audit.append(QUERY_ENTRIES);
      await store.audit.addCheckpoint(checkpoint(10, (await store.audit.hashAt(10)) ?? ""));
    } finally {
      await store.close();
    }
    const reader = await openPostgresAuditReadOnly({ url: SHARED_POSTGRES_URL, schema: name }, { spillDir: "/spill", archiveDir: "/archive" });
    expect(reader).not.toBeNull();
    if (reader === null) return;
    try {
      const { audit } = reader;
      expect([audit.spillDir, audit.archiveDir]).toEqual(["/spill", "/archive"]);
      expect(seqs(await audit.query({ events: ["key.*"], limit: 10 }))).toEqual([2, 5, 7]);
      expect(await audit.bounds()).toEqual({ first: 1, last: 10 });
      const view = await audit.snapshot();
      try {
        expect(await verifyAudit(view)).toMatchObject({ ok: true, verified: 10, checkpoints: 1, unconfirmed: 0 });
      } finally {
        await view.close();
      }
      // Every write through the reader's sessions is refused by the server: read_only_sql_transaction.
      await expect(audit.append(batch(1, 1))).rejects.toMatchObject({ code: "25006" });
      await expect(audit.addCheckpoint(checkpoint(3, "a".repeat(64)))).rejects.toMatchObject({ code: "25006" });
      // (A record that would be committed: the range is the stored prefix, its hash the stored one.)
      await expect(audit.commitArchive({ first: 1, last: 1, prev: GENESIS, hash: (await audit.hashAt(1)) ?? "", file: "f", digest: "d", at: T0, kid: "k", signature: Buffer.alloc(64) }, fields(1))).rejects.toMatchObject({
        code: "25006",
      });
      expect(await audit.head()).toMatchObject({ seq: 10 });
      expect(await audit.checkpoints()).toHaveLength(1);
    } finally {
      await reader.close();
    }
  });

  it("null for a schema without the audit tables; nothing is created or migrated", async () => {
    const name = uniqueSchema("noaudit");
    schemas.push(name);
    expect(await openPostgresAuditReadOnly({ url: SHARED_POSTGRES_URL, schema: name }, { spillDir: null, archiveDir: null })).toBeNull();
    await adminQuery(SHARED_POSTGRES_URL, `CREATE SCHEMA ${name}; CREATE TABLE ${name}.audit_log (seq BIGINT)`);
    expect(await openPostgresAuditReadOnly({ url: SHARED_POSTGRES_URL, schema: name }, { spillDir: null, archiveDir: null })).toBeNull();
    const tables = await adminQuery<{ relname: string }>(SHARED_POSTGRES_URL, "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'", [name]);
    expect(tables.map((t) => t.relname)).toEqual(["audit_log"]);
  });

  it("an unreachable server is DURABLE_STORE_UNREACHABLE, naming the server; bad settings are TypeErrors", async () => {
    await expect(openPostgresAuditReadOnly({ url: "postgres://postgres@127.0.0.1:1/test", schema: "portcullis" }, { spillDir: null, archiveDir: null })).rejects.toMatchObject({
      code: "DURABLE_STORE_UNREACHABLE",
      message: expect.stringContaining("127.0.0.1:1/test") as unknown,
    });
    await expect(openPostgresAuditReadOnly({ url: SHARED_POSTGRES_URL, schema: "Bad-Schema" }, { spillDir: null, archiveDir: null })).rejects.toBeInstanceOf(TypeError);
    await expect(openPostgresAuditReadOnly({ url: "mysql://x/y", schema: "portcullis" }, { spillDir: null, archiveDir: null })).rejects.toBeInstanceOf(TypeError);
  });
});
