import cluster, { type Worker } from "node:cluster";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { type ConfigSource, type PortcullisConfig, ConfigError } from "../config/config.js";
import { checkSecretsOpen, openDataDir, readSecretFile } from "../core/data-dir.js";
import { OperatorError, isCatalogueCode, errorCatalogue, type OperatorCode } from "../errors/catalogue.js";
import type { Logger } from "../log/logger.js";
import { TlsCredentials } from "../gateway/tls.js";

/**
 * `portcullis start --workers N` (docs/processes.md): a primary process and N worker processes,
 * each running the same configured Portcullis (runtime.ts startPortcullis) on the same gateway and
 * admin ports (node:cluster shares the listening sockets).
 *
 * The primary serves nothing itself. It opens the data directory once before any worker starts
 * (migrations, custody, the gateway's signing keys: no two workers race on them), forks the
 * workers, hands each the config file's text, and waits until every one is serving; a worker that
 * exits before that fails the whole start (exit status 1, its reason, no restart loop). Once
 * started, a worker that exits is replaced after a backoff (250 ms, doubling up to 30 s for one
 * that keeps failing; back to 250 ms after a minute of service), and SIGTERM / SIGINT drain
 * every worker (`stop`).
 *
 * Hot state must be shared by the processes: more than one worker needs `hot.backend: "redis"`
 * (WORKERS_NEED_SHARED_HOT_STATE). Everything else a worker keeps is either in the shared data
 * directory (keys, policy, audit chain, held operations) or a cache of it kept current by the
 * change bus and the store's change feed.
 */

/** What a worker says to the primary. */
export type WorkerMessage =
  | { readonly portcullis: "config?" }
  | { readonly portcullis: "ready"; readonly gateway: string; readonly admin: string | null }
  | { readonly portcullis: "failed"; readonly code: string; readonly message: string };

/** What the primary says to a worker. */
export type PrimaryMessage = ({ readonly portcullis: "config" } & ConfigSource) | { readonly portcullis: "drain" };

/** The worker processes' entry point. */
const WORKER_ENTRY = fileURLToPath(new URL("./worker-main.js", import.meta.url));

/**
 * SIGHUP reloads the TLS certificates and keys (docs/tls.md), in the single process, the primary
 * (which passes it on) and every worker. Its default action ends the process, and a reload signal
 * comes from automation at any time (a certificate renewal hook): it is handled from the moment
 * the process starts, before it serves. One that arrives while starting is remembered, and `ready`
 * acts on it once the process serves (its files may have been read before they changed).
 */
export function onHangup(): { ready(reload: () => void): void } {
  let reloadNow: (() => void) | null = null;
  let asked = false;
  process.on("SIGHUP", () => {
    if (reloadNow === null) asked = true;
    else reloadNow();
  });
  return {
    ready(reload) {
      reloadNow = reload;
      if (asked) reload();
      asked = false;
    },
  };
}

/** Restart backoff: the first delay, the longest, and how long a worker must serve for its slot's backoff to start again. */
export interface RestartBackoff {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly stableMs: number;
}

const DEFAULT_BACKOFF: RestartBackoff = { initialMs: 250, maxMs: 30_000, stableMs: 60_000 };

export interface WorkersOptions {
  readonly config: PortcullisConfig;
  /** The config file's text: every worker parses the same text the primary validated (an edit of the file meanwhile changes nothing). */
  readonly source: ConfigSource;
  readonly workers: number;
  readonly logger: Logger;
  /** How long `stop` lets each worker drain its requests before it is killed (default: `gateway.drainDelay` + `gateway.drainTimeout`, as `portcullis start`). */
  readonly drainMs?: number;
  readonly backoff?: RestartBackoff;
}

export interface WorkerPool {
  readonly gateway: string;
  readonly admin: string | null;
  readonly workers: number;
  /** The workers' pids now (a replaced worker has a new one). */
  pids(): number[];
  /**
   * Drains every worker (each closes its servers, finishes what is in flight, flushes its audit
   * entries) and resolves with the exit status for the primary: 0 when every worker exited 0.
   */
  stop(): Promise<number>;
}

/** The number of workers a setting asks for: "auto" is one per core (os.availableParallelism()). */
export function workerCount(setting: number | "auto"): number {
  return setting === "auto" ? availableParallelism() : setting;
}

/**
 * Why N > 1 processes cannot share this config: hot state in process memory would let a nonce
 * used at one worker be replayed at another, and would multiply every limit by N. Fail closed.
 */
export function checkWorkersConfig(config: PortcullisConfig, workers: number): void {
  if (workers > 1 && config.hot.backend !== "redis") {
    throw new OperatorError(
      "WORKERS_NEED_SHARED_HOT_STATE",
      `${workers} workers need hot state shared by every process: set "hot": { "backend": "redis", "url": … } (with hot.backend "memory", a nonce used at one worker could be replayed at another, and every limit would count per process); or run one worker`,
    );
  }
}

