/**
 * `portcullis start --workers N` under load: throughput and CPU per request of one process
 * against two worker processes (and the cluster's two scheduling policies), with wrk.
 *
 *   node bench/workers-bench.js [--seconds 6] [--rounds 1] [--connections 16] [--runs 1:rr,2:rr,2:none]
 *                               [--modes keep-alive,close] [--audit all|deny|none]
 *
 * Each run starts the real command (`portcullis start --config FILE [--workers N]`) over a fresh
 * data directory, hot state in the local Redis (127.0.0.1:6379, a key prefix of its own, deleted
 * afterwards), the default limits raised so that nothing is refused, every request audited. The
 * upstream is bench/servers.js's (its own process). After a 2 s warm-up, wrk sends pre-signed GET requests, each with a
 * nonce of its own (generated before the run, so signing costs wrk nothing), over keep-alive
 * connections, then again with `Connection: close` (a new connection per request: where the
 * scheduling policy matters). CPU time is read from /proc for the gateway's processes (the
 * primary and its workers), wrk, the upstream and Redis, before and after each run.
 *
 * Short and bounded: each run lasts `--seconds` (default 6) plus startup; about a minute in all.
 */
import { execFileSync, fork, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { RequestSigner, ROUTES, GET_PATH } from "./signing.js";
import { childrenOf, pidCpu } from "./proc.js";

const CLI = fileURLToPath(new URL("../packages/portcullis/bin/portcullis.js", import.meta.url));
const SERVERS = fileURLToPath(new URL("./servers.js", import.meta.url));
const REDIS_URL = "redis://127.0.0.1:6379";

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : process.argv[i + 1];
}

const SECONDS = Number(arg("seconds", "6"));
const CONNECTIONS = Number(arg("connections", "16"));
const ROUNDS = Number(arg("rounds", "1"));
// audit.requests of the gateways: all (the default), deny or none (to see what the audit log costs).
const AUDIT = arg("audit", "all");
// keep-alive, close (a new connection per request), or both.
const MODES = arg("modes", "keep-alive,close").split(",");
const RUNS = arg("runs", "1:rr,2:rr,2:none").split(",").map((r) => {
  const [workers, policy] = r.split(":");
  return { workers: Number(workers), policy };
});

/** CPU time (ms) of a process so far, from /proc; 0 when it is gone. */
const cpuMs = (pid) => pidCpu(pid) / 1000;

function redisPid() {
  try {
    return Number(execFileSync("pgrep", ["-x", "redis-server"], { encoding: "utf8" }).trim().split("\n")[0]);
  } catch {
    return null;
  }
}

function cli(args) {
  return execFileSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
}

function startUpstream() {
  const child = fork(SERVERS, ["upstream"], { stdio: ["ignore", "ignore", "inherit", "ipc"] });
  return new Promise((resolve, reject) => {
    child.once("message", (m) => resolve({ child, port: m.port }));
    child.once("exit", (code) => reject(new Error(`upstream exited ${code}`)));
  });
}

/** Starts `portcullis start`; resolves with the child and the gateway URL once it says it started. */
function startGateway(config, workers, policy) {
  const env = { ...process.env };
  if (policy === "none") env.NODE_CLUSTER_SCHED_POLICY = "none";
  else env.NODE_CLUSTER_SCHED_POLICY = "rr";
  const args = [CLI, "start", "--config", config, ...(workers > 1 ? ["--workers", String(workers)] : [])];
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"], env });
  return new Promise((resolve, reject) => {
    let buffer = "";
    const timer = setTimeout(() => reject(new Error("gateway did not start in 30 s")), 30_000);
    child.stdout.on("data", (d) => {
      buffer += d.toString();
      const line = buffer.split("\n").find((l) => l.includes("portcullis started"));
      if (line !== undefined && timer !== null) {
        clearTimeout(timer);
        buffer = "";
        child.stdout.resume();
        resolve({ child, url: new URL(JSON.parse(line).gateway) });
      }
    });
    child.once("exit", (code) => reject(new Error(`gateway exited ${code}`)));
  });
}

function stopGateway(child) {
  return new Promise((resolve) => {
    child.once("exit", (code) => resolve(code));
    child.kill("SIGTERM");
  });
}

