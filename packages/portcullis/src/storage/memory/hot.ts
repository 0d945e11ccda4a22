import { randomUUID } from "node:crypto";
import { type Tat, gcra } from "../../limits/gcra.js";
import { DEFAULT_SHIELD_POLICY, type ShieldPolicy } from "../../limits/types.js";
import type { ChargeState } from "../../contract/limits.js";
import type { Admission, AdmissionResult, EndedSessionStore, FailureResult, FallbackHotStore, MetaStore, StrikeResult } from "../types.js";
import type { ReplayClaim } from "../../contract/request.js";
import { fenced } from "../../replay/claims.js";
import { MemoryNonceStore } from "../../replay/nonces.js";
import type { SequenceReservations } from "../../replay/reservations.js";
import { MemorySequenceStore } from "../../replay/sequences.js";
import { MemoryOpenOrders } from "./open-orders.js";

/**
 * The embedded hot store: replay state, GCRA buckets, bans and blocks in process memory.
 * Logged-out sessions are remembered until they would have expired anyway.
 * Everything an admission decides happens synchronously in one turn of the event loop, so
 * all-or-nothing is simply "decide everything, then write": nothing is written when anything
 * refuses. Buckets that have drained are swept a few at a time on each admission (a round-robin
 * cursor), so memory follows the number of active clients, not the number ever seen.
 *
 * Restarts. This memory begins empty when the process starts, so a request accepted by the
 * process before would be accepted again. Two things prevent it (replay/claims.ts `fenced`,
 * replay/reservations.ts): a single-use claim of a request that could have been accepted before
 * `epochStart` is refused ("fenced"), and an increasing nonce at or below its key's durable
 * reservation is "too low". With `served` (the durable store's meta), the first process ever to
 * serve from a durable store is not fenced: no process before it accepted anything. With
 * `logouts`, the sessions ended before the restart are refused again. The first
 * admission waits for those durable reads (once); every later one is decided synchronously,
 * except an increasing nonce that raises its key's reservation, which waits for that write.
 */
export interface MemoryHotStoreOptions {
  readonly policy?: ShieldPolicy;
  /** Nonce capacity (fail closed beyond it). */
  readonly nonceCapacity?: number;
  /** Addresses whose bans are remembered at most (default 100 000; the oldest is forgotten first). */
  readonly maxBans?: number;
  /** When this memory began (epoch ms, the clock admissions use); default Date.now() at construction. */
  readonly epochStart?: number;
  /** Durable reservations for increasing nonces; without them, those are remembered by this process only. */
  readonly reservations?: SequenceReservations;
  /** Records the first process to serve from a durable store (its meta), which needs no fence. */
  readonly served?: MetaStore;
  /** Sessions ended by logout before this memory began, refused again (the durable record). */
  readonly logouts?: EndedSessionStore;
}

/** The meta entry naming the first process that kept replay state in its memory for this store. */
export const SERVED_META = "replay.memory.served";

interface Ban {
  until: number;
  /** Bans so far (each doubles the next), forgotten after a quiet day. */
  count: number;
}

/** A bucket's stored TAT, updated in place; `expires` is when it has drained (forgettable). */
interface Bucket {
  ms: number;
  rem: number;
  expires: number;
}

const SWEEP_PER_ADMISSION = 4;
const BAN_MEMORY_MS = 86_400_000;
/**
 * Addresses whose bans are remembered at most (as the shield's own list): an attacker rotating
 * IPv6 prefixes could otherwise grow the list for a day. At the cap the oldest is forgotten —
 * its next ban then starts short again, which costs escalation, never a ban in force for long.
 */
const MAX_BANS = 100_000;

export class MemoryHotStore implements FallbackHotStore {
  readonly kind = "memory";
  /** The open-notional ledger (docs/guardrails.md), in this process's memory. */
  readonly openOrders = new MemoryOpenOrders();
  private readonly nonces: MemoryNonceStore;
  private readonly sequences = new MemorySequenceStore();
  private readonly tats = new Map<string, Bucket>();
  private readonly bans = new Map<string, Ban>();
  /** Logged-out sessions: id -> until when they must stay refused. */
  private readonly revokedSessions = new Map<string, number>();
  private cursor: IterableIterator<[string, Bucket]> | null = null;
  private readonly policy: ShieldPolicy;
  private readonly maxBans: number;
  /** Admissions so far: lapsed bans are swept every 1024th. */
  private admissions = 0;
  private readonly epochStart: number;
  /** Single-use claims acceptable before this are fenced (epochStart, or -Infinity on a first start). */
  private fence: number;
  private readonly reservations: SequenceReservations | null;
  private readonly served: MetaStore | null;
  private readonly logouts: EndedSessionStore | null;
  /** False until the durable reads the first admission needs are done. */
  private opened: boolean;
  private opening: Promise<void> | null = null;

