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
 */
import { Buffer } from "node:buffer";
import { fork } from "node:child_process";
import { createSecretKey } from "node:crypto";
import process from "node:process";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";
import { GET_PATH, RequestSigner } from "./signing.js";

const SERVERS = fileURLToPath(new URL("./servers.js", import.meta.url));
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5_000;

const fmtCpu = (us) => us.toFixed(1);

/** The modes compared, in the order of the first round. */
export const MODES = ["full", "pass-through", "plain-proxy"];

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

/** CPU time (user + system, µs) a server process has used so far. */
function cpuTime(child) {
  return new Promise((resolve) => {
    const onMessage = (message) => {
      if (message === null || typeof message !== "object" || !("cpu" in message)) return;
      child.off("message", onMessage);
      resolve(message.cpu.user + message.cpu.system);
    };
    child.on("message", onMessage);
    child.send("cpu");
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
  const children = [];
  const start = async (args) => {
    const server = await startServer(args);
    children.push(server.child);
    return server;
  };
  try {
    const upstream = await start(["upstream"]);
    const origin = `http://127.0.0.1:${upstream.info.port}`;
    const full = await start(["gateway", origin, "full"]);
    const pass = await start(["gateway", origin, "pass-through"]);
    const plain = await start(["plain-proxy", origin]);
    const servers = { full, "pass-through": pass, "plain-proxy": plain };
    // One signer for every mode: the full gateway's key. The other two forward without checking.
    const signer = signerFor(full.info);

    // Prime every server once (JIT, connection pools, key cache) before anything is measured.
    let primeFailures = 0;
    for (const mode of MODES) {
      const prime = await runLoad({ port: servers[mode].info.port, seconds: primeSeconds, connections, signer });
      primeFailures += prime.non2xx + prime.errors + prime.timeouts;
    }

    // One measured run against `mode`, with the CPU each process spent on it.
    const measure = async (mode, runSeconds, overallRate) => {
      const { child, info } = servers[mode];
      const cpuBefore = await Promise.all([cpuTime(child), cpuTime(upstream.child)]);
      const generatorBefore = process.cpuUsage();
      const run = await runLoad({ port: info.port, seconds: runSeconds, connections, signer, overallRate });
      const generator = process.cpuUsage(generatorBefore);
      const cpuAfter = await Promise.all([cpuTime(child), cpuTime(upstream.child)]);
      return {
        mode,
        ...run,
        // CPU µs per completed request: the server under test, the upstream, the load generator.
        proxyCpuUs: (cpuAfter[0] - cpuBefore[0]) / run.total,
        upstreamCpuUs: (cpuAfter[1] - cpuBefore[1]) / run.total,
        generatorCpuUs: (generator.user + generator.system) / run.total,
      };
    };
    const rotation = (round) => MODES.map((_, i) => MODES[(i + round) % MODES.length]);

    const runs = [];
    for (let round = 0; round < rounds; round++) {
      for (const mode of rotation(round)) {
        const warmup = await runLoad({ port: servers[mode].info.port, seconds: warmupSeconds, connections, signer });
        const run = await measure(mode, seconds);
        runs.push({ round, ...run, warmupNon2xx: warmup.non2xx + warmup.errors + warmup.timeouts });
        progress(`gateway: round ${round + 1}/${rounds} ${mode}: ${Math.round(run.rps)} req/s, non-2xx ${run.non2xx}`);
      }
    }

    // The same servers at a fixed request rate every mode sustains: CPU per request compared at
    // equal load, where it does not depend on how far each mode saturates the machine.
    const fixedRuns = [];
    for (let round = 0; round < fixedRate.rounds; round++) {
      for (const mode of rotation(round)) {
        const run = await measure(mode, fixedRate.seconds, fixedRate.rate);
        fixedRuns.push({ round, ...run, warmupNon2xx: 0 });
        progress(`gateway: fixed ${fixedRate.rate} req/s, round ${round + 1}/${fixedRate.rounds} ${mode}: ${fmtCpu(run.proxyCpuUs)} µs CPU/req`);
      }
    }

    const stages = stageSeconds > 0 ? await runStageBreakdown({ origin, seconds: stageSeconds, warmupSeconds: primeSeconds, connections }) : null;
    return { rounds, seconds, warmupSeconds, primeSeconds, connections, fixedRate, runs, fixedRuns, primeFailures, stages };
  } finally {
    await Promise.all(children.map(stopServer));
  }
}
