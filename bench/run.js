/**
 * The Portcullis benchmark harness: `npm run bench` (builds first, then runs this file).
 *
 *   node bench/run.js            full run (about fifteen minutes), Markdown report on stdout
 *   node bench/run.js --quick    short smoke run (figures are not meaningful)
 *   node bench/run.js --write    also rewrite BENCHMARKS.md with the report
 *
 * Progress goes to stderr. The exit code is 1 when a run saw a non-2xx answer or an error (the
 * figures are then invalid), or when the private redis-server benchmarks 6 and 7 need could not be
 * started; a missed target is reported, not an error.
 *
 * Benchmarks (see BENCHMARKS.md for how to read them):
 *   1. the in-process pipeline against the raw HMAC-SHA256 of the same signature bases;
 *   2. gateway throughput, full security against pass-through and a plain node:http proxy;
 *   3. the per-stage breakdown a gateway with Server-Timing reports;
 *   4. each exchange dialect's in-process pipeline against the raw primitive (HMAC or signature
 *      verification) of the same bytes, beside the native scheme's figures from benchmark 1;
 *   5. the added cost of rate limits in memory mode: a core with the default limits against one
 *      without, in process (per-batch differences, µs per request);
 *   6. Redis round trips per request with the Redis hot store, counted from Redis's own command
 *      statistics and MONITOR on a private redis-server;
 *   7. gateway throughput with limits, hot state in Redis against hot state in memory;
 *   8. the session path in process: a session-signed request against an HMAC-key-signed one, and
 *      against a request signed with an Ed25519 key itself;
 *   9. gateway throughput for an Ed25519 key: with a session against per-request signatures;
 *  10. revocation fan-out across three gateway processes: over the Redis bus, and by polling.
 *  11. key custody: KEK rotation (rewrap of 100k data keys) alone and under load, failed requests
 *      during it, key creation latency per KEK provider, HSM calls per request (custody-bench.js;
 *      the PKCS#11 rows need SoftHSM2, on a token the benchmark initialises in a temporary directory).
 *  12. the audit log: sustained decision logging with group commit, its cost on the request path
 *      (a core recording every decision against one recording none), verification speed
 *      (audit-bench.js; `node bench/audit-bench.js [--quick]` runs it alone).
 *  13. per-key guardrails: the guard stage on an order with every guardrail set, and the operation
 *      and guard stages on a route that declares no operation (guardrails-bench.js;
 *      `node bench/guardrails-bench.js [--quick]` runs it alone).
 *  14. policy evaluation with 100 rules: `decide` on a withdrawal meeting the catch-all after 99
 *      non-matching rules, and one matching the 50th (policy-bench.js; runs alone too).
 *  15. the behaviour model: `observe` + `observeAccount` per event over 1,000 keys' seeded traffic,
 *      and the encoded state's size (behaviour-bench.js; `node bench/behaviour-bench.js [--quick]`
 *      runs it alone).
 *  16. the synchronous risk check of stage 11 (risk-bench.js; `node bench/risk-bench.js [--quick]`).
 *  17. the published latency figures: wrk (a separate process) against nginx as a reverse proxy, a
 *      whole configured Portcullis in pass-through, on a public route and on signed requests
 *      (native and Binance HMAC), nginx + the Portcullis authorizer and `--workers` when the build
 *      has them; CPU per request and the gateway's event-loop delay (wrk-bench.js;
 *      `node bench/wrk-bench.js [--quick]` runs it alone). Needs /usr/bin/wrk and /usr/sbin/nginx
 *      (or PORTCULLIS_BENCH_WRK / PORTCULLIS_BENCH_NGINX); without them, said loudly in the report.
 *  18. cold-key lookups with 1,000,000 keys in PostgreSQL: `keys.get` and a key-cache miss of ids
 *      never read before, warm and first touch, on a private PostgreSQL made with the machine's
 *      binaries (pg-bench.js, postgres-server.js; `node bench/pg-bench.js [--quick]` runs it alone).
 *  19. gateway throughput on PostgreSQL + Redis against the embedded mode (SQLite + memory): benchmark
 *      17's signed row under wrk against both, in the same run, on a private PostgreSQL and a private
 *      redis-server (pg-wrk-bench.js; `node bench/pg-wrk-bench.js [--quick]` runs it alone).
 *  20. the operator console: the admin API's keys list (`GET /portcullis/v1/keys?limit=50`: first
 *      page, a later page, q searches) with 10,000 keys on SQLite and on PostgreSQL, signed requests
 *      over HTTP; and the console's first load, the gzip bytes of the JavaScript its index.html
 *      fetches ("not built" without packages/console/dist) (console-bench.js;
 *      `node bench/console-bench.js [--quick]` runs it alone).
 *  21. agent keys (docs/wallets.md): an agent key's request, and a delegated agent's, against a plain
 *      Ed25519 key's on the same route in the same in-process core (agent-bench.js;
 *      `node bench/agent-bench.js [--quick]` runs it alone).
 *  22. sealed orders (HPKE, RFC 9180): an order sealed to the gateway against the same order unsealed,
 *      in the same run: the in-process pipeline (µs per request and the ratio), the client's sealing,
 *      and through a real gateway with autocannon (sealed-bench.js; `node bench/sealed-bench.js
 *      [--quick]` runs it alone).
 *
 * Benchmarks 1-4 run without limits (as before limits existed); 5-7 with the default limits of a
 * configured gateway, raised so that no request is ever refused (core.js benchLimits()).
 * Benchmarks 6 and 7 start a private redis-server (redis-server.js) and stop it afterwards.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, release, totalmem } from "node:os";
import { performance } from "node:perf_hooks";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { custodySection, runCustodyBench } from "./custody-bench.js";
import { runDialectBench } from "./dialect-bench.js";
import { LIMIT_MODES, MODES, runGatewayBench, runLimitsGatewayBench } from "./gateway-bench.js";
import { runLimitsCostBench, runRoundTripCount } from "./limits-bench.js";
import { AUDIT_BENCH_SETTINGS, auditSection, runAuditBench } from "./audit-bench.js";
import { GUARDRAIL_BENCH_SETTINGS, guardrailsSection, runGuardrailsBench } from "./guardrails-bench.js";
import { POLICY_BENCH_SETTINGS, policySection, runPolicyBench } from "./policy-bench.js";
import { BEHAVIOUR_BENCH_SETTINGS, behaviourSection, runBehaviourBench } from "./behaviour-bench.js";
import { RISK_BENCH_SETTINGS, riskSection, runRiskBench } from "./risk-bench.js";
import { WRK_BENCH_SETTINGS, WRK_TARGETS, runWrkBench, wrkSection } from "./wrk-bench.js";
import { PG_BENCH_SETTINGS, PG_TARGETS, pgLookupSection, runPgLookupBench } from "./pg-bench.js";
import { STORE_WRK_SETTINGS, STORE_WRK_TARGETS, runStoreWrkBench, storeWrkSection } from "./pg-wrk-bench.js";
import { CONSOLE_BENCH_SETTINGS, CONSOLE_TARGETS, consoleSection, runConsoleBench } from "./console-bench.js";
import { runPipelineBench } from "./pipeline-bench.js";
import { AGENT_BENCH_SETTINGS, AGENT_TARGETS, agentSection, runAgentBench } from "./agent-bench.js";
import { SEALED_BENCH_SETTINGS, runSealedBench, sealedSection } from "./sealed-bench.js";
import { SESSION_MODES, runFanoutBench, runSessionCostBench, runSessionGatewayBench } from "./session-bench.js";
import { startPrivateRedis } from "./redis-server.js";
import { BENCH_LIMIT } from "./core.js";
import { fmt, fmtPercent, fmtRatio, mean, median, pairRatios, quantile, table } from "./stats.js";

const TARGETS = {
  /** Median pipeline cost at most this many times the raw HMAC of the same base. */
  pipelineOverHmac: 4,
  /** Full-security throughput at least this share of pass-through. */
  fullOverPassThrough: 0.85,
  /** Each dialect's median pipeline cost at most this many times its raw primitive of the same bytes. */
  dialectOverPrimitive: 4,
  /** Median added cost of limits per request in memory mode, µs. */
  limitsAddedUs: 1,
  /** Redis round trips per request with the Redis hot store: exactly this many. */
  redisRoundTrips: 1,
  /** Gateway throughput with the Redis hot store at least this share of the memory hot store's. */
  redisOverMemory: 0.7,
  /** A session-signed request costs at most this many times an HMAC-key-signed one, in process. */
  sessionOverHmac: 1.5,
  /** Gateway throughput for an Ed25519 key with sessions at least this many times per-request signatures'. */
  sessionOverEd25519: 5,
  /** p99 of the revocation fan-out across three gateway processes, ms. */
  fanoutP99Ms: 100,
};

