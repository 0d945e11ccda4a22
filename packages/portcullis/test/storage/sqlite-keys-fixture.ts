/**
 * A SQLite store filled with many keys fast (the key-list walk tests): one key inserted through the
 * store, then copied row by row in one transaction with the columns a list filters on varied, and
 * what a list is defined to return, computed from the same shapes in memory.
 */
import Database from "better-sqlite3";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { KeyListFilter, KeyRow } from "../../src/storage/types.js";
import { SqliteStore } from "../../src/storage/sqlite/store.js";
import { keyRecord } from "../support/keys.js";

/** The columns a list filters on. */
export interface KeyShape {
  readonly id: string;
  readonly account: string;
  readonly label: string;
  readonly status: "active" | "suspended";
  readonly operator: boolean;
}

export interface FilledStore {
  readonly store: SqliteStore;
  /** Every key, in id (byte) order. */
  readonly all: readonly KeyShape[];
  /** The ids `store.list(filter)` answers. */
  ids(filter: KeyListFilter): Promise<string[]>;
  /** What a list is defined to return: a plain filter of every key (ASCII letters folded for a search). */
  expected(filter: Omit<KeyListFilter, "limit">, limit: number): string[];
  /** The ids `store.list(filter)` answers, and how many event-loop turns ran meanwhile. */
  turnsDuring(filter: KeyListFilter): Promise<{ turns: number; found: string[] }>;
  close(): Promise<void>;
}

export async function filledSqliteStore(n: number, shape: (i: number) => KeyShape): Promise<FilledStore> {
  const dir = mkdtempSync(join(tmpdir(), "pc-sqlite-keys-"));
  const path = join(dir, "portcullis.db");
  const store = new SqliteStore(path);
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
      for (let i = 0; i < n; i++) {
        const s = shape(i);
        insert.run({ ...s, operator: s.operator ? 1 : 0, template: template.id });
      }
      db.prepare("DELETE FROM keys WHERE id = ?").run(template.id);
    })();
  } finally {
    db.close();
  }
  const all = Array.from({ length: n }, (_, i) => shape(i)).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const ids = async (filter: KeyListFilter): Promise<string[]> => (await store.list(filter)).map((r) => r.id);
  const fold = (s: string): string => s.replace(/[A-Z]/g, (c) => c.toLowerCase());
  return {
    store,
    all,
    ids,
    expected(filter, limit) {
      const text = filter.search === undefined ? null : fold(filter.search);
      return all
        .filter((k) => filter.account === undefined || k.account === filter.account)
        .filter((k) => (filter.after === undefined || k.id > filter.after) && (filter.status === undefined || k.status === filter.status) && (filter.operator === undefined || k.operator === filter.operator))
        .filter((k) => text === null || fold(k.id).startsWith(text) || fold(k.account).startsWith(text) || fold(k.label).includes(text))
        .slice(0, limit)
        .map((k) => k.id);
    },
    async turnsDuring(filter) {
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
    },
    async close() {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
