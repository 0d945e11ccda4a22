/**
 * Encrypted backups: written while the store is in use, restorable only with the KEK they were
 * made under, refused clearly otherwise, and never written or read past a damaged byte.
 */
import { valueOrThrow } from "../../src/errors/result.js";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Portcullis } from "../../src/core/core.js";
import { readBackupHeader, restoreBackup, writeBackup } from "../../src/custody/backup.js";
import { CustodyError } from "../../src/custody/errors.js";
import { type KekProvider, KeyringFileProvider } from "../../src/custody/keyring.js";
import { rotateKek } from "../../src/custody/rotation.js";
import { parseCreateKeyInput } from "../../src/keys/input.js";
import { initDataDir } from "../../src/core/data-dir.js";
import { type SqliteDataDir, openSqliteDataDir } from "../support/data-dir.js";
import { newOperationId, type PolicySubject } from "../../src/contract/policy.js";
import { HoldService } from "../../src/holds/service.js";
import { HoldWithdrawals, Releases, WITHDRAWAL, approver, heldRequest } from "../approvals/support.js";
import { runCli } from "../support/cli.js";
import { TEST_ROUTES } from "../support/harness.js";
import { itLeaksNoSecret, recordError, recordSecrets, recordText } from "./secrets.js";

const dirs: string[] = [];
let source: string;
let data: SqliteDataDir;
let core: Portcullis;
let secret: string;
let keyId: string;

function tempDir(tag: string): string {
  const d = mkdtempSync(join(tmpdir(), `portcullis-${tag}-`));
  dirs.push(d);
  return d;
}