const SETTINGS = {
  full: {
    pipeline: { batches: 150, batchSize: 2000, warmupBatches: 5 },
    // End-to-end runs: the machine's speed drifts within seconds (other tenants of the host), so
    // many short interleaved pairs give a steadier median than a few long ones.
    gateway: {
      rounds: 9,
      seconds: 3,
      warmupSeconds: 1,
      primeSeconds: 2,
      connections: 32,
      fixedRate: { rate: 1500, rounds: 3, seconds: 3 },
      stageSeconds: 3,
    },
    dialects: {
      hmac: { batches: 60, batchSize: 1000, warmupBatches: 3 },
      signature: { batches: 40, batchSize: 256, warmupBatches: 3 },
      coldBurst: 64,
      sequenceClaims: 20_000,
    },
    limits: {
      // Small batches: a young-generation collection lands in few pairs (see section 5).
      cost: { batches: 1200, batchSize: 250, warmupBatches: 40 },
      roundTrips: { requests: 5000 },
      gateway: { rounds: 9, seconds: 3, warmupSeconds: 1, primeSeconds: 2, connections: 32, fixedRate: { rate: 1500, rounds: 3, seconds: 3 } },
    },
    sessions: {
      cost: { batches: 400, batchSize: 500, warmupBatches: 20 },
      gateway: { rounds: 5, seconds: 3, warmupSeconds: 1, primeSeconds: 2, connections: 32, fixedRate: { rate: 500, rounds: 2, seconds: 3 } },
      fanout: { count: 100 },
    },
    custody: { secrets: 100_000, creates: 200, requests: 5_000 },
    audit: AUDIT_BENCH_SETTINGS.full,
    guardrails: GUARDRAIL_BENCH_SETTINGS.full,
    sealed: SEALED_BENCH_SETTINGS.full,
    policy: POLICY_BENCH_SETTINGS.full,
    behaviour: BEHAVIOUR_BENCH_SETTINGS.full,
    risk: RISK_BENCH_SETTINGS.full,
    wrk: WRK_BENCH_SETTINGS.full,
    pgLookup: PG_BENCH_SETTINGS.full,
    storeWrk: STORE_WRK_SETTINGS.full,
    console: CONSOLE_BENCH_SETTINGS.full,
    agents: AGENT_BENCH_SETTINGS.full,
  },
  quick: {
    pipeline: { batches: 10, batchSize: 500, warmupBatches: 2 },
    gateway: {
      rounds: 1,
      seconds: 2,
      warmupSeconds: 1,
      primeSeconds: 1,
      connections: 32,
      fixedRate: { rate: 1000, rounds: 1, seconds: 1 },
      stageSeconds: 1,
    },
    dialects: {
      hmac: { batches: 4, batchSize: 200, warmupBatches: 1 },
      signature: { batches: 3, batchSize: 64, warmupBatches: 1 },
      coldBurst: 8,
      sequenceClaims: 2_000,
    },
    limits: {
      cost: { batches: 20, batchSize: 250, warmupBatches: 4 },
      roundTrips: { requests: 200 },
      gateway: { rounds: 1, seconds: 2, warmupSeconds: 1, primeSeconds: 1, connections: 32, fixedRate: { rate: 1000, rounds: 1, seconds: 1 } },
    },
    sessions: {
      cost: { batches: 10, batchSize: 200, warmupBatches: 2 },
      gateway: { rounds: 1, seconds: 2, warmupSeconds: 1, primeSeconds: 1, connections: 32, fixedRate: { rate: 300, rounds: 1, seconds: 1 } },
      fanout: { count: 5 },
    },
    custody: { secrets: 2_000, creates: 20, requests: 500 },
    audit: AUDIT_BENCH_SETTINGS.quick,
    guardrails: GUARDRAIL_BENCH_SETTINGS.quick,
    sealed: SEALED_BENCH_SETTINGS.quick,
    policy: POLICY_BENCH_SETTINGS.quick,
    behaviour: BEHAVIOUR_BENCH_SETTINGS.quick,
    risk: RISK_BENCH_SETTINGS.quick,
    wrk: WRK_BENCH_SETTINGS.quick,
    pgLookup: PG_BENCH_SETTINGS.quick,
    storeWrk: STORE_WRK_SETTINGS.quick,
    console: CONSOLE_BENCH_SETTINGS.quick,
    agents: AGENT_BENCH_SETTINGS.quick,
  },
};

const BENCHMARKS_MD = fileURLToPath(new URL("../BENCHMARKS.md", import.meta.url));

function progress(line) {
  process.stderr.write(`${line}\n`);
}

function machine() {
  let model = cpus()[0]?.model ?? "unknown";
  try {
    const line = readFileSync("/proc/cpuinfo", "utf8")
      .split("\n")
      .find((l) => l.startsWith("model name"));
    if (line !== undefined) model = line.slice(line.indexOf(":") + 1).trim();
  } catch {
    // Not Linux: keep what os.cpus() says.
  }
  return {
    cpu: model,
    cores: availableParallelism(),
    memoryGiB: totalmem() / 2 ** 30,
    kernel: `${process.platform} ${release()}`,
    node: process.version,
  };
}

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
const verdict = (pass) => (pass ? "**PASS**" : "**FAIL**");
const us = (ms) => fmt(ms * 1000, 2);

// --- report: benchmark 1 ---------------------------------------------------------------------

function pipelineSection(result) {
  const { series, stageNames, stageSamples, batches, batchSize, warmupBatches } = result;
  const getRatios = pairRatios(series.getPipeline, series.getHmac);
  const postRatios = pairRatios(series.postPipeline, series.postHmac);
  const getRatio = median(getRatios);
  const stageMeans = stageSamples.map(mean);
  // A stage the GET request skips (the operation and guard stages: no operation declared) has no
  // samples; it counts as nothing in the total.
  const stageTotal = stageMeans.reduce((a, b) => (Number.isFinite(b) ? a + b : a), 0);
  return {
    summary: [
      "In-process pipeline / raw HMAC-SHA256 (GET, median of per-batch ratios)",
      `${fmt(getRatio)}×`,
      `≤ ${TARGETS.pipelineOverHmac}×`,
      verdict(getRatio <= TARGETS.pipelineOverHmac),
    ],
    text: [
      "## 1. In-process pipeline vs raw HMAC-SHA256",
      "",
      `A \`Portcullis\` core with the embedded stores (SQLite in a temporary data directory, replay protection in memory), no limits configured (benchmark 5 adds them) and a warm key cache verifies freshly signed requests through \`core.verify\`; every request is allowed (asserted). The baseline is \`createHmac("sha256", secretBytes).update(base).digest()\` over the same batch's signature bases, the one step no verifier can skip. ${batches} measured batches of ${batchSize} requests each (after ${warmupBatches} warm-up batches), each pre-generated untimed with unique nonces and flat header strings; the two sides of each pair run back to back, in alternating order. Figures are per request.`,
      "",
      table(
        ["Request", "Pipeline µs/req (median)", "Raw HMAC µs/req (median)", "Pipeline / HMAC, per-batch pairs", "Target", "Result"],
        [
          [
            "GET /api/v3/account (no body)",
            fmt(median(series.getPipeline)),
            fmt(median(series.getHmac)),
            fmtRatio(getRatios),
            `≤ ${TARGETS.pipelineOverHmac}×`,
            verdict(getRatio <= TARGETS.pipelineOverHmac),
          ],
          [
            "POST /api/v3/order (JSON body, content-digest covered)",
            fmt(median(series.postPipeline)),
            fmt(median(series.postHmac)),
            fmtRatio(postRatios),
            "none (informational)",
            "–",
          ],
        ],
      ),
      "",
      `Per-stage cost of the GET request, **with timing overhead** (a core built with \`timing: true\` reads the clock after every stage; that core's whole pipeline cost ${fmt(median(series.timedPipeline))} µs/req against ${fmt(median(series.getPipeline))} µs/req without timing). ${stageSamples[0]?.length ?? 0} requests.`,
      "",
      table(
        ["Stage", "Median µs", "Mean µs", "p99 µs", "Share of the mean total"],
        stageNames.map((name, i) => [
          `\`${name}\``,
          us(median(stageSamples[i])),
          us(stageMeans[i]),
          us(quantile(stageSamples[i], 0.99)),
          fmtPercent(stageMeans[i] / stageTotal),
        ]),
      ),
      "",
    ],
  };
}

// --- report: benchmarks 2 and 3 --------------------------------------------------------------

const MODE_LABEL = {
  full: "full security",
  "pass-through": "pass-through",
  "plain-proxy": "plain proxy",
  "memory-limits": "memory + limits",
  "redis-limits": "redis + limits",
  "ed25519-per-request": "Ed25519 per request",
  "ed25519-session": "Ed25519 key's session",
};

const failuresOf = (r) => r.non2xx + r.errors + r.timeouts + r.warmupNon2xx;

/** "78.1 % (p10–p90 70.2 %–84.0 %)" */
function fmtPercentSpread(ratios) {
  return `${fmtPercent(median(ratios))} (p10–p90 ${fmtPercent(quantile(ratios, 0.1))}–${fmtPercent(quantile(ratios, 0.9))})`;
}

/**
 * The per-mode table: medians over a list of runs. With `redis`, the Redis server's CPU per
 * request and its script calls per request received are columns too (benchmark 7).
 */
function modeTable(runs, modes = MODES, { redis = false } = {}) {
  return table(
    [
      "Mode",
      "req/s (median)",
      "p50 ms",
      "p99 ms",
      redis ? "Gateway CPU µs/req" : "Proxy CPU µs/req",
      ...(redis ? ["Redis CPU µs/req", "EVAL + EVALSHA per request received"] : []),
      "Upstream CPU µs/req",
      "Load generator CPU µs/req",
      "Non-2xx / errors (all runs)",
    ],
    modes.map((mode) => {
      const list = runs.filter((r) => r.mode === mode);
      const med = (field, decimals) => fmt(median(list.map((r) => r[field])), decimals);
      return [
        MODE_LABEL[mode],
        med("rps", 0),
        med("p50", 0),
        med("p99", 0),
        med("proxyCpuUs", 1),
        ...(redis ? [med("redisCpuUs", 1), med("scriptsPerRequest", 3)] : []),
        med("upstreamCpuUs", 1),
        med("generatorCpuUs", 1),
        String(list.reduce((n, r) => n + failuresOf(r), 0)),
      ];
    }),
  );
}

