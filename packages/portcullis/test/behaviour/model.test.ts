/**
 * The behaviour model (behaviour/model.ts), calibrated on seeded synthetic traffic with simulated
 * time (every time comes from the events): honest bots stay low, the attacks score high
 * within 20 events, a new address alone stays low, cold start uses the account or the defaults,
 * and the state encodes to a fixed size under 2 KB whatever the traffic.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BEHAVIOUR_STATE_BYTES, BEHAVIOUR_WEIGHTS, BehaviourModel, type BehaviourState } from "../../src/behaviour/model.js";
import type { BehaviourEvent, BehaviourScore } from "../../src/contract/behaviour.js";
import {
  DAY,
  HOUR,
  LIQUIDITY,
  MINUTE,
  ROUTES,
  Rng,
  T0,
  arbitrageur,
  cancel,
  ev,
  marketMaker,
  networkOf,
  order,
  type Pattern,
  periodicBuyer,
  portfolioReader,
  read,
  who,
  withdrawal,
  type Who,
} from "./traffic.js";

const model = (): BehaviourModel => new BehaviourModel({ liquidity: (s) => LIQUIDITY[s] });

/** A key and its account, observed as the caller will: the key's score, then the account's fold. */
class Sim {
  key: BehaviourState | null = null;
  account: BehaviourState | null = null;
  constructor(readonly m: BehaviourModel = model()) {}
  observe(e: BehaviourEvent): BehaviourScore {
    const r = this.m.observe(this.key, e, this.account);
    this.key = r.state;
    this.account = this.m.observeAccount(this.account, e);
    return r.score;
  }
  all(events: readonly BehaviourEvent[]): BehaviourScore[] {
    return events.map((e) => this.observe(e));
  }
}

function warmed(pattern: Pattern, seed: number, days: number, w: Who = who(`key-${seed}`, `acct-${seed}`, T0 - DAY)): { sim: Sim; w: Who; end: number; rng: Rng } {
  const rng = new Rng(seed);
  const sim = new Sim();
  const events = pattern(w, rng, T0, days * DAY);
  sim.all(events);
  return { sim, w, end: (events[events.length - 1]?.at ?? T0) + 1, rng };
}

function features(score: BehaviourScore): string[] {
  return score.contributions.map((c) => c.feature);
}

function maxOf(scores: readonly BehaviourScore[]): BehaviourScore {
  let best = scores[0];
  if (best === undefined) throw new Error("no scores");
  for (const s of scores) if (s.score > best.score) best = s;
  return best;
}

describe("honest traffic stays low", () => {
  const cases: [string, Pattern, number][] = [
    ["market maker", marketMaker, 3],
    ["periodic buyer", periodicBuyer, 30],
    ["portfolio reader", portfolioReader, 7],
    ["arbitrageur", arbitrageur, 7],
  ];
  for (const [name, pattern, days] of cases) {
    it(`${name}: ≥ 99.9 % of events below 40 after two days of warm-up (3 seeds)`, () => {
      for (const seed of [1, 2, 3]) {
        const rng = new Rng(seed);
        const w = who(`key-${name}-${seed}`, `acct-${name}-${seed}`, T0 - HOUR);
        const sim = new Sim();
        const events = pattern(w, rng, T0, days * DAY);
        const scores = sim.all(events);
        const after = scores.filter((s) => s.at >= T0 + 2 * DAY);
        const high = after.filter((s) => s.score >= 40);
        expect(after.length).toBeGreaterThan(20);
        expect(high.length / after.length, `${name} seed ${seed}: ${high.length} of ${after.length} ≥ 40, e.g. ${JSON.stringify(high[0])}`).toBeLessThanOrEqual(0.001);
        expect(after.every((s) => s.basis === "key")).toBe(true);
      }
    });
  }

  it("a bot whose cloud host moves (a new address and network every two days) stays below 30, and the move is explained", () => {
    const rng = new Rng(7);
    const w = who("key-mover", "acct-mover", T0 - HOUR, "198.51.100.7");
    const sim = new Sim();
    const scores: BehaviourScore[] = [];
    for (let day = 0; day < 10; day += 2) {
      w.client = `10.${20 + day}.${rng.int(250)}.${1 + rng.int(250)}`;
      w.network = networkOf(w.client);
      scores.push(...sim.all(periodicBuyer(w, rng, T0 + day * DAY, 2 * DAY)));
    }
    const after = scores.filter((s) => s.at >= T0 + DAY);
    const moves = after.filter((s) => features(s).includes("network.new"));
    expect(moves.length).toBeGreaterThan(3);
    expect(Math.max(...after.map((s) => s.score))).toBeLessThan(30);
  });

  it("a market maker moving hosts stays below 30 too", () => {
    const { sim, w, end, rng } = warmed(marketMaker, 8, 2);
    w.client = "192.0.2.44";
    w.network = networkOf(w.client);
    const scores = sim.all(marketMaker(w, rng, end, HOUR));
    expect(features(scores[0] ?? maxOf(scores))).toContain("network.new");
    expect(Math.max(...scores.map((s) => s.score))).toBeLessThan(30);
  });
});

