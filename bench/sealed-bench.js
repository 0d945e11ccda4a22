/**
 * Benchmark 22: sealed orders (docs/sealed-orders.md), the cost of sealing an order's body to the
 * gateway with HPKE (RFC 9180: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM) against the
 * same order unsealed, in the same run.
 *
 * 22a. In process. One core with an HPKE keyring, a native route that declares `order.place` (so
 *      both paths decode the JSON order); batches of freshly signed requests, the sealed ones
 *      sealed and signed before the timed loop, run through the pipeline (`core.verify`), sealed
 *      and unsealed batches back to back in alternating order. µs per request (mean of a batch;
 *      median of batches), and the ratio sealed / unsealed per batch pair. The sealed path is the
 *      unsealed one plus the unseal stage: an X25519 decapsulation, HKDF, AES-128-GCM open
 *      (WebCrypto, through @hpke/core: asynchronous, so the pipeline awaits it).
 * 22b. What the client pays: sealing one order (the SDK's `sealBody`), µs (median of batches).
 * 22c. Through the gateway: a real Gateway (HTTP, loopback) forwarding to a local upstream,
 *      autocannon with a pool of pre-sealed, pre-signed requests (each used once; the freshness
 *      window is a minute so the pool stays fresh), sealed and unsealed rounds interleaved;
 *      requests per second and µs per request.
 *
 * Run alone: `node bench/sealed-bench.js [--quick]` (after `npm run build`) prints this section.
 */
import { Buffer } from "node:buffer";
import { createHash, createHmac, randomBytes } from "node:crypto";
import { createServer } from "node:http";
import { performance } from "node:perf_hooks";
import process from "node:process";
import { setImmediate as turn } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";
import { sealBody } from "../packages/client/dist/base.js";
import { Forwarder } from "../packages/portcullis/dist/gateway/proxy.js";
import { Gateway } from "../packages/portcullis/dist/gateway/server.js";
import { IdentitySigner } from "../packages/portcullis/dist/gateway/identity.js";
import { silentLogger } from "../packages/portcullis/dist/log/logger.js";
import { createBenchCore } from "./core.js";
import { fmt, fmtRatio, median, pairRatios, quantile, table } from "./stats.js";

export const SEALED_BENCH_SETTINGS = {
  full: { batches: 40, batchSize: 200, warmupBatches: 4, gateway: { rounds: 4, requests: 2_000, connections: 8 } },
  quick: { batches: 8, batchSize: 100, warmupBatches: 2, gateway: { rounds: 2, requests: 400, connections: 4 } },
};

const AUTHORITY = "gw.test";
const PATH = "/api/v3/order";
const ROUTES = [{ method: "POST", path: PATH, permission: "trade", weight: 1, tags: ["order"], operation: "order.place" }];
const ORDER = Buffer.from(JSON.stringify({ symbol: "BTCUSDT", side: "buy", type: "limit", timeInForce: "GTC", quantity: "0.010", price: "64250.00" }));
const SEALED_TYPE = "application/portcullis-sealed";

let counter = 0;
const prefix = randomBytes(9).toString("base64url");
const nonce = () => `${prefix}${(++counter).toString(36)}`;
const digest = (body) => `sha-256=:${createHash("sha256").update(body).digest("base64")}:`;

/** A native HMAC-signed request (sealed headers covered when given), in the pipeline's input shape. */
function signed(keyId, secret, created, body, sealed, n = nonce()) {
  const headers = { host: AUTHORITY, "content-digest": digest(body), "content-type": "application/json" };
  const components = ["@method", "@authority", "@path", "@query", "content-digest"];
  if (sealed !== null) {
    headers["content-type"] = SEALED_TYPE;
    headers["portcullis-sealed"] = sealed;
    headers["portcullis-sealed-type"] = "application/json";
    components.push("portcullis-sealed", "portcullis-sealed-type");
  }
  const params = `(${components.map((c) => `"${c}"`).join(" ")});created=${created};nonce="${n}";keyid="${keyId}";alg="hmac-sha256"`;
  const value = (c) => (c === "@method" ? "POST" : c === "@authority" ? AUTHORITY : c === "@path" ? PATH : c === "@query" ? "?" : headers[c]);
  const base = `${components.map((c) => `"${c}": ${value(c)}\n`).join("")}"@signature-params": ${params}`;
  headers["signature-input"] = `sig1=${params}`;
  headers.signature = `sig1=:${createHmac("sha256", secret).update(base).digest("base64")}:`;
  return { method: "POST", url: PATH, headers, body, socketAddress: "127.0.0.1" };
}

