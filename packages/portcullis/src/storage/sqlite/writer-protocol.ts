import type Database from "better-sqlite3";
import type { SpillName } from "../../audit/spill.js";
import type { AuditFields } from "../../audit/events.js";
import type { AppendOptions } from "../../audit/store.js";
import type { BatchMarker } from "./audit.js";

/**
 * The messages between the durable writer (writer.ts) and its thread (writer-worker.ts). Each
 * request carries an id; its answer carries the same id. Values cross by structured clone.
 */
export interface WriterWorkerData {
  /** The database file (already migrated by the store that starts the writer). */
  readonly path: string;
  readonly spillDir: string | null;
  /** A crash drill (tests only): the worker exits during its `append`-th append, before or after the commit. */
  readonly fault: WriterFault | null;
}

export interface WriterFault {
  readonly append: number;
  readonly when: "before-commit" | "after-commit";
}

export type WriterRequest =
  | { readonly id: number; readonly op: "append"; readonly entries: readonly AuditFields[]; readonly options: AppendOptions; readonly marker: BatchMarker | null }
  | { readonly id: number; readonly op: "marked"; readonly marker: string }
  | { readonly id: number; readonly op: "unmark"; readonly marker: string }
  | { readonly id: number; readonly op: "touch"; readonly lastUsed: ReadonlyMap<string, number> }
  | { readonly id: number; readonly op: "spill"; readonly dir: string; readonly entries: readonly AuditFields[]; readonly name: SpillName }
  | { readonly id: number; readonly op: "loadStates"; readonly ids: readonly string[] }
  | { readonly id: number; readonly op: "writeStates"; readonly states: readonly (readonly [string, Uint8Array, number])[]; readonly at: number }
  | { readonly id: number; readonly op: "close" };

export type WriterResponse =
  | { readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly id: number; readonly ok: false; readonly error: string; readonly code: string | null };

/** The pragmas every connection to the store's file runs with (SqliteStore's, and the writer's). */
export function openWriterConnection(db: Database.Database): Database.Database {
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  db.pragma("busy_timeout = 5000");
  db.pragma("foreign_keys = ON");
  return db;
}
