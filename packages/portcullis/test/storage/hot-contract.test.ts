import fc from "fast-check";
import { Redis } from "ioredis";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { DEFAULT_SHIELD_POLICY, type ShieldPolicy } from "../../src/limits/types.js";
import type { Charge, ChargeState } from "../../src/contract/limits.js";
import { MemoryHotStore } from "../../src/storage/memory/hot.js";
import { RedisHotStore, hotRedisOptions } from "../../src/storage/redis/hot.js";
import type { Admission, AdmissionResult, HotStore } from "../../src/storage/types.js";
import type { ReplayClaim } from "../../src/contract/request.js";
import { IN_CI, SHARED_REDIS_URL, deleteKeys, keysUnder, loudSkip, redisReachable, uniquePrefix } from "../support/redis.js";
import { referenceSequence } from "../support/reference-sequence.js";
import { SequenceReservations } from "../../src/replay/reservations.js";
import { SqliteStore } from "../../src/storage/sqlite/store.js";

/**
 * One contract, two hot stores: process memory and Redis. Every test runs against both with a
 * frozen clock (each admission carries its `now`; nothing sleeps). The Redis half uses the shared
 * Redis at 127.0.0.1:6379 under a random key prefix per test, deleted afterwards; without that
 * Redis it is skipped loudly — except in CI (CI=true), where it fails.
 */

const redisUp = await redisReachable(SHARED_REDIS_URL);
const runRedis = redisUp || IN_CI;
if (!runRedis) loudSkip("the Redis half of the hot-store contract suite", `no Redis answers at ${SHARED_REDIS_URL}`);

const T0 = 1_700_000_000_000;
const IP = "198.51.100.7";
const DAY = 86_400_000;

/** No bans: for tests about limits alone. */
const NO_BANS: ShieldPolicy = { ...DEFAULT_SHIELD_POLICY, strikes: 1_000_000 };
const STRICT: ShieldPolicy = {
  strikes: 3,
  strikeWindowMs: 60_000,
  banBaseMs: 1_000,
  banMaxMs: 5_000,
  authFailuresPerIp: 3,
  authFailuresPerKey: 2,
  authFailureWindowMs: 60_000,
  authBlockMs: 300_000,
};

function charge(bucket: string, limit: number, windowMs: number, cost = 1): Charge {
  return { spec: { name: bucket, scope: "ip", kind: "weight", limit, windowMs }, bucket, limit, windowMs, cost };
}

function admission(now: number, charges: readonly Charge[], replay: ReplayClaim | null = null, ip = IP, session: string | null = null): Admission {
  return { now, ip, replay, charges, session };
}

/** A single-use claim of a request acceptable from `since` (by default: long after every store's memory began). */
function nonce(keyId: string, value: string, expiresAt: number, since = T0 - 1_000): ReplayClaim {
  return { kind: "nonce", keyId, value, since, expiresAt };
}

function sequence(keyId: string, value: bigint, window: bigint): ReplayClaim {
  return { kind: "sequence", keyId, value, window };
}

interface OpenOptions {
  readonly policy?: ShieldPolicy;
  /**
   * The clock reading when the store's memory begins (default: a day before T0). Memory begins
   * exactly then; Redis began its uptime before it (the store reads INFO: now − uptime).
   */
  readonly epochAt?: number;
  readonly reservations?: SequenceReservations;
}

interface Backend {
  readonly name: "memory" | "redis";
  open(options?: OpenOptions): HotStore;
  /** After each test: close the stores, delete their keys. */
  cleanup(): Promise<void>;
  /** After the suite. */
  end(): Promise<void>;
}

const memoryBackend: Backend = {
  name: "memory",
  open: (options = {}) =>
    new MemoryHotStore({
      epochStart: options.epochAt ?? T0 - DAY,
      ...(options.policy === undefined ? {} : { policy: options.policy }),
      ...(options.reservations === undefined ? {} : { reservations: options.reservations }),
    }),
  cleanup: () => Promise.resolve(),
  end: () => Promise.resolve(),
};

class RedisBackend implements Backend {
  readonly name = "redis";
  private client: Redis | null = null;
  private opened: { store: RedisHotStore; prefix: string }[] = [];

  /** One client shared by the suite's stores (a passed-in client: `close` leaves it open). */
  shared(): Redis {
    if (this.client === null) {
      this.client = new Redis(SHARED_REDIS_URL, hotRedisOptions(5_000));
      this.client.on("error", () => undefined);
    }
    return this.client;
  }

  open(options: OpenOptions = {}): RedisHotStore {
    return this.openWith(options).store;
  }

  openWith(options: OpenOptions & { sequenceLimit?: number; client?: Redis; prefix?: string; runs?: SqliteStore } = {}): { store: RedisHotStore; prefix: string } {
    const prefix = options.prefix ?? uniquePrefix("contract");
    const { epochAt, ...rest } = options;
    const at = epochAt ?? T0 - DAY;
    const store = new RedisHotStore({ ...rest, now: () => at, client: options.client ?? this.shared(), prefix });
    const opened = { store, prefix };
    this.opened.push(opened);
    return opened;
  }

  async cleanup(): Promise<void> {
    const opened = this.opened;
    this.opened = [];
    for (const { store, prefix } of opened) {
      await store.close();
      await deleteKeys(this.shared(), prefix);
    }
  }

  async end(): Promise<void> {
    await this.cleanup();
    if (this.client !== null) await this.client.quit();
    this.client = null;
  }
}

const redisBackend = new RedisBackend();
const backends: Backend[] = runRedis ? [memoryBackend, redisBackend] : [memoryBackend];

/**
 * The reference limiter: a leaky bucket ("GCRA as a meter", ITU-T I.371's continuous-state leaky
 * bucket). The bucket holds up to `limit` units and drains continuously at limit/windowMs units per
 * ms; a request of `cost` is admitted iff it fits (level + cost ≤ limit), and then fills it by
 * `cost`. GCRA's virtual scheduling is the same algorithm in other variables (TAT − now = the
 * level in time units), so this is the model GCRA must equal. A sliding log ("the costs admitted
 * in (now − window, now] plus this one ≤ limit") is NOT: it forgets a burst all at once a window
 * later, where the bucket drains it steadily — after a burst of `limit`, the bucket admits one
 * more unit every window/limit ms, which a sliding log refuses until the burst leaves its window
 * (see "GCRA is a leaky bucket, not a sliding log" below).
 *
 * Exact integers: the level is kept multiplied by windowMs, so it drains by `limit` per ms.
 */
