/**
 * Retention: archiving the oldest entries into signed segments, in process, and verification of
 * the archived prefix (records, seals, segment files) against every kind of tampering.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { archiveAudit } from "../../src/audit/archive.js";
import { decodeEntry } from "../../src/audit/canonical.js";
import type { AuditLog } from "../../src/audit/log.js";
import { verifySegment } from "../../src/audit/verify.js";
import { type AuditFixture, auditFixture, decision, rows } from "./support.js";

let fx: AuditFixture;
let log: AuditLog;
beforeEach(async () => {
  fx = await auditFixture();
  log = fx.log();
  for (let i = 1; i <= 30; i++) log.record(decision(i, 1_000 * i));
  await log.flush();
  await log.checkpoint();
});
afterEach(async () => {
  await fx.cleanup();
});

const readSegment = (file: string): Buffer | null => {
  try {
    return readFileSync(join(fx.dir, "audit-archive", file));
  } catch {
    return null;
  }
};
const archive = (options: { upTo?: number; before?: number }) => archiveAudit({ audit: fx.data.store.audit, signer: fx.signer, actor: "cli:test", now: fx.clock.now, ...options });

describe("archiving", () => {
  it("moves a prefix into a segment, records it, and verification covers it; a second archive follows the first", async () => {
    const first = await archive({ upTo: 10 });
    expect(first).toMatchObject({ first: 1, last: 10, entries: 10, file: "audit-000000000001-000000000010.jsonl" });
    const second = await archive({ upTo: 20 });
    expect(second).toMatchObject({ first: 11, last: 20 });
    // The archive entries are in the chain: #31 says what the first archive did, #32 the second.
    const db = fx.raw();
    expect(rows(db)[0]?.seq).toBe(21);
    const notes = rows(db).map((r) => decodeEntry(r.entry)).filter((e) => e?.event === "audit.archive");
    expect(notes.map((e) => e?.detail)).toMatchObject([
      { first: 1, last: 10, entries: 10, file: first?.file },
      { first: 11, last: 20, entries: 10 },
    ]);
    // Checkpoints outside the archived ranges stay; the chain still verifies end to end.
    expect(db.prepare<[], { seq: number }>("SELECT seq FROM audit_checkpoints").all().map((r) => r.seq)).toEqual([30]);
    await log.checkpoint();
    const report = await fx.verify({ readSegment });
    expect(report).toMatchObject({ ok: true, first: 21, last: 32, archived: { segments: 2, entries: 20, filesVerified: 2 } });
    expect(report.verified).toBe(32);
    // Each segment verifies on its own, with the deployment's key.
    const key = await fx.signer.open("audit-checkpoint");
    expect(verifySegment(readSegment(first?.file ?? "") ?? Buffer.alloc(0), [key.publicKey])).toMatchObject({ ok: true, first: 1, last: 10, trusted: true });
  });

  it("--before takes the longest prefix of entries older than the time", async () => {
    expect(await archive({ before: 5_500 })).toMatchObject({ first: 1, last: 5 });
    expect(await archive({ before: 5_500 })).toBeNull();
    expect(await archive({ before: 0 })).toBeNull();
  });

  it("archiving the whole log leaves the chain's head in the archive record; the checkpoints inside go", async () => {
    await archive({ upTo: 1_000 });
    expect(fx.raw().prepare<[], { n: number }>("SELECT COUNT(*) AS n FROM audit_checkpoints").get()?.n).toBe(0);
    log.record(decision(99));
    await log.flush();
    const report = await fx.verify({ readSegment });
    expect(report).toMatchObject({ ok: true, first: 31, last: 32 });
  });

  it("refuses to archive a range that does not verify, and leaves no file", async () => {
    fx.raw().prepare("UPDATE audit_log SET entry = replace(entry, 'req-4', 'req-X') WHERE seq = 4").run();
    await expect(archive({ upTo: 10 })).rejects.toMatchObject({ code: "AUDIT_ARCHIVE_REFUSED" });
    expect(readSegment("audit-000000000001-000000000010.jsonl")).toBeNull();
  });

  it("a range that changed while its segment was written is not archived", () => {
    const audit = fx.data.store.audit;
    const stale = audit.archives();
    expect(stale).toEqual([]);
    const record = { first: 1, last: 10, prev: "0".repeat(64), hash: "f".repeat(64), file: "x.jsonl", digest: "0".repeat(64), at: 1, kid: "k", signature: Buffer.alloc(64) };
    expect(audit.commitArchive(record, { event: "audit.archive", at: 1, actor: "cli:test" })).toBe(false);
    expect(audit.bounds()).toEqual({ first: 1, last: 30 });
  });
});

describe("verification of the archived prefix", () => {
  beforeEach(async () => {
    await archive({ upTo: 10 });
    await archive({ upTo: 20 });
    await log.checkpoint();
  });

  it("a removed archive record is a gap", async () => {
    fx.raw().prepare("DELETE FROM audit_archives WHERE first_seq = 1").run();
    expect((await fx.verify({ readSegment })).problem).toMatchObject({ code: "ARCHIVE_GAP", seq: 11 });
  });

  it("an edited archive record has an invalid seal (or points at no segment)", async () => {
    const db = fx.raw();
    db.prepare("UPDATE audit_archives SET at = at + 1 WHERE first_seq = 11").run();
    expect((await fx.verify({ readSegment })).problem).toMatchObject({ code: "ARCHIVE_SEAL_INVALID", seq: 11 });
    db.prepare("UPDATE audit_archives SET at = at - 1, file = 'elsewhere.jsonl' WHERE first_seq = 11").run();
    expect((await fx.verify({ readSegment })).problem).toMatchObject({ code: "SEGMENT_MISSING", seq: 11 });
  });

  it("an entry put back inside an archived range is unexpected", async () => {
    const db = fx.raw();
    db.prepare("INSERT INTO audit_log (seq, at, event, entry, hash) VALUES (5, 1, 'request.allow', '{}', 'x')").run();
    expect((await fx.verify({ readSegment })).problem).toMatchObject({ code: "ENTRY_UNEXPECTED", seq: 5 });
  });

  it("a missing segment file is named; --skip-segments checks only the signed records", async () => {
    const reportMissing = await fx.verify({ readSegment: (file) => (file.includes("000000000001-") ? null : readSegment(file)) });
    expect(reportMissing.problem).toMatchObject({ code: "SEGMENT_MISSING", seq: 1 });
    expect((await fx.verify()).ok).toBe(true);
  });

  it("a segment file changed after archiving is named, even with a recomputed chain inside", async () => {
    const file = "audit-000000000011-000000000020.jsonl";
    const changed = Buffer.from((readSegment(file) ?? Buffer.alloc(0)).toString("utf8").replace("req-15", "req-X"));
    const r = await fx.verify({ readSegment: (f) => (f === file ? changed : readSegment(f)) });
    expect(r.problem).toMatchObject({ code: "SEGMENT_ALTERED", seq: 11 });
    expect(verifySegment(changed).problem).toMatchObject({ code: "ENTRY_ALTERED", seq: 20 });
    expect(verifySegment(Buffer.from("nonsense")).problem?.code).toBe("SEGMENT_MALFORMED");
  });
});
