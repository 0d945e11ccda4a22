import { Redis } from "ioredis";
import { ReadyWait } from "./ready.js";
import { BehaviourStateError, checkPage, checkedState, distinctIds } from "../behaviour-state.js";
import { BEHAVIOUR_STATE_MAX_BYTES, type BehaviourStateStore } from "../types.js";
import { hotRedisOptions } from "./hot.js";

/**
 * Behaviour states in Redis, shared by every gateway process of a deployment (same Redis, same
 * prefix). Pair it with the SQLite store (storage/behaviour-state.ts SnapshottingBehaviourStore)
 * so that a Redis that loses its data loses at most the last snapshot interval.
 *
 * Key layout (P = `prefix`, "pc:" by default):
 *
 *   P bs:<id>    string "<version>:<bytes>"  one state: its version (decimal), a colon, its bytes
 *   P bs-ids     zset (score 0)              every id with a state, in byte order (for `ids`)
 *   P bs-seq     string integer               the deployment's version counter
 *
 * Versions come from one counter, so a version is never reused, not even for an id removed and
 * written again: a compare-and-set never mistakes a newer state for the one it read. A counter that
 * Redis lost (a restart without its data) starts again above every version of the one before: at
 * the clock's milliseconds × 1,000 (below 2^53 until the year 2255).
 *
 * `update` is optimistic: one MGET reads every id of the batch (500 ids per command), `apply`
 * runs here, and one script writes the batch, each id only when its version is still the one read
 * (compare-and-set, atomic in Redis). The ids another process wrote meanwhile are read and applied
 * again, after a short random pause, at most `maxRetries` times; then the call rejects with
 * BEHAVIOUR_STATE_CONFLICT naming them (the other ids of the call are written). Within one
 * process, updates that share an id wait for one another, so only other processes conflict.
 *
 * A value under P bs:<id> that this store did not write (another type, no version, more than
 * 2,048 bytes) is refused with BEHAVIOUR_STATE_MALFORMED, never overwritten; Redis unreachable is
 * BEHAVIOUR_STATE_UNAVAILABLE. The client fails fast as the hot store's does (no offline queue,
 * `commandTimeoutMs`), except that the first commands wait for the first connection.
 *
 * Like the hot store, every key of a call goes to one script: run a single Redis primary, or a
 * Cluster with a hash-tagged prefix ("{pc}:").
 */
export interface RedisBehaviourStoreOptions {
  /** Used when no `client` is given; default redis://127.0.0.1:6379. */
  readonly url?: string;
  /** An existing client (not closed by `close`), with its owner's options. */
  readonly client?: Redis;
  /** Prepended to every key; default "pc:". */
  readonly prefix?: string;
  /** Per-command timeout of the client this store creates (ms); default 2,000. */
  readonly commandTimeoutMs?: number;
  /** Times a conflicting id is read and applied again before its update is given up; default 16. */
  readonly maxRetries?: number;
  /** Connection errors of the client this store creates (reconnection is automatic); default: ignored. */
  readonly onError?: (err: Error) => void;
  /** The clock a new version counter starts from (epoch ms); default Date.now. */
  readonly now?: () => number;
}

const DEFAULT_URL = "redis://127.0.0.1:6379";
const DEFAULT_TIMEOUT_MS = 2_000;
const DEFAULT_RETRIES = 16;
/** Ids per command (MGET, the scripts). */
const CHUNK = 500;
const CAS = "portcullisBehaviourCas";
const REMOVE = "portcullisBehaviourRemove";

/**
 * KEYS[1] the id index, KEYS[2] the version counter, KEYS[3…] the states; ARGV[1] where a new
 * counter starts, then three per state: the version read ("0": none), the new bytes, the id.
 * Answers one integer per state: 1 written, 0 its version moved, -1 not a string (never
 * overwritten).
 */