class LeakyBucket {
  private level = 0;
  private last = 0;

  constructor(
    readonly limit: number,
    readonly windowMs: number,
  ) {}

  private levelAt(now: number): number {
    return Math.max(0, this.level - (now - this.last) * this.limit);
  }

  /** What admitting `cost` at `now` would answer, without doing it. */
  peek(now: number, cost: number): { ok: boolean; state: ChargeState; retryAfterMs: number } {
    const capacity = this.limit * this.windowMs;
    const level = this.levelAt(now);
    const after = level + cost * this.windowMs;
    if (after <= capacity) {
      return { ok: true, state: { remaining: Math.floor((capacity - after) / this.windowMs), resetMs: Math.ceil(after / this.limit) }, retryAfterMs: 0 };
    }
    return {
      ok: false,
      state: { remaining: Math.max(0, Math.floor((capacity - level) / this.windowMs)), resetMs: Math.ceil(level / this.limit) },
      retryAfterMs: Math.ceil((after - capacity) / this.limit),
    };
  }

  take(now: number, cost: number): void {
    this.level = this.levelAt(now) + cost * this.windowMs;
    this.last = now;
  }
}

/** All-or-nothing over several reference buckets, as an AdmissionResult. */
function referenceAdmit(buckets: readonly LeakyBucket[], costs: readonly number[], now: number): AdmissionResult {
  const states = new Array<ChargeState>(buckets.length);
  for (let i = 0; i < buckets.length; i++) {
    const b = buckets[i];
    const cost = costs[i];
    if (b === undefined || cost === undefined) throw new Error("bad test input");
    const d = b.peek(now, cost);
    states[i] = d.state;
    if (!d.ok) return { ok: false, reason: "limited", index: i, retryAfterMs: d.retryAfterMs, states, bannedUntil: null };
  }
  buckets.forEach((b, i) => {
    b.take(now, costs[i] ?? 0);
  });
  return { ok: true, states };
}

function replayAnswer(r: AdmissionResult): string {
  return r.ok ? "fresh" : r.reason;
}

