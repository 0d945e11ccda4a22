import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { CodedError } from "../../src/errors/catalogue.js";
import { KEK_FLOOR_META } from "../../src/storage/kek-floor.js";
import { LOCK_KEY_FEED, schemaLockKey } from "../../src/storage/postgres/migrations.js";
import { PostgresStore, type KeyChangeHook, type RecordedKeyChange } from "../../src/storage/postgres/store.js";
import { SqliteStore } from "../../src/storage/sqlite/store.js";
import type { ChangeFeed, EndedSessionStore, EnvelopeStore, KeyChange, KeyListFilter, KeyRow, KeyStore, MetaStore } from "../../src/storage/types.js";
import type { ReservationStore } from "../../src/replay/reservations.js";
import { keyRecord } from "../support/keys.js";
import { IN_CI, loudSkip } from "../support/redis.js";
import { SHARED_POSTGRES_URL, adminQuery, dropSchema, postgresReachable, uniqueSchema } from "../support/postgres.js";

/**
 * One contract, two durable stores: SQLite (a temp file per test) and PostgreSQL (the shared
 * server, one schema for this file, emptied before each test and dropped at the end). "Two
 * processes" are two store instances on the same data: SQLite's finds the other's commits by
 * polling (every 10 ms here), PostgreSQL's by LISTEN/NOTIFY. Times are fixed values; nothing
 * sleeps — a delivery across instances is awaited as an event. Without a PostgreSQL the
 * PostgreSQL half is skipped loudly, except in CI (CI=true), where it fails.
 */

const pgUp = await postgresReachable(SHARED_POSTGRES_URL);
const runPg = pgUp || IN_CI;
if (!runPg) loudSkip("the PostgreSQL half of the durable-store contract suite", `no PostgreSQL answers at ${SHARED_POSTGRES_URL}`);

const T0 = 1_700_000_000_000;

type Store = KeyStore & ChangeFeed & MetaStore & EnvelopeStore & ReservationStore & EndedSessionStore & { readonly kind: string; close(): Promise<void> };

interface Backend {
  readonly name: "sqlite" | "postgres";
  /** Before the suite. */
  start(): Promise<void>;
  /** Before each test: empty data. */
  reset(): Promise<void>;
  /** A new instance ("process") on the current data. */
  open(): Promise<Store>;
  /** After the suite. */
  end(): Promise<void>;
}

let sqliteDir: string | null = null;
let sqlitePath = "";
const sqliteBackend: Backend = {
  name: "sqlite",
  start: () => Promise.resolve(),
  reset: () => {
    if (sqliteDir !== null) rmSync(sqliteDir, { recursive: true, force: true });
    sqliteDir = mkdtempSync(join(tmpdir(), "pc-durable-"));
    sqlitePath = join(sqliteDir, "portcullis.db");
    return Promise.resolve();
  },
  open: () => Promise.resolve(new SqliteStore(sqlitePath, { pollIntervalMs: 10 })),
  end: () => {
    if (sqliteDir !== null) rmSync(sqliteDir, { recursive: true, force: true });
    return Promise.resolve();
  },
};

const SCHEMA = uniqueSchema("durable");
const postgresBackend: Backend = {
  name: "postgres",
  async start() {
    // Creates the schema and its tables once.
    await (await PostgresStore.open({ url: SHARED_POSTGRES_URL, schema: SCHEMA })).close();
  },
  async reset() {
    await adminQuery(SHARED_POSTGRES_URL, `TRUNCATE ${SCHEMA}.keys, ${SCHEMA}.key_changes, ${SCHEMA}.meta, ${SCHEMA}.sequence_reservations, ${SCHEMA}.ended_sessions`);
  },
  open: () => PostgresStore.open({ url: SHARED_POSTGRES_URL, schema: SCHEMA, reconnectDelayMs: 20, poolSize: 4 }),
  end: () => dropSchema(SHARED_POSTGRES_URL, SCHEMA),
};

const backends: Backend[] = runPg ? [sqliteBackend, postgresBackend] : [sqliteBackend];

/** An envelope's header as custody writes it (format 0x01, KEK version u32be) and 16 bytes of body. */
function envelope(kekVersion: number, fill = 0xab): Buffer {
  const b = Buffer.alloc(23, fill);
  b.writeUInt8(1, 0);
  b.writeUInt32BE(kekVersion, 1);
  return b;
}

let idCounter = 0;
/** A fresh key id (ids in one test differ; `tail` sets the sort order when it matters). */
function keyId(tail?: string): string {
  idCounter++;
  return `pck_test_v1_${tail ?? String(idCounter).padStart(28, "0")}`;
}

function hmacRow(overrides: Partial<KeyRow> = {}): KeyRow {
  return {
    ...keyRecord({ id: keyId(), createdAt: T0, updatedAt: T0 }),
    secretEnvelope: envelope(1),
    passphraseHash: null,
    passphraseEnvelope: null,
    ...overrides,
  };
}

function change(action: KeyChange["action"], at = T0 + 1_000, detail: Record<string, unknown> = {}): KeyChange {
  return { action, actor: "cli:test", at, detail };
}

/** What a promise ends with: its value, or the error it rejected (or threw synchronously) with. */
async function outcome<T>(run: () => Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  try {
    return { ok: true, value: await run() };
  } catch (error) {
    return { ok: false, error };
  }
}

async function failure(run: () => Promise<unknown>): Promise<unknown> {
  const result = await outcome(run);
  if (result.ok) throw new Error("expected a failure");
  return result.error;
}

function codeOf(err: unknown): string | undefined {
  if (!(err instanceof CodedError)) return undefined;
  const code: unknown = (err as { code?: unknown }).code;
  return typeof code === "string" ? code : undefined;
}