beforeEach(async () => {
  source = tempDir("backup-src");
  await initDataDir(source, "test");
  data = await openSqliteDataDir(source);
  core = new Portcullis({ store: data.store, envelope: data.envelope, environment: "test", routes: TEST_ROUTES });
  const created = await core.keys.create(valueOrThrow(parseCreateKeyInput({ account: "acct", scopes: ["read", "trade"] }, Date.now())), "test");
  if (created.secret === null) throw new Error("no secret");
  secret = created.secret;
  keyId = created.key.id;
  const keyring = JSON.parse(readFileSync(join(source, "keyring.json"), "utf8")) as { keks: Record<string, string> };
  recordSecrets(secret, ...Object.values(keyring.keks));
});
afterEach(async () => {
  await core.close();
  await data.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function refusal(p: Promise<unknown>): Promise<CustodyError> {
  const err = await p.catch((e: unknown) => e);
  expect(err).toBeInstanceOf(CustodyError);
  recordError(err);
  return err as CustodyError;
}

/** A data directory holding the source's keyring and nothing else. */
function withSameKeyring(): string {
  const target = tempDir("backup-dst");
  copyFileSync(join(source, "keyring.json"), join(target, "keyring.json"));
  return target;
}

describe("backup and restore", () => {
  it("round-trips: the restored directory serves the same keys with the same secrets", async () => {
    const out = join(tempDir("out"), "portcullis.backup");
    const written = await writeBackup({ dataDir: source, store: data.store, kek: data.kek, environment: "test", out });
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect(written.header).toMatchObject({ format: "portcullis-backup", version: 1, provider: "keyring-file", kekVersion: 1, environment: "test" });
    const bytes = readFileSync(out);
    expect(bytes.includes(Buffer.from("SQLite format 3"))).toBe(false);
    expect(bytes.includes(Buffer.from(keyId))).toBe(false);
    expect(bytes.includes(Buffer.from(secret))).toBe(false);
    // No plaintext copy is left behind in the data directory.
    expect(readFileSync(join(source, "keyring.json")).length).toBeGreaterThan(0);
    const target = withSameKeyring();
    const result = await restoreBackup({ file: out, dataDir: target, kek: KeyringFileProvider.load(join(target, "keyring.json")), force: false });
    expect(result).toMatchObject({ keys: 1, replaced: false });
    await initDataDir(target, "test");
    const restored = await openSqliteDataDir(target);
    const core2 = new Portcullis({ store: restored.store, envelope: restored.envelope, environment: "test", routes: TEST_ROUTES });
    try {
      expect((await core2.keys.loadMaterial(keyId))?.hmacKey?.export().toString()).toBe(secret);
    } finally {
      await core2.close();
      await restored.close();
    }
  });

  it("is refused with a different keyring, after its KEK version was retired, and from another provider", async () => {
    const out = join(tempDir("out"), "b");
    await writeBackup({ dataDir: source, store: data.store, kek: data.kek, environment: "test", out });
    const stranger = tempDir("stranger");
    await initDataDir(stranger, "test");
    const other = await refusal(restoreBackup({ file: out, dataDir: stranger, kek: KeyringFileProvider.load(join(stranger, "keyring.json")), force: true }));
    expect(other.code).toBe("BACKUP_KEK_MISMATCH");
    expect(other.message).toContain("another KEK");
    // The same keyring after a rotation that retired version 1.
    await rotateKek(source, data.store, data.envelope, { settleMs: 0 });
    const target = withSameKeyring();
    const retired = await refusal(restoreBackup({ file: out, dataDir: target, kek: KeyringFileProvider.load(join(target, "keyring.json")), force: false }));
    expect(retired.code).toBe("BACKUP_KEK_MISMATCH");
    expect(retired.message).toContain("KEK version 1 is not held here");
    expect(existsSync(join(target, "portcullis.db"))).toBe(false);
    const never = (): Promise<never> => Promise.reject(new Error("not called"));
    const fakeHsm: KekProvider = { name: "pkcs11", activeVersion: 1, wrap: never, unwrap: never, versions: never, addVersion: never, retire: never, describe: () => ({}), close: () => Promise.resolve() };
    expect((await refusal(restoreBackup({ file: out, dataDir: target, kek: fakeHsm, force: false }))).code).toBe("BACKUP_PROVIDER_MISMATCH");
  });

  it("refuses a damaged or foreign file, and writes nothing", async () => {
    const out = join(tempDir("out"), "b");
    await writeBackup({ dataDir: source, store: data.store, kek: data.kek, environment: "test", out });
    const original = readFileSync(out);
    const header = readBackupHeader(out);
    const target = withSameKeyring();
    const kek = KeyringFileProvider.load(join(target, "keyring.json"));
    const cases: [string, Buffer][] = [
      ["body byte", Buffer.from(original.map((b, i) => (i === header.bodyStart + 100 ? b ^ 1 : b)))],
      ["tag byte", Buffer.from(original.map((b, i) => (i === original.length - 1 ? b ^ 1 : b)))],
      ["truncated", original.subarray(0, original.length - 1000)],
      ["header environment", Buffer.from(original.toString("latin1").replace('"environment":"test"', '"environment":"live"'), "latin1")],
      ["not a backup", Buffer.from("SQLite format 3\u0000 and so on")],
    ];
    for (const [what, bytes] of cases) {
      const file = join(tempDir("bad"), what);
      writeFileSync(file, bytes);
      const err = await refusal(restoreBackup({ file, dataDir: target, kek, force: false }));
      expect([what, err.code]).toEqual([what, expect.stringMatching(/^BACKUP_(MALFORMED|KEK_MISMATCH)$/) as unknown]);
      expect(existsSync(join(target, "portcullis.db"))).toBe(false);
    }
  });

  it("will not replace a database that holds keys unless forced, and never overwrites a backup file", async () => {
    const out = join(tempDir("out"), "b");
    await writeBackup({ dataDir: source, store: data.store, kek: data.kek, environment: "test", out });
    expect((await refusal(writeBackup({ dataDir: source, store: data.store, kek: data.kek, environment: "test", out }))).message).toContain("never overwrites");
    // The source itself holds a key: restoring onto it needs --force.
    await core.keys.create(valueOrThrow(parseCreateKeyInput({ account: "later", scopes: ["read"] }, Date.now())), "test");
    const kek = KeyringFileProvider.load(join(source, "keyring.json"));
    const target = withSameKeyring();
    await initDataDir(target, "test");
    const other = await openSqliteDataDir(target);
    const otherCore = new Portcullis({ store: other.store, envelope: other.envelope, environment: "test", routes: TEST_ROUTES });
    await otherCore.keys.create(valueOrThrow(parseCreateKeyInput({ account: "x", scopes: ["read"] }, Date.now())), "test");
    await otherCore.close();
    await other.close();
    expect((await refusal(restoreBackup({ file: out, dataDir: target, kek, force: false }))).code).toBe("RESTORE_TARGET_NOT_EMPTY");
    expect(await restoreBackup({ file: out, dataDir: target, kek, force: true })).toMatchObject({ keys: 1, replaced: true });
  });

  it("the CLI: backup --out, restore --in, one-line refusals", async () => {
    const out = join(tempDir("out"), "cli.backup");
    const backup = await runCli(["backup", "--data", source, "--out", out, "--json"]);
    expect(backup.code).toBe(0);
    expect(JSON.parse(backup.stdout)).toMatchObject({ file: out, header: { provider: "keyring-file", kekVersion: 1 } });
    const target = withSameKeyring();
    const restore = await runCli(["restore", "--in", out, "--data", target, "--json"]);
    expect(restore.code).toBe(0);
    expect(JSON.parse(restore.stdout)).toMatchObject({ keys: 1, replaced: false });
    expect(statSync(join(target, "identity.secret")).mode & 0o777).toBe(0o600);
    const list = await runCli(["keys", "list", "--data", target, "--json"]);
    expect((JSON.parse(list.stdout) as { id: string }[]).map((k) => k.id)).toEqual([keyId]);
    const again = await runCli(["restore", "--in", out, "--data", target]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^RESTORE_TARGET_NOT_EMPTY: .*already holds keys.*--force to replace it\n$/);
    const stranger = tempDir("stranger");
    await initDataDir(stranger, "test");
    const refused = await runCli(["restore", "--in", out, "--data", stranger, "--json"]);
    expect(refused.code).toBe(1);
    expect(JSON.parse(refused.stderr)).toMatchObject({ error: { code: "BACKUP_KEK_MISMATCH" } });
    const empty = tempDir("empty");
    const nokeyring = await runCli(["restore", "--in", out, "--data", empty, "--json"]);
    expect(nokeyring.code).toBe(1);
    expect(JSON.parse(nokeyring.stderr)).toMatchObject({ error: { code: "KEYRING_MISSING", message: expect.stringContaining("keyring.json it was made with") as unknown } });
    recordText(backup.stdout, restore.stdout, list.stdout, again.stderr, refused.stderr, nokeyring.stderr);
  });
});

describe("backup and restore: what migrations 9 to 12 added", () => {
  const alice = approver("alice");
  const bob = approver("bob");
  const policy = new HoldWithdrawals([{ group: "treasury", count: 2 }], 0);

  function holdService(d: SqliteDataDir): HoldService {
    return new HoldService({ store: d.store.holds, envelope: d.envelope, policy, pollMs: 1_000_000 });
  }

  async function hold(holds: HoldService, body: string): Promise<string> {
    const id = newOperationId();
    const subject: PolicySubject = { operation: WITHDRAWAL, account: "acct", keyId, client: "127.0.0.1", at: Date.now() };
    await holds.holdRequest(id, subject, policy.decide(subject, id), heldRequest(body), null);
    return id;
  }

  async function approve(holds: HoldService, id: string, who: ReturnType<typeof approver>): Promise<string> {
    const digest = (await holds.view(id)).digest;
    return (await holds.decide(id, who.name, "approve", digest, who.sign("approve", digest))).state;
  }

  async function restored<T>(dir: string, read: (d: SqliteDataDir) => Promise<T>): Promise<T> {
    const d = await openSqliteDataDir(dir);
    try {
      return await read(d);
    } finally {
      await d.close();
    }
  }

  it("carries approvers, held operations (their envelopes open), policy versions, address books and the velocity ledger", async () => {
    const holds = holdService(data);
    await holds.addApprover("alice", ["treasury"], alice.publicPem, "test");
    const id = await hold(holds, "coin=USDT&amount=7&address=0xcc&network=ETH");
    const at = Date.now();
    expect(await data.store.policies.insert({ version: 1, document: '{"rules":[]}', digest: "d".repeat(64), rules: 0, createdAt: at, createdBy: "cli:test" }, {})).toEqual({ ok: true });
    const entry = { id: "adr_1", account: "acct", asset: "USDT", address: "0xcc", network: "ETH", tag: null, label: "cold", addedAt: at, addedBy: "cli:test", usableFrom: at, removedAt: null, removedBy: null };
    expect(await data.store.addresses.add(entry)).toEqual({ ok: true });
    await data.store.spend.decide({ kind: "withdraw", keyId, account: "acct", at, windows: [] }, () => ({
      record: { ref: id, kind: "withdraw", keyId, account: "acct", asset: "USDT", value: { coefficient: 7n, scale: 0 }, at },
      result: null,
    }));
    const out = join(tempDir("out"), "b");
    await writeBackup({ dataDir: source, store: data.store, kek: data.kek, environment: "test", out });
    const target = withSameKeyring();
    await restoreBackup({ file: out, dataDir: target, kek: KeyringFileProvider.load(join(target, "keyring.json")), force: false });
    await initDataDir(target, "test");
    await restored(target, async (d) => {
      const there = holdService(d);
      expect((await there.approvers()).map((a) => a.name)).toEqual(["alice"]);
      expect(await there.view(id)).toMatchObject({ state: "pending", digest: (await holds.view(id)).digest });
      const row = await d.store.holds.hold(id);
      if (row === undefined) throw new Error("not restored");
      expect(JSON.parse((await d.envelope.decrypt(row.held, "held-request", id)).toString("utf8"))).toMatchObject({ url: "/sapi/v1/capital/withdraw/apply" });
      expect(await d.store.policies.latest()).toEqual({ version: 1, digest: "d".repeat(64) });
      expect(await d.store.addresses.get("adr_1")).toEqual(entry);
      expect(await d.store.spend.sums({ kind: "withdraw", keyId, account: "acct", at, windows: [{ per: "account", windowMs: 60_000 }] })).toEqual([{ coefficient: 7n, scale: 0 }]);
    });
  });

  it("is refused when a held operation's envelope is under a KEK version this keyring no longer holds", async () => {
    // A data directory whose only envelope is a held request, under version 1; version 2 is made
    // active (the backup is made under it), and the target's keyring no longer holds version 1.
    const bare = tempDir("backup-bare");
    await initDataDir(bare, "test");
    const d = await openSqliteDataDir(bare);
    const out = join(tempDir("out"), "b");
    try {
      const holds = holdService(d);
      const subject: PolicySubject = { operation: WITHDRAWAL, account: "acct", keyId: null, client: "127.0.0.1", at: Date.now() };
      const id = newOperationId();
      await holds.holdRequest(id, subject, policy.decide(subject, id), heldRequest(), null);
      expect(await d.kek.addVersion()).toBe(2);
      expect((await writeBackup({ dataDir: bare, store: d.store, kek: d.kek, environment: "test", out })).header.kekVersion).toBe(2);
    } finally {
      await d.close();
    }
    const target = tempDir("backup-dst");
    copyFileSync(join(bare, "keyring.json"), join(target, "keyring.json"));
    const kek = KeyringFileProvider.load(join(target, "keyring.json"));
    await kek.retire(1);
    const err = await refusal(restoreBackup({ file: out, dataDir: target, kek, force: false }));
    expect(err.code).toBe("BACKUP_KEK_MISMATCH");
    expect(err.message).toContain("KEK version(s) 1");
    expect(existsSync(join(target, "portcullis.db"))).toBe(false);
  });

  it("will not replace a database that holds held operations, approvers or a policy but no keys, unless forced", async () => {
    const out = join(tempDir("out"), "b");
    await writeBackup({ dataDir: source, store: data.store, kek: data.kek, environment: "test", out });
    const target = withSameKeyring();
    await initDataDir(target, "test");
    await restored(target, async (d) => {
      await holdService(d).addApprover("bob", ["treasury"], bob.publicPem, "test");
    });
    const kek = KeyringFileProvider.load(join(target, "keyring.json"));
    const err = await refusal(restoreBackup({ file: out, dataDir: target, kek, force: false }));
    expect(err.code).toBe("RESTORE_TARGET_NOT_EMPTY");
    expect(err.message).toContain("already holds approvers");
    expect(await restoreBackup({ file: out, dataDir: target, kek, force: true })).toMatchObject({ keys: 1, replaced: true });
  });

  it("restoring an older backup never makes an operation the replaced database released ready again, and keeps what it spent since", async () => {
    const holds = holdService(data);
    const releases = new Releases();
    holds.setRequestReleaser(releases.releaser);
    await holds.addApprover("alice", ["treasury"], alice.publicPem, "test");
    await holds.addApprover("bob", ["treasury"], bob.publicPem, "test");
    const id = await hold(holds, "coin=USDT&amount=9&address=0xdd&network=ETH");
    expect(await approve(holds, id, alice)).toBe("pending");
    // The backup: one approval to go.
    const older = join(tempDir("out"), "older");
    await writeBackup({ dataDir: source, store: data.store, kek: data.kek, environment: "test", out: older });
    expect(await approve(holds, id, bob)).toBe("ready");
    // What the policy counted since the backup.
    const at = Date.now();
    await data.store.spend.decide({ kind: "withdraw", keyId, account: "acct", at, windows: [] }, () => ({
      record: { ref: id, kind: "withdraw", keyId, account: "acct", asset: "USDT", value: { coefficient: 9n, scale: 0 }, at },
      result: null,
    }));
    await holds.idle();
    await holds.stop();
    expect(releases.count(id)).toBe(1);
    expect((await holds.view(id)).state).toBe("released");
    const newer = join(tempDir("out"), "newer");
    await writeBackup({ dataDir: source, store: data.store, kek: data.kek, environment: "test", out: newer });
    // A data directory where it was released; the older backup restored over it.
    const target = withSameKeyring();
    const kek = KeyringFileProvider.load(join(target, "keyring.json"));
    await restoreBackup({ file: newer, dataDir: target, kek, force: false });
    expect(await restoreBackup({ file: older, dataDir: target, kek, force: true })).toMatchObject({ replaced: true, carriedHolds: 1, carriedSpend: 1 });
    await initDataDir(target, "test");
    await restored(target, async (d) => {
      const there = holdService(d);
      const again = new Releases();
      there.setRequestReleaser(again.releaser);
      expect(await there.view(id)).toMatchObject({ state: "released", outcome: { status: 200, body: '{"id":"venue-1"}' } });
      // The approval the backup lacks cannot make it ready, and no pass of the loop sends it.
      expect(await approve(there, id, bob).catch((e: unknown) => (e as { code?: string }).code)).toBe("OPERATION_STATE_CONFLICT");
      await there.tick();
      await there.stop();
      expect(again.calls).toEqual([]);
      // The spend recorded after the backup still counts.
      expect(await d.store.spend.sums({ kind: "withdraw", keyId, account: "acct", at, windows: [{ per: "account", windowMs: 60_000 }] })).toEqual([{ coefficient: 9n, scale: 0 }]);
    });
  });
});

itLeaksNoSecret();