/** `count` sealed requests: sealed to `key` for their own signature, then signed. */
async function sealedRequests(keyId, secret, key, created, count) {
  const out = new Array(count);
  for (let i = 0; i < count; i++) {
    const n = nonce();
    const body = Buffer.from(await sealBody(key, ORDER, { keyId, nonce: n, method: "POST", target: PATH }));
    out[i] = signed(keyId, secret, created, body, key.id, n);
  }
  return out;
}

async function timePipeline(core, requests) {
  const start = performance.now();
  for (let i = 0; i < requests.length; i++) {
    let ctx = core.verify(requests[i], "bench");
    if (ctx instanceof Promise) ctx = await ctx;
    if (ctx.denial !== null) throw new Error(`request ${i} was denied: ${ctx.denial.code} ${ctx.denial.detail ?? ""}`);
  }
  return ((performance.now() - start) * 1000) / requests.length;
}

async function startUpstream() {
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "application/json", "content-length": 2 });
      res.end("{}");
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, url: `http://127.0.0.1:${server.address().port}` };
}

async function runGatewayRounds({ rounds, requests, connections }, progress) {
  const bench = await createBenchCore({ routes: ROUTES, sealing: true, windowMs: 60_000 });
  const upstream = await startUpstream();
  const gateway = new Gateway({
    pipeline: bench.core.pipeline,
    forwarder: new Forwarder({ upstream: upstream.url }),
    identity: new IdentitySigner(randomBytes(32).toString("hex")),
    logger: silentLogger(),
    sealing: bench.core.sealing,
  });
  const { port } = await gateway.listen(0, "127.0.0.1");
  const key = bench.core.sealing.published().keys[0];
  const secret = Buffer.from(bench.secret, "utf8");
  const series = { plain: [], sealed: [] };
  let failures = 0;
  let firstFailure = null;
  try {
    for (let r = 0; r < rounds; r++) {
      const created = Math.floor(Date.now() / 1000);
      const pools = {
        plain: Array.from({ length: requests }, () => signed(bench.keyId, secret, created, ORDER, null)),
        sealed: await sealedRequests(bench.keyId, secret, key, created, requests),
      };
      const order = r % 2 === 0 ? ["plain", "sealed"] : ["sealed", "plain"];
      for (const mode of order) {
        const pool = pools[mode];
        let next = 0;
        const t0 = performance.now();
        const result = await autocannon({
          url: `http://127.0.0.1:${port}`,
          connections,
          pipelining: 1,
          amount: pool.length,
          requests: [
            {
              method: "POST",
              path: PATH,
              setupRequest(req) {
                const one = pool[next++ % pool.length];
                req.headers = { ...one.headers };
                req.body = one.body;
                return req;
              },
              onResponse(status, body) {
                if (status !== 200 && firstFailure === null) firstFailure = `${status} ${body}`;
              },
            },
          ],
        });
        const seconds = (performance.now() - t0) / 1000;
        failures += result.non2xx + result.errors + result.timeouts;
        series[mode].push({ rps: result.requests.total / seconds, usPerRequest: (seconds * 1e6) / Math.max(1, result.requests.total), p50: result.latency.p50, p99: result.latency.p99 });
      }
      progress(`sealed orders, gateway: round ${r + 1}/${rounds}${firstFailure === null ? "" : ` (first failure: ${firstFailure})`}`);
    }
  } finally {
    await gateway.close(100);
    await new Promise((resolve) => upstream.server.close(resolve));
    await bench.close();
  }
  return { rounds, requests, connections, series, failures };
}

export async function runSealedBench({ batches, batchSize, warmupBatches, gateway, progress = () => undefined }) {
  const clock = { ms: Date.now() };
  const now = () => clock.ms;
  const bench = await createBenchCore({ now, routes: ROUTES, sealing: true });
  const series = { plain: [], sealed: [], seal: [] };
  try {
    const key = bench.core.sealing.published().keys[0];
    const secret = Buffer.from(bench.secret, "utf8");
    progress(`benchmark 22: sealed orders in process (${batches} batches of ${batchSize})`);
    for (let b = -warmupBatches; b < batches; b++) {
      clock.ms += 1000;
      const created = Math.floor(clock.ms / 1000);
      const plain = Array.from({ length: batchSize }, () => signed(bench.keyId, secret, created, ORDER, null));
      const t0 = performance.now();
      const sealed = await sealedRequests(bench.keyId, secret, key, created, batchSize);
      const sealUs = ((performance.now() - t0) * 1000) / batchSize;
      const steps = [async () => ["plain", await timePipeline(bench.core, plain)], async () => ["sealed", await timePipeline(bench.core, sealed)]];
      if (b % 2 !== 0) steps.reverse();
      for (const step of steps) {
        const [name, us] = await step();
        if (b >= 0) series[name].push(us);
      }
      if (b >= 0) series.seal.push(sealUs);
      await turn();
    }
  } finally {
    await bench.close();
  }
  const gatewayResult = gateway === null ? null : await runGatewayRounds(gateway, progress);
  return { batches, batchSize, warmupBatches, series, gateway: gatewayResult };
}

