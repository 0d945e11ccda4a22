import type { SigningKey, SigningKeyProvider } from "../contract/signing.js";
import type { Denial } from "../errors/catalogue.js";
import { type Logger, silentLogger } from "../log/logger.js";
import type { RequestContext } from "../contract/request.js";
import { type SignedCheckpoint, checkpointMessage } from "./chain.js";
import { type EarlyRequest, decisionFields, refusalFields } from "./entries.js";
import type { AuditFields, AuditSurface } from "./events.js";
import { SpillDir } from "./spill.js";
import type { AuditStore, ChainHead } from "./store.js";

/** Which request decisions are recorded. */
export type RequestAuditMode = "all" | "deny" | "none";
export const REQUEST_AUDIT_MODES: readonly RequestAuditMode[] = ["all", "deny", "none"];

/** The tunable part of the audit log (the config file's `audit` section). */
export interface AuditSettings {
  /** Which request decisions to record. Default "all". */
  readonly requests?: RequestAuditMode;
  /** Longest an entry waits in memory before its group commit starts (ms). Default 50. */
  readonly batchWindowMs?: number;
  /** A group commit starts as soon as this many entries wait; no transaction holds more. Default 2000. */
  readonly batchEntries?: number;
  /**
   * Most entries held in memory. Reached only while neither the store nor the spill directory can
   * take a batch; further entries are then dropped and counted (never blocking a request).
   * Default 100000.
   */
  readonly bufferEntries?: number;
  /** How often the head is signed (ms; 0: only at shutdown). Default 10000. */
  readonly checkpointIntervalMs?: number;
  /** Where batches go while the store cannot take them (null: nowhere). Default: the store's. */
  readonly spillDir?: string | null;
  /** How long a group commit waits for the database's write lock before spilling (ms). Default 1000. */
  readonly lockTimeoutMs?: number;
}

/** Timers, injectable so that tests drive the window themselves. */
export interface AuditTimers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

const REAL_TIMERS: AuditTimers = {
  set(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clear(handle) {
    clearTimeout(handle as NodeJS.Timeout);
  },
};

/** What one group commit did; passed to `onCommit` once the entries are acknowledged. */
export interface CommitInfo {
  readonly entries: number;
  /** Where they went: the store (with their seq range) or a spill file. */
  readonly to: "store" | "spill";
  readonly first: number | null;
  readonly last: number | null;
  readonly spillFile: string | null;
  /** The request ids among them (request decisions). */
  readonly requestIds: readonly string[];
}

export interface AuditLogOptions extends AuditSettings {
  readonly store: AuditStore;
  /** Signs checkpoints with its "audit-checkpoint" key; null: no checkpoints. */
  readonly signer: SigningKeyProvider | null;
  readonly logger?: Logger;
  readonly now?: () => number;
  readonly timers?: AuditTimers;
  /** The pipeline's stage names (to label recorded timings). */
  readonly stageNames?: readonly string[];
  /** Called after every acknowledged batch (metrics, tests). */
  readonly onCommit?: (info: CommitInfo) => void;
  /** Told of every append to the store (a group commit or a spill replay): its duration (ms) and whether it failed (the metrics). */
  readonly onStoreCall?: (ms: number, failed: boolean) => void;
}

export interface AuditStats {
  /** Entries accepted by record(). */
  readonly recorded: number;
  /** Acknowledged by the store. */
  readonly committed: number;
  /** Acknowledged by a spill file. */
  readonly spilled: number;
  /** Spilled entries since appended to the store. */
  readonly replayed: number;
  /** Lost: the buffer was full, or the log closed with entries nothing could take. */
  readonly dropped: number;
  readonly checkpoints: number;
  /** Waiting in memory. */
  readonly buffered: number;
  /** A checkpoint was refused because the stored chain changed under this process. */
  readonly tampered: boolean;
  /**
   * When the oldest entry not yet acknowledged (buffered, or in a commit under way) was decided
   * (epoch ms), or null when every entry is acknowledged: the log's lag (metrics, readiness).
   */
  readonly oldestPendingAt: number | null;
}

/** What the gateway, the admin API and the embedded middleware call after each decision. */
export interface DecisionRecorder {
  /** Records the pipeline's decision for this request. Never throws; costs one buffer push. */
  decision(ctx: RequestContext, surface: AuditSurface): void;
  /** Records a refusal made before the pipeline could run (a body over the limit…). */
  refused(denial: Denial, req: EarlyRequest, surface: AuditSurface): void;
}

function positive(name: string, value: number | undefined, fallback: number, min: number, max: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < min || v > max) throw new TypeError(`audit.${name} must be an integer from ${min} to ${max}`);
  return v;
}

