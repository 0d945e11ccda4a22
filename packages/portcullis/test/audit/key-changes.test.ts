/**
 * The durability class of changes: every KeyChange the store records is an audit entry written in
 * the same transaction, so a change exists if and only if its entry does; secrets never reach it.
 */
import { valueOrThrow } from "../../src/errors/result.js";
import { rmSync } from "node:fs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { decodeEntry } from "../../src/audit/canonical.js";
import { type AuditEntry, keyChangeEvent } from "../../src/audit/events.js";
import { PortcullisError } from "../../src/errors/catalogue.js";
import { parseCreateKeyInput } from "../../src/keys/input.js";
import { KeyService } from "../../src/keys/service.js";
import { openDataDir } from "../../src/core/data-dir.js";
import { oldDatabase } from "../support/old-database.js";
import { SqliteStore } from "../../src/storage/sqlite/store.js";
import type { KeyChange } from "../../src/storage/types.js";
import { type AuditFixture, auditFixture, rows } from "./support.js";

let fx: AuditFixture;
let keys: KeyService;
beforeEach(async () => {
  fx = await auditFixture();
  keys = new KeyService({ store: fx.data.store, envelope: fx.data.envelope, environment: "test", now: fx.clock.now });
});
afterEach(async () => {
  await fx.cleanup();
});

const entries = (): AuditEntry[] => rows(fx.raw()).map((r) => decodeEntry(r.entry) as AuditEntry);
const create = (input: Record<string, unknown> = {}) => keys.create(valueOrThrow(parseCreateKeyInput({ account: "acct-7", scopes: ["read", "trade"], ...input }, fx.clock.ms)), "key:pck_admin");

describe("key changes in the audit log", () => {
  it("each operation is one entry: event, actor, key, account and the change's facts", async () => {
    const { key } = await create({ subAccount: "desk-2" });
    await keys.suspend(key.id, "cli:alice", "investigating");
    await keys.resume(key.id, "cli:alice");
    await keys.setLimits(key.id, {}, "cli:bob");
    await keys.revoke(key.id, "key:pck_admin", "leaked");
    const log = entries();
    expect(log.map((e) => [e.seq, e.event, e.actor])).toEqual([
      [1, "key.create", "key:pck_admin"],
      [2, "key.suspend", "cli:alice"],
      [3, "key.resume", "cli:alice"],
      [4, "key.limits", "cli:bob"],
      [5, "key.revoke", "key:pck_admin"],
    ]);
    for (const e of log) expect(e).toMatchObject({ key: key.id, account: "acct-7", subAccount: "desk-2", at: fx.clock.ms });
    expect(log[0]?.detail).toMatchObject({ account: "acct-7", algorithm: "hmac-sha256", scopes: ["read", "trade"] });
    expect(log[1]?.detail).toEqual({ reason: "investigating" });
    expect(log[4]?.detail).toEqual({ reason: "leaked" });
    // One entry per change-feed row: the two are written together.
    expect(fx.raw().prepare<[], { n: number }>("SELECT COUNT(*) AS n FROM key_changes").get()?.n).toBe(5);
    expect((await fx.verify()).ok).toBe(true);
  });

  it("a refused change writes nothing", async () => {
    const { key } = await create();
    await expect(keys.resume(key.id, "cli:alice")).rejects.toMatchObject({ code: "KEY_STATE_CONFLICT" });
    await expect(keys.revoke("pck_test_v1_AAAAAAAAAAAAAAAAAAAAAA000000", "cli:alice")).rejects.toBeInstanceOf(PortcullisError);
    expect(entries()).toHaveLength(1);
  });

  it("a change whose entry cannot be written does not happen (one transaction)", async () => {
    const { key } = await create();
    fx.raw().exec("CREATE TRIGGER audit_down BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'audit unavailable'); END");
    await expect(keys.suspend(key.id, "cli:alice", "x")).rejects.toThrow(/audit unavailable/);
    await expect(create()).rejects.toThrow(/audit unavailable/);
    expect((await keys.get(key.id)).status).toBe("active");
    expect((await keys.list()).map((k) => k.id)).toEqual([key.id]);
    expect(fx.raw().prepare<[], { n: number }>("SELECT COUNT(*) AS n FROM key_changes").get()?.n).toBe(1);
  });

  it("a key operation added later is audited without extra code: whatever KeyChange the store records", async () => {
    const { key } = await create();
    // What a new operation does: record a KeyChange with its own action.
    const change = { action: "rotate", actor: "cli:alice", at: fx.clock.ms, detail: { replacedBy: "pck_test_v1_new" } } as unknown as KeyChange;
    await fx.data.store.keys.transition(key.id, ["active"], "suspended", null, change);
    expect(entries()[1]).toMatchObject({ event: "key.rotate", key: key.id, account: "acct-7", detail: { replacedBy: "pck_test_v1_new" } });
    expect(keyChangeEvent("update")).toBe("key.update");
    expect(keyChangeEvent("end-sessions")).toBe("key.end-sessions");
    expect(keyChangeEvent("Weird Action!")).toBe("key.update");
  });

  it("entries written through two connections to one database form one gap-free chain", async () => {
    const other = await openDataDir(fx.dir);
    try {
      const second = new KeyService({ store: other.store, envelope: other.envelope, environment: "test" });
      const made = await Promise.all([
        create(),
        second.create(valueOrThrow(parseCreateKeyInput({ account: "acct-8", scopes: ["read"] }, Date.now())), "cli:carol"),
        create(),
        second.create(valueOrThrow(parseCreateKeyInput({ account: "acct-8", scopes: ["read"] }, Date.now())), "cli:carol"),
      ]);
      expect(made).toHaveLength(4);
      expect(entries().map((e) => e.seq)).toEqual([1, 2, 3, 4]);
      expect((await fx.verify()).ok).toBe(true);
    } finally {
      await other.store.close();
    }
  });

  it("secrets never reach the audit log, its spill files or the database's audit tables", async () => {
    const made = [
      await create(),
      await create({ dialects: ["native", "kraken"] }),
      await create({ dialects: ["native", "okx"], passphrase: "Very-Secret-Passphrase-9" }),
    ];
    const secrets = made.map((m) => m.secret).filter((s): s is string => s !== null);
    expect(secrets).toHaveLength(3);
    secrets.push("Very-Secret-Passphrase-9");
    for (const m of made) await keys.revoke(m.key.id, "cli:alice", "rotating");
    const audit = fx.raw().prepare<[], { entry: string }>("SELECT entry FROM audit_log").all().map((r) => r.entry).join("\n");
    for (const s of secrets) expect(audit).not.toContain(s);
    expect(audit).not.toMatch(/secretEnvelope|passphraseHash|scrypt/);
  });
});