export function sealedSection(result) {
  const { series } = result;
  const plainUs = median(series.plain);
  const sealedUs = median(series.sealed);
  const ratios = pairRatios(series.sealed, series.plain);
  const spread = (list) => `${fmt(median(list), 1)} (p10–p90 ${fmt(quantile(list, 0.1), 1)}–${fmt(quantile(list, 0.9), 1)})`;
  const summary = [
    ["Sealed orders: in-process pipeline, sealed vs unsealed order (median of batches)", `${fmt(sealedUs, 1)} µs vs ${fmt(plainUs, 1)} µs (+${fmt(sealedUs - plainUs, 1)} µs, ${fmtRatio(ratios)})`, "reported", "—"],
  ];
  const rows = [
    ["Pipeline, unsealed order", spread(series.plain)],
    ["Pipeline, sealed order (unseal stage included)", spread(series.sealed)],
    ["Added by sealing (difference of medians)", fmt(sealedUs - plainUs, 1)],
    ["Ratio sealed / unsealed (per batch pair)", fmtRatio(ratios)],
    ["Client: sealing one order (SDK `sealBody`)", spread(series.seal)],
  ];
  const text = [
    "## 22. Sealed orders (HPKE)",
    "",
    `An order (${ORDER.length} bytes of JSON) on a native route that declares \`order.place\`, unsealed and sealed to the gateway's HPKE key (RFC 9180 base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, through @hpke/core over WebCrypto) for its own signature, through one core's pipeline, in process: ${result.batches} batches of ${result.batchSize} freshly signed requests each (after ${result.warmupBatches} warm-up batches), sealed and unsealed batches back to back in alternating order. The sealed path is the unsealed one plus the unseal stage (an X25519 decapsulation, HKDF, an AES-128-GCM open; asynchronous, so the pipeline awaits it) and the operation decoded from the plaintext.`,
    "",
    table(["", "µs per request (median, p10–p90)"], rows),
    "",
  ];
  const g = result.gateway;
  if (g !== null) {
    const rps = (mode) => median(g.series[mode].map((s) => s.rps));
    // Wall time per request at that throughput (the inverse of the median rate).
    const us = (mode) => 1e6 / rps(mode);
    const p99 = (mode) => median(g.series[mode].map((s) => s.p99));
    summary.push(["Sealed orders: through the gateway (HTTP, autocannon), sealed vs unsealed", `${fmt(rps("sealed"), 0)} vs ${fmt(rps("plain"), 0)} req/s (${fmt(rps("sealed") / rps("plain"), 2)}×)`, "reported", g.failures > 0 ? "**ERRORS**" : "—"]);
    text.push(
      `**Through the gateway.** A real \`Gateway\` on loopback forwarding to a local upstream that answers \`{}\`; autocannon, ${g.connections} connections, each round a pool of ${g.requests.toLocaleString("en-US")} pre-signed (and, for the sealed rounds, pre-sealed) requests used once each; ${g.rounds} rounds, sealed and unsealed interleaved. Medians of rounds.${g.failures > 0 ? ` **${g.failures} non-2xx answers or errors: the figures are invalid.**` : ""}`,
      "",
      table(
        ["", "req/s", "µs of wall time per request (1 / rate)", "p99 latency ms"],
        [
          ["Unsealed order", fmt(rps("plain"), 0), fmt(us("plain"), 1), fmt(p99("plain"), 1)],
          ["Sealed order", fmt(rps("sealed"), 0), fmt(us("sealed"), 1), fmt(p99("sealed"), 1)],
        ],
      ),
      "",
    );
  }
  return { summary, text, failures: g?.failures ?? 0 };
}

// Alone: node bench/sealed-bench.js [--quick]
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const quick = process.argv.includes("--quick");
  const progress = (line) => process.stderr.write(`${line}\n`);
  const section = sealedSection(await runSealedBench({ ...(quick ? SEALED_BENCH_SETTINGS.quick : SEALED_BENCH_SETTINGS.full), progress }));
  process.stdout.write(`${table(["Benchmark", "Figure", "Target", "Result"], section.summary)}\n\n${section.text.join("\n")}\n`);
}