describe.each(backends)("hot store contract: $name", (backend) => {
  afterEach(async () => {
    await backend.cleanup();
  });
  afterAll(async () => {
    await backend.end();
  });

  if (backend.name === "redis") {
    it("has a Redis to run against (required in CI)", () => {
      expect(redisUp, `no Redis at ${SHARED_REDIS_URL}`).toBe(true);
    });
  }

  describe("admission", () => {
    it("admits a request with no charges and no replay claim", async () => {
      const store = backend.open();
      expect(await store.admit(admission(T0, []))).toEqual({ ok: true, states: [] });
    });

    it("admits a charged request and reports the state of every charge", async () => {
      const store = backend.open();
      const r = await store.admit(admission(T0, [charge("a", 10, 1_000, 3), charge("b", 7, 60_000)]));
      expect(r).toEqual({ ok: true, states: [{ remaining: 7, resetMs: 300 }, { remaining: 6, resetMs: 8572 }] });
    });

    it("GCRA at the window's edges: 7 per minute, exactly 7 in a burst, the next exactly T = 60000/7 ms later", async () => {
      const store = backend.open({ policy: NO_BANS });
      const c = charge("edge", 7, 60_000);
      for (let i = 0; i < 7; i++) {
        const r = await store.admit(admission(T0, [c]));
        expect(r).toEqual({ ok: true, states: [{ remaining: 6 - i, resetMs: Math.ceil(((i + 1) * 60_000) / 7) }] });
      }
      expect(await store.admit(admission(T0, [c]))).toEqual({
        ok: false,
        reason: "limited",
        index: 0,
        retryAfterMs: 8572, // ⌈60000/7⌉
        states: [{ remaining: 0, resetMs: 60_000 }],
        bannedUntil: null,
      });
      // 8571 ms later the bucket has drained 8571·7 = 59 997 of the 60 000 units·ms a request needs.
      expect(await store.admit(admission(T0 + 8571, [c]))).toMatchObject({ ok: false, reason: "limited", retryAfterMs: 1 });
      expect(await store.admit(admission(T0 + 8572, [c]))).toEqual({ ok: true, states: [{ remaining: 0, resetMs: 60_000 }] });
      expect(await store.admit(admission(T0 + 8572, [c]))).toMatchObject({ ok: false, retryAfterMs: 8571 });
      // A full window after the last admission the bucket is full again.
      expect(await store.admit(admission(T0 + 8572 + 60_000, [c]))).toEqual({ ok: true, states: [{ remaining: 6, resetMs: 8572 }] });
    });

    it("weighted requests: cost counts in units, retryAfterMs is when this cost fits", async () => {
      const store = backend.open({ policy: NO_BANS });
      const c = charge("weighted", 100, 1_000, 30);
      for (let i = 0; i < 3; i++) expect(await store.admit(admission(T0, [c]))).toMatchObject({ ok: true });
      expect(await store.admit(admission(T0, [c]))).toEqual({
        ok: false,
        reason: "limited",
        index: 0,
        retryAfterMs: 200,
        states: [{ remaining: 10, resetMs: 900 }],
        bannedUntil: null,
      });
      expect(await store.admit(admission(T0 + 199, [c]))).toMatchObject({ ok: false, retryAfterMs: 1 });
      expect(await store.admit(admission(T0 + 200, [c]))).toEqual({ ok: true, states: [{ remaining: 0, resetMs: 1_000 }] });
    });

    it("GCRA is a leaky bucket, not a sliding log: after a burst it admits one more every T", async () => {
      const store = backend.open({ policy: NO_BANS });
      const c = charge("leaky", 7, 60_000);
      for (let i = 0; i < 7; i++) await store.admit(admission(T0, [c]));
      // 8 admitted within 8.6 s: a sliding log of 7 per minute would refuse this one.
      expect((await store.admit(admission(T0 + 8572, [c]))).ok).toBe(true);
    });

    it("several limits are all-or-nothing: a refusal by the second does not consume the first", async () => {
      const store = backend.open({ policy: NO_BANS });
      const wide = charge("wide", 10, 60_000);
      const narrow = charge("narrow", 1, 60_000);
      expect(await store.admit(admission(T0, [wide, narrow]))).toMatchObject({ ok: true, states: [{ remaining: 9 }, { remaining: 0 }] });
      const refused = await store.admit(admission(T0, [wide, narrow]));
      expect(refused).toMatchObject({ ok: false, reason: "limited", index: 1, retryAfterMs: 60_000 });
      expect(refused.ok ? [] : refused.reason === "limited" ? refused.states.slice() : []).toEqual([
        { remaining: 8, resetMs: 12_000 },
        { remaining: 0, resetMs: 60_000 },
      ]);
      // `wide` still has 9: the refused request took nothing.
      expect(await store.admit(admission(T0, [wide]))).toEqual({ ok: true, states: [{ remaining: 8, resetMs: 12_000 }] });
    });

    it("a refusal by the first limit leaves the later charges undecided (states up to the refusing one)", async () => {
      const store = backend.open({ policy: NO_BANS });
      const first = charge("first", 1, 60_000);
      const second = charge("second", 5, 60_000);
      await store.admit(admission(T0, [first]));
      const r = await store.admit(admission(T0, [first, second]));
      expect(r).toMatchObject({ ok: false, reason: "limited", index: 0 });
      if (r.ok || r.reason !== "limited") throw new Error("expected a limit refusal");
      expect(r.states.length).toBe(2);
      expect(r.states[0]).toEqual({ remaining: 0, resetMs: 60_000 });
      expect(r.states[1]).toBeUndefined();
      expect(await store.admit(admission(T0, [second]))).toMatchObject({ ok: true, states: [{ remaining: 4 }] });
    });

    it("admissions sent in one turn (the Redis store pipelines them) are each decided on its own, in order", async () => {
      const store = backend.open({ policy: NO_BANS });
      const c = charge("turn", 10, 60_000);
      const answers = await Promise.all(Array.from({ length: 25 }, async (_, i) => store.admit(admission(T0, [c], nonce("k-turn", `n${i % 20}`, T0 + 30_000)))));
      // 20 distinct nonces and 5 repeats, against 10 units: the first 10 fresh nonces are admitted,
      // in the order sent (remaining 9 … 0), then every other is refused by the limit, never
      // recorded — a repeat of a refused nonce is limited too, not "replayed".
      expect(answers.flatMap((a) => (a.ok ? a.states.map((x) => x.remaining) : []))).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
      expect(answers.slice(10).every((a) => !a.ok && a.reason === "limited")).toBe(true);
    });

    it("a logged-out session is refused until its end, consuming nothing and recording no claim", async () => {
      const store = backend.open({ policy: NO_BANS });
      const c = charge("sess", 10, 60_000);
      const exp = T0 + 30_000;
      await store.revokeSession("sid-out", T0 + 1_000, T0);
      await store.revokeSession("sid-past", T0, T0); // already over: nothing to remember
      expect(await store.admit(admission(T0, [c], nonce("k9", "n1", exp), IP, "sid-out"))).toEqual({ ok: false, reason: "session-revoked" });
      expect(await store.admit(admission(T0 + 999, [c], null, IP, "sid-out"))).toEqual({ ok: false, reason: "session-revoked" });
      // Nothing was consumed or recorded by the refusals: the nonce is fresh, the charge whole.
      expect(await store.admit(admission(T0, [c], nonce("k9", "n1", exp), IP, "sid-other"))).toEqual({ ok: true, states: [{ remaining: 9, resetMs: 6_000 }] });
      expect(await store.admit(admission(T0, [c], null, IP, "sid-past"))).toMatchObject({ ok: true });
      // At its end, the session would have expired anyway: the store forgets it.
      expect(await store.admit(admission(T0 + 1_000, [c], null, IP, "sid-out"))).toMatchObject({ ok: true });
    });

    it("a replayed claim consumes no charge, and a refused charge records no claim", async () => {
      const store = backend.open({ policy: NO_BANS });
      const c = charge("rc", 10, 60_000);
      const tight = charge("tight", 1, 60_000);
      const exp = T0 + 30_000;
      expect(await store.admit(admission(T0, [c], nonce("k1", "n1", exp)))).toMatchObject({ ok: true, states: [{ remaining: 9 }] });
      expect(await store.admit(admission(T0, [c], nonce("k1", "n1", exp)))).toEqual({ ok: false, reason: "replayed" });
      expect(await store.admit(admission(T0, [c]))).toMatchObject({ ok: true, states: [{ remaining: 8 }] });
      // The same for an increasing nonce.
      expect(await store.admit(admission(T0, [c], sequence("k2", 100n, 0n)))).toMatchObject({ ok: true, states: [{ remaining: 7 }] });
      expect(await store.admit(admission(T0, [c], sequence("k2", 100n, 0n)))).toEqual({ ok: false, reason: "replayed" });
      expect(await store.admit(admission(T0, [c], sequence("k2", 99n, 0n)))).toEqual({ ok: false, reason: "too-low" });
      expect(await store.admit(admission(T0, [c]))).toMatchObject({ ok: true, states: [{ remaining: 6 }] });
      // A request refused by a limit leaves its nonce and its sequence value unused.
      await store.admit(admission(T0, [tight]));
      expect(await store.admit(admission(T0, [tight], nonce("k1", "n2", exp)))).toMatchObject({ reason: "limited" });
      expect(await store.admit(admission(T0, [tight], sequence("k2", 101n, 0n)))).toMatchObject({ reason: "limited" });
      expect(await store.admit(admission(T0, [c], nonce("k1", "n2", exp)))).toMatchObject({ ok: true });
      expect(await store.admit(admission(T0, [c], sequence("k2", 101n, 0n)))).toMatchObject({ ok: true });
    });

    it("200 concurrent admissions against a limit of 50 admit exactly 50", async () => {
      const store = backend.open();
      const c = charge("concurrent", 50, 60_000);
      const results = await Promise.all(Array.from({ length: 200 }, async () => store.admit(admission(T0, [c]))));
      const admitted = results.filter((r) => r.ok);
      expect(admitted.length).toBe(50);
      // Every unit handed out once: the remaining counts are 49 … 0, each exactly once.
      const remaining = admitted.map((r) => r.states[0]?.remaining).sort((a, b) => (b ?? 0) - (a ?? 0));
      expect(remaining).toEqual(Array.from({ length: 50 }, (_, i) => 49 - i));
      for (const r of results) if (!r.ok) expect(["limited", "banned"]).toContain(r.reason);
    });
  });

  describe("nonces", () => {
    it("are single-use per key until they expire", async () => {
      const store = backend.open();
      const exp = T0 + 30_000;
      expect(replayAnswer(await store.admit(admission(T0, [], nonce("k", "abc", exp))))).toBe("fresh");
      expect(replayAnswer(await store.admit(admission(T0, [], nonce("k", "abc", exp))))).toBe("replayed");
      expect(replayAnswer(await store.admit(admission(T0 + 29_999, [], nonce("k", "abc", exp))))).toBe("replayed");
      expect(replayAnswer(await store.admit(admission(T0, [], nonce("other", "abc", exp))))).toBe("fresh");
      expect(replayAnswer(await store.admit(admission(T0, [], nonce("k", "abd", exp))))).toBe("fresh");
      // Long after its expiry a nonce is forgotten (the memory store may keep one a little past
      // its expiry — still refusing it — but not for several of its lifetimes).
      expect(replayAnswer(await store.admit(admission(T0 + 150_000, [], nonce("k", "abc", T0 + 180_000))))).toBe("fresh");
      expect(replayAnswer(await store.admit(admission(T0 + 150_001, [], nonce("k", "abc", T0 + 180_000))))).toBe("replayed");
    });

    it("keep key ids and values apart, whatever characters they contain", async () => {
      const store = backend.open();
      const exp = T0 + 30_000;
      expect(replayAnswer(await store.admit(admission(T0, [], nonce("a:b", "c", exp))))).toBe("fresh");
      expect(replayAnswer(await store.admit(admission(T0, [], nonce("a", "b:c", exp))))).toBe("fresh");
      expect(replayAnswer(await store.admit(admission(T0, [], nonce("a", "b:c", exp))))).toBe("replayed");
      expect(replayAnswer(await store.admit(admission(T0, [], nonce("k", "ü/+= *?[x]", exp))))).toBe("fresh");
      expect(replayAnswer(await store.admit(admission(T0, [], nonce("k", "ü/+= *?[x]", exp))))).toBe("replayed");
    });
  });

  describe("restarts: the fence and the reservations", () => {
    it("refuse (fenced) a single-use claim of a request acceptable before the memory began, consuming nothing", async () => {
      const store = backend.open({ epochAt: T0 });
      const start = await store.epoch();
      expect(start).toBeLessThanOrEqual(T0);
      expect(start).toBeGreaterThan(T0 - DAY);
      const limit = [charge("fence", 1, 60_000)];
      expect(replayAnswer(await store.admit(admission(T0, limit, nonce("k", "before", T0 + 30_000, start - 1))))).toBe("fenced");
      // Nothing was consumed: the limit of one still admits, and the value was not recorded.
      expect(replayAnswer(await store.admit(admission(T0, limit, nonce("k", "at-start", T0 + 30_000, start))))).toBe("fresh");
      expect(replayAnswer(await store.admit(admission(T0, [], nonce("k", "before", T0 + 30_000, start))))).toBe("fresh");
      // The limits are decided first, as for every replay answer: spent, it answers "limited".
      expect(replayAnswer(await store.admit(admission(T0, limit, nonce("k", "later", T0 + 30_000, start - 1))))).toBe("limited");
    });

    it("refuse an increasing nonce at or below its key's reservation from an earlier epoch, and reserve before admitting", async () => {
      const durable = new SqliteStore(":memory:");
      try {
        const first = backend.open({ reservations: new SequenceReservations(durable) });
        const claim = async (store: HotStore, v: bigint, now = T0): Promise<string> => replayAnswer(await store.admit(admission(now, [], sequence("k", v, 5n))));
        expect(await claim(first, 100n)).toBe("fresh");
        // Durable before the admission answered.
        expect((await durable.reservations()).get("k")).toBe(100n);
        expect(await claim(first, 103n, T0 + 300)).toBe("fresh");
        const reserved = (await durable.reservations()).get("k") ?? 0n;
        expect(reserved).toBeGreaterThanOrEqual(103n);
        expect(await claim(first, 101n, T0 + 300)).toBe("fresh"); // within the window, this epoch
        // The hot state is lost (a new process; a Redis that restarted empty: a new prefix).
        await backend.cleanup();
        const second = backend.open({ reservations: new SequenceReservations(durable) });
        for (const v of [100n, 101n, 103n, reserved]) expect(await claim(second, v, T0 + 1_000)).toBe("too-low");
        expect(await claim(second, reserved + 1n, T0 + 1_000)).toBe("fresh");
        expect(await claim(second, reserved + 1n, T0 + 1_000)).toBe("replayed");
      } finally {
        await durable.close();
      }
    });
  });

  describe("increasing nonces (sequences)", () => {
    it("with no window: strictly increasing", async () => {
      const store = backend.open();
      const claim = async (key: string, v: bigint): Promise<string> => replayAnswer(await store.admit(admission(T0, [], sequence(key, v, 0n))));
      expect(await claim("k", 10n)).toBe("fresh");
      expect(await claim("k", 10n)).toBe("replayed");
      expect(await claim("k", 9n)).toBe("too-low");
      expect(await claim("k", 11n)).toBe("fresh");
      expect(await claim("other", 1n)).toBe("fresh");
    });

    it("with a window: slightly out-of-order values are accepted once", async () => {
      const store = backend.open();
      const claim = async (v: bigint): Promise<string> => replayAnswer(await store.admit(admission(T0, [], sequence("k", v, 10n))));
      expect(await claim(100n)).toBe("fresh");
      expect(await claim(105n)).toBe("fresh");
      expect(await claim(101n)).toBe("fresh");
      expect(await claim(101n)).toBe("replayed");
      expect(await claim(100n)).toBe("replayed");
      expect(await claim(94n)).toBe("too-low");
      expect(await claim(95n)).toBe("fresh"); // exactly `window` below the highest
      expect(await claim(120n)).toBe("fresh");
      expect(await claim(105n)).toBe("too-low");
      expect(await claim(110n)).toBe("fresh");
      expect(await claim(110n)).toBe("replayed");
    });

    it("is exact for values at and beyond 2^53 and 2^63, up to 2^64 − 1", async () => {
      const store = backend.open();
      const claim = async (key: string, v: bigint, w: bigint): Promise<string> => replayAnswer(await store.admit(admission(T0, [], sequence(key, v, w))));
      // 2^53 and 2^53 + 1 are the same double.
      expect(await claim("d", 2n ** 53n, 4n)).toBe("fresh");
      expect(await claim("d", 2n ** 53n + 1n, 4n)).toBe("fresh");
      expect(await claim("d", 2n ** 53n, 4n)).toBe("replayed");
      expect(await claim("d", 2n ** 53n + 1n, 4n)).toBe("replayed");
      const big = 2n ** 63n - 2n;
      expect(await claim("b", big, 0n)).toBe("fresh");
      expect(await claim("b", big + 1n, 0n)).toBe("fresh");
      expect(await claim("b", big + 2n, 0n)).toBe("fresh"); // 2^63
      expect(await claim("b", big + 1n, 0n)).toBe("too-low");
      const max = 2n ** 64n - 1n;
      expect(await claim("m", max - 3n, 5n)).toBe("fresh");
      expect(await claim("m", max, 5n)).toBe("fresh");
      expect(await claim("m", max - 1n, 5n)).toBe("fresh");
      expect(await claim("m", max - 1n, 5n)).toBe("replayed");
      expect(await claim("m", max - 3n, 5n)).toBe("replayed");
      expect(await claim("m", max - 5n, 5n)).toBe("fresh");
      expect(await claim("m", max - 6n, 5n)).toBe("too-low");
      expect(await claim("m", max, 5n)).toBe("replayed");
      // Shorter decimal strings are smaller numbers (9 < 10, 99 < 100).
      expect(await claim("s", 99n, 0n)).toBe("fresh");
      expect(await claim("s", 100n, 0n)).toBe("fresh");
      expect(await claim("s", 99n, 0n)).toBe("too-low");
    });

    for (const base of [0n, 2n ** 53n - 30n, 2n ** 64n - 70n]) {
      it(`agrees with the documented rule (fast-check, values from ${base})`, async () => {
        const store = backend.open();
        let run = 0;
        await fc.assert(
          fc.asyncProperty(fc.array(fc.bigInt({ min: 0n, max: 60n }), { maxLength: 60 }), fc.bigInt({ min: 0n, max: 8n }), async (offsets, window) => {
            const key = `model-${run++}`;
            const accepted: bigint[] = [];
            for (const o of offsets) {
              const v = base + o;
              const expected = referenceSequence(accepted, v, window);
              const actual = replayAnswer(await store.admit(admission(T0, [], sequence(key, v, window))));
              expect(actual).toBe(expected);
            }
          }),
          { numRuns: backend.name === "memory" ? 500 : 150 },
        );
      });
    }
  });

  describe("strikes, bans, blocks", () => {
    it("strikes lead to a ban; bans grow, are capped, and are forgotten after a quiet day; a banned address consumes nothing", async () => {
      const store = backend.open({ policy: STRICT });
      const x = charge("x", 1, 60_000);
      const spare = charge("spare", 5, 60_000);
      expect((await store.admit(admission(T0, [x]))).ok).toBe(true);
      for (let i = 0; i < 3; i++) expect(await store.admit(admission(T0, [x]))).toMatchObject({ reason: "limited", bannedUntil: null });
      expect(await store.admit(admission(T0, [x]))).toEqual({
        ok: false,
        reason: "limited",
        index: 0,
        retryAfterMs: 60_000,
        states: [{ remaining: 0, resetMs: 60_000 }],
        bannedUntil: T0 + 1_000,
      });
      // Banned: refused before any charge or replay claim is looked at.
      expect(await store.admit(admission(T0 + 500, [spare]))).toEqual({ ok: false, reason: "banned", until: T0 + 1_000 });
      expect(await store.admit(admission(T0 + 999, [spare], nonce("k", "during-ban", T0 + 60_000)))).toEqual({ ok: false, reason: "banned", until: T0 + 1_000 });
      expect(await store.admit(admission(T0 + 500, [x], null, "203.0.113.1"))).toMatchObject({ reason: "limited", bannedUntil: null });
      // Nothing was consumed during the ban.
      expect(await store.admit(admission(T0 + 1_000, [spare], nonce("k", "during-ban", T0 + 60_000)))).toMatchObject({ ok: true, states: [{ remaining: 4 }] });
      // Still over the strike limit: each refusal now bans again, twice as long, up to the cap.
      expect(await store.admit(admission(T0 + 1_000, [x]))).toMatchObject({ reason: "limited", bannedUntil: T0 + 3_000 });
      expect(await store.admit(admission(T0 + 3_000, [x]))).toMatchObject({ reason: "limited", bannedUntil: T0 + 7_000 });
      expect(await store.admit(admission(T0 + 7_000, [x]))).toMatchObject({ reason: "limited", bannedUntil: T0 + 12_000 });
      // Less than a day after the last ban: the count goes on (5th ban: 16 s, capped at 5 s).
      const t1 = T0 + 12_000 + DAY - 1;
      expect((await store.admit(admission(t1, [x]))).ok).toBe(true);
      for (let i = 0; i < 3; i++) expect(await store.admit(admission(t1, [x]))).toMatchObject({ reason: "limited", bannedUntil: null });
      expect(await store.admit(admission(t1, [x]))).toMatchObject({ reason: "limited", bannedUntil: t1 + 5_000 });
      // A quiet day after that ban ended: the next ban is the first again.
      const t2 = t1 + 5_000 + DAY;
      expect((await store.admit(admission(t2, [x]))).ok).toBe(true);
      for (let i = 0; i < 3; i++) expect(await store.admit(admission(t2, [x]))).toMatchObject({ reason: "limited", bannedUntil: null });
      expect(await store.admit(admission(t2, [x]))).toMatchObject({ reason: "limited", bannedUntil: t2 + 1_000 });
    });

    it("replay refusals are not strikes", async () => {
      const store = backend.open({ policy: STRICT });
      await store.admit(admission(T0, [], nonce("k", "once", T0 + 60_000)));
      for (let i = 0; i < 10; i++) expect(await store.admit(admission(T0, [], nonce("k", "once", T0 + 60_000)))).toEqual({ ok: false, reason: "replayed" });
      expect((await store.admit(admission(T0, [charge("free", 5, 1_000)]))).ok).toBe(true);
    });

    it("recordFailure blocks an address and a key after their thresholds", async () => {
      const store = backend.open({ policy: STRICT });
      const none = { ipBlockedUntil: null, keyBlockedUntil: null };
      expect(await store.recordFailure(IP, "key1", T0)).toEqual(none);
      expect(await store.recordFailure(IP, "key1", T0)).toEqual(none);
      expect(await store.recordFailure(IP, "key1", T0)).toEqual({ ipBlockedUntil: null, keyBlockedUntil: T0 + 300_000 });
      expect(await store.recordFailure(IP, "key1", T0)).toEqual({ ipBlockedUntil: T0 + 300_000, keyBlockedUntil: T0 + 300_000 });
      expect(await store.recordFailure(IP, null, T0 + 1)).toEqual({ ipBlockedUntil: T0 + 300_001, keyBlockedUntil: null });
      expect(await store.recordFailure("203.0.113.9", null, T0)).toEqual(none);
      expect(await store.recordFailure("203.0.113.9", "key2", T0)).toEqual(none);
      // A window later the address may fail again; failures are not admissions (no ban).
      expect(await store.recordFailure(IP, null, T0 + 60_000)).toEqual(none);
      expect((await store.admit(admission(T0 + 60_000, [charge("after", 1, 1_000)]))).ok).toBe(true);
    });

    it("a key's failures count per address: failures from other addresses never block it here", async () => {
      const store = backend.open({ policy: { ...STRICT, authFailuresPerIp: 1_000 } });
      const none = { ipBlockedUntil: null, keyBlockedUntil: null };
      // Two failures each from many addresses: far more than the key's threshold in all, none blocked.
      for (let i = 1; i <= 10; i++) {
        for (let j = 0; j < 2; j++) expect(await store.recordFailure(`203.0.113.${i}`, "gateway|victim", T0)).toEqual(none);
      }
      // The address that fails a third time has the key blocked for itself.
      expect(await store.recordFailure("203.0.113.1", "gateway|victim", T0)).toEqual({ ipBlockedUntil: null, keyBlockedUntil: T0 + 300_000 });
      // The owner's address, and another surface from the same address, start from nothing.
      expect(await store.recordFailure(IP, "gateway|victim", T0)).toEqual(none);
      expect(await store.recordFailure("203.0.113.1", "admin|victim", T0)).toEqual(none);
    });

    it("strike: one strike per call, toward the same ban as admission's strikes; a banned address answers its ban", async () => {
      const store = backend.open({ policy: STRICT });
      const x = charge("x", 1, 60_000);
      expect((await store.admit(admission(T0, [x]))).ok).toBe(true);
      // One strike from a refused admission, two from strike(): the fourth is one too many.
      expect(await store.admit(admission(T0, [x]))).toMatchObject({ reason: "limited", bannedUntil: null });
      expect(await store.strike(IP, T0)).toEqual({ bannedUntil: null });
      expect(await store.strike(IP, T0)).toEqual({ bannedUntil: null });
      expect(await store.strike(IP, T0)).toEqual({ bannedUntil: T0 + 1_000 });
      // Banned: the ban is answered, unchanged, and admissions are refused.
      expect(await store.strike(IP, T0 + 500)).toEqual({ bannedUntil: T0 + 1_000 });
      expect(await store.admit(admission(T0 + 500, [charge("spare", 5, 60_000)]))).toEqual({ ok: false, reason: "banned", until: T0 + 1_000 });
      // The next ban of the address is twice as long.
      expect(await store.strike(IP, T0 + 1_000)).toEqual({ bannedUntil: T0 + 3_000 });
      // Another address has its own strikes.
      expect(await store.strike("203.0.113.1", T0)).toEqual({ bannedUntil: null });
    });
  });

  describe("model", () => {
    it("agrees with a reference leaky bucket on random traffic over several limits (fast-check)", async () => {
      const limits: readonly { limit: number; windowMs: number }[] = [
        { limit: 5, windowMs: 2_000 },
        { limit: 3, windowMs: 7_000 },
        { limit: 7, windowMs: 60_000 },
      ];
      const op = fc.record({
        dt: fc.oneof(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: 20_000 })),
        which: fc.constantFrom([0], [1], [2], [0, 1], [1, 0], [0, 1, 2], [2, 1, 0]),
        cost: fc.integer({ min: 0, max: 8 }),
      });
      let run = 0;
      await fc.assert(
        fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 40 }), async (ops) => {
          const store = backend.open({ policy: NO_BANS });
          const tag = `m${run++}`;
          const reference = limits.map((l) => new LeakyBucket(l.limit, l.windowMs));
          let now = T0;
          for (const o of ops) {
            now += o.dt;
            const charges = o.which.map((i) => {
              const l = limits[i];
              if (l === undefined) throw new Error("bad test input");
              return charge(`${tag}-${i}`, l.limit, l.windowMs, o.cost);
            });
            const buckets = o.which.map((i) => reference[i]).filter((b) => b !== undefined);
            const expected = referenceAdmit(
              buckets,
              o.which.map(() => o.cost),
              now,
            );
            expect(await store.admit(admission(now, charges))).toEqual(expected);
          }
        }),
        { numRuns: backend.name === "memory" ? 400 : 150 },
      );
    });
  });
});

