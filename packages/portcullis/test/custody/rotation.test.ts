/**
 * KEK rotation and custody status on the keyring file: every kind of envelope is rewrapped, old
 * versions are retired, other processes' providers follow, concurrent changes are never
 * overwritten, and passphrase hashes an older version stored in clear are sealed.
 */
import { valueOrThrow } from "../../src/errors/result.js";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Portcullis } from "../../src/core/core.js";
import { Envelope } from "../../src/custody/envelope.js";
import { CustodyError } from "../../src/custody/errors.js";
import { KeyringError, KeyringFileProvider } from "../../src/custody/keyring.js";
import { custodyStatus, rotateKek } from "../../src/custody/rotation.js";
import { openStoredSecret } from "../../src/custody/signing.js";
import { parseCreateKeyInput } from "../../src/keys/input.js";
import { hashPassphrase, verifyPassphraseHash } from "../../src/keys/passphrase.js";
import { initDataDir, openDataDir, type OpenDataDir } from "../../src/core/data-dir.js";
import { SqliteStore } from "../../src/storage/sqlite/store.js";
import { runCli } from "../support/cli.js";
import { TEST_ROUTES } from "../support/harness.js";
import { itLeaksNoSecret, recordError, recordSecrets, recordText } from "./secrets.js";

let dir: string;
let data: OpenDataDir;
let core: Portcullis;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "portcullis-rotate-"));
  await initDataDir(dir, "test");
  data = await openDataDir(dir);
  core = new Portcullis({ store: data.store, envelope: data.envelope, environment: "test", routes: TEST_ROUTES });
});
afterEach(async () => {
  await core.close();
  await data.close();
  rmSync(dir, { recursive: true, force: true });
});

function keyringKeks(): Record<string, string> {
  const file = JSON.parse(readFileSync(join(dir, "keyring.json"), "utf8")) as { keks: Record<string, string> };
  return file.keks;
}

async function createKeys(n: number, extra: Record<string, unknown> = {}): Promise<{ id: string; secret: string }[]> {
  const out = [];
  for (let i = 0; i < n; i++) {
    const { key, secret } = await core.keys.create(valueOrThrow(parseCreateKeyInput({ account: "acct", scopes: ["read"], ...extra }, Date.now())), "test");
    if (secret !== null) out.push({ id: key.id, secret });
  }
  recordSecrets(...out.map((k) => k.secret));
  return out;
}