/** The "Every run" table of a gateway benchmark. */
function everyRunTable(runs, fixedRuns, fixedRate, { redis = false } = {}) {
  return table(
    [
      "Load",
      "Round",
      "Mode",
      "req/s",
      "p50 ms",
      "p99 ms",
      redis ? "Gateway CPU µs/req" : "Proxy CPU µs/req",
      ...(redis ? ["Redis CPU µs/req", "EVAL + EVALSHA / requests received"] : []),
      "Requests",
      "Non-2xx",
      "Errors",
      "Timeouts",
      "Warm-up failures",
    ],
    [...runs.map((r) => ["full", r]), ...fixedRuns.map((r) => [`${fixedRate.rate} req/s`, r])].map(([load, r]) => [
      load,
      String(r.round + 1),
      MODE_LABEL[r.mode],
      fmt(r.rps, 0),
      String(r.p50),
      String(r.p99),
      fmt(r.proxyCpuUs, 1),
      ...(redis ? [fmt(r.redisCpuUs, 1), fmt(r.scriptsPerRequest, 3)] : []),
      String(r.total),
      String(r.non2xx),
      String(r.errors),
      String(r.timeouts),
      String(r.warmupNon2xx),
    ]),
  );
}

function gatewaySection(result) {
  const { runs, fixedRuns, fixedRate, rounds, seconds, warmupSeconds, primeSeconds, connections, primeFailures, stages } = result;
  const series = (list, mode, field) => list.filter((r) => r.mode === mode).map((r) => r[field]);
  const rps = (mode) => series(runs, mode, "rps");
  const fullOverPass = pairRatios(rps("full"), rps("pass-through"));
  const ratio = median(fullOverPass);
  const pass = ratio >= TARGETS.fullOverPassThrough;
  const fixedCpu = (mode) => series(fixedRuns, mode, "proxyCpuUs");
  const fixedExtra = fixedCpu("full").map((cpu, i) => cpu - fixedCpu("pass-through")[i]);
  const failures = [...runs, ...fixedRuns].reduce((n, r) => n + failuresOf(r), primeFailures);

  const text = [
    "## 2. Gateway throughput: full security vs pass-through",
    "",
    `Loopback only. An upstream (node:http answering a 174-byte JSON document), and three servers in front of it, each in its own process: the **full-security** gateway (\`Gateway\` + \`Forwarder\` + \`IdentitySigner\` over a \`Portcullis\` core, no limits configured, logs silent), the same gateway in **pass-through** mode (\`passThrough: true\`: forwards without the pipeline), and a **plain proxy** (node:http + an undici \`Pool\`, \`pool.stream\`, nothing else; bench/plain-proxy.js). autocannon runs in the parent process: ${connections} connections, pipelining 1. Every server is first primed with a ${primeSeconds} s run; then ${plural(rounds, "round")} each run every mode once, in a rotating order, ${seconds} s per run after a ${warmupSeconds} s warm-up run against the same server (prime and warm-up runs are discarded, but their non-2xx answers count as failures). Every request is \`GET /api/v3/account\`, signed in the load generator with a fresh nonce and the current time, in every mode: the same signed requests go to all three, and only the full gateway checks them.`,
    "",
    "### Throughput at full load",
    "",
    table(
      ["Ratio of req/s (median of per-round pairs)", "Value", "Target", "Result"],
      [
        ["full security / pass-through", fmtPercentSpread(fullOverPass), `≥ ${fmtPercent(TARGETS.fullOverPassThrough)}`, failures > 0 ? "**INVALID**" : verdict(pass)],
        ["full security / plain proxy", fmtPercentSpread(pairRatios(rps("full"), rps("plain-proxy"))), "none", "–"],
        ["pass-through / plain proxy", fmtPercentSpread(pairRatios(rps("pass-through"), rps("plain-proxy"))), "none", "–"],
      ],
    ),
    "",
    modeTable(runs),
    "",
    "Latency figures are medians over runs of each run's percentile (autocannon records whole milliseconds). CPU per request is a process's user + system time during the run divided by the requests completed.",
    "",
    `### CPU per request at a fixed load (${fixedRate.rate} req/s)`,
    "",
    `The same servers, ${plural(fixedRate.rounds, "round")} of ${fixedRate.seconds} s per mode at a fixed ${fixedRate.rate} req/s (autocannon \`overallRate\`, which every mode sustains), so CPU per request is compared at equal load. The difference between full security and pass-through is what the security layer (pipeline, identity headers, the larger upstream request) costs the gateway process per request: **${fmt(median(fixedExtra), 1)} µs** (median of per-round differences; p10–p90 ${fmt(quantile(fixedExtra, 0.1), 1)}–${fmt(quantile(fixedExtra, 0.9), 1)} µs), or ${fmtRatio(pairRatios(fixedCpu("full"), fixedCpu("pass-through")))} the pass-through CPU.`,
    "",
    modeTable(fixedRuns),
    "",
    "<details><summary>Every run</summary>",
    "",
    everyRunTable(runs, fixedRuns, fixedRate),
    "",
    "</details>",
    "",
  ];
  if (failures > 0) {
    text.push(`**INVALID: ${failures} non-2xx answers, errors or timeouts were seen; the figures above do not measure the intended work.**`, "");
  }

  if (stages !== null) {
    const stageFailures = stages.run.non2xx + stages.run.errors + stages.run.timeouts;
    text.push(
      "## 3. Per-request stage breakdown through the gateway",
      "",
      `A fourth gateway process whose core records stage timings (\`timing: true\`, which turns on Server-Timing), under full load for ${stages.run.total} requests (${fmt(stages.run.rps, 0)} req/s, ${stageFailures} non-2xx/errors); figures parsed from each response's \`Server-Timing\` header (1 µs resolution), **with timing overhead**, and under load: they include any time a stage spent preempted on the shared CPU.`,
      "",
      table(
        ["Stage", "Median µs", "Mean µs", "p99 µs"],
        stages.names.map((name, i) => [`\`${name}\``, us(median(stages.samples[i])), us(mean(stages.samples[i])), us(quantile(stages.samples[i], 0.99))]),
      ),
      "",
    );
  }

  return {
    failures,
    summary: [
      "Gateway throughput, full security / pass-through (median of per-round ratios)",
      fmtPercent(ratio),
      `≥ ${fmtPercent(TARGETS.fullOverPassThrough)}`,
      failures > 0 ? "**INVALID**" : verdict(pass),
    ],
    text,
  };
}

// --- report: benchmark 4 ---------------------------------------------------------------------

/** A dialect case's per-batch ratios of pipeline to raw primitive (wall clock). */
const caseRatios = (c) => pairRatios(c.series.pipeline, c.series.raw);

/** The OKX cold burst against one cold request: does a burst share the first passphrase hash? */
function coldBurstText({ count, ms }, singleMs) {
  const factor = ms / singleMs;
  const reading =
    factor > 2
      ? "so the burst did not share one passphrase hash: until a check of the key has succeeded, each request that arrives runs its own scrypt on the thread pool (which other work, such as Coinbase's WebCrypto verification, shares)"
      : "so the burst shared the first passphrase hash";
  return `${count} requests in flight as the very first requests of another OKX key took **${fmt(ms, 0)} ms** to be answered, ${fmt(factor, 1)}× one cold OKX request on its own (above), ${reading}.`;
}

