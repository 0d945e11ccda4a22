import { verify } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { EnvelopeSigningKeys, openStoredSecret } from "../../src/custody/signing.js";
import { initDataDir, openDataDir, type OpenDataDir } from "../../src/core/data-dir.js";

let dir: string;
let data: OpenDataDir;
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "portcullis-signing-"));
  await initDataDir(dir, "test");
  data = await openDataDir(dir);
});
afterEach(async () => {
  await data.store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("the gateway's own signing keys (envelope provider)", () => {
  it("creates one Ed25519 key per purpose, the same for every opener, even concurrent ones", async () => {
    const other = await openDataDir(dir);
    try {
      const [a, b] = await Promise.all([
        new EnvelopeSigningKeys(data.store, data.envelope).open("session-token"),
        new EnvelopeSigningKeys(other.store, other.envelope).open("session-token"),
      ]);
      expect(a.kid).toBe(b.kid);
      expect(a.kid).toMatch(/^session-token:[A-Za-z0-9_-]{12}$/);
      const message = Buffer.from("a session token's signing input");
      const signature = await b.sign(message);
      expect(signature).toHaveLength(64);
      expect(verify(null, message, a.publicKey, signature)).toBe(true);
      const audit = await new EnvelopeSigningKeys(data.store, data.envelope).open("audit-checkpoint");
      expect(audit.kid).not.toBe(a.kid);
      expect(verify(null, message, audit.publicKey, signature)).toBe(false);
    } finally {
      await other.store.close();
    }
  });

  it("stores the private key only envelope-encrypted", async () => {
    const key = await new EnvelopeSigningKeys(data.store, data.envelope).open("session-token");
    const stored = JSON.parse((await data.store.getMeta("signing-key:session-token")) ?? "null") as Record<string, string>;
    expect(Object.keys(stored).sort()).toEqual(["alg", "kid", "privateKey", "publicKey", "v"]);
    expect(stored.privateKey).not.toMatch(/PRIVATE KEY/);
    expect(stored.publicKey).toBe(key.publicKey.export({ type: "spki", format: "pem" }).toString());
  });

  it("refuses a stored key whose ciphertext was moved from another purpose", async () => {
    await new EnvelopeSigningKeys(data.store, data.envelope).open("session-token");
    const moved = (await data.store.getMeta("signing-key:session-token")) ?? "";
    // A fresh data directory, whose audit key slot receives the session key's stored value.
    const dir2 = mkdtempSync(join(tmpdir(), "portcullis-signing-"));
    try {
      await initDataDir(dir2, "test");
      const data2 = await openDataDir(dir2);
      try {
        await data2.store.initMeta("signing-key:audit-checkpoint", moved);
        await expect(new EnvelopeSigningKeys(data2.store, data2.envelope).open("audit-checkpoint")).rejects.toThrow();
      } finally {
        await data2.store.close();
      }
    } finally {
      rmSync(dir2, { recursive: true, force: true });
    }
  });
});

describe("stored secrets", () => {
  it("creates a 256-bit secret once and returns the same one to every opener", async () => {
    const [a, b] = await Promise.all([openStoredSecret(data.store, data.envelope, "session-secret"), openStoredSecret(data.store, data.envelope, "session-secret")]);
    expect(a.symmetricKeySize).toBe(32);
    expect(a.equals(b)).toBe(true);
    const other = await openStoredSecret(data.store, data.envelope, "another");
    expect(other.equals(a)).toBe(false);
  });

  it("fails to open a secret whose ciphertext was copied under another name", async () => {
    await openStoredSecret(data.store, data.envelope, "session-secret");
    await data.store.initMeta("secret:copied", (await data.store.getMeta("secret:session-secret")) ?? "");
    await expect(openStoredSecret(data.store, data.envelope, "copied")).rejects.toThrow();
  });
});