/** A wrk script that sends each pre-signed request once (thread i takes file i). */
function writeWrkScript(dir, files) {
  const list = files.map((f) => JSON.stringify(f)).join(", ");
  const script = `
local files = { ${list} }
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("file", files[counter])
end
local requests = {}
local n = 0
local i = 0
function init(args)
  for line in io.lines(file) do
    n = n + 1
    requests[n] = (line:gsub("\\t", "\\r\\n"))
  end
end
function request()
  i = i + 1
  if i > n then i = 1 end
  return requests[i]
end
`;
  const path = join(dir, "requests.lua");
  writeFileSync(path, script);
  return path;
}

/** Pre-signs `count` requests per thread file, one per line (CRLF as tabs). */
function presign(dir, signer, threads, count, close) {
  const files = [];
  for (let t = 0; t < threads; t++) {
    const lines = [];
    const created = Math.floor(Date.now() / 1000);
    for (let i = 0; i < count; i++) {
      const r = signer.sign("GET", created);
      const head = [`GET ${GET_PATH} HTTP/1.1`, ...Object.entries(r.headers).map(([k, v]) => `${k}: ${v}`), ...(close ? ["connection: close"] : [])];
      lines.push(`${head.join("\t")}\t\t`);
    }
    const file = join(dir, `requests-${t}.txt`);
    writeFileSync(file, `${lines.join("\n")}\n`);
    files.push(file);
  }
  return files;
}

function parseWrk(out) {
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
  const seconds = Number(/requests in ([\d.]+)s/.exec(out)?.[1] ?? 0);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const errors = /Socket errors: (.*)/.exec(out)?.[1] ?? "none";
  const latency = /Latency\s+([\d.]+\w+)\s+([\d.]+\w+)\s+([\d.]+\w+)/.exec(out);
  return { requests, seconds, non2xx, errors, latencyAvg: latency?.[1] ?? "?" };
}

