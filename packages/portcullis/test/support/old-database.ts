/**
 * A data directory whose database an earlier Portcullis left: migrations up to `version` applied
 * (and recorded), the environment set, and nothing after. Migration tests fill it as that version
 * would have, close it, and open it with today's store to watch the later migrations run.
 */
import Database from "better-sqlite3";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initDataDir } from "../../src/core/data-dir.js";
import { migrations } from "../../src/storage/sqlite/migrations.js";

export interface OldDatabase {
  readonly dir: string;
  /** The database file. */
  readonly path: string;
  /** The database, open, at `version`. */
  readonly db: Database.Database;
}

export async function oldDatabase(prefix: string, version: number): Promise<OldDatabase> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  await initDataDir(dir, "test");
  const path = join(dir, "portcullis.db");
  rmSync(path);
  const db = new Database(path);
  db.exec("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT");
  for (const m of migrations.filter((x) => x.version <= version)) {
    db.exec(m.sql);
    db.prepare("INSERT INTO schema_migrations VALUES (?, ?, ?)").run(m.version, m.name, 1);
  }
  db.prepare("INSERT INTO meta (key, value) VALUES ('environment', 'test')").run();
  return { dir, path, db };
}
