/**
 * The durable KEK floor: a rotation raises it in the transaction that finds nothing left under an
 * older version, and every envelope write checks it in its own transaction. Each test interleaves
 * deterministically: a writer wraps under the old version, a rotation (another data-directory
 * handle: another process's view) runs to completion with `settleMs: 0` and retires that version,
 * then the writer's write reaches the store. Before the floor, the write landed under a destroyed
 * version and its secret was lost; now it is refused (CUSTODY_KEK_RETIRED) and wrapped again.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { CustodyConfig } from "../../src/custody/config.js";
import { parseCustodyConfig } from "../../src/custody/config.js";
import { Envelope, PASSPHRASE_PURPOSE, SECRET_PURPOSE } from "../../src/custody/envelope.js";
import { rotateKek } from "../../src/custody/rotation.js";
import { openStoredSecret, STORED_SECRET_PURPOSE } from "../../src/custody/signing.js";
import { initDataDir, openDataDir, type OpenDataDir } from "../../src/core/data-dir.js";
import { OperatorError } from "../../src/errors/catalogue.js";
import { valueOrThrow } from "../../src/errors/result.js";
import { parseCreateKeyInput } from "../../src/keys/input.js";
import { hashPassphrase } from "../../src/keys/passphrase.js";
import { KeyService } from "../../src/keys/service.js";
import { KEK_FLOOR_META } from "../../src/storage/kek-floor.js";
import type { DurableStore, KeyStore, MetaStore } from "../../src/storage/types.js";
import { SoftHsm, type SoftHsmToken, softhsmOrSkip } from "../support/softhsm.js";

const dirs: string[] = [];
const opened: OpenDataDir[] = [];
afterEach(async () => {
  for (const d of opened.splice(0)) await d.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function dataDir(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-kek-floor-"));
  dirs.push(dir);
  await initDataDir(dir, "test");
  return dir;
}

async function open(dir: string, custody?: CustodyConfig): Promise<OpenDataDir> {
  const data = await openDataDir(dir, custody === undefined ? {} : { custody });
  opened.push(data);
  return data;
}

/** `store` with its key store's writes (insert, rotate) first running `before` once. */
function interceptKeys(store: DurableStore, before: () => Promise<void>): { store: DurableStore; calls: () => number } {
  let calls = 0;
  const once = async (): Promise<void> => {
    if (calls++ === 0) await before();
  };
  const keys: KeyStore = Object.create(store.keys) as KeyStore;
  keys.insert = async (row, change) => {
    await once();
    return store.keys.insert(row, change);
  };
  keys.rotate = async (id, successor, expiresAt, change, created) => {
    await once();
    return store.keys.rotate(id, successor, expiresAt, change, created);
  };
  const wrapped = Object.create(store, { keys: { value: keys } }) as DurableStore;
  return { store: wrapped, calls: () => calls };
}

function code(err: unknown): string {
  return err instanceof OperatorError ? String(err.code) : String(err);
}

/** `value`, or a failed test when it is null or undefined. */
function present<T>(value: T | null | undefined): T {
  if (value === null || value === undefined) throw new Error("expected a value");
  return value;
}