/** The first attack event (1-based) scoring ≥ 70, or Infinity. */
function detectedAt(scores: readonly BehaviourScore[]): number {
  const i = scores.findIndex((s) => s.score >= 70);
  return i < 0 ? Infinity : i + 1;
}

describe("attacks reach 70 within 20 events", () => {
  it("a leaked key used from a new network, on new symbols", () => {
    for (const seed of [11, 111, 211]) {
      const { sim, w, end } = warmed(marketMaker, seed, 3);
      w.client = "100.64.9.9";
      w.network = networkOf(w.client);
      const scores = sim.all(Array.from({ length: 20 }, (_, i) => order(w, end + i * 4000, i % 2 === 0 ? "DOGEUSDT" : "ADAUSDT", 50_000)));
      expect(detectedAt(scores)).toBeLessThanOrEqual(20);
      const top = maxOf(scores);
      expect(features(top)).toEqual(expect.arrayContaining(["symbol.new", "network.new", "combination"]));
    }
  });

  it("a leaked key used from a new network, on its usual symbol with much larger orders", () => {
    for (const seed of [12, 112, 212]) {
      const { sim, w, end } = warmed(periodicBuyer, seed, 10);
      w.client = "100.64.9.9";
      w.network = networkOf(w.client);
      const scores = sim.all(Array.from({ length: 20 }, (_, i) => order(w, end + i * 30_000, "BTCUSDT", 1.5)));
      expect(detectedAt(scores)).toBeLessThanOrEqual(20);
      expect(features(maxOf(scores))).toEqual(expect.arrayContaining(["notional", "quantity", "network.new"]));
      const notional = maxOf(scores).contributions.find((c) => c.feature === "notional");
      expect(notional?.observed).toBe("90,000");
      expect(notional?.deviation).toBeGreaterThan(10);
    }
  });

  it("a pump on an illiquid pair the key never traded, from the key's usual address", () => {
    for (const seed of [13, 113, 213]) {
      const { sim, w, end } = warmed(periodicBuyer, seed, 10);
      const scores = sim.all(Array.from({ length: 20 }, (_, i) => order(w, end + i * 5000, "XYZBTC", 2000)));
      expect(detectedAt(scores)).toBeLessThanOrEqual(20);
      const first = scores[0];
      expect(first === undefined ? [] : features(first)).toEqual(expect.arrayContaining(["symbol.new", "symbol.liquidity"]));
      expect(first?.contributions.find((c) => c.feature === "symbol.liquidity")?.observed).toBe("XYZBTC: 24 h volume 20,000");
    }
  });

  it("a dormant key (three weeks idle) waking with a burst", () => {
    for (const seed of [14, 114, 214]) {
      const { sim, w, end } = warmed(periodicBuyer, seed, 10);
      const wake = end + 21 * DAY;
      const scores = sim.all(Array.from({ length: 20 }, (_, i) => order(w, wake + i * 3000, "BTCUSDT", 100 / 60_000)));
      expect(detectedAt(scores)).toBeLessThanOrEqual(20);
      expect(features(scores[0] ?? maxOf(scores))).toContain("dormancy");
      expect(features(maxOf(scores))).toEqual(expect.arrayContaining(["dormancy", "dormancy.burst"]));
    }
  });

  it("a key first used long after its creation, with a burst on a new key judged against the defaults", () => {
    const sim = new Sim();
    const w = who("key-late", "acct-late", T0 - 60 * DAY);
    const scores = sim.all(Array.from({ length: 20 }, (_, i) => order(w, T0 + i * 2000, "PUMPUSDT", 100_000)));
    expect(scores[0]?.basis).toBe("defaults");
    expect(features(scores[0] ?? maxOf(scores))).toContain("first-use.late");
    expect(detectedAt(scores)).toBeLessThanOrEqual(20);
  });

  it("a key whose state was lost is not taken for a first use: measured from its last use on record", () => {
    const m = model();
    const w = who("key-lost", "acct-lost", T0 - 90 * DAY);
    // Used yesterday (the record says so), state lost: nothing unusual.
    const recent = m.observe(null, { ...order(w, T0, "BTCUSDT", 0.01), keyLastUsedAt: T0 - DAY }, null);
    expect(recent.score.score).toBe(0);
    // Never used on record: a first use 90 days after creation.
    const never = m.observe(null, { ...order(w, T0, "BTCUSDT", 0.01), keyLastUsedAt: null }, null);
    expect(features(never.score)).toContain("first-use.late");
    // Last used three weeks ago: dormancy, measured from that use.
    const idle = m.observe(null, { ...order(w, T0, "BTCUSDT", 0.01), keyLastUsedAt: T0 - 21 * DAY }, null);
    expect(features(idle.score)).toEqual(["dormancy"]);
    expect(idle.score.contributions[0]?.observed).toBe("first request after 21 days");
  });

  it("a withdrawal to a new destination: one large", () => {
    for (const seed of [15, 115, 215]) {
      const { sim, w, end } = warmed(marketMaker, seed, 3);
      const scores = sim.all([withdrawal(w, end, "bc1qattackerattackerattacker0001", 250_000)]);
      expect(scores[0]?.score).toBeGreaterThanOrEqual(70);
      expect(features(scores[0] ?? maxOf(scores))).toEqual(expect.arrayContaining(["withdraw.destination-new", "withdraw.value", "operation.new"]));
    }
  });

  it("withdrawals to a new destination: many small ones", () => {
    for (const seed of [16, 116, 216]) {
      const { sim, w, end } = warmed(periodicBuyer, seed, 10);
      const scores = sim.all(Array.from({ length: 20 }, (_, i) => withdrawal(w, end + i * 2 * MINUTE, "TXattackerDest", 300)));
      expect(detectedAt(scores)).toBeLessThanOrEqual(20);
      expect(features(maxOf(scores))).toEqual(expect.arrayContaining(["withdraw.destination-new", "withdraw.velocity"]));
    }
  });

  it("slow scraping of account data from a new network by a key that used to trade", () => {
    for (const seed of [17, 117, 217]) {
      const { sim, w, end, rng } = warmed(marketMaker, seed, 3);
      w.client = "100.70.1.2";
      w.network = networkOf(w.client);
      const routes = [ROUTES.account, ROUTES.myTrades, ROUTES.openOrders];
      const scores = sim.all(Array.from({ length: 20 }, (_, i) => read(w, end + i * MINUTE, rng.pick(routes))));
      expect(detectedAt(scores)).toBeLessThanOrEqual(20);
      expect(features(maxOf(scores))).toEqual(expect.arrayContaining(["route.mix", "network.new", "combination"]));
    }
  });

  it("many signature failures on a key", () => {
    for (const seed of [18, 118, 218]) {
      const { sim, w, end } = warmed(arbitrageur, seed, 3);
      const attacker: Who = { ...w, client: "100.99.1.1", network: networkOf("100.99.1.1") };
      const scores = sim.all(
        Array.from({ length: 20 }, (_, i) => ev(attacker, end + i * 5000, ROUTES.account, { outcome: "refused", code: "SIGNATURE_INVALID", authFailure: true })),
      );
      expect(detectedAt(scores)).toBeLessThanOrEqual(20);
      expect(features(maxOf(scores))[0]).toBe("auth-failures");
    }
  });
});

