/**
 * Tampering with the database directly, as an intruder with write access to the SQLite file would:
 * every kind of change is detected by `verify`, which names the first bad entry (or the checkpoint
 * that catches a consistent rewrite or a truncation).
 */
import type Database from "better-sqlite3";
import { generateKeyPairSync, sign } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { encodeEntry } from "../../src/audit/canonical.js";
import { GENESIS, chainHash, checkpointMessage } from "../../src/audit/chain.js";
import type { AuditLog } from "../../src/audit/log.js";
import { type AuditFixture, auditFixture, decision, rows } from "./support.js";

let fx: AuditFixture;
let db: Database.Database;

/** 20 entries, checkpoints at #10 and #20, then a second connection for the intruder. */
beforeEach(async () => {
  fx = await auditFixture();
  const log = fx.log();
  for (let i = 1; i <= 10; i++) log.record(decision(i));
  await log.flush();
  fx.clock.advance(1000);
  await log.checkpoint();
  for (let i = 11; i <= 20; i++) log.record(decision(i));
  await log.close();
  db = fx.raw();
});
afterEach(async () => {
  await fx.cleanup();
});

function setEntry(seq: number, entry: string): void {
  db.prepare("UPDATE audit_log SET entry = ? WHERE seq = ?").run(entry, seq);
}

function entryOf(seq: number): string {
  return (db.prepare<[number], { entry: string }>("SELECT entry FROM audit_log WHERE seq = ?").get(seq) as { entry: string }).entry;
}

/** Recomputes every stored hash from `from` on, as an intruder who knows the algorithm would. */
function rehash(from: number): void {
  const all = rows(db);
  let prev = from === 1 ? GENESIS : (all.find((r) => r.seq === from - 1)?.hash ?? GENESIS);
  for (const r of all.filter((x) => x.seq >= from)) {
    prev = chainHash(prev, r.entry);
    db.prepare("UPDATE audit_log SET hash = ? WHERE seq = ?").run(prev, r.seq);
  }
}

