import { Redis } from "ioredis";
import { ReadyWait } from "./ready.js";
import { DEFAULT_SHIELD_POLICY, type ShieldPolicy } from "../../limits/types.js";
import type { ChargeState } from "../../contract/limits.js";
import type { Admission, AdmissionResult, EndedSessionStore, FailureResult, HotStore, MetaStore, StrikeResult } from "../types.js";
import type { ReplayClaim } from "../../contract/request.js";
import { fenced } from "../../replay/claims.js";
import type { SequenceReservations } from "../../replay/reservations.js";
import { RedisOpenOrders } from "./open-orders.js";
import { ADMIT_LUA, EPOCH_LUA, FAILURE_LUA, STRIKE_LUA } from "./scripts.js";

/**
 * The Redis hot store: the same decisions as MemoryHotStore (storage/memory/hot.ts), shared by
 * every gateway process, in ONE round trip per admission (admissions asked for in the same turn of
 * the event loop share it: see Batcher below).
 *
 * The script. An admission is one EVALSHA of the ADMIT script (scripts.ts; ioredis sends EVAL the
 * first time on each connection, then EVALSHA, and falls back to EVAL on NOSCRIPT). Redis runs a
 * script atomically, so the script is the memory store's `admit` transcribed: (1) the address's
 * ban; (2) GCRA for every charge, in order — on the first refusal, a strike for the address (a
 * GCRA bucket of `strikes` per `strikeWindowMs`) and, when the strike is refused, a ban of
 * banBaseMs·2^(count−1) capped at banMaxMs, the count remembered for a day after the ban ends;
 * (3) only when every charge admits, the replay claim; (4) only when that is fresh too, every
 * TAT is written. Nothing is written when anything refuses, except the strike and the ban.
 * GCRA runs on the same integer arithmetic as limits/gcra.ts (doubles below 2^53, identical
 * operations), so counts, remaining, resetMs and retryAfterMs are exactly the memory store's.
 * `recordFailure` is one call of the FAILURE script (two GCRA buckets); `strike` one call of the
 * STRIKE script (the address's strike and ban, as ADMIT records them).
 *
 * Time. Every decision uses the admission's `now` (the gateway's clock), never Redis's clock:
 * stored values are logical times (TATs, ban ends, nonce expiries) compared with `now`. Redis
 * expiries (PX, relative) only reclaim memory, and are set a margin after the logical expiry.
 *
 * Key layout (P = `prefix`, "pc:" by default):
 *
 *   P t:<bucket>             string "ms:rem"     a charge's TAT (tat = ms + rem/limit); PX ≈ resetMs + margin
 *   P s:<ip>                 string "ms:rem"     the address's strike TAT
 *   P b:<ip>                 string "until:count" the address's ban; PX = ban + a day (the count's memory)
 *   P f:i:<ip>               string "ms:rem"     authentication-failure TAT per address
 *   P f:k:<key>|<ip>         string "ms:rem"     authentication-failure TAT per key (scope|id) and address
 *   P n:<len>:<keyId>:<nonce> string expiresAt   a used nonce (SET inside the script only when absent
 *                                                 or logically expired); PX ≈ expiresAt − now + margin
 *   P q:<keyId>              hash {h, f}         increasing nonces: the highest value, the floor
 *   P r:<keyId>              zset                 the values accepted within the window below the highest
 *   P x:<sessionId>          string until        a logged-out session, refused until `until`; PX ≈ until − now + margin
 *
 * Sequences (Kraken's increasing nonces) go up to 2^64 − 1, beyond a double's exactness: they are
 * encoded as length-prefixed decimal strings (2^64 − 1 → "20" + "18446744073709551615") whose byte
 * order is their numeric order; the script compares them as strings, the sorted set holds them
 * as members with score 0 (so Redis orders them by bytes: exact range removal, never an
 * approximate score), and value ± window are computed here with bigints. When a new highest
 * arrives, exactly the values below highest − window are removed; at most `sequenceLimit`
 * values are kept per key — at capacity the LOWEST is forgotten and becomes the floor (everything
 * at or below it is "too low"), so a value is never accepted twice. The q/r keys never expire:
 * an increasing-nonce key's state must outlive any replay (memory: one hash + ≤ sequenceLimit
 * members per key ever used).
 *
 * Single slot. One admission touches several keys (ban, strike, each bucket, the replay keys); all
 * are passed in KEYS, but they hash to different Redis Cluster slots. Run a single Redis primary
 * (with replicas / Sentinel for failover): Redis Cluster is not supported, except by a prefix with
 * a hash tag ("{pc}:"), which puts every key in one slot — on one shard.
 *
 * Failure. The client fails fast: no offline queue, a command timeout (500 ms by default), queued
 * commands rejected when the connection drops (never resent after reconnecting: a resent admission
 * would consume limits for a request already refused), and reconnection by itself with capped
 * backoff. `admit` then rejects and the pipeline fails closed or degrades (pipeline.ts `degrade`).
 * A command that timed out may still have run on the server: it may have consumed its limits.
 * Connection errors go to `onError` (never an unhandled 'error' event).
 *
 * Restarts (replay/claims.ts `fenced`, replay/reservations.ts). A Redis that restarts, without
 * persistence or from a snapshot older than its last writes, forgets nonces it had recorded. So on
 * every connection, before any admission is sent on it, the store reads `INFO server`: the run id
 * says whether this is still the Redis it knew, and the uptime when its memory began — the epoch:
 * now − uptime (never earlier than the true start), or now when the run replaced one this
 * deployment used before (with `runs`, also one recorded before this process started): a replica
 * promoted after a failover has been up for long, but may lack the last writes to the old primary.
 * A single-use claim of a request that could have been accepted before the epoch is refused
 * ("fenced"); on a new run id, the durable increasing-nonce reservations are read again as floors,
 * and the sessions ended by logout (their durable record) are written to it again. Admissions wait
 * for this reading (at most the command timeout; a reading that failed is tried again) and fail
 * closed without it; a restart always drops the connection, and admissions queued for a
 * connection that dropped are refused, so none reaches a Redis whose epoch is not known. The Redis
 * user needs the INFO command.
 */
