import { OperatorError } from "../errors/catalogue.js";
import { BEHAVIOUR_STATE_MAX_BYTES, type BehaviourStateStore } from "./types.js";

/**
 * What every behaviour-state store shares (storage/types.ts BehaviourStateStore): the checks of
 * its arguments, its coded error, and the snapshotting pair that keeps a shared store's states
 * (Redis) durable (SQLite).
 *
 * A caller's mistake (an id that is not a non-empty string, bytes over the bound, a bad page size)
 * is a TypeError: the behaviour model is the only caller, and it never hands on anything a client
 * sent unchecked. A failure of the store itself is a BehaviourStateError with a catalogue code.
 */

export type BehaviourStateErrorCode = "BEHAVIOUR_STATE_CONFLICT" | "BEHAVIOUR_STATE_UNAVAILABLE" | "BEHAVIOUR_STATE_MALFORMED";

/** A behaviour-state store's failure; `ids` names the states concerned (empty when all of them). */
export class BehaviourStateError extends OperatorError<BehaviourStateErrorCode> {
  override name = "BehaviourStateError";
  readonly ids: readonly string[];

  constructor(code: BehaviourStateErrorCode, message: string, ids: readonly string[] = [], options?: ErrorOptions) {
    super(code, message, options);
    this.ids = Object.freeze([...ids]);
  }
}

/** The longest id a store accepts: a key id, or `account:` and an account name. */
export const BEHAVIOUR_ID_MAX_LENGTH = 256;
/** The largest page `ids` answers. */
export const BEHAVIOUR_IDS_MAX_PAGE = 10_000;

/** `ids` checked (non-empty strings, at most 256 characters) and without repeats, in their order. */
export function distinctIds(ids: readonly string[]): string[] {
  if (!Array.isArray(ids)) throw new TypeError("behaviour state: ids must be an array of strings");
  const seen = new Set<string>();
  for (const id of ids as readonly unknown[]) {
    if (typeof id !== "string" || id.length === 0 || id.length > BEHAVIOUR_ID_MAX_LENGTH) {
      throw new TypeError(`behaviour state: an id must be a string of 1 to ${BEHAVIOUR_ID_MAX_LENGTH} characters`);
    }
    seen.add(id);
  }
  return [...seen];
}

/** The bytes `apply` returned for `id`, checked: a Uint8Array of at most 2,048 bytes. */
export function checkedState(id: string, bytes: unknown): Uint8Array {
  if (!(bytes instanceof Uint8Array)) throw new TypeError(`behaviour state of ${id}: apply must return a Uint8Array`);
  if (bytes.byteLength > BEHAVIOUR_STATE_MAX_BYTES) {
    throw new TypeError(`behaviour state of ${id}: ${bytes.byteLength} bytes, more than the ${BEHAVIOUR_STATE_MAX_BYTES} a state may hold`);
  }
  return bytes;
}

/** A page request checked: `after` null or a string, `limit` an integer from 1 to 10,000. */
export function checkPage(after: string | null, limit: number): void {
  if (after !== null && typeof after !== "string") throw new TypeError("behaviour state: after must be an id or null");
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > BEHAVIOUR_IDS_MAX_PAGE) {
    throw new TypeError(`behaviour state: limit must be an integer from 1 to ${BEHAVIOUR_IDS_MAX_PAGE}`);
  }
}