describe("audit verify on a tampered database", () => {
  it("passes an untouched log: every entry, both checkpoints", async () => {
    const r = await fx.verify();
    expect(r.ok).toBe(true);
    expect(r).toMatchObject({ verified: 20, first: 1, last: 20, checkpoints: 2, unconfirmed: 0, latestCheckpoint: { seq: 20 } });
    expect(r.keys).toHaveLength(1);
  });

  it("a modified entry is named", async () => {
    setEntry(7, entryOf(7).replace('"req-7"', '"req-X"'));
    const r = await fx.verify();
    expect(r.problem).toMatchObject({ code: "ENTRY_ALTERED", seq: 7 });
    expect(r.problem?.message).toContain("entry #7");
  });

  it("a modified stored hash is named", async () => {
    db.prepare("UPDATE audit_log SET hash = ? WHERE seq = 12").run("0".repeat(64));
    expect((await fx.verify()).problem).toMatchObject({ code: "ENTRY_ALTERED", seq: 12 });
  });

  it("a deleted entry is named", async () => {
    db.prepare("DELETE FROM audit_log WHERE seq = 7").run();
    const r = await fx.verify();
    expect(r.problem).toMatchObject({ code: "ENTRY_MISSING", seq: 7 });
    expect(r.problem?.message).toContain("entry #7 is missing");
  });

  it("several deleted entries are named as a range", async () => {
    db.prepare("DELETE FROM audit_log WHERE seq BETWEEN 3 AND 5").run();
    expect((await fx.verify()).problem).toMatchObject({ code: "ENTRY_MISSING", seq: 3, message: expect.stringContaining("entries #3–#5") as unknown });
  });

  it("reordered entries are named", async () => {
    const a = rows(db).find((r) => r.seq === 7);
    const b = rows(db).find((r) => r.seq === 8);
    if (a === undefined || b === undefined) throw new Error("fixture");
    db.prepare("UPDATE audit_log SET entry = ?, hash = ? WHERE seq = 7").run(b.entry, b.hash);
    db.prepare("UPDATE audit_log SET entry = ?, hash = ? WHERE seq = 8").run(a.entry, a.hash);
    expect((await fx.verify()).problem).toMatchObject({ code: "ENTRY_MOVED", seq: 7 });
  });

  it("an inserted entry is named (an appended forgery with a wrong hash too)", async () => {
    // Make room at #8 (shift the rest up), then insert a forged entry there.
    db.prepare("UPDATE audit_log SET seq = -seq WHERE seq >= 8").run();
    db.prepare("UPDATE audit_log SET seq = -seq + 1 WHERE seq < 0").run();
    const forged = encodeEntry(8, { ...decision(999), event: "request.allow" });
    db.prepare("INSERT INTO audit_log (seq, at, event, key_id, account, entry, hash) VALUES (8, ?, 'request.allow', ?, ?, ?, 'forged')").run(
      decision(999).at,
      decision(999).key ?? null,
      decision(999).account ?? null,
      forged,
    );
    expect((await fx.verify()).problem).toMatchObject({ code: "ENTRY_ALTERED", seq: 8 });
    // With a correct hash, the forged entry chains, and the one after it gives the insertion away.
    const prev = rows(db).find((r) => r.seq === 7)?.hash ?? GENESIS;
    db.prepare("UPDATE audit_log SET hash = ? WHERE seq = 8").run(chainHash(prev, forged));
    expect((await fx.verify()).problem).toMatchObject({ code: "ENTRY_MOVED", seq: 9 });
  });

  it("a consistent rewrite (hashes recomputed) is caught by the signed checkpoint after it", async () => {
    setEntry(3, entryOf(3).replace('"req-3"', '"req-X"'));
    rehash(3);
    const r = await fx.verify();
    expect(r.problem).toMatchObject({ code: "CHECKPOINT_MISMATCH", seq: 10 });
    expect(r.problem?.message).toContain("history up to #10 was rewritten");
  });

  it("a truncated tail is caught by the signed checkpoint", async () => {
    db.prepare("DELETE FROM audit_log WHERE seq >= 16").run();
    const r = await fx.verify();
    expect(r.problem).toMatchObject({ code: "LOG_TRUNCATED", seq: 16 });
    expect(r.problem?.message).toContain("entries #16–#20 were removed");
  });

  it("a truncation that also deletes the checkpoints is caught by an anchor kept elsewhere", async () => {
    const anchor = db.prepare<[], { seq: number; hash: string; at: number; kid: string; signature: Buffer }>("SELECT * FROM audit_checkpoints ORDER BY seq DESC LIMIT 1").get();
    if (anchor === undefined) throw new Error("fixture");
    db.prepare("DELETE FROM audit_log WHERE seq >= 16").run();
    db.prepare("DELETE FROM audit_checkpoints WHERE seq >= 16").run();
    // Without the anchor, the database alone cannot tell (docs/audit.md says so) ...
    expect((await fx.verify()).ok).toBe(true);
    // ... with it, it can.
    expect((await fx.verify({ anchor })).problem).toMatchObject({ code: "LOG_TRUNCATED", seq: 16 });
  });

  it("an anchor that the log's history does not contain is a mismatch", async () => {
    const anchor = db.prepare<[], { seq: number; hash: string; at: number; kid: string; signature: Buffer }>("SELECT * FROM audit_checkpoints WHERE seq = 10").get();
    if (anchor === undefined) throw new Error("fixture");
    db.prepare("DELETE FROM audit_checkpoints").run();
    setEntry(4, entryOf(4).replace('"req-4"', '"req-Y"'));
    rehash(4);
    expect((await fx.verify({ anchor })).problem).toMatchObject({ code: "ANCHOR_MISMATCH", seq: 10 });
  });

  it("an anchor whose signature does not verify is refused as such", async () => {
    const anchor = db.prepare<[], { seq: number; hash: string; at: number; kid: string; signature: Buffer }>("SELECT * FROM audit_checkpoints WHERE seq = 10").get();
    if (anchor === undefined) throw new Error("fixture");
    expect((await fx.verify({ anchor: { ...anchor, seq: 11 } })).problem).toMatchObject({ code: "ANCHOR_INVALID", seq: 11 });
  });

  it("a forged or modified checkpoint is invalid", async () => {
    db.prepare("UPDATE audit_checkpoints SET signature = zeroblob(64) WHERE seq = 10").run();
    expect((await fx.verify()).problem).toMatchObject({ code: "CHECKPOINT_INVALID", seq: 10 });
  });

  it("a checkpoint whose hash was changed to match a rewrite is invalid", async () => {
    setEntry(3, entryOf(3).replace('"req-3"', '"req-X"'));
    rehash(3);
    const h10 = rows(db).find((r) => r.seq === 10)?.hash;
    db.prepare("UPDATE audit_checkpoints SET hash = ? WHERE seq = 10").run(h10);
    expect((await fx.verify()).problem).toMatchObject({ code: "CHECKPOINT_INVALID", seq: 10 });
  });

  it("an intruder's own key re-signing a rewrite fools only a verifier who trusts the database's keys", async () => {
    const real = await fx.signer.open("audit-checkpoint");
    setEntry(3, entryOf(3).replace('"req-3"', '"req-X"'));
    rehash(3);
    const intruder = generateKeyPairSync("ed25519");
    db.prepare("UPDATE audit_keys SET public_key = ?").run(intruder.publicKey.export({ type: "spki", format: "pem" }).toString());
    for (const c of db.prepare<[], { seq: number; at: number; kid: string }>("SELECT seq, at, kid FROM audit_checkpoints").all()) {
      const hash = rows(db).find((r) => r.seq === c.seq)?.hash ?? GENESIS;
      const signature = sign(null, checkpointMessage({ ...c, hash }), intruder.privateKey);
      db.prepare("UPDATE audit_checkpoints SET hash = ?, signature = ? WHERE seq = ?").run(hash, signature, c.seq);
    }
    expect((await fx.verify()).ok).toBe(true);
    expect((await fx.verify({ trusted: [real.publicKey] })).problem).toMatchObject({ code: "CHECKPOINT_KEY_UNKNOWN", seq: 10 });
  });

  it("changed query columns are named", async () => {
    db.prepare("UPDATE audit_log SET account = 'acct-other' WHERE seq = 5").run();
    expect((await fx.verify()).problem).toMatchObject({ code: "ENTRY_COLUMNS_ALTERED", seq: 5 });
    db.prepare("UPDATE audit_log SET account = 'acct-0' WHERE seq = 5").run();
    db.prepare("UPDATE audit_log SET event = 'request.allow' WHERE seq = 6").run();
    expect((await fx.verify()).problem).toMatchObject({ code: "ENTRY_COLUMNS_ALTERED", seq: 6 });
  });

  it("an entry that is not JSON any more is malformed", async () => {
    setEntry(2, "{not json");
    expect((await fx.verify()).problem).toMatchObject({ code: "ENTRY_MALFORMED", seq: 2 });
  });

  it("the writer refuses to sign a checkpoint over a chain rewritten under it", async () => {
    const fixture = await auditFixture();
    try {
      const log: AuditLog = fixture.log();
      for (let i = 1; i <= 5; i++) log.record(decision(i));
      await log.flush();
      expect(await log.checkpoint()).not.toBeNull();
      for (let i = 6; i <= 8; i++) log.record(decision(i));
      await log.flush();
      const intruder = fixture.raw();
      intruder.prepare("UPDATE audit_log SET entry = replace(entry, 'req-2', 'req-X') WHERE seq = 2").run();
      let prev = GENESIS;
      for (const r of rows(intruder)) {
        prev = chainHash(prev, r.entry);
        intruder.prepare("UPDATE audit_log SET hash = ? WHERE seq = ?").run(prev, r.seq);
      }
      expect(await log.checkpoint()).toBeNull();
      expect(log.stats.tampered).toBe(true);
      expect((await fixture.verify()).problem).toMatchObject({ code: "CHECKPOINT_MISMATCH", seq: 5 });
    } finally {
      await fixture.cleanup();
    }
  });
});