describe("KEK rotation (keyring file)", () => {
  it("rewraps every envelope kind, retires the old version, and changes no secret", async () => {
    const keys = await createKeys(3);
    const okx = await createKeys(2, { dialects: ["okx"], passphrase: "Correct-Horse-1" });
    const signing = await data.signingKeys.open("session-token");
    const secret = await openStoredSecret(data.store, data.envelope, "session-secret");
    recordSecrets(...Object.values(keyringKeks()));
    const before = await custodyStatus(data.store, data.envelope);
    expect(before).toMatchObject({
      provider: "keyring-file",
      activeVersion: 1,
      versions: [1],
      envelopes: { total: 9, byVersion: { "1": 9 }, byKind: { "key-secret": 5, "key-passphrase": 2, "held-request": 0, "held-outcome": 0, "stored-secret": 1, "signing-key": 1, "hpke-private": 0 }, missingVersions: [], malformed: 0 },
      clearPassphrases: 0,
    });
    const oldKek = keyringKeks()["1"];
    const result = await rotateKek(dir, data.store, data.envelope, { settleMs: 0 });
    expect(result).toMatchObject({ provider: "keyring-file", previous: [1], active: 2, rewrapped: 9, retired: [1], failures: [], passes: 2 });
    const after = await custodyStatus(data.store, data.envelope);
    expect(after.envelopes.byVersion).toEqual({ "2": 9 });
    expect(after.versions).toEqual([2]);
    // The old KEK is gone from the file, which keeps mode 0600.
    expect(Object.keys(keyringKeks())).toEqual(["2"]);
    expect(keyringKeks()["2"]).not.toBe(oldKek);
    expect(statSync(join(dir, "keyring.json")).mode & 0o777).toBe(0o600);
    // Every secret is what it was.
    for (const k of [...keys, ...okx]) expect((await core.keys.loadMaterial(k.id))?.hmacKey?.export().toString()).toBe(k.secret);
    for (const k of okx) expect(await verifyPassphraseHash((await core.keys.loadMaterial(k.id))?.passphraseHash ?? "", "Correct-Horse-1")).toBe(true);
    expect((await openStoredSecret(data.store, data.envelope, "session-secret")).equals(secret)).toBe(true);
    const reopened = await data.signingKeys.open("session-token");
    expect(reopened.kid).toBe(signing.kid);
    expect(reopened.publicKey.equals(signing.publicKey)).toBe(true);
    recordText(JSON.stringify(result), JSON.stringify(after));
  });

  it("another process's keyring provider follows the rotation without a restart", async () => {
    const [k] = await createKeys(1);
    if (k === undefined) throw new Error("no key");
    const other = await openDataDir(dir);
    try {
      const otherCore = new Portcullis({ store: other.store, envelope: other.envelope, environment: "test", routes: TEST_ROUTES });
      await rotateKek(dir, data.store, data.envelope, { settleMs: 0 });
      // It unwraps version 2 (loaded on demand), and wraps new secrets under it.
      expect((await otherCore.keys.loadMaterial(k.id))?.hmacKey?.export().toString()).toBe(k.secret);
      const sealed = await other.envelope.encrypt(Buffer.from("x"), "key-secret", "r");
      expect(Envelope.kekVersionOf(sealed)).toBe(2);
      await otherCore.close();
    } finally {
      await other.close();
    }
  });

  it("keeps the old versions with retire: false, and retires them on the next rotation", async () => {
    await createKeys(2);
    const kept = await rotateKek(dir, data.store, data.envelope, { settleMs: 0, retire: false });
    expect(kept).toMatchObject({ active: 2, retired: [] });
    expect(Object.keys(keyringKeks()).sort()).toEqual(["1", "2"]);
    const next = await rotateKek(dir, data.store, data.envelope, { settleMs: 0 });
    expect(next).toMatchObject({ previous: [1, 2], active: 3, rewrapped: 2, retired: [1, 2] });
  });

  it("never overwrites an envelope that changed under it (compare-and-swap)", async () => {
    const [k] = await createKeys(1);
    if (k === undefined) throw new Error("no key");
    const row = (await data.store.envelopes.keyEnvelopes("", 10))[0];
    if (row?.secretEnvelope === null || row?.secretEnvelope === undefined) throw new Error("no envelope");
    const stale = Buffer.from(row.secretEnvelope);
    stale[stale.length - 1] = (stale[stale.length - 1] ?? 0) ^ 1;
    expect(await data.store.envelopes.replaceKeyEnvelopes([{ id: k.id, column: "secret", expected: stale, next: Buffer.from("x") }])).toBe(0);
    expect(await data.store.envelopes.replaceMeta("environment", "live", "x")).toBe(false);
    expect(await data.store.getMeta("environment")).toBe("test");
  });

  it("reports what it could not rewrap, by location only, and then retires nothing", async () => {
    const [k] = await createKeys(1);
    if (k === undefined) throw new Error("no key");
    // A damaged envelope: its data key no longer authenticates.
    const row = (await data.store.envelopes.keyEnvelopes("", 10))[0];
    if (row?.secretEnvelope === null || row?.secretEnvelope === undefined) throw new Error("no envelope");
    const damaged = Buffer.from(row.secretEnvelope);
    damaged[10] = (damaged[10] ?? 0) ^ 0x80;
    await data.store.envelopes.replaceKeyEnvelopes([{ id: k.id, column: "secret", expected: row.secretEnvelope, next: damaged }]);
    const result = await rotateKek(dir, data.store, data.envelope, { settleMs: 0 });
    expect(result.failures).toEqual([{ where: `keys/${k.id}/secret`, code: "CUSTODY_DECRYPT_FAILED" }]);
    expect(result.retired).toEqual([]);
    expect(Object.keys(keyringKeks()).sort()).toEqual(["1", "2"]);
    recordText(JSON.stringify(result));
  });

  it("seals passphrase hashes stored in clear by an older version, at the next open", async () => {
    const hash = await hashPassphrase("Legacy-Passphrase-9");
    recordSecrets("Legacy-Passphrase-9", hash);
    const [k] = await createKeys(1, { dialects: ["okx"], passphrase: "Another-Passphrase-1" });
    if (k === undefined) throw new Error("no key");
    // What a row written before migration 5 looks like: the hash in clear, no envelope.
    const raw = new SqliteStore(join(dir, "portcullis.db"));
    try {
      const db = (raw as unknown as { db: { prepare(sql: string): { run(...a: unknown[]): unknown } } }).db;
      db.prepare("UPDATE keys SET passphrase_hash = ?, passphrase_envelope = NULL WHERE id = ?").run(hash, k.id);
    } finally {
      await raw.close();
    }
    expect((await custodyStatus(data.store, data.envelope)).clearPassphrases).toBe(1);
    // The legacy row still works before it is sealed…
    expect(await verifyPassphraseHash((await core.keys.loadMaterial(k.id))?.passphraseHash ?? "", "Legacy-Passphrase-9")).toBe(true);
    const reopened = await openDataDir(dir);
    try {
      expect((await custodyStatus(reopened.store, reopened.envelope)).clearPassphrases).toBe(0);
      const sealed = (await reopened.store.envelopes.keyEnvelopes("", 10))[0];
      expect(sealed?.legacyPassphraseHash).toBeNull();
      expect(sealed?.passphraseEnvelope?.includes(Buffer.from(hash))).toBe(false);
    } finally {
      await reopened.close();
    }
    // …and after.
    expect(await verifyPassphraseHash((await core.keys.loadMaterial(k.id))?.passphraseHash ?? "", "Legacy-Passphrase-9")).toBe(true);
    const file = readFileSync(join(dir, "portcullis.db"));
    expect(file.includes(Buffer.from(hash))).toBe(false);
  });

  it("a passphrase envelope moved to another key does not open", async () => {
    const [a, b] = await createKeys(2, { dialects: ["okx"], passphrase: "Correct-Horse-1" });
    if (a === undefined || b === undefined) throw new Error("no keys");
    const rows = await data.store.envelopes.keyEnvelopes("", 10);
    const rowA = rows.find((r) => r.id === a.id);
    const rowB = rows.find((r) => r.id === b.id);
    if (!rowA?.passphraseEnvelope || !rowB?.passphraseEnvelope) throw new Error("no envelopes");
    await data.store.envelopes.replaceKeyEnvelopes([{ id: b.id, column: "passphrase", expected: rowB.passphraseEnvelope, next: rowA.passphraseEnvelope }]);
    const err = await core.keys.loadMaterial(b.id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CustodyError);
    expect((err as CustodyError).code).toBe("CUSTODY_DECRYPT_FAILED");
    recordError(err);
  });

  it("a second rotation waits for the first (the custody lock)", async () => {
    await createKeys(2);
    const [first, second] = await Promise.all([
      rotateKek(dir, data.store, data.envelope, { settleMs: 100 }),
      rotateKek(dir, data.store, data.envelope, { settleMs: 0 }),
    ]);
    expect(new Set([first.active, second.active])).toEqual(new Set([2, 3]));
    expect((await custodyStatus(data.store, data.envelope)).versions).toEqual([3]);
  });
});

