/**
 * The gateway's event loop under load: how long the loop is kept from running its timers while a
 * `portcullis start` gateway serves signed requests as fast as it can (issue 16).
 *
 *   node bench/loop-delay.js [--seconds 10] [--warmup 3] [--connections 32] [--rate <req/s>]
 *                            [--no-behaviour] [--cpu-prof <dir>] [--json]
 *
 * The gateway runs in a child (servers.js `soak-gateway`: startPortcullis over a fresh data
 * directory, the audit log at its defaults — every decision recorded —, the behaviour stage on,
 * limits raised so that nothing is refused); the load comes from this process (autocannon,
 * `connections` connections, each request HMAC-signed when it is built: signing.js
 * RequestSigner), as fast as the gateway answers or at `--rate` requests per second (steady state,
 * below saturation: what a block costs shows there). The gateway measures its own loop with `perf_hooks.monitorEventLoopDelay` at
 * 1 ms resolution from the end of the warm-up to the end of the run, and reports how late its
 * 1 ms timer ran (p50/p90/p99/p99.9/max, ms) and how many intervals were late by more than 1 ms
 * and 2 ms. `--cpu-prof <dir>` runs the gateway with `--cpu-prof` (a .cpuprofile in `dir` when it
 * stops), to see what blocks.
 *
 * Exported for the benchmark (bench/run.js):
 *
 *   import { measureLoopDelay } from "./loop-delay.js";
 *   const r = await measureLoopDelay({ seconds: 10, warmupSeconds: 3, connections: 32, rate: null });
 *   // r = { rps, p50, p99 (request latency, ms), non2xx, errors, loop: { count, p50, p90, p99,
 *   //       p999, max, over1ms, over2ms }, settings: { … } }
 *
 * Everything is bounded: the run lasts warm-up + seconds, and every child is stopped (killed after
 * 5 s) whatever happens.
 */
import { Buffer } from "node:buffer";
import { fork } from "node:child_process";
import { createSecretKey } from "node:crypto";
import process from "node:process";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";
import { GET_PATH, RequestSigner, ROUTES, SCOPES } from "./signing.js";
import { ask } from "./ipc.js";

const SERVERS = fileURLToPath(new URL("./servers.js", import.meta.url));
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5_000;
const BIG = 1_000_000_000;

/** The gateway's configuration sections: the bench routes, every limit out of reach. */
export function loopDelayConfig({ behaviour = true } = {}) {
  return {
    environment: "live",
    routes: ROUTES,
    limits: {
      ip: [{ name: "ip-weight-1m", limit: BIG, window: "1m" }],
      key: [{ name: "key-weight-1m", limit: BIG, window: "1m" }],
      account: [{ name: "account-weight-1m", limit: BIG, window: "1m" }],
    },
    ...(behaviour ? {} : { behaviour: { enabled: false } }),
  };
}

function start(args, execArgv) {
  return new Promise((resolve, reject) => {
    const child = fork(SERVERS, args, { stdio: ["ignore", "ignore", "inherit", "ipc"], execArgv });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${args[0]}: not ready after ${START_TIMEOUT_MS} ms`));
    }, START_TIMEOUT_MS);
    child.once("message", (info) => {
      clearTimeout(timer);
      resolve({ child, info });
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${args[0]}: exited with code ${String(code)} before it was ready`));
    });
  });
}

function stop(child) {
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

function load(port, signer, seconds, connections, rate) {
  return autocannon({
    ...(rate === null ? {} : { overallRate: rate }),
    url: `http://127.0.0.1:${port}`,
    connections,
    pipelining: 1,
    duration: seconds,
    requests: [
      {
        method: "GET",
        path: GET_PATH,
        setupRequest(req) {
          Object.assign(req.headers, signer.sign("GET", Math.floor(Date.now() / 1000)).headers);
          return req;
        },
      },
    ],
  });
}

/**
 * One measurement: a fresh upstream and gateway, `warmupSeconds` of load, then `seconds` of load
 * with the gateway's loop measured. Resolves to the load's throughput and latency and the loop's
 * delay (ms late, see the header).
 */
export async function measureLoopDelay({ seconds = 10, warmupSeconds = 3, connections = 32, rate = null, behaviour = true, cpuProfDir = null } = {}) {
  const children = [];
  try {
    const upstream = await start(["upstream"], []);
    children.push(upstream.child);
    const execArgv = cpuProfDir === null ? [] : ["--cpu-prof", "--cpu-prof-dir", cpuProfDir];
    const gateway = await start(["soak-gateway", `http://127.0.0.1:${upstream.info.port}`, JSON.stringify(loopDelayConfig({ behaviour }))], execArgv);
    children.push(gateway.child);
    const { keys } = await ask(gateway.child, { createKeys: [{ account: "loop", scopes: SCOPES }] });
    const signer = new RequestSigner(keys[0].id, createSecretKey(Buffer.from(keys[0].secret, "utf8")));
    if (warmupSeconds > 0) await load(gateway.info.port, signer, warmupSeconds, connections, rate);
    await ask(gateway.child, { loopDelay: "reset" });
    const result = await load(gateway.info.port, signer, seconds, connections, rate);
    const { loopDelay } = await ask(gateway.child, { loopDelay: "read" });
    return {
      rps: result.requests.total / result.duration,
      p50: result.latency.p50,
      p99: result.latency.p99,
      non2xx: result.non2xx,
      errors: result.errors + result.timeouts,
      loop: loopDelay,
      settings: { seconds, warmupSeconds, connections, rate, behaviour },
    };
  } finally {
    await Promise.all(children.map(stop));
  }
}

function parseArgs(argv) {
  const opts = { seconds: 10, warmupSeconds: 3, connections: 32, rate: null, behaviour: true, cpuProfDir: null, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = () => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v < 0 || v > 600) throw new Error(`${a} needs a number of at most 600`);
      return v;
    };
    if (a === "--seconds") opts.seconds = num();
    else if (a === "--warmup") opts.warmupSeconds = num();
    else if (a === "--connections") opts.connections = num();
    else if (a === "--rate") {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 1 || v > 100_000) throw new Error("--rate needs requests per second, 1 to 100000");
      opts.rate = v;
    }
    else if (a === "--no-behaviour") opts.behaviour = false;
    else if (a === "--cpu-prof") opts.cpuProfDir = argv[++i];
    else if (a === "--json") opts.json = true;
    else throw new Error(`unknown option ${a}`);
  }
  return opts;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { json, ...opts } = parseArgs(process.argv.slice(2));
  const r = await measureLoopDelay(opts);
  if (json) {
    console.log(JSON.stringify(r));
  } else {
    const l = r.loop;
    console.log(
      `${Math.round(r.rps)} req/s (latency p50 ${r.p50} ms, p99 ${r.p99} ms, non-2xx ${r.non2xx}, errors ${r.errors}); ` +
        `event loop late by p50 ${l.p50} ms, p90 ${l.p90} ms, p99 ${l.p99} ms, p99.9 ${l.p999} ms, max ${l.max} ms; ` +
        `${l.over1ms} of ${l.count} intervals late by more than 1 ms, ${l.over2ms} by more than 2 ms`,
    );
  }
}
