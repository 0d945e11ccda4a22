import type Database from "better-sqlite3";
import type { SpillName } from "../../audit/spill.js";
import type { AuditFields } from "../../audit/events.js";
import type { SignedCheckpoint } from "../../audit/chain.js";
import type { AppendOptions, AuditKey } from "../../audit/store.js";
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
  /** Part of a large batch, kept by the worker until the `append` that names the same `batch`. */
  | { readonly id: number; readonly op: "stage"; readonly batch: number; readonly entries: readonly AuditFields[] }
  /**
   * Appends the `parts` staged parts of `batch` followed by `entries`, in one transaction; fails,
   * writing nothing, when the worker does not hold exactly that many (a new worker, after a death).
   */
  | {
      readonly id: number;
      readonly op: "append";
      readonly batch: number;
      readonly parts: number;
      readonly entries: readonly AuditFields[];
      readonly options: AppendOptions;
      readonly marker: BatchMarker | null;
      /** Where to write the whole batch at once if the append fails (`spilled` in the answer). */
      readonly spill: { readonly dir: string; readonly name: SpillName } | null;
    }
  | { readonly id: number; readonly op: "addCheckpoint"; readonly checkpoint: SignedCheckpoint }
  | { readonly id: number; readonly op: "registerKey"; readonly key: AuditKey }
  | { readonly id: number; readonly op: "marked"; readonly marker: string }
  | { readonly id: number; readonly op: "unmark"; readonly marker: string }
  | { readonly id: number; readonly op: "touch"; readonly lastUsed: ReadonlyMap<string, number> }
  /** An increasing-nonce reservation (ReservationStore.reserve); the ceiling in decimal. */
  | { readonly id: number; readonly op: "reserve"; readonly keyId: string; readonly ceiling: string }
  | { readonly id: number; readonly op: "spill"; readonly dir: string; readonly entries: readonly AuditFields[]; readonly name: SpillName }
  | { readonly id: number; readonly op: "loadStates"; readonly ids: readonly string[] }
  /**
   * Behaviour states by compare-and-set: each `[id, state, version, previous]` is written only if
   * the stored row still has that version and those bytes (`previous`; version 0 and null: no row
   * yet). Answers the ids that moved on (nothing written for them).
   */
  | { readonly id: number; readonly op: "writeStates"; readonly states: readonly StateWrite[]; readonly at: number }
  | { readonly id: number; readonly op: "close" };

/** A behaviour state to write: its id, its new bytes, the version and bytes it was computed from. */
export type StateWrite = readonly [id: string, state: Uint8Array, version: number, previous: Uint8Array | null];

export type WriterResponse =
  | { readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly id: number; readonly ok: false; readonly error: string; readonly code: string | null; readonly spilled?: string };

/** How long the writer's writes other than appends and reservations wait for the database's write lock (ms). */
export const WRITE_LOCK_TIMEOUT_MS = 250;

/** How long a reservation (a request waits for it) waits for the write lock before failing (ms). */
export const RESERVE_LOCK_TIMEOUT_MS = 1_000;

/** The increasing-nonce reservation's upsert: only ever raised (decimal strings, no leading zeros). */
export const RESERVE_SQL = `INSERT INTO sequence_reservations (key_id, ceiling) VALUES (?, ?)
  ON CONFLICT (key_id) DO UPDATE SET ceiling = excluded.ceiling
    WHERE length(excluded.ceiling) > length(ceiling)
       OR (length(excluded.ceiling) = length(ceiling) AND excluded.ceiling > ceiling)`;

/** The pragmas every connection to the store's file runs with (SqliteStore's, and the writer's). */
export function openWriterConnection(db: Database.Database): Database.Database {
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  db.pragma("busy_timeout = 5000");
  db.pragma("foreign_keys = ON");
  return db;
}
