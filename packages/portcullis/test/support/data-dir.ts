import { type OpenDataDir, type OpenDataDirOptions, openDataDir } from "../../src/core/data-dir.js";
import type { SqliteStore } from "../../src/storage/sqlite/store.js";

/** A data directory opened on SQLite, for tests that reach into the SQLite store (its writer, its file). */
export type SqliteDataDir = OpenDataDir & { readonly store: SqliteStore };

/** `openDataDir` on a directory that must be SQLite's (one `portcullis init` made without `--store`). */
export async function openSqliteDataDir(dir: string, options?: OpenDataDirOptions): Promise<SqliteDataDir> {
  const data = await openDataDir(dir, options);
  if (data.store.kind !== "sqlite") {
    await data.close();
    throw new Error(`${dir} is not a SQLite data directory`);
  }
  return data as SqliteDataDir;
}