function dialectSection(result, pipelineResult) {
  const { cases, firstRequest, coldBurst, krakenReplay } = result;
  const target = TARGETS.dialectOverPrimitive;
  const { series: native } = pipelineResult;
  const nativeGet = median(pairRatios(native.getPipeline, native.getHmac));
  const targeted = cases.filter((c) => c.target);
  const verdicts = targeted.map((c) => ({ c, ratio: median(caseRatios(c)) }));
  const failing = verdicts.filter((v) => !(v.ratio <= target));
  const worst = verdicts.reduce((a, b) => (b.ratio > a.ratio ? b : a), verdicts[0]);
  const settingsOf = (cost) => cases.find((c) => c.cost === cost);
  const hmac = settingsOf("hmac");
  const sig = settingsOf("signature");
  const coinbase = cases.filter((c) => c.id.startsWith("coinbase-"));
  const unexpectedAsync = cases.filter((c) => !c.id.startsWith("coinbase-") && c.asyncAnswers > 0);

  const text = [
    "## 4. In-process verification cost by scheme",
    "",
    `The native scheme's figures (benchmark 1) beside every exchange dialect's. One \`Portcullis\` core with the embedded stores, as in benchmark 1, whose routes carry \`dialect: "<venue>"\`, and one key per venue and algorithm created through the key service (\`core.keys.create(parseCreateKeyInput({ account, scopes, dialects, algorithm?, publicKey?, passphrase? }))\`); the client side signs with node:crypto the way each venue's clients do (bench/dialect-signing.js). Every request is freshly signed, untimed, with its own time (distinct milliseconds of the second before the core's clock, which is frozen within a batch and steps one second between batches: a batch is one second of one key's traffic) and, where its scheme has one, its own nonce or client order id, and is run through the whole pipeline (\`core.verify\`: address, route, credentials, key cache, freshness, signature, replay, authorization); every one is allowed (asserted), so replay protection sees each as new. The baseline is the raw primitive over the very bytes that request signed (the signature is computed from them), the one step no verifier can skip: an HMAC (Buffer in, digest out) or one node:crypto \`verify\`. HMAC cases: ${hmac?.batches ?? 0} measured batches of ${hmac?.batchSize ?? 0} requests (after ${hmac?.warmupBatches ?? 0} warm-up batches); public-key cases: ${sig?.batches ?? 0} of ${sig?.batchSize ?? 0} (after ${sig?.warmupBatches ?? 0}). The two sides of each pair run back to back, in alternating order. Figures are per request.`,
    "",
    "### In-process verification cost by scheme",
    "",
    table(
      ["Scheme", "Request", "Pipeline µs/req (median)", "Raw primitive (same bytes)", "Raw µs/req (median)", "Pipeline / raw, per-batch pairs", "Target", "Result"],
      [
        [
          "Native (RFC 9421), HMAC-SHA256 — reference, benchmark 1",
          "GET /api/v3/account (no body)",
          fmt(median(native.getPipeline)),
          "HMAC-SHA256 of the signature base",
          fmt(median(native.getHmac)),
          fmtRatio(pairRatios(native.getPipeline, native.getHmac)),
          `≤ ${TARGETS.pipelineOverHmac}×`,
          verdict(nativeGet <= TARGETS.pipelineOverHmac),
        ],
        [
          "Native (RFC 9421), HMAC-SHA256 — reference, benchmark 1",
          "POST /api/v3/order (JSON body, content-digest covered)",
          fmt(median(native.postPipeline)),
          "HMAC-SHA256 of the signature base",
          fmt(median(native.postHmac)),
          fmtRatio(pairRatios(native.postPipeline, native.postHmac)),
          "none (informational)",
          "–",
        ],
        ...cases.map((c) => {
          const ratio = median(caseRatios(c));
          return [
            c.scheme,
            c.request,
            fmt(median(c.series.pipeline)),
            c.primitiveLabel,
            fmt(median(c.series.raw)),
            fmtRatio(caseRatios(c)),
            c.target ? `≤ ${target}×` : "none (informational)",
            c.target ? verdict(ratio <= target) : "–",
          ];
        }),
      ],
    ),
    "",
    `Kraken's primitive counts both steps of its signature, the inner SHA-256 of nonce + body and the HMAC-SHA512 over path + that digest. OKX's pipeline also checks the key's passphrase: after the key's first successful request (slow, a salted scrypt hash, in the warm-up) that is one more HMAC-SHA256, counted as pipeline cost. Binance, OKX and Bybit have no nonce: the signature is the single-use value the replay stage records.`,
    "",
    "### Coinbase: latency and throughput",
    "",
    "Coinbase tokens are verified with jose over WebCrypto, whose `verify` runs on libuv's thread pool: `core.verify` answers with a promise. **One at a time** (each request awaited before the next: the latency a lone client sees) the main thread waits for the pool on every request; with **64 in flight** the main thread's parsing of one token overlaps the pool's verification of others, and the pool can use another core. CPU is the whole process's user + system time (every thread) per request; the raw verify is synchronous, on the main thread.",
    "",
    table(
      ["Key", "View", "Pipeline wall µs/req", "Pipeline CPU µs/req", "Raw verify µs/req", "Wall ratio, per-batch pairs", "CPU ratio, per-batch pairs"],
      coinbase.map((c) => [
        c.scheme.replace("Coinbase CDP JWT, ", ""),
        c.inFlight === 1 ? "one at a time (latency)" : `${c.inFlight} in flight (throughput)`,
        fmt(median(c.series.pipeline)),
        fmt(median(c.series.pipelineCpu)),
        fmt(median(c.series.raw)),
        fmtRatio(caseRatios(c)),
        fmtRatio(pairRatios(c.series.pipelineCpu, c.series.rawCpu)),
      ]),
    ),
    "",
    `The target applies to the one-at-a-time view: it is measured exactly as every other row (one request at a time, wall clock on one thread of control) and does not depend on a spare core, whereas the 64-in-flight wall time per request falls with every core the thread pool can borrow (this machine has ${availableParallelism()}) and rises when anything else runs on them, so it is reported, not judged. The CPU columns show the work done per request, wherever it ran.`,
    "",
    "### First request of a key, and the OKX passphrase",
    "",
    "The first request each key ever sees (untimed above): the key is loaded from SQLite and its secret decrypted, Coinbase imports the public key into WebCrypto once, and OKX runs the passphrase's scrypt hash (on the thread pool) before it remembers the passphrase in its fast form. One sample each, wall clock.",
    "",
    table(
      ["Key", ...firstRequest.map((f) => f.label)],
      [["First request, ms", ...firstRequest.map((f) => fmt(f.ms, 1))]],
    ),
    "",
    coldBurstText(coldBurst, firstRequest.find((f) => f.key === "okx")?.ms ?? Number.NaN),
    "",
    "### Kraken: replay cost against nonce spacing",
    "",
    "Kraken's replay stage is the embedded increasing-nonce store with the scheme's default window (5000 nonce units). Measured here directly, per claim of an increasing nonce, for one key whose successive nonces are this far apart (with millisecond nonces, as ccxt sends, a spacing of 1 is 1000 requests per second on that key, which is the spacing of the pipeline run above):",
    "",
    table(
      ["Nonce spacing", ...krakenReplay.map((k) => String(k.spacing))],
      [["µs per claim", ...krakenReplay.map((k) => fmt(k.us, 2))]],
    ),
    "",
  ];
  if (unexpectedAsync.length > 0) {
    text.push(
      `Answered asynchronously although the scheme verifies synchronously (a key load or a passphrase check went to the thread pool): ${unexpectedAsync.map((c) => `${c.id} ${c.asyncAnswers}`).join(", ")} requests.`,
      "",
    );
  }
  return {
    summary: [
      `In-process pipeline / raw primitive, exchange dialects (worst of ${targeted.length} cases, median of per-batch ratios)`,
      `${fmt(worst.ratio)}× (${worst.c.scheme}, ${worst.c.request})${failing.length > 0 ? `; ${failing.length} of ${targeted.length} over` : ""}`,
      `≤ ${target}× each`,
      verdict(failing.length === 0),
    ],
    text,
  };
}

// --- report: benchmarks 5, 6 and 7 (rate limits) ---------------------------------------------

/** Element-wise a[i] − b[i]: the per-pair differences. */
function pairDiffs(a, b) {
  if (a.length !== b.length) throw new Error(`pair lists differ in length: ${a.length} vs ${b.length}`);
  return a.map((x, i) => x - b[i]);
}

/** "0.84 µs (p10–p90 −1.20–2.90)" */
function fmtDiff(diffs) {
  return `${fmt(median(diffs))} µs (p10–p90 ${fmt(quantile(diffs, 0.1))}–${fmt(quantile(diffs, 0.9))})`;
}

/** What the default limits are, and what the benchmarks raise them to. */
function limitsText(specs) {
  const windows = (ms) => (ms % 86_400_000 === 0 ? `${ms / 86_400_000} d` : ms % 60_000 === 0 ? `${ms / 60_000} min` : `${ms / 1000} s`);
  return `the limits a gateway started from a config without a \`limits\` section gets (\`DEFAULT_LIMITS\`, read through \`parseConfig\`: ${specs.map((s) => `\`${s.name}\` per ${s.scope} per ${windows(s.windowMs)}`).join(", ")}; default shield, no concurrency cap), each raised to ${BENCH_LIMIT.toExponential(0).replace("e+", "e")} units per window, so that every request takes the whole charge path and none is ever refused (10^9 per day would exceed the hot stores' exactness bound, limit × window < 2^53)`;
}

function limitsCostSection(result) {
  const { series, charged, specs, batches, batchSize, warmupBatches } = result;
  const get = pairDiffs(series.getLimits, series.getPlain);
  const post = pairDiffs(series.postLimits, series.postPlain);
  const added = median(get);
  const pass = added <= TARGETS.limitsAddedUs;
  return {
    summary: ["Added cost of limits, memory mode (GET, median of per-batch differences)", `${fmt(added)} µs/req`, `≤ ${TARGETS.limitsAddedUs} µs`, verdict(pass)],
    text: [
      "## 5. Added cost of limits, memory mode",
      "",
      `Two \`Portcullis\` cores built as in benchmark 1 (embedded stores, hot state in process memory, warm key cache): one without limits, one with ${limitsText(specs)}. Both verify freshly signed requests through \`core.verify\`, every one allowed (asserted), their own key's, generated untimed: ${batches} measured batches of ${batchSize} requests per core and request (after ${warmupBatches} warm-up batches); each core's run of a batch and the other core's run of the same kind of batch go back to back, in alternating order, and the figure is the difference per request within each pair (limits − no limits). The batches are smaller than benchmark 1's (a few milliseconds per side) so that a young-generation garbage collection, which on this heap takes several milliseconds and falls wherever the allocation limit is reached, lands in few pairs: the median then measures the requests' own work. The clock is frozen within a batch and steps one second between batches, as in benchmark 1. With limits, the final \`admit\` stage decides the replay claim and every charge in one call of the memory hot store (GCRA per charge, all or nothing).`,
      "",
      table(
        ["Request", "Limits charged (checked on every request of the first batch)", "No limits µs/req (median)", "With limits µs/req (median)", "Added per request, per-batch pairs", "Target", "Result"],
        [
          [
            "GET /api/v3/account (weight 20)",
            charged.GET ?? "n/a",
            fmt(median(series.getPlain)),
            fmt(median(series.getLimits)),
            fmtDiff(get),
            `≤ ${TARGETS.limitsAddedUs} µs`,
            verdict(pass),
          ],
          [
            "POST /api/v3/order (weight 1, tagged `order`)",
            charged.POST ?? "n/a",
            fmt(median(series.postPlain)),
            fmt(median(series.postLimits)),
            fmtDiff(post),
            "none (informational)",
            "–",
          ],
        ],
      ),
      "",
      `As a ratio (limits / no limits, per-batch pairs): GET ${fmtRatio(pairRatios(series.getLimits, series.getPlain))}, POST ${fmtRatio(pairRatios(series.postLimits, series.postPlain))}. The mean of the per-batch differences, which unlike the median spreads the pairs a garbage collection fell into over all of them (the collection's cost is mostly that of the live heap, not of the side that triggered it): GET ${fmt(mean(get))} µs, POST ${fmt(mean(post))} µs.`,
      "",
    ],
  };
}