/** Byte order of two ids as UTF-8 (the order SQLite's BINARY collation and Redis's lex ranges use). */
export function compareIds(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

export interface SnapshottingOptions {
  /** How often the states this process changed are copied to the durable store (ms); default 10,000. */
  readonly snapshotMs?: number;
  /** States copied per durable transaction; default 500. */
  readonly batchSize?: number;
  /** A snapshot that failed (it is tried again at the next one); default: ignored. */
  readonly onError?: (err: Error) => void;
  /** After each snapshot that wrote something: how many states it copied. */
  readonly onSnapshot?: (written: number) => void;
}

const DEFAULT_SNAPSHOT_MS = 10_000;
const DEFAULT_BATCH = 500;

/**
 * A shared store (Redis) with a durable copy (SQLite): reads and updates go to the primary; the
 * states this process changed are copied to the durable store at most every `snapshotMs`, off the
 * request path (a timer; `flush()` copies at once, `close()` stops the timer after a last copy).
 * When the primary has no state for an id (Redis restarted without its data, or lost the key),
 * `load` answers the durable copy, and `update` applies on top of it, writing the result to the
 * primary: a restart of Redis loses at most what changed since the last snapshot.
 *
 * Each process copies the ids it changed, as the primary holds them at the copy; two processes
 * copying one id at nearly the same time may leave the older of the two copies (the next change
 * of the id copies it again). `remove` forgets an id in both stores. Neither store is closed by
 * `close()`: they are the caller's.
 */
export class SnapshottingBehaviourStore implements BehaviourStateStore {
  readonly kind: string;
  private readonly snapshotMs: number;
  private readonly batchSize: number;
  private readonly onError: (err: Error) => void;
  private readonly onSnapshot: ((written: number) => void) | null;
  /** Ids this process changed since their last copy. */
  private dirty = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  /** Snapshots and removals, one after another (a removal never races a copy of this process). */
  private chain: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly primary: BehaviourStateStore,
    private readonly durable: BehaviourStateStore,
    options: SnapshottingOptions = {},
  ) {
    this.snapshotMs = options.snapshotMs ?? DEFAULT_SNAPSHOT_MS;
    this.batchSize = options.batchSize ?? DEFAULT_BATCH;
    if (!Number.isSafeInteger(this.snapshotMs) || this.snapshotMs < 1) throw new TypeError("snapshotMs must be a positive integer (ms)");
    if (!Number.isSafeInteger(this.batchSize) || this.batchSize < 1) throw new TypeError("batchSize must be a positive integer");
    const onError = options.onError;
    this.onError = onError ?? (() => undefined);
    this.onSnapshot = options.onSnapshot ?? null;
    this.kind = `${primary.kind}+${durable.kind}`;
    this.timer = setInterval(() => {
      if (this.dirty.size > 0) void this.flush().catch(() => undefined);
    }, this.snapshotMs);
    this.timer.unref();
  }

  /** States this process changed that are not copied yet. */
  get pending(): number {
    return this.dirty.size;
  }

  async load(ids: readonly string[]): Promise<Map<string, Uint8Array>> {
    const wanted = distinctIds(ids);
    const found = await this.primary.load(wanted);
    const missing = wanted.filter((id) => !found.has(id));
    if (missing.length === 0) return found;
    for (const [id, bytes] of await this.durable.load(missing)) found.set(id, bytes);
    return found;
  }

  async update(ids: readonly string[], apply: (id: string, current: Uint8Array | null) => Uint8Array): Promise<void> {
    if (this.closed) throw new TypeError("behaviour state: the store is closed");
    const wanted = distinctIds(ids);
    if (wanted.length === 0) return;
    // The durable copies, for the ids the primary may have lost: what `apply` starts from then.
    const fallback = await this.durable.load(wanted);
    try {
      await this.primary.update(wanted, (id, current) => apply(id, current ?? fallback.get(id) ?? null));
    } finally {
      // Also after a partial failure: the ids written are copied, the others are looked up and skipped.
      for (const id of wanted) this.dirty.add(id);
    }
  }

  async remove(ids: readonly string[]): Promise<void> {
    const wanted = distinctIds(ids);
    await this.serially(async () => {
      for (const id of wanted) this.dirty.delete(id);
      await this.primary.remove(wanted);
      await this.durable.remove(wanted);
    });
  }

  async ids(after: string | null, limit: number): Promise<string[]> {
    checkPage(after, limit);
    const [a, b] = await Promise.all([this.primary.ids(after, limit), this.durable.ids(after, limit)]);
    const merged = [...new Set([...a, ...b])].sort(compareIds);
    return merged.slice(0, limit);
  }

  /** Copies every state this process changed to the durable store now; resolves when done. */
  flush(): Promise<void> {
    return this.serially(() => this.copy());
  }

  /** Stops the timer after a last copy. The two stores stay open (they are the caller's). */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    await this.flush();
  }

  private serially(step: () => Promise<void>): Promise<void> {
    const next = this.chain.then(step);
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async copy(): Promise<void> {
    if (this.dirty.size === 0) return;
    const ids = [...this.dirty];
    this.dirty = new Set();
    let written = 0;
    try {
      for (let i = 0; i < ids.length; i += this.batchSize) {
        const batch = ids.slice(i, i + this.batchSize);
        const states = await this.primary.load(batch);
        if (states.size === 0) continue;
        await this.durable.update([...states.keys()], (id) => states.get(id) ?? new Uint8Array(0));
        written += states.size;
      }
    } catch (err) {
      // Copied next time (with whatever changed meanwhile).
      for (const id of ids) this.dirty.add(id);
      const error = err instanceof Error ? err : new Error(String(err));
      this.onError(error);
      throw error;
    }
    if (written > 0) this.onSnapshot?.(written);
  }
}