describe("the keyring file", () => {
  it("is refused when group or others can read it, with a code", () => {
    chmodSync(join(dir, "keyring.json"), 0o640);
    try {
      KeyringFileProvider.load(join(dir, "keyring.json"));
      throw new Error("loaded");
    } catch (err) {
      expect(err).toBeInstanceOf(KeyringError);
      expect((err as KeyringError).code).toBe("KEYRING_INSECURE");
      recordError(err);
    }
  });

  it("refuses to wrap once it is readable by others, even in a process that loaded it before", async () => {
    recordSecrets(...Object.values(keyringKeks()));
    await rotateKek(dir, data.store, data.envelope, { settleMs: 0, retire: false });
    chmodSync(join(dir, "keyring.json"), 0o644);
    const err = await data.envelope.encrypt(Buffer.from("x"), "key-secret", "r").catch((e: unknown) => e);
    expect((err as CustodyError).code).toBe("KEYRING_INSECURE");
    recordError(err);
    chmodSync(join(dir, "keyring.json"), 0o600);
  });

  it("names an unknown KEK version and an envelope it cannot parse", async () => {
    const sealed = await data.envelope.encrypt(Buffer.from("x"), "key-secret", "r");
    const other = Buffer.from(sealed);
    other.writeUInt32BE(9, 1);
    expect(((await data.envelope.decrypt(other, "key-secret", "r").catch((e: unknown) => e)) as CustodyError).code).toBe("CUSTODY_KEK_VERSION_UNKNOWN");
    expect(((await data.envelope.decrypt(Buffer.from([1, 2]), "key-secret", "r").catch((e: unknown) => e)) as CustodyError).code).toBe("CUSTODY_ENVELOPE_MALFORMED");
  });
});