export interface RedisHotStoreOptions {
  /** Used when no `client` is given; default redis://127.0.0.1:6379. */
  readonly url?: string;
  /** An existing client (not closed by `close`); its options are the caller's (see hotRedisOptions). */
  readonly client?: Redis;
  /** Prepended to every key; default "pc:". */
  readonly prefix?: string;
  readonly policy?: ShieldPolicy;
  /** Per-command timeout of the client this store creates; default 500 ms. */
  readonly commandTimeoutMs?: number;
  /** Connection errors of the client (reconnection is automatic); default: ignored. */
  readonly onError?: (err: Error) => void;
  /** Values remembered per increasing-nonce key (as MemorySequenceStore's perKeyLimit); default 10 000. */
  readonly sequenceLimit?: number;
  /** Durable reservations for increasing nonces (replay/reservations.ts): floors after a Redis restart. */
  readonly reservations?: SequenceReservations;
  /** Sessions ended by logout (the durable record): written to a Redis that restarted, before it admits. */
  readonly logouts?: EndedSessionStore;
  /**
   * Where the last Redis run this deployment saw is recorded (the durable store's meta): a gateway
   * that starts against another run (Redis restarted, or failed over to a replica, while it was
   * down) treats it as a new epoch too.
   */
  readonly runs?: MetaStore;
  /** The clock admissions use (epoch ms), for the epoch's start; default Date.now. */
  readonly now?: () => number;
  /** Called when the store learns a Redis run (the first, or a restart: `previous` is the one before). */
  readonly onEpoch?: (epoch: RedisEpoch, previous: RedisEpoch | null) => void;
}

/** One epoch of the Redis server's memory, as the hot store knows it (its marker key holds it). */
export interface RedisEpoch {
  readonly runId: string;
  /** When its memory began (epoch ms). */
  readonly startedAt: number;
  /** The marker's value, "runId:startedAt": every admission checks it is still there. */
  readonly marker: string;
}

