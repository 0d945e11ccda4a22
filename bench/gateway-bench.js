/**
 * Benchmark 2: gateway throughput with full security against pass-through, and against a plain
 * node:http + undici reverse proxy. Benchmark 3 (optional): the per-stage breakdown reported by a
 * gateway with Server-Timing on.
 *
 * Processes: the upstream, one gateway in full-security mode, one in pass-through mode and the
 * plain proxy each run in a child process (servers.js); autocannon runs here, in the parent. Every
 * request is signed here with a fresh nonce and the current time, for every mode, so the load
 * generator does the same work whichever server it is measuring: only the full gateway checks
 * the signatures, the other two forward them.
 *
 * The modes are measured in rounds, each round running every mode once (in a rotating order),
 * each run preceded by a short discarded warm-up run against the same server; before the first
 * round every server is primed with a longer discarded run.
 *
 * Benchmark 7 runs the same machinery over two other gateways, both with the default limits of a
 * configured gateway (raised so that nothing is refused): one keeps its hot state in process
 * memory, the other in Redis (a private redis-server, started by the caller). Both check the
 * signatures, so each is sent requests signed for its own key; the Redis server's CPU time and
 * script calls are read from its own statistics around every measured run.
 */
import { Buffer } from "node:buffer";
import { fork } from "node:child_process";
import { createSecretKey, randomBytes } from "node:crypto";
import process from "node:process";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";
import { GET_PATH, RequestSigner } from "./signing.js";
import { processCpu } from "./ipc.js";

const SERVERS = fileURLToPath(new URL("./servers.js", import.meta.url));
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5_000;

const fmtCpu = (us) => us.toFixed(1);

/** The modes compared by benchmark 2, in the order of the first round. */
export const MODES = ["full", "pass-through", "plain-proxy"];

/** The modes compared by benchmark 7, in the order of the first round. */
export const LIMIT_MODES = ["memory-limits", "redis-limits"];

/** Forks servers.js with `args`; resolves to `{ child, info }` once it reports its port. */
function startServer(args) {
  return new Promise((resolve, reject) => {
    const child = fork(SERVERS, args, { stdio: ["ignore", "ignore", "inherit", "ipc"] });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${args.join(" ")}: not ready after ${START_TIMEOUT_MS} ms`));
    }, START_TIMEOUT_MS);
    child.once("message", (info) => {
      clearTimeout(timer);
      resolve({ child, info });
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${args.join(" ")}: exited with code ${String(code)} before it was ready`));
    });
  });
}

/** Asks a server process to shut down (it cleans up its temp files); kills it if it hangs. */
function stopServer(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    child.send("stop");
  });
}

/** A signer for the key a gateway process created (HMAC over the secret's UTF-8 bytes). */
function signerFor(info) {
  return new RequestSigner(info.keyId, createSecretKey(Buffer.from(info.secret, "utf8")));
}

/**
 * One autocannon run of `seconds` against 127.0.0.1:`port`, as fast as the server answers or at
 * `overallRate` requests per second. Every request is signed when it is built (`setupRequest`),
 * with a fresh nonce and the current second as `created`.
 */
async function runLoad({ port, seconds, connections, signer, onResponse, overallRate }) {
  const request = {
    method: "GET",
    path: GET_PATH,
    setupRequest(req) {
      Object.assign(req.headers, signer.sign("GET", Math.floor(Date.now() / 1000)).headers);
      return req;
    },
  };
  if (onResponse !== undefined) request.onResponse = onResponse;
  const result = await autocannon({
    url: `http://127.0.0.1:${port}`,
    connections,
    pipelining: 1,
    duration: seconds,
    requests: [request],
    ...(overallRate === undefined ? {} : { overallRate }),
  });
  return {
    rps: result.requests.total / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    total: result.requests.total,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
  };
}

/** Parses "addr;dur=0.012, route;dur=0.003" into [["addr", 0.012], ["route", 0.003]]. */
function parseServerTiming(value) {
  const out = [];
  for (const part of String(value).split(",")) {
    const m = /^\s*([^;\s]+);dur=([0-9.]+)\s*$/.exec(part);
    if (m !== null) out.push([m[1], Number(m[2])]);
  }
  return out;
}

/**
 * Benchmark 3: a gateway with Server-Timing on; collects each response's per-stage durations.
 * Resolves to `{ names, samples, run }` (samples[i] in ms for stage names[i]).
 */