describe("migration 6 on a database from before the audit log", () => {
  it("imports the recorded key changes as the log's first entries, marked imported, and the chain verifies", async () => {
    // A database as an earlier Portcullis left it: migrations 1–3, a key and two changes.
    const { dir, path, db: old } = await oldDatabase("portcullis-audit-old-", 3);
    try {
      old.prepare(
        `INSERT INTO keys (id, environment, account, label, algorithm, public_key, scopes, ip_allowlist, dialects, status, created_at, updated_at)
         VALUES ('pck_test_v1_old', 'test', 'acct-old', '', 'ed25519', 'PEM', '["read"]', '[]', '["native"]', 'revoked', 1, 2)`,
      ).run();
      old.prepare("INSERT INTO key_changes (key_id, action, actor, at, detail) VALUES ('pck_test_v1_old', 'create', 'cli:old', 1, '{\"scopes\":[\"read\"]}')").run();
      old.prepare("INSERT INTO key_changes (key_id, action, actor, at, detail) VALUES ('pck_test_v1_old', 'revoke', 'cli:old', 2, '{}')").run();
      old.close();

      const store = new SqliteStore(path);
      try {
        const imported = store.audit.query({ limit: 10 }).map((r) => decodeEntry(r.entry));
        expect(imported).toMatchObject([
          { seq: 1, event: "key.create", actor: "cli:old", key: "pck_test_v1_old", account: "acct-old", at: 1, detail: { scopes: ["read"], imported: true } },
          { seq: 2, event: "key.revoke", actor: "cli:old", at: 2, detail: { imported: true } },
        ]);
        const { verifyAudit } = await import("../../src/audit/verify.js");
        expect((await verifyAudit(store.audit)).ok).toBe(true);
      } finally {
        await store.close();
      }
      // Opening it again imports nothing more.
      const again = new SqliteStore(path);
      expect(again.audit.bounds()).toEqual({ first: 1, last: 2 });
      await again.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