/** A field of an INFO reply, or undefined. */
function infoField(text: string, name: string): string | undefined {
  const at = text.indexOf(`\n${name}:`);
  const start = at < 0 ? (text.startsWith(`${name}:`) ? name.length + 1 : -1) : at + name.length + 2;
  if (start < 0) return undefined;
  const end = text.indexOf("\r", start);
  return text.slice(start, end < 0 ? undefined : end).trim();
}

/** Redis keeps a key this long after its logical expiry (latency between gateway and Redis). */
const EXPIRY_MARGIN_MS = 2_000;
/** As in the memory store: a ban's count is remembered for a day after the ban ends. */
const BAN_MEMORY_MS = 86_400_000;
const DEFAULT_URL = "redis://127.0.0.1:6379";
const DEFAULT_TIMEOUT_MS = 500;
const ADMIT = "portcullisHotAdmit";
const FAILURE = "portcullisHotFailure";
const STRIKE = "portcullisHotStrike";
const EPOCH = "portcullisHotEpoch";
const TOO_BIG = 10n ** 99n;

type ScriptCall = (numKeys: number, ...args: (string | number)[]) => Promise<unknown>;

/** The fail-fast client options this store uses for the client it creates. */
export function hotRedisOptions(commandTimeoutMs = DEFAULT_TIMEOUT_MS): {
  enableOfflineQueue: false;
  commandTimeout: number;
  connectTimeout: number;
  maxRetriesPerRequest: number;
  autoResendUnfulfilledCommands: false;
  retryStrategy: (times: number) => number;
} {
  return {
    enableOfflineQueue: false,
    commandTimeout: commandTimeoutMs,
    connectTimeout: Math.max(1_000, 2 * commandTimeoutMs),
    // Reject whatever is in flight as soon as the connection drops.
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    // 50, 100, 200 … ms, at most 2 s between attempts, forever.
    retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times - 1, 6), 2_000),
  };
}

/** A sequence value as the script compares it: decimal digits after their 2-digit count. */
function encode(v: bigint): string {
  const s = v.toString();
  return `${s.length.toString().padStart(2, "0")}${s}`;
}

function isCount(x: number, min: number): boolean {
  return Number.isSafeInteger(x) && x >= min;
}

function integers(reply: unknown): number[] {
  if (!Array.isArray(reply)) throw new Error("redis hot store: unexpected script reply");
  const out: number[] = [];
  for (const x of reply) {
    if (typeof x !== "number") throw new Error("redis hot store: unexpected script reply");
    out.push(x);
  }
  return out;
}

function at(values: readonly number[], i: number): number {
  const v = values[i];
  if (v === undefined) throw new Error("redis hot store: short script reply");
  return v;
}

function unavailable(client: Redis, err: unknown): Error {
  const message = err instanceof Error ? err.message : String(err);
  return new Error(`redis hot store unavailable (${client.status}): ${message}`, { cause: err });
}

/**
 * Admissions asked for in one turn of the event loop travel together: the first schedules a flush
 * for the end of the turn (setImmediate: after every socket the turn read), and the flush sends
 * them in one ioredis pipeline — one write, one read for all of them, on both sides of the
 * connection. Each is still its own EVALSHA, atomic on its own, answered to its own caller: a
 * pipeline is not a transaction, and an admission's answer never depends on another's. Alone in
 * its turn, an admission is sent as a plain call. On a busy gateway this saves most of the system
 * calls a round trip per request would cost; on an idle one it costs one turn of latency.
 */
class Batcher {
  private queue: { readonly args: (string | number)[]; readonly generation: number; readonly resolve: (reply: unknown) => void; readonly reject: (err: unknown) => void }[] = [];
  private scheduled = false;

  constructor(
    private readonly client: Redis,
    private readonly name: string,
    private readonly single: ScriptCall,
    /** The connection generation now: an admission prepared for an earlier connection is refused. */
    private readonly generation: () => number,
  ) {}

