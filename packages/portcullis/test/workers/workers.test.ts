/**
 * `portcullis start --workers N` as a user runs it: a real primary and real worker processes on
 * one data directory, with hot state in the real Redis (a prefix of its own per test file), driven
 * by real HTTP requests, each on a connection of its own. Which worker answered a request is read
 * from the process table (/proc: the worker holding the server side of the request's socket), not
 * from anything the gateway sends.
 */
import { readFileSync, readdirSync, readlinkSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { Agent, request as httpRequest, createServer, type Server } from "node:http";
import { type AddressInfo, createServer as createTcpServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TEST_ROUTES, signRequest } from "../support/harness.js";
import { runCli, startCli } from "../support/cli.js";
import { IN_CI, SHARED_REDIS_URL, deleteKeys, loudSkip, redisReachable, uniquePrefix } from "../support/redis.js";
import { parseConfig } from "../../src/config/config.js";
import { checkWorkersConfig, restartDelay, workerCount } from "../../src/runtime/workers.js";

const REDIS = await redisReachable(SHARED_REDIS_URL);
if (!REDIS && !IN_CI) loudSkip("portcullis start --workers (test/workers)", `no Redis at ${SHARED_REDIS_URL}`);
const withRedis = REDIS || IN_CI ? describe : describe.skip;

interface KeyJson {
  id: string;
  secret: string;
}

let dir: string;
let data: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "portcullis-workers-"));
  data = join(dir, "data");
  expect((await runCli(["init", "--data", data, "--environment", "test", "--json"])).code).toBe(0);
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Writes a config for the data directory: the test routes, ports chosen by the system, `extra` merged in. */
function writeConfig(name: string, upstream: string, extra: Record<string, unknown>): string {
  const starter = JSON.parse(readFileSync(join(data, "portcullis.json"), "utf8")) as Record<string, Record<string, unknown>>;
  const file = join(data, name);
  const gateway = { ...starter.gateway, host: "127.0.0.1", port: 0, upstream, ...(extra.gateway as Record<string, unknown> | undefined) };
  writeFileSync(file, JSON.stringify({ ...starter, admin: { ...starter.admin, port: 0 }, routes: TEST_ROUTES, ...extra, gateway }));
  return file;
}

/** An upstream that answers at once, or after `?slow` 600 ms (an in-flight request for the drain test). */
async function startUpstream(): Promise<{ url: string; received: string[]; close(): Promise<void> }> {
  const received: string[] = [];
  const server: Server = createServer((req, res) => {
    received.push(req.url ?? "");
    const answer = (): void => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ ok: true }));
    };
    if (req.url?.includes("slow") === true) setTimeout(answer, 600);
    else answer();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => { resolve(); });
      }),
  };
}

/** The pids of `parent`'s children (from /proc). */
function childrenOf(parent: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // pid (comm) state ppid …: comm may hold spaces, so read after its closing parenthesis.
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === parent) out.push(Number(entry));
    } catch {
      // The process ended meanwhile.
    }
  }
  return out.sort((a, b) => a - b);
}

/** The socket inode of the TCP connection 127.0.0.1:`localPort` ↔ 127.0.0.1:`remotePort` (from /proc/net/tcp). */
function socketInode(localPort: number, remotePort: number): string | null {
  const hex = (port: number): string => `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1] === hex(localPort) && f[2] === hex(remotePort)) return f[9] ?? null;
  }
  return null;
}

/** Which of `pids` holds socket `inode` (the worker that accepted the connection). */
function holderOf(pids: readonly number[], inode: string): number | null {
  const target = `socket:[${inode}]`;
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`) === target) return pid;
      } catch {
        // The descriptor closed meanwhile.
      }
    }
  }
  return null;
}

interface Answer {
  status: number;
  code: string | undefined;
  /** The worker that answered (null when the connection was gone before it could be looked up). */
  pid: number | null;
}

