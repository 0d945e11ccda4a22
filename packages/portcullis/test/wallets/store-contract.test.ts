import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { AgentGrant } from "../../src/contract/keys.js";
import { PostgresStore } from "../../src/storage/postgres/store.js";
import { SqliteStore } from "../../src/storage/sqlite/store.js";
import type { ChangeFeed, KeyChange, KeyRow, KeyStore } from "../../src/storage/types.js";
import { keyRecord } from "../support/keys.js";
import { IN_CI, loudSkip } from "../support/redis.js";
import { SHARED_POSTGRES_URL, dropSchema, postgresReachable, uniqueSchema } from "../support/postgres.js";

/**
 * The wallet and agent primitives of the durable store (docs/wallets.md), one suite over SQLite
 * (migration 19) and PostgreSQL (migration 9): the owner key by address, the keys below a key,
 * registration all or nothing, single use of a derived id, and the revoke that cascades down.
 */

const pgUp = await postgresReachable(SHARED_POSTGRES_URL);
const runPg = pgUp || IN_CI;
if (!runPg) loudSkip("the PostgreSQL half of the wallet store contract", `no PostgreSQL answers at ${SHARED_POSTGRES_URL}`);

const T0 = 1_700_000_000_000;
type Store = KeyStore & ChangeFeed & { close(): Promise<void> };

interface Backend {
  readonly name: string;
  open(): Promise<Store>;
  end(): Promise<void>;
}

let dir: string | null = null;
const sqlite: Backend = {
  name: "sqlite",
  open: () => {
    if (dir !== null) rmSync(dir, { recursive: true, force: true });
    dir = mkdtempSync(join(tmpdir(), "pc-wallet-store-"));
    return Promise.resolve(new SqliteStore(join(dir, "portcullis.db"), { pollIntervalMs: 10 }));
  },
  end: () => {
    if (dir !== null) rmSync(dir, { recursive: true, force: true });
    return Promise.resolve();
  },
};
const schemas: string[] = [];
const postgres: Backend = {
  name: "postgres",
  open: () => {
    const schema = uniqueSchema("agents");
    schemas.push(schema);
    return PostgresStore.open({ url: SHARED_POSTGRES_URL, schema });
  },
  end: async () => {
    for (const s of schemas) await dropSchema(SHARED_POSTGRES_URL, s);
  },
};

const ADDRESS = "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826";
let n = 0;
const id = (): string => `pck_test_v1_${String(++n).padStart(28, "0")}`;
const change = (action: KeyChange["action"] = "create"): KeyChange => ({ action, actor: "test", at: T0 + 1000, detail: {} });

function owner(overrides: Partial<KeyRow> = {}): KeyRow {
  return { ...keyRecord({ id: id(), createdAt: T0, updatedAt: T0, algorithm: "ethereum", publicKey: ADDRESS, scopes: ["read", "trade"] }), secretEnvelope: null, passphraseHash: null, passphraseEnvelope: null, ...overrides };
}

function agent(ownerKey: string, parent: string | null, ancestors: string[], overrides: Partial<KeyRow> = {}): KeyRow {
  const grant: AgentGrant = {
    ownerAddress: ADDRESS,
    ownerKey,
    parent,
    agentKey: `ed25519:${"A".repeat(43)}`,
    ancestors,
    depth: ancestors.length + 1,
    terms: { scopes: ["trade"], symbols: ["*"], maxOrderNotional: "", maxOrderQuantity: "", maxOpenNotional: "", limits: [], expiresAt: 2_000_000_000 },
    digest: `0x${"ab".repeat(32)}`,
  };
  return {
    ...keyRecord({ id: id(), createdAt: T0, updatedAt: T0, algorithm: "ed25519", publicKey: "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n", scopes: ["trade"], agent: grant }),
    secretEnvelope: null,
    passphraseHash: null,
    passphraseEnvelope: null,
    ...overrides,
  };
}