/** Every delivery a subscriber got, in order. */
function record(store: ChangeFeed): { calls: { ids: string[]; local: boolean }[]; stop: () => void } {
  const calls: { ids: string[]; local: boolean }[] = [];
  const stop = store.subscribe((ids, local) => {
    calls.push({ ids: [...ids], local });
  });
  return { calls, stop };
}

const WAIT = { timeout: 5_000, interval: 5 };

describe.each(backends)("durable store contract: $name", (backend) => {
  const open: Store[] = [];
  async function store(): Promise<Store> {
    const s = await backend.open();
    open.push(s);
    return s;
  }

  beforeAll(async () => {
    await backend.start();
  });
  beforeEach(async () => {
    await backend.reset();
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((s) => s.close()));
  });
  afterAll(async () => {
    await backend.end();
  });

  describe("keys", () => {
    it("stores a key row exactly, every field, and lists with filters in byte order", async () => {
      const s = await store();
      const full = hmacRow({
        id: keyId("B".repeat(28)),
        subAccount: "sub-7",
        label: "market maker ✓",
        scopes: ["read", "trade", "withdraw"],
        ipAllowlist: ["203.0.113.0/24", "2001:db8::/32"],
        dialects: ["native", "binance"],
        expiresAt: T0 + 86_400_000,
        windowMs: 10_000,
        lastUsedAt: T0 + 5,
        limits: { "key-weight-1m": 12_000 },
        sessionEpoch: 3,
        sessionTtlMs: 600_000,
        sessionBindAddress: true,
        maxAgeMs: 7_776_000_000,
        passphraseHash: "legacy-hash",
        passphraseEnvelope: envelope(1, 0xcd),
        operator: true,
        owner: "alice",
        guardrails: { symbols: ["BTCUSDT"], maxQuantity: "2", maxNotional: "10000", priceBandPct: "5", withdrawAssets: ["USDT"], transferAssets: null, maxOpenNotional: "50000" },
        risk: { state: "throttled", since: T0, by: "action-1" } as unknown as KeyRow["risk"],
        certThumbprint: "a".repeat(43),
      });
      const asym = { ...hmacRow({ id: keyId("a".repeat(28)), algorithm: "ed25519", publicKey: "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n", secretEnvelope: null, account: "acct-2", status: "suspended" }) };
      const third = hmacRow({ id: keyId("C".repeat(28)), account: "acct-1" });
      await s.insert(full, change("create", T0));
      await s.insert(asym, change("create", T0));
      await s.insert(third, change("create", T0));

      expect(await s.get(full.id)).toEqual(full);
      expect(await s.get(asym.id)).toEqual(asym);
      expect(await s.get(keyId("Z".repeat(28)))).toBeUndefined();

      // Byte order: upper case before lower case, whatever the database's locale.
      expect((await s.list({ limit: 10 })).map((r) => r.id)).toEqual([full.id, third.id, asym.id]);
      expect((await s.list({ limit: 10, after: full.id })).map((r) => r.id)).toEqual([third.id, asym.id]);
      expect((await s.list({ limit: 1 })).map((r) => r.id)).toEqual([full.id]);
      expect((await s.list({ limit: 10, account: "acct-1" })).map((r) => r.id)).toEqual([full.id, third.id]);
      expect((await s.list({ limit: 10, operator: true })).map((r) => r.id)).toEqual([full.id]);
      expect((await s.list({ limit: 10, operator: false })).map((r) => r.id)).toEqual([third.id, asym.id]);
      expect((await s.list({ limit: 10, status: "suspended" })).map((r) => r.id)).toEqual([asym.id]);
    });

    describe("search (the console's search box: an id or account prefix, or a part of the label, any ASCII case)", () => {
      /** Inserts rows (id tails sort in the given order) and answers a search's ids. */
      async function seeded(rows: Partial<KeyRow>[]): Promise<{ s: Store; ids: string[]; find: (search: string, more?: Omit<KeyListFilter, "search" | "limit"> & { limit?: number }) => Promise<string[]> }> {
        const s = await store();
        const ids: string[] = [];
        for (const [i, overrides] of rows.entries()) {
          const row = hmacRow({ id: keyId(`${String(i).padStart(2, "0")}${"x".repeat(26)}`), ...overrides });
          await s.insert(row, change("create", T0));
          ids.push(row.id);
        }
        const find = async (search: string, more: Omit<KeyListFilter, "search" | "limit"> & { limit?: number } = {}): Promise<string[]> =>
          (await s.list({ limit: 100, ...more, search })).map((r) => r.id);
        return { s, ids, find };
      }

      it("matches an id prefix, an account prefix or a part of the label, whatever the ASCII case, ordered by id", async () => {
        const { ids, find } = await seeded([
          { id: keyId("Ab3dEf" + "0".repeat(22)), account: "Desk-North", label: "Market Maker" },
          { id: keyId("ab3xyz" + "0".repeat(22)), account: "desk-south", label: "withdrawals" },
          { id: keyId("Q".repeat(28)), account: "treasury", label: "cold MAKER wallet" },
          { id: keyId("R".repeat(28)), account: "north-desk", label: "" },
        ]);
        const [upperId, lowerId, treasury, northDesk] = ids as [string, string, string, string];
        // An id prefix, in either case (byte order: upper case first).
        expect(await find("pck_test_v1_AB3")).toEqual([upperId, lowerId]);
        expect(await find("PCK_TEST_V1_ab3d")).toEqual([upperId]);
        expect(await find(upperId)).toEqual([upperId]);
        // Only a prefix of the id: a part from its middle matches nothing.
        expect(await find("3dEf")).toEqual([]);
        // An account prefix, not a part of the account.
        expect(await find("DESK")).toEqual([upperId, lowerId]);
        expect(await find("desk-n")).toEqual([upperId]);
        expect(await find("north")).toEqual([northDesk]);
        // A part of the label, anywhere in it.
        expect(await find("maker")).toEqual([upperId, treasury]);
        expect(await find("DRAW")).toEqual([lowerId]);
        expect(await find("no such key")).toEqual([]);
        // The empty text matches every key.
        expect(await find("")).toEqual([upperId, treasury, northDesk, lowerId]);
      });

      it("combines with the other filters (account, status, operator) and pages by id with after and limit", async () => {
        const { ids, find } = await seeded([
          { account: "acct-1", label: "bot 1" },
          { account: "acct-2", label: "bot 2" },
          { account: "acct-1", label: "bot 3", status: "suspended" },
          { account: "acct-1", label: "bot 4", operator: true },
          { account: "acct-1", label: "bot 5" },
          { account: "acct-1", label: "human" },
        ]);
        const [one, two, three, four, five] = ids as [string, string, string, string, string];
        expect(await find("bot")).toEqual([one, two, three, four, five]);
        expect(await find("bot", { account: "acct-1" })).toEqual([one, three, four, five]);
        expect(await find("bot", { status: "suspended" })).toEqual([three]);
        expect(await find("bot", { operator: true })).toEqual([four]);
        expect(await find("bot", { operator: false, status: "active", account: "acct-1" })).toEqual([one, five]);
        // Pages: limit, then after the last id of the page.
        expect(await find("BOT", { limit: 2 })).toEqual([one, two]);
        expect(await find("BOT", { limit: 2, after: two })).toEqual([three, four]);
        expect(await find("BOT", { limit: 2, after: four })).toEqual([five]);
        expect(await find("BOT", { limit: 2, after: five })).toEqual([]);
      });

      it("takes % literally: it is not a wildcard", async () => {
        const { ids, find } = await seeded([{ label: "fee 50% off" }, { label: "fee 50 off" }, { label: "fee 5 0ff" }]);
        expect(await find("50%")).toEqual([ids[0]]);
        expect(await find("%")).toEqual([ids[0]]);
        expect(await find("5%0")).toEqual([]);
      });

      it("takes _ literally: it is not a one-character wildcard", async () => {
        const { ids, find } = await seeded([{ account: "desk_1", label: "a_b" }, { account: "deskX1", label: "aXb" }]);
        expect(await find("desk_")).toEqual([ids[0]]);
        expect(await find("a_b")).toEqual([ids[0]]);
        // Every id holds "_" (pck_test_v1_…), but as a prefix only "pck_" matches, not "pck" + any character.
        expect(await find("pck_")).toEqual(ids);
        expect(await find("pckXtest")).toEqual([]);
      });

      it("takes \\ literally: it escapes nothing", async () => {
        const { ids, find } = await seeded([{ label: "C:\\keys\\50%" }, { label: "C:keys50%" }, { label: "back\\slash" }]);
        expect(await find("\\")).toEqual([ids[0], ids[2]]);
        expect(await find(":\\k")).toEqual([ids[0]]);
        expect(await find("\\50%")).toEqual([ids[0]]);
        // A trailing backslash does not escape the store's own %.
        expect(await find("keys\\")).toEqual([ids[0]]);
        expect(await find("s50%")).toEqual([ids[1]]);
      });

      it("folds ASCII letters only, the same on both stores; a NUL matches nothing", async () => {
        const { ids, find } = await seeded([{ label: "Zürich ÉTÉ desk" }, { label: "zurich ete desk" }]);
        expect(await find("ZÜRICH")).toEqual([]);
        expect(await find("zürich")).toEqual([ids[0]]);
        expect(await find("ÉTÉ")).toEqual([ids[0]]);
        expect(await find("été")).toEqual([]);
        expect(await find("ETE")).toEqual([ids[1]]);
        expect(await find("desk\u0000")).toEqual([]);
        expect(await find("\u0000")).toEqual([]);
      });
    });

    it("refuses a second key with the same id, and a row that breaks the HMAC/public-key rule; nothing is written", async () => {
      const s = await store();
      const feed = record(s);
      const row = hmacRow();
      await s.insert(row, change("create", T0));
      expect(feed.calls).toEqual([{ ids: [row.id], local: true }]);

      const dup = await failure(() => s.insert({ ...row, label: "other" }, change("create", T0)));
      expect(dup).toBeInstanceOf(Error);
      expect((await s.get(row.id))?.label).toBe("");

      const broken = hmacRow({ secretEnvelope: null });
      expect(await failure(() => s.insert(broken, change("create", T0)))).toBeInstanceOf(Error);
      expect(await s.get(broken.id)).toBeUndefined();

      // The failed inserts wrote no feed row: the next change delivers only its own key.
      const next = hmacRow();
      await s.insert(next, change("create", T0));
      expect(feed.calls).toEqual([
        { ids: [row.id], local: true },
        { ids: [next.id], local: true },
      ]);
    });

    it("moves a key's status only from the given states, ends its sessions, and says why not", async () => {
      const s = await store();
      const row = hmacRow();
      await s.insert(row, change("create", T0));

      const suspended = await s.transition(row.id, ["active"], "suspended", "investigating", change("suspend", T0 + 10));
      expect(suspended.ok).toBe(true);
      if (!suspended.ok) return;
      expect(suspended.row).toMatchObject({ status: "suspended", statusReason: "investigating", updatedAt: T0 + 10, revision: 2, sessionEpoch: 1 });
      expect(await s.get(row.id)).toEqual(suspended.row);

      expect(await s.transition(row.id, ["active"], "revoked", null, change("revoke"))).toEqual({ ok: false, reason: "conflict", current: "suspended" });
      expect(await s.transition(keyId(), ["active"], "revoked", null, change("revoke"))).toEqual({ ok: false, reason: "not-found" });
      expect((await s.get(row.id))?.revision).toBe(2);

      const revoked = await s.transition(row.id, ["active", "suspended"], "revoked", "compromised", change("revoke", T0 + 20));
      expect(revoked).toMatchObject({ ok: true, row: { status: "revoked", statusReason: "compromised", revision: 3, sessionEpoch: 2 } });
    });

    it("of two instances racing to revoke a key, exactly one wins", async () => {
      const a = await store();
      const b = await store();
      const row = hmacRow();
      await a.insert(row, change("create", T0));
      const results = await Promise.all([
        a.transition(row.id, ["active"], "revoked", "a", change("revoke", T0 + 1)),
        b.transition(row.id, ["active"], "revoked", "b", change("revoke", T0 + 2)),
      ]);
      expect(results.filter((r) => r.ok)).toHaveLength(1);
      expect(results.filter((r) => !r.ok)).toEqual([{ ok: false, reason: "conflict", current: "revoked" }]);
      const stored = await b.get(row.id);
      expect(stored?.revision).toBe(2);
      expect(stored?.sessionEpoch).toBe(1);
    });

    it("patches only the given fields, from the given states", async () => {
      const s = await store();
      const row = hmacRow({ ipAllowlist: ["10.0.0.0/8"] });
      await s.insert(row, change("create", T0));

      const updated = await s.update(row.id, ["active"], { label: "renamed", scopes: ["read"], limits: { x: 1 }, expiresAt: T0 + 99, sessionBindAddress: true, owner: "bob", endSessions: true }, change("update", T0 + 50));
      expect(updated.ok).toBe(true);
      if (!updated.ok) return;
      expect(updated.row).toEqual({
        ...row,
        label: "renamed",
        scopes: ["read"],
        limits: { x: 1 },
        expiresAt: T0 + 99,
        sessionBindAddress: true,
        owner: "bob",
        updatedAt: T0 + 50,
        revision: 2,
        sessionEpoch: 1,
      });

      // Clearing to null, and no session change without endSessions.
      const cleared = await s.update(row.id, ["active"], { expiresAt: null, owner: null }, change("update", T0 + 60));
      expect(cleared).toMatchObject({ ok: true, row: { expiresAt: null, owner: null, sessionEpoch: 1, revision: 3, ipAllowlist: ["10.0.0.0/8"] } });

      expect(await s.update(row.id, ["suspended"], { label: "no" }, change("update"))).toEqual({ ok: false, reason: "conflict", current: "active" });
      expect(await s.update(keyId(), ["active"], { label: "no" }, change("update"))).toEqual({ ok: false, reason: "not-found" });
      expect((await s.get(row.id))?.label).toBe("renamed");
    });

    it("rotates once, all or nothing", async () => {
      const s = await store();
      const old = hmacRow();
      await s.insert(old, change("create", T0));
      const successor = hmacRow({ rotatedFrom: old.id, createdAt: T0 + 100, updatedAt: T0 + 100 });

      const rotated = await s.rotate(old.id, successor, T0 + 3_600_000, change("rotate", T0 + 100), change("create", T0 + 100));
      expect(rotated.ok).toBe(true);
      if (!rotated.ok) return;
      expect(rotated.predecessor).toMatchObject({ id: old.id, rotatedTo: successor.id, expiresAt: T0 + 3_600_000, updatedAt: T0 + 100, revision: 2 });
      expect(await s.get(successor.id)).toEqual(successor);

      const again = await s.rotate(old.id, hmacRow({ rotatedFrom: old.id }), T0, change("rotate"), change("create"));
      expect(again).toEqual({ ok: false, reason: "conflict", current: "active", rotatedTo: successor.id });
      expect(await s.rotate(keyId(), hmacRow(), T0, change("rotate"), change("create"))).toEqual({ ok: false, reason: "not-found" });

      // A successor whose id is taken: the predecessor is not linked either.
      const other = hmacRow();
      await s.insert(other, change("create", T0));
      const clash = await failure(() => s.rotate(other.id, { ...successor, rotatedFrom: other.id }, T0 + 1, change("rotate"), change("create")));
      expect(clash).toBeInstanceOf(Error);
      expect(await s.get(other.id)).toEqual(other);
    });

    it("only ever raises last-use times", async () => {
      const s = await store();
      const a = hmacRow();
      const b = hmacRow();
      await s.insert(a, change("create", T0));
      await s.insert(b, change("create", T0));
      await s.touch(new Map([[a.id, T0 + 10], [b.id, T0 + 20], [keyId(), T0]]));
      await s.touch(new Map([[a.id, T0 + 5], [b.id, T0 + 30]]));
      await s.touch(new Map());
      expect((await s.get(a.id))?.lastUsedAt).toBe(T0 + 10);
      expect((await s.get(b.id))?.lastUsedAt).toBe(T0 + 30);
      expect((await s.get(a.id))?.revision).toBe(1);
    });
  });

  describe("change feed", () => {
    it("delivers a change to its own instance before the write resolves, and to another instance", async () => {
      const a = await store();
      const b = await store();
      const feedA = record(a);
      const feedB = record(b);
      if (backend.name === "postgres") await listening(2);

      const row = hmacRow();
      await a.insert(row, change("create", T0));
      expect(feedA.calls).toEqual([{ ids: [row.id], local: true }]);
      await vi.waitFor(() => {
        expect(feedB.calls).toEqual([{ ids: [row.id], local: false }]);
      }, WAIT);

      // And back: a revocation through b reaches a.
      await b.transition(row.id, ["active"], "revoked", null, change("revoke"));
      expect(feedB.calls.at(-1)).toEqual({ ids: [row.id], local: true });
      await vi.waitFor(() => {
        expect(feedA.calls).toEqual([
          { ids: [row.id], local: true },
          { ids: [row.id], local: false },
        ]);
      }, WAIT);

      // A conditional change that matched nothing is no change: nothing is delivered.
      await b.transition(row.id, ["active"], "suspended", null, change("suspend"));
      const marker = hmacRow();
      await b.insert(marker, change("create"));
      await vi.waitFor(() => {
        expect(feedA.calls.at(-1)).toEqual({ ids: [marker.id], local: false });
      }, WAIT);
      expect(feedA.calls).toHaveLength(3);

      // A rotation is two changes (predecessor, successor) delivered together; an unsubscribed listener hears nothing.
      feedB.stop();
      const successor = hmacRow({ rotatedFrom: marker.id });
      await a.rotate(marker.id, successor, T0, change("rotate"), change("create"));
      expect(feedA.calls.at(-1)).toEqual({ ids: [marker.id, successor.id], local: true });
      expect(feedB.calls).toHaveLength(3);
    });

    it("a listener that throws does not stop the others", async () => {
      const s = await store();
      s.subscribe(() => {
        throw new Error("listener fault");
      });
      const feed = record(s);
      const row = hmacRow();
      await s.insert(row, change("create", T0));
      expect(feed.calls).toEqual([{ ids: [row.id], local: true }]);
    });

    it("custody's envelope rewrites are not key changes: nothing is delivered", async () => {
      const s = await store();
      const row = hmacRow({ secretEnvelope: envelope(1) });
      await s.insert(row, change("create", T0));
      const feed = record(s);
      expect(await s.replaceKeyEnvelopes([{ id: row.id, column: "secret", expected: envelope(1), next: envelope(2) }])).toBe(1);
      const marker = hmacRow();
      await s.insert(marker, change("create"));
      expect(feed.calls).toEqual([{ ids: [marker.id], local: true }]);
    });
  });

  describe("envelopes and the KEK floor", () => {
    it("replaces envelopes by compare-and-swap, and lists them in pages", async () => {
      const s = await store();
      const a = hmacRow({ id: keyId("A".repeat(28)), secretEnvelope: envelope(1), passphraseEnvelope: envelope(1, 0x11) });
      const b = hmacRow({ id: keyId("B".repeat(28)), secretEnvelope: envelope(1, 0x22) });
      const c = { ...hmacRow({ id: keyId("C".repeat(28)), algorithm: "ed25519", publicKey: "pem", secretEnvelope: null }) };
      for (const r of [a, b, c]) await s.insert(r, change("create", T0));

      expect(await s.keyEnvelopes("", 10)).toEqual([
        { id: a.id, secretEnvelope: a.secretEnvelope, passphraseEnvelope: a.passphraseEnvelope, legacyPassphraseHash: null },
        { id: b.id, secretEnvelope: b.secretEnvelope, passphraseEnvelope: null, legacyPassphraseHash: null },
      ]);
      expect((await s.keyEnvelopes(a.id, 10)).map((e) => e.id)).toEqual([b.id]);
      expect((await s.keyEnvelopes("", 1)).map((e) => e.id)).toEqual([a.id]);

      const n = await s.replaceKeyEnvelopes([
        { id: a.id, column: "secret", expected: envelope(1), next: envelope(2) },
        { id: a.id, column: "passphrase", expected: envelope(1, 0x11), next: envelope(2, 0x11) },
        { id: b.id, column: "secret", expected: envelope(1, 0x99), next: envelope(2) },
      ]);
      expect(n).toBe(2);
      expect((await s.get(a.id))?.secretEnvelope).toEqual(envelope(2));
      expect((await s.get(a.id))?.passphraseEnvelope).toEqual(envelope(2, 0x11));
      expect((await s.get(b.id))?.secretEnvelope).toEqual(envelope(1, 0x22));
      expect(await s.replaceKeyEnvelopes([])).toBe(0);
      expect(await s.heldEnvelopes("", 10)).toEqual([]);
    });

    it("seals a legacy passphrase hash only if it is still the one read", async () => {
      const s = await store();
      const row = hmacRow({ passphraseHash: "scrypt$old" });
      await s.insert(row, change("create", T0));
      expect((await s.keyEnvelopes("", 10))[0]?.legacyPassphraseHash).toBe("scrypt$old");
      expect(await s.sealLegacyPassphrase(row.id, "scrypt$other", envelope(1))).toBe(false);
      expect(await s.sealLegacyPassphrase(row.id, "scrypt$old", envelope(1, 0x33))).toBe(true);
      expect(await s.get(row.id)).toMatchObject({ passphraseHash: null, passphraseEnvelope: envelope(1, 0x33) });
      expect(await s.sealLegacyPassphrase(row.id, "scrypt$old", envelope(1))).toBe(false);
    });

    it("raises the floor only when nothing is below it, never lowers it, and refuses envelopes below it", async () => {
      const s = await store();
      const other = await store();
      expect(await s.kekFloor()).toBe(0);
      const row = hmacRow({ secretEnvelope: envelope(1) });
      await s.insert(row, change("create", T0));
      await s.setMeta("secret:webhook", envelope(1).toString("base64"));

      expect(await s.raiseKekFloor(2)).toEqual({ raised: false, floor: 0, below: 2 });
      expect(await s.replaceKeyEnvelopes([{ id: row.id, column: "secret", expected: envelope(1), next: envelope(2) }])).toBe(1);
      expect(await s.replaceMeta("secret:webhook", envelope(1).toString("base64"), envelope(2).toString("base64"))).toBe(true);
      expect(await s.raiseKekFloor(2)).toEqual({ raised: true, floor: 2, below: 0 });
      expect(await other.kekFloor()).toBe(2);
      expect(await s.raiseKekFloor(1)).toEqual({ raised: true, floor: 2, below: 0 });
      expect(await s.getMeta(KEK_FLOOR_META)).toBe("2");

      // Every envelope write checks the floor, in any instance; a refused write writes nothing.
      const feed = record(other);
      // What \`s\` wrote above reaches \`other\` first (a subscription catches up from its store's
      // opening); only then can the feed show that the refused writes add nothing.
      await vi.waitFor(() => {
        expect(feed.calls.flatMap((c) => c.ids)).toContain(row.id);
      }, WAIT);
      feed.calls.length = 0;
      const low = hmacRow({ secretEnvelope: envelope(1) });
      expect(codeOf(await failure(() => other.insert(low, change("create", T0))))).toBe("CUSTODY_KEK_RETIRED");
      expect(await s.get(low.id)).toBeUndefined();
      const successor = hmacRow({ rotatedFrom: row.id, secretEnvelope: envelope(1) });
      expect(codeOf(await failure(() => other.rotate(row.id, successor, T0, change("rotate"), change("create"))))).toBe("CUSTODY_KEK_RETIRED");
      expect((await s.get(row.id))?.rotatedTo).toBeNull();
      expect(codeOf(await failure(() => other.replaceKeyEnvelopes([{ id: row.id, column: "secret", expected: envelope(2), next: envelope(1) }])))).toBe("CUSTODY_KEK_RETIRED");
      expect((await s.get(row.id))?.secretEnvelope).toEqual(envelope(2));
      expect(codeOf(await failure(() => other.setMeta("secret:new", envelope(1).toString("base64"))))).toBe("CUSTODY_KEK_RETIRED");
      expect(codeOf(await failure(() => other.initMeta("secret:new", envelope(1).toString("base64"))))).toBe("CUSTODY_KEK_RETIRED");
      expect(await s.getMeta("secret:new")).toBeUndefined();
      // An entry already there is the answer, whatever the floor: nothing is written.
      expect(await other.initMeta("secret:webhook", envelope(1).toString("base64"))).toBe(envelope(2).toString("base64"));
      // At or above the floor, and entries that are not envelopes, are written.
      const high = hmacRow({ secretEnvelope: envelope(3) });
      await other.insert(high, change("create", T0));
      await other.setMeta("environment", "test");
      // The feed is delivered in order: a row a refused write had left would have come before this.
      await vi.waitFor(() => {
        expect(feed.calls.flatMap((c) => c.ids)).toContain(high.id);
      }, WAIT);
      expect(feed.calls.flatMap((c) => c.ids)).toEqual([high.id]);

      for (const bad of [0, -1, 1.5, Number.NaN, 2 ** 32]) {
        expect(await failure(() => s.raiseKekFloor(bad))).toBeInstanceOf(RangeError);
      }
      expect(await s.kekFloor()).toBe(2);
    });
  });

  describe("meta", () => {
    it("gets, sets, initialises once, compares and swaps, and lists by prefix in byte order", async () => {
      const s = await store();
      const other = await store();
      expect(await s.getMeta("environment")).toBeUndefined();
      expect(await s.initMeta("environment", "test")).toBe("test");
      expect(await other.initMeta("environment", "live")).toBe("test");
      expect(await other.getMeta("environment")).toBe("test");
      await other.setMeta("environment", "live");
      expect(await s.getMeta("environment")).toBe("live");

      await s.setMeta("signing:b", "2");
      await s.setMeta("signing:B", "1");
      await s.setMeta("signing:a", "3");
      await s.setMeta("signinG:x", "no");
      expect(await s.metaEntries("signing:")).toEqual([
        { key: "signing:B", value: "1" },
        { key: "signing:a", value: "3" },
        { key: "signing:b", value: "2" },
      ]);
      // A prefix is a prefix, not a pattern.
      await s.setMeta("a_b", "1");
      await s.setMeta("axb", "2");
      expect(await s.metaEntries("a_")).toEqual([{ key: "a_b", value: "1" }]);
      expect(await s.metaEntries("a%")).toEqual([]);

      expect(await s.replaceMeta("signing:a", "wrong", "4")).toBe(false);
      expect(await s.replaceMeta("signing:a", "3", "4")).toBe(true);
      expect(await s.replaceMeta("missing", "3", "4")).toBe(false);
      expect(await other.getMeta("signing:a")).toBe("4");
      expect(await other.getMeta("missing")).toBeUndefined();
    });

    it("of many instances initialising one entry at once, one value wins and every one answers it", async () => {
      const stores = [await store(), await store(), await store()];
      const answers = await Promise.all(stores.flatMap((s, i) => [s.initMeta("install-id", `v${i}a`), s.initMeta("install-id", `v${i}b`)]));
      expect(new Set(answers).size).toBe(1);
      expect(await stores[0]?.getMeta("install-id")).toBe(answers[0]);
    });
  });

  describe("increasing-nonce reservations", () => {
    it("only ever raises a reservation, beyond 64 bits, across instances", async () => {
      const a = await store();
      const b = await store();
      await a.reserve("k1", 1_000n);
      await b.reserve("k1", 999n);
      await b.reserve("k1", 1_000n);
      await a.reserve("k2", 0n);
      const huge = 2n ** 80n + 7n;
      await b.reserve("k3", huge);
      await a.reserve("k3", 2n ** 64n);
      expect(await a.reservations()).toEqual(
        new Map([
          ["k1", 1_000n],
          ["k2", 0n],
          ["k3", huge],
        ]),
      );
      // "9" is below "10" (numbers, not strings).
      await a.reserve("k4", 10n);
      await b.reserve("k4", 9n);
      expect((await b.reservations()).get("k4")).toBe(10n);
    });

    it("concurrent raises from two instances end at the highest", async () => {
      const a = await store();
      const b = await store();
      const values = [17n, 3n, 250n, 99n, 251n, 1n, 42n, 250n, 8n, 12n];
      await Promise.all(values.map((v, i) => (i % 2 === 0 ? a : b).reserve("k", v)));
      expect((await a.reservations()).get("k")).toBe(251n);
    });

    it("refuses a negative reservation and writes nothing", async () => {
      const s = await store();
      expect(await failure(() => s.reserve("k", -1n))).toBeInstanceOf(RangeError);
      await s.reserve("k", 5n);
      expect(await failure(() => s.reserve("k", -10n))).toBeInstanceOf(RangeError);
      expect(await s.reservations()).toEqual(new Map([["k", 5n]]));
    });
  });

  describe("ended sessions", () => {
    it("keeps a logout until it would have expired, never shortens it, and forgets expired ones", async () => {
      const a = await store();
      const b = await store();
      await a.endSession("s1", T0 + 60_000, T0);
      await b.endSession("s1", T0 + 30_000, T0 + 1);
      await b.endSession("s2", T0 + 10_000, T0 + 2);
      // Already over: nothing to keep.
      await a.endSession("s3", T0, T0 + 3);
      expect(await b.endedSessions(T0 + 5)).toEqual(
        new Map([
          ["s1", T0 + 60_000],
          ["s2", T0 + 10_000],
        ]),
      );
      expect(await a.endedSessions(T0 + 10_000)).toEqual(new Map([["s1", T0 + 60_000]]));
      // The next logout forgets what expired meanwhile (s2), whatever `now` a reader asks with.
      await a.endSession("s4", T0 + 90_000, T0 + 20_000);
      expect(await b.endedSessions(0)).toEqual(
        new Map([
          ["s1", T0 + 60_000],
          ["s4", T0 + 90_000],
        ]),
      );
    });

    it("refuses times that are not integer ms", async () => {
      const s = await store();
      for (const [until, now] of [
        [Number.NaN, T0],
        [T0 + 1.5, T0],
        [T0 + 10, Number.POSITIVE_INFINITY],
        [2 ** 60, T0],
      ] as const) {
        expect(await failure(() => s.endSession("s", until, now))).toBeInstanceOf(RangeError);
      }
      expect(await s.endedSessions(0)).toEqual(new Map());
    });
  });
});