withRedis("portcullis start --workers 2 with hot state in Redis", () => {
  const prefix = uniquePrefix("workers");
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let primary: Awaited<ReturnType<typeof startCli>>;
  let gateway: URL;
  let admin: string;
  let redis: Redis;

  beforeAll(async () => {
    redis = new Redis(SHARED_REDIS_URL);
    upstream = await startUpstream();
    // The worker count from the config file (the flag's default); the flag is tested below.
    const config = writeConfig("workers.json", upstream.url, { hot: { backend: "redis", url: SHARED_REDIS_URL, prefix }, gateway: { workers: 2 } });
    primary = await startCli(["start", "--config", config], (line) => line.includes("portcullis started"));
    const started = JSON.parse(primary.line) as { gateway: string; admin: string; workers: number };
    expect(started.workers).toBe(2);
    gateway = new URL(started.gateway);
    admin = started.admin;
  }, 30_000);
  afterAll(async () => {
    if (primary.child.exitCode === null) primary.child.kill("SIGKILL");
    await upstream.close();
    await deleteKeys(redis, prefix);
    redis.disconnect();
  });

  const workers = (): number[] => childrenOf(primary.child.pid ?? -1);

  /** One request on a connection of its own; the connection stays open until the answering worker is known. */
  function send(path: string, headers: Record<string, string>): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const req = httpRequest({ host: gateway.hostname, port: gateway.port, path, headers, agent }, (res) => {
        // The answer's head is here and the connection is open: its server side is at one worker.
        const inode = socketInode(Number(gateway.port), res.socket.localPort ?? 0);
        const pid = inode === null ? null : holderOf(workers(), inode);
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          agent.destroy();
          const text = Buffer.concat(chunks).toString("utf8");
          const status = res.statusCode ?? 0;
          resolve({ status, code: status === 200 ? undefined : (JSON.parse(text) as { code: string }).code, pid });
        });
      });
      req.on("error", reject);
      req.setTimeout(10_000, () => { req.destroy(new Error(`no answer to ${path} within 10 s`)); });
      req.end();
    });
  }

  function signed(key: KeyJson, path = "/api/v3/account", nonce?: string): Record<string, string> {
    return signRequest({ method: "GET", url: path, keyId: key.id, key: key.secret, created: Math.floor(Date.now() / 1000), host: gateway.host, ...(nonce === undefined ? {} : { nonce }) });
  }

  async function createKey(account: string, ...extra: string[]): Promise<KeyJson> {
    const res = await runCli(["keys", "create", "--data", data, "--account", account, "--scopes", "read", ...extra, "--json"]);
    expect(res.code).toBe(0);
    return JSON.parse(res.stdout) as KeyJson;
  }

  it("runs two workers, children of the primary, and both answer requests", async () => {
    expect(workers()).toHaveLength(2);
    const key = await createKey("acct-serve");
    const answers: Answer[] = [];
    for (let i = 0; i < 8; i++) answers.push(await send("/api/v3/account", signed(key)));
    expect(answers.map((a) => a.status)).toEqual(Array(8).fill(200));
    // Every answer is traced to a worker, and the connections went to both.
    expect(answers.every((a) => a.pid !== null && workers().includes(a.pid))).toBe(true);
    expect(new Set(answers.map((a) => a.pid)).size).toBe(2);
  });

  it("admits a nonce once across the workers: the same signed request on 12 connections, exactly one is admitted", async () => {
    const key = await createKey("acct-replay");
    const headers = signed(key, "/api/v3/account", `replay-${Date.now()}`);
    const answers = await Promise.all(Array.from({ length: 12 }, () => send("/api/v3/account", headers)));
    expect(answers.filter((a) => a.status === 200)).toHaveLength(1);
    expect(answers.filter((a) => a.code === "NONCE_REPLAYED")).toHaveLength(11);
    // The refusals came from both workers: the one that admitted it and the other.
    expect(new Set(answers.map((a) => a.pid)).size).toBe(2);
  });

  it("a limit of 5 requests across the workers admits exactly 5", async () => {
    // GET /api/v3/account weighs 20: a key budget of 100 a minute is 5 requests.
    const key = await createKey("acct-limit", "--limit", "key-weight-1m=100");
    const answers: Answer[] = [];
    for (let i = 0; i < 12; i++) answers.push(await send("/api/v3/account", signed(key)));
    expect(answers.filter((a) => a.status === 200)).toHaveLength(5);
    expect(answers.filter((a) => a.code === "RATE_LIMITED")).toHaveLength(7);
    expect(new Set(answers.filter((a) => a.status === 200).map((a) => a.pid)).size).toBe(2);
  });

  /** Sends until every worker has refused the key with `code`; the time it took. */
  async function refusedByAll(key: KeyJson, code: string, ms: number): Promise<number> {
    const start = Date.now();
    const refusedAt = new Set<number>();
    for (;;) {
      const a = await send("/api/v3/account", signed(key));
      if (a.code === code && a.pid !== null) refusedAt.add(a.pid);
      else expect(a.status).toBe(200);
      if (workers().every((p) => refusedAt.has(p))) return Date.now() - start;
      if (Date.now() - start > ms) throw new Error(`refused by ${refusedAt.size} of ${workers().length} workers after ${Date.now() - start} ms`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  it("a key revoked by the CLI on the data directory is refused by every worker within a second", async () => {
    const key = await createKey("acct-revoke-cli");
    // Cached at both workers first.
    const before = await Promise.all(Array.from({ length: 4 }, () => send("/api/v3/account", signed(key))));
    expect(before.map((a) => a.status)).toEqual([200, 200, 200, 200]);
    expect((await runCli(["keys", "revoke", key.id, "--data", data])).code).toBe(0);
    expect(await refusedByAll(key, "KEY_REVOKED", 1000)).toBeLessThan(1000);
  });

  it("a key revoked through one worker's admin API is refused by every worker within a second", async () => {
    const operator = await runCli(["keys", "create", "--data", data, "--account", "ops", "--scopes", "admin:keys", "--operator", "--json"]);
    const op = JSON.parse(operator.stdout) as KeyJson;
    const env = { PORTCULLIS_ADMIN_KEY_ID: op.id, PORTCULLIS_ADMIN_SECRET: op.secret };
    const key = await createKey("acct-revoke-admin");
    const before = await Promise.all(Array.from({ length: 4 }, () => send("/api/v3/account", signed(key))));
    expect(before.map((a) => a.status)).toEqual([200, 200, 200, 200]);
    expect((await runCli(["keys", "revoke", key.id, "--admin", admin, "--json"], env)).code).toBe(0);
    expect(await refusedByAll(key, "KEY_REVOKED", 1000)).toBeLessThan(1000);
  });

  it("a killed worker is replaced and the service keeps answering meanwhile", async () => {
    const key = await createKey("acct-restart", "--limit", "key-weight-1m=100000");
    const [victim, survivor] = workers();
    if (victim === undefined || survivor === undefined) throw new Error("expected two workers");
    process.kill(victim, "SIGKILL");
    // Once the primary has seen the exit (it reaped the process), no connection goes to the dead
    // worker. (A connection handed to it in the instant it died is lost: docs/processes.md.)
    const deadline = Date.now() + 30_000;
    while (workers().includes(victim)) {
      if (Date.now() > deadline) throw new Error("the primary never reaped the killed worker");
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    let replacement: number | undefined;
    // Every request is answered (by the survivor) until the replacement serves too.
    for (;;) {
      const a = await send("/api/v3/account", signed(key));
      expect(a.status).toBe(200);
      replacement = workers().find((p) => p !== survivor && p !== victim);
      if (replacement !== undefined && a.pid === replacement) break;
      if (Date.now() > deadline) throw new Error(`no replacement served within 30 s (workers ${workers().join(", ")})`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(workers()).toEqual([survivor, replacement].sort((a, b) => a - b));
  }, 45_000);

  it("SIGTERM drains every worker (a request in flight is answered) and the primary exits 0; the audit chain verifies", async () => {
    const key = await createKey("acct-drain");
    const count = upstream.received.length;
    const slow = send("/api/v3/order?slow=1", signed(key, "/api/v3/order?slow=1"));
    // The request is at the upstream (in flight at a worker) when the primary is told to stop.
    for (let i = 0; upstream.received.length === count; i++) {
      if (i > 200) throw new Error("the slow request never reached the upstream");
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const pids = workers();
    const exit = primary.stop();
    expect((await slow).status).toBe(200);
    expect(await exit).toBe(0);
    // No worker is left behind.
    expect(pids.filter((p) => existsProcess(p))).toEqual([]);
    const verify = await runCli(["audit", "verify", "--data", data, "--json"]);
    expect(verify.code).toBe(0);
    const report = JSON.parse(verify.stdout) as { ok: boolean; verified: number };
    expect(report.ok).toBe(true);
    // Entries from both workers (at least every request of this file's tests) in one chain.
    expect(report.verified).toBeGreaterThan(40);
  }, 20_000);
});

function existsProcess(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("portcullis start --workers: refusals", () => {
  it("refuses more than one worker with hot state in process memory, before starting any", async () => {
    const config = writeConfig("memory.json", "http://127.0.0.1:9", { hot: { backend: "memory" } });
    const res = await runCli(["start", "--config", config, "--workers", "2"]);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/^WORKERS_NEED_SHARED_HOT_STATE: 2 workers need hot state shared by every process: set "hot": \{ "backend": "redis"/);
    expect(res.stdout).toBe("");
    // The same from the config file's gateway.workers, and from "auto" on a machine of several cores.
    const fromFile = writeConfig("memory-2.json", "http://127.0.0.1:9", { gateway: { workers: 2 } });
    const human = await runCli(["start", "--config", fromFile]);
    expect(human.code).toBe(1);
    expect(human.stderr).toMatch(/^WORKERS_NEED_SHARED_HOT_STATE: 2 workers need hot state shared by every process/);
    expect(human.stdout).not.toMatch(/worker serving/);
  });

  it("--workers 1 on the command line wins over the config's gateway.workers: one process, as before (memory hot state is fine)", async () => {
    const config = writeConfig("one.json", "http://127.0.0.1:9", { gateway: { workers: 2 } });
    const one = await startCli(["start", "--config", config, "--workers", "1"], (line) => line.includes("portcullis started"));
    try {
      expect(JSON.parse(one.line)).not.toHaveProperty("workers");
      // No primary: nothing forked.
      expect(childrenOf(one.child.pid ?? -1)).toEqual([]);
    } finally {
      expect(await one.stop()).toBe(0);
    }
  });

  it("refuses a bad --workers value as a usage error", async () => {
    const config = writeConfig("usage.json", "http://127.0.0.1:9", {});
    for (const value of ["0", "-1", "1.5", "two", "257"]) {
      const res = await runCli(["start", "--config", config, "--workers", value]);
      expect(res.code).toBe(1);
      expect(res.stderr).toMatch(/^USAGE_INVALID: option '--workers <n>' argument '.*' is invalid\. must be a number from 1 to 256, or "auto"/);
    }
  });

  it.runIf(REDIS || IN_CI)("exits 1 with the reason when the workers cannot start (a port in use), with no restart loop", async () => {
    const taken = createTcpServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const port = (taken.address() as AddressInfo).port;
    try {
      const config = writeConfig("taken.json", "http://127.0.0.1:9", { hot: { backend: "redis", url: SHARED_REDIS_URL, prefix: uniquePrefix("wkt") }, gateway: { port } });
      const started = Date.now();
      const res = await runCli(["start", "--config", config, "--workers", "2"]);
      expect(res.code).toBe(1);
      expect(res.stderr).toMatch(/^WORKER_START_FAILED: worker \d \(pid \d+\) could not start: INTERNAL: .*EADDRINUSE/);
      // Only the failure: no restart of the worker that failed.
      expect(res.stdout).not.toMatch(/restarting|retrying/);
      expect(Date.now() - started).toBeLessThan(15_000);
    } finally {
      await new Promise<void>((resolve) => taken.close(() => { resolve(); }));
    }
  }, 20_000);

  it("reports a problem of the data directory with its own code, as one process does (found by the primary before any worker starts)", async () => {
    const config = writeConfig("secret.json", "http://127.0.0.1:9", {
      hot: { backend: "redis", url: SHARED_REDIS_URL, prefix: uniquePrefix("wks") },
      gateway: { identitySecretFile: "missing.secret" },
    });
    const res = await runCli(["start", "--config", config, "--workers", "2"]);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/^DATA_DIR_INVALID: missing .*missing\.secret: run `portcullis init`/);
    expect(res.stdout).not.toMatch(/worker serving/);
  });
});

describe("gateway.workers in the config", () => {
  const base = { gateway: { upstream: "http://127.0.0.1:9000" }, routes: TEST_ROUTES };
  it("is 1 by default, a number from 1 to 256, or auto (one per core)", () => {
    expect(parseConfig(base, "/tmp").gateway.workers).toBe(1);
    expect(parseConfig({ ...base, gateway: { ...base.gateway, workers: 4 } }, "/tmp").gateway.workers).toBe(4);
    expect(parseConfig({ ...base, gateway: { ...base.gateway, workers: "auto" } }, "/tmp").gateway.workers).toBe("auto");
    expect(workerCount("auto")).toBeGreaterThanOrEqual(1);
    expect(workerCount(3)).toBe(3);
    for (const bad of [0, 257, 1.5, "2", "all", null]) {
      expect(() => parseConfig({ ...base, gateway: { ...base.gateway, workers: bad } }, "/tmp")).toThrow(/gateway\.workers must be an integer from 1 to 256, or "auto"/);
    }
  });

  it("more than one needs hot state in Redis; one works with either", () => {
    const memory = parseConfig(base, "/tmp");
    const redis = parseConfig({ ...base, hot: { backend: "redis" } }, "/tmp");
    expect(() => { checkWorkersConfig(memory, 2); }).toThrow(expect.objectContaining({ code: "WORKERS_NEED_SHARED_HOT_STATE" }) as Error);
    expect(() => { checkWorkersConfig(memory, 1); }).not.toThrow();
    expect(() => { checkWorkersConfig(redis, 2); }).not.toThrow();
  });
});

describe("the restart backoff", () => {
  const backoff = { initialMs: 250, maxMs: 30_000, stableMs: 60_000 };
  it("replaces a worker that served a minute after 250 ms, and doubles the delay for a slot whose workers keep exiting, up to 30 s", () => {
    let failures = 0;
    const delays: number[] = [];
    // A worker that crashes within seconds, again and again (or never gets to serve).
    for (let i = 0; i < 10; i++) {
      const next = restartDelay(backoff, failures, i % 2 === 0, 2_000);
      failures = next.failures;
      delays.push(next.delayMs);
    }
    expect(delays).toEqual([250, 500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
    // One that then served for a minute starts again at 250 ms; one that never served does not.
    expect(restartDelay(backoff, failures, true, 60_000)).toEqual({ failures: 1, delayMs: 250 });
    expect(restartDelay(backoff, failures, false, 120_000)).toEqual({ failures: failures + 1, delayMs: 30_000 });
  });
});