describe("cold start", () => {
  it("a new key of an account with history is judged against the account; a new key of a new account against the defaults", () => {
    const m = model();
    const { sim, end } = warmed(marketMaker, 21, 2);
    const w2 = who("key-new", "acct-21", end - HOUR);
    const first = m.observe(null, order(w2, end, "BTCUSDT", 0.05), sim.account);
    expect(first.score.basis).toBe("account");
    expect(first.score.seen).toBe(0);
    expect(first.score.score).toBeLessThan(30);
    const lone = m.observe(null, order(who("key-lone", "acct-lone", end - HOUR), end, "BTCUSDT", 0.05), null);
    expect(lone.score.basis).toBe("defaults");
    expect(lone.score.score).toBeLessThan(30);
    // From an address the account never used, with a symbol it never traded: explained against the account.
    const odd = m.observe(null, order({ ...w2, client: "100.1.2.3", network: "100.1.2.0/24" }, end, "XYZBTC", 1000), sim.account);
    expect(odd.score.basis).toBe("account");
    expect(features(odd.score)).toEqual(expect.arrayContaining(["network.new", "symbol.new", "symbol.liquidity", "combination"]));
    expect(odd.score.score).toBeGreaterThanOrEqual(70);
  });

  it("honest keys in their first day stay below 40: against their account (a second key of an account) and against the defaults", () => {
    for (const [pattern, seed] of [
      [marketMaker, 51],
      [periodicBuyer, 52],
      [portfolioReader, 53],
      [arbitrageur, 54],
    ] as const) {
      const { sim, end, rng } = warmed(pattern, seed, 2);
      // A second key of the same account, from the account's address, doing what the account does.
      const second = new Sim(sim.m);
      second.account = sim.account;
      const w2 = who(`key-second-${seed}`, `acct-${seed}`, end - HOUR);
      const scores = second.all(pattern(w2, rng, end, DAY));
      expect(scores.length).toBeGreaterThan(10);
      expect(scores.every((s) => s.basis === "account")).toBe(true);
      expect(scores.filter((s) => s.score >= 40).length / scores.length, `${seed}: ${JSON.stringify(maxOf(scores))}`).toBeLessThanOrEqual(0.001);
      // A key of a new account: the defaults.
      const lone = new Sim();
      const alone = lone.all(pattern(who(`key-lone-${seed}`, `acct-lone-${seed}`, T0 - HOUR), new Rng(seed), T0, DAY));
      expect(alone[0]?.basis).toBe("defaults");
      expect(alone.filter((s) => s.score >= 40).length / alone.length, `${seed}: ${JSON.stringify(maxOf(alone))}`).toBeLessThanOrEqual(0.001);
    }
  });

  it("the key's own basis takes over after 50 events and a day", () => {
    const sim = new Sim();
    const w = who("key-young", "acct-young", T0);
    const scores = sim.all(periodicBuyer(w, new Rng(5), T0, 2 * DAY));
    expect(scores[0]?.basis).toBe("defaults");
    expect(scores.find((s) => s.at > T0 + DAY + HOUR)?.basis).toBe("key");
    const latest = sim.m.latest(sim.key ?? sim.m.observeAccount(null, order(w, T0, "BTCUSDT", 1)));
    expect(latest?.basis).toBe("key");
    expect(latest?.at).toBe(scores[scores.length - 1]?.at);
  });

  it("defaults: a new key's withdrawal to a never-used destination is not ignored", () => {
    const m = model();
    const r = m.observe(null, withdrawal(who("k", "a", T0 - HOUR), T0, "addr-1", 50_000), null);
    expect(r.score.basis).toBe("defaults");
    expect(r.score.score).toBeGreaterThanOrEqual(40);
  });
});