async function runStageBreakdown({ origin, seconds, warmupSeconds, connections }) {
  // A fresh process: warm it up as long as the others were primed.
  const timing = await startServer(["gateway", origin, "timing"]);
  try {
    const signer = signerFor(timing.info);
    const port = timing.info.port;
    await runLoad({ port, seconds: warmupSeconds, connections, signer });
    const names = [];
    const samples = [];
    const onResponse = (status, _body, _context, headers) => {
      if (status !== 200 || headers["server-timing"] === undefined) return;
      for (const [name, ms] of parseServerTiming(headers["server-timing"])) {
        let i = names.indexOf(name);
        if (i < 0) {
          i = names.push(name) - 1;
          samples.push([]);
        }
        samples[i].push(ms);
      }
    };
    const run = await runLoad({ port, seconds, connections, signer, onResponse });
    return { names, samples, run };
  } finally {
    await stopServer(timing.child);
  }
}

/**
 * Measures `modes` (keys of `servers`, each `{ child, info }`) in interleaved rounds: primes every
 * server, then `rounds` rounds of one `seconds` run per mode at full load (each after a
 * `warmupSeconds` warm-up run), in a rotating order, then `fixedRate.rounds` rounds at
 * `fixedRate.rate` req/s. `signerOf(mode)` signs that mode's requests. `probe`, when given, is an
 * async function called before and after each measured run; it returns a function that, given
 * the run, returns extra fields for it (e.g. a Redis server's statistics over the run).
 */
export async function compareModes({ modes, servers, upstream, signerOf, rounds, seconds, warmupSeconds, primeSeconds, connections, fixedRate, probe, label, progress }) {
  // Prime every server once (JIT, connection pools, key cache) before anything is measured.
  let primeFailures = 0;
  for (const mode of modes) {
    const prime = await runLoad({ port: servers[mode].info.port, seconds: primeSeconds, connections, signer: signerOf(mode) });
    primeFailures += prime.non2xx + prime.errors + prime.timeouts;
  }

  // One measured run against `mode`, with the CPU each process spent on it.
  const measure = async (mode, runSeconds, overallRate) => {
    const { child, info } = servers[mode];
    const extra = probe === undefined ? null : await probe();
    const before = await Promise.all([processCpu(child), processCpu(upstream.child)]);
    const generatorBefore = process.cpuUsage();
    const run = await runLoad({ port: info.port, seconds: runSeconds, connections, signer: signerOf(mode), overallRate });
    const generator = process.cpuUsage(generatorBefore);
    const after = await Promise.all([processCpu(child), processCpu(upstream.child)]);
    const result = {
      mode,
      ...run,
      // Requests the server under test received during the run (answered or not).
      received: after[0].requests - before[0].requests,
      // CPU µs per completed request: the server under test, the upstream, the load generator.
      proxyCpuUs: (after[0].cpu - before[0].cpu) / run.total,
      upstreamCpuUs: (after[1].cpu - before[1].cpu) / run.total,
      generatorCpuUs: (generator.user + generator.system) / run.total,
    };
    return extra === null ? result : { ...result, ...(await extra(result)) };
  };
  const rotation = (round) => modes.map((_, i) => modes[(i + round) % modes.length]);

  const runs = [];
  for (let round = 0; round < rounds; round++) {
    for (const mode of rotation(round)) {
      const warmup = await runLoad({ port: servers[mode].info.port, seconds: warmupSeconds, connections, signer: signerOf(mode) });
      const run = await measure(mode, seconds);
      runs.push({ round, ...run, warmupNon2xx: warmup.non2xx + warmup.errors + warmup.timeouts });
      progress(`${label}: round ${round + 1}/${rounds} ${mode}: ${Math.round(run.rps)} req/s, non-2xx ${run.non2xx}`);
    }
  }

  // The same servers at a fixed request rate every mode sustains: CPU per request compared at
  // equal load, where it does not depend on how far each mode saturates the machine.
  const fixedRuns = [];
  for (let round = 0; round < fixedRate.rounds; round++) {
    for (const mode of rotation(round)) {
      const run = await measure(mode, fixedRate.seconds, fixedRate.rate);
      fixedRuns.push({ round, ...run, warmupNon2xx: 0 });
      progress(`${label}: fixed ${fixedRate.rate} req/s, round ${round + 1}/${fixedRate.rounds} ${mode}: ${fmtCpu(run.proxyCpuUs)} µs CPU/req`);
    }
  }
  return { runs, fixedRuns, primeFailures };
}

