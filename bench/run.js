/**
 * The Portcullis benchmark harness: `npm run bench` (builds first, then runs this file).
 *
 *   node bench/run.js            full run (about three and a quarter minutes), Markdown report on stdout
 *   node bench/run.js --quick    short smoke run (figures are not meaningful)
 *   node bench/run.js --write    also rewrite BENCHMARKS.md with the report
 *
 * Progress goes to stderr. The exit code is 1 when a run saw a non-2xx answer or an error (the
 * figures are then invalid); a missed target is reported, not an error.
 *
 * Benchmarks (see BENCHMARKS.md for how to read them):
 *   1. the in-process pipeline against the raw HMAC-SHA256 of the same signature bases;
 *   2. gateway throughput, full security against pass-through and a plain node:http proxy;
 *   3. the per-stage breakdown a gateway with Server-Timing reports;
 *   4. each exchange dialect's in-process pipeline against the raw primitive (HMAC or signature
 *      verification) of the same bytes, beside the native scheme's figures from benchmark 1.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, release, totalmem } from "node:os";
import { performance } from "node:perf_hooks";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { runDialectBench } from "./dialect-bench.js";
import { MODES, runGatewayBench } from "./gateway-bench.js";
import { runPipelineBench } from "./pipeline-bench.js";
import { fmt, fmtPercent, fmtRatio, mean, median, pairRatios, quantile, table } from "./stats.js";

const TARGETS = {
  /** Median pipeline cost at most this many times the raw HMAC of the same base. */
  pipelineOverHmac: 4,
  /** Full-security throughput at least this share of pass-through. */
  fullOverPassThrough: 0.85,
  /** Each dialect's median pipeline cost at most this many times its raw primitive of the same bytes. */
  dialectOverPrimitive: 4,
};

const SETTINGS = {
  full: {
    pipeline: { batches: 150, batchSize: 2000, warmupBatches: 5 },
    gateway: {
      rounds: 5,
      seconds: 5,
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
  const stageTotal = stageMeans.reduce((a, b) => a + b, 0);
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
      `A \`Portcullis\` core with the embedded stores (SQLite in a temporary data directory, replay protection in memory) and a warm key cache verifies freshly signed requests through \`core.verify\`; every request is allowed (asserted). The baseline is \`createHmac("sha256", secretBytes).update(base).digest()\` over the same batch's signature bases, the one step no verifier can skip. ${batches} measured batches of ${batchSize} requests each (after ${warmupBatches} warm-up batches), each pre-generated untimed with unique nonces and flat header strings; the two sides of each pair run back to back, in alternating order. Figures are per request.`,
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

const MODE_LABEL = { full: "full security", "pass-through": "pass-through", "plain-proxy": "plain proxy" };

const failuresOf = (r) => r.non2xx + r.errors + r.timeouts + r.warmupNon2xx;

/** "78.1 % (p10–p90 70.2 %–84.0 %)" */
function fmtPercentSpread(ratios) {
  return `${fmtPercent(median(ratios))} (p10–p90 ${fmtPercent(quantile(ratios, 0.1))}–${fmtPercent(quantile(ratios, 0.9))})`;
}

/** The per-mode table: medians over a list of runs. */
function modeTable(runs) {
  return table(
    ["Mode", "req/s (median)", "p50 ms", "p99 ms", "Proxy CPU µs/req", "Upstream CPU µs/req", "Load generator CPU µs/req", "Non-2xx / errors (all runs)"],
    MODES.map((mode) => {
      const list = runs.filter((r) => r.mode === mode);
      const med = (field, decimals) => fmt(median(list.map((r) => r[field])), decimals);
      return [
        MODE_LABEL[mode],
        med("rps", 0),
        med("p50", 0),
        med("p99", 0),
        med("proxyCpuUs", 1),
        med("upstreamCpuUs", 1),
        med("generatorCpuUs", 1),
        String(list.reduce((n, r) => n + failuresOf(r), 0)),
      ];
    }),
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
    `Loopback only. An upstream (node:http answering a 174-byte JSON document), and three servers in front of it, each in its own process: the **full-security** gateway (\`Gateway\` + \`Forwarder\` + \`IdentitySigner\` over a \`Portcullis\` core, logs silent), the same gateway in **pass-through** mode (\`passThrough: true\`: forwards without the pipeline), and a **plain proxy** (node:http + an undici \`Pool\`, \`pool.stream\`, nothing else; bench/plain-proxy.js). autocannon runs in the parent process: ${connections} connections, pipelining 1. Every server is first primed with a ${primeSeconds} s run; then ${plural(rounds, "round")} each run every mode once, in a rotating order, ${seconds} s per run after a ${warmupSeconds} s warm-up run against the same server (prime and warm-up runs are discarded, but their non-2xx answers count as failures). Every request is \`GET /api/v3/account\`, signed in the load generator with a fresh nonce and the current time, in every mode: the same signed requests go to all three, and only the full gateway checks them.`,
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
    table(
      ["Load", "Round", "Mode", "req/s", "p50 ms", "p99 ms", "Proxy CPU µs/req", "Requests", "Non-2xx", "Errors", "Timeouts", "Warm-up failures"],
      [...runs.map((r) => ["full", r]), ...fixedRuns.map((r) => [`${fixedRate.rate} req/s`, r])].map(([load, r]) => [
        load,
        String(r.round + 1),
        MODE_LABEL[r.mode],
        fmt(r.rps, 0),
        String(r.p50),
        String(r.p99),
        fmt(r.proxyCpuUs, 1),
        String(r.total),
        String(r.non2xx),
        String(r.errors),
        String(r.timeouts),
        String(r.warmupNon2xx),
      ]),
    ),
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
  "- The targets come from the issues: pipeline ≤ 4× raw HMAC; full security ≥ 85 % of pass-through throughput; each dialect's pipeline ≤ 4× its raw primitive. A missed target is reported as **FAIL**; the measurement is not tuned to pass.",
  "- `--quick` runs are smoke tests of the harness; their figures are not meant to be read.",
  "",
];

function report({ started, elapsedS, quick, write, pipeline, gateway, dialects, host }) {
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
    table(["Benchmark", "Figure", "Target", "Result"], [pipeline.summary, gateway.summary, dialects.summary]),
    "",
    ...HOW_TO_READ,
    ...pipeline.text,
    ...gateway.text,
    ...dialects.text,
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

  const pipeline = pipelineSection(pipelineResult);
  const gateway = gatewaySection(gatewayResult);
  const dialects = dialectSection(dialectResult, pipelineResult);
  const text = report({
    started,
    elapsedS: (performance.now() - t0) / 1000,
    quick,
    write,
    pipeline,
    gateway,
    dialects,
    host: machine(),
  });
  process.stdout.write(`${text}\n`);
  if (write) {
    writeFileSync(BENCHMARKS_MD, `${text}\n`);
    progress(`wrote ${BENCHMARKS_MD}`);
  }
  if (gateway.failures > 0) process.exitCode = 1;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