describe("the score and its explanation", () => {
  it("is 0 to 100, contributions largest first, at most 8, every one with points > 0", () => {
    const { sim, w, end } = warmed(periodicBuyer, 31, 10);
    w.client = "100.64.1.1";
    w.network = networkOf(w.client);
    const scores = sim.all([
      ...Array.from({ length: 10 }, (_, i) => ev(w, end + i * 1000, ROUTES.account, { outcome: "refused", code: "SIGNATURE_INVALID", authFailure: true })),
      ...Array.from({ length: 20 }, (_, i) => order(w, end + 20_000 + i * 500, "PUMPUSDT", 5_000_000)),
      withdrawal(w, end + 40_000, "new-dest", 1_000_000),
    ]);
    for (const s of scores) {
      expect(s.score).toBeGreaterThanOrEqual(0);
      expect(s.score).toBeLessThanOrEqual(100);
      expect(s.contributions.length).toBeLessThanOrEqual(8);
      for (let i = 1; i < s.contributions.length; i++) expect(s.contributions[i - 1]?.points).toBeGreaterThanOrEqual(s.contributions[i]?.points ?? 0);
      for (const c of s.contributions) {
        expect(c.points).toBeGreaterThan(0);
        expect(c.deviation).toBeGreaterThanOrEqual(0);
        expect(c.observed.length).toBeGreaterThan(0);
        expect(c.baseline.length).toBeGreaterThan(0);
      }
    }
    expect(maxOf(scores).score).toBeGreaterThan(95);
  });

  it("an ordinary event has no contributions and scores 0", () => {
    const { sim, w, end } = warmed(periodicBuyer, 32, 10);
    const s = sim.observe(order(w, end + HOUR, "BTCUSDT", 100 / 60_000));
    expect(s.score).toBe(0);
    expect(s.contributions).toEqual([]);
    expect(s.basis).toBe("key");
  });

  it("the weights are one table", () => {
    expect(BEHAVIOUR_WEIGHTS.saturation).toBeGreaterThan(0);
    expect(Object.isFrozen(BEHAVIOUR_WEIGHTS) || typeof BEHAVIOUR_WEIGHTS === "object").toBe(true);
  });
});