  send(args: (string | number)[], generation: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.queue.push({ args, generation, resolve, reject });
      if (this.scheduled) return;
      this.scheduled = true;
      setImmediate(() => {
        this.flush();
      });
    });
  }

  private flush(): void {
    this.scheduled = false;
    const current = this.generation();
    const batch: typeof this.queue = [];
    for (const b of this.queue) {
      if (b.generation === current) batch.push(b);
      else b.reject(unavailable(this.client, new Error("the connection it was prepared for dropped")));
    }
    this.queue = [];
    const first = batch[0];
    if (first === undefined) return;
    if (batch.length === 1) {
      const [numKeys = 0, ...rest] = first.args;
      this.single(Number(numKeys), ...rest).then(first.resolve, first.reject);
      return;
    }
    const pipeline = this.client.pipeline();
    const command: unknown = Reflect.get(pipeline, this.name);
    if (typeof command !== "function") {
      for (const b of batch) b.reject(new Error(`redis hot store: ${this.name} is not defined on pipelines`));
      return;
    }
    for (const b of batch) Reflect.apply(command, pipeline, b.args);
    pipeline.exec().then(
      (results) => {
        batch.forEach((b, i) => {
          const result = results?.[i];
          if (result === undefined) b.reject(unavailable(this.client, new Error("no reply in the pipeline")));
          else if (result[0] !== null) b.reject(unavailable(this.client, result[0]));
          else b.resolve(result[1]);
        });
      },
      (err: unknown) => {
        for (const b of batch) b.reject(unavailable(this.client, err));
      },
    );
  }
}

export class RedisHotStore implements HotStore {
  readonly kind = "redis";
  /** The open-notional ledger (docs/guardrails.md): hashes `P o:<keyId>` in this Redis (open-orders.ts). */
  readonly openOrders: RedisOpenOrders;
  private readonly client: Redis;
  private readonly owned: boolean;
  private readonly prefix: string;
  private readonly policy: ShieldPolicy;
  private readonly timeoutMs: number;
  private readonly sequenceLimit: number;
  private readonly admissions: Batcher;
  private readonly failureScript: ScriptCall;
  private readonly strikeScript: ScriptCall;
  private readonly errorListener: (err: Error) => void;
  /** The wait for 'ready' that every caller of `ready()` shares, while one is pending. */
  private readonly readiness: ReadyWait;
  /** Set once the client has been ready: before that, commands wait for the first connection. */
  private everReady = false;
  private readonly readyListener = (): void => {
    this.everReady = true;
  };
  private readonly reservations: SequenceReservations | null;
  private readonly logouts: EndedSessionStore | null;
  private readonly runs: MetaStore | null;
  private readonly now: () => number;
  private readonly onEpoch: ((epoch: RedisEpoch, previous: RedisEpoch | null) => void) | null;
  /** Counts connections: a new one on every 'ready' and every 'close'. */
  private generation = 0;
  /** The epoch of the current connection's Redis, once read; null while unknown. */
  private current: RedisEpoch | null = null;
  /** The last Redis run seen (kept across disconnections, to tell a restart from a blip). */
  private known: RedisEpoch | null = null;
  /** The reading of the current connection's epoch, while pending. */
  private reading: Promise<void> | null = null;
  /** When the last reading started (a failed one is retried at most once a second). */
  private lastReading = 0;
  private readonly epochScript: ScriptCall;
  /** A new connection: its epoch is unknown until read. */
  private readonly epochListener = (): void => {
    this.generation++;
    this.current = null;
    this.readEpoch();
  };
  private readonly closeListener = (): void => {
    this.generation++;
    this.current = null;
    this.reading = null;
  };

