import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Envelope } from "../../src/custody/envelope.js";
import { KeyringError, KeyringFileProvider } from "../../src/custody/keyring.js";
import { DataDirError, initDataDir, openDataDir, readSecretFile } from "../../src/core/data-dir.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "portcullis-keyring-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("keyring file", () => {
  it("is created with mode 0600 and never overwritten", () => {
    const path = join(dir, "keyring.json");
    KeyringFileProvider.create(path);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(() => KeyringFileProvider.create(path)).toThrow(KeyringError);
  });

  it("refuses to load when group or others can read it", () => {
    const path = join(dir, "keyring.json");
    KeyringFileProvider.create(path);
    chmodSync(path, 0o644);
    expect(() => KeyringFileProvider.load(path)).toThrow(/chmod 600/);
    chmodSync(path, 0o640);
    expect(() => KeyringFileProvider.load(path)).toThrow(KeyringError);
    chmodSync(path, 0o600);
    expect(KeyringFileProvider.load(path).activeVersion).toBe(1);
  });

  it("refuses a missing or corrupt keyring with a clear message", () => {
    expect(() => KeyringFileProvider.load(join(dir, "none.json"))).toThrow(/portcullis init/);
    const path = join(dir, "bad.json");
    writeFileSync(path, "{not json", { mode: 0o600 });
    expect(() => KeyringFileProvider.load(path)).toThrow(/not valid JSON/);
  });
});

describe("envelope encryption", () => {
  it("round-trips, and binds the row: a ciphertext moved to another key does not decrypt", async () => {
    const envelope = new Envelope(KeyringFileProvider.create(join(dir, "k.json")));
    const sealed = await envelope.encrypt(Buffer.from("the secret"), "key-secret", "row-a");
    expect((await envelope.decrypt(sealed, "key-secret", "row-a")).toString()).toBe("the secret");
    await expect(envelope.decrypt(sealed, "key-secret", "row-b")).rejects.toThrow();
    await expect(envelope.decrypt(sealed, "other-purpose", "row-a")).rejects.toThrow();
    expect(sealed.includes(Buffer.from("the secret"))).toBe(false);
  });

  it("fails on any tampered byte", async () => {
    const envelope = new Envelope(KeyringFileProvider.create(join(dir, "k.json")));
    const sealed = await envelope.encrypt(Buffer.from("the secret"), "key-secret", "row-a");
    for (const i of [0, 3, 8, 40, sealed.length - 20, sealed.length - 1]) {
      const copy = Buffer.from(sealed);
      copy[i] = (copy[i] ?? 0) ^ 0x01;
      await expect(envelope.decrypt(copy, "key-secret", "row-a")).rejects.toThrow();
    }
  });

  it("cannot be opened with another keyring", async () => {
    const a = new Envelope(KeyringFileProvider.create(join(dir, "a.json")));
    const b = new Envelope(KeyringFileProvider.create(join(dir, "b.json")));
    const sealed = await a.encrypt(Buffer.from("s"), "key-secret", "r");
    await expect(b.decrypt(sealed, "key-secret", "r")).rejects.toThrow();
  });
});

describe("data directory", () => {
  it("init creates keyring and identity secret with mode 0600, the directory 0700", async () => {
    const data = join(dir, "data");
    const result = await initDataDir(data, "test");
    expect(result.created.length).toBe(4);
    expect(statSync(data).mode & 0o777).toBe(0o700);
    expect(statSync(join(data, "keyring.json")).mode & 0o777).toBe(0o600);
    expect(statSync(join(data, "identity.secret")).mode & 0o777).toBe(0o600);
    expect(statSync(join(data, "portcullis.db")).mode & 0o077).toBe(0);
    expect((await initDataDir(data, "test")).created).toEqual([]);
  });

  it("fixes the environment at the first init", async () => {
    const data = join(dir, "data");
    await initDataDir(data, "test");
    await expect(initDataDir(data, "live")).rejects.toThrow(DataDirError);
    const opened = await openDataDir(data);
    expect(opened.environment).toBe("test");
    await opened.store.close();
  });

  it("refuses a readable identity secret and a directory that was never initialised", async () => {
    const data = join(dir, "data");
    await initDataDir(data);
    chmodSync(join(data, "identity.secret"), 0o644);
    expect(() => readSecretFile(join(data, "identity.secret"))).toThrow(/chmod 600/);
    await expect(openDataDir(join(dir, "nothing"))).rejects.toThrow(/portcullis init/);
  });
});
