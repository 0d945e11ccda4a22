import { Redis } from "ioredis";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { MemoryHotStore } from "../../src/storage/memory/hot.js";
import { RedisHotStore, hotRedisOptions } from "../../src/storage/redis/hot.js";
import type { OpenOrderLedger, OpenReservation } from "../../src/storage/types.js";
import { LEDGER_SCALE, ledgerText, ledgerUnits } from "../../src/operations/open-orders.js";
import { parseDecimal } from "../../src/operations/decimal.js";
import { IN_CI, SHARED_REDIS_URL, deleteKeys, loudSkip, redisReachable, uniquePrefix } from "../support/redis.js";

/**
 * One contract, two open-notional ledgers (docs/guardrails.md, "Open notional"): the memory hot
 * store's and the Redis hot store's. A frozen clock (every call carries its `now`); the Redis half
 * under a random prefix, deleted afterwards, skipped loudly without a Redis except in CI.
 */

const redisUp = await redisReachable(SHARED_REDIS_URL);
const runRedis = redisUp || IN_CI;
if (!runRedis) loudSkip("the Redis half of the open-ledger contract suite", `no Redis answers at ${SHARED_REDIS_URL}`);

const T0 = 1_700_000_000_000;
const HOUR = 3_600_000;
const KEY = "pk_test_ledgerkey";

function units(text: string, round: "up" | "down" = "up"): bigint {
  const d = parseDecimal(text);
  if (d === null) throw new Error(text);
  return ledgerUnits(d, round);
}

function reservation(id: string, amount: string, cap: string, over: Partial<OpenReservation> = {}): OpenReservation {
  return { keyId: KEY, id, amount: units(amount), cap: units(cap, "down"), symbol: "BTCUSDT", now: T0, expiresAt: T0 + HOUR, maxEntries: 100, ...over };
}

interface Backend {
  readonly name: string;
  /** Two ledgers sharing one state (two gateways on one Redis; one process's memory twice). */
  open(): [OpenOrderLedger, OpenOrderLedger];
  cleanup(): Promise<void>;
}

const memory: Backend = {
  name: "memory",
  open: () => {
    const store = new MemoryHotStore({ epochStart: T0 - HOUR });
    return [store.openOrders, store.openOrders];
  },
  cleanup: () => Promise.resolve(),
};

class RedisBackend implements Backend {
  readonly name = "redis";
  private clients: Redis[] = [];
  private stores: RedisHotStore[] = [];
  private prefixes: string[] = [];

  open(): [OpenOrderLedger, OpenOrderLedger] {
    const prefix = uniquePrefix("ledger");
    this.prefixes.push(prefix);
    const pair = [0, 1].map(() => {
      // Two clients: two gateway processes, each with its own connection.
      const client = new Redis(SHARED_REDIS_URL, hotRedisOptions(5_000));
      client.on("error", () => undefined);
      this.clients.push(client);
      const store = new RedisHotStore({ client, prefix, now: () => T0 });
      this.stores.push(store);
      return store.openOrders;
    });
    return [pair[0] as OpenOrderLedger, pair[1] as OpenOrderLedger];
  }

  async cleanup(): Promise<void> {
    for (const s of this.stores) await s.close();
    const first = this.clients[0];
    if (first !== undefined) for (const p of this.prefixes) await deleteKeys(first, p);
    for (const c of this.clients) await c.quit();
    this.clients = [];
    this.stores = [];
    this.prefixes = [];
  }
}

const backends: Backend[] = runRedis ? [memory, new RedisBackend()] : [memory];

describe("ledger units", () => {
  it("round an order up and a cap down, exactly", () => {
    expect(units("1.5")).toBe(15n * 10n ** BigInt(LEDGER_SCALE - 1));
    const tiny = parseDecimal("0.0000000000000000001");
    if (tiny === null) throw new Error("parse");
    expect(ledgerUnits(tiny, "up")).toBe(1n);
    expect(ledgerUnits(tiny, "down")).toBe(0n);
    expect(ledgerText(units("1234.5"))).toBe("1234.5");
    expect(ledgerText(units("7"))).toBe("7");
  });
});

