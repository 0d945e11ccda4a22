/**
 * The durable writer's worker thread (storage/sqlite/writer.ts), as `portcullis start` runs it:
 * a worker that dies mid-batch loses nothing that was acknowledged and appends nothing twice,
 * close() flushes and never hangs on a dead worker, and last-use times and behaviour states go
 * through it. Real SQLite, a real worker thread; the crashes are the worker exiting inside its
 * append (a drill the writer offers to tests), before or after its commit.
 */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { decodeEntry } from "../../src/audit/canonical.js";
import { AuditLog, type CommitInfo } from "../../src/audit/log.js";
import { initDataDir } from "../../src/core/data-dir.js";
import { type SqliteDataDir, openSqliteDataDir } from "../support/data-dir.js";
import { SqliteAudit } from "../../src/storage/sqlite/audit.js";
import { SqliteStore } from "../../src/storage/sqlite/store.js";
import { SqliteWriter } from "../../src/storage/sqlite/writer.js";
import type { WriterFault } from "../../src/storage/sqlite/writer-protocol.js";
import { FakeClock, makeCore, signRequest, type TestCore } from "../support/harness.js";
import { ManualTimers, decision, rows } from "./support.js";
import Database from "better-sqlite3";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Setup {
  readonly dir: string;
  readonly data: SqliteDataDir;
  readonly writer: SqliteWriter;
  readonly log: AuditLog;
  readonly clock: FakeClock;
  readonly commits: CommitInfo[];
  readonly deaths: Error[];
  readonly requestIds: () => string[];
  readonly spillFiles: () => string[];
}

