/**
 * The HPKE key stores (storage/types.ts HpkeKeyStore) and the keyring over them
 * (custody/hpke.ts), one contract over SQLite (migration 20, a temporary file) and PostgreSQL
 * (migration 10, a new schema per pair of stores, dropped after the file). Each backend is opened
 * as two "processes" (two SQLite handles on one file, two PostgresStores on one schema): rows read
 * back exactly; one row per generation (of two processes inserting the same generation, one
 * wins and both read the winner); two keyrings rotating at once make one key; retirement erases
 * the private half; the private half is stored only in an envelope (no raw key bytes in the row);
 * rotation and grace on a frozen clock. Without a PostgreSQL the PostgreSQL half is skipped
 * loudly, except in CI (CI=true), where it fails.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { Envelope } from "../../src/custody/envelope.js";
import { HpkeKeyring, hpkeSuite, sealedAad } from "../../src/custody/hpke.js";
import { KeyringFileProvider } from "../../src/custody/keyring.js";
import { PostgresStore } from "../../src/storage/postgres/store.js";
import { SqliteStore } from "../../src/storage/sqlite/store.js";
import type { HpkeKeyRow, HpkeKeyStore } from "../../src/storage/types.js";
import { SHARED_POSTGRES_URL, dropSchema, postgresReachable, uniqueSchema } from "../support/postgres.js";
import { IN_CI, loudSkip } from "../support/redis.js";

const pgUp = await postgresReachable(SHARED_POSTGRES_URL);
if (!pgUp && !IN_CI) loudSkip("the PostgreSQL HPKE key store", `no PostgreSQL answers at ${SHARED_POSTGRES_URL}`);

const dir = mkdtempSync(join(tmpdir(), "portcullis-hpke-contract-"));
KeyringFileProvider.create(join(dir, "keyring.json"));
const envelope = new Envelope(KeyringFileProvider.load(join(dir, "keyring.json")));
let files = 0;
const schemas: string[] = [];
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  for (const s of schemas) await dropSchema(SHARED_POSTGRES_URL, s);
});

interface Opened {
  readonly a: HpkeKeyStore;
  readonly b: HpkeKeyStore;
}

const BACKENDS: { readonly name: string; readonly postgres: boolean; readonly open: () => Promise<Opened> }[] = [
  {
    name: "sqlite",
    postgres: false,
    open: () => {
      const path = join(dir, `store-${++files}.db`);
      const one = new SqliteStore(path);
      const two = new SqliteStore(path);
      cleanups.push(async () => {
        await one.close();
        await two.close();
      });
      return Promise.resolve({ a: one.hpke, b: two.hpke });
    },
  },
  {
    name: "postgres",
    postgres: true,
    open: async () => {
      const schema = uniqueSchema("hpke");
      schemas.push(schema);
      const one = await PostgresStore.open({ url: SHARED_POSTGRES_URL, schema, poolSize: 4 });
      const two = await PostgresStore.open({ url: SHARED_POSTGRES_URL, schema, poolSize: 4 });
      cleanups.push(async () => {
        await one.close();
        await two.close();
      });
      return { a: one.hpke, b: two.hpke };
    },
  },
];

const T0 = 1_765_000_000_000;
const HOUR = 3_600_000;

function row(id: string, generation: number, createdAt = T0): HpkeKeyRow {
  return { id, generation, publicKey: "A".repeat(43), privateEnvelope: Buffer.from([1, 0, 0, 0, 1, 0, 0, generation]), createdAt, notAfter: createdAt + 24 * HOUR, retiredAt: null };
}

for (const backend of BACKENDS) {
  describe.skipIf(backend.postgres && !pgUp && !IN_CI)(`HPKE key store contract: ${backend.name}`, () => {
    it("reads rows back exactly, newest generation first", async () => {
      const { a, b } = await backend.open();
      expect(await a.live()).toEqual([]);
      const first = row("key_one_00000001", 1);
      expect(await a.insert(first)).toEqual(first);
      const second = row("key_two_00000002", 2, T0 + HOUR);
      expect(await b.insert(second)).toEqual(second);
      expect(await a.live()).toEqual([second, first]);
    });

    it("holds one row per generation: of two processes inserting it at once, one wins and both read the winner", async () => {
      const { a, b } = await backend.open();
      const [x, y] = await Promise.all([a.insert(row("key_aaaaaaaaaaaa", 1)), b.insert(row("key_bbbbbbbbbbbb", 1))]);
      expect(x).toEqual(y);
      expect(await a.live()).toHaveLength(1);
    });

    it("retires keys whose notAfter is past: the private half is erased, and they are no longer live", async () => {
      const { a, b } = await backend.open();
      await a.insert(row("key_old_00000001", 1));
      await a.insert(row("key_new_00000002", 2, T0 + 24 * HOUR));
      expect(await b.retire(T0 + 24 * HOUR, T0 + 25 * HOUR)).toBe(1);
      expect((await a.live()).map((r) => r.id)).toEqual(["key_new_00000002"]);
      expect(await a.envelopes("", 10)).toEqual([{ id: "key_new_00000002", private: Buffer.from([1, 0, 0, 0, 1, 0, 0, 2]) }]);
      expect(await b.retire(T0 + 24 * HOUR, T0 + 26 * HOUR)).toBe(0);
    });

    it("replaces envelopes by compare-and-swap (a KEK rotation's rewrap)", async () => {
      const { a, b } = await backend.open();
      const r = row("key_cas_00000001", 1);
      await a.insert(r);
      const next = Buffer.from([1, 0, 0, 0, 2, 9, 9, 9]);
      expect(await b.replaceEnvelopes([{ id: r.id, column: "private", expected: Buffer.from("stale"), next }])).toBe(0);
      expect(await b.replaceEnvelopes([{ id: r.id, column: "private", expected: r.privateEnvelope ?? Buffer.alloc(0), next }])).toBe(1);
      expect((await a.live())[0]?.privateEnvelope).toEqual(next);
    });

    it("keyrings: two processes rotating at once make one key; it opens what was sealed to it; rotation and grace on a frozen clock", async () => {
      const { a, b } = await backend.open();
      let now = T0;
      const clock = (): number => now;
      const one = new HpkeKeyring({ store: a, envelope, rotateMs: 24 * HOUR, graceMs: 10 * 60_000, now: clock });
      const two = new HpkeKeyring({ store: b, envelope, rotateMs: 24 * HOUR, graceMs: 10 * 60_000, now: clock });
      await Promise.all([one.refresh(), two.refresh()]);
      const live = await a.live();
      expect(live).toHaveLength(1);
      const current = live[0] as HpkeKeyRow;
      expect(one.published().keys).toEqual([{ id: current.id, publicKey: current.publicKey, notAfter: T0 + 24 * HOUR }]);
      expect(two.published().keys).toEqual(one.published().keys);
      expect(one.published().maxAge).toBe(24 * 3600);
      // The row holds an envelope, not the raw 32-byte key.
      expect(current.privateEnvelope?.length).toBeGreaterThan(32 + 28);

      const suite = hpkeSuite();
      const seal = async (keyId: string, publicKey: string, text: string): Promise<Buffer> => {
        const pk = await suite.kem.deserializePublicKey(Buffer.from(publicKey, "base64url"));
        const sealed = await suite.seal({ recipientPublicKey: pk }, Buffer.from(text), sealedAad("pck_test_v1_k", "nonce-0001", "POST", "/order"));
        return Buffer.concat([Buffer.from(sealed.enc), Buffer.from(sealed.ct)]);
      };
      const body = await seal(current.id, current.publicKey, "plaintext order");
      const aad = sealedAad("pck_test_v1_k", "nonce-0001", "POST", "/order");
      expect((await two.open(current.id, body, aad, now) as Buffer).toString()).toBe("plaintext order");

      // A day later: the next generation is made (once, by whichever process is first).
      now = T0 + 24 * HOUR;
      await Promise.all([one.refresh(), two.refresh()]);
      const after = await b.live();
      expect(after.map((r) => r.generation)).toEqual([2, 1]);
      expect(one.published().keys.map((k) => k.id)).toEqual([after[0]?.id, current.id]);
      // Still accepted during the grace…
      now += 10 * 60_000 - 1;
      expect(Buffer.isBuffer(await one.open(current.id, body, aad, now))).toBe(true);
      // … and refused after it, then retired (its private half erased) on the next refresh.
      now += 1;
      expect(await one.open(current.id, body, aad, now)).toMatchObject({ code: "SEALED_KEY_UNKNOWN" });
      await two.refresh();
      expect((await a.live()).map((r) => r.generation)).toEqual([2]);
      expect(await one.open("AAAAAAAAAAAAAAAA", body, aad, now)).toMatchObject({ code: "SEALED_KEY_UNKNOWN" });
    });

    it("a key made by another process is found on first use (the keyring reads the store again)", async () => {
      const { a, b } = await backend.open();
      const now = T0;
      const one = new HpkeKeyring({ store: a, envelope, now: () => now });
      const two = new HpkeKeyring({ store: b, envelope, now: () => now });
      await one.refresh();
      await two.load();
      await one.rotate();
      const newest = one.published().keys[0];
      expect(newest).toBeDefined();
      const suite = hpkeSuite();
      const pk = await suite.kem.deserializePublicKey(Buffer.from(newest?.publicKey ?? "", "base64url"));
      const aad = sealedAad("k", "n", "POST", "/");
      const sealed = await suite.seal({ recipientPublicKey: pk }, Buffer.from("x"), aad);
      const opened = await two.open(newest?.id ?? "", Buffer.concat([Buffer.from(sealed.enc), Buffer.from(sealed.ct)]), aad, now);
      expect(Buffer.isBuffer(opened) && opened.toString()).toBe("x");
    });
  });
}
