/**
 * The live statistics routes (admin/stats.ts) over a real socket, signed with the client SDK as the
 * console signs them: GET /portcullis/v1/stats and the SSE stream. Operator keys only; the stream
 * is capped, ends on session expiry, logout, a change of its key and the API's close, leaves no
 * timer or watcher behind. The clock is frozen and the stream's ticker driven by hand.
 */
import { type PortcullisClient, createClient, generateKeyPair, PortcullisApiError } from "@portcullis/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminApi } from "../../src/admin/server.js";
import type { Ticker } from "../../src/admin/stats.js";
import { silentLogger } from "../../src/log/logger.js";
import { LiveStats, type StatsSnapshot, type StatsUpdate } from "../../src/metrics/live-stats.js";
import { type TestCore, makeCore } from "../support/harness.js";

let t: TestCore;
let api: AdminApi;
let base: string;
let live: LiveStats;
/** The ticks scheduled and not cancelled. */
const ticks = new Set<() => void>();
const ticker: Ticker = (_ms, tick) => {
  ticks.add(tick);
  return () => {
    ticks.delete(tick);
  };
};
const tickAll = (): void => {
  for (const tick of [...ticks]) tick();
};
let watchers = 0;

beforeAll(async () => {
  live = new LiveStats();
  t = await makeCore({ sessions: true, stats: live });
  // Count the core's watchers: every stream's subscription must be undone.
  const watch = t.core.watch.bind(t.core);
  t.core.watch = (listener) => {
    watchers++;
    const unwatch = watch(listener);
    return () => {
      watchers--;
      unwatch();
    };
  };
  api = new AdminApi({ core: t.core, logger: silentLogger(), now: t.clock.now, stats: { live, maxStreams: 2, ticker, keepAliveMs: 4_000 } });
  base = `http://127.0.0.1:${(await api.listen(0, "127.0.0.1")).port}`;
});
afterAll(async () => {
  await api.close(500);
  await t.cleanup();
});

async function keyClient(input: Record<string, unknown>): Promise<{ id: string; client: PortcullisClient }> {
  const pair = await generateKeyPair("ed25519");
  const { key } = await t.createKey({ algorithm: "ed25519", publicKey: pair.publicKeyPem, ...input });
  return { id: key.id, client: createClient({ baseUrl: base, keyId: key.id, privateKey: pair.privateKeyPem, algorithm: "ed25519", now: t.clock.now }) };
}

async function refusal(p: Promise<unknown>): Promise<{ status: number; code: string }> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PortcullisApiError);
  const e = err as PortcullisApiError;
  return { status: e.status, code: String(e.code) };
}

interface SseEvent {
  event: string | null;
  data: string | null;
  comment: string | null;
}

/** Reads server-sent events from a response body, one at a time. */
class EventReader {
  private buffer = "";
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly decoder = new TextDecoder();
  constructor(res: Response) {
    if (res.body === null) throw new Error("no body");
    this.reader = res.body.getReader();
  }
  /** The next event or comment block; null at the end of the stream. */
  async next(): Promise<SseEvent | null> {
    for (;;) {
      const end = this.buffer.indexOf("\n\n");
      if (end >= 0) {
        const block = this.buffer.slice(0, end);
        this.buffer = this.buffer.slice(end + 2);
        const out: SseEvent = { event: null, data: null, comment: null };
        for (const line of block.split("\n")) {
          if (line.startsWith(":")) out.comment = line.slice(1).trim();
          else if (line.startsWith("event: ")) out.event = line.slice(7);
          else if (line.startsWith("data: ")) out.data = line.slice(6);
        }
        return out;
      }
      const { done, value } = await this.reader.read();
      if (done) return null;
      this.buffer += this.decoder.decode(value, { stream: true });
    }
  }
  async nextEvent(): Promise<SseEvent | null> {
    for (;;) {
      const e = await this.next();
      if (e === null || e.event !== null) return e;
    }
  }
}

/** Waits for the server to have handled what the client sent (the stream's open or close). */
const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 30));

