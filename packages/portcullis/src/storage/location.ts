import { closeSync, constants, existsSync, openSync, readFileSync, renameSync, writeSync, fsyncSync } from "node:fs";
import { join } from "node:path";

/**
 * Where a deployment's durable store lives (docs/storage-postgres.md, "Choosing the store"):
 * SQLite inside the data directory (the default), or a PostgreSQL database shared by every gateway
 * process and host.
 *
 * The data directory records its choice in `store.json`, written once by `portcullis init --store`,
 * so that every command given `--data DIR` (the CLI's key, policy, approval, audit and custody
 * commands) opens the same store the gateway does; a directory without the file is SQLite's. The
 * configuration's `store` section names the store too, and a gateway whose configuration and data
 * directory disagree refuses to start (`openDataDir`): two halves of one deployment never write to
 * two stores.
 *
 * The URL never holds a password — it is written to `store.json`, printed by commands and named in
 * errors. node-postgres reads the password from `PGPASSWORD` or `~/.pgpass` (or `PGPASSFILE`).
 */
export type StoreSettings =
  | { readonly backend: "sqlite" }
  | {
      readonly backend: "postgres";
      /** `postgres://user@host:port/database`, without a password. */
      readonly url: string;
      /** The schema of the store's tables (storage/postgres/store.ts SCHEMA_RE). */
      readonly schema: string;
      /** Connections in this process's pool. */
      readonly poolSize: number;
    };

export const SQLITE_STORE: StoreSettings = { backend: "sqlite" };

/** The file in the data directory that names its store. */
export const STORE_FILE = "store.json";

const SCHEMA_RE = /^(?!pg_)[a-z_][a-z0-9_]{0,47}$/;

/** Bad store settings: `where` names the setting (a config path, or the store file). */
export class StoreSettingsError extends Error {
  override name = "StoreSettingsError";
}

function fail(message: string): never {
  throw new StoreSettingsError(message);
}

/**
 * Checks a PostgreSQL URL: `postgres://` or `postgresql://`, a host, a database, and no password.
 * The message never repeats the URL (it may hold the password it refuses).
 */
export function checkPostgresUrl(url: unknown, where: string): string {
  if (typeof url !== "string" || url === "") fail(`${where}.url is required with backend "postgres" (postgres://user@host:5432/database)`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    fail(`${where}.url is not a URL (postgres://user@host:5432/database)`);
  }
  if (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:") fail(`${where}.url must start with postgres:// or postgresql://`);
  if (parsed.password !== "") fail(`${where}.url must not hold a password: give it in PGPASSWORD or ~/.pgpass (it would be written to files and printed)`);
  if (parsed.hostname === "") fail(`${where}.url names no host`);
  if (parsed.pathname === "" || parsed.pathname === "/") fail(`${where}.url names no database (postgres://user@host:5432/database)`);
  if (parsed.search !== "" || parsed.hash !== "") fail(`${where}.url must not carry parameters (?…): Portcullis sets the connection's options itself`);
  return url;
}

/** Parses a `store` object (the config's section, or store.json); `extra` are other keys the caller allows. */
export function parseStoreSettings(raw: unknown, where: string, extra: readonly string[] = []): StoreSettings {
  if (raw === undefined || raw === null) return SQLITE_STORE;
  if (typeof raw !== "object" || Array.isArray(raw)) fail(`${where} must be an object`);
  const o = raw as Record<string, unknown>;
  const backend = o.backend ?? "sqlite";
  if (backend === "sqlite") {
    for (const k of Object.keys(o)) {
      if (k !== "backend" && !extra.includes(k)) fail(`${where}.${k}: unknown setting with backend "sqlite" (allowed: backend${extra.length === 0 ? "" : `, ${extra.join(", ")}`})`);
    }
    return SQLITE_STORE;
  }
  if (backend !== "postgres") fail(`${where}.backend must be "sqlite" or "postgres"`);
  for (const k of Object.keys(o)) {
    if (!["backend", "url", "schema", "poolSize", ...extra].includes(k)) fail(`${where}.${k}: unknown setting (allowed: backend, url, schema, poolSize${extra.length === 0 ? "" : `, ${extra.join(", ")}`})`);
  }
  const url = checkPostgresUrl(o.url, where);
  const schema = o.schema ?? "portcullis";
  if (typeof schema !== "string" || !SCHEMA_RE.test(schema)) fail(`${where}.schema must be lower-case letters, digits and _, starting with a letter or _, at most 48 characters, not pg_…`);
  const poolSize = o.poolSize ?? 10;
  if (typeof poolSize !== "number" || !Number.isSafeInteger(poolSize) || poolSize < 1 || poolSize > 1000) fail(`${where}.poolSize must be an integer from 1 to 1000`);
  return { backend: "postgres", url, schema, poolSize };
}

/** The same store: the same backend and, for PostgreSQL, the same server, database and schema. */
export function sameStore(a: StoreSettings, b: StoreSettings): boolean {
  if (a.backend === "sqlite" || b.backend === "sqlite") return a.backend === b.backend;
  return a.schema === b.schema && normalisedUrl(a.url) === normalisedUrl(b.url);
}

function normalisedUrl(url: string): string {
  const u = new URL(url);
  const port = u.port === "" ? "5432" : u.port;
  return `${u.username}@${u.hostname.toLowerCase()}:${port}${u.pathname}`;
}

/** A store for messages: "SQLite" or "PostgreSQL user@host:port/db, schema s" — never a password (there is none). */
export function describeStore(s: StoreSettings): string {
  return s.backend === "sqlite" ? "SQLite" : `PostgreSQL ${normalisedUrl(s.url)}, schema ${s.schema}`;
}

/**
 * The store a data directory names in its store.json; SQLite when there is none. Throws
 * StoreSettingsError for a file that cannot be read or parsed.
 */
export function readStoreFile(dataDir: string): StoreSettings {
  const path = join(dataDir, STORE_FILE);
  if (!existsSync(path)) return SQLITE_STORE;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    fail(`${path} cannot be read as JSON: ${(err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err))}`);
  }
  return parseStoreSettings(raw, path);
}

/**
 * Writes store.json for a PostgreSQL store (atomically: a temporary file, fsynced, renamed). Only
 * `portcullis init` calls it, on a directory that has none.
 */
export function writeStoreFile(dataDir: string, settings: Extract<StoreSettings, { backend: "postgres" }>): string {
  const path = join(dataDir, STORE_FILE);
  const temp = `${path}.${process.pid}.tmp`;
  const body = `${JSON.stringify({ backend: "postgres", url: settings.url, schema: settings.schema, poolSize: settings.poolSize }, null, 2)}\n`;
  const fd = openSync(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
  try {
    writeSync(fd, body);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, path);
  return path;
}
