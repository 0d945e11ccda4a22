import { randomUUID } from "node:crypto";
import { Worker } from "node:worker_threads";
import type { SignedCheckpoint } from "../../audit/chain.js";
import type { AuditFields } from "../../audit/events.js";
import { SpillDir, type SpillName, spillName, spillWritten } from "../../audit/spill.js";
import type { AppendOptions, AppendResult, AuditKey, AuditStore, ChainHead } from "../../audit/store.js";
import { BehaviourStateError, checkPage, checkedState, distinctIds } from "../behaviour-state.js";
import type { BehaviourStateStore } from "../types.js";
import type { BatchMarker, SqliteAudit } from "./audit.js";
import type { SqliteBehaviourStore } from "./behaviour.js";
import type { StateWrite, WriterFault, WriterRequest, WriterResponse, WriterWorkerData } from "./writer-protocol.js";

/**
 * The durable writer (docs/audit.md, "Where the writes happen"): a worker thread with its own
 * connection to the store's file does the writes that would otherwise block the request thread
 * for milliseconds — the audit log's group commits (canonical encoding, hash chain, insert, the
 * fsync of the commit), spill files (written and fsynced), last-use batches and behaviour
 * states. The request thread posts a batch (a structured clone) and awaits the answer.
 *
 * SQLite serialises the writers: the worker's `BEGIN IMMEDIATE` and the store's own transactions
 * (key changes with their audit entries) extend one chain, as two processes on one file do.
 *
 * A worker that dies (an `error`, an exit) fails nothing that was acknowledged: an append in
 * flight is looked up by its marker row (written in the batch's own transaction), and resolves
 * if it committed, else rejects (the audit log then spills it); a spill file in flight resolves if
 * its file is complete, else it is written here; other requests reject. The next request starts
 * a new worker. `close()` waits for the requests in flight, then stops the worker.
 */
export interface SqliteWriterOptions {
  /** The database file, already migrated. */
  readonly path: string;
  /** The store's own audit log on its connection: reads, checkpoints, keys, markers after a death. */
  readonly audit: SqliteAudit;
  /** Behaviour states on the store's connection (ids listing). */
  readonly behaviour: SqliteBehaviourStore;
  /** Called when the worker dies (to log it). */
  readonly onDeath?: (err: Error) => void;
  /** The clock of behaviour states' `updated_at`; default Date.now. */
  readonly now?: () => number;
  /** A crash drill for tests: the first worker exits during its nth append (before or after the commit). */
  readonly fault?: WriterFault;
}

type Pending = {
  readonly req: WriterRequest;
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: Error) => void;
};

/** How long `apply` runs for one update before a turn of the event loop (ms). */
const APPLY_SLICE_MS = 0.5;

/** Most last-use times kept for the next batch after a failed one. */
const MAX_UNTOUCHED = 100_000;

/** Entries per message of a large append (writer-protocol.ts `stage`). */
const APPEND_CHUNK = 256;

const nextTurn = (): Promise<void> =>
  new Promise((resolve) => {
    setImmediate(resolve);
  });

/** Longest close() waits for the worker to stop once asked (ms); then it is terminated. */
const CLOSE_TIMEOUT_MS = 5_000;
/** Tries of a behaviour state update whose ids keep being written by another connection. */
const STATE_TRIES = 16;
/** Behaviour states this process wrote last, kept to skip reading them back (WorkerBehaviourStore). */
const KNOWN_STATES_MAX = 4096;

