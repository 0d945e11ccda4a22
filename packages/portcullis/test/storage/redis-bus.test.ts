/**
 * The change bus over the machine's Redis (127.0.0.1:6379): delivery between processes' buses on
 * one prefix, isolation between prefixes, no echo of a bus's own messages, junk ignored, and a
 * "resync" after the subscription was cut. Skipped loudly without a Redis; never in CI.
 */
import { Redis } from "ioredis";
import { afterEach, describe, expect, it } from "vitest";
import { RedisChangeBus } from "../../src/storage/redis/bus.js";
import type { BusMessage } from "../../src/storage/types.js";
import { IN_CI, SHARED_REDIS_URL, loudSkip, redisReachable, uniquePrefix } from "../support/redis.js";

const up = await redisReachable(SHARED_REDIS_URL);
if (!up && !IN_CI) loudSkip("the Redis change bus", `no Redis answers at ${SHARED_REDIS_URL}`);

const open: RedisChangeBus[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((b) => b.close()));
});

async function bus(prefix: string): Promise<{ bus: RedisChangeBus; received: BusMessage[]; next(): Promise<BusMessage> }> {
  const b = new RedisChangeBus({ url: SHARED_REDIS_URL, prefix });
  open.push(b);
  await b.ready();
  const received: BusMessage[] = [];
  const waiting: ((m: BusMessage) => void)[] = [];
  b.subscribe((m) => {
    received.push(m);
    waiting.shift()?.(m);
  });
  return {
    bus: b,
    received,
    next: () =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(new Error("no bus message within 2 s"));
        }, 2_000);
        waiting.push((m) => {
          clearTimeout(timer);
          resolve(m);
        });
      }),
  };
}

describe.runIf(up || IN_CI)("the Redis change bus", () => {
  it("has a Redis to run against (required in CI)", () => {
    expect(up, `no Redis at ${SHARED_REDIS_URL}`).toBe(true);
  });

  it("delivers a message to every other bus of the deployment, never back to its sender, never to another deployment", async () => {
    const prefix = uniquePrefix("bus");
    const [a, b, c] = [await bus(prefix), await bus(prefix), await bus(uniquePrefix("other"))];
    const arrival = b.next();
    a.bus.publish({ kind: "keys", ids: ["pck_test_v1_one"] });
    expect(await arrival).toEqual({ kind: "keys", ids: ["pck_test_v1_one"] });
    const logout = a.next();
    b.bus.publish({ kind: "session-ended", sessionId: "sid-1", keyId: "pck_test_v1_one" });
    expect(await logout).toEqual({ kind: "session-ended", sessionId: "sid-1", keyId: "pck_test_v1_one" });
    // A round trip through Redis later, nothing else arrived anywhere.
    const marker = b.next();
    a.bus.publish({ kind: "keys", ids: ["marker"] });
    await marker;
    expect(a.received).toHaveLength(1);
    expect(b.received).toHaveLength(2);
    expect(c.received).toHaveLength(0);
  });

  it("ignores what is not a bus message on its channel", async () => {
    const prefix = uniquePrefix("junk");
    const b = await bus(prefix);
    const raw = new Redis(SHARED_REDIS_URL);
    try {
      for (const junk of ["not json", "null", "[]", '{"o":"x"}', '{"o":"x","m":{"kind":"keys","ids":[1]}}', '{"o":"x","m":{"kind":"resync"}}', '{"o":"x","m":{"kind":"nope"}}']) {
        await raw.publish(`${prefix}bus`, junk);
      }
      const good = b.next();
      await raw.publish(`${prefix}bus`, JSON.stringify({ o: "x", m: { kind: "keys", ids: ["k"] } }));
      expect(await good).toEqual({ kind: "keys", ids: ["k"] });
      expect(b.received).toHaveLength(1);
    } finally {
      await raw.quit();
    }
  });

  it("says 'resync' once its subscription is back after being cut, and keeps delivering", async () => {
    const prefix = uniquePrefix("cut");
    const [a, b] = [await bus(prefix), await bus(prefix)];
    const raw = new Redis(SHARED_REDIS_URL);
    try {
      const resync = b.next();
      // Cut the subscriptions of this deployment's buses (as a Redis failover would), by name.
      const subscribers = String(await raw.client("LIST"))
        .split("\n")
        .filter((line) => line.includes(` name=portcullis-bus-sub:${prefix}bus `))
        .map((line) => /\baddr=(\S+)/.exec(line)?.[1] ?? "");
      expect(subscribers).toHaveLength(2);
      for (const addr of subscribers) await raw.client("KILL", addr);
      expect(await resync).toEqual({ kind: "resync" });
      const after = b.next();
      a.bus.publish({ kind: "keys", ids: ["after-cut"] });
      // a's subscriber was cut too and may resync first; b sees the message.
      expect(await after).toEqual({ kind: "keys", ids: ["after-cut"] });
    } finally {
      await raw.quit();
    }
  });
});