  constructor(options: MemoryHotStoreOptions = {}) {
    this.policy = options.policy ?? DEFAULT_SHIELD_POLICY;
    this.maxBans = options.maxBans ?? MAX_BANS;
    this.nonces = new MemoryNonceStore(options.nonceCapacity);
    this.epochStart = options.epochStart ?? Date.now();
    if (!Number.isFinite(this.epochStart)) throw new RangeError("epochStart must be a time (ms)");
    this.fence = this.epochStart;
    this.reservations = options.reservations ?? null;
    this.served = options.served ?? null;
    this.logouts = options.logouts ?? null;
    this.opened = this.reservations === null && this.served === null && this.logouts === null;
  }

  /** Buckets held (for tests and metrics). */
  get buckets(): number {
    return this.tats.size;
  }

  admit(a: Admission): AdmissionResult | Promise<AdmissionResult> {
    if (!this.opened) return this.open().then(() => this.admit(a));
    const replay = a.replay;
    if (replay !== null && replay.kind === "sequence" && this.reservations !== null) {
      // Reserved durably before it is claimed: a value is never accepted uncovered.
      const reserved = this.reservations.reserve(replay.keyId, replay.value, a.now);
      if (reserved !== undefined) return reserved.then(() => this.decide(a));
    }
    return this.decide(a);
  }

  /**
   * The durable reservations (as floors) and logouts are read again by the next admission,
   * keeping what this memory holds. For the stand-in of a shared store, at the start of each
   * outage: what the shared store saw since is then known here too.
   */
  reload(): void {
    if (this.served !== null) return; // a store that fences by the served marker reads it once
    this.opening = null;
    this.opened = this.reservations === null && this.logouts === null;
  }

  async epoch(): Promise<number> {
    if (!this.opened) await this.open();
    return this.fence;
  }

  /** The durable reads before the first admission: is this a restart, and the reservations' floors. */
  private open(): Promise<void> {
    this.opening ??= (async () => {
      if (this.served !== null) {
        const mine = `${this.epochStart}:${randomUUID()}`;
        const first = (await this.served.initMeta(SERVED_META, mine)) === mine;
        this.fence = first ? -Infinity : this.epochStart;
      }
      if (this.reservations !== null) await this.reservations.begin();
      if (this.logouts !== null) {
        for (const [id, until] of await this.logouts.endedSessions(this.epochStart)) this.revokeSession(id, until, this.epochStart);
      }
      this.opened = true;
    })().catch((err: unknown) => {
      this.opening = null;
      throw err;
    });
    return this.opening;
  }

  private decide(a: Admission): AdmissionResult {
    const now = a.now;
    this.sweep(now);
    const ban = this.bans.get(a.ip);
    if (ban !== undefined && ban.until > now) return { ok: false, reason: "banned", until: ban.until };
    if (a.session !== null && (this.revokedSessions.get(a.session) ?? 0) > now) return { ok: false, reason: "session-revoked" };

    const charges = a.charges;
    const states: ChargeState[] = new Array<ChargeState>(charges.length);
    const tats: Tat[] = new Array<Tat>(charges.length);
    for (let i = 0; i < charges.length; i++) {
      const c = charges[i];
      if (c === undefined) continue;
      const d = gcra(c, this.tats.get(c.bucket), c.cost, now);
      states[i] = { remaining: d.remaining, resetMs: d.resetMs };
      if (!d.allowed) {
        return { ok: false, reason: "limited", index: i, retryAfterMs: d.retryAfterMs, states, bannedUntil: this.strikeOnce(a.ip, now) };
      }
      tats[i] = d.tat;
    }
    if (a.replay !== null) {
      const claim = this.claim(a.replay, now);
      if (claim !== "fresh") return { ok: false, reason: claim };
    }
    for (let i = 0; i < charges.length; i++) {
      const c = charges[i];
      const tat = tats[i];
      if (c === undefined || tat === undefined) continue;
      this.store(c.bucket, tat);
    }
    return { ok: true, states };
  }