/** Before a retry: 0 to 1, 2, 4 … 32 ms, so that two writers that collided rarely collide again. */
function pause(attempt: number): Promise<void> {
  const ms = Math.random() * Math.min(2 ** attempt, 32);
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The compiled worker beside this file; when this file runs from the TypeScript sources (the
 * tests), the built one (the test setup builds first).
 */
function workerUrl(): URL {
  const here = import.meta.url;
  if (here.endsWith("/src/storage/sqlite/writer.ts")) return new URL(here.replace(/\/src\/storage\/sqlite\/writer\.ts$/, "/dist/storage/sqlite/writer-worker.js"));
  return new URL("./writer-worker.js", here);
}

export class WriterDiedError extends Error {
  override name = "WriterDiedError";
}

export interface WriterStats {
  /** Requests answered by the worker. */
  readonly answered: number;
  /** Times the worker died (and was started again on the next request). */
  readonly deaths: number;
  /** Appends in flight at a death that had committed (resolved from their marker). */
  readonly recovered: number;
}

export class SqliteWriter implements AuditStore {
  readonly spillDir: string | null;
  readonly archiveDir: string | null;
  /** Behaviour states written by the worker (BehaviourStateStore). */
  readonly behaviour: BehaviourStateStore;
  private readonly path: string;
  private readonly audit: SqliteAudit;
  private readonly onDeath: (err: Error) => void;
  private fault: WriterFault | null;
  private readonly writerId = randomUUID();
  private worker: Worker | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private batches = 0;
  /** The marker of the last batch known to have committed (removed by the next batch). */
  private lastMarker: string | null = null;
  private closing: Promise<void> | null = null;
  private counts = { answered: 0, deaths: 0, recovered: 0 };

  constructor(options: SqliteWriterOptions) {
    this.path = options.path;
    this.audit = options.audit;
    this.spillDir = options.audit.spillDir;
    this.archiveDir = options.audit.archiveDir;
    this.onDeath = options.onDeath ?? (() => undefined);
    this.fault = options.fault ?? null;
    this.behaviour = new WorkerBehaviourStore(this, options.behaviour, options.now ?? Date.now);
  }

  get stats(): WriterStats {
    return { ...this.counts };
  }

  /**
   * Starts the worker thread now rather than at the first write: its thread and its connection
   * (the database, WAL and shared-memory files) belong to the running gateway from its start, so
   * the first request never pays for starting them and a process's idle footprint is the same
   * before and after its first traffic.
   */
  open(): void {
    if (this.worker === null && this.closing === null) this.start();
  }

  // --- AuditStore ---------------------------------------------------------------------------------

  async append(entries: readonly AuditFields[], options: AppendOptions = {}): Promise<AppendResult> {
    const batch = ++this.batches;
    // A replay carries its spill id (appended at most once already); a fresh batch gets a marker.
    const marker: BatchMarker | null = options.spillId === undefined ? { id: `batch:${this.writerId}:${batch}`, previous: this.lastMarker } : null;
    // Cloning costs about 2 µs an entry: a large batch crosses in parts, a turn of the event loop
    // between them, so that no single post holds the loop for more than about half a millisecond.
    // The append names how many parts it follows: a worker that lost some (it died meanwhile)
    // refuses the batch, and the log spills it whole.
    let from = 0;
    let parts = 0;
    while (entries.length - from > APPEND_CHUNK) {
      this.request({ id: 0, op: "stage", batch, entries: entries.slice(from, from + APPEND_CHUNK) }).catch(() => undefined);
      from += APPEND_CHUNK;
      parts++;
      await nextTurn();
    }
    const last = from === 0 ? entries : entries.slice(from);
    const { spillDir, ...appendOptions } = options;
    const spill = spillDir === undefined ? null : { dir: spillDir, name: spillName() };
    try {
      const result = await this.request<AppendResult>({ id: 0, op: "append", batch, parts, entries: last, options: appendOptions, marker, spill });
      if (marker !== null) this.lastMarker = marker.id;
      return result;
    } catch (err) {
      // The worker wrote the spill file when the append failed: the log's writeSpill gets its name.
      const spilled = (err as { spilled?: unknown }).spilled;
      if (spill !== null && typeof spilled === "string") this.spilledAlready.set(entries, { dir: spill.dir, file: spilled });
      else if (spill !== null && spillWritten(spill.dir, spill.name)) this.spilledAlready.set(entries, { dir: spill.dir, file: `${spill.name.base}.jsonl` });
      throw err;
    }
  }

  /** Batches whose append failed and whose spill file the worker wrote at once (by the batch's array). */
  private readonly spilledAlready = new WeakMap<readonly AuditFields[], { readonly dir: string; readonly file: string }>();

  // Reads stay on the store's connection (each is one small indexed statement, no lock, no fsync).
  head(): Promise<ChainHead> {
    return this.audit.head();
  }

  hashAt(seq: number): Promise<string | undefined> {
    return this.audit.hashAt(seq);
  }

  // Checkpoints are written by the worker: a write waits for the lock and its commit fsyncs.
  addCheckpoint(checkpoint: SignedCheckpoint): Promise<boolean> {
    return this.request<boolean>({ id: 0, op: "addCheckpoint", checkpoint });
  }

  latestCheckpoint(): Promise<SignedCheckpoint | undefined> {
    return this.audit.latestCheckpoint();
  }

  registerKey(key: AuditKey): Promise<void> {
    return this.request<null>({ id: 0, op: "registerKey", key }).then(() => undefined);
  }

  writeSpill(dir: string, entries: readonly AuditFields[]): Promise<string> {
    const already = this.spilledAlready.get(entries);
    if (already !== undefined && already.dir === dir) {
      this.spilledAlready.delete(entries);
      return Promise.resolve(already.file);
    }
    return this.request<string>({ id: 0, op: "spill", dir, entries, name: spillName() });
  }

  // --- the rest -----------------------------------------------------------------------------------

  /**
   * Last-use times (KeyStore.touch), written by the worker. A batch that could not be written (the
   * lock was busy, the worker died) is kept, bounded, and goes with the next one.
   */
  touch(lastUsed: ReadonlyMap<string, number>): Promise<void> {
    const batch = new Map(this.untouched);
    this.untouched.clear();
    for (const [id, at] of lastUsed) batch.set(id, Math.max(at, batch.get(id) ?? 0));
    if (batch.size === 0) return Promise.resolve();
    return this.request<null>({ id: 0, op: "touch", lastUsed: batch }).then(
      () => undefined,
      (err: unknown) => {
        for (const [id, at] of batch) {
          if (this.untouched.size >= MAX_UNTOUCHED) break;
          this.untouched.set(id, Math.max(at, this.untouched.get(id) ?? 0));
        }
        throw err;
      },
    );
  }

  /** Last-use times whose write failed, for the next batch. */
  private readonly untouched = new Map<string, number>();

  /** An increasing-nonce reservation (ReservationStore.reserve), written by the worker. */
  reserve(keyId: string, ceiling: bigint): Promise<void> {
    return this.request<null>({ id: 0, op: "reserve", keyId, ceiling: ceiling.toString() }).then(() => undefined);
  }

  /** @internal (WorkerBehaviourStore) */
  loadStates(ids: readonly string[]): Promise<[string, Uint8Array, number][]> {
    return this.request({ id: 0, op: "loadStates", ids });
  }

  /** @internal (WorkerBehaviourStore): the ids whose stored row moved on (nothing written for them). */
  writeStates(states: readonly StateWrite[], at: number): Promise<string[]> {
    return this.request({ id: 0, op: "writeStates", states, at });
  }

  /** Stops the worker at once, as a crash would (tests; requests in flight are then recovered or failed). */
  crash(): Promise<void> {
    const worker = this.worker;
    if (worker === null) return Promise.resolve();
    return worker.terminate().then(() => undefined);
  }

  /** Waits for the requests in flight, removes this writer's marker and stops the worker. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    // Requests in flight settle first (answered, or recovered after a death).
    await Promise.allSettled([...this.inflight]);
    const worker = this.worker;
    if (worker === null) return;
    if (this.lastMarker !== null) {
      const marker = this.lastMarker;
      await this.send<null>({ id: 0, op: "unmark", marker }).catch(() => undefined);
    }
    const exited = new Promise<void>((resolve) => {
      worker.once("exit", () => {
        resolve();
      });
    });
    await this.send<null>({ id: 0, op: "close" }).catch(() => undefined);
    const timer = setTimeout(() => {
      void worker.terminate();
    }, CLOSE_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  }

  private readonly inflight = new Set<Promise<unknown>>();

  private request<T>(req: WriterRequest): Promise<T> {
    if (this.closing !== null) return Promise.reject(new Error("the durable writer is closed"));
    return this.send<T>(req);
  }

  private send<T>(req: WriterRequest): Promise<T> {
    const worker = this.worker ?? this.start();
    const id = this.nextId++;
    const message = { ...req, id } as WriterRequest;
    const promise = new Promise<T>((resolve, reject) => {
      this.pending.set(id, { req: message, resolve: resolve as (value: unknown) => void, reject });
    });
    this.inflight.add(promise);
    const forget = (): void => {
      this.inflight.delete(promise);
    };
    promise.then(forget, forget);
    if (this.pending.size === 1) worker.ref();
    try {
      worker.postMessage(message);
    } catch (err) {
      const p = this.pending.get(id);
      this.pending.delete(id);
      p?.reject(err instanceof Error ? err : new Error(String(err)));
    }
    return promise;
  }

  private start(): Worker {
    const data: WriterWorkerData = { path: this.path, spillDir: this.spillDir, fault: this.fault };
    this.fault = null;
    const worker = new Worker(workerUrl(), { workerData: data });
    this.worker = worker;
    worker.unref();
    let failure: Error | null = null;
    worker.on("message", (res: WriterResponse) => {
      const p = this.pending.get(res.id);
      if (p === undefined) return;
      this.pending.delete(res.id);
      if (this.pending.size === 0) worker.unref();
      this.counts.answered++;
      if (res.ok) p.resolve(res.value);
      else p.reject(Object.assign(new Error(res.error), res.code === null ? {} : { code: res.code }, res.spilled === undefined ? {} : { spilled: res.spilled }));
    });
    worker.on("error", (err) => {
      failure = err;
    });
    worker.on("exit", (code) => {
      if (this.worker === worker) this.worker = null;
      const orphans = [...this.pending.values()];
      this.pending.clear();
      if (orphans.length === 0 && (this.closing !== null || code === 0)) return;
      this.counts.deaths++;
      const err = new WriterDiedError(`the durable writer's thread stopped (exit code ${code})${failure === null ? "" : `: ${failure.message}`}`);
      this.onDeath(err);
      for (const p of orphans) void this.recover(p, err);
    });
    return worker;
  }

  /** A request the dead worker may or may not have carried out: find out, else fail it. */
  private async recover(p: Pending, err: Error): Promise<void> {
    try {
      const req = p.req;
      if (req.op === "append" && req.marker !== null) {
        const marked = this.audit.marked(req.marker.id);
        if (marked !== undefined) {
          const seq = marked.first + marked.entries - 1;
          const hash = await this.audit.hashAt(seq);
          if (hash !== undefined) {
            this.counts.recovered++;
            this.lastMarker = req.marker.id;
            p.resolve({ first: marked.first, head: { seq, hash }, duplicate: false } satisfies AppendResult);
            return;
          }
        }
      } else if (req.op === "spill") {
        p.resolve(this.spillHere(req.dir, req.entries, req.name));
        return;
      }
      p.reject(err);
    } catch (e) {
      p.reject(e instanceof Error ? e : err);
    }
  }

  /** A spill file the dead worker may have written: its name if complete, else written here. */
  private spillHere(dir: string, entries: readonly AuditFields[], name: SpillName): string {
    if (spillWritten(dir, name)) return `${name.base}.jsonl`;
    return new SpillDir(dir).write(entries, name);
  }
}

/**
 * Behaviour states written by the durable writer's worker, by compare-and-set: the states are
 * read with their versions, `apply` runs here, and each new state is written only if its row did
 * not move meanwhile (its version and bytes are still those it was computed from: another process,
 * or the store's own connection, may have written it); the ids that moved are read and applied
 * again, up to a bound (then BEHAVIOUR_STATE_CONFLICT). A failure of `apply` writes nothing.
 *
 * The states this process wrote last are kept (up to KNOWN_STATES_MAX) and not read back: the
 * behaviour stage updates the same keys and accounts batch after batch, and the compare-and-set
 * finds out when another writer moved one on. That halves the round trips to the worker.
 */
export class WorkerBehaviourStore implements BehaviourStateStore {
  readonly kind = "sqlite";

  constructor(
    private readonly writer: SqliteWriter,
    private readonly local: SqliteBehaviourStore,
    private readonly now: () => number,
  ) {}

  async load(ids: readonly string[]): Promise<Map<string, Uint8Array>> {
    const wanted = distinctIds(ids);
    const out = new Map<string, Uint8Array>();
    if (wanted.length === 0) return out;
    for (const [id, state] of await this.writer.loadStates(wanted)) out.set(id, state);
    return out;
  }

  /** This store's updates, one after another: they collide only with other connections'. */
  private queue: Promise<void> = Promise.resolve();
  /** The bytes and version of each state as this store last wrote it (least recently written first). */
  private readonly known = new Map<string, readonly [Uint8Array, number]>();

  update(ids: readonly string[], apply: (id: string, current: Uint8Array | null) => Uint8Array): Promise<void> {
    let wanted: string[];
    try {
      wanted = distinctIds(ids);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    const run = this.queue.then(() => this.updateNow(wanted, apply));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async updateNow(ids: readonly string[], apply: (id: string, current: Uint8Array | null) => Uint8Array): Promise<void> {
    let todo = ids;
    for (let attempt = 0; todo.length > 0; attempt++) {
      if (attempt > 0) await pause(attempt);
      if (attempt >= STATE_TRIES) {
        throw new BehaviourStateError("BEHAVIOUR_STATE_CONFLICT", `behaviour state: ${todo.length} state(s) changed by another writer at each of ${STATE_TRIES} tries (${todo.slice(0, 3).join(", ")}${todo.length > 3 ? ", …" : ""})`, todo);
      }
      const current = new Map<string, readonly [Uint8Array, number]>();
      const unknown: string[] = [];
      for (const id of todo) {
        const known = attempt === 0 ? this.known.get(id) : undefined;
        if (known === undefined) unknown.push(id);
        else current.set(id, known);
      }
      if (unknown.length > 0) for (const [id, state, version] of await this.writer.loadStates(unknown)) current.set(id, [state, version]);
      const next: StateWrite[] = [];
      let since = performance.now();
      for (const id of todo) {
        // The model runs here, on the request thread: a turn of the event loop every half millisecond.
        if (performance.now() - since > APPLY_SLICE_MS) {
          await nextTurn();
          since = performance.now();
        }
        const c = current.get(id);
        // A copy: `apply` may decode into views of its input, and the kept bytes must stay as written.
        next.push([id, checkedState(id, apply(id, c === undefined ? null : c[0].slice())), c === undefined ? 0 : c[1], c === undefined ? null : c[0]]);
      }
      let moved: string[];
      try {
        moved = await this.writer.writeStates(next, this.now());
      } catch (err) {
        // Written or not: read them again next time.
        for (const [id] of next) this.known.delete(id);
        throw err;
      }
      const movedOn = new Set(moved);
      for (const [id, state, version] of next) {
        this.known.delete(id);
        if (!movedOn.has(id)) this.known.set(id, [state, version + 1]);
      }
      while (this.known.size > KNOWN_STATES_MAX) this.known.delete(this.known.keys().next().value as string);
      todo = moved;
    }
  }

  remove(ids: readonly string[]): Promise<void> {
    for (const id of ids) this.known.delete(id);
    return this.local.remove(ids);
  }

  ids(after: string | null, limit: number): Promise<string[]> {
    try {
      checkPage(after, limit);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    return this.local.ids(after, limit);
  }
}