function notRunSection(title, err) {
  return [title, "", `**NOT RUN: the private redis-server could not be started (${err instanceof Error ? err.message : String(err)}).**`, ""];
}

function roundTripSection(result, redisError) {
  const title = "## 6. Redis round trips per request";
  if (result === null) {
    return { failures: 1, summary: ["Redis round trips per request, Redis hot store with limits", "not run", `exactly ${TARGETS.redisRoundTrips}`, "**NOT RUN**"], text: notRunSection(title, redisError) };
  }
  const { phases, version } = result;
  const exact = (p) => p.scripts === p.requests * TARGETS.redisRoundTrips && p.hotTopLevel === p.requests * TARGETS.redisRoundTrips;
  const pass = phases.every(exact);
  return {
    failures: 0,
    summary: [
      "Redis round trips per request, Redis hot store with limits (EVAL + EVALSHA calls in Redis's commandstats / requests)",
      phases.map((p) => `${p.method} ${fmt(p.perRequest)} (${p.scripts} / ${p.requests})`).join("; "),
      `exactly ${TARGETS.redisRoundTrips}`,
      verdict(pass),
    ],
    text: [
      title,
      "",
      `A \`Portcullis\` core (embedded key store, real clock) with the same limits as benchmark 5 and a \`RedisHotStore\` (as \`hot.backend: "redis"\` opens one; key prefix \`${result.prefix}\`) connected to a **private redis-server** (Redis ${version}, a child process of the harness on a free loopback port, persistence off: nothing else runs on it, so its statistics are this count's alone) verifies ${phases[0]?.requests ?? 0} GET requests, then as many POST orders, one at a time, each freshly signed and allowed (asserted); the count starts right after the store's connection is ready, so the first request's script load (ioredis sends EVAL once per connection, then EVALSHA) is counted. Two counts from Redis itself, per phase:`,
      "",
      "- **INFO commandstats** before and after: the EVAL and EVALSHA calls are the admissions. commandstats also counts, under their own names, the commands a script runs (GET, SET…), and so does `total_commands_processed` on this Redis (an EVAL that runs three commands adds four); Redis 7.0's `CLIENT LIST` has no per-connection command count. So the second count:",
      "- **MONITOR**: Redis reports every command it runs with the address of the connection that sent it, or `lua` for a command a script ran. The hot store's connection is identified in `CLIENT LIST` (the one connection that is neither the measuring connection, named `bench-stats`, nor the monitor); its top-level commands are its round trips. A marker (PING) on the measuring connection separates the phases in the MONITOR stream.",
      "",
      table(
        ["Request", "Limits charged", "Requests", "EVAL + EVALSHA (commandstats)", "Per request", "Top-level commands of the hot store's connection (MONITOR)", "Other commands from it", "Commands run inside the script, per request", "Target", "Result"],
        phases.map((p) => [
          p.method === "GET" ? "GET /api/v3/account" : "POST /api/v3/order",
          p.charged ?? "n/a",
          String(p.requests),
          String(p.scripts),
          fmt(p.perRequest),
          `${p.hotTopLevel} (${p.hotCommands})`,
          p.hotOther === "" ? "none" : p.hotOther,
          p.scriptCommands,
          `exactly ${TARGETS.redisRoundTrips}`,
          verdict(exact(p)),
        ]),
      ),
      "",
      `Everything commandstats counted per phase: ${phases.map((p) => `${p.method}: ${p.deltaText}`).join("; ")}. Besides the hot store's connection, MONITOR saw only the measuring connection, taking its snapshots (${phases.map((p) => `${p.method} phase: ${p.otherConnections === "" ? "nothing" : p.otherConnections}`).join("; ")}).`,
      "",
    ],
  };
}

function limitsGatewaySection(result, redisError) {
  const title = "## 7. Gateway throughput: Redis hot store vs memory, with limits";
  if (result === null) {
    return {
      failures: 1,
      summary: ["Gateway throughput with limits, Redis hot store / memory", "not run", `≥ ${fmtPercent(TARGETS.redisOverMemory)}`, "**NOT RUN**"],
      text: notRunSection(title, redisError),
    };
  }
  const { runs, fixedRuns, fixedRate, rounds, seconds, warmupSeconds, primeSeconds, connections, primeFailures, redisVersion, prefix } = result;
  const series = (list, mode, field) => list.filter((r) => r.mode === mode).map((r) => r[field]);
  const ratios = pairRatios(series(runs, "redis-limits", "rps"), series(runs, "memory-limits", "rps"));
  const ratio = median(ratios);
  const failures = [...runs, ...fixedRuns].reduce((n, r) => n + failuresOf(r), primeFailures);
  const verdictText = failures > 0 ? "**INVALID**" : verdict(ratio >= TARGETS.redisOverMemory);
  const fixed = (mode, field) => series(fixedRuns, mode, field);
  const gatewayExtra = pairDiffs(fixed("redis-limits", "proxyCpuUs"), fixed("memory-limits", "proxyCpuUs"));
  const totalExtra = fixed("redis-limits", "proxyCpuUs").map((cpu, i) => cpu + fixed("redis-limits", "redisCpuUs")[i] - fixed("memory-limits", "proxyCpuUs")[i]);
  const spread = (xs) => `${fmt(median(xs), 1)} µs (p10–p90 ${fmt(quantile(xs, 0.1), 1)}–${fmt(quantile(xs, 0.9), 1)} µs)`;
  const text = [
    title,
    "",
    `The machinery of benchmark 2 (loopback, each server in its own process, autocannon in the parent: ${connections} connections, pipelining 1, every request \`GET /api/v3/account\` signed with a fresh nonce and the current time; a ${primeSeconds} s prime per server, then ${plural(rounds, "round")} each running both modes once in a rotating order, ${seconds} s per run after a ${warmupSeconds} s warm-up run), over two full-security gateways that differ only in where their hot state lives: **memory + limits** (${"`"}hot.backend: "memory"${"`"}) and **redis + limits** (a \`RedisHotStore\`, as \`hot.backend: "redis"\` opens one, prefix \`${prefix}\`), both with the limits of benchmark 5 (a GET is charged against \`ip-weight-1m\` and \`key-weight-1m\`, and its nonce is claimed, in one admission). Each gateway has its own key, and each is sent requests signed for it. Redis is a **private redis-server** (Redis ${redisVersion}, a child process of the harness, persistence off), on the same ${plural(availableParallelism(), "core")} as everything else: in Redis mode its CPU is part of what a request costs the machine. Its CPU time (INFO \`used_cpu_user\` + \`used_cpu_sys\`) and EVAL/EVALSHA calls are read before and after every measured run; the gateways count the requests they receive. Benchmark 2's full-security gateway is unchanged (no limits), for continuity.`,
    "",
    "### Throughput at full load",
    "",
    table(
      ["Ratio of req/s (median of per-round pairs)", "Value", "Target", "Result"],
      [["redis + limits / memory + limits", fmtPercentSpread(ratios), `≥ ${fmtPercent(TARGETS.redisOverMemory)}`, verdictText]],
    ),
    "",
    modeTable(runs, LIMIT_MODES, { redis: true }),
    "",
    "Redis CPU per request in memory mode is the idle server's housekeeping spread over the run's requests. EVAL + EVALSHA per request received slightly exceeds 1 when requests still in flight as a run ends were admitted after the gateway's count was read, or falls short of it the other way round; benchmark 6 has the exact count.",
    "",
    `### CPU per request at a fixed load (${fixedRate.rate} req/s)`,
    "",
    `${plural(fixedRate.rounds, "round")} of ${fixedRate.seconds} s per mode at a fixed ${fixedRate.rate} req/s. What the Redis hot store costs the gateway process per request, over the memory hot store: **${spread(gatewayExtra)}** (median of per-round differences); with the Redis server's own CPU added, ${spread(totalExtra)} per request.`,
    "",
    modeTable(fixedRuns, LIMIT_MODES, { redis: true }),
    "",
    "<details><summary>Every run</summary>",
    "",
    everyRunTable(runs, fixedRuns, fixedRate, { redis: true }),
    "",
    "</details>",
    "",
  ];
  if (failures > 0) {
    text.push(`**INVALID: ${failures} non-2xx answers, errors or timeouts were seen (a limit refusal, a replay or an unavailable hot store would be one); the figures above do not measure the intended work.**`, "");
  }
  return {
    failures,
    summary: ["Gateway throughput with limits, Redis hot store / memory (median of per-round ratios)", fmtPercent(ratio), `≥ ${fmtPercent(TARGETS.redisOverMemory)}`, verdictText],
    text,
  };
}

// --- report: benchmarks 8, 9 and 10 (sessions) ------------------------------------------------