/** The same scenarios on the keyring file and on a SoftHSM2 token. */
function scenarios(name: string, custody: () => CustodyConfig | undefined): void {
  describe(`KEK floor (${name})`, () => {
    it("a key created under the old version while a rotation retires it is refused, wrapped again, and decrypts", async () => {
      const dir = await dataDir();
      const gateway = await open(dir, custody());
      const rotator = await open(dir, custody());
      // The token is shared by the scenarios: its versions go on from the last one.
      const v = (await rotator.kek.versions()).active;
      let rotated: Awaited<ReturnType<typeof rotateKek>> | undefined;
      // The secret is wrapped (under version 1) before the insert; the rotation runs in between.
      const { store, calls } = interceptKeys(gateway.store, async () => {
        rotated = await rotateKek(dir, rotator.store, rotator.envelope, { settleMs: 0 });
      });
      const service = new KeyService({ store, envelope: gateway.envelope, environment: "test" });
      const { key, secret } = await service.create(valueOrThrow(parseCreateKeyInput({ account: "acct", scopes: ["read"], dialects: ["native", "okx"], passphrase: "Correct-Horse-1" }, Date.now())), "test");
      expect(rotated).toMatchObject({ previous: [v], active: v + 1, retired: [v], failures: [] });
      expect(calls()).toBe(2); // refused once, then stored
      expect(await rotator.store.envelopes.kekFloor()).toBe(v + 1);
      expect((await rotator.kek.versions()).held).toEqual([v + 1]);
      const row = present(await rotator.store.keys.get(key.id));
      const sealed = present(row.secretEnvelope);
      const passphrase = present(row.passphraseEnvelope);
      expect(Envelope.kekVersionOf(sealed)).toBe(v + 1);
      expect(Envelope.kekVersionOf(passphrase)).toBe(v + 1);
      // What the caller was given is what the store holds, under a version that still exists.
      expect((await rotator.envelope.decrypt(sealed, SECRET_PURPOSE, key.id)).toString("utf8")).toBe(present(secret));
      expect((await rotator.envelope.decrypt(passphrase, PASSPHRASE_PURPOSE, key.id)).toString("utf8")).toMatch(/\S/);
    }, 30_000);

    it("a key rotation (successor) wrapped under the old version is refused, wrapped again, and decrypts", async () => {
      const dir = await dataDir();
      const gateway = await open(dir, custody());
      const rotator = await open(dir, custody());
      // The token is shared by the scenarios: its versions go on from the last one.
      const v = (await rotator.kek.versions()).active;
      const plain = new KeyService({ store: gateway.store, envelope: gateway.envelope, environment: "test" });
      const { key: old } = await plain.create(valueOrThrow(parseCreateKeyInput({ account: "acct", scopes: ["read"] }, Date.now())), "test");
      const { store, calls } = interceptKeys(gateway.store, async () => {
        await rotateKek(dir, rotator.store, rotator.envelope, { settleMs: 0 });
      });
      const service = new KeyService({ store, envelope: gateway.envelope, environment: "test" });
      const { key, secret } = await service.rotate(old.id, { graceMs: 60_000, publicKey: undefined }, "test");
      expect(calls()).toBe(2);
      const sealed = present((await rotator.store.keys.get(key.id))?.secretEnvelope);
      expect(Envelope.kekVersionOf(sealed)).toBe(v + 1);
      expect((await rotator.envelope.decrypt(sealed, SECRET_PURPOSE, key.id)).toString("utf8")).toBe(present(secret));
    }, 30_000);

    it("a stored secret first written under the old version while a rotation retires it is refused, written again, and opens", async () => {
      const dir = await dataDir();
      const gateway = await open(dir, custody());
      const rotator = await open(dir, custody());
      // The token is shared by the scenarios: its versions go on from the last one.
      const v = (await rotator.kek.versions()).active;
      let calls = 0;
      const meta: MetaStore = Object.create(gateway.store.meta) as MetaStore;
      meta.initMeta = async (k, v) => {
        if (calls++ === 0) await rotateKek(dir, rotator.store, rotator.envelope, { settleMs: 0 });
        return gateway.store.meta.initMeta(k, v);
      };
      const secret = await openStoredSecret(meta, gateway.envelope, "kek-floor-test");
      expect(calls).toBe(2);
      const stored = await rotator.store.meta.getMeta("secret:kek-floor-test");
      if (stored === undefined) throw new Error("not stored");
      expect(Envelope.kekVersionOf(Buffer.from(stored, "base64"))).toBe(v + 1);
      const again = await rotator.envelope.decrypt(Buffer.from(stored, "base64"), STORED_SECRET_PURPOSE, "secret:kek-floor-test");
      expect(again.equals(secret.export())).toBe(true);
      // Another process opening it now gets the same secret.
      expect((await openStoredSecret(rotator.store.meta, rotator.envelope, "kek-floor-test")).export().equals(secret.export())).toBe(true);
    }, 30_000);
  });
}