const CAS_LUA = `
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('SET', KEYS[2], ARGV[1]) end
local out = {}
for i = 3, #KEYS do
  local j = (i - 3) * 3 + 1
  local cur = redis.pcall('GET', KEYS[i])
  if type(cur) == 'table' and cur.err then
    out[#out + 1] = -1
  else
    local ver = '0'
    if cur then ver = string.match(cur, '^(%d+):') or '?' end
    if ver == ARGV[j + 1] then
      local v = redis.call('INCR', KEYS[2])
      redis.call('SET', KEYS[i], string.format('%d', v) .. ':' .. ARGV[j + 2])
      if ver == '0' then redis.call('ZADD', KEYS[1], 0, ARGV[j + 3]) end
      out[#out + 1] = 1
    else
      out[#out + 1] = 0
    end
  end
end
return out
`;

/** KEYS[1] the id index, KEYS[2…] the states; ARGV the ids. */
const REMOVE_LUA = `
for i = 2, #KEYS do redis.call('DEL', KEYS[i]) end
for i = 1, #ARGV do redis.call('ZREM', KEYS[1], ARGV[i]) end
return #ARGV
`;

type ScriptCall = (numKeys: number, ...args: (string | Buffer | number)[]) => Promise<unknown>;

/** One state as read: its version ("0" when none) and bytes. */
interface Read {
  readonly version: string;
  readonly bytes: Uint8Array | null;
}

const COLON = 0x3a;
/** A version is a decimal below 2^53: at most 16 digits. */
const MAX_VERSION_DIGITS = 16;

/** A stored value parsed, or null when it is not one this store writes. */
function parse(value: Buffer): Read | null {
  const colon = value.indexOf(COLON);
  if (colon < 1 || colon > MAX_VERSION_DIGITS) return null;
  for (let i = 0; i < colon; i++) {
    const c = value[i] ?? 0;
    if (c < 0x30 || c > 0x39) return null;
  }
  if (value.length - colon - 1 > BEHAVIOUR_STATE_MAX_BYTES) return null;
  // A copy: the reply's buffer is not kept alive by a state the caller holds on to.
  return { version: value.toString("latin1", 0, colon), bytes: new Uint8Array(value.subarray(colon + 1)) };
}