function sessionCostSection(result) {
  const { series, batches, batchSize, warmupBatches } = result;
  const sessionRatios = pairRatios(series.session, series.key);
  const savedRatios = pairRatios(series.ed25519, series.edSession);
  const ratio = median(sessionRatios);
  const pass = ratio <= TARGETS.sessionOverHmac;
  const spread = (xs) => `${fmtRatio(xs)}`;
  return {
    summary: ["Session path / native HMAC key, in process (GET, median of per-batch ratios)", `${fmt(ratio)}×`, `≤ ${TARGETS.sessionOverHmac}×`, verdict(pass)],
    text: [
      "## 8. The session path, in process",
      "",
      `A \`Portcullis\` core as in benchmark 1 (embedded stores, warm key cache, no limits) with a session authority and two keys: an HMAC key and an Ed25519 key, which has logged on once (a session: the gateway's Ed25519 token as \`keyid\`, an HMAC secret derived for it). ${batches} measured batches (after ${warmupBatches} warm-up batches) of ${batchSize} GET requests signed with the HMAC key and as many signed with the session, then ${Math.max(10, Math.floor(batchSize / 10))} signed with the Ed25519 key itself and as many with its session; all freshly signed, untimed, and allowed (asserted); the sides of each pair back to back, in alternating order. A session request costs, besides what an HMAC key's costs: one Map lookup of its token (its Ed25519 signature was checked once, at its first request), the API key's status and epoch (field comparisons) and the session's logout check in the admission.`,
      "",
      table(
        ["Compared", "µs/req (median)", "Baseline µs/req (median)", "Ratio, per-batch pairs", "Target", "Result"],
        [
          ["session / HMAC API key", fmt(median(series.session)), fmt(median(series.key)), spread(sessionRatios), `≤ ${TARGETS.sessionOverHmac}×`, verdict(pass)],
          ["Ed25519 per request / the same key's session (what a session saves)", fmt(median(series.ed25519)), fmt(median(series.edSession)), spread(savedRatios), "none (informational)", "–"],
        ],
      ),
      "",
      "The second row is the in-process verification throughput an Ed25519 key gains from a session: the pipeline alone, without the HTTP work benchmark 9 includes.",
      "",
    ],
  };
}

/**
 * What benchmark 9's target would take on this machine, from the same run's full-load runs (the
 * ones its ratio comes from), CPU per request of proxy, upstream and load generator together:
 * `session`, a session request; `extra`, what per-request Ed25519 signatures add to one; `plain`,
 * a request through benchmark 2's plain proxy, which only forwards. Throughput on the saturated
 * machine goes roughly as the inverse of CPU per request, so the measured ratio is about
 * (session + extra) / session, and a gateway whose session requests cost no more than forwarding
 * would reach about (plain + extra) / plain: an estimate, not a bound.
 */
function sessionEstimate(sessionResult, gatewayResult) {
  const machine = (runs, mode) => median(runs.filter((r) => r.mode === mode).map((r) => r.proxyCpuUs + r.upstreamCpuUs + r.generatorCpuUs));
  const session = machine(sessionResult.runs, "ed25519-session");
  const extra = machine(sessionResult.runs, "ed25519-per-request") - session;
  const plain = machine(gatewayResult.runs, "plain-proxy");
  return { session, extra, plain, ratio: (plain + extra) / plain };
}

function sessionGatewaySection(result, gatewayResult) {
  const { runs, fixedRuns, fixedRate, rounds, seconds, warmupSeconds, primeSeconds, connections, primeFailures } = result;
  const series = (list, mode, field) => list.filter((r) => r.mode === mode).map((r) => r[field]);
  const ratios = pairRatios(series(runs, "ed25519-session", "rps"), series(runs, "ed25519-per-request", "rps"));
  const ratio = median(ratios);
  const failures = [...runs, ...fixedRuns].reduce((n, r) => n + failuresOf(r), primeFailures);
  const verdictText = failures > 0 ? "**INVALID**" : verdict(ratio >= TARGETS.sessionOverEd25519);
  const cpu = (mode) => median(series(fixedRuns, mode, "proxyCpuUs"));
  const gen = (mode) => median(series(fixedRuns, mode, "generatorCpuUs"));
  const estimate = sessionEstimate(result, gatewayResult);
  const text = [
    "## 9. Gateway throughput for an Ed25519 key: a session against per-request signatures",
    "",
    `Benchmark 2's machinery (loopback, each server in its own process, autocannon in the parent: ${connections} connections, pipelining 1; a ${primeSeconds} s prime, then ${plural(rounds, "round")} of both modes in a rotating order, ${seconds} s per run after a ${warmupSeconds} s warm-up run) over ONE full-security gateway with sessions and an Ed25519 key, no limits. **Ed25519 per request**: the load generator signs every \`GET /api/v3/account\` with the Ed25519 private key (node:crypto), the gateway verifies each. **Ed25519 key's session**: the load generator logged on once (POST /portcullis/v1/session, signed with the Ed25519 key) and signs every request with the session's HMAC secret. Both sides of the signature are real costs of the scheme: the client's signing and the gateway's verification.`,
    "",
    "### Throughput at full load",
    "",
    table(
      ["Ratio of req/s (median of per-round pairs)", "Value", "Target", "Result"],
      [["Ed25519 key's session / Ed25519 per request", fmtRatio(ratios), `≥ ${TARGETS.sessionOverEd25519}×`, verdictText]],
    ),
    "",
    modeTable(runs, SESSION_MODES),
    "",
    `### CPU per request at a fixed load (${fixedRate.rate} req/s)`,
    "",
    `What a per-request Ed25519 signature costs over the session, per request, at equal load: the gateway ${fmt(cpu("ed25519-per-request") - cpu("ed25519-session"), 1)} µs (${fmt(cpu("ed25519-per-request"), 1)} against ${fmt(cpu("ed25519-session"), 1)}), the load generator ${fmt(gen("ed25519-per-request") - gen("ed25519-session"), 1)} µs. On this machine one node:crypto Ed25519 verification costs several times an HMAC, but a forwarded request's HTTP work (parsing, the upstream round trip, writing both answers) costs more still and is the same in both modes, which bounds the end-to-end ratio far below the ratio of the signature costs (benchmark 8's second row).`,
    "",
    modeTable(fixedRuns, SESSION_MODES),
    "",
    "### What the target would take here",
    "",
    `An estimate from this run's full-load runs (CPU per request of proxy, upstream and load generator together), not a measurement: a session request costs the machine ${fmt(estimate.session, 1)} µs, and per-request Ed25519 signatures add ${fmt(estimate.extra, 1)} µs to it, ${fmt(estimate.extra / estimate.session, 2)} times a session request. A ${TARGETS.sessionOverEd25519}× ratio needs the per-request mode to cost ${TARGETS.sessionOverEd25519} times the session mode: the Ed25519 work would have to cost ${TARGETS.sessionOverEd25519 - 1} times a whole session request. A request through benchmark 2's plain proxy, which only forwards, costs ${fmt(estimate.plain, 1)} µs; a gateway whose session requests cost no more than that would reach about **${fmt(estimate.ratio)}×** here.`,
    "",
  ];
  if (failures > 0) text.push(`**INVALID: ${failures} non-2xx answers, errors or timeouts were seen; the figures above do not measure the intended work.**`, "");
  return { failures, summary: ["Gateway throughput, Ed25519 key with a session / per-request Ed25519 (median of per-round ratios)", `${fmt(ratio)}× (about ${fmt(estimate.ratio)}× for a gateway as cheap as forwarding)`, `≥ ${TARGETS.sessionOverEd25519}×`, verdictText], text };
}

function fanoutSection(result, redisError) {
  const title = "## 10. Revocation fan-out across three gateway processes";
  if (result === null) {
    return { failures: 1, summary: ["Revocation fan-out p99, 3 gateways over the Redis bus", "not run", `≤ ${TARGETS.fanoutP99Ms} ms`, "**NOT RUN**"], text: notRunSection(title, redisError) };
  }
  const { bus, poll, count, redisVersion } = result;
  const p99 = quantile(bus, 0.99);
  const pass = p99 <= TARGETS.fanoutP99Ms;
  const row = (name, xs) => [name, String(xs.length), fmt(median(xs), 1), fmt(quantile(xs, 0.9), 1), fmt(quantile(xs, 0.99), 1), fmt(Math.max(...xs), 1)];
  return {
    failures: 0,
    summary: ["Revocation fan-out p99, 3 gateways over the Redis bus (revoke acknowledged → refused elsewhere)", `${fmt(p99, 1)} ms`, `≤ ${TARGETS.fanoutP99Ms} ms`, verdict(pass)],
    text: [
      title,
      "",
      `Three \`portcullis start\` processes on one data directory (SQLite), each with the key cache of a real deployment (a key is served from the cache for a minute). ${count} keys, one after the other: each is used once at every gateway (so each has it cached), then revoked through the first gateway's admin API; from the moment the admin API answers, the other two gateways are each sent signed requests one at a time until one is refused (KEY_REVOKED); the figure is that time, per gateway (${2 * count} samples per mode; one probe takes about a millisecond, which is the resolution). **Redis bus**: hot state and the change bus on a private redis-server (Redis ${redisVersion}), the data directory polled only hourly, so only the bus can carry the revocation within the run. **Polling**: memory hot state, no bus, the data directory polled every 200 ms (the embedded default): the baseline.`,
      "",
      table(["Mode", "Samples", "p50 ms", "p90 ms", "p99 ms", "max ms"], [row("Redis bus", bus), row("polling (200 ms)", poll)]),
      "",
      table(["Figure", "Value", "Target", "Result"], [["p99 over the Redis bus", `${fmt(p99, 1)} ms`, `≤ ${TARGETS.fanoutP99Ms} ms`, verdict(pass)]]),
      "",
    ],
  };
}