  constructor(options: RedisHotStoreOptions = {}) {
    this.prefix = options.prefix ?? "pc:";
    this.policy = options.policy ?? DEFAULT_SHIELD_POLICY;
    this.timeoutMs = options.commandTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.sequenceLimit = options.sequenceLimit ?? 10_000;
    this.reservations = options.reservations ?? null;
    this.logouts = options.logouts ?? null;
    this.runs = options.runs ?? null;
    this.now = options.now ?? Date.now;
    this.onEpoch = options.onEpoch ?? null;
    if (!isCount(this.timeoutMs, 1)) throw new RangeError("commandTimeoutMs must be a positive integer");
    if (!isCount(this.sequenceLimit, 1)) throw new RangeError("sequenceLimit must be a positive integer");
    const onError = options.onError;
    this.errorListener = (err: Error) => {
      if (onError !== undefined) onError(err);
    };
    if (options.client !== undefined) {
      this.client = options.client;
      this.owned = false;
    } else {
      this.client = new Redis(options.url ?? DEFAULT_URL, hotRedisOptions(this.timeoutMs));
      this.owned = true;
    }
    this.readiness = new ReadyWait(this.client, this.timeoutMs);
    // Our client's errors are ours to handle (never an unhandled 'error' event); a passed-in
    // client's are its owner's, unless `onError` asks for them too.
    if (this.owned || onError !== undefined) this.client.on("error", this.errorListener);
    if (this.client.status === "ready") this.everReady = true;
    else this.client.once("ready", this.readyListener);
    this.client.on("ready", this.epochListener);
    this.client.on("close", this.closeListener);
    this.client.defineCommand(ADMIT, { lua: ADMIT_LUA });
    this.client.defineCommand(FAILURE, { lua: FAILURE_LUA });
    this.client.defineCommand(STRIKE, { lua: STRIKE_LUA });
    this.client.defineCommand(EPOCH, { lua: EPOCH_LUA });
    this.admissions = new Batcher(this.client, ADMIT, this.script(ADMIT), () => this.generation);
    this.failureScript = this.script(FAILURE);
    this.strikeScript = this.script(STRIKE);
    this.epochScript = this.script(EPOCH);
    const client = this.client;
    this.openOrders = new RedisOpenOrders({ client, prefix: this.prefix, connected: () => this.connected(), unavailable: (err) => unavailable(client, err) });
    if (this.client.status === "ready") this.epochListener();
  }

  /**
   * Resolves once the client is connected (rejects after `commandTimeoutMs` when it is not).
   * Every caller waiting at the same time shares one wait, with one 'ready' listener: requests
   * arriving while Redis connects would otherwise add a listener each (and ioredis warns
   * MaxListenersExceededWarning past ten).
   */
  ready(): Promise<void> {
    return this.readiness.wait(() => new Error(`redis hot store: not connected (${this.client.status})`));
  }

  /**
   * Reads the epoch of the current connection (see the class comment). Admissions wait for it; a
   * reading for a connection that has since dropped is discarded, and one that failed is tried
   * again by a later admission (at most once a second).
   */
  private readEpoch(): void {
    const generation = this.generation;
    this.lastReading = Date.now();
    const reading = this.establish(generation).then((epoch) => {
      if (epoch !== null && generation === this.generation) this.current = epoch;
    });
    this.reading = reading.catch((err: unknown) => {
      if (generation === this.generation) this.reading = null;
      this.errorListener(err instanceof Error ? err : new Error(String(err)));
    });
  }

