/**
 * Increasing nonces across restarts (Kraken's rule). A single-use value is fenced by time after a
 * restart (claims.ts `fenced`), but an increasing nonce carries no time: a captured request stays
 * valid for as long as the hot state remembers nothing above its nonce, so losing that state (a
 * gateway restart with memory hot state, a Redis restart without persistence) would make every
 * request ever accepted acceptable again. The highest value accepted must therefore be durable
 * before the request is forwarded.
 *
 * Writing every value durably would cost a synchronous disk write per request. Instead each key
 * RESERVES values ahead: when a value above the key's reservation arrives, the reservation is
 * raised, durably, to that value plus what the key's nonces advance in `aheadMs` (one second by
 * default) at the rate they have been advancing, and the request waits for that write; the values
 * up to the reservation need no write. After a restart, a new epoch of hot state starts from the
 * durable reservations as FLOORS: a value at or below its key's floor is "too low". So:
 *
 * - nothing accepted before a restart is accepted again (every accepted value was at or below a
 *   reservation made durable before it was forwarded);
 * - an honest client loses at most `aheadMs` of its nonces after a restart: a client whose nonce
 *   is a clock (milliseconds or microseconds, as the venues' own libraries send) is refused
 *   NONCE_NOT_INCREASING for about a second, a counter for about a second's worth of requests;
 * - a key writes about once per `aheadMs` while it is busy, never per request.
 *
 * The rate is learnt per key, cautiously: it starts at `INITIAL_RATE` and may at most double from
 * one reservation to the next, so one jump of a client's nonce does not reserve a huge range
 * (which would lock a counter-based client out after a restart); a rate that falls is followed at
 * once.
 */

/** The durable side: one reservation (a ceiling) per key, only ever raised. */
export interface ReservationStore {
  /** Every key's reservation. */
  reservations(): Promise<ReadonlyMap<string, bigint>>;
  /** Raises `keyId`'s reservation to `ceiling` (never lowers it); durable when it resolves. */
  reserve(keyId: string, ceiling: bigint): Promise<void>;
}

/** Values per ms a key is assumed to advance at before anything is known (ten a second). */
const INITIAL_RATE = 0.01;
/** The largest reservation ahead, whatever the rate (values). */
const MAX_AHEAD = 2n ** 62n;

interface KeyReservation {
  /** The reservation known durable. */
  durable: bigint;
  /** The reservation being written (>= durable), and the write; null when none is pending. */
  pending: { readonly ceiling: bigint; readonly write: Promise<void> } | null;
  /** The value and time of the last raise, and the rate then (values per ms); null before any. */
  lastValue: bigint | null;
  lastAt: number;
  rate: number | null;
}

export interface SequenceReservationsOptions {
  /** How far ahead a key reserves, in the time its nonces take to advance (ms); default 1000. */
  readonly aheadMs?: number;
}

export class SequenceReservations {
  private readonly aheadMs: number;
  /** The floors of the current epoch: every reservation as it was when the epoch began. */
  private floors: ReadonlyMap<string, bigint> | null = null;
  private loading: Promise<void> | null = null;
  private readonly keys = new Map<string, KeyReservation>();

  constructor(
    private readonly store: ReservationStore,
    options: SequenceReservationsOptions = {},
  ) {
    this.aheadMs = options.aheadMs ?? 1000;
    if (!Number.isInteger(this.aheadMs) || this.aheadMs < 0) throw new RangeError("aheadMs must be a non-negative integer");
  }

  /** True once the current epoch's floors are loaded (`floor` may be called). */
  get ready(): boolean {
    return this.floors !== null;
  }

  /**
   * Starts an epoch: loads every key's reservation as its floor. Called when hot state begins
   * empty (a process starts with memory hot state; Redis restarted). Concurrent calls share one
   * load; a failed load leaves the reservations not ready (the hot store fails closed).
   */
  begin(): Promise<void> {
    this.loading ??= this.store.reservations().then(
      (all) => {
        this.floors = all;
        this.loading = null;
        for (const [keyId, ceiling] of all) {
          const state = this.keys.get(keyId);
          if (state === undefined) this.keys.set(keyId, { durable: ceiling, pending: null, lastValue: null, lastAt: 0, rate: null });
          else if (ceiling > state.durable) state.durable = ceiling;
        }
      },
      (err: unknown) => {
        this.loading = null;
        throw err;
      },
    );
    return this.loading;
  }

  /** Values at or below this are too low for `keyId` in this epoch (undefined: no floor). */
  floor(keyId: string): bigint | undefined {
    if (this.floors === null) throw new Error("sequence reservations: floors not loaded (call begin)");
    return this.floors.get(keyId);
  }

  /**
   * Before `value` is claimed for `keyId` at `now`: undefined when it is already covered by a
   * durable reservation; else a promise that resolves once a reservation covering it is durable
   * (rejects when it cannot be written: the request must then be refused).
   */
  reserve(keyId: string, value: bigint, now: number): Promise<void> | undefined {
    let state = this.keys.get(keyId);
    if (state === undefined) {
      state = { durable: -1n, pending: null, lastValue: null, lastAt: 0, rate: null };
      this.keys.set(keyId, state);
    }
    if (value <= state.durable) return undefined;
    const pending = state.pending;
    if (pending !== null && value <= pending.ceiling) return pending.write;
    const ceiling = value + this.ahead(state, value, now);
    const write = this.store.reserve(keyId, ceiling).then(
      () => {
        if (ceiling > state.durable) state.durable = ceiling;
        if (state.pending?.write === write) state.pending = null;
      },
      (err: unknown) => {
        if (state.pending?.write === write) state.pending = null;
        throw err;
      },
    );
    state.pending = { ceiling, write };
    return write;
  }

  /** How far beyond `value` to reserve: `aheadMs` at the key's learnt rate (0 for the first value). */
  private ahead(state: KeyReservation, value: bigint, now: number): bigint {
    const last = state.lastValue;
    const lastAt = state.lastAt;
    state.lastValue = value;
    state.lastAt = now;
    if (last === null || value <= last) return 0n;
    const instant = Number(value - last) / Math.max(1, now - lastAt);
    const cap = state.rate === null ? INITIAL_RATE : 2 * state.rate;
    const rate = instant < cap ? instant : cap;
    state.rate = rate;
    const ahead = Math.ceil(rate * this.aheadMs);
    if (!Number.isFinite(ahead) || ahead <= 0) return 0n;
    const big = BigInt(ahead);
    return big > MAX_AHEAD ? MAX_AHEAD : big;
  }
}