describe("the state: bounded, encoded, decoded", () => {
  it("encodes to a fixed size under 2,048 bytes and round-trips (scores of the next event are the same)", () => {
    const { sim, w, end } = warmed(marketMaker, 41, 1);
    const key = sim.key;
    const account = sim.account;
    if (key === null || account === null) throw new Error("no state");
    const bytes = sim.m.encode(key);
    expect(bytes.length).toBe(BEHAVIOUR_STATE_BYTES);
    expect(bytes.length).toBeLessThanOrEqual(2048);
    const back = sim.m.decode(bytes);
    if (back === null) throw new Error("decode failed");
    expect(back.seen).toBe(key.seen);
    expect(sim.m.encode(back)).toEqual(bytes);
    expect(sim.m.latest(back)).toEqual(sim.m.latest(key));
    const next = [order({ ...w, client: "100.1.1.1", network: "100.1.1.0/24" }, end + 1000, "XYZBTC", 500), cancel(w, end + 2000, "BTCUSDT")];
    const decodedAccount = sim.m.decode(sim.m.encode(account));
    for (const e of next) {
      const a = sim.m.observe(sim.key, e, sim.account).score;
      const b = sim.m.observe(back, e, decodedAccount).score;
      expect(b.score).toBeCloseTo(a.score, 0);
      expect(b.contributions.map((c) => c.feature)).toEqual(a.contributions.map((c) => c.feature));
    }
  });

  it("stays under 2,048 bytes and decodable under adversarial traffic (many symbols, addresses, routes, destinations)", () => {
    const m = model();
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            dt: fc.integer({ min: 0, max: 3 * DAY }),
            route: fc.string({ maxLength: 200 }),
            symbol: fc.option(fc.string({ minLength: 1, maxLength: 300 })),
            client: fc.option(fc.string({ maxLength: 80 })),
            dest: fc.option(fc.string({ maxLength: 500 })),
            op: fc.constantFrom("order.place", "order.cancel", "withdraw", "transfer", "other", null),
            size: fc.option(fc.double()),
            badTime: fc.constantFrom(null, Number.NaN, Number.POSITIVE_INFINITY, -1),
            auth: fc.boolean(),
          }),
          { minLength: 1, maxLength: 300 },
        ),
        (steps) => {
          let key: BehaviourState | null = null;
          let account: BehaviourState | null = null;
          let at = T0;
          for (const s of steps) {
            at += s.dt;
            const e: BehaviourEvent = {
              keyId: "k",
              account: "a",
              at: s.badTime === null ? at : s.badTime,
              keyCreatedAt: T0 - DAY,
              route: s.route,
              operation: s.op,
              symbol: s.symbol,
              side: "buy",
              quantity: s.size,
              notional: s.size,
              asset: "USDT",
              amount: s.size,
              value: s.size,
              destination: s.dest,
              client: s.client,
              network: s.client,
              outcome: s.auth ? "refused" : "allowed",
              code: null,
              authFailure: s.auth,
            };
            const r = m.observe(key, e, account);
            key = r.state;
            account = m.observeAccount(account, e);
            expect(r.score.score).toBeGreaterThanOrEqual(0);
            expect(r.score.score).toBeLessThanOrEqual(100);
            for (const c of r.score.contributions) {
              expect(Number.isFinite(c.points) && Number.isFinite(c.deviation)).toBe(true);
              expect(c.deviation).toBeGreaterThanOrEqual(0);
            }
          }
          if (key === null) return;
          const bytes = m.encode(key);
          expect(bytes.length).toBeLessThanOrEqual(2048);
          expect(m.decode(bytes)).not.toBeNull();
          if (account !== null) expect(m.decode(m.encode(account))).not.toBeNull();
        },
      ),
      { numRuns: 150, seed: 42 },
    );
  });

  it("many distinct symbols, addresses and routes: the size does not grow", () => {
    const m = model();
    let key: BehaviourState | null = null;
    const w = who("k", "a", T0);
    for (let i = 0; i < 5000; i++) {
      const x: Who = { ...w, client: `10.${i % 250}.${(i >> 8) % 250}.1`, network: `10.${i % 250}.0.0/24` };
      const e = i % 3 === 0 ? order(x, T0 + i * 1000, `SYM${i}USDT`, 1 + i) : i % 3 === 1 ? withdrawal(x, T0 + i * 1000, `dest-${i}`, i) : read(x, T0 + i * 1000, `GET /route/${i}`);
      key = m.observe(key, e, null).state;
    }
    if (key === null) throw new Error("no state");
    expect(m.encode(key).length).toBe(BEHAVIOUR_STATE_BYTES);
  });

  it("decode returns null for garbage, truncation, another version, and non-finite numbers", () => {
    const m = model();
    const good = m.encode(m.observeAccount(null, order(who("k", "a", T0), T0, "BTCUSDT", 1)));
    expect(m.decode(good)).not.toBeNull();
    expect(m.decode(new Uint8Array(0))).toBeNull();
    expect(m.decode(good.subarray(0, good.length - 1))).toBeNull();
    const version = good.slice();
    version[2] = 99;
    expect(m.decode(version)).toBeNull();
    const nan = good.slice();
    new DataView(nan.buffer).setFloat64(4, Number.NaN, true);
    expect(m.decode(nan)).toBeNull();
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 3000 }), (bytes) => {
        const s = m.decode(bytes);
        if (s !== null) {
          // Whatever decodes is usable: observing on it never throws.
          m.observe(s, order(who("k", "a", T0), T0, "BTCUSDT", 1), null);
        }
      }),
      { numRuns: 200, seed: 7 },
    );
    // Random bytes of the right length with the right header: decoded or refused, never a crash.
    fc.assert(
      fc.property(fc.uint8Array({ minLength: BEHAVIOUR_STATE_BYTES - 4, maxLength: BEHAVIOUR_STATE_BYTES - 4 }), (body) => {
        const bytes = new Uint8Array(BEHAVIOUR_STATE_BYTES);
        bytes.set([0x50, 0x42, 1, 0]);
        bytes.set(body, 4);
        const s = m.decode(bytes);
        if (s !== null) m.observe(s, order(who("k", "a", T0), T0, "BTCUSDT", 1), null);
      }),
      { numRuns: 200, seed: 8 },
    );
  });

  it("refuses a state that is not the model's", () => {
    const m = model();
    expect(() => m.encode({ seen: 1 })).toThrow(TypeError);
  });
});

