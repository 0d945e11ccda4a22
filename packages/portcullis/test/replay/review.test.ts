/**
 * Issue 13, finding 1, under attack: the reproductions of an attack review of replay protection
 * across restarts, each asserting the secure behaviour (docs/replay.md). R1–R3 run against private
 * redis-server processes; the rest against SQLite and the memory hot store.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { restoreBackup, writeBackup } from "../../src/custody/backup.js";
import { KeyringFileProvider } from "../../src/custody/keyring.js";
import { initDataDir } from "../../src/core/data-dir.js";
import { openSqliteDataDir } from "../support/data-dir.js";
import { SequenceReservations } from "../../src/replay/reservations.js";
import { MemoryHotStore } from "../../src/storage/memory/hot.js";
import { RedisHotStore } from "../../src/storage/redis/hot.js";
import { SqliteStore } from "../../src/storage/sqlite/store.js";
import type { Admission, AdmissionResult } from "../../src/storage/types.js";
import { IN_CI, RedisServerProcess, freePort, loudSkip, redisServerInstalled } from "../support/redis.js";
import { oldDatabase } from "../support/old-database.js";

const T0 = 1_700_000_000_000;
const IP = "198.51.100.77";
const installed = redisServerInstalled();
const runRedis = installed || IN_CI;
if (!runRedis) loudSkip("the Redis half of the replay review", "redis-server is not installed");

function nonce(value: string, since: number): Admission["replay"] {
  return { kind: "nonce", keyId: "k1", value, since, expiresAt: since + 70_000 };
}

function seq(value: bigint): Admission["replay"] {
  return { kind: "sequence", keyId: "kraken-1", value, window: 0n };
}

function admission(now: number, replay: Admission["replay"], extra: Partial<Admission> = {}): Admission {
  return { now, ip: IP, replay, charges: [], session: null, ...extra };
}

async function until<T>(what: () => Promise<T>, ms: number): Promise<T> {
  const deadline = performance.now() + ms;
  for (;;) {
    try {
      return await what();
    } catch (err) {
      if (performance.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

describe.runIf(runRedis)("replay across Redis restarts, under attack", () => {
  const servers: RedisServerProcess[] = [];
  const cleanups: (() => Promise<void> | void)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
    for (const s of servers) await s.kill();
  });

  it("R1: a copy in flight when Redis dies, re-sent by a client with ioredis's defaults to the restarted Redis, is not accepted (the epoch marker)", async () => {
    const port = await freePort();
    servers.push(await RedisServerProcess.start(port));
    const client = new Redis(`redis://127.0.0.1:${port}`); // ioredis defaults: offline queue, re-sending
    client.on("error", () => undefined);
    let clock = T0 + 10_000;
    const store = new RedisHotStore({ client, prefix: "r1:", now: () => clock });
    cleanups.push(async () => {
      await store.close();
      client.disconnect();
    });
    await store.epoch();
    const signed = nonce("sig-accepted-before-the-crash", T0 + 10_000);
    expect((await store.admit(admission(T0 + 10_000, signed))).ok).toBe(true);
    expect(await store.admit(admission(T0 + 10_000, signed))).toEqual({ ok: false, reason: "replayed" });
    // A copy written while Redis is held (CLIENT PAUSE), and Redis dies before running it.
    const pauser = new Redis(`redis://127.0.0.1:${port}`);
    pauser.on("error", () => undefined);
    await pauser.call("CLIENT", "PAUSE", "10000", "ALL");
    const inflight = store.admit(admission(T0 + 10_000, signed)).then(
      (r: AdmissionResult) => r,
      () => "rejected" as const,
    );
    await new Promise((r) => setTimeout(r, 100));
    clock = T0 + 12_000;
    await servers[servers.length - 1]?.kill("SIGKILL");
    pauser.disconnect();
    servers.push(await RedisServerProcess.start(port));
    const outcome = await inflight;
    expect(outcome === "rejected" || !outcome.ok).toBe(true);
    expect(await until(() => store.admit(admission(T0 + 10_000, signed)), 5_000)).toEqual({ ok: false, reason: "fenced" });
  });

  it("R2: after a failover, a gateway that starts later adopts the epoch in the marker, not the promoted replica's uptime", async () => {
    const port = await freePort();
    servers.push(await RedisServerProcess.start(port));
    await new Promise((r) => setTimeout(r, 2_100)); // the "replica" has been up a while
    const durable = new SqliteStore(":memory:");
    cleanups.push(() => durable.close());
    // The deployment used the old primary, whose marker was replicated here.
    const admin = new Redis(`redis://127.0.0.1:${port}`);
    await admin.set("r2:epoch", "00000000000000000000000000000000000000aa:1");
    admin.disconnect();
    const clock = T0 + 60_000;
    const first = new RedisHotStore({ url: `redis://127.0.0.1:${port}`, prefix: "r2:", runs: durable, now: () => clock, onError: () => undefined });
    cleanups.push(() => first.close());
    expect(await first.epoch()).toBe(clock);
    await first.close();
    const second = new RedisHotStore({ url: `redis://127.0.0.1:${port}`, prefix: "r2:", runs: durable, now: () => clock + 500, onError: () => undefined });
    cleanups.push(() => second.close());
    expect(await second.epoch()).toBe(clock);
    // A request signed just before the failover, accepted by the old primary, never replicated:
    expect(await second.admit(admission(clock + 500, nonce("sig-lost-in-failover", clock - 1_000)))).toEqual({ ok: false, reason: "fenced" });
  });

  it("R3: a Redis whose maxmemory-policy may evict replay state is refused (fail closed, with the reason)", async () => {
    const port = await freePort();
    const server = await RedisServerProcess.start(port);
    servers.push(server);
    const admin = new Redis(server.url);
    await admin.config("SET", "maxmemory", "3mb");
    await admin.config("SET", "maxmemory-policy", "volatile-lru");
    const errors: Error[] = [];
    const store = new RedisHotStore({ url: server.url, prefix: "r3:", now: () => T0, commandTimeoutMs: 500, onError: (e) => errors.push(e) });
    cleanups.push(() => store.close());
    await expect(store.admit(admission(T0, nonce("n", T0)))).rejects.toThrow(/not known/);
    expect(errors.map((e) => e.message).join("\n")).toMatch(/maxmemory-policy volatile-lru may evict used nonces and logouts; set maxmemory-policy noeviction/);
    // Fixed by the operator: admitted again (a later reading).
    await admin.config("SET", "maxmemory-policy", "noeviction");
    admin.disconnect();
    expect((await until(async () => {
      const r = await store.admit(admission(T0, nonce("n", T0)));
      return r;
    }, 3_000)).ok).toBe(true);
  });
});

describe("replay state across restarts of the durable side, under attack", () => {
  it("M1 and F1: the degradable routes' stand-in reads logouts and reservations again at each outage", async () => {
    const durable = new SqliteStore(":memory:");
    try {
      const fallback = new MemoryHotStore({ epochStart: T0, reservations: new SequenceReservations(durable), logouts: durable });
      // Outage 1: the stand-in served a read.
      expect((await fallback.admit(admission(T0 + 1_000, null, { session: "sid-1" }))).ok).toBe(true);
      // Back on Redis: a logout, and a Kraken request whose nonce the Redis store reserved.
      await durable.endSession("sid-1", T0 + 3_600_000, T0 + 2_000);
      const viaRedis = new SequenceReservations(durable);
      await viaRedis.begin();
      await viaRedis.reserve("kraken-1", 9_000n, T0 + 2_000);
      // Outage 2 (the admission stage reloads the stand-in at its first degraded admission).
      fallback.reload();
      expect(await fallback.admit(admission(T0 + 3_000, null, { session: "sid-1" }))).toEqual({ ok: false, reason: "session-revoked" });
      expect(await fallback.admit(admission(T0 + 86_400_000, seq(9_000n)))).toEqual({ ok: false, reason: "too-low" });
    } finally {
      await durable.close();
    }
  });

  it("M3: a restored backup keeps the reservations and logouts of the database it replaces, and fences the next start", async () => {
    const dir = mkdtempSync(join(tmpdir(), "portcullis-review-m3-"));
    try {
      await initDataDir(dir, "test");
      const data = await openSqliteDataDir(dir);
      const out = join(dir, "..", `${dir.split("/").pop() ?? "x"}.backup`);
      try {
        const first = new MemoryHotStore({ epochStart: T0, reservations: new SequenceReservations(data.store), served: data.store });
        expect((await first.admit(admission(T0, seq(1_000n)))).ok).toBe(true);
        await writeBackup({ dataDir: dir, store: data.store, kek: data.kek, environment: "test", out });
        // After the backup: a Kraken request forwarded, a session logged out.
        expect((await first.admit(admission(T0 + 10_000, seq(50_000n)))).ok).toBe(true);
        // (Its expiry by the real clock: a restore carries only logouts that have not expired.)
        await data.store.endSession("sid-after-backup", Date.now() + 3_600_000, T0 + 10_000);
      } finally {
        await data.close();
      }
      const kek = KeyringFileProvider.load(join(dir, "keyring.json"));
      const restored = await restoreBackup({ file: out, dataDir: dir, kek, force: true });
      await kek.close();
      rmSync(out, { force: true });
      expect(restored).toMatchObject({ replaced: true, carried: { reservations: 1, logouts: 1 } });
      const durable = new SqliteStore(join(dir, "portcullis.db"));
      try {
        const next = new MemoryHotStore({ epochStart: T0 + 20_000, reservations: new SequenceReservations(durable), served: durable, logouts: durable });
        expect(await next.admit(admission(T0 + 20_000, seq(50_000n)))).toEqual({ ok: false, reason: "too-low" });
        expect(await next.admit(admission(T0 + 20_000, null, { session: "sid-after-backup" }))).toEqual({ ok: false, reason: "session-revoked" });
        expect(await next.epoch()).toBe(T0 + 20_000);
      } finally {
        await durable.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("M5: the first start after upgrading a database that holds keys is fenced like any restart", async () => {
    const old = await oldDatabase("portcullis-review-m5-", 7);
    old.db
      .prepare(
        `INSERT INTO keys (id, environment, account, label, algorithm, public_key, scopes, ip_allowlist, dialects, status, created_at, updated_at)
         VALUES ('pck_test_v1_old', 'test', 'acct-old', '', 'ed25519', 'PEM', '["read"]', '[]', '["native"]', 'active', 1, 2)`,
      )
      .run();
    old.db.close();
    const durable = new SqliteStore(old.path);
    try {
      const upgraded = new MemoryHotStore({ epochStart: T0 + 5_000, reservations: new SequenceReservations(durable), served: durable, logouts: durable });
      expect(await upgraded.epoch()).toBe(T0 + 5_000);
      expect(await upgraded.admit(admission(T0 + 6_000, nonce("sig-old-version", T0 + 3_000)))).toEqual({ ok: false, reason: "fenced" });
    } finally {
      await durable.close();
      rmSync(old.dir, { recursive: true, force: true });
    }
  });

  it("a database without keys (nothing served) is not fenced after migration 8", async () => {
    const old = await oldDatabase("portcullis-review-m5b-", 7);
    old.db.close();
    const durable = new SqliteStore(old.path);
    try {
      expect(await new MemoryHotStore({ epochStart: T0, served: durable }).epoch()).toBe(-Infinity);
    } finally {
      await durable.close();
      rmSync(old.dir, { recursive: true, force: true });
    }
  });
});