/**
 * When to replace a worker that exited: `failures` exits in a row so far for its slot, whether it
 * had been serving and for how long. A worker that served `stableMs` starts the backoff again
 * (the first replacement after `initialMs`); each further exit in a row doubles it, up to `maxMs`.
 */
export function restartDelay(backoff: RestartBackoff, failures: number, wasReady: boolean, ranMs: number): { failures: number; delayMs: number } {
  const next = wasReady && ranMs >= backoff.stableMs ? 1 : failures + 1;
  return { failures: next, delayMs: Math.min(backoff.maxMs, backoff.initialMs * 2 ** (next - 1)) };
}

interface Slot {
  readonly index: number;
  worker: Worker | null;
  ready: boolean;
  startedAt: number;
  failures: number;
  timer: NodeJS.Timeout | null;
  /** What the worker reported before it exited, if it failed to start. */
  failure: { code: string; message: string } | null;
}

function isWorkerMessage(m: unknown): m is WorkerMessage {
  if (typeof m !== "object" || m === null) return false;
  const { portcullis, gateway, admin, code, message } = m as Record<string, unknown>;
  if (portcullis === "config?") return true;
  if (portcullis === "ready") return typeof gateway === "string" && (admin === null || typeof admin === "string");
  return portcullis === "failed" && typeof code === "string" && typeof message === "string";
}

/** The error `portcullis start` reports when a worker could not start: its own operator code, else WORKER_START_FAILED. */
function startFailure(slot: Slot, pid: number | undefined, code: number | null, signal: string | null): OperatorError {
  const who = `worker ${slot.index}${pid === undefined ? "" : ` (pid ${pid})`}`;
  const failure = slot.failure;
  if (failure !== null) {
    const operatorCode = isCatalogueCode(failure.code) && errorCatalogue[failure.code].group === "operator" ? (failure.code as OperatorCode) : null;
    if (operatorCode !== null) return new OperatorError(operatorCode, `${who} could not start: ${failure.message}`);
    return new OperatorError("WORKER_START_FAILED", `${who} could not start: ${failure.code}: ${failure.message}`);
  }
  const how = signal !== null ? `was killed by ${signal}` : `exited with status ${String(code)}`;
  return new OperatorError("WORKER_START_FAILED", `${who} ${how} before it was serving`);
}

/**
 * Starts the primary's pool: checks the config, opens (and migrates) the data directory once,
 * forks the workers and resolves when every one is serving. Rejects, with every worker stopped,
 * when one cannot start.
 */