describe("known destinations, concurrent use from two networks, late first use, no learning from a thief", () => {
  const elsewhere = (w: Who, client: string): Who => ({ ...w, client, network: networkOf(client) });

  it("a withdrawal to a destination in the account's address book is not new, even from an unfamiliar network", () => {
    for (const seed of [21, 121]) {
      const known = warmed(periodicBuyer, seed, 10);
      const unknown = warmed(periodicBuyer, seed, 10);
      const from = elsewhere(known.w, "100.64.7.7");
      const k = known.sim.observe({ ...withdrawal(from, known.end, "TSavedColdWallet", 500), destinationKnown: true });
      const u = unknown.sim.observe(withdrawal(from, unknown.end, "TSavedColdWallet", 500));
      expect(features(k)).not.toContain("withdraw.destination-new");
      expect(features(k)).not.toContain("withdraw.new-network");
      expect(features(u)).toEqual(expect.arrayContaining(["withdraw.destination-new", "withdraw.new-network"]));
      expect(k.score).toBeLessThan(u.score);
      // From its usual network, the owner's withdrawal to its saved address stays below an alert.
      const home = warmed(periodicBuyer, seed, 10);
      expect(home.sim.observe({ ...withdrawal(home.w, home.end, "TSavedColdWallet", 500), destinationKnown: true }).score).toBeLessThan(50);
    }
  });

  it("a thief using the key while its owner goes on using it: the second switch between networks adds network.alternate, and the key reaches 70", () => {
    for (const seed of [22, 122, 222]) {
      const { sim, w, end } = warmed(portfolioReader, seed, 5);
      const thief = elsewhere(w, "100.66.1.2");
      // The thief reads every 20 s; the owner reads once in between.
      const events = [read(thief, end), read(thief, end + 20_000), read(w, end + 30_000), read(thief, end + 40_000), read(thief, end + 60_000)];
      const scores = sim.all(events);
      // The first switch (to the thief's network) is a host that moved, as far as anyone can tell.
      expect(features(scores[0] ?? maxOf(scores))).not.toContain("network.alternate");
      expect(features(scores[1] ?? maxOf(scores))).not.toContain("network.alternate");
      // The second (back to the owner's) is not: the key is in use from two places.
      const back = scores[2]?.contributions.find((c) => c.feature === "network.alternate");
      expect(back?.points).toBeGreaterThanOrEqual(BEHAVIOUR_WEIGHTS.networkAlternate);
      expect(back?.deviation).toBeGreaterThanOrEqual(BEHAVIOUR_WEIGHTS.alternateMin);
      expect(scores[2]?.score).toBeGreaterThanOrEqual(50);
      expect(features(scores[3] ?? maxOf(scores))).toContain("network.alternate");
      expect(scores[3]?.score).toBeGreaterThanOrEqual(70);
    }
  });

  it("an honest host move switches once: no network.alternate", () => {
    for (const seed of [23, 123]) {
      const { sim, w, end, rng } = warmed(marketMaker, seed, 3);
      const moved = elsewhere(w, "100.67.3.4");
      const scores = sim.all(marketMaker(moved, rng, end, 2 * HOUR));
      expect(features(scores[0] ?? maxOf(scores))).toContain("network.new");
      for (const s of scores) expect(features(s)).not.toContain("network.alternate");
    }
  });

  it("a client on two networks from the start (dual stack) alternates without network.alternate", () => {
    const sim = new Sim();
    const a = who("key-dual", "acct-dual", T0 - DAY, "198.51.100.7");
    const b = elsewhere(a, "192.0.2.9");
    const events: BehaviourEvent[] = [];
    for (let i = 0; i < 3 * 24 * 60; i++) events.push(read(i % 2 === 0 ? a : b, T0 + i * MINUTE));
    const scores = sim.all(events);
    for (const s of scores) expect(features(s)).not.toContain("network.alternate");
  });

  it("requests that did not prove the key (from many networks) neither switch networks nor teach the key's networks", () => {
    for (const seed of [24, 124]) {
      const { sim, w, end } = warmed(portfolioReader, seed, 5);
      const scores: BehaviourScore[] = [];
      for (let i = 0; i < 30; i++) {
        const stuffer = elsewhere(w, `100.80.${i + 1}.9`);
        scores.push(sim.observe({ ...ev(stuffer, end + i * 2000, ROUTES.account, { outcome: "refused", code: "SIGNATURE_INVALID", authFailure: true }), verified: false }));
        if (i % 5 === 4) scores.push(sim.observe(read(w, end + i * 2000 + 1000)));
      }
      for (const s of scores) expect(features(s)).not.toContain("network.alternate");
      // The failures themselves are scored (on the requests that failed)…
      expect(features(maxOf(scores))).toContain("auth-failures");
      // …but the owner's next proved request is judged on its own: nothing unusual.
      const owner = sim.observe(read(w, end + 120_000));
      expect(owner.contributions).toEqual([]);
    }
  });

  it("a flood of requests that did not prove a dormant key does not wake it", () => {
    for (const seed of [26, 126]) {
      const { sim, w, end } = warmed(periodicBuyer, seed, 10);
      const wake = end + 21 * DAY;
      for (let i = 0; i < 50; i++) sim.observe({ ...ev(elsewhere(w, `100.81.${i + 1}.9`), wake + i * 1000, ROUTES.account, { outcome: "refused", code: "SIGNATURE_INVALID", authFailure: true }), verified: false });
      // The thief with the secret, a minute later: still a key waking after three weeks.
      const first = sim.observe(order(w, wake + 60_000, "BTCUSDT", 0.001));
      expect(features(first)).toContain("dormancy");
    }
  });

  it("a key first used a week or more after its creation wakes as dormant; five days is not late", () => {
    const late = new BehaviourModel().observe(null, read(who("key-9d", "acct-9d", T0 - 9 * DAY), T0), null);
    expect(features(late.score)).toContain("first-use.late");
    const soon = new BehaviourModel().observe(null, read(who("key-5d", "acct-5d", T0 - 5 * DAY), T0), null);
    expect(features(soon.score)).not.toContain("first-use.late");
    expect(BEHAVIOUR_WEIGHTS.firstUseLateMs).toBe(7 * DAY);
  });

  it("a thief's orders from an unfamiliar network do not become the key's baseline; its flow over the minute adds up", () => {
    for (const seed of [25, 125]) {
      const { sim, w, end } = warmed(periodicBuyer, seed, 10);
      const thief = elsewhere(w, "100.68.5.6");
      const scores = sim.all(Array.from({ length: 20 }, (_, i) => order(thief, end + i * 3000, "BTCUSDT", 0.3)));
      const first = scores[0]?.contributions.find((c) => c.feature === "notional");
      const last = scores[19]?.contributions.find((c) => c.feature === "notional");
      expect(first).toBeDefined();
      expect(last?.baseline).toBe(first?.baseline); // the statistic did not move
      expect(features(maxOf(scores))).toContain("flow.1m");
      expect(detectedAt(scores)).toBeLessThanOrEqual(5);
    }
  });
});