/** A data directory whose audit log appends through a writer (with `fault`, a crash drill). */
async function setup(fault?: WriterFault): Promise<Setup> {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-writer-"));
  await initDataDir(dir, "test");
  const data = await openSqliteDataDir(dir);
  const deaths: Error[] = [];
  const writer = new SqliteWriter({ path: join(dir, "portcullis.db"), audit: data.store.audit, behaviour: data.store.localBehaviour, onDeath: (err) => deaths.push(err), ...(fault === undefined ? {} : { fault }) });
  const clock = new FakeClock();
  const commits: CommitInfo[] = [];
  const log = new AuditLog({ store: writer, signer: null, now: clock.now, timers: new ManualTimers(), checkpointIntervalMs: 0, lockTimeoutMs: 200, onCommit: (c) => commits.push(c) });
  const raw = new Database(join(dir, "portcullis.db"), { readonly: true });
  cleanups.push(async () => {
    await log.close();
    await writer.close();
    raw.close();
    await data.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const spill = join(dir, "audit-spill");
  return {
    dir,
    data,
    writer,
    log,
    clock,
    commits,
    deaths,
    requestIds: () => rows(raw).map((r) => decodeEntry(r.entry)?.requestId ?? "?"),
    spillFiles: () => (existsSync(spill) ? readdirSync(spill).filter((n) => n.endsWith(".jsonl")) : []),
  };
}

const ids = (from: number, to: number): string[] => Array.from({ length: to - from + 1 }, (_, i) => `req-${from + i}`);

describe("the durable writer's worker thread", () => {
  it("appends group commits on its own connection: one gap-free chain with the store's own entries", async () => {
    const s = await setup();
    for (let i = 1; i <= 3; i++) s.log.record(decision(i));
    await s.log.flush();
    // A change's entry written in between on another connection (as a CLI beside the gateway writes one).
    const other = new Database(join(s.dir, "portcullis.db"));
    other.pragma("busy_timeout = 2000");
    const otherAudit = new SqliteAudit(other, { spillDir: null, archiveDir: null });
    other.transaction(() => otherAudit.appendWithin([decision(100)]))();
    other.close();
    for (let i = 4; i <= 5; i++) s.log.record(decision(i));
    await s.log.flush();
    expect(s.requestIds()).toEqual(["req-1", "req-2", "req-3", "req-100", "req-4", "req-5"]);
    expect(s.commits.map((c) => [c.to, c.first, c.last])).toEqual([["store", 1, 3], ["store", 5, 6]]);
    expect(await s.writer.head()).toMatchObject({ seq: 6 });
  });

  it("a worker that dies after committing a batch, before answering: the batch counts as committed, once", async () => {
    const s = await setup({ append: 2, when: "after-commit" });
    for (let i = 1; i <= 3; i++) s.log.record(decision(i));
    await s.log.flush();
    for (let i = 4; i <= 6; i++) s.log.record(decision(i));
    await s.log.flush();
    expect(s.deaths).toHaveLength(1);
    // Found committed by its marker: acknowledged from the store, never spilled (which would append it twice).
    expect(s.commits.at(-1)).toMatchObject({ to: "store", first: 4, last: 6, requestIds: ids(4, 6) });
    expect(s.spillFiles()).toEqual([]);
    expect(s.writer.stats).toMatchObject({ deaths: 1, recovered: 1 });
    // The next batch starts a new worker.
    for (let i = 7; i <= 8; i++) s.log.record(decision(i));
    await s.log.flush();
    expect(s.requestIds()).toEqual(ids(1, 8));
    expect(s.log.stats).toMatchObject({ committed: 8, spilled: 0, dropped: 0 });
  });

  it("a worker that dies inside a batch's transaction: nothing of it is written, it spills (acknowledged) and is replayed once", async () => {
    const s = await setup({ append: 2, when: "before-commit" });
    for (let i = 1; i <= 3; i++) s.log.record(decision(i));
    await s.log.flush();
    for (let i = 4; i <= 6; i++) s.log.record(decision(i));
    await s.log.flush();
    expect(s.deaths).toHaveLength(1);
    expect(s.commits.at(-1)).toMatchObject({ to: "spill", requestIds: ids(4, 6) });
    expect(s.spillFiles()).toHaveLength(1);
    expect(s.requestIds()).toEqual(ids(1, 3));
    // After the back-off, the spill file is replayed first, then the new batch.
    s.clock.advance(1_000);
    for (let i = 7; i <= 8; i++) s.log.record(decision(i));
    await s.log.flush();
    expect(s.spillFiles()).toEqual([]);
    expect(s.requestIds()).toEqual(ids(1, 8));
    expect(s.log.stats).toMatchObject({ committed: 5, spilled: 3, replayed: 3, dropped: 0 });
  });

  it("close() flushes what is buffered through the worker", async () => {
    const s = await setup();
    // More than one message's worth: the batch crosses in parts, and is still one transaction.
    for (let i = 1; i <= 700; i++) s.log.record(decision(i));
    expect(s.requestIds()).toEqual([]);
    await s.log.close();
    await s.writer.close();
    expect(s.requestIds()).toEqual(ids(1, 700));
    expect(s.commits.map((c) => [c.first, c.last])).toEqual([[1, 700]]);
  });

  it("close() does not hang on a worker that died, and later requests are refused", async () => {
    const s = await setup();
    s.log.record(decision(1));
    await s.log.flush();
    await s.writer.crash();
    s.log.record(decision(2));
    // The next append starts a new worker.
    await s.log.flush();
    expect(s.requestIds()).toEqual(ids(1, 2));
    await s.writer.crash();
    await s.writer.close();
    await expect(s.writer.touch(new Map([["k", 1]]))).rejects.toThrow(/closed/);
  });

  it("a worker killed while a batch is in flight: whatever the moment, every entry is in the chain exactly once", async () => {
    const s = await setup();
    // 600 entries a batch: each crosses to the worker in three parts (the kill may fall between them).
    for (let round = 0; round < 5; round++) {
      for (let i = 1; i <= 600; i++) s.log.record(decision(round * 600 + i));
      const flushed = s.log.flush();
      if (round % 2 === 1) await new Promise((resolve) => setImmediate(resolve));
      await s.writer.crash();
      await flushed;
      s.clock.advance(1_000);
    }
    await s.log.close();
    await s.writer.close();
    expect(s.requestIds()).toEqual(ids(1, 3000));
    expect(s.log.stats).toMatchObject({ dropped: 0 });
  });
});

describe("increasing-nonce reservations through the worker", () => {
  it("are written by the worker, only ever raised, and read back on the store's connection", async () => {
    const s = await setup();
    const store = new SqliteStore(join(s.dir, "portcullis.db"), { offThreadWrites: true });
    cleanups.push(() => store.close());
    await store.reserve("pck_test_v1_a", 1_000n);
    await store.reserve("pck_test_v1_a", 999n);
    await store.reserve("pck_test_v1_b", 12_345_678_901_234_567_890n);
    expect(await store.reservations()).toEqual(new Map([["pck_test_v1_a", 1_000n], ["pck_test_v1_b", 12_345_678_901_234_567_890n]]));
    await expect(store.reserve("pck_test_v1_a", -1n)).rejects.toThrow(RangeError);
  });
});

describe("last-use times and behaviour states through the worker", () => {
  let c: TestCore;
  afterEach(async () => {
    await c.cleanup();
  });

  it("records the last use of a key through the worker, and the decision's audit entry", async () => {
    c = await makeCore({ offThreadWrites: true });
    const { key, secret } = await c.createKey({});
    const headers = signRequest({ method: "GET", url: "/api/v3/account", keyId: key.id, key: secret ?? "", created: c.clock.seconds });
    const ctx = await c.core.verify({ method: "GET", url: "/api/v3/account", headers, body: Buffer.alloc(0), socketAddress: "127.0.0.1" });
    expect(ctx.denial).toBeNull();
    await c.core.flushUsage();
    expect((await c.core.keys.get(key.id)).lastUsedAt).toBe(c.clock.ms);
  });
});
