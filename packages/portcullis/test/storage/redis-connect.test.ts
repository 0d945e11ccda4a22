import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import type { Charge } from "../../src/contract/limits.js";
import { RedisHotStore, hotRedisOptions } from "../../src/storage/redis/hot.js";
import { IN_CI, SHARED_REDIS_URL, deleteKeys, loudSkip, redisReachable, uniquePrefix } from "../support/redis.js";

/**
 * Requests that arrive while the hot store's Redis client is still connecting (the first moments
 * after startup) all wait for one shared "ready": one listener, however many requests, so ioredis
 * never warns MaxListenersExceededWarning (its default limit is ten listeners per event).
 */

const redisUp = await redisReachable(SHARED_REDIS_URL);
const run = redisUp || IN_CI;
if (!run) loudSkip("the Redis connect test", `no Redis answers at ${SHARED_REDIS_URL}`);

const T0 = 1_700_000_000_000;

function charge(bucket: string): Charge {
  return { spec: { name: bucket, scope: "ip", kind: "weight", limit: 1_000, windowMs: 60_000 }, bucket, limit: 1_000, windowMs: 60_000, cost: 1 };
}

describe.runIf(run)("redis hot store while it connects", () => {
  const prefix = uniquePrefix("connect");
  const clients: Redis[] = [];
  afterAll(async () => {
    const admin = new Redis(SHARED_REDIS_URL);
    await deleteKeys(admin, prefix);
    await admin.quit();
    for (const c of clients) c.disconnect();
  });

  it.each([["its own client", false], ["a client passed in", true]] as const)(
    "50 concurrent admissions during connect add one 'ready' listener (besides the store's own) and no warning (%s)",
    async (_, passClient) => {
      const warnings: Error[] = [];
      const onWarning = (warning: Error): void => {
        warnings.push(warning);
      };
      process.on("warning", onWarning);
      try {
        const client = passClient ? new Redis(SHARED_REDIS_URL, hotRedisOptions(5_000)) : undefined;
        if (client !== undefined) clients.push(client);
        const store = new RedisHotStore({ ...(client === undefined ? { url: SHARED_REDIS_URL } : { client }), prefix, commandTimeoutMs: 5_000 });
        const own = (store as unknown as { client: Redis }).client;
        expect(own.status).not.toBe("ready");
        const admissions = Array.from({ length: 50 }, (_, i) =>
          store.admit({ now: T0 + i, ip: "198.51.100.40", replay: null, charges: [charge(`${prefix}c:${String(passClient)}`)], session: null }),
        );
        // Every admission is waiting for the connection now (admit runs synchronously up to it).
        // The store's own two (its first 'ready', and the epoch reading on every 'ready'), and the shared wait.
        expect(own.listenerCount("ready")).toBeLessThanOrEqual(3);
        const results = await Promise.all(admissions);
        expect(results.every((r) => r.ok)).toBe(true);
        expect(own.listenerCount("ready")).toBe(1);
        // Node emits warnings on the next tick.
        await new Promise((resolve) => setImmediate(resolve));
        expect(warnings.map((w) => `${w.name}: ${w.message}`)).toEqual([]);
        await store.close();
        expect(own.listenerCount("ready")).toBe(0);
      } finally {
        process.off("warning", onWarning);
      }
    },
  );
});