/** Starts server processes, remembering them so that `stopAll` stops every one. */
export function serverSet() {
  const children = [];
  return {
    async start(args) {
      const server = await startServer(args);
      children.push(server.child);
      return server;
    },
    stopAll: () => Promise.all(children.map(stopServer)),
  };
}

/**
 * Runs benchmark 2 (and 3 when `stageSeconds` > 0): each server is first primed for
 * `primeSeconds`, then measured at full load `rounds` times for `seconds`, each time after a
 * `warmupSeconds` warm-up run, then at `fixedRate.rate` req/s `fixedRate.rounds` times for
 * `fixedRate.seconds`. Returns every run, warm-ups' non-2xx counts included, for the report.
 */
export async function runGatewayBench({
  rounds,
  seconds,
  warmupSeconds,
  primeSeconds,
  connections,
  fixedRate,
  stageSeconds,
  progress = () => undefined,
}) {
  const set = serverSet();
  try {
    const upstream = await set.start(["upstream"]);
    const origin = `http://127.0.0.1:${upstream.info.port}`;
    const full = await set.start(["gateway", origin, "full"]);
    const pass = await set.start(["gateway", origin, "pass-through"]);
    const plain = await set.start(["plain-proxy", origin]);
    const servers = { full, "pass-through": pass, "plain-proxy": plain };
    // One signer for every mode: the full gateway's key. The other two forward without checking.
    const signer = signerFor(full.info);
    const compared = await compareModes({
      modes: MODES,
      servers,
      upstream,
      signerOf: () => signer,
      rounds,
      seconds,
      warmupSeconds,
      primeSeconds,
      connections,
      fixedRate,
      label: "gateway",
      progress,
    });

    const stages = stageSeconds > 0 ? await runStageBreakdown({ origin, seconds: stageSeconds, warmupSeconds: primeSeconds, connections }) : null;
    return { rounds, seconds, warmupSeconds, primeSeconds, connections, fixedRate, ...compared, stages };
  } finally {
    await set.stopAll();
  }
}

/**
 * Runs benchmark 7: the `memory-limits` and `redis-limits` gateways (LIMIT_MODES) compared as
 * benchmark 2 compares its modes, with the same settings. `redis` is a private redis-server
 * (redis-server.js); its CPU time and EVAL/EVALSHA calls are read around every measured run
 * (`redisCpuUs` per completed request, `scriptsPerRequest` per request received).
 */
export async function runLimitsGatewayBench({ redis, rounds, seconds, warmupSeconds, primeSeconds, connections, fixedRate, progress = () => undefined }) {
  const set = serverSet();
  const prefix = `pcbench:${randomBytes(4).toString("hex")}:gw:`;
  try {
    const upstream = await set.start(["upstream"]);
    const origin = `http://127.0.0.1:${upstream.info.port}`;
    const servers = {
      "memory-limits": await set.start(["gateway", origin, "memory-limits"]),
      "redis-limits": await set.start(["gateway", origin, "redis-limits", redis.url, prefix]),
    };
    const signers = Object.fromEntries(LIMIT_MODES.map((mode) => [mode, signerFor(servers[mode].info)]));
    const scriptCalls = (calls) => (calls.get("evalsha") ?? 0) + (calls.get("eval") ?? 0);
    const probe = async () => {
      const [cpu, calls] = await Promise.all([redis.stats.cpuUs(), redis.stats.commands()]);
      return async (run) => {
        const [cpuAfter, callsAfter] = await Promise.all([redis.stats.cpuUs(), redis.stats.commands()]);
        return { redisCpuUs: (cpuAfter - cpu) / run.total, scriptsPerRequest: (scriptCalls(callsAfter) - scriptCalls(calls)) / run.received };
      };
    };
    const compared = await compareModes({
      modes: LIMIT_MODES,
      servers,
      upstream,
      signerOf: (mode) => signers[mode],
      rounds,
      seconds,
      warmupSeconds,
      primeSeconds,
      connections,
      fixedRate,
      probe,
      label: "limits gateway",
      progress,
    });
    return { rounds, seconds, warmupSeconds, primeSeconds, connections, fixedRate, prefix, redisVersion: redis.version, ...compared };
  } finally {
    await set.stopAll();
  }
}