export async function startWorkers(options: WorkersOptions): Promise<WorkerPool> {
  const { config, source, logger } = options;
  const count = options.workers;
  if (!Number.isSafeInteger(count) || count < 1) throw new TypeError("workers must be a positive integer");
  if (!cluster.isPrimary) throw new TypeError("startWorkers runs in the primary process");
  checkWorkersConfig(config, count);
  const backoff = options.backoff ?? DEFAULT_BACKOFF;
  // The workers' drain: the delay with probes at 503, then the time in-flight requests have (config.gateway).
  const drainMs = options.drainMs ?? options.config.gateway.drainDelayMs + options.config.gateway.drainTimeoutMs;

  // The certificates and keys before anything else (docs/tls.md): a bad one stops the start here.
  if (config.gateway.tls !== null) new TlsCredentials(config.gateway.tls, "gateway.tls");
  if (config.admin.tls !== null && config.admin.enabled) new TlsCredentials(config.admin.tls, "admin.tls");
  // The data directory once, here: migrations, custody and the gateway's signing keys are done
  // before any worker opens it. Its problems (and the identity secret's) are reported as they are.
  const data = await openDataDir(config.dataDir, { custody: config.custody, store: config.store, pollIntervalMs: config.store.pollIntervalMs });
  try {
    if (config.environment !== null && config.environment !== data.environment) {
      throw new ConfigError(`config.environment is ${config.environment} but ${config.dataDir} holds ${data.environment} keys`);
    }
    await checkSecretsOpen(data, config.dataDir);
    readSecretFile(config.gateway.identitySecretFile);
    // The workers read the metrics token too: a problem with it stops the start here, once.
    const metrics = config.admin.metrics;
    if (config.admin.enabled && metrics.enabled && metrics.tokenFile !== null) readSecretFile(metrics.tokenFile, "admin.metrics.tokenFile");
  } finally {
    await data.close();
  }

  // Round robin: the primary accepts each connection and hands it to the next worker (see
  // docs/processes.md for the measurement). NODE_CLUSTER_SCHED_POLICY=none, when set, lets the
  // kernel choose instead.
  if (process.env.NODE_CLUSTER_SCHED_POLICY === undefined) cluster.schedulingPolicy = cluster.SCHED_RR;
  cluster.setupPrimary({ exec: WORKER_ENTRY, args: [], silent: false });

  const slots: Slot[] = Array.from({ length: count }, (_, i) => ({ index: i + 1, worker: null, ready: false, startedAt: 0, failures: 0, timer: null, failure: null }));
  let started = false;
  let stopping = false;
  // Set by the first ready worker (in a callback: the cast keeps the compiler from narrowing it to null here).
  let addresses = null as { gateway: string; admin: string | null } | null;
  let settleStart: { resolve: () => void; reject: (err: Error) => void } | null = null;
  const exitCodes: number[] = [];
  let onAllExited: (() => void) | null = null;

  const live = (): Worker[] => slots.flatMap((s) => (s.worker === null ? [] : [s.worker]));

  const fork = (slot: Slot): void => {
    slot.timer = null;
    slot.ready = false;
    slot.failure = null;
    slot.startedAt = Date.now();
    const worker = cluster.fork({ PORTCULLIS_WORKER: String(slot.index) });
    slot.worker = worker;
    worker.on("message", (m: unknown) => {
      if (!isWorkerMessage(m)) return;
      if (m.portcullis === "config?") {
        const answer: PrimaryMessage = { portcullis: "config", ...source };
        worker.send(answer);
      } else if (m.portcullis === "failed") {
        slot.failure = { code: m.code, message: m.message };
      } else {
        slot.ready = true;
        addresses ??= { gateway: m.gateway, admin: m.admin };
        if (started) logger.info({ worker: slot.index, workerPid: worker.process.pid }, "worker replaced: serving again");
        if (stopping) drainOne(worker);
        else if (!started && slots.every((s) => s.ready)) settleStart?.resolve();
      }
    });
    // An IPC error (the worker gone mid-send) is followed by its exit, handled below.
    worker.on("error", (err) => {
      logger.warn({ worker: slot.index, err: err.message }, "worker channel error");
    });
    worker.once("exit", (code, signal) => {
      onExit(slot, worker, code, signal);
    });
  };

  const onExit = (slot: Slot, worker: Worker, code: number | null, signal: string | null): void => {
    if (slot.worker !== worker) return;
    slot.worker = null;
    const wasReady = slot.ready;
    slot.ready = false;
    if (stopping) {
      exitCodes.push(code ?? 1);
      if (live().length === 0) onAllExited?.();
      return;
    }
    if (!started) {
      settleStart?.reject(startFailure(slot, worker.process.pid, code, signal));
      return;
    }
    const ranMs = Date.now() - slot.startedAt;
    const next = restartDelay(backoff, slot.failures, wasReady, ranMs);
    slot.failures = next.failures;
    const delayMs = next.delayMs;
    const fields = { worker: slot.index, workerPid: worker.process.pid, exitCode: code, signal, ranMs, restartInMs: delayMs };
    if (slot.failure !== null) logger.error({ ...fields, code: slot.failure.code, reason: slot.failure.message }, "worker failed to start; retrying");
    else logger.warn(fields, wasReady ? "worker exited; restarting it" : "worker exited before it was serving; retrying");
    slot.timer = setTimeout(() => {
      fork(slot);
    }, delayMs);
  };

  /** Asks one worker to drain (a worker not serving yet has no requests: it is ended). */
  const drainOne = (worker: Worker): void => {
    const slot = slots.find((s) => s.worker === worker);
    if (slot?.ready === true && worker.isConnected()) {
      const drain: PrimaryMessage = { portcullis: "drain" };
      worker.send(drain);
    } else worker.process.kill("SIGTERM");
  };

  // The primary's exit status once every worker has exited (set by the first stopAll).
  let stopped: Promise<number> = Promise.resolve(0);
  const stopAll = (): Promise<number> => {
    if (stopping) return stopped;
    stopping = true;
    for (const slot of slots) {
      if (slot.timer !== null) clearTimeout(slot.timer);
      slot.timer = null;
    }
    const workers = live();
    if (workers.length === 0) return Promise.resolve(0);
    const all = new Promise<void>((resolve) => {
      onAllExited = resolve;
    });
    // A worker that has not finished draining well after its drain time is killed.
    const killer = setTimeout(() => {
      for (const w of live()) {
        logger.error({ workerPid: w.process.pid }, "worker did not drain in time; killed");
        w.process.kill("SIGKILL");
      }
    }, drainMs + 5_000);
    for (const w of workers) drainOne(w);
    stopped = all.then(() => {
      clearTimeout(killer);
      return exitCodes.every((c) => c === 0) ? 0 : 1;
    });
    return stopped;
  };

  try {
    await new Promise<void>((resolve, reject) => {
      settleStart = { resolve, reject };
      for (const slot of slots) fork(slot);
    });
  } catch (err) {
    // Nothing restarts: the others are stopped (killed if still starting) and the start fails.
    await stopAll();
    throw err;
  }
  started = true;
  settleStart = null;
  if (addresses === null) throw new TypeError("every worker is ready but none said where it listens");
  const { gateway, admin } = addresses;
  return {
    gateway,
    admin,
    workers: count,
    pids: () => live().flatMap((w) => (w.process.pid === undefined ? [] : [w.process.pid])),
    stop: stopAll,
  };
}
