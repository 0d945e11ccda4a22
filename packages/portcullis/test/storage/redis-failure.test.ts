import { type Socket, connect } from "node:net";
import { performance } from "node:perf_hooks";
import { Redis } from "ioredis";
import { afterAll, describe, expect, it, vi } from "vitest";
import type { Charge } from "../../src/contract/limits.js";
import { type RedisEpoch, RedisHotStore } from "../../src/storage/redis/hot.js";
import { SequenceReservations } from "../../src/replay/reservations.js";
import { SqliteStore } from "../../src/storage/sqlite/store.js";
import type { Admission, AdmissionResult } from "../../src/storage/types.js";
import { IN_CI, RedisServerProcess, freePort, loudSkip, redisServerInstalled } from "../support/redis.js";

/**
 * The Redis hot store when Redis goes away: a private redis-server child process (its own port,
 * no persistence) is killed with SIGKILL mid-run and started again on the same port. The store
 * must reject quickly while Redis is gone (so the pipeline fails closed or degrades), never crash
 * or leak an unhandled 'error' event, and recover by itself.
 */

const installed = redisServerInstalled();
const run = installed || IN_CI;
if (!run) loudSkip("the Redis failure tests", "no redis-server binary on PATH");

const TIMEOUT_MS = 500;
/** Scheduling slack on a loaded test machine. */
const SLACK_MS = 400;
const T0 = 1_700_000_000_000;

function charge(bucket: string, limit: number): Charge {
  return { spec: { name: bucket, scope: "ip", kind: "weight", limit, windowMs: 60_000 }, bucket, limit, windowMs: 60_000, cost: 1 };
}

function admission(now: number, charges: readonly Charge[]): Admission {
  return { now, ip: "198.51.100.20", replay: null, charges, session: null };
}