describe.runIf(runRedis)("hot store contract: memory and redis answer alike", () => {
  afterEach(async () => {
    await redisBackend.cleanup();
  });
  afterAll(async () => {
    await redisBackend.end();
  });

  it("the same random traffic (limits, strikes, bans, nonces, sequences, failures) gets the same answers (fast-check)", async () => {
    const ips = ["198.51.100.1", "198.51.100.2", "2001:db8::1"];
    const op = fc.oneof(
      {
        weight: 6,
        arbitrary: fc.record({
          kind: fc.constant("admit" as const),
          dt: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 70_000 })),
          ip: fc.integer({ min: 0, max: 2 }),
          which: fc.subarray([0, 1, 2]),
          cost: fc.integer({ min: 0, max: 4 }),
          replay: fc.oneof(
            fc.constant(null),
            fc.record({ kind: fc.constant("nonce" as const), key: fc.integer({ min: 0, max: 1 }), value: fc.integer({ min: 0, max: 5 }) }),
            fc.record({ kind: fc.constant("sequence" as const), key: fc.integer({ min: 0, max: 1 }), value: fc.bigInt({ min: 0n, max: 40n }), window: fc.constantFrom(0n, 3n) }),
          ),
        }),
      },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant("fail" as const), ip: fc.integer({ min: 0, max: 2 }), key: fc.boolean() }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant("strike" as const), ip: fc.integer({ min: 0, max: 2 }) }) },
    );
    const limits: readonly { limit: number; windowMs: number }[] = [
      { limit: 3, windowMs: 1_000 },
      { limit: 10, windowMs: 60_000 },
      { limit: 7, windowMs: 9_000 },
    ];
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 60 }), async (ops) => {
        const memory = memoryBackend.open({ policy: STRICT });
        const redis = redisBackend.open({ policy: STRICT });
        const tag = `x${run++}`;
        let now = T0;
        for (const o of ops) {
          if (o.kind === "fail") {
            const ip = ips[o.ip] ?? IP;
            const key = o.key ? `${tag}-key` : null;
            expect(await redis.recordFailure(ip, key, now)).toEqual(await memory.recordFailure(ip, key, now));
            continue;
          }
          if (o.kind === "strike") {
            const ip = ips[o.ip] ?? IP;
            expect(await redis.strike(ip, now)).toEqual(await memory.strike(ip, now));
            continue;
          }
          now += o.dt;
          const charges = o.which.map((i) => {
            const l = limits[i];
            if (l === undefined) throw new Error("bad test input");
            return charge(`${tag}-${i}`, l.limit, l.windowMs, o.cost);
          });
          let replay: ReplayClaim | null = null;
          if (o.replay?.kind === "nonce") replay = nonce(`${tag}-k${o.replay.key}`, `n${o.replay.value}`, T0 + DAY * 30);
          if (o.replay?.kind === "sequence") replay = sequence(`${tag}-k${o.replay.key}`, o.replay.value, o.replay.window);
          const a = admission(now, charges, replay, ips[o.ip] ?? IP);
          const m = await memory.admit(a);
          const r = await redis.admit(a);
          expect(r).toEqual(m);
        }
      }),
      { numRuns: 200 },
    );
  });

  it("200 concurrent admissions from two stores (two clients) on the same Redis admit exactly 50", async () => {
    const prefix = uniquePrefix("two");
    const one = new RedisHotStore({ url: SHARED_REDIS_URL, prefix, commandTimeoutMs: 5_000 });
    const two = new RedisHotStore({ url: SHARED_REDIS_URL, prefix, commandTimeoutMs: 5_000 });
    try {
      const c = charge("shared", 50, 60_000);
      const results = await Promise.all(Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? one : two).admit(admission(T0, [c]))));
      expect(results.filter((r) => r.ok).length).toBe(50);
      const remaining = results.flatMap((r) => (r.ok ? [r.states[0]?.remaining] : [])).sort((a, b) => (b ?? 0) - (a ?? 0));
      expect(remaining).toEqual(Array.from({ length: 50 }, (_, i) => 49 - i));
    } finally {
      await one.close();
      await two.close();
      await deleteKeys(redisBackend.shared(), prefix);
    }
  });
});