describe.each(backends)("open-notional ledger contract: $name", (backend) => {
  afterEach(async () => {
    await backend.cleanup();
  });
  afterAll(async () => {
    await backend.cleanup();
  });

  it("reserves within the cap, up to the cap exactly, and refuses past it with the total", async () => {
    const [ledger] = backend.open();
    expect(await ledger.reserve(reservation("r1", "400", "1000"))).toEqual({ ok: true, open: units("400") });
    expect(await ledger.reserve(reservation("r2", "600", "1000"))).toEqual({ ok: true, open: units("1000") });
    expect(await ledger.reserve(reservation("r3", "0.000000000000000001", "1000"))).toEqual({ ok: false, reason: "cap", open: units("1000") });
    expect(await ledger.open(KEY, T0)).toEqual({ total: units("1000"), entries: 2 });
    // Another key's ledger is its own.
    expect(await ledger.reserve(reservation("r4", "1000", "1000", { keyId: "pk_test_other" }))).toMatchObject({ ok: true });
  });

  it("sums exactly past 2^53 ledger units (a cap of 10^9 at 18 decimal places)", async () => {
    const [ledger] = backend.open();
    const cap = "1000000000";
    expect(await ledger.reserve(reservation("a", "999999999.999999999999999999", cap))).toMatchObject({ ok: true });
    expect(await ledger.reserve(reservation("b", "0.000000000000000001", cap))).toEqual({ ok: true, open: units(cap) });
    expect(await ledger.reserve(reservation("c", "0.000000000000000001", cap))).toEqual({ ok: false, reason: "cap", open: units(cap) });
  });

  it("is atomic under concurrency: 50 orders racing (two processes) for room for 10", async () => {
    const [a, b] = backend.open();
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => Promise.resolve((i % 2 === 0 ? a : b).reserve(reservation(`race-${i}`, "100", "1000")))));
    expect(results.filter((r) => r.ok)).toHaveLength(10);
    expect(results.filter((r) => !r.ok && r.reason === "cap")).toHaveLength(40);
    expect(await a.open(KEY, T0)).toEqual({ total: units("1000"), entries: 10 });
  });

  it("releases by reservation, and by the venue's order references once bound", async () => {
    const [ledger, other] = backend.open();
    await ledger.reserve(reservation("p1", "500", "1000"));
    await ledger.reserve(reservation("p2", "500", "1000"));
    expect(await ledger.reserve(reservation("p3", "1", "1000"))).toMatchObject({ ok: false, reason: "cap" });
    expect(await ledger.release(KEY, "p1")).toBe(true);
    expect(await ledger.release(KEY, "p1")).toBe(false);
    expect(await ledger.reserve(reservation("p3", "1", "1000"))).toEqual({ ok: true, open: units("501") });
    expect(await other.bind(KEY, "p2", ["o:42", "c:my-order"])).toBe(true);
    expect(await ledger.bind(KEY, "gone", ["o:43"])).toBe(false);
    // A cancel naming another symbol, or other orders, releases nothing.
    expect(await ledger.releaseOrders(KEY, "ETHUSDT", ["o:42"], T0)).toBe(0);
    expect(await ledger.releaseOrders(KEY, "BTCUSDT", ["o:41", "c:other"], T0)).toBe(0);
    // By the client's id, with the symbol, or by the venue's id without one (Kraken, Coinbase).
    expect(await other.releaseOrders(KEY, "BTCUSDT", ["c:my-order"], T0)).toBe(1);
    expect(await ledger.open(KEY, T0)).toEqual({ total: units("1"), entries: 1 });
    await ledger.bind(KEY, "p3", ["o:77"]);
    expect(await ledger.releaseOrders(KEY, null, ["o:77"], T0)).toBe(1);
    expect(await ledger.open(KEY, T0)).toEqual({ total: 0n, entries: 0 });
  });

  it("ages reservations out at their TTL (frozen clock), in every operation", async () => {
    const [ledger] = backend.open();
    await ledger.reserve(reservation("old", "900", "1000", { now: T0, expiresAt: T0 + HOUR }));
    await ledger.bind(KEY, "old", ["o:1"]);
    expect(await ledger.reserve(reservation("new", "200", "1000", { now: T0 + HOUR - 1, expiresAt: T0 + 2 * HOUR }))).toMatchObject({ ok: false, reason: "cap" });
    expect(await ledger.open(KEY, T0 + HOUR - 1)).toEqual({ total: units("900"), entries: 1 });
    expect(await ledger.open(KEY, T0 + HOUR)).toEqual({ total: 0n, entries: 0 });
    expect(await ledger.reserve(reservation("new", "200", "1000", { now: T0 + HOUR, expiresAt: T0 + 2 * HOUR }))).toEqual({ ok: true, open: units("200") });
    // An expired reservation is not released by its order (it was dropped, not counted).
    expect(await ledger.releaseOrders(KEY, null, ["o:1"], T0 + HOUR)).toBe(0);
  });

  it("bounds a key's reservations: one past maxEntries is refused, nothing stored", async () => {
    const [ledger] = backend.open();
    for (let i = 0; i < 3; i++) expect(await ledger.reserve(reservation(`e${i}`, "1", "1000", { maxEntries: 3 }))).toMatchObject({ ok: true });
    expect(await ledger.reserve(reservation("e3", "1", "1000", { maxEntries: 3 }))).toEqual({ ok: false, reason: "full", open: units("3") });
    expect(await ledger.open(KEY, T0)).toEqual({ total: units("3"), entries: 3 });
    await ledger.release(KEY, "e0");
    expect(await ledger.reserve(reservation("e3", "1", "1000", { maxEntries: 3 }))).toMatchObject({ ok: true });
  });
});