const yieldTurn = (): Promise<void> =>
  new Promise((resolve) => {
    setImmediate(resolve);
  });

const MIN_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 30_000;
const WARN_EVERY_MS = 30_000;

/**
 * The audit log's writer. Two durability classes (docs/audit.md):
 *
 * - **changes** are not written here: the store appends their entries inside the change's own
 *   transaction (SqliteStore does it for every KeyChange). Acknowledged = the change committed.
 * - **decisions** (`record`, `decision`, `refused`) are buffered and group-committed: a commit
 *   starts `batchWindowMs` after the first waiting entry, or at once when `batchEntries` wait.
 *   Acknowledged = committed to the store, or, while the store cannot take them, written to a
 *   spill file (fsynced), which is replayed into the store, in order and exactly once, as soon as
 *   it answers again (also by the next process to open the store). `close()` flushes everything.
 *   Entries waiting in memory are not acknowledged: a crash loses at most one window of them.
 *
 * Checkpoints sign the chain's head every `checkpointIntervalMs` and at close. Before signing,
 * the writer checks that the previous checkpoint and its own last entry still hash as they did:
 * a chain rewritten under it is reported (logged, `stats.tampered`) and never signed.
 */
export class AuditLog implements DecisionRecorder {
  private readonly store: AuditStore;
  private readonly signer: SigningKeyProvider | null;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly timers: AuditTimers;
  private readonly stageNames: readonly string[];
  private readonly onCommit: ((info: CommitInfo) => void) | null;
  private readonly onStoreCall: ((ms: number, failed: boolean) => void) | null;
  private readonly requests: RequestAuditMode;
  private readonly windowMs: number;
  private readonly batchEntries: number;
  private readonly bufferEntries: number;
  private readonly checkpointIntervalMs: number;
  private readonly lockTimeoutMs: number;
  private readonly spill: SpillDir | null;

  private buffer: AuditFields[] = [];
  private commitTimer: unknown = null;
  private commitSoon = false;
  private checkpointTimer: unknown = null;
  private running: Promise<void> = Promise.resolve();
  private spillPending: boolean;
  private storeDownUntil = 0;
  /** The store's owner says it is out (`storeUnavailable`): no append is tried until it says otherwise. */
  private storeOut = false;
  private backoffMs = MIN_BACKOFF_MS;
  private lastWarning = new Map<string, number>();
  private lastWritten: ChainHead | null = null;
  private signingKey: Promise<SigningKey> | null = null;
  private closing: Promise<void> | null = null;
  private counts = { recorded: 0, committed: 0, spilled: 0, replayed: 0, dropped: 0, checkpoints: 0 };
  private tamperedFlag = false;
  /** The decision time of the first entry of the batch being committed, or null (AuditStats.oldestPendingAt). */
  private committingAt: number | null = null;

  constructor(options: AuditLogOptions) {
    this.store = options.store;
    this.signer = options.signer;
    this.logger = options.logger ?? silentLogger();
    this.now = options.now ?? Date.now;
    this.timers = options.timers ?? REAL_TIMERS;
    this.stageNames = options.stageNames ?? [];
    this.onCommit = options.onCommit ?? null;
    this.onStoreCall = options.onStoreCall ?? null;
    const requests = options.requests ?? "all";
    if (!REQUEST_AUDIT_MODES.includes(requests)) throw new TypeError(`audit.requests must be one of ${REQUEST_AUDIT_MODES.join(", ")}`);
    this.requests = requests;
    this.windowMs = positive("batchWindowMs", options.batchWindowMs, 50, 1, 60_000);
    this.bufferEntries = positive("bufferEntries", options.bufferEntries, 100_000, 1, 10_000_000);
    this.batchEntries = positive("batchEntries", options.batchEntries, Math.min(2000, this.bufferEntries), 1, this.bufferEntries);
    this.checkpointIntervalMs = positive("checkpointIntervalMs", options.checkpointIntervalMs, 10_000, 0, 86_400_000);
    this.lockTimeoutMs = positive("lockTimeoutMs", options.lockTimeoutMs, 1000, 0, 60_000);
    const spillDir = options.spillDir === undefined ? this.store.spillDir : options.spillDir;
    this.spill = spillDir === null ? null : new SpillDir(spillDir);
    // Spill files left by an earlier process (or this one's store outage) are replayed first.
    this.spillPending = this.spill !== null && this.safeList().length > 0;
    if (this.spillPending) this.schedule(0);
    if (this.checkpointIntervalMs > 0 && this.signer !== null) this.armCheckpoints();
  }