async function runOne({ workers, policy }, close, upstream, dir, signer, redis) {
  const prefix = `pcbench:w:${randomBytes(4).toString("hex")}:`;
  const config = join(dir, "portcullis.json");
  const base = JSON.parse(readFileSync(config, "utf8"));
  const big = 1_000_000_000;
  const limits = {
    ip: [{ name: "ip-weight-1m", limit: big, window: "1m" }],
    key: [{ name: "key-weight-1m", limit: big, window: "1m" }],
    account: [{ name: "account-weight-1m", limit: big, window: "1m" }],
    orders: [{ name: "orders-10s", limit: big, window: "10s" }],
    cancels: [{ name: "cancels-10s", limit: big, window: "10s" }],
  };
  const runConfig = join(dir, `run-${prefix.replace(/:/g, "_")}.json`);
  writeFileSync(
    runConfig,
    JSON.stringify({
      ...base,
      gateway: { ...base.gateway, host: "127.0.0.1", port: 0, upstream: `http://127.0.0.1:${upstream.port}`, authorities: [] },
      admin: { enabled: false },
      signatures: { windowMs: 60_000 },
      hot: { backend: "redis", url: REDIS_URL, prefix },
      log: { level: "info" },
      audit: { ...base.audit, requests: AUDIT },
      limits,
      routes: ROUTES,
    }),
  );
  const gateway = await startGateway(runConfig, workers, policy);
  const threads = 1;
  // A warm-up of 2 s first (every worker's JIT and caches), with requests of its own.
  const warmDir = mkdtempSync(join(dir, "warm-"));
  const warm = writeWrkScript(warmDir, presign(warmDir, signer, threads, 12_000 * 3, close));
  execFileSync("/usr/bin/wrk", ["-t", String(threads), "-c", String(CONNECTIONS), "-d", "2s", "-s", warm, `http://${gateway.url.host}`], { stdio: "ignore" });
  // Enough unique requests for the run at up to 12 000 requests a second.
  const files = presign(dir, signer, threads, Math.ceil(12_000 * (SECONDS + 2)), close);
  const script = writeWrkScript(dir, files);
  const gatewayPids = () => [gateway.child.pid, ...childrenOf(gateway.child.pid)];
  const redisP = redisPid();
  const primaryBefore = cpuMs(gateway.child.pid);
  const before = { gw: gatewayPids().reduce((s, p) => s + cpuMs(p), 0), up: cpuMs(upstream.child.pid), redis: redisP === null ? 0 : cpuMs(redisP) };
  const pidsBefore = gatewayPids();
  const workerBefore = pidsBefore.slice(1).map((p) => cpuMs(p));
  const wrk = spawn("/usr/bin/wrk", ["-t", String(threads), "-c", String(CONNECTIONS), "-d", `${SECONDS}s`, "--latency", "-s", script, `http://${gateway.url.host}`], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  let wrkCpu = 0;
  wrk.stdout.on("data", (d) => (out += d.toString()));
  const sampler = setInterval(() => {
    wrkCpu = Math.max(wrkCpu, cpuMs(wrk.pid));
  }, 100);
  await new Promise((resolve) => wrk.once("exit", resolve));
  clearInterval(sampler);
  const after = { gw: pidsBefore.reduce((s, p) => s + cpuMs(p), 0), up: cpuMs(upstream.child.pid), redis: redisP === null ? 0 : cpuMs(redisP) };
  const result = parseWrk(out);
  const primaryMs = cpuMs(gateway.child.pid) - primaryBefore;
  // How the work was shared between the workers (the scheduling policy's balance): each one's share of their CPU time.
  const workerMs = pidsBefore.slice(1).map((p, i) => cpuMs(p) - (workerBefore[i] ?? 0));
  const workerTotal = workerMs.reduce((a, b) => a + b, 0);
  const split = workers === 1 ? "-" : workerMs.map((ms) => Math.round((100 * ms) / Math.max(1, workerTotal))).join("/");
  await stopGateway(gateway.child);
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== "0");
  const gwCpu = after.gw - before.gw;
  return {
    workers,
    policy: workers === 1 ? "-" : policy,
    connections: close ? "new per request" : `${CONNECTIONS} keep-alive`,
    rps: Math.round(result.requests / result.seconds),
    non2xx: result.non2xx,
    errors: result.errors,
    latencyAvg: result.latencyAvg,
    gatewayCpuUsPerRequest: Math.round((gwCpu * 1000) / result.requests),
    gatewayCores: +(gwCpu / 1000 / result.seconds).toFixed(2),
    primaryCores: workers === 1 ? 0 : +(primaryMs / 1000 / result.seconds).toFixed(2),
    wrkCores: +(wrkCpu / 1000 / result.seconds).toFixed(2),
    upstreamCores: +((after.up - before.up) / 1000 / result.seconds).toFixed(2),
    redisCores: +((after.redis - before.redis) / 1000 / result.seconds).toFixed(2),
    split,
  };
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-workers-bench-"));
  const upstream = await startUpstream();
  const redis = new Redis(REDIS_URL);
  try {
    cli(["init", "--data", dir, "--environment", "live", "--json"]);
    const key = JSON.parse(cli(["keys", "create", "--data", dir, "--account", "bench", "--scopes", "read,trade", "--json"]));
    const signer = new RequestSigner(key.id, Buffer.from(key.secret, "utf8"));
    console.log(`machine: ${cpus().length} cores (${cpus()[0]?.model ?? "?"}); ${SECONDS} s per run, wrk -t1 -c${CONNECTIONS}`);
    console.log(`load average before: ${readFileSync("/proc/loadavg", "utf8").trim()}`);
    const rows = [];
    // Rounds interleave the configurations, so a neighbour's load spreads over all of them; the table shows each one's median.
    for (let round = 0; round < ROUNDS; round++) {
      for (const close of MODES.map((m) => m === "close")) {
        for (const run of RUNS) {
          const row = await runOne(run, close, upstream, dir, signer, redis);
          console.log(JSON.stringify(row));
          rows.push(row);
        }
      }
    }
    const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const groups = new Map();
    for (const row of rows) {
      const id = `${row.workers}|${row.policy}|${row.connections}`;
      groups.set(id, [...(groups.get(id) ?? []), row]);
    }
    console.table(
      [...groups.values()].map((g) => ({
        workers: g[0].workers,
        policy: g[0].policy,
        connections: g[0].connections,
        rps: median(g.map((r) => r.rps)),
        gatewayCpuUsPerRequest: median(g.map((r) => r.gatewayCpuUsPerRequest)),
        gatewayCores: median(g.map((r) => r.gatewayCores)),
        primaryCores: median(g.map((r) => r.primaryCores)),
        wrkCores: median(g.map((r) => r.wrkCores)),
        splits: g.map((r) => r.split).join(" "),
        non2xx: g.reduce((s, r) => s + r.non2xx, 0),
      })),
    );
    console.log(`load average after: ${readFileSync("/proc/loadavg", "utf8").trim()}`);
  } finally {
    redis.disconnect();
    upstream.child.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