scenarios("keyring file", () => undefined);

const withHsm = softhsmOrSkip("the KEK floor on SoftHSM2 (test/custody/kek-floor.test.ts)");
describe.runIf(withHsm)("on SoftHSM2", () => {
  let hsm: SoftHsm;
  let token: SoftHsmToken;
  beforeAll(() => {
    hsm = new SoftHsm();
    token = hsm.initToken("portcullis-floor");
  });
  afterAll(() => {
    hsm.cleanup();
  });
  scenarios("SoftHSM2", () => {
    const parsed = parseCustodyConfig(hsm.custody(token), "/");
    if (!parsed.ok) throw new Error(parsed.message);
    return parsed.value;
  });
});

describe("KEK floor: the rotation and the store's checks (keyring file)", () => {
  it("the floor is raised only once nothing is under an older version: an envelope landing after the last pass gets another pass", async () => {
    const dir = await dataDir();
    const gateway = await open(dir);
    const rotator = await open(dir);
    const service = new KeyService({ store: gateway.store, envelope: gateway.envelope, environment: "test" });
    const { key, secret } = await service.create(valueOrThrow(parseCreateKeyInput({ account: "acct", scopes: ["read"] }, Date.now())), "test");
    const underV1 = present((await gateway.store.keys.get(key.id))?.secretEnvelope);
    // After the passes found nothing left, just before the floor: a stale writer's envelope under
    // version 1 lands (the floor is still 0, so the store takes it).
    let raises = 0;
    const envelopes = Object.create(rotator.store.envelopes) as DurableStore["envelopes"];
    envelopes.raiseKekFloor = async (floor) => {
      if (raises++ === 0) {
        const now = present((await gateway.store.keys.get(key.id))?.secretEnvelope);
        expect(Envelope.kekVersionOf(now)).toBe(2);
        expect(await gateway.store.envelopes.replaceKeyEnvelopes([{ id: key.id, column: "secret", expected: now, next: underV1 }])).toBe(1);
      }
      return rotator.store.envelopes.raiseKekFloor(floor);
    };
    const store = Object.create(rotator.store, { envelopes: { value: envelopes } }) as DurableStore;
    const result = await rotateKek(dir, store, rotator.envelope, { settleMs: 0 });
    expect(raises).toBe(2);
    expect(result).toMatchObject({ active: 2, retired: [1], failures: [] });
    const sealed = present((await rotator.store.keys.get(key.id))?.secretEnvelope);
    expect(Envelope.kekVersionOf(sealed)).toBe(2);
    expect((await rotator.envelope.decrypt(sealed, SECRET_PURPOSE, key.id)).toString("utf8")).toBe(present(secret));
  });

  it("every envelope write under a version below the floor is refused with CUSTODY_KEK_RETIRED, in its transaction", async () => {
    const dir = await dataDir();
    const data = await open(dir);
    const service = new KeyService({ store: data.store, envelope: data.envelope, environment: "test" });
    const { key } = await service.create(valueOrThrow(parseCreateKeyInput({ account: "acct", scopes: ["read"] }, Date.now())), "test");
    const row = present(await data.store.keys.get(key.id));
    const v1 = await data.envelope.encrypt(Buffer.from("under version 1"), SECRET_PURPOSE, "x");
    const v1Secret = (await data.envelope.encrypt(Buffer.alloc(32, 7), STORED_SECRET_PURPOSE, "secret:held")).toString("base64");
    await data.store.meta.initMeta("secret:held", v1Secret);
    const hash = await hashPassphrase("Correct-Horse-1");
    const v1Passphrase = await data.envelope.encrypt(Buffer.from(hash), PASSPHRASE_PURPOSE, key.id);
    // A floor above everything stored is refused while an envelope is under an older version.
    expect(await data.store.envelopes.raiseKekFloor(2)).toEqual({ raised: false, floor: 0, below: 2 });
    const result = await rotateKek(dir, data.store, data.envelope, { settleMs: 0 });
    expect(result).toMatchObject({ active: 2, retired: [1] });
    expect(await data.store.envelopes.kekFloor()).toBe(2);
    expect(await data.store.meta.getMeta(KEK_FLOOR_META)).toBe("2");
    // Never lowered.
    expect(await data.store.envelopes.raiseKekFloor(1)).toEqual({ raised: true, floor: 2, below: 0 });

    const refused = async (write: Promise<unknown>): Promise<void> => {
      const err: unknown = await write.then(
        () => null,
        (e: unknown) => e,
      );
      expect(code(err)).toBe("CUSTODY_KEK_RETIRED");
      expect(err).toBeInstanceOf(OperatorError);
    };
    const copy = { ...row, id: `${row.id}x`, secretEnvelope: v1 };
    await refused(Promise.resolve().then(() => data.store.keys.insert(copy, { action: "create", actor: "test", at: Date.now(), detail: {} })));
    expect(await data.store.keys.get(copy.id)).toBeUndefined();
    await refused(Promise.resolve().then(() => data.store.keys.rotate(row.id, copy, Date.now() + 60_000, { action: "rotate", actor: "test", at: Date.now(), detail: {} }, { action: "create", actor: "test", at: Date.now(), detail: {} })));
    expect((await data.store.keys.get(row.id))?.rotatedTo).toBeNull(); // the whole transaction rolled back
    const current = present((await data.store.keys.get(row.id))?.secretEnvelope);
    await refused(data.store.envelopes.replaceKeyEnvelopes([{ id: row.id, column: "secret", expected: current, next: v1 }]));
    expect((await data.store.keys.get(row.id))?.secretEnvelope?.equals(current)).toBe(true);
    await refused(data.store.meta.setMeta("secret:other", v1Secret));
    await refused(data.store.meta.initMeta("secret:other", v1Secret));
    expect(await data.store.meta.getMeta("secret:other")).toBeUndefined();
    const held = await data.store.meta.getMeta("secret:held");
    if (held === undefined) throw new Error("not held");
    await refused(data.store.envelopes.replaceMeta("secret:held", held, v1Secret));
    // An entry already there: initMeta writes nothing, so nothing is refused.
    expect(await data.store.meta.initMeta("secret:held", v1Secret)).toBe(held);
    // A signing key's envelope is inside its JSON.
    await refused(data.store.meta.setMeta("signing-key:test", JSON.stringify({ v: 1, alg: "ed25519", kid: "k", publicKey: "", privateKey: v1Secret })));
    // Legacy passphrase sealing: the row's hash stays in clear rather than sealed under a retired version.
    const { key: okx } = await service.create(valueOrThrow(parseCreateKeyInput({ account: "acct", scopes: ["read"] }, Date.now())), "test");
    const { default: Database } = await import("better-sqlite3");
    const db = new Database(join(dir, "portcullis.db"));
    db.prepare("UPDATE keys SET passphrase_hash = ? WHERE id = ?").run(hash, okx.id);
    db.close();
    await refused(data.store.envelopes.sealLegacyPassphrase(okx.id, hash, v1Passphrase));
    expect((await data.store.envelopes.keyEnvelopes("", 100)).find((r) => r.id === okx.id)?.legacyPassphraseHash).toBe(hash);
    // Other meta entries, and envelopes under the floor's version, are written as before.
    await data.store.meta.setMeta("environment-note", "anything");
    expect(await data.store.meta.initMeta("secret:fresh", (await data.envelope.encrypt(Buffer.alloc(32, 1), STORED_SECRET_PURPOSE, "secret:fresh")).toString("base64"))).toMatch(/\S/);
  });
});
