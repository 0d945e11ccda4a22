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
import { initDataDir, openDataDir, type OpenDataDir } from "../../src/core/data-dir.js";
import { runCli } from "../support/cli.js";
import { TEST_ROUTES } from "../support/harness.js";
import { itLeaksNoSecret, recordError, recordSecrets, recordText } from "./secrets.js";

const dirs: string[] = [];
let source: string;
let data: OpenDataDir;
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
  data = await openDataDir(source);
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
    const restored = await openDataDir(target);
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
    const other = await openDataDir(target);
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

itLeaksNoSecret();
