/**
 * SQLite's key list walks the keys in steps whenever a filter no index answers is given (a search,
 * a status, the operator flag), within one account as across accounts (storage/sqlite/store.ts
 * walk). Security review of issue 18: a search within one large account (every account admin's
 * list is one), or a status nobody has across the table, was one synchronous statement reading
 * every key while the gateway sharing the thread waited. Here one account holds 10,000 keys.
 */
import Database from "better-sqlite3";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KeyListFilter, KeyRow } from "../../src/storage/types.js";
import { SqliteStore } from "../../src/storage/sqlite/store.js";
import { keyRecord } from "../support/keys.js";

const N = 10_000;
let dir: string;
let store: SqliteStore;

interface Shape {
  id: string;
  account: string;
  label: string;
  status: "active" | "suspended";
  operator: boolean;
}
let all: Shape[] = [];

/** Key i: nine in ten in the account "big", a rare "needle" label, every seventh suspended. */
function shape(i: number): Shape {
  return {
    id: `pck_test_v1_k${String((i * 7919) % N).padStart(27, "0")}`,
    account: i % 10 === 0 ? `small-${i % 3}` : "big",
    label: i % 1000 === 3 ? `Needle ${i}` : `bot ${i}`,
    status: i % 7 === 0 ? "suspended" : "active",
    operator: i % 11 === 0,
  };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "pc-sqlite-walk-"));
  const path = join(dir, "portcullis.db");
  store = new SqliteStore(path);
  const template: KeyRow = { ...keyRecord({ id: "pck_test_v1_template000000000000000000000" }), secretEnvelope: Buffer.alloc(23, 1), passphraseHash: null, passphraseEnvelope: null };
  await store.insert(template, { action: "create", actor: "test", at: 1, detail: {} });
  const db = new Database(path);
  try {
    const columns = (db.prepare("SELECT name FROM pragma_table_info('keys')").all() as { name: string }[]).map((r) => r.name);
    const varying = ["id", "account", "label", "status", "operator"];
    const select = columns.map((c) => (varying.includes(c) ? `@${c}` : c)).join(", ");
    const insert = db.prepare(`INSERT INTO keys (${columns.join(", ")}) SELECT ${select} FROM keys WHERE id = @template`);
    db.transaction(() => {
      for (let i = 0; i < N; i++) {
        const s = shape(i);
        insert.run({ ...s, operator: s.operator ? 1 : 0, template: template.id });
      }
      db.prepare("DELETE FROM keys WHERE id = ?").run(template.id);
    })();
  } finally {
    db.close();
  }
  all = Array.from({ length: N }, (_, i) => shape(i)).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
});
afterAll(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

function expected(filter: Omit<KeyListFilter, "limit">, limit: number): string[] {
  const fold = (s: string): string => s.replace(/[A-Z]/g, (c) => c.toLowerCase());
  const text = filter.search === undefined ? null : fold(filter.search);
  return all
    .filter((k) => filter.account === undefined || k.account === filter.account)
    .filter((k) => (filter.after === undefined || k.id > filter.after) && (filter.status === undefined || k.status === filter.status) && (filter.operator === undefined || k.operator === filter.operator))
    .filter((k) => text === null || fold(k.id).startsWith(text) || fold(k.account).startsWith(text) || fold(k.label).includes(text))
    .slice(0, limit)
    .map((k) => k.id);
}

const ids = async (filter: KeyListFilter): Promise<string[]> => (await store.list(filter)).map((r) => r.id);

/** Event-loop turns taken while `list` ran. */
async function turnsDuring(filter: KeyListFilter): Promise<{ turns: number; found: string[] }> {
  let turns = 0;
  let running = true;
  const spin = (): void => {
    turns++;
    if (running) setImmediate(spin);
  };
  setImmediate(spin);
  const found = await ids(filter);
  running = false;
  return { turns, found };
}

describe("SQLite key list in steps: within one account, and for unindexed filters", () => {
  it.each([
    ["a search within the big account", { account: "big", search: "needle" }],
    ["a search within the big account, an account admin's (operator: false)", { account: "big", operator: false, search: "needle" }],
    ["a status within the big account", { account: "big", status: "suspended" as const }],
    ["an account admin's plain list", { account: "big", operator: false }],
    ["a status across accounts", { status: "suspended" as const }],
    ["operator keys across accounts", { operator: true }],
    ["a small account's search", { account: "small-1", search: "bot" }],
    ["after a cursor, within the account", { account: "big", status: "active" as const, after: "pck_test_v1_k00000000000000000000005000" }],
  ])("%s: the same keys as a filter of all of them", async (_name, filter) => {
    expect(await ids({ ...filter, limit: 1000 })).toEqual(expected(filter, 1000));
    expect(await ids({ ...filter, limit: 3 })).toEqual(expected(filter, 3));
  });

  it.each([
    ["a search within one account that matches nothing", { account: "big", search: "no such key" }],
    ["an account admin's search that matches nothing", { account: "big", operator: false, search: "no such key" }],
    ["a status nobody has, across accounts", { status: "revoked" as const }],
    ["a status nobody has, within one account", { account: "big", status: "revoked" as const }],
  ])("gives the event loop turns: %s", async (_name, filter) => {
    const { turns, found } = await turnsDuring({ ...filter, limit: 50 });
    expect(found).toEqual([]);
    // 9,000 keys of the account (10,000 of the table) are at least three steps of 4,096.
    expect(turns).toBeGreaterThanOrEqual(2);
  });
});