/** Polls (real time: reconnection is real) until `store` admits, or throws after `ms`. */
async function admitsWithin(store: RedisHotStore, ms: number, now: number): Promise<AdmissionResult> {
  const deadline = performance.now() + ms;
  for (;;) {
    try {
      return await store.admit(admission(now, [charge("recover", 1_000_000)]));
    } catch (err) {
      if (performance.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
}

async function timed<T>(p: Promise<T>): Promise<{ ms: number; result: PromiseSettledResult<T> }> {
  const start = performance.now();
  try {
    const value = await p;
    return { ms: performance.now() - start, result: { status: "fulfilled", value } };
  } catch (reason) {
    return { ms: performance.now() - start, result: { status: "rejected", reason } };
  }
}

describe.runIf(run)("redis hot store when Redis fails", () => {
  const servers: RedisServerProcess[] = [];
  const stores: RedisHotStore[] = [];
  afterAll(async () => {
    for (const s of stores) await s.close();
    for (const s of servers) await s.kill();
  });

  it("rejects quickly once Redis is killed, never crashes, and recovers when Redis is back", async () => {
    const port = await freePort();
    servers.push(await RedisServerProcess.start(port));
    const errors: Error[] = [];
    const store = new RedisHotStore({ url: `redis://127.0.0.1:${port}`, prefix: "pcf:", commandTimeoutMs: TIMEOUT_MS, onError: (e) => errors.push(e) });
    stores.push(store);
    const c = charge("steady", 1_000_000);
    expect((await store.admit(admission(T0, [c]))).ok).toBe(true);

    // Mid-run: 100 admissions in flight when the server dies.
    const inflight = Array.from({ length: 100 }, (_, i) => timed(store.admit(admission(T0 + i, [c]))));
    await servers[0]?.kill("SIGKILL");
    const settled = await Promise.all(inflight);
    for (const s of settled) expect(s.ms).toBeLessThan(TIMEOUT_MS + SLACK_MS);

    // While Redis is down: every admission and failure report rejects, at once.
    for (let i = 0; i < 5; i++) {
      const s = await timed(store.admit(admission(T0 + 1_000 + i, [c])));
      expect(s.result.status).toBe("rejected");
      expect(s.ms).toBeLessThan(TIMEOUT_MS + SLACK_MS);
      const f = await timed(store.recordFailure("198.51.100.20", null, T0 + 1_000 + i));
      expect(f.result.status).toBe("rejected");
      expect(f.ms).toBeLessThan(TIMEOUT_MS + SLACK_MS);
    }

    // Its reconnection attempts are refused meanwhile; those errors go to onError, not to an
    // unhandled 'error' event (which would crash the process). Wait for one before restarting, so
    // the down period always includes a refused attempt (its first retry is 50 ms after the drop).
    const deadline = Date.now() + 5_000;
    while (errors.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(errors.length).toBeGreaterThan(0);

    // Back on the same port: the store reconnects by itself (its backoff is at most 2 s).
    servers.push(await RedisServerProcess.start(port));
    const recovered = await admitsWithin(store, 8_000, T0 + 2_000);
    expect(recovered.ok).toBe(true);
    expect((await store.admit(admission(T0 + 2_001, [c]))).ok).toBe(true);
  });

  it("gives up after the command timeout when Redis hangs (SIGSTOP), and goes on when it resumes", async () => {
    const port = await freePort();
    const server = await RedisServerProcess.start(port);
    servers.push(server);
    const errors: Error[] = [];
    const store = new RedisHotStore({ url: server.url, prefix: "pch:", commandTimeoutMs: TIMEOUT_MS, onError: (e) => errors.push(e) });
    stores.push(store);
    const c = charge("hang", 1_000_000);
    expect((await store.admit(admission(T0, [c]))).ok).toBe(true);
    server.signal("SIGSTOP");
    try {
      const hung = await Promise.all(Array.from({ length: 20 }, () => timed(store.admit(admission(T0, [c])))));
      for (const h of hung) {
        expect(h.result.status).toBe("rejected");
        expect(h.ms).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
        expect(h.ms).toBeLessThan(TIMEOUT_MS + SLACK_MS);
        if (h.result.status === "rejected") expect(String(h.result.reason)).toMatch(/redis hot store unavailable.*timed out/i);
      }
    } finally {
      server.signal("SIGCONT");
    }
    expect((await admitsWithin(store, 8_000, T0 + 1)).ok).toBe(true);
    // Known and documented: a command that timed out may still run once Redis resumes — the 20
    // refused-as-unavailable admissions did consume their units (1 + 20 + this one).
    expect(await store.admit(admission(T0, [c]))).toMatchObject({ ok: true, states: [{ remaining: 1_000_000 - 22 }] });
  });

  it("waits for the first connection (up to its timeout), then fails fast until Redis starts", async () => {
    const port = await freePort();
    const store = new RedisHotStore({ url: `redis://127.0.0.1:${port}`, prefix: "pcf:", commandTimeoutMs: TIMEOUT_MS, onError: () => undefined });
    stores.push(store);
    const first = await timed(store.admit(admission(T0, [charge("first", 10)])));
    expect(first.result.status).toBe("rejected");
    expect(first.ms).toBeLessThan(TIMEOUT_MS + SLACK_MS);
    servers.push(await RedisServerProcess.start(port));
    expect((await admitsWithin(store, 8_000, T0)).ok).toBe(true);
  });

  it("a Redis that restarts empty is a new run: what it accepted before is refused (fenced, or too low), never accepted again, and logouts stay", async () => {
    const port = await freePort();
    servers.push(await RedisServerProcess.start(port));
    const durable = new SqliteStore(":memory:");
    const epochs: { epoch: RedisEpoch; previous: RedisEpoch | null }[] = [];
    let clock = T0;
    const store = new RedisHotStore({
      url: `redis://127.0.0.1:${port}`,
      prefix: "pce:",
      commandTimeoutMs: TIMEOUT_MS,
      onError: () => undefined,
      now: () => clock,
      reservations: new SequenceReservations(durable),
      logouts: durable,
      onEpoch: (epoch, previous) => epochs.push({ epoch, previous }),
    });
    stores.push(store);
    try {
      const firstStart = await store.epoch();
      expect(firstStart).toBeLessThanOrEqual(T0);
      clock = T0 + 10_000;
      const signed = { kind: "nonce" as const, keyId: "k", value: "sig-1", since: T0 + 9_000, expiresAt: T0 + 70_000 };
      const counted = { kind: "sequence" as const, keyId: "kr", value: 5_000n, window: 0n };
      const admit = (replay: Admission["replay"]): Promise<AdmissionResult> => store.admit({ now: clock, ip: "198.51.100.50", replay, charges: [], session: null });
      expect((await admit(signed)).ok).toBe(true);
      expect((await admit(counted)).ok).toBe(true);
      expect(await admit(signed)).toEqual({ ok: false, reason: "replayed" });
      expect(await admit(counted)).toEqual({ ok: false, reason: "replayed" });
      // A session logged out (as the core does it: the durable record, then the hot store).
      await durable.endSession("sid-out", T0 + 3_600_000, clock);
      await store.revokeSession("sid-out", T0 + 3_600_000, clock);
      const withSession = (sid: string): Promise<AdmissionResult> => store.admit({ now: clock, ip: "198.51.100.50", replay: null, charges: [], session: sid });
      expect(await withSession("sid-out")).toEqual({ ok: false, reason: "session-revoked" });

      // Killed, and started again empty (no persistence), 20 s later by the gateway's clock.
      await servers[servers.length - 1]?.kill("SIGKILL");
      clock = T0 + 30_000;
      servers.push(await RedisServerProcess.start(port));
      expect((await admitsWithin(store, 8_000, clock)).ok).toBe(true);
      const secondStart = await store.epoch();
      expect(secondStart).toBeGreaterThan(T0 + 9_000);
      expect(epochs.map((e) => e.previous?.runId ?? null)).toEqual([null, epochs[0]?.epoch.runId]);
      expect(epochs[1]?.epoch.runId).not.toBe(epochs[0]?.epoch.runId);

      // Redis forgot both; the store does not accept them again.
      expect(await admit(signed)).toEqual({ ok: false, reason: "fenced" });
      expect(await admit(counted)).toEqual({ ok: false, reason: "too-low" });
      // What was signed after the restart, and nonces above the reservation, are accepted.
      expect((await admit({ ...signed, value: "sig-2", since: secondStart })).ok).toBe(true);
      expect((await admit({ ...counted, value: 5_001n })).ok).toBe(true);
      // The logout was written to the new Redis before it admitted anything.
      expect(await withSession("sid-out")).toEqual({ ok: false, reason: "session-revoked" });
      expect((await withSession("sid-other")).ok).toBe(true);
    } finally {
      await durable.close();
    }
  });

  it("fails closed while it cannot read the server's run (INFO refused), and reads it again once it can", async () => {
    const port = await freePort();
    const server = await RedisServerProcess.start(port);
    servers.push(server);
    const admin = new Redis(server.url);
    try {
      // A user that may run everything but INFO.
      await admin.call("ACL", "SETUSER", "noinfo", "on", ">pw", "~*", "&*", "+@all", "-info");
      const errors: Error[] = [];
      const store = new RedisHotStore({ url: `redis://noinfo:pw@127.0.0.1:${port}`, prefix: "pci:", commandTimeoutMs: TIMEOUT_MS, onError: (e) => errors.push(e), now: () => T0 });
      stores.push(store);
      const refused = await timed(store.admit(admission(T0, [charge("info", 100)])));
      expect(refused.result.status).toBe("rejected");
      if (refused.result.status === "rejected") expect(String(refused.result.reason)).toMatch(/redis hot store unavailable.*run \(INFO server\) is not known/);
      expect(errors.some((e) => /NOPERM/i.test(e.message))).toBe(true);
      // Allowed INFO again: a later admission reads the run (at most a second after the failed
      // reading), and is admitted.
      await admin.call("ACL", "SETUSER", "noinfo", "+info");
      expect((await admitsWithin(store, 3_000, T0)).ok).toBe(true);
      expect(await store.epoch()).toBeLessThanOrEqual(T0);
    } finally {
      admin.disconnect();
    }
  });

  it("takes one round trip per admission: one EVAL/EVALSHA, everything else inside it (INFO commandstats, MONITOR)", async () => {
    const port = await freePort();
    const server = await RedisServerProcess.start(port);
    servers.push(server);
    const probe = new Redis(server.url);
    const sent: string[] = [];
    const monitor = await rawMonitor(port, sent);
    const store = new RedisHotStore({ url: server.url, prefix: "pcr:", commandTimeoutMs: 2_000, now: () => T0 });
    stores.push(store);
    try {
      await store.ready();
      // The store reads its epoch on connecting (INFO, the marker); that is before the count starts.
      await store.epoch();
      await probe.ping();
      await vi.waitFor(() => {
        expect(sent).toContain("ping");
      });
      sent.length = 0;
      await probe.config("RESETSTAT");
      const N = 500;
      const charges = [charge("a", 100_000), charge("b", 100_000), charge("c", 100_000)];
      for (let i = 0; i < N; i++) {
        const replay = i % 2 === 0 ? { kind: "nonce" as const, keyId: "k", value: `n${i}`, since: T0, expiresAt: T0 + 60_000 } : { kind: "sequence" as const, keyId: "k", value: BigInt(i), window: 10n };
        expect((await store.admit({ now: T0 + i, ip: "198.51.100.30", replay, charges, session: null })).ok).toBe(true);
      }
      for (let i = 0; i < 10; i++) await store.recordFailure("198.51.100.30", "k", T0 + N);
      const stats = await probe.info("commandstats");
      const calls = new Map<string, number>();
      for (const m of stats.matchAll(/^cmdstat_([a-z|]+):calls=(\d+)/gm)) calls.set(m[1] ?? "", Number(m[2]));
      // INFO commandstats counts the script's inner commands too; the scripts themselves:
      expect((calls.get("evalsha") ?? 0) + (calls.get("eval") ?? 0)).toBe(N + 10);
      // MONITOR is asynchronous: a PING through the probe marks the end of what the store sent.
      await probe.ping();
      await vi.waitFor(() => {
        expect(sent).toContain("ping");
      });
      const fromStore = sent.filter((c) => !["config", "info", "ping"].includes(c));
      expect(fromStore.length).toBe(N + 10);
      expect(new Set(fromStore)).toEqual(new Set(["eval", "evalsha"]));
      // EVAL once per connection and script (ioredis), EVALSHA afterwards.
      expect(fromStore.filter((c) => c === "eval").length).toBe(2);
    } finally {
      monitor.destroy();
      probe.disconnect();
    }
  });
});

/**
 * MONITOR on a plain socket: each command a client sent, lower-cased, into `sent` (those a script
 * ran, source "lua", left out). Not ioredis's `monitor()`: under load its connection can take a
 * monitored line for the reply to its own ready check ("Command queue state error", thrown
 * uncaught; redis/ioredis#1981).
 */
async function rawMonitor(port: number, sent: string[]): Promise<Socket> {
  const socket = connect(port, "127.0.0.1");
  let pending = "";
  let ok: () => void = () => undefined;
  const started = new Promise<void>((resolve) => {
    ok = resolve;
  });
  socket.setEncoding("utf8");
  socket.on("data", (chunk: string) => {
    pending += chunk;
    let end = pending.indexOf("\r\n");
    while (end >= 0) {
      const line = pending.slice(0, end);
      pending = pending.slice(end + 2);
      end = pending.indexOf("\r\n");
      if (line === "+OK") ok();
      // +1700000000.123456 [0 127.0.0.1:50000] "evalsha" "…" …  (or [0 lua] for a script's commands)
      const m = /^\+\d+\.\d+ \[\d+ ([^\]]+)\] "([^"]*)"/.exec(line);
      if (m !== null && m[1] !== "lua") sent.push((m[2] ?? "").toLowerCase());
    }
  });
  socket.write("MONITOR\r\n");
  await started;
  return socket;
}