  /**
   * The epoch of the Redis this connection reaches: the one recorded in its marker when the marker
   * names this run, else a new one, recorded by compare-and-set (several gateways establishing at
   * once agree on the first). Null when the connection dropped meanwhile.
   */
  private async establish(generation: number): Promise<RedisEpoch | null> {
    const text = await this.client.info();
    if (generation !== this.generation) return null;
    const runId = infoField(text, "run_id");
    const uptime = Number(infoField(text, "uptime_in_seconds"));
    if (runId === undefined || !/^[0-9a-f]{8,64}$/.test(runId) || !Number.isSafeInteger(uptime) || uptime < 0) {
      throw new Error("redis hot store: INFO has no run_id or uptime_in_seconds");
    }
    // Replay state evicted under memory pressure would be accepted again: refuse to run on it.
    const policy = infoField(text, "maxmemory_policy");
    if (Number(infoField(text, "maxmemory") ?? "0") > 0 && policy !== "noeviction") {
      throw new Error(`redis hot store: maxmemory-policy ${policy ?? "?"} may evict used nonces and logouts; set maxmemory-policy noeviction (or maxmemory 0)`);
    }
    const markerKey = `${this.prefix}epoch`;
    let marker = await this.client.get(markerKey);
    if (generation !== this.generation) return null;
    const previous = this.known;
    if (marker === null || !marker.startsWith(`${runId}:`)) {
      // No epoch for this run yet. A run this deployment never saw began its memory `uptime` ago
      // (whole seconds, rounded down: never earlier than it truly began). A run that replaced one
      // it used (a marker or a record naming another run: a restart from a snapshot, a replica
      // promoted after a failover, whose uptime says nothing of the writes it missed), or a
      // marker gone from a run it used (FLUSHALL, eviction), is trusted from now.
      const now = this.now();
      const recordKey = `replay.redis.run:${this.prefix}`;
      const recorded = previous?.runId ?? (await this.runs?.getMeta(recordKey));
      const unseen = marker === null && (recorded === undefined || recorded !== runId);
      const proposed = unseen ? now - uptime * 1000 : now;
      // Logouts first: the marker tells every gateway the run is ready.
      if (this.logouts !== null) await this.restoreLogouts(now);
      marker = String(await this.epochScript(1, markerKey, runId, proposed));
      if (this.runs !== null && recorded !== runId) await this.runs.setMeta(recordKey, runId);
    }
    const startedAt = Number(marker.slice(runId.length + 1));
    if (!Number.isSafeInteger(startedAt)) throw new Error("redis hot store: the epoch marker is malformed");
    if (previous?.marker !== marker) {
      // A new epoch for this process: the reservations are its floors.
      if (this.reservations !== null) await this.reservations.begin();
      if (generation !== this.generation) return null;
      const epoch = { runId, startedAt, marker };
      this.known = epoch;
      this.onEpoch?.(epoch, previous);
      return epoch;
    }
    return previous;
  }

  async epoch(): Promise<number> {
    await this.connected();
    return (await this.currentEpoch()).startedAt;
  }

  /** Writes every session still ended (the durable record) to this Redis: idempotent, for a new run. */
  private async restoreLogouts(now: number): Promise<void> {
    const ended = (await this.logouts?.endedSessions(now)) ?? new Map<string, number>();
    if (ended.size === 0) return;
    const pipeline = this.client.pipeline();
    for (const [id, until] of ended) pipeline.set(`${this.prefix}x:${id}`, String(until), "PX", until - now + EXPIRY_MARGIN_MS);
    const results = await pipeline.exec();
    for (const [err] of results ?? []) if (err !== null) throw err;
  }

  /** The current connection's epoch, if read (a call: the reading changes it between awaits). */
  private currentOrNull(): RedisEpoch | null {
    return this.current;
  }

