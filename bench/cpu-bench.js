/**
 * CPU per request of a whole `portcullis start` gateway against the pass-through gateway, one
 * bounded run (issue 16: a signed request should cost at most 1.3x the pass-through's CPU):
 *
 *   node bench/cpu-bench.js [--seconds 5] [--rounds 2] [--rate 1500] [--connections 32] [--compare DIR]
 *
 * Processes (servers.js): the upstream; a whole gateway (`soak-gateway`: startPortcullis over a
 * fresh data directory, limits off (`"limits": {}`), audit on, silent logs) with a Binance-dialect
 * read route (native signatures accepted on it too) and a public route; and benchmark 2's
 * pass-through gateway. autocannon runs here. Four modes, each measured `rounds` times in a
 * rotating order, at full load (`seconds`, after a short warm-up) and at a fixed `rate`:
 *
 *   native       GET /api/v3/account, RFC 9421 HMAC-SHA256 (fresh nonce and time per request)
 *   binance      GET /api/v3/account?…&timestamp=…&signature=… with X-MBX-APIKEY (HMAC)
 *   public       GET /api/v3/exchangeInfo, unsigned, on the public route
 *   pass-through GET /api/v3/account, the native signed request, forwarded unchecked
 *
 * Reports, per mode, the gateway process's CPU µs per completed request and p50/p99 latency (the
 * median over rounds), and the signed modes' ratios to pass-through.
 *
 * `--compare DIR`: DIR holds another build laid out like this repository (DIR/bench/servers.js
 * over DIR/packages/portcullis/dist, e.g. a copy made before a change); its two gateways run
 * beside these and every mode is measured on both (`mode@base`), interleaved in the same rounds,
 * so that a before/after comparison sees the same machine load.
 */
import { Buffer } from "node:buffer";
import { createHmac, createSecretKey } from "node:crypto";
import process from "node:process";
import autocannon from "autocannon";
import { fork } from "node:child_process";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { GET_PATH, RequestSigner, SCOPES } from "./signing.js";
import { ask, processCpu } from "./ipc.js";

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i < 0 ? fallback : Number(args[i + 1]);
};
const SECONDS = opt("seconds", 5);
const ROUNDS = opt("rounds", 2);
const RATE = opt("rate", 1500);
const CONNECTIONS = opt("connections", 32);
const WARMUP = 2;
const compareAt = args.indexOf("--compare");
const BASE = compareAt < 0 ? null : resolve(args[compareAt + 1], "bench/servers.js");
const HERE = fileURLToPath(new URL("./servers.js", import.meta.url));

const PUBLIC_PATH = "/api/v3/exchangeInfo";
const CONFIG = {
  environment: "live",
  routes: [
    { method: "GET", path: GET_PATH, permission: "read", weight: 20, dialect: "binance" },
    { method: "GET", path: PUBLIC_PATH, permission: "public", weight: 1, dialect: "binance" },
  ],
  limits: {},
};

/** Forks `script` (a servers.js) with `argv`; resolves to `{ child, info }` once it reports its port. */
function startServer(script, argv) {
  return new Promise((resolvePromise, reject) => {
    const child = fork(script, argv, { stdio: ["ignore", "ignore", "inherit", "ipc"] });
    child.once("message", (info) => resolvePromise({ child, info }));
    child.once("exit", (code) => reject(new Error(`${argv[0]}: exited with ${String(code)}`)));
  });
}

function stopServer(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolvePromise) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
    child.once("exit", () => {
      clearTimeout(timer);
      resolvePromise();
    });
    child.send("stop");
  });
}

/** The request of each mode, built per request by autocannon's setupRequest. */
function requestsFor(nativeKey, binanceKey) {
  const native = new RequestSigner(nativeKey.id, createSecretKey(Buffer.from(nativeKey.secret, "utf8")));
  const nativeRequest = {
    method: "GET",
    path: GET_PATH,
    setupRequest(req) {
      Object.assign(req.headers, native.sign("GET", Math.floor(Date.now() / 1000)).headers);
      return req;
    },
  };
  const binanceSecret = Buffer.from(binanceKey.secret, "utf8");
  // Binance's replay memory keys on the signature: two requests in one millisecond differ by `n`.
  let n = 0;
  return {
    native: nativeRequest,
    "pass-through": nativeRequest,
    binance: {
      method: "GET",
      setupRequest(req) {
        const payload = `omitZeroBalances=true&recvWindow=5000&timestamp=${Date.now()}&n=${(n += 1)}`;
        const signature = createHmac("sha256", binanceSecret).update(payload).digest("hex");
        req.path = `${GET_PATH}?${payload}&signature=${signature}`;
        req.headers = { ...req.headers, host: "gw.test", "x-mbx-apikey": binanceKey.id };
        return req;
      },
    },
    public: { method: "GET", path: PUBLIC_PATH, headers: { host: "gw.test" } },
  };
}