// --- the whole report ------------------------------------------------------------------------

const HOW_TO_READ = [
  "## How to read this",
  "",
  "- Every figure is a comparison against a baseline measured **in the same run, on the same machine**, interleaved with it (A, B, A, B…), so the ratios mean more than the absolute numbers, which move with the machine and whatever else runs on it.",
  "- Each ratio is the **median of per-pair ratios**: each pair is the two variants measured back to back, so a slow spell of the machine lands on both sides of a pair. The p10–p90 range of the pairs shows how noisy the run was; when it straddles a target, rerun before concluding anything.",
  "- **Benchmark 1** is pure CPU inside one process: what the security pipeline costs per request compared with the one HMAC any verifier must compute. The per-stage table is measured with a clock read after every stage, which itself adds a little to every stage.",
  "- **Benchmark 2** is end to end over loopback, with the load generator, the proxy under test and the upstream sharing the machine's cores. Throughput is therefore bounded by the whole machine, not only by the proxy: a proxy that spends more CPU per request also takes CPU from the load generator and the upstream. The *CPU µs/req* columns show where the CPU went; note that on a saturated machine CPU per request also rises as throughput falls (fewer requests per event-loop wake-up and system call batch), so at full load they overstate the cost of the slower mode. The fixed-rate table compares CPU per request at equal load instead: the cleanest view of what full security costs the gateway process.",
  "- **Benchmark 3** reads the gateway's own `Server-Timing` header under load: the pipeline's share of a request's life in the real server, at 1 µs resolution.",
  "- **Benchmark 4** is benchmark 1 for every exchange dialect: the whole in-process pipeline against the raw primitive any verifier of that scheme must compute over the same bytes (an HMAC, or one signature verification), with the native figures of benchmark 1 as the reference row. A ratio near 1 means the pipeline adds little to an expensive primitive (public-key signatures); HMAC schemes have the least room, since their primitive costs a few microseconds.",
  "- **Benchmarks 1–4 run without limits**, as they did before limits existed; benchmarks 5–7 use the default limits of a configured gateway, raised so that no request is ever refused (a refusal would measure the wrong work, and is asserted or counted as a failure).",
  "- **Benchmark 5** is benchmark 1's method applied to limits: a core with limits against one without, pair by pair, in process. Its figure is a *difference* in µs per request, small next to the whole pipeline's cost, so single pairs scatter around it (more so when a garbage collection falls into one side): read the median with its p10–p90 range, and rerun when the median is close to the target.",
  "- **Benchmark 6** is a count, not a timing: how many commands the hot store's connection sends Redis per request, read from Redis's own statistics on a Redis that serves nothing else. It is exact, so it passes only at exactly one.",
  "- **Benchmark 7** is benchmark 2's method over two gateways with limits, one keeping its hot state in memory, one in Redis. The Redis server shares the machine's cores with the load generator, the upstream and the gateway, so the ratio includes the CPU Redis itself takes from them, as well as the round trip's latency; a Redis on its own host would cost the gateway's machine less.",
  "- **Benchmarks 8–10** are about sessions: 8 is benchmark 1's method on session-signed requests; 9 is benchmark 2's method on one gateway, an Ed25519 key signing every request against its session; 10 times how long a revocation takes to reach other gateway processes, which no single process can see, so it is measured from outside with probing requests.",
  "- The targets come from the issues: pipeline ≤ 4× raw HMAC; full security ≥ 85 % of pass-through throughput; each dialect's pipeline ≤ 4× its raw primitive; limits add ≤ 1 µs per request in memory mode; exactly 1 Redis round trip per request; Redis-mode throughput ≥ 70 % of memory mode's; the session path ≤ 1.5× the native HMAC scheme; an Ed25519 key's gateway throughput with sessions ≥ 5× with per-request signatures; revocation fan-out p99 ≤ 100 ms across 3 gateways; audit logging ≥ 50 000 entries/s on SQLite, and 1M entries verified in ≤ 10 s; policy evaluation with 100 rules ≤ 10 µs median; the behaviour model ≤ 5 µs per event and ≤ 2,048 bytes of state per key; the synchronous risk check ≤ 0.3 µs per request; under wrk, signed / pass-through CPU per request ≤ 1.3× and p99 ≤ 1.5×, event-loop delay p99 ≤ 1 ms at full load, nginx + the authorizer ≥ 1.5× the gateway alone's signed throughput. A missed target is reported as **FAIL**; the measurement is not tuned to pass.",
  "- **Benchmark 11** is about key custody, not speed per request: how long a KEK rotation takes to rewrap every stored data key (alone, and again while a core serves requests whose key loads race with it), how many of those requests failed (the target is none), what creating a key costs with each KEK provider, and a count of the HSM calls made during verified requests on warm keys (the target is none: decrypted secrets stay in the key cache). SoftHSM2 is a software token in the same process, so its figures are a floor for a network HSM's.",
  "- **Benchmark 12** measures the audit log: how many decision entries a second the group commit acknowledges on SQLite (fsynced, indexed), what handing each decision to the audit log adds to a request in process (paired batches, as in benchmark 5; the group commit itself is reported apart, per entry, since it runs after the request on the same event loop), and how fast `portcullis audit verify` checks a log. On a busy machine the CPU columns are steadier than the wall-clock ones.",
  "- **Benchmark 13** times the guard stage (per-key guardrails) on an order that passes every guardrail, and the operation and guard stages on a route that declares no operation (an upper bound: the pipeline skips both on one comparison), in tight loops; targets ≤ 2 µs and ≤ 0.3 µs.",
  "- **Benchmark 14** times the policy engine alone: `decide` of a compiled 100-rule policy on one withdrawal, meeting the catch-all after 99 withdrawal rules that each fail on a different condition, and matching the 50th. The velocity ledger (a database transaction per decided withdrawal) and the address-book read are outside the figure: they are store round trips, not evaluation.",
  "- **Benchmark 15** times the behaviour model alone, as the behaviour stage calls it off the request path: each decided request's event scored against its key's state and its account's, then folded into the account's, over 1,000 keys' seeded traffic in time order (most keys in their first day, so judged against their account: the costlier path); then the size of every encoded state (fixed by the format). Targets ≤ 5 µs per event and ≤ 2,048 bytes per key.",
  "- **Benchmark 16** times stage 11's synchronous risk check (the risk stage) on a key without a risk state and on a throttled one, in a tight loop; target ≤ 0.3 µs.",
  `- **Benchmark 17** gives the published latency figures: \`wrk\` (a separate C process, replaying pre-generated requests) against nginx as a reverse proxy (the external baseline) and a whole configured Portcullis, with CPU per request counted for the server processes only and the gateway's event-loop delay sampled inside it. Unlike benchmark 2, the load generator costs little and the same for every mode, so the ratios are the servers' own (see its section). Targets: signed / pass-through CPU per request ≤ ${WRK_TARGETS.cpuSignedOverPassThrough}×, signed p99 ≤ ${WRK_TARGETS.p99SignedOverPassThrough}× pass-through's, event-loop delay p99 ≤ ${WRK_TARGETS.loopDelayP99Ms} ms at full load, nginx + the Portcullis authorizer ≥ ${WRK_TARGETS.authorizerOverGateway}× the gateway alone's signed throughput. A row this machine or build cannot run (no wrk, no nginx, no authorizer mode or \`--workers\` in the build) is marked in bold in the table, never left out silently.`,
  `- **Benchmark 18** times cold-key lookups in PostgreSQL: a schema filled with ${PG_BENCH_SETTINGS.full.keys.toLocaleString("en-US")} keys shaped like real ones (each with its own sealed secret), then lookups of ids never read before, so no application cache answers them — the row (\`keys.get\`, the target: p99 ≤ ${PG_TARGETS.coldLookupP99Ms} ms) and a key-cache miss as stage 4 takes it (the row, the secret's envelope opened, the key compiled) — at concurrency ${PG_BENCH_SETTINGS.full.concurrencies.join(" and ")}. *Warm* runs start with the table and its indexes in memory (PostgreSQL's shared buffers and the OS page cache), as on a server whose RAM holds its keys; *first-touch* runs start on a restarted private server whose files were evicted from the page cache, and are informational (they measure the storage). PostgreSQL's own block counters say, per run, what its buffer cache held. Unlike the other benchmarks these are absolute latencies, not ratios: they move with the machine's load (the 1-minute load average is in the table).`,
  `- **Benchmark 19** is benchmark 17's signed row against two whole gateways in the same run, one on the embedded stores (SQLite + memory) and one on the production stores (PostgreSQL + Redis, both private servers on the same machine); the target is the production gateway's throughput ≥ ${STORE_WRK_TARGETS.pgRedisOverEmbedded}× the embedded one's (median of per-round ratios). Its CPU per request counts PostgreSQL's and Redis's processes too, which here share the gateway's cores: on their own hosts they would not take CPU from it.`,
  `- **Benchmark 20** times the operator console's keys table request, \`GET /portcullis/v1/keys?limit=50\` (first page, a later page, and q searches, including ones that match few keys and so look at every key), through a real admin API over HTTP with ${CONSOLE_BENCH_SETTINGS.full.keys.toLocaleString("en-US")} keys on SQLite and on PostgreSQL, target p95 ≤ ${CONSOLE_TARGETS.keyListP95Ms} ms for every kind; and the console's first load, the JavaScript its index.html fetches, gzip-compressed as the admin listener serves it, target ≤ ${CONSOLE_TARGETS.firstLoadGzipBytes / 1000} KB ("not built" when packages/console/dist is absent).`,
  `- **Benchmark 21** times an agent key's request (docs/wallets.md) against a plain Ed25519 key's, on the same route in the same in-process core, batches interleaved; an agent adds the key stage's check of its chain (a key-cache lookup per key above it). Target: agent / plain ≤ ${AGENT_TARGETS.agentOverPlain}× (median of per-batch ratios), for an approved agent and for one delegated to.`,
  "- `--quick` runs are smoke tests of the harness; their figures are not meant to be read.",
  "",
];