  /** The current connection's epoch: at once when known, else after its reading (fails closed). */
  private async currentEpoch(): Promise<RedisEpoch> {
    if (this.current !== null) return this.current;
    // The reading failed (a timeout, say) on a connection that is still up: read again.
    if (this.reading === null && this.client.status === "ready" && Date.now() - this.lastReading >= 1_000) this.readEpoch();
    const reading = this.reading;
    if (reading !== null) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.timeoutMs);
      });
      await Promise.race([reading, timeout]);
      clearTimeout(timer);
    }
    const read = this.currentOrNull();
    if (read !== null) return read;
    throw unavailable(this.client, new Error("the Redis server's run (INFO server) is not known yet"));
  }

  async admit(a: Admission, again = false): Promise<AdmissionResult> {
    const p = this.policy;
    const n = a.charges.length;
    if (!Number.isSafeInteger(a.now)) throw new RangeError("admission time must be an integer (ms)");
    await this.connected();
    // The epoch first: its floors are read before this admission reserves anything.
    const epoch = this.current ?? (await this.currentEpoch());
    const generation = this.generation;
    const replay = a.replay;
    if (replay !== null && replay.kind === "sequence" && this.reservations !== null) {
      // Reserved durably before it is claimed: a value is never accepted uncovered.
      const reserved = this.reservations.reserve(replay.keyId, replay.value, a.now);
      if (reserved !== undefined) await reserved;
    }
    const keys: string[] = [`${this.prefix}b:${a.ip}`, `${this.prefix}s:${a.ip}`];
    const args: (string | number)[] = [a.now, n, p.strikes, p.strikeWindowMs, p.banBaseMs, p.banMaxMs, BAN_MEMORY_MS, EXPIRY_MARGIN_MS, a.session === null ? "0" : "1"];
    for (const c of a.charges) {
      if (!isCount(c.limit, 1) || !isCount(c.windowMs, 1) || !isCount(c.cost, 0) || !Number.isSafeInteger(c.limit * c.windowMs)) {
        throw new RangeError(`charge ${c.bucket}: limit, window and cost must be integers (limit·window below 2^53)`);
      }
      keys.push(`${this.prefix}t:${c.bucket}`);
      args.push(c.limit, c.windowMs, c.cost);
    }
    this.replayArguments(replay, epoch, keys, args);
    if (a.session !== null) keys.push(`${this.prefix}x:${a.session}`);
    keys.push(`${this.prefix}epoch`);
    args.push(epoch.marker);
    const r = integers(await this.admissions.send([keys.length, ...keys, ...args], generation));
    switch (at(r, 0)) {
      case 0:
        return { ok: true, states: this.states(r, 1, n, n) };
      case 1: {
        const index = at(r, 1);
        const bannedUntil = at(r, 3);
        return {
          ok: false,
          reason: "limited",
          index,
          retryAfterMs: at(r, 2),
          // As the memory store: the states of the charges decided so far (up to the refusing one).
          states: this.states(r, 4, index + 1, n),
          bannedUntil: bannedUntil < 0 ? null : bannedUntil,
        };
      }
      case 2:
        return { ok: false, reason: "banned", until: at(r, 1) };
      case 3: {
        const code = at(r, 1);
        return { ok: false, reason: code === 1 ? "replayed" : code === 3 ? "fenced" : "too-low" };
      }
      case 4:
        return { ok: false, reason: "session-revoked" };
      case 5:
        // This Redis is not the memory the epoch was read for: read it again, then decide once more.
        if (this.current?.marker === epoch.marker) {
          this.current = null;
          this.reading = null;
          this.readEpoch();
        }
        if (again) throw unavailable(this.client, new Error("the Redis server's epoch changed"));
        return this.admit(a, true);
      default:
        throw new Error("redis hot store: unexpected script reply");
    }
  }

  async recordFailure(ip: string, key: string | null, now: number): Promise<FailureResult> {
    const p = this.policy;
    if (!Number.isSafeInteger(now)) throw new RangeError("failure time must be an integer (ms)");
    const keys = [`${this.prefix}f:i:${ip}`];
    // Per key AND address: failures from elsewhere never block the key for its owner.
    if (key !== null) keys.push(`${this.prefix}f:k:${key}|${ip}`);
    await this.connected();
    const r = integers(await this.failureScript(keys.length, ...keys, now, p.authFailuresPerIp, p.authFailuresPerKey, p.authFailureWindowMs, EXPIRY_MARGIN_MS));
    return {
      ipBlockedUntil: at(r, 0) === 1 ? now + p.authBlockMs : null,
      keyBlockedUntil: at(r, 1) === 1 ? now + p.authBlockMs : null,
    };
  }

  async strike(ip: string, now: number): Promise<StrikeResult> {
    const p = this.policy;
    if (!Number.isSafeInteger(now)) throw new RangeError("strike time must be an integer (ms)");
    await this.connected();
    const r = integers(
      await this.strikeScript(2, `${this.prefix}b:${ip}`, `${this.prefix}s:${ip}`, now, p.strikes, p.strikeWindowMs, p.banBaseMs, p.banMaxMs, BAN_MEMORY_MS, EXPIRY_MARGIN_MS),
    );
    const until = at(r, 0);
    return { bannedUntil: until < 0 ? null : until };
  }

  async revokeSession(sessionId: string, until: number, now: number): Promise<void> {
    if (!Number.isSafeInteger(until) || !Number.isSafeInteger(now)) throw new RangeError("session revocation times must be integers (ms)");
    if (until <= now) return;
    await this.connected();
    try {
      await this.client.set(`${this.prefix}x:${sessionId}`, String(until), "PX", until - now + EXPIRY_MARGIN_MS);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      throw new Error(`redis hot store unavailable (${this.client.status}): ${message}`, { cause: err });
    }
  }

  /** PING, failing fast when not connected (the offline queue is off). */
  async ping(): Promise<void> {
    if (this.client.status !== "ready") throw new Error(`redis hot store: not connected (${this.client.status})`);
    await this.client.ping();
  }

  async close(): Promise<void> {
    this.client.off("ready", this.readyListener);
    this.client.off("ready", this.epochListener);
    this.client.off("close", this.closeListener);
    if (!this.owned) {
      this.client.off("error", this.errorListener);
      return;
    }
    if (this.client.status === "ready") {
      try {
        await this.client.quit();
      } catch {
        this.client.disconnect();
      }
    } else {
      this.client.disconnect();
    }
    // Our error listener stays: a late socket error of a closing client must not go unhandled.
  }

  private replayArguments(replay: ReplayClaim | null, epoch: RedisEpoch, keys: string[], args: (string | number)[]): void {
    if (replay === null) {
      args.push("");
      return;
    }
    if (replay.kind === "nonce") {
      if (!Number.isFinite(replay.expiresAt)) throw new RangeError("nonce expiry must be a finite time (ms)");
      // Fenced: the script refuses it at the replay step (after the ban and the limits, as memory does).
      if (fenced(replay, epoch.startedAt)) {
        args.push("f");
        return;
      }
      keys.push(`${this.prefix}n:${replay.keyId.length}:${replay.keyId}:${replay.value}`);
      args.push("n", replay.expiresAt);
      return;
    }
    const { value, window } = replay;
    if (value < 0n || window < 0n || value + window >= TOO_BIG) throw new RangeError("sequence values must be non-negative integers below 10^99");
    const low = value - window;
    keys.push(`${this.prefix}q:${replay.keyId}`, `${this.prefix}r:${replay.keyId}`);
    const floor = this.reservations?.floor(replay.keyId);
    args.push("q", encode(value), encode(value + window), low < 0n ? "" : encode(low), window > 0n ? "1" : "0", this.sequenceLimit, floor === undefined || floor < 0n ? "" : encode(floor));
  }

  /** `count` states from r[from …] in an array of `length` (later entries left empty, like memory). */
  private states(r: readonly number[], from: number, count: number, length: number): ChargeState[] {
    const states = new Array<ChargeState>(length);
    for (let i = 0; i < count; i++) states[i] = { remaining: at(r, from + 2 * i), resetMs: at(r, from + 2 * i + 1) };
    return states;
  }

  /** Before the first connection, waits for it (startup); afterwards, fails fast (offline queue off). */
  private connected(): Promise<void> {
    if (this.everReady || this.client.status === "ready") return Promise.resolve();
    const s = this.client.status;
    if (s === "wait" || s === "connecting" || s === "connect" || s === "reconnecting") return this.ready();
    return Promise.resolve();
  }

  private script(name: string): ScriptCall {
    const fn: unknown = Reflect.get(this.client, name);
    if (typeof fn !== "function") throw new Error(`redis hot store: ${name} is not defined on the client`);
    const client = this.client;
    return (numKeys, ...args) =>
      Promise.resolve(Reflect.apply(fn, client, [numKeys, ...args]) as unknown).catch((err: unknown) => {
        throw unavailable(client, err);
      });
  }
}
