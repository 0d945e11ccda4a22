import pg from "pg";
import { OperatorError } from "../../errors/catalogue.js";
import { PostgresAudit, type PostgresAuditOptions } from "./audit.js";
import { serverName } from "./store.js";
import { asError } from "./transaction.js";

/**
 * Opens a PostgreSQL store's audit log for reading only (`audit verify|tail|query|export`), as
 * `openAuditReadOnly` opens a SQLite file: nothing is migrated or written. Every session of its
 * pool starts with `default_transaction_read_only=on`, so the server itself refuses any write
 * made through it (25006) — an auditor's command cannot change the log it checks, whatever the
 * code does. The pool is small (2): verification holds one connection for its snapshot.
 */

const SCHEMA_RE = /^(?!pg_)[a-z_][a-z0-9_]{0,47}$/;
const AUDIT_TABLES = ["audit_log", "audit_checkpoints", "audit_keys", "audit_archives", "audit_spill_replays"];

export interface ReadOnlyPostgresAudit {
  readonly audit: PostgresAudit;
  close(): Promise<void>;
}

export interface PostgresReaderSettings {
  /** `postgres://user@host:port/database` (the password, if any, from PGPASSWORD or ~/.pgpass). */
  readonly url: string;
  readonly schema: string;
}

/**
 * The audit log of the store in `settings.schema`, read-only; null when the schema has no audit
 * tables (no such schema, or one before migration 3). A server that cannot be reached is
 * DURABLE_STORE_UNREACHABLE (naming the server, never a password); bad settings a TypeError.
 */
export async function openPostgresAuditReadOnly(settings: PostgresReaderSettings, dirs: PostgresAuditOptions): Promise<ReadOnlyPostgresAudit | null> {
  if (!SCHEMA_RE.test(settings.schema)) throw new TypeError("schema: lower-case letters, digits and _, starting with a letter or _, at most 48 characters, not pg_…");
  if (!/^postgres(ql)?:\/\//.test(settings.url)) throw new TypeError("url: a postgres:// URL");
  const pool = new pg.Pool({
    connectionString: settings.url,
    options: `-c search_path=${settings.schema} -c default_transaction_read_only=on`,
    application_name: `portcullis:${settings.schema}:audit-reader`,
    connectionTimeoutMillis: 10_000,
    max: 2,
  });
  // An idle connection that fails is dropped by the pool; the next read reports the failure.
  pool.on("error", () => undefined);
  try {
    let tables: string[];
    try {
      tables = (
        await pool.query<{ name: string }>(
          "SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND c.relname = ANY($2)",
          [settings.schema, AUDIT_TABLES],
        )
      ).rows.map((r) => r.name);
    } catch (err) {
      throw new OperatorError("DURABLE_STORE_UNREACHABLE", `cannot read PostgreSQL at ${serverName(settings.url)}: ${asError(err).message}`, { cause: err });
    }
    if (!AUDIT_TABLES.every((t) => tables.includes(t))) {
      await pool.end();
      return null;
    }
    return { audit: new PostgresAudit(pool, settings.schema, dirs), close: () => pool.end() };
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw err;
  }
}