/** Waits until `n` change-feed connections of this file's schema are LISTENing. */
async function listening(n: number): Promise<void> {
  await vi.waitFor(async () => {
    const rows = await adminQuery<{ n: string }>(
      SHARED_POSTGRES_URL,
      "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN %'",
      [`portcullis-feed:${SCHEMA}`],
    );
    expect(Number(rows[0]?.n)).toBe(n);
  }, WAIT);
}

describe.runIf(runPg)("PostgreSQL store: migrations, the feed's connection, the key-change hook", () => {
  const schemas: string[] = [];
  const stores: PostgresStore[] = [];
  function schema(tag: string): string {
    const s = uniqueSchema(tag);
    schemas.push(s);
    return s;
  }
  async function open(options: { schema: string; keyChangeHook?: KeyChangeHook; reconnectDelayMs?: number; lockTimeoutMs?: number }): Promise<PostgresStore> {
    const s = await PostgresStore.open({ url: SHARED_POSTGRES_URL, poolSize: 3, ...options });
    stores.push(s);
    return s;
  }
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()));
  });
  afterAll(async () => {
    for (const s of schemas) await dropSchema(SHARED_POSTGRES_URL, s);
  });

  it("several processes opening a new schema at once apply each migration exactly once", async () => {
    const name = schema("mig");
    const opened = await Promise.all([0, 1, 2, 3, 4].map(() => open({ schema: name })));
    expect(opened).toHaveLength(5);
    const rows = await adminQuery<{ version: number; name: string }>(SHARED_POSTGRES_URL, `SELECT version, name FROM ${name}.schema_migrations ORDER BY version`);
    expect(rows).toEqual([
      { version: 1, name: "keys, change feed, meta" },
      { version: 2, name: "replay state across restarts" },
      { version: 3, name: "audit log" },
      { version: 4, name: "policy versions, address books, velocity ledger" },
      { version: 5, name: "behaviour state, anomaly actions" },
      { version: 6, name: "approvers and held operations" },
      { version: 7, name: "key search index" },
      { version: 8, name: "passkeys" },
      { version: 9, name: "wallet owners and agent keys" },
      { version: 10, name: "hpke keys" },
    ]);
    // Opening again applies nothing and keeps the data.
    const first = opened[0];
    await first?.setMeta("environment", "test");
    expect(await (await open({ schema: name })).getMeta("environment")).toBe("test");
  });

  it("refuses a schema written by a newer Portcullis (DATABASE_TOO_NEW)", async () => {
    const name = schema("new");
    await open({ schema: name });
    await adminQuery(SHARED_POSTGRES_URL, `INSERT INTO ${name}.schema_migrations (version, name, applied_at) VALUES (99, 'from the future', 0)`);
    expect(codeOf(await failure(() => open({ schema: name })))).toBe("DATABASE_TOO_NEW");
  });

  it("keeps schemas apart: a change in one is neither seen nor delivered in another", async () => {
    const one = await open({ schema: schema("iso") });
    const two = await open({ schema: schema("iso") });
    const feedTwo = record(two);
    const row = hmacRow();
    await one.insert(row, change("create", T0));
    expect(await two.get(row.id)).toBeUndefined();
    const marker = hmacRow();
    await two.insert(marker, change("create", T0));
    expect(feedTwo.calls).toEqual([{ ids: [marker.id], local: true }]);
  });

  it("refuses bad options with TypeError", async () => {
    for (const bad of ["Public", "pg_catalog", "a-b", "x;drop", "", "a".repeat(49), "1abc"]) {
      expect(await failure(() => PostgresStore.open({ url: SHARED_POSTGRES_URL, schema: bad }))).toBeInstanceOf(TypeError);
    }
    expect(await failure(() => PostgresStore.open({ url: "mysql://x", schema: "pctest_x" }))).toBeInstanceOf(TypeError);
    expect(await failure(() => PostgresStore.open({ url: SHARED_POSTGRES_URL, schema: "pctest_x", poolSize: 0 }))).toBeInstanceOf(TypeError);
    expect(await failure(() => PostgresStore.open({ url: SHARED_POSTGRES_URL, schema: "pctest_x", lockTimeoutMs: 0 }))).toBeInstanceOf(TypeError);
  });

  it("fails to open, without hanging, when the server is unreachable (DURABLE_STORE_UNREACHABLE, no password in the message)", async () => {
    const err = await failure(() => PostgresStore.open({ url: "postgres://postgres:s3cret-pw@127.0.0.1:1/test", schema: "pctest_unreachable" }));
    expect(codeOf(err)).toBe("DURABLE_STORE_UNREACHABLE");
    expect((err as Error).message).toMatch(/^cannot connect to PostgreSQL at 127\.0\.0\.1:1\/test: /);
    expect((err as Error).message).not.toContain("s3cret-pw");
    expect(((err as Error).cause as NodeJS.ErrnoException).code).toBe("ECONNREFUSED");
  });

  it("catches up from the feed table after its connection is lost", async () => {
    const name = schema("feed");
    const errors: Error[] = [];
    const a = await PostgresStore.open({ url: SHARED_POSTGRES_URL, schema: name, reconnectDelayMs: 200, onError: (e) => errors.push(e) });
    stores.push(a);
    const b = await open({ schema: name });
    const feed = record(a);
    const app = `portcullis-feed:${name}`;
    const waitListening = async (): Promise<void> => {
      await vi.waitFor(async () => {
        const rows = await adminQuery(SHARED_POSTGRES_URL, "SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN %'", [app]);
        expect(rows).toHaveLength(1);
      }, WAIT);
    };
    await waitListening();
    const before = hmacRow();
    await b.insert(before, change("create", T0));
    await vi.waitFor(() => {
      expect(feed.calls).toEqual([{ ids: [before.id], local: false }]);
    }, WAIT);

    // The listening connection is killed; changes committed while it is down arrive after it reconnects.
    const killed = await adminQuery<{ ok: boolean }>(SHARED_POSTGRES_URL, "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1", [app]);
    expect(killed).toEqual([{ ok: true }]);
    const during = hmacRow();
    await b.insert(during, change("create", T0));
    await b.transition(before.id, ["active"], "revoked", null, change("revoke"));
    // (In one delivery, or two if the listener came back between the two commits.)
    await vi.waitFor(() => {
      expect(feed.calls.slice(1).flatMap((c) => c.ids)).toEqual([during.id, before.id]);
    }, WAIT);
    expect(feed.calls.every((c) => !c.local)).toBe(true);
    expect(errors.length).toBeGreaterThan(0);
    await waitListening();
  });

  it("runs the key-change hook in the change's transaction; its failure rolls the change back", async () => {
    const name = schema("hook");
    const seen: RecordedKeyChange[] = [];
    let fail = false;
    const s = await open({
      schema: name,
      keyChangeHook: async (tx, recorded) => {
        // It sees the change's own uncommitted rows.
        const { rows } = await tx.query<{ status: string }>("SELECT status FROM keys WHERE id = $1", [recorded.keyId]);
        expect(rows[0]?.status).toBe(recorded.status);
        seen.push(recorded);
        if (fail) throw new Error("audit unavailable");
      },
    });
    const feed = record(s);
    const row = hmacRow();
    await s.insert(row, change("create", T0));
    await s.transition(row.id, ["active"], "suspended", null, change("suspend", T0 + 1));
    expect(seen.map((r) => [r.keyId, r.change.action, r.status])).toEqual([
      [row.id, "create", "active"],
      [row.id, "suspend", "suspended"],
    ]);
    expect(seen[1]?.seq).toBeGreaterThan(seen[0]?.seq ?? Infinity);

    fail = true;
    expect(await failure(() => s.transition(row.id, ["suspended"], "revoked", null, change("revoke", T0 + 2)))).toMatchObject({ message: "audit unavailable" });
    expect((await s.get(row.id))?.status).toBe("suspended");
    const other = hmacRow();
    expect(await failure(() => s.insert(other, change("create", T0)))).toBeInstanceOf(Error);
    expect(await s.get(other.id)).toBeUndefined();
    const feedRows = await adminQuery<{ action: string }>(SHARED_POSTGRES_URL, `SELECT action FROM ${name}.key_changes ORDER BY seq`);
    expect(feedRows.map((r) => r.action)).toEqual(["create", "suspend"]);
    expect(feed.calls).toHaveLength(2);
  });

  it("a key change waits for the feed lock and a changing row at most lockTimeoutMs, then fails and writes nothing", async () => {
    const name = schema("lock");
    const s = await open({ schema: name, lockTimeoutMs: 150 });
    const row = hmacRow();
    await s.insert(row, change("create", T0));
    const feed = record(s);
    const holder = new pg.Client({ connectionString: SHARED_POSTGRES_URL });
    holder.on("error", () => undefined);
    await holder.connect();
    try {
      // Another process mid-change: it holds the schema's feed lock.
      await holder.query("BEGIN");
      await holder.query("SELECT pg_advisory_xact_lock($1, $2)", [LOCK_KEY_FEED, schemaLockKey(name)]);
      const blocked = hmacRow();
      expect(await failure(() => s.insert(blocked, change("create", T0)))).toMatchObject({ code: "55P03" });
      await holder.query("ROLLBACK");
      expect(await s.get(blocked.id)).toBeUndefined();

      // Another process holds the key's row.
      await holder.query("BEGIN");
      await holder.query(`SELECT 1 FROM ${name}.keys WHERE id = $1 FOR UPDATE`, [row.id]);
      expect(await failure(() => s.transition(row.id, ["active"], "revoked", null, change("revoke")))).toMatchObject({ code: "55P03" });
      await holder.query("ROLLBACK");
      expect((await s.get(row.id))?.status).toBe("active");
      expect(feed.calls).toEqual([]);

      // Once released, the same change goes through.
      expect(await s.transition(row.id, ["active"], "revoked", null, change("revoke"))).toMatchObject({ ok: true });
      expect(feed.calls).toEqual([{ ids: [row.id], local: true }]);
    } finally {
      await holder.end();
    }
  });
});
