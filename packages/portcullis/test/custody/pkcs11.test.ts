/**
 * The PKCS#11 provider against a real SoftHSM2 token (a private token directory per run): KEK
 * wrap/unwrap, HSM-held Ed25519 signing keys, clear startup errors, rotation under load with no
 * failed request, and the proof that the request path makes no HSM call.
 */
import { valueOrThrow } from "../../src/errors/result.js";
import { execFile } from "node:child_process";
import { randomBytes, verify } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Portcullis } from "../../src/core/core.js";
import { type CustodyConfig, parseCustodyConfig } from "../../src/custody/config.js";
import { Envelope } from "../../src/custody/envelope.js";
import { CustodyError } from "../../src/custody/errors.js";
import { openKekProvider } from "../../src/custody/open.js";
import { Pkcs11Token } from "../../src/custody/pkcs11-token.js";
import { custodyStatus, rotateKek } from "../../src/custody/rotation.js";
import { parseCreateKeyInput } from "../../src/keys/input.js";
import { initDataDir, openDataDir, type OpenDataDir } from "../../src/core/data-dir.js";
import { type SqliteDataDir, openSqliteDataDir } from "../support/data-dir.js";
import { runCli } from "../support/cli.js";
import { TEST_ROUTES, signRequest } from "../support/harness.js";
import { SoftHsm, type SoftHsmToken, SOFTHSM_MODULE, softhsmOrSkip } from "../support/softhsm.js";
import { captureLogger } from "../support/gateway.js";
import { itLeaksNoSecret, recordError, recordSecrets, recordText } from "./secrets.js";

const run = softhsmOrSkip("PKCS#11 custody tests (test/custody/pkcs11.test.ts)");

function custodyOf(raw: Record<string, unknown>): CustodyConfig {
  const parsed = parseCustodyConfig(raw, "/");
  if (!parsed.ok) throw new Error(parsed.message);
  return parsed.value;
}

async function failureOf(p: Promise<unknown>): Promise<CustodyError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(CustodyError);
    recordError(err);
    return err as CustodyError;
  }
  throw new Error("expected a refusal");
}