describe("envelopes: properties", () => {
  it("any single flipped bit of an envelope makes it fail to decrypt", async () => {
    const kek = KeyringFileProvider.load(join(dir, "keyring.json"));
    const envelope = new Envelope(kek);
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 96 }), fc.nat(), async (plaintext, bitSeed) => {
        const sealed = await envelope.encrypt(Buffer.from(plaintext), "key-secret", "row-1");
        const bit = bitSeed % (sealed.length * 8);
        const copy = Buffer.from(sealed);
        copy[bit >> 3] = (copy[bit >> 3] ?? 0) ^ (1 << (bit & 7));
        await expect(envelope.decrypt(copy, "key-secret", "row-1")).rejects.toBeInstanceOf(CustodyError);
      }),
      { numRuns: 300 },
    );
  });

  it("an envelope opens only under its own purpose and row", async () => {
    const envelope = new Envelope(KeyringFileProvider.load(join(dir, "keyring.json")));
    await fc.assert(
      fc.asyncProperty(fc.string({ minLength: 1, maxLength: 40 }), fc.string({ minLength: 1, maxLength: 40 }), async (row, otherRow) => {
        fc.pre(row !== otherRow);
        const sealed = await envelope.encrypt(Buffer.from("s"), "key-secret", row);
        expect((await envelope.decrypt(sealed, "key-secret", row)).toString()).toBe("s");
        await expect(envelope.decrypt(sealed, "key-secret", otherRow)).rejects.toBeInstanceOf(CustodyError);
      }),
      { numRuns: 200 },
    );
  });

  it("a rewrap keeps the secret and changes only the wrapped data key", async () => {
    const envelope = data.envelope;
    const sealed = await envelope.encrypt(Buffer.from("the secret"), "key-secret", "r");
    await data.kek.addVersion();
    const rewrapped = await envelope.rewrap(sealed, "key-secret", "r", 2);
    if (rewrapped === null) throw new Error("not rewrapped");
    expect(Envelope.kekVersionOf(rewrapped)).toBe(2);
    // The sealed secret (everything after the wrapped key) is byte for byte the same.
    const tail = (b: Buffer): Buffer => b.subarray(7 + b.readUInt16BE(5));
    expect(tail(rewrapped).equals(tail(sealed))).toBe(true);
    expect((await envelope.decrypt(rewrapped, "key-secret", "r")).toString()).toBe("the secret");
    expect(await envelope.rewrap(rewrapped, "key-secret", "r", 2)).toBeNull();
  });
});

describe("the custody CLI (keyring)", () => {
  it("custody status and custody rotate", async () => {
    await createKeys(2);
    const status = await runCli(["custody", "status", "--data", dir, "--json"]);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ provider: "keyring-file", activeVersion: 1, envelopes: { total: 2, byVersion: { "1": 2 } } });
    const human = await runCli(["custody", "status", "--data", dir]);
    expect(human.stdout).toContain("active KEK      version 1");
    const rotated = await runCli(["custody", "rotate", "--data", dir, "--settle", "0", "--json"]);
    expect(rotated.code).toBe(0);
    expect(JSON.parse(rotated.stdout)).toMatchObject({ active: 2, rewrapped: 2, retired: [1], failures: [] });
    const after = await runCli(["custody", "status", "--data", dir, "--json"]);
    expect(JSON.parse(after.stdout)).toMatchObject({ activeVersion: 2, versions: [2], envelopes: { byVersion: { "2": 2 } } });
    recordText(status.stdout, human.stdout, rotated.stdout, after.stdout);
  });

  it("refuses bad input with one line and a code", async () => {
    chmodSync(join(dir, "keyring.json"), 0o644);
    const insecure = await runCli(["custody", "status", "--data", dir, "--json"]);
    expect(insecure.code).toBe(1);
    expect(JSON.parse(insecure.stderr)).toMatchObject({ error: { code: "KEYRING_INSECURE" } });
    chmodSync(join(dir, "keyring.json"), 0o600);
    const settle = await runCli(["custody", "rotate", "--data", dir, "--settle", "soon"]);
    expect(settle.code).toBe(1);
    expect(settle.stderr).toMatch(/^VALIDATION_FAILED: --settle must be 0-60000 ms\n$/);
    const missing = await runCli(["custody", "status", "--data", join(dir, "nothing")]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^[A-Z_]+: .*portcullis init/);
    recordText(insecure.stderr, settle.stderr, missing.stderr);
  });
});

itLeaksNoSecret();