/** A view of `bytes` as a Buffer, without a copy. */
function buffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function pause(attempt: number): Promise<void> {
  // 0 to 1, 2, 4 … 32 ms: two processes that collided rarely collide again.
  const ms = Math.random() * Math.min(2 ** attempt, 32);
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export class RedisBehaviourStore implements BehaviourStateStore {
  readonly kind = "redis";
  private readonly client: Redis;
  private readonly owned: boolean;
  private readonly prefix: string;
  private readonly index: string;
  private readonly counter: string;
  private readonly timeoutMs: number;
  private readonly maxRetries: number;
  private readonly now: () => number;
  private readonly cas: ScriptCall;
  private readonly removeScript: ScriptCall;
  private readonly errorListener: (err: Error) => void;
  /** Set once the client has been ready: before that, commands wait for the first connection. */
  private everReady = false;
  private readonly readyListener = (): void => {
    this.everReady = true;
  };
  /** The wait for the first connection that every caller shares, while one is pending. */
  private readonly readiness: ReadyWait;
  /** The update in progress (or queued last) for each id, in this process. */
  private readonly locks = new Map<string, Promise<void>>();

  constructor(options: RedisBehaviourStoreOptions = {}) {
    this.prefix = options.prefix ?? "pc:";
    this.index = `${this.prefix}bs-ids`;
    this.counter = `${this.prefix}bs-seq`;
    this.timeoutMs = options.commandTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.maxRetries = options.maxRetries ?? DEFAULT_RETRIES;
    this.now = options.now ?? Date.now;
    if (typeof this.prefix !== "string") throw new TypeError("prefix must be a string");
    if (!Number.isSafeInteger(this.timeoutMs) || this.timeoutMs < 1) throw new TypeError("commandTimeoutMs must be a positive integer (ms)");
    if (!Number.isSafeInteger(this.maxRetries) || this.maxRetries < 0 || this.maxRetries > 1_000) {
      throw new TypeError("maxRetries must be an integer from 0 to 1,000");
    }
    const onError = options.onError;
    this.errorListener = (err: Error) => {
      if (onError !== undefined) onError(err);
    };
    if (options.client !== undefined) {
      this.client = options.client;
      this.owned = false;
    } else {
      this.client = new Redis(options.url ?? DEFAULT_URL, { ...hotRedisOptions(this.timeoutMs), connectionName: `portcullis-behaviour:${this.prefix}` });
      this.owned = true;
      // Our client's errors are ours to handle: never an unhandled 'error' event.
      this.client.on("error", this.errorListener);
    }
    this.readiness = new ReadyWait(this.client, this.timeoutMs);
    if (this.client.status === "ready") this.everReady = true;
    else this.client.once("ready", this.readyListener);
    this.client.defineCommand(CAS, { lua: CAS_LUA });
    this.client.defineCommand(REMOVE, { lua: REMOVE_LUA });
    this.cas = this.script(CAS);
    this.removeScript = this.script(REMOVE);
  }

  async load(ids: readonly string[]): Promise<Map<string, Uint8Array>> {
    const wanted = distinctIds(ids);
    const out = new Map<string, Uint8Array>();
    const malformed: string[] = [];
    for (let i = 0; i < wanted.length; i += CHUNK) {
      const chunk = wanted.slice(i, i + CHUNK);
      const read = await this.read(chunk);
      for (const id of chunk) {
        const r = read.get(id);
        if (r === undefined) malformed.push(id);
        else if (r.bytes !== null) out.set(id, r.bytes);
      }
    }
    if (malformed.length > 0) throw this.malformed(malformed);
    return out;
  }

  async update(ids: readonly string[], apply: (id: string, current: Uint8Array | null) => Uint8Array): Promise<void> {
    const wanted = distinctIds(ids);
    if (wanted.length === 0) return;
    // Wait for this process's updates of the same ids, and make the later ones wait for this one.
    const earlier: Promise<void>[] = [];
    for (const id of wanted) {
      const p = this.locks.get(id);
      if (p !== undefined) earlier.push(p);
    }
    let release = (): void => undefined;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    for (const id of wanted) this.locks.set(id, mine);
    try {
      if (earlier.length > 0) await Promise.all(earlier);
      for (let i = 0; i < wanted.length; i += CHUNK) await this.updateChunk(wanted.slice(i, i + CHUNK), apply);
    } finally {
      release();
      for (const id of wanted) if (this.locks.get(id) === mine) this.locks.delete(id);
    }
  }

  async remove(ids: readonly string[]): Promise<void> {
    const wanted = distinctIds(ids);
    for (let i = 0; i < wanted.length; i += CHUNK) {
      const chunk = wanted.slice(i, i + CHUNK);
      await this.connected();
      await this.removeScript(chunk.length + 1, this.index, ...chunk.map((id) => this.key(id)), ...chunk);
    }
  }

  async ids(after: string | null, limit: number): Promise<string[]> {
    checkPage(after, limit);
    await this.connected();
    try {
      return await this.client.zrangebylex(this.index, after === null ? "-" : `(${after}`, "+", "LIMIT", 0, limit);
    } catch (err) {
      throw this.unavailable(err);
    }
  }

  /** Closes the client this store created (a client passed in stays open). */
  async close(): Promise<void> {
    this.client.off("ready", this.readyListener);
    if (!this.owned) return;
    if (this.client.status === "ready") {
      try {
        await this.client.quit();
      } catch {
        this.client.disconnect();
      }
    } else {
      this.client.disconnect();
    }
  }

  /** The Redis key of `id`'s state. */
  private key(id: string): string {
    return `${this.prefix}bs:${id}`;
  }

  private async updateChunk(ids: readonly string[], apply: (id: string, current: Uint8Array | null) => Uint8Array): Promise<void> {
    let pending = ids;
    const malformed: string[] = [];
    for (let attempt = 0; pending.length > 0; attempt++) {
      if (attempt > this.maxRetries) {
        throw new BehaviourStateError(
          "BEHAVIOUR_STATE_CONFLICT",
          `behaviour state: ${pending.length} state(s) changed by another process at each of ${this.maxRetries + 1} tries (${pending.slice(0, 3).join(", ")}${pending.length > 3 ? ", …" : ""})`,
          pending,
        );
      }
      if (attempt > 0) await pause(attempt);
      const read = await this.read(pending);
      const keys: string[] = [];
      const args: (string | Buffer)[] = [];
      const sent: string[] = [];
      for (const id of pending) {
        const r = read.get(id);
        if (r === undefined) {
          malformed.push(id);
          continue;
        }
        const next = checkedState(id, apply(id, r.bytes));
        keys.push(this.key(id));
        args.push(r.version, buffer(next), id);
        sent.push(id);
      }
      if (sent.length === 0) break;
      const reply = await this.cas(keys.length + 2, this.index, this.counter, ...keys, String(Math.trunc(this.now()) * 1_000), ...args);
      if (!Array.isArray(reply) || reply.length !== sent.length) throw this.unavailable(new Error("unexpected script reply"));
      const lost: string[] = [];
      sent.forEach((id, i) => {
        const r: unknown = reply[i];
        if (r === 0) lost.push(id);
        else if (r !== 1) malformed.push(id);
      });
      pending = lost;
    }
    if (malformed.length > 0) throw this.malformed(malformed);
  }

  /** The states of `ids` as stored; an id whose value is not one this store writes is absent from the map. */
  private async read(ids: readonly string[]): Promise<Map<string, Read>> {
    await this.connected();
    let values: (Buffer | null)[];
    try {
      values = await this.client.mgetBuffer(...ids.map((id) => this.key(id)));
    } catch (err) {
      throw this.unavailable(err);
    }
    const out = new Map<string, Read>();
    ids.forEach((id, i) => {
      const v = values[i];
      if (v === null || v === undefined) out.set(id, { version: "0", bytes: null });
      else {
        const r = parse(v);
        if (r !== null) out.set(id, r);
      }
    });
    return out;
  }

  private malformed(ids: readonly string[]): BehaviourStateError {
    return new BehaviourStateError(
      "BEHAVIOUR_STATE_MALFORMED",
      `behaviour state: ${ids.length} Redis value(s) under ${this.prefix}bs: are not states this store writes (${ids.slice(0, 3).join(", ")}${ids.length > 3 ? ", …" : ""})`,
      ids,
    );
  }

  private unavailable(err: unknown): BehaviourStateError {
    if (err instanceof BehaviourStateError) return err;
    const message = err instanceof Error ? err.message : String(err);
    return new BehaviourStateError("BEHAVIOUR_STATE_UNAVAILABLE", `behaviour state: Redis unavailable (${this.client.status}): ${message}`, [], { cause: err });
  }

  /**
   * Before the first connection, waits for it (at most the command timeout; every caller waiting
   * at the same time shares one wait and one listener); afterwards, fails fast.
   */
  private connected(): Promise<void> {
    if (this.everReady) return Promise.resolve();
    return this.readiness.wait(() => this.unavailable(new Error("not connected")));
  }

  private script(name: string): ScriptCall {
    const fn: unknown = Reflect.get(this.client, name);
    if (typeof fn !== "function") throw new TypeError(`behaviour state: ${name} is not defined on the client`);
    const client = this.client;
    return (numKeys, ...args) =>
      Promise.resolve(Reflect.apply(fn, client, [numKeys, ...args]) as unknown).catch((err: unknown) => {
        throw this.unavailable(err);
      });
  }
}