describe.runIf(runRedis)("redis hot store specifics", () => {
  afterEach(async () => {
    await redisBackend.cleanup();
  });
  afterAll(async () => {
    await redisBackend.end();
  });

  it("keeps one epoch per Redis run in a marker every gateway adopts; a marker naming another run (a failover, a snapshot) begins a new one now", async () => {
    const durable = new SqliteStore(":memory:");
    try {
      const prefix = uniquePrefix("runs");
      const probe = new Redis(SHARED_REDIS_URL);
      const uptime = Number(/uptime_in_seconds:(\d+)/.exec(await probe.info("server"))?.[1]);
      // No marker, no record: the server's own start (now − uptime), recorded in the marker.
      const first = redisBackend.openWith({ prefix, epochAt: T0, runs: durable }).store;
      const start = await first.epoch();
      expect(start).toBeLessThanOrEqual(T0 - uptime * 1000);
      const marker = await probe.get(`${prefix}epoch`);
      const run = await durable.getMeta(`replay.redis.run:${prefix}`);
      expect(run).toMatch(/^[0-9a-f]{40}$/);
      expect(marker).toBe(`${run ?? ""}:${String(start)}`);
      // Another gateway, later (or this one restarted): the same epoch, whatever its clock says.
      expect(await redisBackend.openWith({ prefix, epochAt: T0 + 5_000, runs: durable }).store.epoch()).toBe(start);
      // A marker naming another run (the data came from elsewhere): a new epoch, from now.
      await probe.set(`${prefix}epoch`, "00000000000000000000000000000000000000ff:1");
      expect(await redisBackend.openWith({ prefix, epochAt: T0 + 9_000, runs: durable }).store.epoch()).toBe(T0 + 9_000);
      // The marker gone from a run the deployment used (FLUSHALL, eviction): from now too; and a
      // store still holding the old epoch refuses nothing wrongly: it reads the new one and decides.
      await probe.del(`${prefix}epoch`);
      // (Acceptable from just before `first`'s clock reading: inside the old epoch, not the new one.)
      const again = await first.admit(admission(T0 + 12_000, [], nonce("k", "n-after-flush", T0 + 40_000, T0 - 1)));
      expect(again).toEqual({ ok: false, reason: "fenced" });
      expect(await first.epoch()).toBe(T0); // `first`'s clock reads T0: its epoch begins then
      await probe.quit();
    } finally {
      await durable.close();
    }
  });

  it("lays its keys out as documented, with expiries a margin after the logical ones", async () => {
    const { store, prefix } = redisBackend.openWith({ policy: STRICT });
    const client = redisBackend.shared();
    await store.admit(admission(T0, [charge("w|1.2.3.4", 10, 60_000, 2)], nonce("pck_k", "n-1", T0 + 30_000)));
    await store.admit(admission(T0, [], sequence("pck_k", 5n, 2n)));
    await store.admit(admission(T0, [], sequence("pck_k", 7n, 2n)));
    await store.recordFailure(IP, "pck_k", T0);
    const x = charge("x", 1, 60_000);
    for (let i = 0; i < 5; i++) await store.admit(admission(T0, [x]));
    expect(await keysUnder(client, prefix)).toEqual(
      [
        `b:${IP}`,
        "epoch",
        `f:i:${IP}`,
        `f:k:pck_k|${IP}`,
        "n:5:pck_k:n-1",
        "q:pck_k",
        "r:pck_k",
        `s:${IP}`,
        "t:w|1.2.3.4",
        "t:x",
      ]
        .map((k) => prefix + k)
        .sort(),
    );
    expect(await client.get(`${prefix}t:w|1.2.3.4`)).toBe(`${T0 + 12_000}:0`);
    const tatTtl = await client.pttl(`${prefix}t:w|1.2.3.4`);
    expect(tatTtl).toBeGreaterThan(10_000);
    expect(tatTtl).toBeLessThanOrEqual(12_000 + 2_000);
    const nonceTtl = await client.pttl(`${prefix}n:5:pck_k:n-1`);
    expect(nonceTtl).toBeGreaterThan(29_000);
    expect(nonceTtl).toBeLessThanOrEqual(32_000);
    expect(await client.get(`${prefix}b:${IP}`)).toBe(`${T0 + 1_000}:1`);
    expect(await client.pttl(`${prefix}b:${IP}`)).toBeGreaterThan(DAY);
    // Increasing nonces never expire: their state must outlive any replay.
    expect(await client.pttl(`${prefix}q:pck_k`)).toBe(-1);
    expect(await client.pttl(`${prefix}r:pck_k`)).toBe(-1);
    expect(await client.hgetall(`${prefix}q:pck_k`)).toEqual({ h: "017" });
    expect(await client.zrange(`${prefix}r:pck_k`, 0, -1)).toEqual(["015"]);
  });

  it("keeps at most sequenceLimit values per key and never accepts a forgotten value again", async () => {
    const { store, prefix } = redisBackend.openWith({ sequenceLimit: 3 });
    const claim = async (v: bigint): Promise<string> => replayAnswer(await store.admit(admission(T0, [], sequence("k", v, 1000n))));
    expect(await claim(100n)).toBe("fresh");
    for (const v of [90n, 91n, 92n]) expect(await claim(v)).toBe("fresh");
    // {90, 91, 92} held; 93 forgets the lowest (90), which becomes the floor.
    expect(await claim(93n)).toBe("fresh");
    expect(await redisBackend.shared().zcard(`${prefix}r:k`)).toBe(3);
    expect(await claim(90n)).toBe("too-low");
    expect(await claim(89n)).toBe("too-low");
    for (const v of [91n, 92n, 93n, 100n]) expect(await claim(v)).toBe("replayed");
    expect(await claim(95n)).toBe("fresh"); // forgets 91
    expect(await claim(91n)).toBe("too-low");
    expect(await claim(94n)).toBe("fresh");
    // A new highest prunes exactly what falls below its window (here everything, the old highest
    // 100 included), then remembers the old highest when it is still within the window.
    expect(await claim(2_000n)).toBe("fresh");
    expect(await redisBackend.shared().zrange(`${prefix}r:k`, 0, -1)).toEqual([]);
    expect(await claim(1_000n)).toBe("fresh");
    expect(await claim(999n)).toBe("too-low");
    expect(await claim(100n)).toBe("too-low");
    expect(await claim(2_500n)).toBe("fresh");
    // 1000 < 2500 − 1000 is pruned; 2000 is remembered.
    expect(await redisBackend.shared().zrange(`${prefix}r:k`, 0, -1)).toEqual(["042000"]);
    expect(await claim(1_500n)).toBe("fresh");
    expect(await redisBackend.shared().zrange(`${prefix}r:k`, 0, -1)).toEqual(["041500", "042000"]);
  });

  it("refuses inputs it cannot decide exactly (and the memory store would not answer alike)", async () => {
    const store = redisBackend.open();
    await expect(store.admit(admission(T0 + 0.5, [charge("f", 1, 1_000)]))).rejects.toThrow(RangeError);
    await expect(store.admit(admission(T0, [charge("f", 1.5, 1_000)]))).rejects.toThrow(RangeError);
    await expect(store.admit(admission(T0, [], sequence("k", -1n, 0n)))).rejects.toThrow(RangeError);
    await expect(store.recordFailure(IP, null, Number.NaN)).rejects.toThrow(RangeError);
    await expect(store.strike(IP, Number.NaN)).rejects.toThrow(RangeError);
  });

  it("closes the client it created, and leaves a passed-in client open", async () => {
    const own = new RedisHotStore({ url: SHARED_REDIS_URL, prefix: uniquePrefix("own") });
    expect((await own.admit(admission(T0, []))).ok).toBe(true);
    await own.close();
    await expect(own.admit(admission(T0, []))).rejects.toThrow();
    const store = redisBackend.open();
    await store.close();
    expect(await redisBackend.shared().ping()).toBe("PONG");
  });
});
