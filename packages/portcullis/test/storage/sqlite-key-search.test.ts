/**
 * SQLite's key search across accounts (KeyListFilter.search without an account) walks the keys in
 * steps of 4,096, yielding to the event loop between steps (storage/sqlite/store.ts walk).
 * With 10,000 keys a search crosses steps: every answer, every page of it, must be what a plain
 * filter of all the keys gives, and the event loop must get turns while a search that matches
 * little looks at every key. (The search's meaning on both stores is durable-contract.test.ts's.)
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
/** Every key, in id (byte) order. */
let all: Shape[] = [];

/** Key i: ids of mixed case (their order is not i's), accounts of 97, a rare "needle" label. */
function shape(i: number): Shape {
  const tail = `${i % 2 === 0 ? "K" : "k"}${String((i * 7919) % N).padStart(27, "0")}`;
  return {
    id: `pck_test_v1_${tail}`,
    account: `Acct-${i % 97}`,
    label: i % 1000 === 3 ? `Needle ${i}` : `bot ${i}`,
    status: i % 7 === 0 ? "suspended" : "active",
    operator: i % 11 === 0,
  };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "pc-sqlite-search-"));
  const path = join(dir, "portcullis.db");
  store = new SqliteStore(path);
  const template: KeyRow = { ...keyRecord({ id: "pck_test_v1_template000000000000000000000" }), secretEnvelope: Buffer.alloc(23, 1), passphraseHash: null, passphraseEnvelope: null };
  await store.insert(template, { action: "create", actor: "test", at: 1, detail: {} });
  // The template's columns, copied: as many rows as the test needs, in one transaction.
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

/** What a search is defined to return: a plain filter of every key. */
function expected(filter: Omit<KeyListFilter, "limit">, limit: number): string[] {
  const fold = (s: string): string => s.replace(/[A-Z]/g, (c) => c.toLowerCase());
  const text = fold(filter.search ?? "");
  return all
    .filter((k) => (filter.after === undefined || k.id > filter.after) && (filter.status === undefined || k.status === filter.status) && (filter.operator === undefined || k.operator === filter.operator))
    .filter((k) => fold(k.id).startsWith(text) || fold(k.account).startsWith(text) || fold(k.label).includes(text))
    .slice(0, limit)
    .map((k) => k.id);
}

const ids = async (filter: KeyListFilter): Promise<string[]> => (await store.list(filter)).map((r) => r.id);

describe("SQLite key search across accounts, in steps", () => {
  it.each([
    ["a rare label part (one key in a thousand: every step looked at)", { search: "needle" }],
    ["a label part most keys hold", { search: "BOT 1" }],
    ["an account prefix", { search: "acct-9" }],
    ["an id prefix, the other case", { search: "PCK_TEST_V1_k00000000000000000000001" }],
    ["nothing", { search: "no such key" }],
    ["with status and operator filters", { search: "acct-1", status: "suspended" as const, operator: false }],
    ["after a cursor in the last step", { search: "needle", after: "pck_test_v1_k" }],
  ])("%s: the same keys as a filter of all of them", async (_name, filter) => {
    expect(await ids({ ...filter, limit: 1000 })).toEqual(expected(filter, 1000));
    expect(await ids({ ...filter, limit: 3 })).toEqual(expected(filter, 3));
  });

  it("pages through every match with after and limit, across steps, missing none and repeating none", async () => {
    const want = expected({ search: "needle" }, N);
    expect(want.length).toBe(10);
    const got: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await ids({ search: "needle", limit: 3, ...(after === undefined ? {} : { after }) });
      got.push(...page);
      if (page.length < 3) break;
      after = page[page.length - 1];
    }
    expect(got).toEqual(want);
  });

  it("gives the event loop turns while a search that matches nothing looks at every key", async () => {
    let turns = 0;
    let running = true;
    const spin = (): void => {
      turns++;
      if (running) setImmediate(spin);
    };
    setImmediate(spin);
    const found = await ids({ search: "no such key", limit: 50 });
    running = false;
    expect(found).toEqual([]);
    // 10,000 keys are three steps of 4,096: the loop ran between them.
    expect(turns).toBeGreaterThanOrEqual(2);
  });
});