for (const backend of runPg ? [sqlite, postgres] : [sqlite]) {
  describe(`wallet store contract: ${backend.name}`, () => {
    let store: Store;
    beforeAll(() => undefined);
    beforeEach(async () => {
      store = await backend.open();
      return async () => {
        await store.close();
      };
    });
    afterAll(() => backend.end());

    it("finds the owner keys of an address (ethereum keys only), and the agent grant round-trips", async () => {
      const o = owner();
      await store.insert(o, change());
      await store.insert({ ...owner({ algorithm: "ed25519", publicKey: "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n" }) }, change());
      const a = agent(o.id, null, []);
      expect(await store.insertAgents([{ row: a, change: change() }], [o.id])).toEqual({ ok: true });
      expect((await store.wallets(ADDRESS)).map((k) => k.id)).toEqual([o.id]);
      expect(await store.wallets(ADDRESS.toLowerCase())).toEqual([]);
      expect((await store.get(a.id))?.agent).toEqual(a.agent);
      expect((await store.get(o.id))?.agent).toBeNull();
      expect((await store.children(o.id)).map((k) => k.id)).toEqual([a.id]);
    });

    it("registers a chain all or nothing: an inactive link above, or an id that exists, writes nothing", async () => {
      const o = owner();
      await store.insert(o, change());
      const a = agent(o.id, null, []);
      const b = agent(o.id, a.id, [a.id]);
      expect(await store.insertAgents([{ row: a, change: change() }, { row: b, change: change() }], [o.id])).toEqual({ ok: true });
      expect((await store.children(a.id)).map((k) => k.id)).toEqual([b.id]);
      // The same id again: refused, whatever else the call carries.
      const c = agent(o.id, b.id, [a.id, b.id]);
      expect(await store.insertAgents([{ row: c, change: change() }, { row: { ...b }, change: change() }], [o.id, a.id])).toEqual({ ok: false, reason: "exists", id: b.id });
      expect(await store.get(c.id)).toBeUndefined();
      // A link above revoked: refused, nothing written.
      await store.transition(a.id, ["active"], "revoked", null, change("revoke"));
      expect(await store.insertAgents([{ row: c, change: change() }], [o.id, a.id, b.id])).toEqual({ ok: false, reason: "inactive", id: a.id });
      expect(await store.get(c.id)).toBeUndefined();
    });

    it("two registrations of one id at once: one registers, the other is told it exists", async () => {
      const o = owner();
      await store.insert(o, change());
      const a = agent(o.id, null, []);
      const results = await Promise.all([store.insertAgents([{ row: a, change: change() }], [o.id]), store.insertAgents([{ row: { ...a }, change: change() }], [o.id])]);
      expect(results.filter((r) => r.ok)).toHaveLength(1);
      expect(results.filter((r) => !r.ok)).toEqual([{ ok: false, reason: "exists", id: a.id }]);
    });

    it("revokes a key and everything below it in one transaction, each change recorded", async () => {
      const o = owner();
      await store.insert(o, change());
      const a = agent(o.id, null, []);
      const b = agent(o.id, a.id, [a.id]);
      const c = agent(o.id, b.id, [a.id, b.id], { status: "suspended" });
      const other = agent(o.id, null, []);
      await store.insertAgents([{ row: a, change: change() }, { row: b, change: change() }, { row: c, change: change() }], [o.id]);
      await store.insertAgents([{ row: other, change: change() }], [o.id]);
      const seen: string[] = [];
      const stop = store.subscribe((ids) => seen.push(...ids));
      const result = await store.revokeTree(a.id, ["active", "suspended"], "test", change("revoke"));
      stop();
      expect(result.ok).toBe(true);
      if (!result.ok) return;
      expect(result.row.status).toBe("revoked");
      expect(result.below.map((k) => k.id).sort()).toEqual([b.id, c.id].sort());
      for (const k of [a, b, c]) expect((await store.get(k.id))?.status).toBe("revoked");
      expect((await store.get(other.id))?.status).toBe("active");
      expect((await store.get(o.id))?.status).toBe("active");
      await expect.poll(() => [...new Set(seen)].sort(), { timeout: 5000, interval: 10 }).toEqual([a.id, b.id, c.id].sort());
      // Again: the key is revoked already.
      expect(await store.revokeTree(a.id, ["active", "suspended"], null, change("revoke"))).toEqual({ ok: false, reason: "conflict", current: "revoked" });
      expect(await store.revokeTree(id(), ["active", "suspended"], null, change("revoke"))).toEqual({ ok: false, reason: "not-found" });
      // The owner key: every agent under it.
      const all = await store.revokeTree(o.id, ["active", "suspended"], null, change("revoke"));
      expect(all.ok && all.below.map((k) => k.id)).toEqual([other.id]);
    });
  });
}
