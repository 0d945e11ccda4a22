/**
 * Test support for the audit log: a real data directory (SQLite file, keyring), timers the test
 * fires itself (the batch window is never waited for), raw SQL access for tampering, and
 * verification through the same read-only path the CLI uses.
 */
import Database from "better-sqlite3";
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeEntry } from "../../src/audit/canonical.js";
import type { AuditEntry, AuditFields } from "../../src/audit/events.js";
import { AuditLog, type AuditLogOptions, type AuditTimers } from "../../src/audit/log.js";
import { type VerifyOptions, type VerifyReport, verifyAudit } from "../../src/audit/verify.js";
import { EnvelopeSigningKeys } from "../../src/custody/signing.js";
import { initDataDir } from "../../src/core/data-dir.js";
import { type SqliteDataDir, openSqliteDataDir } from "../support/data-dir.js";
import { type EntryQuery, openAuditReadOnly } from "../../src/storage/sqlite/audit.js";
import { FakeClock } from "../support/harness.js";

/** Timers that fire only when the test says so. */
export class ManualTimers implements AuditTimers {
  private next = 1;
  readonly pending = new Map<number, { fn: () => void; ms: number }>();

  set(fn: () => void, ms: number): unknown {
    const id = this.next++;
    this.pending.set(id, { fn, ms });
    return id;
  }

  clear(handle: unknown): void {
    this.pending.delete(handle as number);
  }

  /** The delays of the timers waiting now, sorted. */
  get delays(): number[] {
    return [...this.pending.values()].map((t) => t.ms).sort((a, b) => a - b);
  }

  /** Fires every timer waiting now whose delay is at most `maxMs` (not the ones they set). */
  fire(maxMs = Number.POSITIVE_INFINITY): number {
    const due = [...this.pending].filter(([, t]) => t.ms <= maxMs);
    for (const [id, t] of due) {
      this.pending.delete(id);
      t.fn();
    }
    return due.length;
  }
}

export interface AuditFixture {
  readonly dir: string;
  readonly data: SqliteDataDir;
  readonly dbPath: string;
  readonly clock: FakeClock;
  readonly timers: ManualTimers;
  readonly signer: EnvelopeSigningKeys;
  /** A writer on this data directory (closed by cleanup). */
  log(options?: Partial<AuditLogOptions>): AuditLog;
  /** A second connection to the database, as an intruder (or another process) would have. */
  raw(): Database.Database;
  /** Verifies the database through the read-only path `portcullis audit verify` uses. */
  verify(options?: VerifyOptions): Promise<VerifyReport>;
  cleanup(): Promise<void>;
}

/**
 * Whether the fixture's log appends through the worker thread's writer (`portcullis start`'s
 * way, storage/sqlite/writer.ts) rather than on the store's connection: the `*.worker.test.ts`
 * files set PORTCULLIS_TEST_AUDIT_WRITER=worker and run the same suites.
 */
export const WORKER_WRITER = (): boolean => process.env.PORTCULLIS_TEST_AUDIT_WRITER === "worker";

export async function auditFixture(): Promise<AuditFixture> {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-audit-"));
  await initDataDir(dir, "test");
  const data = await openSqliteDataDir(dir, { offThreadWrites: WORKER_WRITER() });
  const dbPath = join(dir, "portcullis.db");
  const clock = new FakeClock();
  const timers = new ManualTimers();
  const signer = new EnvelopeSigningKeys(data.store, data.envelope);
  const logs: AuditLog[] = [];
  const raws: Database.Database[] = [];
  return {
    dir,
    data,
    dbPath,
    clock,
    timers,
    signer,
    log(options = {}) {
      const log = new AuditLog({ store: data.store.decisions, signer, now: clock.now, timers, checkpointIntervalMs: 0, ...options });
      logs.push(log);
      return log;
    },
    raw() {
      const db = new Database(dbPath);
      db.pragma("busy_timeout = 2000");
      raws.push(db);
      return db;
    },
    async verify(options = {}) {
      const reader = openAuditReadOnly(dbPath, { spillDir: null, archiveDir: join(dir, "audit-archive") });
      if (reader === null) throw new Error("no audit log");
      try {
        return await verifyAudit(reader.audit, options);
      } finally {
        reader.close();
      }
    },
    async cleanup() {
      for (const log of logs) await log.close();
      for (const db of raws) if (db.open) db.close();
      await data.store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A request decision's facts, distinct per `i`. */
export function decision(i: number, at = Date.UTC(2026, 10, 22, 12, 0, 0) + i): AuditFields {
  return {
    event: i % 3 === 0 ? "request.deny" : "request.allow",
    at,
    actor: `key:pck_test_v1_${String(i).padStart(22, "A")}abcdef`,
    key: `pck_test_v1_${String(i).padStart(22, "A")}abcdef`,
    account: `acct-${i % 5}`,
    client: `203.0.113.${i % 250}`,
    surface: "gateway",
    requestId: `req-${i}`,
    method: "GET",
    path: "/api/v3/account",
    route: "GET /api/v3/account",
    scheme: "native",
    ...(i % 3 === 0 ? { code: "SIGNATURE_INVALID", status: 401 } : {}),
  };
}

/** Entries in the database, as { seq, entry } rows. */
export function rows(db: Database.Database): { seq: number; entry: string; hash: string }[] {
  return db.prepare<[], { seq: number; entry: string; hash: string }>("SELECT seq, entry, hash FROM audit_log ORDER BY seq").all();
}

/** Every file under `dir`, recursively. */
export function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

/** The bytes of every file under `dir`, as one latin1 string (to scan for leaked text). */
export function allBytes(dir: string): string {
  return filesUnder(dir)
    .map((f) => readFileSync(f).toString("latin1"))
    .join("\n");
}

/** The entries of the data directory's log (read-only, as the CLI reads them), oldest first. */
export function readEntries(dataDir: string, q: Partial<EntryQuery> = {}): AuditEntry[] {
  const reader = openAuditReadOnly(join(dataDir, "portcullis.db"), { spillDir: null, archiveDir: null });
  if (reader === null) throw new Error(`no audit log in ${dataDir}`);
  try {
    return reader.audit.query({ limit: 100_000, ...q }).map((r) => {
      const e = decodeEntry(r.entry);
      if (e === null) throw new Error(`entry #${r.seq} is malformed`);
      return e;
    });
  } finally {
    reader.close();
  }
}
