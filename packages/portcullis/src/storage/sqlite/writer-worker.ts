import Database from "better-sqlite3";
import { parentPort, workerData } from "node:worker_threads";
import { SpillDir } from "../../audit/spill.js";
import { SqliteAudit } from "./audit.js";
import { type WriterRequest, type WriterResponse, type WriterWorkerData, openWriterConnection } from "./writer-protocol.js";

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
const audit = new SqliteAudit(db, { spillDir: data.spillDir, archiveDir: null });
const touch = db.prepare<[number, string]>("UPDATE keys SET last_used_at = MAX(COALESCE(last_used_at, 0), ?) WHERE id = ?");
const touchAll = db.transaction((lastUsed: ReadonlyMap<string, number>) => {
  for (const [id, at] of lastUsed) touch.run(at, id);
});
const loadState = db.prepare<[string], { state: Buffer; version: number }>("SELECT state, version FROM behaviour_state WHERE id = ?");
const insertState = db.prepare<[string, Buffer, number]>("INSERT INTO behaviour_state (id, state, version, updated_at) VALUES (?, ?, 1, ?) ON CONFLICT (id) DO NOTHING");
const replaceState = db.prepare<[Buffer, number, string, number]>("UPDATE behaviour_state SET state = ?, version = version + 1, updated_at = ? WHERE id = ? AND version = ?");
/** Writes each state whose stored version is still the one it was computed from; returns the ids that moved on. */
const writeStates = db.transaction((states: readonly (readonly [string, Uint8Array, number])[], at: number): string[] => {
  const moved: string[] = [];
  for (const [id, state, version] of states) {
    const bytes = Buffer.from(state.buffer, state.byteOffset, state.byteLength);
    const changes = version === 0 ? insertState.run(id, bytes, at).changes : replaceState.run(bytes, at, id, version).changes;
    if (changes === 0) moved.push(id);
  }
  return moved;
});

let appends = 0;

function handle(req: WriterRequest): unknown {
  switch (req.op) {
    case "append": {
      appends++;
      const fault = data.fault !== null && data.fault.append === appends ? data.fault.when : null;
      const result = audit.appendMarked(req.entries, req.options, req.marker, fault === "before-commit" ? () => process.exit(1) : undefined);
      if (fault === "after-commit") process.exit(1);
      return result;
    }
    case "marked":
      return audit.marked(req.marker) ?? null;
    case "unmark":
      audit.unmark(req.marker);
      return null;
    case "touch":
      touchAll(req.lastUsed);
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

port.on("message", (req: WriterRequest) => {
  let response: WriterResponse;
  try {
    response = { id: req.id, ok: true, value: handle(req) };
  } catch (err) {
    response = { id: req.id, ok: false, error: err instanceof Error ? err.message : String(err), code: (err as { code?: unknown }).code === "SQLITE_BUSY" ? "SQLITE_BUSY" : null };
  }
  port.postMessage(response);
  if (req.op === "close") port.close();
});