describe.runIf(run)("PKCS#11 custody on SoftHSM2", () => {
  let hsm: SoftHsm;
  let token: SoftHsmToken;
  let other: SoftHsmToken;
  const dirs: string[] = [];
  const opened: OpenDataDir[] = [];

  beforeAll(() => {
    hsm = new SoftHsm();
    token = hsm.initToken("portcullis-a");
    other = hsm.initToken("portcullis-b");
    recordSecrets(token.pin, token.soPin, other.pin, other.soPin);
  });
  afterAll(() => {
    hsm.cleanup();
  });
  afterEach(async () => {
    for (const d of opened.splice(0)) await d.close();
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  /** A token of its own (while nothing holds the module open, so SoftHSM rescans its tokens). */
  function freshToken(): SoftHsmToken {
    const t = hsm.initToken();
    recordSecrets(t.pin, t.soPin);
    return t;
  }

  async function dataDir(): Promise<string> {
    const dir = mkdtempSync(join(tmpdir(), "portcullis-hsm-"));
    dirs.push(dir);
    await initDataDir(dir, "test");
    return dir;
  }

  async function openHsm(dir: string, t: SoftHsmToken = token, extra: Record<string, unknown> = {}): Promise<SqliteDataDir> {
    const data = await openSqliteDataDir(dir, { custody: custodyOf(hsm.custody(t, extra)), pollIntervalMs: 50 });
    opened.push(data);
    return data;
  }

  it("wraps data keys under a non-extractable AES KEK generated in the token, and unwraps them", async () => {
    const data = await openHsm(await dataDir());
    expect(data.kek.name).toBe("pkcs11");
    expect(data.kek.activeVersion).toBe(1);
    const sealed = await data.envelope.encrypt(Buffer.from("an HMAC secret"), "key-secret", "row-a");
    expect((await data.envelope.decrypt(sealed, "key-secret", "row-a")).toString()).toBe("an HMAC secret");
    expect(sealed.includes(Buffer.from("an HMAC secret"))).toBe(false);
    // The KEK in the token: sensitive, never extractable, its value unreadable.
    const hsmToken = data.custody.token;
    expect(hsmToken).not.toBeNull();
    if (hsmToken === null) return;
    const { p } = hsmToken;
    const [kek] = await hsmToken.find([{ type: p.CKA_CLASS, value: p.CKO_SECRET_KEY }, { type: p.CKA_LABEL, value: "portcullis/kek-v1" }]);
    expect(kek).toBeDefined();
    if (kek === undefined) return;
    const [extractable, sensitive] = await hsmToken.attributes(kek, [p.CKA_EXTRACTABLE, p.CKA_SENSITIVE]);
    expect(extractable?.[0]).toBe(0);
    expect(sensitive?.[0]).toBe(1);
    await expect(hsmToken.attributes(kek, [p.CKA_VALUE])).rejects.toThrow(/CKR_ATTRIBUTE_SENSITIVE/);
  });

  it("refuses a ciphertext moved to another row, and any single flipped bit", async () => {
    const data = await openHsm(await dataDir());
    const sealed = await data.envelope.encrypt(Buffer.from("secret-of-row-a"), "key-secret", "row-a");
    const moved = await failureOf(data.envelope.decrypt(sealed, "key-secret", "row-b"));
    expect(moved.code).toBe("CUSTODY_DECRYPT_FAILED");
    expect((await failureOf(data.envelope.decrypt(sealed, "key-passphrase", "row-a"))).code).toBe("CUSTODY_DECRYPT_FAILED");
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: sealed.length * 8 - 1 }), async (bit) => {
        const copy = Buffer.from(sealed);
        copy[bit >> 3] = (copy[bit >> 3] ?? 0) ^ (1 << (bit & 7));
        await expect(data.envelope.decrypt(copy, "key-secret", "row-a")).rejects.toBeInstanceOf(CustodyError);
      }),
      { numRuns: 60 },
    );
  });

  it("a ciphertext of one token does not open under another token's KEK", async () => {
    const a = await openHsm(await dataDir(), token);
    const b = await openHsm(await dataDir(), other);
    const sealed = await a.envelope.encrypt(Buffer.from("s"), "key-secret", "r");
    expect((await failureOf(b.envelope.decrypt(sealed, "key-secret", "r"))).code).toBe("CUSTODY_DECRYPT_FAILED");
  });

  it("signs with an Ed25519 key generated in the token; node:crypto verifies; the private key never leaves", async () => {
    const data = await openHsm(await dataDir());
    const key = await data.signingKeys.open("session-token");
    expect(key.provider).toBe("pkcs11");
    expect(key.kid).toMatch(/^session-token:[A-Za-z0-9_-]{12}$/);
    const message = Buffer.from("a session token's signing input");
    const signature = await key.sign(message);
    expect(signature).toHaveLength(64);
    expect(verify(null, message, key.publicKey, signature)).toBe(true);
    expect(verify(null, Buffer.from("something else"), key.publicKey, signature)).toBe(false);
    const again = await data.signingKeys.open("session-token");
    expect(again.kid).toBe(key.kid);
    const audit = await data.signingKeys.open("audit-checkpoint");
    expect(audit.kid).not.toBe(key.kid);
    expect(verify(null, message, audit.publicKey, signature)).toBe(false);
    const hsmToken = data.custody.token;
    if (hsmToken === null) throw new Error("no token");
    const { p } = hsmToken;
    const [priv] = await hsmToken.find([{ type: p.CKA_CLASS, value: p.CKO_PRIVATE_KEY }, { type: p.CKA_ID, value: Buffer.from(key.kid) }]);
    if (priv === undefined) throw new Error("no private key in the token");
    const [extractable, sensitive] = await hsmToken.attributes(priv, [p.CKA_EXTRACTABLE, p.CKA_SENSITIVE]);
    expect(extractable?.[0]).toBe(0);
    expect(sensitive?.[0]).toBe(1);
    await expect(hsmToken.attributes(priv, [p.CKA_VALUE])).rejects.toThrow(/CKR_ATTRIBUTE_SENSITIVE/);
    // The data directory records the kid and public key only.
    const recorded = (await data.store.getMeta("signing-key-pkcs11:session-token")) ?? "";
    expect(JSON.parse(recorded)).toEqual({ v: 1, alg: "ed25519", provider: "pkcs11", kid: key.kid, publicKey: key.publicKey.export({ type: "spki", format: "pem" }).toString() });
  });

  it("open-or-create is race-free across processes: every process gets the same key, the token keeps one", async () => {
    const dir = await dataDir();
    const own = freshToken();
    const config = hsm.custody(own);
    const dist = fileURLToPath(new URL("../../dist/", import.meta.url));
    const script = join(dir, "open-key.mjs");
    writeFileSync(
      script,
      `import { openDataDir } from ${JSON.stringify(`${dist}core/data-dir.js`)};
       import { parseCustodyConfig } from ${JSON.stringify(`${dist}custody/config.js`)};
       const { value: config } = parseCustodyConfig(${JSON.stringify(config)}, "/");
       const data = await openDataDir(${JSON.stringify(dir)}, { custody: config });
       const key = await data.signingKeys.open("audit-checkpoint");
       process.stdout.write(JSON.stringify({ kid: key.kid, pub: key.publicKey.export({ type: "spki", format: "pem" }) }));
       await data.close();`,
    );
    const settled = await Promise.allSettled(
      Array.from(
        { length: 4 },
        () =>
          new Promise<string>((resolve, reject) => {
            execFile(process.execPath, [script], { env: { ...process.env, ...hsm.env }, timeout: 30_000 }, (err, stdout, stderr) => {
              if (err === null) resolve(stdout);
              else reject(new Error(stderr));
            });
          }),
      ),
    );
    const results = settled.map((r) => {
      if (r.status === "rejected") throw r.reason;
      return r.value;
    });
    const parsed = results.map((r) => JSON.parse(r) as { kid: string; pub: string });
    expect(new Set(parsed.map((r) => r.kid)).size).toBe(1);
    expect(new Set(parsed.map((r) => r.pub)).size).toBe(1);
    const data = await openHsm(dir, own);
    expect((await data.signingKeys.open("audit-checkpoint")).kid).toBe(parsed[0]?.kid);
    const hsmToken = data.custody.token;
    if (hsmToken === null) throw new Error("no token");
    const { p } = hsmToken;
    const privateKeys = await hsmToken.find([{ type: p.CKA_CLASS, value: p.CKO_PRIVATE_KEY }]);
    const ids = await Promise.all(privateKeys.map(async (h) => (await hsmToken.attributes(h, [p.CKA_ID]))[0]?.toString() ?? ""));
    expect(ids.filter((id) => id.startsWith("audit-checkpoint:"))).toEqual([parsed[0]?.kid]);
  });

  it("refuses a recorded signing key the token does not hold", async () => {
    const dir = await dataDir();
    const data = await openHsm(dir);
    await data.store.initMeta(
      "signing-key-pkcs11:session-token",
      JSON.stringify({ v: 1, alg: "ed25519", provider: "pkcs11", kid: "session-token:AAAAAAAAAAAA", publicKey: "x" }),
    );
    expect((await failureOf(data.signingKeys.open("session-token"))).code).toBe("CUSTODY_SIGNING_KEY_MISMATCH");
  });

  describe("startup errors", () => {
    it("a wrong PIN", async () => {
      const dir = await dataDir();
      const err = await failureOf(openDataDir(dir, { custody: custodyOf({ ...hsm.custody(token), pinFile: hsm.pinFile({ ...token, pin: "wrong-pin-1234" }) }) }));
      expect(err.code).toBe("CUSTODY_PIN_INCORRECT");
      expect(err.message).toMatch(/portcullis-a.*refused the PIN/);
      expect(err.message).not.toContain("wrong-pin-1234");
    });

    it("a token that is not there", async () => {
      const dir = await dataDir();
      const err = await failureOf(openDataDir(dir, { custody: custodyOf({ ...hsm.custody(token), tokenLabel: "no-such-token" }) }));
      expect(err.code).toBe("CUSTODY_TOKEN_NOT_FOUND");
      expect(err.message).toContain('no PKCS#11 token labelled "no-such-token"');
      expect(err.message).toContain('"portcullis-a"');
    });

    it("a module that is not there, or not a PKCS#11 module", async () => {
      const dir = await dataDir();
      const missing = await failureOf(openDataDir(dir, { custody: custodyOf({ ...hsm.custody(token), module: "/nonexistent/libpkcs11.so" }) }));
      expect(missing.code).toBe("CUSTODY_MODULE_NOT_FOUND");
      expect(missing.message).toContain("/nonexistent/libpkcs11.so");
      const notModule = await failureOf(openDataDir(dir, { custody: custodyOf({ ...hsm.custody(token), module: join(dir, "portcullis.db") }) }));
      expect(notModule.code).toBe("CUSTODY_MODULE_NOT_FOUND");
    });

    it("a pin file others can read, a missing pin file, an unset PIN variable", async () => {
      const dir = await dataDir();
      const readable = await failureOf(openDataDir(dir, { custody: custodyOf({ ...hsm.custody(token), pinFile: hsm.pinFile(token, 0o644) }) }));
      expect(readable.code).toBe("CUSTODY_PIN_FILE_INSECURE");
      expect(readable.message).toContain("chmod 600");
      expect((await failureOf(openDataDir(dir, { custody: custodyOf({ ...hsm.custody(token), pinFile: join(dir, "none.pin") }) }))).code).toBe("CUSTODY_PIN_MISSING");
      const { pinFile: _pinFile, ...noPin } = hsm.custody(token);
      const unset = await failureOf(openDataDir(dir, { custody: custodyOf({ ...noPin, pinEnv: "PORTCULLIS_TEST_UNSET_PIN" }) }));
      expect(unset.code).toBe("CUSTODY_PIN_MISSING");
      expect(unset.message).toContain("$PORTCULLIS_TEST_UNSET_PIN");
    });

    it("the CLI reports each as one line with its code", async () => {
      const dir = await dataDir();
      const config = (custody: Record<string, unknown>): string => {
        const file = join(dir, `config-${randomBytes(3).toString("hex")}.json`);
        writeFileSync(file, JSON.stringify({ dataDir: dir, gateway: { upstream: "http://127.0.0.1:1" }, routes: TEST_ROUTES, custody }));
        return file;
      };
      const cases: [Record<string, unknown>, string][] = [
        [{ ...hsm.custody(token), pinFile: hsm.pinFile({ ...token, pin: "not-the-pin" }) }, "CUSTODY_PIN_INCORRECT"],
        [{ ...hsm.custody(token), tokenLabel: "absent" }, "CUSTODY_TOKEN_NOT_FOUND"],
        [{ ...hsm.custody(token), module: "/nonexistent/lib.so" }, "CUSTODY_MODULE_NOT_FOUND"],
      ];
      for (const [custody, code] of cases) {
        const result = await runCli(["custody", "status", "--config", config(custody), "--json"], hsm.env);
        expect(result.code).toBe(1);
        const lines = result.stderr.trim().split("\n");
        expect(lines).toHaveLength(1);
        expect((JSON.parse(lines[0] ?? "{}") as { error: { code: string } }).error.code).toBe(code);
        recordText(result.stderr);
        const human = await runCli(["custody", "status", "--config", config(custody)], hsm.env);
        expect(human.stderr.trim().split("\n")).toHaveLength(1);
        expect(human.stderr).toMatch(new RegExp(`^${code}: `));
        expect(human.stderr).not.toMatch(/\n\s+at /);
        recordText(human.stderr);
      }
    });
  });

  it("portcullis start: runs on the HSM, and a wrong PIN or a missing token stops it with one clear line", async () => {
    const dir = await dataDir();
    const configFile = (custody: Record<string, unknown>): string => {
      const file = join(dir, `start-${randomBytes(3).toString("hex")}.json`);
      writeFileSync(
        file,
        JSON.stringify({ dataDir: dir, gateway: { upstream: "http://127.0.0.1:1", port: 0, host: "127.0.0.1" }, admin: { enabled: false }, routes: TEST_ROUTES, custody }),
      );
      return file;
    };
    const { loadConfig } = await import("../../src/config/config.js");
    const { startPortcullis } = await import("../../src/runtime/runtime.js");
    const { silentLogger } = await import("../../src/log/logger.js");
    const running = await startPortcullis(loadConfig(configFile(hsm.custody(token))), silentLogger());
    try {
      const key = await running.core.keys.create(valueOrThrow(parseCreateKeyInput({ account: "a", scopes: ["read"] }, Date.now())), "test");
      if (key.secret !== null) recordSecrets(key.secret);
      expect((await running.core.keys.loadMaterial(key.key.id))?.hmacKey?.export().toString()).toBe(key.secret);
      // Sessions sign their tokens with the token's Ed25519 key (in the HSM), checked in process.
      const sessions = running.core.sessions;
      const loaded = await running.core.cache.load(key.key.id);
      if (sessions === null || loaded === null) throw new Error("the gateway has no sessions");
      const issued = await sessions.logon(loaded, {}, "127.0.0.1", Date.now());
      recordSecrets(issued.secret);
      const checked = sessions.check(issued.keyid, Date.now());
      if ("ok" in checked) throw new Error(`the gateway refused its own session: ${checked.code}`);
      const stored = JSON.parse((await metaOf(dir, "signing-key-pkcs11:session-token")) ?? "{}") as { kid?: string };
      expect(checked.claims.kid).toBe(stored.kid);
    } finally {
      await running.close(0);
    }
    expect(await bindingOf(dir)).toBe("pkcs11");
    for (const [custody, code, text] of [
      [{ ...hsm.custody(token), pinFile: hsm.pinFile({ ...token, pin: "0000-wrong" }) }, "CUSTODY_PIN_INCORRECT", "refused the PIN"],
      [{ ...hsm.custody(token), tokenLabel: "gone" }, "CUSTODY_TOKEN_NOT_FOUND", 'no PKCS#11 token labelled "gone"'],
    ] as const) {
      const err = await failureOf(startPortcullis(loadConfig(configFile(custody)), silentLogger()));
      expect(err.code).toBe(code);
      const cli = await runCli(["start", "--config", configFile(custody)], hsm.env);
      expect(cli.code).toBe(1);
      expect(cli.stderr).toMatch(new RegExp(`^${code}: .*${text}.*\n$`));
      recordText(cli.stderr, cli.stdout);
    }
  });

  /** A meta entry of a data directory, read straight from its database. */
  async function metaOf(dir: string, key: string): Promise<string | undefined> {
    const { SqliteStore } = await import("../../src/storage/sqlite/store.js");
    const store = new SqliteStore(join(dir, "portcullis.db"));
    try {
      return await store.getMeta(key);
    } finally {
      await store.close();
    }
  }

  /** The custody provider a data directory recorded. */
  const bindingOf = (dir: string): Promise<string | undefined> => metaOf(dir, "custody:provider");

  it("a data directory under the keyring is refused with the HSM, and the other way round", async () => {
    const dir = await dataDir();
    const keyring = await openDataDir(dir);
    const t = new Portcullis({ store: keyring.store, envelope: keyring.envelope, environment: "test", routes: TEST_ROUTES });
    await t.keys.create(valueOrThrow(parseCreateKeyInput({ account: "a", scopes: ["read"] }, Date.now())), "test");
    await t.close();
    await keyring.close();
    const err = await failureOf(openDataDir(dir, { custody: custodyOf(hsm.custody(token)) }));
    expect(err.code).toBe("CUSTODY_PROVIDER_MISMATCH");
    const hsmDir = await dataDir();
    const hsmData = await openHsm(hsmDir);
    await hsmData.signingKeys.open("session-token");
    await openStoredSecretUnder(hsmData);
    await hsmData.close();
    const back = await failureOf(openDataDir(hsmDir));
    expect(back.code).toBe("CUSTODY_PROVIDER_MISMATCH");
    expect(back.message).toContain("--config");
  });

  async function openStoredSecretUnder(data: OpenDataDir): Promise<void> {
    const { openStoredSecret } = await import("../../src/custody/signing.js");
    await openStoredSecret(data.store, data.envelope, "session-secret");
  }

  it("rotates the KEK in the token: rewraps everything, destroys the old version", async () => {
    const dir = await dataDir();
    const own = freshToken();
    const data = await openHsm(dir, own, { signingKeys: "envelope" });
    const core = new Portcullis({ store: data.store, envelope: data.envelope, environment: "test", routes: TEST_ROUTES });
    try {
      const created = [];
      for (let i = 0; i < 5; i++) created.push(await core.keys.create(valueOrThrow(parseCreateKeyInput({ account: "a", scopes: ["read"], dialects: ["okx"], passphrase: "Passw0rd!x" }, Date.now())), "test"));
      await data.signingKeys.open("audit-checkpoint");
      await openStoredSecretUnder(data);
      const before = await custodyStatus(data.store, data.envelope);
      expect(before.envelopes.byVersion).toEqual({ "1": 12 });
      expect(before.signingKeys).toEqual([{ purpose: "audit-checkpoint", provider: "envelope", kid: expect.stringMatching(/^audit-checkpoint:/) as unknown }]);
      const result = await rotateKek(dir, data.store, data.envelope, { settleMs: 10 });
      expect(result).toMatchObject({ provider: "pkcs11", previous: [1], active: 2, rewrapped: 12, retired: [1], failures: [] });
      const after = await custodyStatus(data.store, data.envelope);
      expect(after.envelopes.byVersion).toEqual({ "2": 12 });
      expect(after.versions).toEqual([2]);
      // Everything still opens, under version 2 only.
      for (const c of created) expect((await core.keys.loadMaterial(c.key.id))?.passphraseHash).toMatch(/^scrypt\$/);
      expect((await data.signingKeys.open("audit-checkpoint")).provider).toBe("envelope");
      // A second process's provider, opened before, learns of version 2 by itself.
      const kek = await openKekProvider(dir, custodyOf(hsm.custody(own)));
      try {
        expect((await kek.versions()).held).toEqual([2]);
      } finally {
        await kek.close();
      }
    } finally {
      await core.close();
    }
  });

  it("rewraps under load: a core serving signed requests while the KEK rotates fails none", async () => {
    const dir = await dataDir();
    const data = await openHsm(dir, freshToken());
    // No key cache to speak of: every request loads its key, so loads race with the rewrap.
    const { logger, lines } = captureLogger();
    const core = new Portcullis({ store: data.store, envelope: data.envelope, environment: "test", routes: TEST_ROUTES, logger, keyCache: { freshMs: 0, staleMs: 0, negativeMs: 0 } });
    try {
      const keys: { id: string; secret: string }[] = [];
      for (let i = 0; i < 120; i++) {
        const { key, secret } = await core.keys.create(valueOrThrow(parseCreateKeyInput({ account: `a${i % 7}`, scopes: ["read"] }, Date.now())), "test");
        if (secret !== null) keys.push({ id: key.id, secret });
      }
      recordSecrets(...keys.map((k) => k.secret));
      let done = false;
      let served = 0;
      const denials: string[] = [];
      const rotation = rotateKek(dir, data.store, data.envelope, { settleMs: 300, batchSize: 10 }).finally(() => {
        done = true;
      });
      const load = async (): Promise<void> => {
        while (!done) {
          const k = keys[Math.floor(Math.random() * keys.length)];
          if (k === undefined) continue;
          const headers = signRequest({ method: "GET", url: "/api/v3/account", keyId: k.id, key: k.secret, created: Math.floor(Date.now() / 1000) });
          const ctx = await core.verify({ method: "GET", url: "/api/v3/account", headers, body: Buffer.alloc(0), socketAddress: "127.0.0.1" });
          served++;
          if (ctx.denial !== null) denials.push(`${ctx.denial.code} ${ctx.denial.detail ?? ""}`);
        }
      };
      await Promise.all([rotation, load(), load(), load(), load()]);
      const result = await rotation;
      expect(denials).toEqual([]);
      expect(served).toBeGreaterThan(100);
      expect(result).toMatchObject({ active: 2, rewrapped: 120, retired: [1], failures: [] });
      expect((await custodyStatus(data.store, data.envelope)).envelopes.byVersion).toEqual({ "2": 120 });
      recordText(...lines, JSON.stringify(result));
    } finally {
      await core.close();
    }
  });

  it("the request path makes no HSM call: decrypted secrets stay in the key cache", async () => {
    const data = await openHsm(await dataDir());
    const core = new Portcullis({ store: data.store, envelope: data.envelope, environment: "test", routes: TEST_ROUTES });
    try {
      const { key, secret } = await core.keys.create(valueOrThrow(parseCreateKeyInput({ account: "a", scopes: ["read"] }, Date.now())), "test");
      if (secret === null) throw new Error("no secret");
      const request = () => {
        const headers = signRequest({ method: "GET", url: "/api/v3/account", keyId: key.id, key: secret, created: Math.floor(Date.now() / 1000) });
        return core.verify({ method: "GET", url: "/api/v3/account", headers, body: Buffer.alloc(0), socketAddress: "127.0.0.1" });
      };
      expect((await request()).denial).toBeNull(); // loads the key: one unwrap
      const hsmToken = data.custody.token;
      if (hsmToken === null) throw new Error("no token");
      const before = hsmToken.callCount;
      for (let i = 0; i < 500; i++) expect((await request()).denial).toBeNull();
      expect(hsmToken.callCount - before).toBe(0);
    } finally {
      await core.close();
    }
  });

  it("backs up and restores with the HSM's KEK; a keyring data directory cannot restore it", async () => {
    const dir = await dataDir();
    const data = await openHsm(dir);
    const core = new Portcullis({ store: data.store, envelope: data.envelope, environment: "test", routes: TEST_ROUTES });
    const { key, secret } = await core.keys.create(valueOrThrow(parseCreateKeyInput({ account: "a", scopes: ["read"] }, Date.now())), "test");
    if (secret !== null) recordSecrets(secret);
    const { writeBackup, restoreBackup } = await import("../../src/custody/backup.js");
    const file = join(dir, "backup.pcb");
    if (data.store.kind !== "sqlite") throw new Error("not a SQLite data directory");
    const written = await writeBackup({ dataDir: dir, store: data.store, kek: data.kek, environment: "test", out: file });
    await core.close();
    expect(written.header).toMatchObject({ provider: "pkcs11", kekVersion: 1 });
    const target = mkdtempSync(join(tmpdir(), "portcullis-hsm-restore-"));
    dirs.push(target);
    const kek = await openKekProvider(target, custodyOf(hsm.custody(token)));
    try {
      expect(await restoreBackup({ file, dataDir: target, kek, force: false })).toMatchObject({ keys: 1 });
    } finally {
      await kek.close();
    }
    await initDataDir(target, "test");
    const restored = await openHsm(target);
    const core2 = new Portcullis({ store: restored.store, envelope: restored.envelope, environment: "test", routes: TEST_ROUTES });
    try {
      const material = await core2.keys.loadMaterial(key.id);
      expect(material?.hmacKey?.export().toString()).toBe(secret);
    } finally {
      await core2.close();
    }
    const keyringDir = await dataDir();
    const { KeyringFileProvider } = await import("../../src/custody/keyring.js");
    const err = await failureOf(restoreBackup({ file, dataDir: keyringDir, kek: KeyringFileProvider.load(join(keyringDir, "keyring.json")), force: false }));
    expect(err.code).toBe("BACKUP_PROVIDER_MISMATCH");
    const otherKek = await openKekProvider(keyringDir, custodyOf(hsm.custody(other)));
    try {
      expect((await failureOf(restoreBackup({ file, dataDir: keyringDir, kek: otherKek, force: true }))).code).toBe("BACKUP_KEK_MISMATCH");
    } finally {
      await otherKek.close();
    }
  });

  it("counts every C_* call it makes (the counter the hot-path proof and the bench read)", async () => {
    const t = await Pkcs11Token.open({ module: SOFTHSM_MODULE, tokenLabel: token.label, pin: token.pin });
    try {
      const before = t.callCount;
      await t.find([{ type: t.p.CKA_CLASS, value: t.p.CKO_SECRET_KEY }]);
      expect(t.callCount - before).toBeGreaterThanOrEqual(3);
      expect(t.calls.get("C_FindObjectsInit")).toBeGreaterThanOrEqual(1);
    } finally {
      await t.close();
    }
  });

  itLeaksNoSecret();
});

describe("the envelope over any KEK provider", () => {
  it("records nothing but the version in clear", () => {
    expect(Envelope.kekVersionOf(Buffer.from([1, 0, 0, 0, 7, 0, 0]))).toBe(7);
    expect(() => Envelope.kekVersionOf(Buffer.from([2, 0, 0, 0, 7, 0, 0]))).toThrow(CustodyError);
  });
});
