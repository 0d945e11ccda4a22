import Database from "better-sqlite3";
import { parentPort, workerData } from "node:worker_threads";
import type { AuditFields } from "../../audit/events.js";
import { SpillDir, type SpillName } from "../../audit/spill.js";
import { SqliteAudit } from "./audit.js";
import { RESERVE_LOCK_TIMEOUT_MS, RESERVE_SQL, type StateWrite, WRITE_LOCK_TIMEOUT_MS, type WriterRequest, type WriterResponse, type WriterWorkerData, openWriterConnection } from "./writer-protocol.js";

/**
 * The durable writer's thread (storage/sqlite/writer.ts starts it): its own connection to the
 * database file, on which it appends audit batches (canonical encoding, hash chain, insert, in one
 * `BEGIN IMMEDIATE` transaction), writes last-use batches and behaviour states, and writes spill
 * files. Requests are handled one at a time, in the order they arrive; each is answered with its
 * id. Nothing here logs: errors go back to the requester, as messages.
 */
const port = parentPort;
if (port === null) throw new Error("writer-worker.js runs as a worker thread");
const data = workerData as WriterWorkerData;
const db: Database.Database = openWriterConnection(new Database(data.path, { fileMustExist: true }));
// One request at a time: a write that waits long for the lock (another process holds it) delays
// every request behind it, spill files included. Appends wait their own `lockTimeoutMs`; the
// other writes give up after this, and are retried by their callers.
db.pragma(`busy_timeout = ${WRITE_LOCK_TIMEOUT_MS}`);
const audit = new SqliteAudit(db, { spillDir: data.spillDir, archiveDir: null });
const touch = db.prepare<[number, string]>("UPDATE keys SET last_used_at = MAX(COALESCE(last_used_at, 0), ?) WHERE id = ?");
const touchAll = db.transaction((lastUsed: ReadonlyMap<string, number>) => {
  for (const [id, at] of lastUsed) touch.run(at, id);
});
const reserve = db.prepare<[string, string]>(RESERVE_SQL);
const loadState = db.prepare<[string], { state: Buffer; version: number }>("SELECT state, version FROM behaviour_state WHERE id = ?");
const insertState = db.prepare<[string, Buffer, number]>("INSERT INTO behaviour_state (id, state, version, updated_at) VALUES (?, ?, 1, ?) ON CONFLICT (id) DO NOTHING");
// The bytes as well as the version: a row removed and written again by another connection starts
// again at version 1, and a writer holding an older version 1 must not take it for its own.
const replaceState = db.prepare<[Buffer, number, string, number, Buffer]>("UPDATE behaviour_state SET state = ?, version = version + 1, updated_at = ? WHERE id = ? AND version = ? AND state = ?");
const asBuffer = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
/** Writes each state whose stored row is still the one it was computed from; returns the ids that moved on. */
const writeStates = db.transaction((states: readonly StateWrite[], at: number): string[] => {
  const moved: string[] = [];
  for (const [id, state, version, previous] of states) {
    const bytes = asBuffer(state);
    const changes = version === 0 || previous === null ? insertState.run(id, bytes, at).changes : replaceState.run(bytes, at, id, version, asBuffer(previous)).changes;
    if (changes === 0) moved.push(id);
  }
  return moved;
});

let appends = 0;
/** The parts of large batches posted so far, by batch number (writer.ts APPEND_CHUNK). */
const staged = new Map<number, (readonly AuditFields[])[]>();