  get stats(): AuditStats {
    const first = this.buffer[0];
    const oldest = this.committingAt ?? (first === undefined ? null : first.at);
    return { ...this.counts, buffered: this.buffer.length, tampered: this.tamperedFlag, oldestPendingAt: oldest };
  }

  decision(ctx: RequestContext, surface: AuditSurface): void {
    if (this.requests === "none" || (this.requests === "deny" && ctx.denial === null)) return;
    try {
      this.record(decisionFields(ctx, surface, this.stageNames));
    } catch (err) {
      // The request path must never fail for the audit log; a bug here is counted and logged.
      this.lost(err);
    }
  }

  refused(denial: Denial, req: EarlyRequest, surface: AuditSurface): void {
    if (this.requests === "none") return;
    try {
      this.record(refusalFields(denial, req, surface, this.now()));
    } catch (err) {
      this.lost(err);
    }
  }

  private lost(err: unknown): void {
    this.counts.dropped += 1;
    this.warn("build", { err: err instanceof Error ? err.message : String(err) }, "audit entry could not be built; dropped");
  }

  /** Buffers a decision-class entry for the next group commit. Never throws, never blocks. */
  record(fields: AuditFields): void {
    if (this.closing !== null || this.buffer.length >= this.bufferEntries) {
      this.counts.dropped += 1;
      this.warn("dropped", { requestId: fields.requestId, buffered: this.buffer.length, closed: this.closing !== null }, "audit entry dropped: the buffer is full (store and spill unavailable) or the log is closed");
      return;
    }
    this.counts.recorded += 1;
    this.buffer.push(fields);
    if (this.buffer.length >= this.batchEntries) this.schedule(0);
    else if (this.buffer.length === 1) this.schedule(this.windowMs);
  }

  /**
   * Commits (or spills) everything recorded so far, replaying spill files first. Resolves once
   * those entries are acknowledged, or once the attempt failed (they then stay buffered).
   */
  flush(): Promise<void> {
    return this.enqueue(() => this.commitAll(false, true));
  }

  /** Signs the chain's current head, if it moved since the latest checkpoint (not while the store is known to be out). */
  checkpoint(): Promise<SignedCheckpoint | null> {
    let result: SignedCheckpoint | null = null;
    return this.enqueue(async () => {
      if (this.storeOut) return;
      result = await this.signHead();
    }).then(() => result);
  }

  /**
   * The store is known to be out (PostgreSQL lost, docs/failures.md): batches go to the spill
   * directory without trying the store (an append to a server that does not answer would hold
   * them for its timeout), and no checkpoint is signed, until `storeAvailable`.
   */
  storeUnavailable(): void {
    this.storeOut = true;
  }

  /**
   * The store answers again: the spill files are replayed now, in order and once each, rather than
   * after the backoff of the failures seen meanwhile.
   */
  storeAvailable(): void {
    this.storeOut = false;
    this.storeDownUntil = 0;
    this.backoffMs = MIN_BACKOFF_MS;
    if (this.closing === null && (this.spillPending || this.buffer.length > 0)) this.schedule(0);
  }

  /** Flushes, signs a last checkpoint and stops. Entries recorded afterwards are dropped. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    if (this.commitTimer !== null) this.timers.clear(this.commitTimer);
    if (this.checkpointTimer !== null) this.timers.clear(this.checkpointTimer);
    this.commitTimer = null;
    this.checkpointTimer = null;
    await this.enqueue(async () => {
      await this.commitAll(true, true);
      if (this.buffer.length > 0) {
        this.counts.dropped += this.buffer.length;
        this.logger.error({ entries: this.buffer.length }, "audit entries lost at shutdown: neither the store nor the spill directory could take them");
        this.buffer = [];
      }
      try {
        await this.signHead();
      } catch (err) {
        this.logger.warn({ err }, "audit checkpoint at shutdown failed");
      }
    });
  }

  // --- scheduling -------------------------------------------------------------------------------

  /** Runs `task` after everything already queued (one commit or checkpoint at a time). */
  private enqueue(task: () => Promise<void>): Promise<void> {
    const next = this.running.then(task);
    this.running = next.catch((err: unknown) => {
      this.logger.error({ err }, "audit log task failed");
    });
    return this.running;
  }

  private schedule(ms: number): void {
    if (this.closing !== null) return;
    if (this.commitTimer !== null) {
      if (ms > 0 || this.commitSoon) return;
      this.timers.clear(this.commitTimer);
    }
    this.commitSoon = ms === 0;
    this.commitTimer = this.timers.set(() => {
      this.commitTimer = null;
      this.commitSoon = false;
      void this.enqueue(() => this.commitAll(false, false));
    }, ms);
  }