  recordFailure(ip: string, key: string | null, now: number): FailureResult {
    const p = this.policy;
    const window = { limit: p.authFailuresPerIp, windowMs: p.authFailureWindowMs };
    let ipBlockedUntil: number | null = null;
    let keyBlockedUntil: number | null = null;
    if (!this.charge(`fail:ip:${ip}`, window, now)) ipBlockedUntil = now + p.authBlockMs;
    // Per key AND address: failures from elsewhere never block the key for its owner.
    if (key !== null && !this.charge(`fail:key:${key}|${ip}`, { limit: p.authFailuresPerKey, windowMs: p.authFailureWindowMs }, now)) {
      keyBlockedUntil = now + p.authBlockMs;
    }
    return { ipBlockedUntil, keyBlockedUntil };
  }

  strike(ip: string, now: number): StrikeResult {
    const ban = this.bans.get(ip);
    if (ban !== undefined && ban.until > now) return { bannedUntil: ban.until };
    return { bannedUntil: this.strikeOnce(ip, now) };
  }

  revokeSession(sessionId: string, until: number, now: number): void {
    if (until > now) this.revokedSessions.set(sessionId, Math.max(until, this.revokedSessions.get(sessionId) ?? 0));
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  private claim(replay: ReplayClaim, now: number): "fresh" | "replayed" | "too-low" | "fenced" | "full" {
    if (replay.kind === "nonce") {
      if (fenced(replay, this.fence)) return "fenced";
      return this.nonces.claim(replay.keyId, replay.value, replay.expiresAt, now);
    }
    const floor = this.reservations?.floor(replay.keyId);
    if (floor !== undefined && replay.value <= floor) return "too-low";
    return this.sequences.claim(replay.keyId, replay.value, replay.window);
  }

  /** Charges one unit; false when the bucket refuses. */
  private charge(bucket: string, limit: { limit: number; windowMs: number }, now: number): boolean {
    const d = gcra(limit, this.tats.get(bucket), 1, now);
    if (!d.allowed) return false;
    this.store(bucket, d.tat);
    return true;
  }

  /**
   * Writes a bucket's TAT: in place when the bucket exists (no allocation, one lookup), else as a
   * new entry. The sweep visits every entry in turn whatever their order, so updating in place
   * does not keep a drained bucket from being forgotten.
   */
  private store(bucket: string, tat: Tat): void {
    const entry = this.tats.get(bucket);
    if (entry === undefined) {
      this.tats.set(bucket, { ms: tat.ms, rem: tat.rem, expires: tat.ms + 1 });
      return;
    }
    entry.ms = tat.ms;
    entry.rem = tat.rem;
    entry.expires = tat.ms + 1;
  }

  /** A refused request from `ip`: one strike; too many strikes, a growing ban. */
  private strikeOnce(ip: string, now: number): number | null {
    const p = this.policy;
    if (this.charge(`strike:${ip}`, { limit: p.strikes, windowMs: p.strikeWindowMs }, now)) return null;
    const previous = this.bans.get(ip);
    const count = previous !== undefined && now - previous.until < BAN_MEMORY_MS ? previous.count + 1 : 1;
    const until = now + Math.min(p.banBaseMs * 2 ** (count - 1), p.banMaxMs);
    if (previous === undefined && this.bans.size >= this.maxBans) {
      const oldest = this.bans.keys().next();
      if (oldest.done !== true) this.bans.delete(oldest.value);
    }
    // Re-inserted, so the list is ordered by last ban and the cap forgets the quietest.
    this.bans.delete(ip);
    this.bans.set(ip, { until, count });
    return until;
  }

  /** Forgets a few drained buckets and lapsed bans per call. */
  private sweep(now: number): void {
    for (let i = 0; i < SWEEP_PER_ADMISSION; i++) {
      if (this.cursor === null) this.cursor = this.tats.entries();
      const next = this.cursor.next();
      if (next.done === true) {
        this.cursor = null;
        break;
      }
      const [bucket, tat] = next.value;
      if (tat.expires <= now) this.tats.delete(bucket);
    }
    if ((++this.admissions & 0x3ff) === 0) {
      for (const [ip, ban] of this.bans) if (now - ban.until > BAN_MEMORY_MS) this.bans.delete(ip);
      for (const [id, until] of this.revokedSessions) if (until <= now) this.revokedSessions.delete(id);
    }
  }
}
