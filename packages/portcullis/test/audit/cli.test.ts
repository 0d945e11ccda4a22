/**
 * `portcullis audit …` as an operator or an auditor runs it: real processes on a real data
 * directory (and on a copy of its database alone), every error with its stable code.
 */
import Database from "better-sqlite3";
import { spawn } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog } from "../../src/audit/log.js";
import { EnvelopeSigningKeys } from "../../src/custody/signing.js";
import { openDataDir } from "../../src/core/data-dir.js";
import { CLI, runCli } from "../support/cli.js";
import { decision } from "./support.js";

let dir: string;
let data: string;
let keyId = "";
const secrets: string[] = [];

const errorCode = (stderr: string): string => (JSON.parse(stderr) as { error: { code: string } }).error.code;
const lines = (text: string): Record<string, unknown>[] => text.trim().split("\n").filter((l) => l !== "").map((l) => (JSON.parse(l) as Record<string, unknown>));

/** A copy of the data directory to break. */
function copy(name: string): string {
  const to = join(dir, name);
  cpSync(data, to, { recursive: true });
  return to;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "portcullis-audit-cli-"));
  data = join(dir, "data");
  expect((await runCli(["init", "--data", data, "--environment", "test"])).code).toBe(0);
  for (const account of ["acct-a", "acct-b"]) {
    const res = await runCli(["keys", "create", "--data", data, "--account", account, "--scopes", "read", "--json"]);
    const key = (JSON.parse(res.stdout) as { id: string; secret: string });
    secrets.push(key.secret);
    if (keyId === "") keyId = key.id;
  }
  expect((await runCli(["keys", "suspend", keyId, "--data", data, "--reason", "cli test"])).code).toBe(0);
  // Decisions, as a gateway on this directory records them.
  const opened = await openDataDir(data);
  const log = new AuditLog({ store: opened.store.audit, signer: new EnvelopeSigningKeys(opened.store, opened.envelope), checkpointIntervalMs: 0 });
  for (let i = 1; i <= 30; i++) log.record({ ...decision(i), at: Date.now() });
  await log.close();
  await opened.store.close();
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("portcullis audit verify", () => {
  it("passes an intact log and says what it checked", async () => {
    const res = await runCli(["audit", "verify", "--data", data]);
    expect(res.code).toBe(0);
    expect(res.stdout).toContain("audit log verified: 33 entries checked");
    expect(res.stdout).toMatch(/checkpoints: \d+, the latest at #33/);
    expect(res.stdout).toMatch(/signed by audit-checkpoint:\S+ \(SHA256:/);
    const report = (JSON.parse((await runCli(["audit", "verify", "--data", data, "--json"])).stdout) as { ok: boolean; verified: number; unconfirmed: number });
    expect(report).toMatchObject({ ok: true, verified: 33, unconfirmed: 0 });
  });

  it("exits 1 and names the first bad entry", async () => {
    const broken = copy("broken");
    const db = new Database(join(broken, "portcullis.db"));
    db.prepare("UPDATE audit_log SET entry = replace(entry, 'req-7', 'req-X') WHERE entry LIKE '%req-7%'").run();
    db.close();
    const res = await runCli(["audit", "verify", "--data", broken]);
    expect(res.code).toBe(1);
    expect(res.stderr).toBe("AUDIT_VERIFY_FAILED: audit log verification failed: ENTRY_ALTERED: entry #10 was modified or inserted: its hash does not match its content and the entry before it\n");
    const j = await runCli(["audit", "verify", "--data", broken, "--json"]);
    expect(j.code).toBe(1);
    expect(errorCode(j.stderr)).toBe("AUDIT_VERIFY_FAILED");
    expect((JSON.parse(j.stdout) as { problem: { code: string; seq: number } }).problem).toMatchObject({ code: "ENTRY_ALTERED", seq: 10 });
  });

  it("checks a copy of the database alone, without the keyring (--db)", async () => {
    const alone = join(dir, "alone");
    cpSync(join(data, "portcullis.db"), join(alone, "copy.db"), { recursive: true });
    const res = await runCli(["audit", "verify", "--db", join(alone, "copy.db")]);
    expect(res.code).toBe(0);
    expect(readdirSync(alone)).not.toContain("keyring.json");
  });

  it("--public-key trusts only that key; the deployment's key comes from audit public-key", async () => {
    const pub = await runCli(["audit", "public-key", "--data", data]);
    expect(pub.code).toBe(0);
    expect(pub.stdout).toMatch(/^# audit-checkpoint:\S+ SHA256:\S+\n-----BEGIN PUBLIC KEY-----/);
    const file = join(dir, "audit.pub");
    writeFileSync(file, pub.stdout);
    expect((await runCli(["audit", "verify", "--data", data, "--public-key", file])).stdout).toContain("a key you gave");
    const other = join(dir, "other.pub");
    writeFileSync(other, generateKeyPairSync("ed25519").publicKey.export({ type: "spki", format: "pem" }).toString());
    const res = await runCli(["audit", "verify", "--data", data, "--public-key", other, "--json"]);
    expect(res.code).toBe(1);
    expect((JSON.parse(res.stdout) as { problem: { code: string } }).problem.code).toBe("CHECKPOINT_KEY_UNKNOWN");
    const junk = join(dir, "junk.pub");
    writeFileSync(junk, "not a key");
    const bad = await runCli(["audit", "verify", "--data", data, "--public-key", junk, "--json"]);
    expect(bad.code).toBe(1);
    expect(errorCode(bad.stderr)).toBe("AUDIT_KEY_INVALID");
  });

  it("--anchor: a checkpoint kept elsewhere must still be in the log's history", async () => {
    const res = await runCli(["audit", "checkpoint", "--data", data, "--json"]);
    expect(res.code).toBe(0);
    const anchor = (JSON.parse(res.stdout) as { seq: number; hash: string; kid: string; signature: string; fingerprint: string });
    expect(anchor.seq).toBe(33);
    const file = join(dir, "anchor.json");
    writeFileSync(file, res.stdout);
    expect((await runCli(["audit", "verify", "--data", data, "--anchor", file])).code).toBe(0);
    // Truncated, checkpoints and all: only the anchor can tell.
    const cut = copy("cut");
    const db = new Database(join(cut, "portcullis.db"));
    db.prepare("DELETE FROM audit_log WHERE seq > 20").run();
    db.prepare("DELETE FROM audit_checkpoints WHERE seq > 20").run();
    db.close();
    expect((await runCli(["audit", "verify", "--data", cut])).code).toBe(0);
    const caught = await runCli(["audit", "verify", "--data", cut, "--anchor", file, "--json"]);
    expect(caught.code).toBe(1);
    expect((JSON.parse(caught.stdout) as { problem: { code: string; seq: number } }).problem).toMatchObject({ code: "LOG_TRUNCATED", seq: 21 });
    writeFileSync(join(dir, "bad-anchor.json"), '{"seq": 1}');
    const bad = await runCli(["audit", "verify", "--data", data, "--anchor", join(dir, "bad-anchor.json"), "--json"]);
    expect(errorCode(bad.stderr)).toBe("AUDIT_ANCHOR_INVALID");
  });

  it("AUDIT_LOG_UNAVAILABLE: no database, or a database without the audit tables", async () => {
    const none = await runCli(["audit", "verify", "--data", join(dir, "nothing-here"), "--json"]);
    expect(none.code).toBe(1);
    expect(errorCode(none.stderr)).toBe("AUDIT_LOG_UNAVAILABLE");
    const plain = join(dir, "plain.db");
    new Database(plain).close();
    const old = await runCli(["audit", "tail", "--db", plain]);
    expect(old.code).toBe(1);
    expect(old.stderr).toMatch(/^AUDIT_LOG_UNAVAILABLE: .*has no audit log/);
  });
});

describe("portcullis audit tail | query | export", () => {
  it("tail prints the latest entries, oldest first", async () => {
    const res = await runCli(["audit", "tail", "--data", data, "-n", "2", "--json"]);
    expect(res.code).toBe(0);
    expect(lines(res.stdout).map((e) => e.seq)).toEqual([32, 33]);
    const human = await runCli(["audit", "tail", "--data", data, "-n", "1"]);
    expect(human.stdout).toMatch(/^#33 {2}\d{4}-\d\d-\d\dT[\d:.]+Z {2}request\.deny/);
  });

  it("query filters by key, account, event and time", async () => {
    const byKey = lines((await runCli(["audit", "query", "--data", data, "--key", keyId, "--json"])).stdout);
    expect(byKey.map((e) => e.event)).toEqual(["key.create", "key.suspend"]);
    const byAccount = lines((await runCli(["audit", "query", "--data", data, "--account", "acct-b", "--event", "key.*", "--json"])).stdout);
    expect(byAccount).toHaveLength(1);
    const denials = lines((await runCli(["audit", "query", "--data", data, "--event", "request.deny", "--json"])).stdout);
    expect(denials).toHaveLength(10);
    const future = await runCli(["audit", "query", "--data", data, "--since", "2999-01-01T00:00:00Z"]);
    expect(future.stdout).toBe("");
    const recent = lines((await runCli(["audit", "query", "--data", data, "--since", "1h", "--limit", "5", "--json"])).stdout);
    expect(recent.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
  });

  it("bad filters are VALIDATION_FAILED, in one line", async () => {
    for (const args of [
      ["--since", "yesterday-ish"],
      ["--event", "Not An Event"],
      ["--limit", "0"],
      ["--since", "1h", "--until", "2h"],
    ]) {
      const res = await runCli(["audit", "query", "--data", data, ...args, "--json"]);
      expect(res.code).toBe(1);
      expect(errorCode(res.stderr)).toBe("VALIDATION_FAILED");
    }
    const human = await runCli(["audit", "tail", "--data", data, "--lines", "x"]);
    expect(human.stderr).toBe("VALIDATION_FAILED: --lines must be an integer from 1 to 100000\n");
  });

  it("export writes every entry as JSON Lines with its hash, never a secret; --out never overwrites", async () => {
    const res = await runCli(["audit", "export", "--data", data]);
    expect(res.code).toBe(0);
    const all = lines(res.stdout);
    expect(all.map((e) => e.seq)).toEqual(Array.from({ length: 33 }, (_, i) => i + 1));
    for (const e of all) expect(e.hash).toMatch(/^[0-9a-f]{64}$/);
    for (const s of secrets) expect(res.stdout).not.toContain(s);
    const out = join(dir, "export.jsonl");
    const file = await runCli(["audit", "export", "--data", data, "--event", "key.*", "--out", out]);
    expect(file.code).toBe(0);
    expect(file.stderr).toContain("exported 3 entries");
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect(readFileSync(out, "utf8").trim().split("\n")).toHaveLength(3);
    const again = await runCli(["audit", "export", "--data", data, "--out", out, "--json"]);
    expect(errorCode(again.stderr)).toBe("VALIDATION_FAILED");
  });

  it("tail --follow prints entries committed by another process", async () => {
    const child = spawn(process.execPath, [CLI, "audit", "tail", "--data", data, "-n", "1", "--follow", "--json"], { stdio: "pipe" });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    const until = async (what: string): Promise<void> => {
      for (let i = 0; i < 200 && !out.includes(what); i++) await new Promise((r) => setTimeout(r, 50));
      expect(out).toContain(what);
    };
    try {
      await until('"seq":');
      const created = await runCli(["keys", "create", "--data", data, "--account", "acct-follow", "--scopes", "read", "--json"]);
      expect(created.code).toBe(0);
      await until("acct-follow");
      expect(lines(out).at(-1)).toMatchObject({ event: "key.create", account: "acct-follow" });
    } finally {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
    }
  });
});

describe("portcullis audit archive", () => {
  it("moves old entries into a signed segment that verify covers; a missing or altered segment fails", async () => {
    const arch = copy("arch");
    const res = await runCli(["audit", "archive", "--data", arch, "--upto", "20", "--json"]);
    expect(res.code).toBe(0);
    const result = (JSON.parse(res.stdout) as { file: string; path: string; first: number; last: number });
    expect(result).toMatchObject({ first: 1, last: 20 });
    const report = (JSON.parse(
      (await runCli(["audit", "verify", "--data", arch, "--json"])).stdout,
    ) as { ok: boolean; verified: number; first: number; last: number; unconfirmed: number; archived: { entries: number; filesVerified: number } });
    // Every entry from #1 (in the segment) to the archive's own entry (stored, and signed at once).
    expect(report).toMatchObject({ ok: true, first: 21, unconfirmed: 0, archived: { entries: 20, filesVerified: 1 } });
    expect(report.verified).toBe(report.last);
    expect((await runCli(["audit", "verify", "--segment", result.path])).stdout).toContain("segment verified: entries #1–#20");

    const segment = readFileSync(result.path, "utf8");
    writeFileSync(result.path, segment.replace("req-5", "req-X"));
    const altered = await runCli(["audit", "verify", "--data", arch, "--json"]);
    expect((JSON.parse(altered.stdout) as { problem: { code: string } }).problem.code).toBe("SEGMENT_ALTERED");
    const alone = await runCli(["audit", "verify", "--segment", result.path, "--json"]);
    expect(alone.code).toBe(1);
    expect((JSON.parse(alone.stdout) as { problem: { code: string; seq: number } }).problem).toMatchObject({ code: "ENTRY_ALTERED" });

    rmSync(result.path);
    const missing = await runCli(["audit", "verify", "--data", arch, "--json"]);
    expect((JSON.parse(missing.stdout) as { problem: { code: string } }).problem.code).toBe("SEGMENT_MISSING");
    expect((await runCli(["audit", "verify", "--data", arch, "--skip-segments"])).code).toBe(0);
    const unreadable = await runCli(["audit", "verify", "--segment", result.path, "--json"]);
    expect(errorCode(unreadable.stderr)).toBe("AUDIT_SEGMENT_UNREADABLE");
  });

  it("refuses to archive an altered range, and says so with its code", async () => {
    const bad = copy("arch-bad");
    const db = new Database(join(bad, "portcullis.db"));
    db.prepare("UPDATE audit_log SET entry = replace(entry, 'req-3', 'req-X') WHERE entry LIKE '%req-3%'").run();
    db.close();
    const res = await runCli(["audit", "archive", "--data", bad, "--upto", "20", "--json"]);
    expect(res.code).toBe(1);
    expect(errorCode(res.stderr)).toBe("AUDIT_ARCHIVE_REFUSED");
    const archived = join(bad, "audit-archive");
    expect(existsSync(archived) ? readdirSync(archived) : []).toEqual([]);
  });

  it("AUDIT_SIGNER_UNAVAILABLE: the signing commands need a readable audit-checkpoint key", async () => {
    const broken = copy("no-signer");
    const db = new Database(join(broken, "portcullis.db"));
    db.prepare("UPDATE meta SET value = 'garbage' WHERE key = 'signing-key:audit-checkpoint'").run();
    db.close();
    for (const args of [["checkpoint"], ["public-key"], ["archive", "--upto", "2"]]) {
      const res = await runCli(["audit", ...args, "--data", broken, "--json"]);
      expect(res.code).toBe(1);
      expect(errorCode(res.stderr)).toBe("AUDIT_SIGNER_UNAVAILABLE");
    }
  });

  it("needs a range, a data directory (it signs), and archives nothing when nothing is old enough", async () => {
    expect(errorCode((await runCli(["audit", "archive", "--data", data, "--json"])).stderr)).toBe("VALIDATION_FAILED");
    expect(errorCode((await runCli(["audit", "archive", "--db", join(data, "portcullis.db"), "--upto", "3", "--json"])).stderr)).toBe("VALIDATION_FAILED");
    const res = await runCli(["audit", "archive", "--data", data, "--before", "2000-01-01T00:00:00Z"]);
    expect(res.stdout).toBe("nothing to archive\n");
  });
});