  private armCheckpoints(): void {
    this.checkpointTimer = this.timers.set(() => {
      this.checkpointTimer = null;
      void this.checkpoint().finally(() => {
        if (this.closing === null) this.armCheckpoints();
      });
    }, this.checkpointIntervalMs);
  }

  // --- group commit -----------------------------------------------------------------------------

  /**
   * Commits the waiting entries. `all` (flush, close): until none waits. Otherwise (the window's
   * timer): what waits when it starts, and then only full batches — entries recorded while a commit runs
   * wait for their own window (record() armed it), so each transaction carries a window's worth
   * of entries rather than whatever arrived during the previous commit's fsync (at 10,000
   * requests/s that was about 30 entries a commit, and about twice the CPU per entry).
   */
  private async commitAll(force: boolean, all: boolean): Promise<void> {
    const storeUsable = (): boolean => force || (!this.storeOut && this.now() >= this.storeDownUntil);
    // Spilled batches go first, so the chain keeps (about) the order things happened in.
    if (this.spillPending && storeUsable()) await this.replay();
    // The entries this commit is for; later ones only as full batches.
    let due = all ? Number.POSITIVE_INFINITY : this.buffer.length;
    let first = true;
    while (this.buffer.length > 0 && (due > 0 || this.buffer.length >= this.batchEntries)) {
      // One transaction per `batchEntries` at most, and a turn of the event loop between them:
      // requests keep being served while a large backlog is written.
      if (!first) await yieldTurn();
      first = false;
      const batch = this.buffer.length <= this.batchEntries ? this.buffer : this.buffer.splice(0, this.batchEntries);
      if (batch === this.buffer) this.buffer = [];
      due -= batch.length;
      if (!(await this.commitBatch(batch, !this.spillPending && storeUsable()))) {
        // Nothing could take it: back at the front, within the bound, and tried again later.
        const kept = batch.concat(this.buffer);
        const excess = kept.length - this.bufferEntries;
        if (excess > 0) {
          kept.length = this.bufferEntries;
          this.counts.dropped += excess;
        }
        this.buffer = kept;
        break;
      }
    }
    // While the store is known to be out, spill files wait for `storeAvailable` to schedule their replay.
    if (this.closing === null && (this.buffer.length > 0 || (this.spillPending && !this.storeOut))) {
      this.schedule(Math.max(this.windowMs, this.storeDownUntil - this.now()));
    }
  }

  /** One batch to the store (when `tryStore`), else to a spill file. True once acknowledged. */
  private async commitBatch(batch: AuditFields[], tryStore: boolean): Promise<boolean> {
    this.committingAt = batch[0]?.at ?? null;
    try {
      return await this.commitOrSpill(batch, tryStore);
    } finally {
      this.committingAt = null;
    }
  }

  private async commitOrSpill(batch: AuditFields[], tryStore: boolean): Promise<boolean> {
    if (tryStore) {
      const started = performance.now();
      try {
        const result = await this.store.append(batch, this.spill === null || this.store.writeSpill === undefined ? { lockTimeoutMs: this.lockTimeoutMs } : { lockTimeoutMs: this.lockTimeoutMs, spillDir: this.spill.dir });
        this.onStoreCall?.(performance.now() - started, false);
        this.storeUp();
        this.lastWritten = result.head;
        this.counts.committed += batch.length;
        this.acknowledged(batch, "store", result.first, result.head.seq, null);
        return true;
      } catch (err) {
        this.onStoreCall?.(performance.now() - started, true);
        this.storeDown(err);
      }
    }
    if (this.spill === null) return false;
    try {
      // A store that writes off the request thread writes the file too (AuditStore.writeSpill).
      const file = this.store.writeSpill === undefined ? this.spill.write(batch) : await this.store.writeSpill(this.spill.dir, batch);
      this.spillPending = true;
      this.counts.spilled += batch.length;
      this.acknowledged(batch, "spill", null, null, file);
      return true;
    } catch (err) {
      this.warn("spill", { err: err instanceof Error ? err.message : String(err) }, "audit spill failed: entries stay in memory until the store or the spill directory can take them");
      return false;
    }
  }