describe("GET /portcullis/v1/stats", () => {
  let operator: { id: string; client: PortcullisClient };
  beforeAll(async () => {
    operator = await keyClient({ account: "ops", scopes: ["admin:*"], operator: true });
  });

  it("answers the window with this process's decisions on the admin surface, attributed to their keys", async () => {
    const s = await operator.client.logon();
    const bot = await keyClient({ account: "acct-1", scopes: ["read"] });
    // A refusal for the bot: it lacks admin:keys.
    expect(await refusal(bot.client.json("GET", "/portcullis/v1/keys"))).toEqual({ status: 403, code: "SCOPE_MISSING" });
    const snap = await s.json<StatsSnapshot>("GET", "/portcullis/v1/stats");
    expect(snap).toMatchObject({ now: t.clock.ms, bucketMs: 10_000, windowMs: 3_600_000 });
    expect(snap.buckets).toHaveLength(360);
    expect(snap.buckets.at(-1)?.at).toBe(Math.floor(t.clock.ms / 10_000) * 10_000);
    // The operator's logon (allowed) and the bot's refusal, both on the admin listener (with the
    // public time requests the SDK synchronises its clock with, which name no key); the snapshot's
    // own request is counted after it is answered.
    expect(snap.totals.bySurface.admin?.refused).toBe(1);
    expect(snap.totals.bySurface.admin?.allowed).toBeGreaterThanOrEqual(1);
    expect(snap.totals.byCode).toEqual({ SCOPE_MISSING: 1 });
    expect([...snap.topKeys].sort((a, b) => (a.keyId < b.keyId ? -1 : 1))).toEqual(
      [{ keyId: operator.id, account: "ops", requests: 1, refused: 0 }, { keyId: bot.id, account: "acct-1", requests: 1, refused: 1 }].sort((a, b) => (a.keyId < b.keyId ? -1 : 1)),
    );
    expect(snap.topRefusedKeys).toEqual([{ keyId: bot.id, account: "acct-1", refused: 1, lastCode: "SCOPE_MISSING" }]);
    await s.logout();
  });

  it("operator keys only: an account admin with admin:stats is refused ADMIN_GRANT_EXCEEDED, a key without it SCOPE_MISSING", async () => {
    const accountAdmin = await keyClient({ account: "acct-a", scopes: ["admin:*"] });
    expect(await refusal(accountAdmin.client.json("GET", "/portcullis/v1/stats"))).toEqual({ status: 403, code: "ADMIN_GRANT_EXCEEDED" });
    expect(await refusal(accountAdmin.client.json("GET", "/portcullis/v1/stats/stream"))).toEqual({ status: 403, code: "ADMIN_GRANT_EXCEEDED" });
    const narrow = await operator.client.logon({ scopes: ["admin:keys"] });
    expect(await refusal(narrow.json("GET", "/portcullis/v1/stats"))).toEqual({ status: 403, code: "SCOPE_MISSING" });
    await narrow.logout();
  });

  it("takes no query parameters (VALIDATION_FAILED)", async () => {
    expect(await refusal(operator.client.json("GET", "/portcullis/v1/stats?window=1"))).toEqual({ status: 400, code: "VALIDATION_FAILED" });
  });

  it("an admin API without live statistics answers ROUTE_NOT_FOUND", async () => {
    const bare = new AdminApi({ core: t.core, logger: silentLogger(), now: t.clock.now });
    const port = (await bare.listen(0, "127.0.0.1")).port;
    try {
      const { key, secret } = await t.createKey({ account: "ops", scopes: ["admin:*"], operator: true });
      const op = createClient({ baseUrl: `http://127.0.0.1:${port}`, keyId: key.id, secret: secret ?? "", now: t.clock.now });
      expect(await refusal(op.json("GET", "/portcullis/v1/stats"))).toEqual({ status: 404, code: "ROUTE_NOT_FOUND" });
      expect(await refusal(op.json("GET", "/portcullis/v1/stats/stream"))).toEqual({ status: 404, code: "ROUTE_NOT_FOUND" });
    } finally {
      await bare.close(500);
    }
  });
});