function report({ started, elapsedS, quick, write, pipeline, gateway, dialects, limitsCost, roundTrips, limitsGateway, sessionCost, sessionGateway, fanout, custody, audit, guardrails, policy, behaviour, risk, wrk, pgLookup, storeWrk, consoleBench, agents, sealed, host }) {
  const command = `npm run bench${write ? " -- --write" : ""}${quick ? (write ? " --quick" : " -- --quick") : ""}`;
  return [
    "# Portcullis benchmarks",
    "",
    `Generated by \`${command}\` (\`bench/run.js\`); regenerate with \`npm run bench -- --write\`. To run without touching this file: \`npm run bench\`.`,
    "",
    table(
      ["", ""],
      [
        ["Command", `\`${command}\``],
        ["Date", started.toISOString()],
        ["CPU", `${host.cpu}, ${host.cores} cores available`],
        ["Memory", `${fmt(host.memoryGiB, 1)} GiB`],
        ["OS", host.kernel],
        ["Node", host.node],
        ["Run", `${quick ? "**quick (smoke test, not meaningful)**" : "full"}, ${fmt(elapsedS, 0)} s`],
      ],
    ),
    "",
    "## Summary",
    "",
    table(["Benchmark", "Figure", "Target", "Result"], [
      pipeline.summary,
      gateway.summary,
      dialects.summary,
      limitsCost.summary,
      roundTrips.summary,
      limitsGateway.summary,
      sessionCost.summary,
      sessionGateway.summary,
      fanout.summary,
      custody.summary,
      ...audit.summary,
      ...guardrails.summary,
      ...policy.summary,
      ...behaviour.summary,
      ...risk.summary,
      ...wrk.summary,
      ...pgLookup.summary,
      ...storeWrk.summary,
      ...consoleBench.summary,
      ...agents.summary,
      ...sealed.summary,
    ]),
    "",
    ...HOW_TO_READ,
    ...pipeline.text,
    ...gateway.text,
    ...dialects.text,
    ...limitsCost.text,
    ...roundTrips.text,
    ...limitsGateway.text,
    ...sessionCost.text,
    ...sessionGateway.text,
    ...fanout.text,
    ...custody.text,
    ...audit.text,
    ...guardrails.text,
    ...policy.text,
    ...behaviour.text,
    ...risk.text,
    ...wrk.text,
    ...pgLookup.text,
    ...storeWrk.text,
    ...consoleBench.text,
    ...agents.text,
    ...sealed.text,
  ].join("\n");
}

async function main() {
  const args = new Set(process.argv.slice(2));
  for (const arg of args) {
    if (arg !== "--quick" && arg !== "--write") throw new Error(`unknown option ${arg} (use --quick and/or --write)`);
  }
  const quick = args.has("--quick");
  const write = args.has("--write");
  const settings = quick ? SETTINGS.quick : SETTINGS.full;
  const started = new Date();
  const t0 = performance.now();

  progress(`benchmark 1: in-process pipeline vs raw HMAC (${settings.pipeline.batches} batches)`);
  const pipelineResult = await runPipelineBench({ ...settings.pipeline, progress });
  progress(`benchmark 2: gateway throughput (${settings.gateway.rounds} rounds of ${MODES.length} modes)`);
  const gatewayResult = await runGatewayBench({ ...settings.gateway, progress });
  progress("benchmark 4: in-process verification by exchange dialect");
  const dialectResult = await runDialectBench({ ...settings.dialects, progress });
  progress(`benchmark 5: added cost of limits, memory mode (${settings.limits.cost.batches} batches)`);
  const limitsCostResult = await runLimitsCostBench({ ...settings.limits.cost, progress });

  progress(`benchmark 8: the session path in process (${settings.sessions.cost.batches} batches)`);
  const sessionCostResult = await runSessionCostBench({ ...settings.sessions.cost, progress });
  progress(`benchmark 9: gateway throughput, Ed25519 key with a session vs per request (${settings.sessions.gateway.rounds} rounds)`);
  const sessionGatewayResult = await runSessionGatewayBench({ ...settings.sessions.gateway, progress });

  // Benchmarks 6, 7 and 10 run against a private redis-server, stopped when they are done.
  let roundTripResult = null;
  let limitsGatewayResult = null;
  let fanoutResult = null;
  let redisError = null;
  let redis = null;
  try {
    redis = await startPrivateRedis();
  } catch (err) {
    redisError = err;
    progress(`benchmarks 6 and 7 not run: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (redis !== null) {
    try {
      progress(`benchmark 6: redis round trips per request (redis ${redis.version} on port ${redis.port})`);
      roundTripResult = await runRoundTripCount({ redis, ...settings.limits.roundTrips, progress });
      progress(`benchmark 7: gateway throughput with limits, redis vs memory (${settings.limits.gateway.rounds} rounds of ${LIMIT_MODES.length} modes)`);
      limitsGatewayResult = await runLimitsGatewayBench({ redis, ...settings.limits.gateway, progress });
      progress(`benchmark 10: revocation fan-out across 3 gateway processes (${settings.sessions.fanout.count} keys per mode)`);
      fanoutResult = await runFanoutBench({ redis, ...settings.sessions.fanout, progress });
    } finally {
      await redis.stop();
    }
  }

  progress("benchmark 11: key custody (KEK rotation under load, key creation, HSM calls per request)");
  const custody = custodySection(await runCustodyBench({ ...settings.custody, progress }));
  progress("benchmark 12: the audit log (decision logging, request-path cost, verification)");
  const auditResult = await runAuditBench({ ...settings.audit, progress });
  const guardrailsResult = runGuardrailsBench({ ...settings.guardrails, progress });
  progress("benchmark 14: policy evaluation, 100 rules");
  const policyResult = await runPolicyBench({ ...settings.policy, progress });
  progress("benchmark 15: the behaviour model, 1,000 keys");
  const behaviourResult = runBehaviourBench({ ...settings.behaviour, progress });
  const riskResult = runRiskBench({ ...settings.risk, progress });
  progress(`benchmark 17: latency under wrk, nginx as the baseline (${settings.wrk.rounds} rounds)`);
  const wrk = wrkSection(await runWrkBench({ ...settings.wrk, progress }));
  progress(`benchmark 18: cold-key lookups, ${settings.pgLookup.keys.toLocaleString("en-US")} keys in PostgreSQL`);
  const pgLookup = pgLookupSection(await runPgLookupBench({ ...settings.pgLookup, progress }).catch((err) => ({ error: err instanceof Error ? err.message : String(err) })));
  progress(`benchmark 19: signed throughput under wrk, PostgreSQL + Redis vs SQLite + memory (${settings.storeWrk.rounds} rounds)`);
  const storeWrk = storeWrkSection(await runStoreWrkBench({ ...settings.storeWrk, progress }));
  progress(`benchmark 20: the operator console (the keys list with ${settings.console.keys.toLocaleString("en-US")} keys, the first load)`);
  const consoleBench = consoleSection(await runConsoleBench({ ...settings.console, progress }));
  progress(`benchmark 21: agent keys against a plain Ed25519 key (${settings.agents.batches} batches)`);
  const agents = agentSection(await runAgentBench({ ...settings.agents, progress }));
  progress("benchmark 22: sealed orders (HPKE), sealed vs unsealed");
  const sealed = sealedSection(await runSealedBench({ ...settings.sealed, progress }));

  const pipeline = pipelineSection(pipelineResult);
  const gateway = gatewaySection(gatewayResult);
  const dialects = dialectSection(dialectResult, pipelineResult);
  const limitsCost = limitsCostSection(limitsCostResult);
  const roundTrips = roundTripSection(roundTripResult, redisError);
  const limitsGateway = limitsGatewaySection(limitsGatewayResult, redisError);
  const sessionCost = sessionCostSection(sessionCostResult);
  const sessionGateway = sessionGatewaySection(sessionGatewayResult, gatewayResult);
  const fanout = fanoutSection(fanoutResult, redisError);
  const text = report({
    started,
    elapsedS: (performance.now() - t0) / 1000,
    quick,
    write,
    pipeline,
    gateway,
    dialects,
    limitsCost,
    roundTrips,
    limitsGateway,
    sessionCost,
    sessionGateway,
    fanout,
    custody,
    audit: auditSection(auditResult),
    guardrails: guardrailsSection(guardrailsResult),
    policy: policySection(policyResult),
    behaviour: behaviourSection(behaviourResult),
    risk: riskSection(riskResult),
    wrk,
    pgLookup,
    storeWrk,
    consoleBench,
    agents,
    sealed,
    host: machine(),
  });
  process.stdout.write(`${text}\n`);
  if (write) {
    writeFileSync(BENCHMARKS_MD, `${text}\n`);
    progress(`wrote ${BENCHMARKS_MD}`);
  }
  if (gateway.failures + roundTrips.failures + limitsGateway.failures + sessionGateway.failures + fanout.failures + custody.failures + wrk.failures + pgLookup.failures + storeWrk.failures + consoleBench.failures + sealed.failures > 0) process.exitCode = 1;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
