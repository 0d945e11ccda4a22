import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Availability } from "../../src/storage/availability.js";
import { signRequest } from "../support/harness.js";
import { type TestGateway, makeGateway } from "../support/gateway.js";

/**
 * Stage 4 while the durable store is out (docs/failures.md), through the gateway's handler with a
 * frozen clock: the store's availability is injected (a real `Availability`, which PostgresStore
 * keeps; test/failures/store-availability.test.ts proves the store sets it), so the grace is
 * measured exactly, without sleeping.
 */

/** Longer than the key cache's stale window (5 min), so the grace, not the cache's age, decides. */
const GRACE_MS = 400_000;

describe("keys during an outage of the durable store", () => {
  let t: TestGateway;
  let availability: Availability;
  const keys: { id: string; secret: string }[] = [];

  beforeAll(async () => {
    availability = new Availability(() => t.clock.ms);
    t = await makeGateway({ availability, outageGraceMs: GRACE_MS });
    for (let i = 0; i < 3; i++) {
      const created = await t.createKey({ scopes: ["read", "trade"] });
      keys.push({ id: created.key.id, secret: created.secret ?? "" });
    }
  });
  afterAll(async () => {
    await t.close();
  });

  async function send(key: { id: string; secret: string }): Promise<{ status: number; code: string | undefined }> {
    const res = await t.inject({ method: "GET", url: "/api/v3/account", headers: signRequest({ method: "GET", url: "/api/v3/account", keyId: key.id, key: key.secret, created: t.clock.seconds }) });
    return { status: res.statusCode, code: res.statusCode === 200 ? undefined : res.json<{ code: string }>().code };
  }

  it("cached keys verify until the grace ends, uncached ones are refused at once, and everything works again once the store is back", async () => {
    const [cached, uncached, malformed] = [keys[0], keys[1], keys[2]];
    if (cached === undefined || uncached === undefined || malformed === undefined) throw new Error("keys");
    expect(await send(cached)).toEqual({ status: 200, code: undefined });
    const upstreamBefore = t.upstream.requests.length;

    availability.lost();
    // Past the cache's fresh and stale windows (60 s, 5 min) the entry is still used: the grace decides.
    t.clock.advance(GRACE_MS - 1);
    expect(await send(cached)).toEqual({ status: 200, code: undefined });
    expect(await send(uncached)).toEqual({ status: 503, code: "KEY_STORE_UNAVAILABLE" });
    // An id that cannot be a key is refused as ever: no store is needed for that.
    expect(await send({ id: "pck_nope", secret: malformed.secret })).toEqual({ status: 401, code: "KEY_ID_MALFORMED" });
    t.clock.advance(1);
    expect(await send(cached)).toEqual({ status: 503, code: "KEY_STORE_UNAVAILABLE" });
    expect(t.upstream.requests.length).toBe(upstreamBefore + 1);

    availability.regained();
    expect(await send(cached)).toEqual({ status: 200, code: undefined });
    expect(await send(uncached)).toEqual({ status: 200, code: undefined });
  });

  it("a grace of 0 (store.outageGrace \"off\") refuses every key as soon as the store is out", async () => {
    const zero = new Availability(() => t2.clock.ms);
    const t2 = await makeGateway({ availability: zero, outageGraceMs: 0 });
    try {
      const created = await t2.createKey({ scopes: ["read"] });
      const key = { id: created.key.id, secret: created.secret ?? "" };
      const send2 = async (): Promise<number> =>
        (await t2.inject({ method: "GET", url: "/api/v3/account", headers: signRequest({ method: "GET", url: "/api/v3/account", keyId: key.id, key: key.secret, created: t2.clock.seconds }) })).statusCode;
      expect(await send2()).toBe(200);
      zero.lost();
      expect(await send2()).toBe(503);
      zero.regained();
      expect(await send2()).toBe(200);
    } finally {
      await t2.close();
    }
  });
});