  /** Appends every spill file to the store, oldest first; stops at the first failure. */
  private async replay(): Promise<void> {
    const spill = this.spill;
    if (spill === null) {
      this.spillPending = false;
      return;
    }
    for (const name of spill.list(this.now())) {
      const file = spill.read(name);
      if (file === "missing") continue;
      if (file === "corrupt") {
        this.logger.error({ file: name, dir: spill.dir }, "audit spill file is not readable; set aside as .corrupt");
        continue;
      }
      try {
        const result = await this.store.append(file.entries, { spillId: file.id, lockTimeoutMs: this.lockTimeoutMs });
        if (!result.duplicate) {
          this.counts.replayed += file.entries.length;
          this.lastWritten = result.head;
          this.logger.info({ file: name, entries: file.entries.length, first: result.first, last: result.head.seq }, "audit spill file replayed");
        }
        spill.remove(name);
        this.storeUp();
      } catch (err) {
        this.storeDown(err);
        return;
      }
    }
    this.spillPending = false;
  }

  private acknowledged(batch: readonly AuditFields[], to: "store" | "spill", first: number | null, last: number | null, spillFile: string | null): void {
    const onCommit = this.onCommit;
    if (onCommit === null) return;
    const requestIds: string[] = [];
    for (const f of batch) if (f.requestId !== undefined) requestIds.push(f.requestId);
    try {
      onCommit({ entries: batch.length, to, first, last, spillFile, requestIds });
    } catch {
      // A listener's fault is not the log's.
    }
  }

  private storeUp(): void {
    if (this.storeDownUntil !== 0) this.logger.info("audit store answers again");
    this.storeDownUntil = 0;
    this.backoffMs = MIN_BACKOFF_MS;
  }

  private storeDown(err: unknown): void {
    this.storeDownUntil = this.now() + this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, MAX_BACKOFF_MS);
    this.warn("store", { err: err instanceof Error ? err.message : String(err), spill: this.spill?.dir ?? null }, "audit store unavailable: batches spill to local files until it answers");
  }

  private warn(kind: string, fields: Record<string, unknown>, message: string): void {
    const now = Date.now();
    if (now - (this.lastWarning.get(kind) ?? 0) < WARN_EVERY_MS) return;
    this.lastWarning.set(kind, now);
    this.logger.warn(fields, message);
  }

  private safeList(): string[] {
    try {
      return this.spill?.list(this.now()) ?? [];
    } catch {
      return [];
    }
  }

  // --- checkpoints ------------------------------------------------------------------------------

  private key(): Promise<SigningKey> {
    const signer = this.signer;
    if (signer === null) return Promise.reject(new Error("no signer"));
    this.signingKey ??= (async () => {
      const key = await signer.open("audit-checkpoint");
      await this.store.registerKey({
        kid: key.kid,
        algorithm: key.algorithm,
        publicKey: key.publicKey.export({ type: "spki", format: "pem" }).toString(),
        provider: key.provider,
        createdAt: this.now(),
      });
      return key;
    })();
    this.signingKey.catch(() => {
      this.signingKey = null;
    });
    return this.signingKey;
  }

  private async signHead(): Promise<SignedCheckpoint | null> {
    if (this.signer === null) return null;
    const head = await this.store.head();
    const latest = await this.store.latestCheckpoint();
    if (head.seq === 0 || (latest !== undefined && latest.seq >= head.seq)) return null;
    if (!(await this.unchanged(latest))) return null;
    const key = await this.key();
    const facts = { seq: head.seq, hash: head.hash, at: this.now(), kid: key.kid };
    const signature = await key.sign(checkpointMessage(facts));
    const checkpoint: SignedCheckpoint = { ...facts, signature };
    if (await this.store.addCheckpoint(checkpoint)) {
      this.counts.checkpoints += 1;
      this.logger.info({ audit: { seq: facts.seq, hash: facts.hash, at: facts.at, kid: facts.kid, sig: signature.toString("base64") } }, "audit checkpoint");
    }
    return checkpoint;
  }

  /** The previous checkpoint and this process's last entry still hash as they did. */
  private async unchanged(latest: SignedCheckpoint | undefined): Promise<boolean> {
    const known: ChainHead[] = [];
    if (latest !== undefined) known.push(latest);
    if (this.lastWritten !== null) known.push(this.lastWritten);
    for (const k of known) {
      const stored = await this.store.hashAt(k.seq);
      // Undefined: archived since (the archive checked it).
      if (stored !== undefined && stored !== k.hash) {
        this.tamperedFlag = true;
        this.logger.error({ seq: k.seq, expected: k.hash, stored }, "audit log altered: the stored chain no longer matches what was written or signed; no checkpoint signed (run portcullis audit verify)");
        return false;
      }
    }
    return true;
  }
}
