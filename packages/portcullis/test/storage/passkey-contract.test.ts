/**
 * The passkey stores (storage/types.ts PasskeyStore), one contract over SQLite (migration 18, a
 * temporary file) and PostgreSQL (migration 8, a new schema for each pair of stores, every one
 * dropped after the file). Each backend is opened as two "processes" (two SQLite handles on one
 * file, two PostgresStores on one schema): credentials read back exactly and audited in their
 * transaction, one user handle per key, a challenge spent at most once (of eight processes taking
 * it at once, one gets it), expired challenges refused and swept, and the counter's
 * compare-and-set. Without a PostgreSQL the PostgreSQL half is skipped loudly, except in CI
 * (CI=true), where it fails.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import type { AuditReader } from "../../src/audit/store.js";
import { PostgresStore } from "../../src/storage/postgres/store.js";
import { SqliteStore } from "../../src/storage/sqlite/store.js";
import type { PasskeyRow, PasskeyStore } from "../../src/storage/types.js";
import { SHARED_POSTGRES_URL, dropSchema, postgresReachable, uniqueSchema } from "../support/postgres.js";
import { IN_CI, loudSkip } from "../support/redis.js";

const pgUp = await postgresReachable(SHARED_POSTGRES_URL);
if (!pgUp && !IN_CI) loudSkip("the PostgreSQL passkey store", `no PostgreSQL answers at ${SHARED_POSTGRES_URL}`);

const dir = mkdtempSync(join(tmpdir(), "portcullis-passkey-contract-"));
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
  readonly a: PasskeyStore;
  readonly b: PasskeyStore;
  readonly audit: AuditReader;
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
      return Promise.resolve({ a: one.passkeys, b: two.passkeys, audit: one.audit });
    },
  },
  {
    name: "postgres",
    postgres: true,
    open: async () => {
      const schema = uniqueSchema("pk");
      schemas.push(schema);
      const one = await PostgresStore.open({ url: SHARED_POSTGRES_URL, schema, poolSize: 4 });
      const two = await PostgresStore.open({ url: SHARED_POSTGRES_URL, schema, poolSize: 4 });
      cleanups.push(async () => {
        await one.close();
        await two.close();
      });
      return { a: one.passkeys, b: two.passkeys, audit: one.audit };
    },
  },
];

const T0 = 1_765_000_000_000;

function passkey(id: string, keyId = "pck_test_v1_k1", createdAt = T0): PasskeyRow {
  return { id, keyId, account: "ops", publicKey: "pQECAyYgASFYIA", counter: 0, transports: ["internal", "hybrid"], label: "laptop", createdAt, lastUsedAt: null };
}

async function events(audit: AuditReader, names: string[]): Promise<{ event: string; key: string | null; entry: string }[]> {
  return [...(await audit.query({ events: names, limit: 100 }))];
}

describe.each(BACKENDS)("passkey store contract: $name", (backend) => {
  const runs = !backend.postgres || pgUp || IN_CI;

  it.runIf(runs)("has its server (PostgreSQL is required in CI)", () => {
    expect(!backend.postgres || pgUp, `no PostgreSQL at ${SHARED_POSTGRES_URL}`).toBe(true);
  });

  it.runIf(runs)("stores a passkey, reads it back exactly in either process, audits it; an id stored twice is refused and the first kept", async () => {
    const { a, b, audit } = await backend.open();
    const row = passkey("cred-1");
    expect(await a.insert(row, "key:pck_test_v1_k1")).toBe(true);
    expect(await a.get(row.id)).toEqual(row);
    expect(await b.get(row.id)).toEqual(row);
    expect(await b.get("cred-none")).toBeUndefined();
    expect(await b.insert({ ...row, keyId: "pck_test_v1_k2", label: "thief" }, "key:pck_test_v1_k2")).toBe(false);
    expect(await a.get(row.id)).toEqual(row);
    const registered = await events(audit, ["passkey.register"]);
    expect(registered).toHaveLength(1);
    expect(registered[0]?.key).toBe(row.keyId);
    expect(JSON.parse(registered[0]?.entry ?? "{}")).toMatchObject({ actor: "key:pck_test_v1_k1", account: "ops", detail: { passkey: "cred-1", label: "laptop", transports: ["internal", "hybrid"] } });
  });

  it.runIf(runs)("lists a key's passkeys oldest first; removes only the key's own, audited", async () => {
    const { a, b, audit } = await backend.open();
    await a.insert(passkey("cred-2", "pck_test_v1_k1", T0 + 2), "test");
    await a.insert(passkey("cred-1", "pck_test_v1_k1", T0 + 1), "test");
    await a.insert(passkey("cred-3", "pck_test_v1_k2", T0), "test");
    expect((await b.list("pck_test_v1_k1")).map((p) => p.id)).toEqual(["cred-1", "cred-2"]);
    expect(await b.list("pck_test_v1_none")).toEqual([]);
    expect(await b.remove("cred-3", "pck_test_v1_k1", "key:pck_test_v1_k1", T0 + 5)).toBeUndefined();
    expect(await a.get("cred-3")).toBeDefined();
    expect((await b.remove("cred-1", "pck_test_v1_k1", "key:pck_test_v1_k1", T0 + 5))?.id).toBe("cred-1");
    expect(await b.remove("cred-1", "pck_test_v1_k1", "key:pck_test_v1_k1", T0 + 6)).toBeUndefined();
    expect((await a.list("pck_test_v1_k1")).map((p) => p.id)).toEqual(["cred-2"]);
    const removed = await events(audit, ["passkey.remove"]);
    expect(removed.map((e) => JSON.parse(e.entry) as { detail: { passkey: string }; at: number })).toMatchObject([{ at: T0 + 5, detail: { passkey: "cred-1" } }]);
  });

  it.runIf(runs)("keeps one user handle per key: the first stored wins, in either process", async () => {
    const { a, b } = await backend.open();
    expect(await a.userHandle("pck_test_v1_k1", "handle-a")).toBe("handle-a");
    expect(await b.userHandle("pck_test_v1_k1", "handle-b")).toBe("handle-a");
    expect(await b.userHandle("pck_test_v1_k2", "handle-c")).toBe("handle-c");
    const both = await Promise.all([a.userHandle("pck_test_v1_k3", "x1"), b.userHandle("pck_test_v1_k3", "x2")]);
    expect(both[0]).toBe(both[1]);
  });

  it.runIf(runs)("spends a challenge at most once across processes: of eight takers, one gets it", async () => {
    const { a, b } = await backend.open();
    const challenge = { challenge: "Y2hhbGxlbmdlLTE", ceremony: "registration" as const, keyId: "pck_test_v1_k1", label: "laptop", expiresAt: T0 + 300_000 };
    await a.putChallenge(challenge, T0);
    const taken = await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? a : b).takeChallenge(challenge.challenge, T0 + 1)));
    const winners = taken.filter((x) => x !== undefined);
    expect(winners).toEqual([challenge]);
    expect(await a.takeChallenge(challenge.challenge, T0 + 2)).toBeUndefined();
    expect(await b.takeChallenge("bmV2ZXItaXNzdWVk", T0 + 2)).toBeUndefined();
  });

  it.runIf(runs)("refuses an expired challenge (and it is gone); expired ones are swept as new ones come", async () => {
    const { a, b } = await backend.open();
    const old = { challenge: "b2xk", ceremony: "authentication" as const, keyId: null, label: null, expiresAt: T0 + 120_000 };
    await a.putChallenge(old, T0);
    // At the instant of its expiry it is no longer good.
    expect(await b.takeChallenge(old.challenge, T0 + 120_000)).toBeUndefined();
    await a.putChallenge({ ...old, challenge: "b2xkLTI" }, T0);
    await a.putChallenge({ ...old, challenge: "bmV3", expiresAt: T0 + 400_000 }, T0 + 200_000);
    // The sweep on that insert dropped the expired one; the fresh one is still there.
    expect(await b.takeChallenge("b2xkLTI", T0)).toBeUndefined();
    expect(await b.takeChallenge("bmV3", T0 + 200_001)).toMatchObject({ challenge: "bmV3", ceremony: "authentication", keyId: null });
  });

  it.runIf(runs)("advances the counter by compare-and-set: of two sign-ins from one counter value, one wins", async () => {
    const { a, b } = await backend.open();
    await a.insert(passkey("cred-9"), "test");
    const results = await Promise.all([a.advance("cred-9", 0, 5, T0 + 10), b.advance("cred-9", 0, 5, T0 + 11)]);
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(await b.get("cred-9")).toMatchObject({ counter: 5 });
    expect(await a.advance("cred-9", 0, 6, T0 + 12)).toBe(false);
    expect(await a.advance("cred-9", 5, 6, T0 + 13)).toBe(true);
    expect(await b.get("cred-9")).toMatchObject({ counter: 6, lastUsedAt: T0 + 13 });
    expect(await a.advance("cred-none", 0, 1, T0)).toBe(false);
  });
});
