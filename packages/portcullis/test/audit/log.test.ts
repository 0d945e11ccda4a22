/**
 * The writer's durability class for decisions: group commit with a bounded window and buffer,
 * flush at shutdown, spill files while the store cannot take a batch, replay exactly once. Real
 * SQLite; the store is made unavailable the way it happens in production: another connection (a
 * process, a backup) holds the database's write lock. Timers are fired by the test.
 */
import type Database from "better-sqlite3";
import { copyFileSync, existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { decodeEntry } from "../../src/audit/canonical.js";
import type { CommitInfo } from "../../src/audit/log.js";
import { parseSpill } from "../../src/audit/spill.js";
import { type AuditFixture, auditFixture, decision, rows } from "./support.js";

let fx: AuditFixture;
beforeEach(async () => {
  fx = await auditFixture();
});
afterEach(async () => {
  await fx.cleanup();
});

const count = (db: Database.Database): number => (db.prepare<[], { n: number }>("SELECT COUNT(*) AS n FROM audit_log").get()?.n ?? -1);
const requestIds = (db: Database.Database): string[] => rows(db).map((r) => decodeEntry(r.entry)?.requestId ?? "?");
const spillDir = (): string => join(fx.dir, "audit-spill");
const spillFiles = (): string[] => (existsSync(spillDir()) ? readdirSync(spillDir()).filter((n) => n.endsWith(".jsonl")).sort() : []);

/** Holds the database's write lock from another connection until released. */
function lockDatabase(): { release(): void } {
  const other = fx.raw();
  other.exec("BEGIN IMMEDIATE");
  return {
    release: () => {
      other.exec("COMMIT");
    },
  };
}

describe("group commit of decisions", () => {
  it("nothing is written before the window ends; then one transaction takes the whole batch", async () => {
    const commits: CommitInfo[] = [];
    const log = fx.log({ batchWindowMs: 50, onCommit: (c) => commits.push(c) });
    const db = fx.raw();
    for (let i = 1; i <= 3; i++) log.record(decision(i));
    expect(fx.timers.delays).toEqual([50]);
    expect(count(db)).toBe(0);
    expect(log.stats).toMatchObject({ recorded: 3, buffered: 3, committed: 0 });
    fx.timers.fire();
    await log.flush();
    expect(count(db)).toBe(3);
    expect(commits).toEqual([{ entries: 3, to: "store", first: 1, last: 3, spillFile: null, requestIds: ["req-1", "req-2", "req-3"] }]);
    expect(log.stats).toMatchObject({ committed: 3, buffered: 0 });
  });

  it("entries recorded while a commit runs wait for their own window, not for the end of that commit", async () => {
    // Committing at once whatever arrived during the previous commit made each transaction as
    // small as one fsync's worth of requests (about 30 at 10,000 requests/s), at twice the CPU
    // per entry of a window's batch.
    const commits: CommitInfo[] = [];
    let arriving = 2;
    const log = fx.log({
      batchWindowMs: 50,
      onCommit: (c) => {
        commits.push(c);
        while (arriving > 0) log.record(decision(10 + arriving--));
      },
    });
    const db = fx.raw();
    for (let i = 1; i <= 3; i++) log.record(decision(i));
    fx.timers.fire();
    await vi.waitFor(() => {
      expect(commits).toHaveLength(1);
    });
    await new Promise<void>((resolve) => {
      setImmediate(resolve);
    });
    expect(commits).toHaveLength(1);
    expect(count(db)).toBe(3);
    expect(log.stats).toMatchObject({ committed: 3, buffered: 2 });
    expect(fx.timers.delays).toEqual([50]);
    fx.timers.fire();
    await vi.waitFor(() => {
      expect(commits).toHaveLength(2);
    });
    expect(commits[1]).toMatchObject({ entries: 2, first: 4, last: 5 });
    expect(requestIds(db)).toEqual(["req-1", "req-2", "req-3", "req-12", "req-11"]);
  });

  it("flush() commits everything, including what arrives while it commits", async () => {
    let arriving = 1;
    const log = fx.log({
      batchWindowMs: 50,
      onCommit: () => {
        while (arriving > 0) log.record(decision(10 + arriving--));
      },
    });
    log.record(decision(1));
    await log.flush();
    expect(count(fx.raw())).toBe(2);
    expect(log.stats).toMatchObject({ committed: 2, buffered: 0 });
  });

  it("a full batch starts its commit at once, without waiting for the window", async () => {
    const log = fx.log({ batchWindowMs: 10_000, batchEntries: 4 });
    for (let i = 1; i <= 3; i++) log.record(decision(i));
    expect(fx.timers.delays).toEqual([10_000]);
    log.record(decision(4));
    expect(fx.timers.delays).toEqual([0]);
    fx.timers.fire(0);
    await log.flush();
    expect(count(fx.raw())).toBe(4);
  });

  it("close() flushes what is buffered and signs a checkpoint over it", async () => {
    const log = fx.log({ batchWindowMs: 60_000 });
    for (let i = 1; i <= 5; i++) log.record(decision(i));
    await log.close();
    expect(count(fx.raw())).toBe(5);
    expect(log.stats).toMatchObject({ committed: 5, checkpoints: 1, dropped: 0 });
    expect((await fx.verify()).latestCheckpoint?.seq).toBe(5);
    // Recording after close is refused and counted, never thrown.
    log.record(decision(6));
    expect(log.stats.dropped).toBe(1);
  });

  it("checkpoints are signed every interval, and only when the head moved", async () => {
    const log = fx.log({ checkpointIntervalMs: 10_000 });
    expect(fx.timers.delays).toEqual([10_000]);
    log.record(decision(1));
    await log.flush();
    fx.timers.fire(10_000);
    await log.flush();
    expect(log.stats.checkpoints).toBe(1);
    fx.timers.fire(10_000);
    await log.flush();
    expect(log.stats.checkpoints).toBe(1);
    expect(fx.timers.delays).toEqual([10_000]);
  });

  it("only denials are recorded with requests: deny, none with requests: none", async () => {
    const deny = fx.log({ requests: "none" });
    deny.refused({ ok: false, code: "BODY_TOO_LARGE", status: 413, message: "", detail: undefined }, { requestId: "r", method: "POST", url: "/x?signature=abc", socketAddress: "::1" }, "gateway");
    expect(deny.stats.recorded).toBe(0);
    const some = fx.log({ requests: "deny" });
    some.refused({ ok: false, code: "BODY_TOO_LARGE", status: 413, message: "", detail: undefined }, { requestId: "r", method: "POST", url: "/x?signature=abc", socketAddress: "::1" }, "gateway");
    await some.flush();
    const entry = decodeEntry(rows(fx.raw())[0]?.entry ?? "");
    expect(entry).toMatchObject({ event: "request.deny", code: "BODY_TOO_LARGE", status: 413, path: "/x", client: "::1", actor: "anonymous" });
    expect(JSON.stringify(entry)).not.toContain("signature=abc");
  });

  it("refuses bad settings with a TypeError naming them", () => {
    expect(() => fx.log({ batchWindowMs: 0 })).toThrow(/audit\.batchWindowMs/);
    expect(() => fx.log({ bufferEntries: 10, batchEntries: 11 })).toThrow(/audit\.batchEntries/);
    expect(() => fx.log({ requests: "some" as "all" })).toThrow(/audit\.requests/);
  });
});

describe("when the store cannot take a batch", () => {
  it("the batch spills to a file (acknowledged), later ones too, and all are replayed in order once it answers", async () => {
    const commits: CommitInfo[] = [];
    const log = fx.log({ lockTimeoutMs: 20, onCommit: (c) => commits.push(c) });
    const db = fx.raw();
    log.record(decision(1));
    await log.flush();
    const lock = lockDatabase();
    for (let i = 2; i <= 4; i++) log.record(decision(i));
    await log.flush();
    expect(commits.at(-1)).toMatchObject({ to: "spill", entries: 3, requestIds: ["req-2", "req-3", "req-4"] });
    expect(spillFiles()).toHaveLength(1);
    // While the store is backed off, batches spill straight away (no lock wait on the event loop).
    for (let i = 5; i <= 6; i++) log.record(decision(i));
    await log.flush();
    expect(spillFiles()).toHaveLength(2);
    expect(log.stats).toMatchObject({ committed: 1, spilled: 5, replayed: 0 });
    lock.release();
    // The store is tried again after the back-off (the test's clock moves, no sleeping).
    fx.clock.advance(1_000);
    log.record(decision(7));
    await log.flush();
    expect(spillFiles()).toHaveLength(0);
    expect(requestIds(db)).toEqual(["req-1", "req-2", "req-3", "req-4", "req-5", "req-6", "req-7"]);
    expect(log.stats).toMatchObject({ committed: 2, spilled: 5, replayed: 5 });
    await log.close();
    expect((await fx.verify()).ok).toBe(true);
  });

  it("a spill file left by a crashed process is replayed by the next one to open the store", async () => {
    const first = fx.log({ lockTimeoutMs: 20 });
    const lock = lockDatabase();
    for (let i = 1; i <= 3; i++) first.record(decision(i));
    await first.flush();
    expect(spillFiles()).toHaveLength(1);
    lock.release();
    // The process dies here (no close). The next one replays at start, before anything else.
    const next = fx.log();
    expect(fx.timers.delays).toContain(0);
    fx.timers.fire(0);
    await next.flush();
    expect(spillFiles()).toHaveLength(0);
    expect(requestIds(fx.raw())).toEqual(["req-1", "req-2", "req-3"]);
  });

  it("a spill file replayed twice (a crash after the commit, before its removal) is appended once", async () => {
    const log = fx.log({ lockTimeoutMs: 20 });
    const lock = lockDatabase();
    for (let i = 1; i <= 3; i++) log.record(decision(i));
    await log.flush();
    const [name] = spillFiles();
    if (name === undefined) throw new Error("no spill file");
    const saved = join(fx.dir, "saved.jsonl");
    copyFileSync(join(spillDir(), name), saved);
    lock.release();
    fx.clock.advance(1_000);
    await log.flush();
    expect(count(fx.raw())).toBe(3);
    copyFileSync(saved, join(spillDir(), name));
    const again = fx.log();
    fx.timers.fire(0);
    await again.flush();
    expect(spillFiles()).toHaveLength(0);
    expect(count(fx.raw())).toBe(3);
    expect(again.stats.replayed).toBe(0);
  });

  it("a corrupt spill file is set aside (never deleted) and the others are replayed", async () => {
    const log = fx.log({ lockTimeoutMs: 20 });
    const lock = lockDatabase();
    log.record(decision(1));
    await log.flush();
    fx.clock.advance(1_000);
    log.record(decision(2));
    await log.flush();
    const [a, b] = spillFiles();
    if (a === undefined || b === undefined) throw new Error("spill files");
    writeFileSync(join(spillDir(), a), "garbage\n");
    lock.release();
    fx.clock.advance(2_000);
    await log.flush();
    expect(requestIds(fx.raw())).toEqual(["req-2"]);
    expect(readdirSync(spillDir())).toEqual([`${a}.corrupt`]);
  });

  it("spill files hold complete batches in the entry encoding", async () => {
    const log = fx.log({ lockTimeoutMs: 20 });
    const lock = lockDatabase();
    for (let i = 1; i <= 2; i++) log.record(decision(i));
    await log.flush();
    lock.release();
    const [name] = spillFiles();
    const parsed = parseSpill(readFileSync(join(spillDir(), name ?? ""), "utf8"));
    expect(parsed?.entries.map((e) => e.requestId)).toEqual(["req-1", "req-2"]);
    expect(parseSpill("")).toBeNull();
    expect(parseSpill('{"format":"portcullis-audit-spill","v":1,"id":"x","entries":2}\n{}\n')).toBeNull();
  });

  it("with neither store nor spill directory, entries stay buffered within the bound; the excess is dropped and counted", async () => {
    const log = fx.log({ lockTimeoutMs: 20, spillDir: null, bufferEntries: 5, batchEntries: 5 });
    const lock = lockDatabase();
    for (let i = 1; i <= 4; i++) log.record(decision(i));
    await log.flush();
    expect(log.stats).toMatchObject({ buffered: 4, dropped: 0, committed: 0 });
    for (let i = 5; i <= 7; i++) log.record(decision(i));
    expect(log.stats).toMatchObject({ buffered: 5, dropped: 2 });
    lock.release();
    fx.clock.advance(1_000);
    await log.flush();
    expect(requestIds(fx.raw())).toEqual(["req-1", "req-2", "req-3", "req-4", "req-5"]);
  });
});