async function load(port, request, seconds, overallRate) {
  const r = await autocannon({
    url: `http://127.0.0.1:${port}`,
    connections: CONNECTIONS,
    pipelining: 1,
    duration: seconds,
    requests: [request],
    ...(overallRate === undefined ? {} : { overallRate }),
  });
  return { total: r.requests.total, rps: r.requests.total / r.duration, p50: r.latency.p50, p99: r.latency.p99, bad: r.non2xx + r.errors + r.timeouts };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** One build's two gateways (whole and pass-through), its keys, and each mode's server and request. */
async function startBuild(script, origin, started, suffix) {
  const whole = await startServer(script, ["soak-gateway", origin, JSON.stringify(CONFIG)]);
  started.push(whole.child);
  const pass = await startServer(script, ["gateway", origin, "pass-through"]);
  started.push(pass.child);
  const { keys } = await ask(whole.child, {
    createKeys: [
      { account: "bench", scopes: SCOPES },
      { account: "bench", scopes: SCOPES, dialects: ["binance"] },
    ],
  });
  const requests = requestsFor(keys[0], keys[1]);
  const out = {};
  for (const mode of ["native", "binance", "public", "pass-through"]) out[`${mode}${suffix}`] = { server: mode === "pass-through" ? pass : whole, request: requests[mode] };
  return out;
}

async function main() {
  const started = [];
  try {
    const upstream = await startServer(HERE, ["upstream"]);
    started.push(upstream.child);
    const origin = `http://127.0.0.1:${upstream.info.port}`;
    const table = await startBuild(HERE, origin, started, "");
    if (BASE !== null) Object.assign(table, await startBuild(BASE, origin, started, "@base"));
    const servers = Object.fromEntries(Object.entries(table).map(([m, t]) => [m, t.server]));
    const requests = Object.fromEntries(Object.entries(table).map(([m, t]) => [m, t.request]));
    const modes = Object.keys(table);
    const results = Object.fromEntries(modes.map((m) => [m, { full: [], fixed: [] }]));
    for (const mode of modes) await load(servers[mode].info.port, requests[mode], WARMUP * 2);
    for (let round = 0; round < ROUNDS; round++) {
      for (let i = 0; i < modes.length; i++) {
        const mode = modes[(i + round) % modes.length];
        const { child, info } = servers[mode];
        await load(info.port, requests[mode], WARMUP);
        for (const [kind, rate] of [
          ["full", undefined],
          ["fixed", RATE],
        ]) {
          const before = (await processCpu(child)).cpu;
          const run = await load(info.port, requests[mode], SECONDS, rate);
          const after = (await processCpu(child)).cpu;
          const cpuUs = (after - before) / run.total;
          results[mode][kind].push({ ...run, cpuUs });
          process.stderr.write(`round ${round + 1} ${mode} ${kind}: ${Math.round(run.rps)} req/s, ${cpuUs.toFixed(1)} µs CPU/req, p99 ${run.p99} ms, bad ${run.bad}\n`);
        }
      }
    }
    const summary = {};
    for (const mode of modes) {
      summary[mode] = {};
      for (const kind of ["full", "fixed"]) {
        const runs = results[mode][kind];
        summary[mode][kind] = {
          rps: Math.round(median(runs.map((r) => r.rps))),
          cpuUs: Number(median(runs.map((r) => r.cpuUs)).toFixed(1)),
          p50: median(runs.map((r) => r.p50)),
          p99: median(runs.map((r) => r.p99)),
          bad: runs.reduce((n, r) => n + r.bad, 0),
        };
      }
    }
    const baseOf = (mode) => summary[mode.endsWith("@base") ? "pass-through@base" : "pass-through"];
    const lines = [`${ROUNDS} rounds, ${SECONDS} s per run, ${CONNECTIONS} connections; fixed rate ${RATE} req/s`];
    lines.push("mode               | full: req/s  CPU µs/req  p50  p99 | fixed: CPU µs/req  p99 | CPU ratio full/fixed | p99 ratio full");
    for (const mode of modes) {
      const s = summary[mode];
      const base = baseOf(mode);
      const ratio = (k) => (s[k].cpuUs / base[k].cpuUs).toFixed(2);
      lines.push(
        `${mode.padEnd(18)} | ${String(s.full.rps).padStart(6)} ${String(s.full.cpuUs).padStart(8)} ${String(s.full.p50).padStart(5)} ${String(s.full.p99).padStart(4)} | ${String(s.fixed.cpuUs).padStart(8)} ${String(s.fixed.p99).padStart(4)} | ${ratio("full")} / ${ratio("fixed")} | ${(s.full.p99 / base.full.p99).toFixed(2)}${s.full.bad + s.fixed.bad > 0 ? `  (non-2xx/errors: ${s.full.bad + s.fixed.bad})` : ""}`,
      );
    }
    process.stdout.write(`${lines.join("\n")}\n`);
  } finally {
    await Promise.all(started.map(stopServer));
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
