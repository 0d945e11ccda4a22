/**
 * CPU per request of a whole gateway's request thread without the network: a `portcullis start`
 * gateway (startPortcullis over a fresh data directory, limits off, audit on, behaviour on, silent
 * logs) whose lifecycle runs each request in process — the pipeline, the hold hook, the audit
 * entry and its group commit, the behaviour hand-off and its batches, and the gateway's forward
 * up to the upstream call (forwarding and identity headers, response headers) — with nothing sent.
 * The figure is the process's CPU time over a run divided by its requests, timers' work included
 * (the run ends after the audit and behaviour windows). Far steadier on a shared machine than a
 * load test, since nothing waits on a socket:
 *
 *   node bench/lifecycle-bench.js [--rounds 7] [--requests 5000] [--compare DIR]
 *
 * Modes: `native` (RFC 9421 HMAC-SHA256, fresh nonce each), `binance` (query-signed HMAC, a
 * Binance-dialect key), `public` (an unsigned request on a public route). `--compare DIR` runs the
 * same in a child process over DIR/packages/portcullis/dist (a copy of another build), alternating
 * with this build's, so before and after see the same machine. Reports the median and the lowest
 * of each mode's runs.
 */
import { Buffer } from "node:buffer";
import { execFileSync } from "node:child_process";
import { createHmac, createSecretKey, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath, pathToFileURL } from "node:url";
import { GET_PATH, RequestSigner, SCOPES } from "./signing.js";

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i < 0 ? fallback : args[i + 1];
};
const ROUNDS = Number(opt("rounds", 7));
const REQUESTS = Number(opt("requests", 5000));
const COMPARE = opt("compare", null);
const ONE = opt("one", null); // internal: run one mode once over `--dist`, print the result as JSON
const HERE = fileURLToPath(new URL("../packages/portcullis/dist", import.meta.url));
const PUBLIC_PATH = "/api/v3/exchangeInfo";
const MODES = ["native", "binance", "public"];
const EMPTY = Buffer.alloc(0);

/** One mode over the dist at `dist`: `ROUNDS` runs of `REQUESTS` after a discarded one; µs per request each. */
async function measure(dist, mode) {
  const { initDataDir, parseConfig, parseCreateKeyInput, startPortcullis, valueOrThrow } = await import(pathToFileURL(join(dist, "index.js")).href);
  const { silentLogger } = await import(pathToFileURL(join(dist, "log/logger.js")).href);
  const dataDir = mkdtempSync(join(tmpdir(), "portcullis-lifecycle-"));
  await initDataDir(dataDir, "live");
  const config = parseConfig(
    {
      environment: "live",
      dataDir,
      gateway: { host: "127.0.0.1", port: 0, upstream: "http://127.0.0.1:9" },
      admin: { enabled: false },
      routes: [
        { method: "GET", path: GET_PATH, permission: "read", weight: 20, dialect: "binance" },
        { method: "GET", path: PUBLIC_PATH, permission: "public", weight: 1, dialect: "binance" },
      ],
      limits: {},
    },
    dataDir,
  );
  const running = await startPortcullis(config, silentLogger());
  try {
    const create = async (input) => running.core.keys.create(valueOrThrow(parseCreateKeyInput(input, Date.now())), "bench");
    const native = await create({ account: "bench", scopes: SCOPES });
    const binance = await create({ account: "bench", scopes: SCOPES, dialects: ["binance"] });
    const signer = new RequestSigner(native.key.id, createSecretKey(Buffer.from(native.secret, "utf8")));
    const binanceSecret = Buffer.from(binance.secret, "utf8");
    let n = 0;
    const request = () => {
      if (mode === "public") return { method: "GET", url: PUBLIC_PATH, headers: { host: "gw.test", "user-agent": "bench", accept: "*/*" }, body: EMPTY, socketAddress: "127.0.0.1" };
      if (mode === "binance") {
        const payload = `omitZeroBalances=true&recvWindow=5000&timestamp=${Date.now()}&n=${(n += 1)}`;
        const url = `${GET_PATH}?${payload}&signature=${createHmac("sha256", binanceSecret).update(payload).digest("hex")}`;
        return { method: "GET", url, headers: { host: "gw.test", "user-agent": "bench", accept: "*/*", "x-mbx-apikey": binance.key.id }, body: EMPTY, socketAddress: "127.0.0.1" };
      }
      return { method: "GET", url: GET_PATH, headers: { "user-agent": "bench", accept: "*/*", ...signer.sign("GET", Math.floor(Date.now() / 1000)).headers }, body: EMPTY, socketAddress: "127.0.0.1" };
    };
    // The gateway's own lifecycle, with its hand on stopped at the upstream call: Gateway.forward
    // builds every header as for a real request, then a forwarder that sends nothing answers.
    const gateway = running.gateway;
    const lifecycle = gateway.lifecycle;
    const silentForwarder = { forward: () => Promise.resolve(null) };
    let denied = 0;
    lifecycle.exchange = {
      handOn: (ctx) => {
        const real = gateway.options.forwarder;
        gateway.options.forwarder = silentForwarder;
        try {
          return gateway.forward(ctx, null);
        } finally {
          gateway.options.forwarder = real;
        }
      },
      render: (ctx) => {
        if (ctx.denial !== null) denied++;
      },
    };
    const turn = () => new Promise((r) => setImmediate(r));
    const run = async () => {
      const requests = Array.from({ length: REQUESTS }, request);
      const before = process.cpuUsage();
      for (let i = 0; i < requests.length; i++) {
        await lifecycle.serve(requests[i], randomUUID(), null);
        if (i % 64 === 63) await turn();
      }
      // The audit log's group commit and the behaviour engine's batch run on timers: wait for them.
      await new Promise((r) => setTimeout(r, 300));
      const used = process.cpuUsage(before);
      return (used.user + used.system) / requests.length;
    };
    await run();
    const runs = [];
    for (let r = 0; r < ROUNDS; r++) runs.push(await run());
    if (denied > 0) throw new Error(`${mode}: ${denied} requests were denied`);
    return runs;
  } finally {
    await running.close(0);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** One mode over one build, in a fresh process (each build has its own module graph and heap). */
function child(dist, mode) {
  const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), "--one", mode, "--dist", dist, "--rounds", String(ROUNDS), "--requests", String(REQUESTS)], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  return JSON.parse(out);
}

async function main() {
  if (ONE !== null) {
    process.stdout.write(JSON.stringify(await measure(resolve(opt("dist", HERE)), ONE)));
    return;
  }
  const builds = COMPARE === null ? { "": HERE } : { "": HERE, "@base": resolve(COMPARE, "packages/portcullis/dist") };
  const results = {};
  for (const mode of MODES) {
    // Alternated: this build, the base, this build, the base… so both see the same machine.
    for (let pass = 0; pass < 2; pass++) {
      for (const [suffix, dist] of Object.entries(builds)) {
        const runs = child(dist, mode);
        (results[`${mode}${suffix}`] ??= []).push(...runs);
        process.stderr.write(`${mode}${suffix}: ${runs.map((r) => r.toFixed(1)).join(" ")} µs/req\n`);
      }
    }
  }
  const lines = [`${ROUNDS} runs of ${REQUESTS} requests per process, 2 processes per mode and build; CPU µs per request (median, lowest)`];
  for (const [mode, runs] of Object.entries(results)) lines.push(`${mode.padEnd(14)} ${median(runs).toFixed(1).padStart(6)} ${Math.min(...runs).toFixed(1).padStart(6)}`);
  process.stdout.write(`${lines.join("\n")}\n`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