describe("GET /portcullis/v1/stats/stream", () => {
  let operator: { id: string; client: PortcullisClient };
  beforeAll(async () => {
    operator = await keyClient({ account: "ops", scopes: ["admin:*"], operator: true });
  });

  it("a snapshot, then an update per tick with the current bucket, keep-alive comments; ends at the session's expiry", async () => {
    const s = await operator.client.logon({ ttl: "1m" });
    const res = await s.request("GET", "/portcullis/v1/stats/stream");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    expect(res.headers.get("cache-control")).toBe("no-store");
    const events = new EventReader(res);
    const first = await events.next();
    expect(first?.event).toBe("snapshot");
    const snap = JSON.parse(first?.data ?? "") as StatsSnapshot;
    expect(snap.buckets).toHaveLength(360);
    expect(ticks.size).toBe(1);

    // A decision, then a tick: the update carries it in the current bucket.
    live.decided("gateway", "KEY_REVOKED", null, t.clock.ms);
    tickAll();
    const update = await events.next();
    expect(update?.event).toBe("update");
    const u = JSON.parse(update?.data ?? "") as StatsUpdate;
    expect(u.now).toBe(t.clock.ms);
    expect(u.bucket.at).toBe(Math.floor(t.clock.ms / 10_000) * 10_000);
    expect(u.bucket.byCode.KEY_REVOKED).toBeGreaterThanOrEqual(1);
    expect(u.totals.bySurface.gateway?.refused).toBeGreaterThanOrEqual(1);
    // keepAliveMs 4 s at 2 s updates: every second tick carries a keep-alive comment first.
    tickAll();
    expect((await events.next())?.comment).toBe("keep-alive");
    expect((await events.next())?.event).toBe("update");

    // The session expires: the next tick ends the stream, and nothing is left scheduled or watched.
    t.clock.advance(60_000);
    tickAll();
    expect(await events.nextEvent()).toBeNull();
    await settle();
    expect(ticks.size).toBe(0);
    expect(watchers).toBe(0);
  });

  it("ends on logout, and on any change of its key", async () => {
    const s = await operator.client.logon();
    const a = new EventReader(await s.request("GET", "/portcullis/v1/stats/stream"));
    expect((await a.next())?.event).toBe("snapshot");
    await s.logout();
    expect(await a.nextEvent()).toBeNull();

    const other = await keyClient({ account: "ops", scopes: ["admin:*"], operator: true });
    const s2 = await other.client.logon();
    const b = new EventReader(await s2.request("GET", "/portcullis/v1/stats/stream"));
    expect((await b.next())?.event).toBe("snapshot");
    await t.core.keys.update(other.id, { label: "renamed" }, "test");
    expect(await b.nextEvent()).toBeNull();
    await settle();
    expect(ticks.size).toBe(0);
    expect(watchers).toBe(0);
  });

  it("a stream signed with the key itself ends after its maximum duration (15 min)", async () => {
    const res = await operator.client.request("GET", "/portcullis/v1/stats/stream");
    const events = new EventReader(res);
    expect((await events.next())?.event).toBe("snapshot");
    t.clock.advance(14 * 60_000);
    tickAll();
    expect((await events.nextEvent())?.event).toBe("update");
    t.clock.advance(60_000);
    tickAll();
    expect(await events.nextEvent()).toBeNull();
  });

  it("at most maxStreams open (STATS_STREAMS_EXHAUSTED beyond); a closed one frees its place", async () => {
    const s = await operator.client.logon();
    const one = await s.request("GET", "/portcullis/v1/stats/stream");
    const two = await s.request("GET", "/portcullis/v1/stats/stream");
    expect([one.status, two.status]).toEqual([200, 200]);
    expect(await refusal(s.json("GET", "/portcullis/v1/stats/stream"))).toEqual({ status: 429, code: "STATS_STREAMS_EXHAUSTED" });
    await one.body?.cancel();
    await settle();
    const three = await s.request("GET", "/portcullis/v1/stats/stream");
    expect(three.status).toBe(200);
    await two.body?.cancel();
    await three.body?.cancel();
    await settle();
    expect(ticks.size).toBe(0);
    expect(watchers).toBe(0);
    await s.logout();
  });

  it("the admin API's close ends every stream and leaves no timer", async () => {
    const other = new AdminApi({ core: t.core, logger: silentLogger(), now: t.clock.now, stats: { live, ticker } });
    const port = (await other.listen(0, "127.0.0.1")).port;
    const pair = await generateKeyPair("ed25519");
    const { key } = await t.createKey({ account: "ops", scopes: ["admin:stats"], operator: true, algorithm: "ed25519", publicKey: pair.publicKeyPem });
    const c = createClient({ baseUrl: `http://127.0.0.1:${port}`, keyId: key.id, privateKey: pair.privateKeyPem, algorithm: "ed25519", now: t.clock.now });
    const events = new EventReader(await c.request("GET", "/portcullis/v1/stats/stream"));
    expect((await events.next())?.event).toBe("snapshot");
    expect(ticks.size).toBe(1);
    await other.close(500);
    expect(await events.nextEvent()).toBeNull();
    expect(ticks.size).toBe(0);
    expect(watchers).toBe(0);
  });
});