function handle(req: WriterRequest): unknown {
  switch (req.op) {
    case "stage": {
      const parts = staged.get(req.batch);
      if (parts === undefined) staged.set(req.batch, [req.entries]);
      else parts.push(req.entries);
      return null;
    }
    case "append": {
      appends++;
      const parts = staged.get(req.batch);
      staged.delete(req.batch);
      if ((parts?.length ?? 0) !== req.parts) throw new Error(`audit batch ${req.batch}: ${parts?.length ?? 0} of its ${req.parts} parts arrived; nothing appended`);
      const entries = parts === undefined ? req.entries : [...parts, req.entries].flat();
      const fault = data.fault !== null && data.fault.append === appends ? data.fault.when : null;
      let result;
      try {
        result = audit.appendMarked(entries, req.options, req.marker, fault === "before-commit" ? () => process.exit(1) : undefined);
      } catch (err) {
        // The batch goes to its spill file now, in this same turn: the request thread may be busy.
        throw spilledToo(err, req.spill === null ? null : trySpill(req.spill.dir, entries, req.spill.name));
      }
      if (fault === "after-commit") process.exit(1);
      return result;
    }
    case "addCheckpoint":
      // A structured clone turns the signature's Buffer into a Uint8Array: bound as a BLOB alike.
      return audit.addCheckpointNow({ ...req.checkpoint, signature: Buffer.from(req.checkpoint.signature) });
    case "registerKey":
      audit.registerKeyNow(req.key);
      return null;
    case "marked":
      return audit.marked(req.marker) ?? null;
    case "unmark":
      audit.unmark(req.marker);
      return null;
    case "touch":
      touchAll(req.lastUsed);
      return null;
    case "reserve":
      db.pragma(`busy_timeout = ${RESERVE_LOCK_TIMEOUT_MS}`);
      try {
        reserve.run(req.keyId, req.ceiling);
      } finally {
        db.pragma(`busy_timeout = ${WRITE_LOCK_TIMEOUT_MS}`);
      }
      return null;
    case "spill":
      return new SpillDir(req.dir).write(req.entries, req.name);
    case "loadStates": {
      const out: [string, Uint8Array, number][] = [];
      for (const id of req.ids) {
        const row = loadState.get(id);
        if (row !== undefined) out.push([id, row.state, row.version]);
      }
      return out;
    }
    case "writeStates":
      return writeStates.immediate(req.states, req.at);
    case "close":
      db.close();
      return null;
  }
}

/** The spill file's name once written, or null when it could not be (the log then tries itself). */
function trySpill(dir: string, entries: readonly AuditFields[], name: SpillName): string | null {
  try {
    return new SpillDir(dir).write(entries, name);
  } catch {
    return null;
  }
}

class AppendFailed extends Error {
  constructor(
    message: string,
    readonly code: unknown,
    readonly spilled: string | null,
  ) {
    super(message);
  }
}

function spilledToo(err: unknown, spilled: string | null): AppendFailed {
  return new AppendFailed(err instanceof Error ? err.message : String(err), (err as { code?: unknown } | null)?.code, spilled);
}

/** The writes the lock back-off applies to: all but appends (the audit log has its own back-off) and reads. */
const BACKED_OFF = new Set<WriterRequest["op"]>(["touch", "reserve", "writeStates", "addCheckpoint", "registerKey"]);

/**
 * After a write found the lock held past its timeout (another process holds it), the writes of
 * BACKED_OFF fail at once for this long (ms): waiting for each in turn would queue everything
 * behind them, spill files included.
 */
const LOCK_BACKOFF_MS = 1_000;
let lockedUntil = 0;

function guarded(req: WriterRequest): unknown {
  if (!BACKED_OFF.has(req.op)) return handle(req);
  if (Date.now() < lockedUntil) throw Object.assign(new Error("database is locked (another connection holds the write lock; not waiting again yet)"), { code: "SQLITE_BUSY" });
  try {
    return handle(req);
  } catch (err) {
    if ((err as { code?: unknown }).code === "SQLITE_BUSY") lockedUntil = Date.now() + LOCK_BACKOFF_MS;
    throw err;
  }
}

port.on("message", (req: WriterRequest) => {
  let response: WriterResponse;
  try {
    response = { id: req.id, ok: true, value: guarded(req) };
  } catch (err) {
    const spilled = err instanceof AppendFailed && err.spilled !== null ? { spilled: err.spilled } : {};
    response = { id: req.id, ok: false, error: err instanceof Error ? err.message : String(err), code: (err as { code?: unknown }).code === "SQLITE_BUSY" ? "SQLITE_BUSY" : null, ...spilled };
  }
  port.postMessage(response);
  if (req.op === "close") port.close();
});
