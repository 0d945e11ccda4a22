/**
 * Benchmark 19: gateway throughput on PostgreSQL + Redis against the embedded mode (SQLite +
 * memory), issue 17's "≥ 90 %". Benchmark 17's signed row (bench/wrk-bench.js), run against two
 * whole configured gateways in the same run:
 *
 *   embedded   `portcullis start` over a fresh data directory: SQLite (its durable writer thread
 *              in the gateway process), hot state in process memory;
 *   pg-redis   the same config with `store: { backend: "postgres", … }` on a data directory made
 *              for it (its store.json, as `portcullis init --store URL --schema S` makes one) and
 *              `hot: { backend: "redis", … }`: durable state in PostgreSQL, hot state in Redis;
 *   sqlite-redis, pg-memory
 *              the two halves, informational: which of the two stores costs what.
 *
 * Both are servers.js `wrk-gateway` processes with benchmark 17's routes and limits (every limit
 * counted, none refusing), the audit log and the behaviour stage on their defaults, in front of
 * the same upstream. wrk (one thread, `connections` connections, loopback) replays native RFC 9421
 * HMAC-signed GETs pre-generated just before each run, each sent once (wrk-bench.js `runWrk`).
 * Every answer other than 2xx, socket error, timeout or a run that used up its file is a failure.
 *
 * PostgreSQL and Redis are private (bench/postgres-server.js, bench/redis-server.js), so that
 * their CPU is this benchmark's alone and can be counted: *CPU per request* is the gateway
 * process's (over IPC) and, for a mode on them, also PostgreSQL's (every process of the private
 * server, from /proc) and redis-server's (its own INFO) over the measured run, divided by the requests wrk
 * completed. Without server binaries PostgreSQL is the shared one (PORTCULLIS_BENCH_POSTGRES_URL,
 * a schema of its own, dropped afterwards) and its CPU is not counted (said in the report).
 *
 * `rounds` rounds, each running every mode once in a rotating order, each measured run after a
 * discarded warm-up run; before the first round each gateway is primed. The ratio is taken per
 * round (pg-redis / embedded requests per second), and its median is judged.
 *
 * Run alone: `node bench/pg-wrk-bench.js [--quick]` (after `npm run build`).
 */
import { Buffer } from "node:buffer";
import { createSecretKey, randomBytes } from "node:crypto";
import { accessSync, constants as fsConstants, mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { serverSet } from "./gateway-bench.js";
import { startPrivateRedis } from "./redis-server.js";
import { postgresBinDir, startPrivatePostgres } from "./postgres-server.js";
import { FALLBACK_URL } from "./pg-bench.js";
import { RequestSigner, SCOPES } from "./signing.js";
import { WRK_BIN, gatewaySections, rawHttpRequest, requestsFor, runWrk } from "./wrk-bench.js";
import { ask, processCpu } from "./ipc.js";
import { cpuBetween, treeCpu } from "./proc.js";
import { fmt, median, quantile, table } from "./stats.js";

export const STORE_WRK_TARGETS = {
  /** Signed throughput on PostgreSQL + Redis at least this share of the embedded mode's (SQLite + memory). */
  pgRedisOverEmbedded: 0.9,
};

export const STORE_WRK_SETTINGS = {
  full: { rounds: 5, seconds: 3, warmupSeconds: 1, primeSeconds: 2, connections: 32 },
  quick: { rounds: 1, seconds: 1, warmupSeconds: 1, primeSeconds: 1, connections: 32 },
};

export const STORE_WRK_MODES = ["embedded", "pg-redis", "sqlite-redis", "pg-memory"];

/** Each mode's stores. */
export const STORE_WRK_STORES = {
  embedded: { store: "sqlite", hot: "memory" },
  "pg-redis": { store: "postgres", hot: "redis" },
  "sqlite-redis": { store: "sqlite", hot: "redis" },
  "pg-memory": { store: "postgres", hot: "memory" },
};

export const STORE_WRK_LABEL = {
  embedded: "embedded: SQLite + memory",
  "pg-redis": "production: PostgreSQL + Redis",
  "sqlite-redis": "SQLite + Redis (informational)",
  "pg-memory": "PostgreSQL + memory (informational)",
};

/** The benchmark's key: as benchmark 17's native key (freshness window long enough for a file). */
const KEY_INPUT = { account: "bench", scopes: SCOPES, windowMs: 15_000 };
/** What the first file holds per second of run: more than either mode reaches here. */
const FIRST_RATE = 15_000;
/** The schema of the production gateway's store. */
const SCHEMA = "portcullis_bench_gw";
/** A request signed before the private Redis's replay memory began (plus the clock allowance) is fenced (bench/core.js pastFence). */
const REDIS_FENCE_MS = 2_500;

/** Native RFC 9421 HMAC GETs, as benchmark 17 signs them: `make(n)` signs n now, each with its own nonce. */
export function nativeRequests(keyId, secret) {
  const signer = new RequestSigner(keyId, createSecretKey(Buffer.from(secret, "utf8")));
  return (n) => {
    const created = Math.floor(Date.now() / 1000);
    const out = new Array(n);
    for (let i = 0; i < n; i++) out[i] = rawHttpRequest(signer.sign("GET", created));
    return out;
  };
}

/** The production gateway's config sections: benchmark 17's, on `store` and `hot`. */
export function productionSections({ postgresUrl, schema = SCHEMA, redisUrl, poolSize = 10, prefix = "pcbench:" }) {
  return modeSections({ store: "postgres", hot: "redis" }, { postgresUrl, schema, redisUrl, poolSize, prefix });
}

/** A mode's config sections: benchmark 17's, with a PostgreSQL `store` and a Redis `hot` section where the mode has them. */
export function modeSections(stores, { postgresUrl, schema = SCHEMA, redisUrl, poolSize = 10, prefix = "pcbench:" }) {
  return gatewaySections({
    ...(stores.store === "postgres" ? { store: { backend: "postgres", url: postgresUrl, schema, poolSize } } : {}),
    ...(stores.hot === "redis" ? { hot: { backend: "redis", url: redisUrl, prefix } } : {}),
  });
}

function executable(file) {
  try {
    accessSync(file, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs benchmark 19. Returns `{ settings, notRun, notes, runs, primeFailures }`: `notRun` says why
 * nothing ran (or null); `runs` lists every measured run.
 */
export async function runStoreWrkBench({ rounds, seconds, warmupSeconds, primeSeconds, connections, progress = () => undefined }) {
  const settings = { rounds, seconds, warmupSeconds, primeSeconds, connections };
  const notes = [];
  if (!executable(WRK_BIN)) return { settings, notRun: `wrk not found at ${WRK_BIN} (apt-get install wrk, or set PORTCULLIS_BENCH_WRK)`, notes, runs: [], primeFailures: 0 };
  let redis = null;
  let postgres = null;
  let sharedSchema = null;
  const sharedSchemas = [];
  const set = serverSet();
  const dir = mkdtempSync(join(tmpdir(), "portcullis-bench-pgwrk-"));
  try {
    try {
      redis = await startPrivateRedis();
    } catch (err) {
      return { settings, notRun: `no private redis-server: ${err instanceof Error ? err.message : String(err)}`, notes, runs: [], primeFailures: 0 };
    }
    const redisStarted = Date.now();
    let postgresUrl;
    if (postgresBinDir() !== null) {
      postgres = await startPrivatePostgres();
      postgresUrl = postgres.url;
      notes.push(`PostgreSQL ${postgres.version}: a private server (bench/postgres-server.js), default settings; its CPU is counted`);
    } else {
      sharedSchema = `pcbench_gw_${randomBytes(6).toString("hex")}`;
      postgresUrl = FALLBACK_URL;
      notes.push(`**PostgreSQL: the shared server at ${FALLBACK_URL} (no server binaries for a private one); its CPU is not counted**`);
    }
    notes.push(`Redis ${redis.version}: a private redis-server (bench/redis-server.js), persistence off; its CPU is counted`);

    const upstream = await set.start(["upstream"]);
    const origin = `http://127.0.0.1:${upstream.info.port}`;
    const keyOf = async (server) => {
      const { keys } = await ask(server.child, { createKeys: [KEY_INPUT] });
      return nativeRequests(keys[0].id, keys[0].secret);
    };
    const running = postgres;
    const servers = {};
    for (const [i, mode] of STORE_WRK_MODES.entries()) {
      const stores = STORE_WRK_STORES[mode];
      // Each gateway its own schema and key prefix: they share the two servers, not their data.
      const schema = `${sharedSchema ?? SCHEMA}_${i}`;
      if (stores.store === "postgres" && sharedSchema !== null) sharedSchemas.push(schema);
      let server;
      try {
        server = await set.start(["wrk-gateway", origin, JSON.stringify(modeSections(stores, { postgresUrl, schema, redisUrl: redis.url, prefix: `pcbench${i}:` }))]);
      } catch {
        // Its own error went to stderr (a build whose data directories cannot be on PostgreSQL yet says so there).
        if (mode === "embedded" || mode === "pg-redis") return { settings, notRun: `the ${STORE_WRK_LABEL[mode]} gateway did not start (its error is in the run's standard error)`, notes, runs: [], primeFailures: 0 };
        notes.push(`**${STORE_WRK_LABEL[mode]}: did not start (its error is in the run's standard error); not measured**`);
        continue;
      }
      const child = server.child;
      servers[mode] = {
        port: server.info.port,
        make: await keyOf(server),
        cpu: async () => ({
          gateway: (await processCpu(child)).cpu,
          postgres: stores.store === "postgres" && running !== null ? treeCpu(running.pid()) : null,
          redis: stores.hot === "redis" ? await redis.stats.cpuUs() : null,
        }),
      };
    }
    const modes = STORE_WRK_MODES.filter((m) => servers[m] !== undefined);
    const wait = redisStarted + REDIS_FENCE_MS - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));

    const reached = Object.fromEntries(modes.map((m) => [m, FIRST_RATE]));
    const load = async (mode, runSeconds) => {
      const s = servers[mode];
      const run = await runWrk({ dir, port: s.port, requests: s.make(requestsFor(reached[mode], runSeconds)), cycle: false, seconds: runSeconds, connections });
      reached[mode] = Math.max(reached[mode], run.rps);
      return { ...run, failures: run.failures + run.overflow };
    };
    let primeFailures = 0;
    for (const mode of modes) {
      const prime = await load(mode, primeSeconds);
      primeFailures += prime.failures;
      reached[mode] = Math.max(prime.rps, 1000);
      progress(`benchmark 19: primed ${mode}: ${Math.round(prime.rps)} req/s, failures ${prime.failures}`);
    }
    const runs = [];
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < modes.length; i++) {
        const mode = modes[(i + round) % modes.length];
        const s = servers[mode];
        const warmup = await load(mode, warmupSeconds);
        const before = await s.cpu();
        const run = await load(mode, seconds);
        const after = await s.cpu();
        const per = (us) => us / run.requests;
        const cpu = {
          gateway: per(after.gateway - before.gateway),
          postgres: after.postgres === null ? null : per(cpuBetween(before.postgres, after.postgres)),
          redis: after.redis === null ? null : per(after.redis - before.redis),
        };
        const total = cpu.gateway + (cpu.postgres ?? 0) + (cpu.redis ?? 0);
        runs.push({ round, mode, ...run, cpu, cpuUs: total, load1: loadavg()[0], warmupFailures: warmup.failures });
        progress(`benchmark 19: round ${round + 1}/${rounds} ${mode}: ${Math.round(run.rps)} req/s, p99 ${fmt(run.p99, 2)} ms, CPU ${fmt(total, 1)} µs/req (gateway ${fmt(cpu.gateway, 1)}), failures ${run.failures + warmup.failures}, load ${fmt(loadavg()[0], 2)}`);
      }
    }
    return { settings, notRun: null, notes, runs, primeFailures };
  } finally {
    await set.stopAll();
    if (sharedSchemas.length > 0) {
      const client = new pg.Client({ connectionString: FALLBACK_URL });
      client.on("error", () => undefined);
      await client.connect().then(
        async () => {
          for (const schema of sharedSchemas) await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
        },
        () => undefined,
      );
      await client.end().catch(() => undefined);
    }
    if (postgres !== null) await postgres.stop();
    if (redis !== null) await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

// --- report ------------------------------------------------------------------------------

const verdict = (pass) => (pass ? "**PASS**" : "**FAIL**");
const spread = (list, decimals = 2) => `${fmt(median(list), decimals)}× (p10–p90 ${fmt(quantile(list, 0.1), decimals)}–${fmt(quantile(list, 0.9), decimals)})`;

/** Per-round ratios a/b of `pick(run)` between two modes (rounds where both ran). */
function roundRatios(runs, a, b, pick) {
  const out = [];
  for (const ra of runs.filter((r) => r.mode === a)) {
    const rb = runs.find((r) => r.mode === b && r.round === ra.round);
    if (rb !== undefined) out.push(pick(ra) / pick(rb));
  }
  return out;
}

/** The section of BENCHMARKS.md: `{ summary: rows, text: lines, failures }`. */
export function storeWrkSection(result) {
  const heading = "## 19. Gateway throughput on PostgreSQL + Redis against the embedded mode";
  const label = "Signed throughput, PostgreSQL + Redis / embedded (SQLite + memory), under wrk (benchmark 19)";
  const bound = `≥ ${STORE_WRK_TARGETS.pgRedisOverEmbedded}×`;
  if (result.notRun !== null) {
    return { failures: 0, summary: [[label, "**NOT RUN**", bound, `**NOT RUN: ${result.notRun}**`]], text: [heading, "", `**NOT RUN on this machine: ${result.notRun}.** None of this benchmark's figures were measured.`, ""] };
  }
  const { settings, notes, runs } = result;
  const failures = runs.reduce((n, r) => n + r.failures + r.warmupFailures, 0) + result.primeFailures;
  const of = (mode) => runs.filter((r) => r.mode === mode);
  const med = (mode, pick) => median(of(mode).map(pick));
  const ratios = roundRatios(runs, "pg-redis", "embedded", (r) => r.rps);
  const pass = median(ratios) >= STORE_WRK_TARGETS.pgRedisOverEmbedded;
  const part = (mode, name) => (of(mode).some((r) => r.cpu[name] !== null) ? fmt(med(mode, (r) => r.cpu[name] ?? Number.NaN), 1) : "–");
  const row = (mode) => [
    STORE_WRK_LABEL[mode],
    fmt(med(mode, (r) => r.rps), 0),
    fmt(med(mode, (r) => r.p50), 2),
    fmt(med(mode, (r) => r.p99), 2),
    fmt(med(mode, (r) => r.cpu.gateway), 1),
    part(mode, "postgres"),
    part(mode, "redis"),
    fmt(med(mode, (r) => r.cpuUs), 1),
    String(of(mode).reduce((n, r) => n + r.failures + r.warmupFailures, 0)),
  ];
  // The two halves, where they ran: what Redis alone and PostgreSQL alone cost.
  const halves = [
    ["sqlite-redis", "SQLite + Redis (Redis alone)"],
    ["pg-memory", "PostgreSQL + memory (PostgreSQL alone)"],
  ].filter(([mode]) => of(mode).length > 0);
  const summary = [
    [label, spread(ratios), bound, verdict(pass)],
    [
      "p99 latency, PostgreSQL + Redis / embedded, under wrk (benchmark 19)",
      spread(roundRatios(runs, "pg-redis", "embedded", (r) => r.p99)),
      "none (informational)",
      "–",
    ],
  ];
  const text = [
    heading,
    "",
    `Benchmark 17's signed row (native RFC 9421 HMAC-SHA256 GETs, pre-generated and each sent once by \`wrk\`: one thread, ${settings.connections} connections, loopback) against whole configured gateways with the same routes and limits, the audit log and the behaviour stage on their defaults, in front of the same upstream: one on the embedded stores (SQLite with its writer thread in the gateway process, hot state in memory), one on the production stores (a data directory on PostgreSQL, \`store.backend: "postgres"\`; \`hot.backend: "redis"\`) — and, to tell the two stores' costs apart, two more on one of each (SQLite + Redis, PostgreSQL + memory: informational). ${settings.rounds} round${settings.rounds === 1 ? "" : "s"}, each running every mode once in a rotating order, each measured run of ${settings.seconds} s after a discarded ${settings.warmupSeconds} s warm-up (and each gateway primed for ${settings.primeSeconds} s before the first round). Figures are medians over the rounds; the ratios are taken per round.`,
    "",
    ...notes.map((n) => `- ${n}`),
    "",
    `*CPU µs per request* is each process's CPU time (user + system) during the measured run divided by the requests wrk completed: the gateway process (its SQLite writer thread included) over IPC, and for a mode on PostgreSQL or Redis also every process of the PostgreSQL server (from \`/proc\`) or redis-server (its INFO); the gateways run one at a time, so what the servers spend in a run is that mode's. On this one machine PostgreSQL and Redis take their CPU from the same cores as the gateway, wrk and the upstream; on their own hosts they would not.`,
    "",
    table(["Mode", "req/s", "p50 ms", "p99 ms", "CPU µs/req: gateway", "PostgreSQL", "Redis", "all", "Failures (all runs)"], STORE_WRK_MODES.filter((m) => of(m).length > 0).map(row)),
    "",
    table(["Figure", "Median of per-round ratios", "Target", "Result"], [
      ["Signed throughput, PostgreSQL + Redis / embedded", spread(ratios), bound, verdict(pass)],
      ["p99 latency, PostgreSQL + Redis / embedded", spread(roundRatios(runs, "pg-redis", "embedded", (r) => r.p99)), "none (informational)", "–"],
      ["CPU µs per request (all server processes), PostgreSQL + Redis / embedded", spread(roundRatios(runs, "pg-redis", "embedded", (r) => r.cpuUs)), "none (informational)", "–"],
      ["CPU µs per request (the gateway process alone), PostgreSQL + Redis / embedded", spread(roundRatios(runs, "pg-redis", "embedded", (r) => r.cpu.gateway)), "none (informational)", "–"],
      ...halves.flatMap(([mode, what]) => [
        [`Signed throughput, ${what} / embedded`, spread(roundRatios(runs, mode, "embedded", (r) => r.rps)), "none (informational)", "–"],
        [`CPU µs per request (the gateway process alone), ${what} / embedded`, spread(roundRatios(runs, mode, "embedded", (r) => r.cpu.gateway)), "none (informational)", "–"],
      ]),
    ]),
    "",
    table(
      ["Round", "Mode", "req/s", "p50 ms", "p99 ms", "max ms", "CPU µs/req (all)", "Requests", "Failures", "Warm-up failures", "Load (1 min)"],
      runs.map((r) => [String(r.round + 1), STORE_WRK_LABEL[r.mode], fmt(r.rps, 0), fmt(r.p50, 2), fmt(r.p99, 2), fmt(r.max, 1), fmt(r.cpuUs, 1), String(r.requests), String(r.failures), String(r.warmupFailures), fmt(r.load1, 2)]),
    ),
    "",
  ];
  return { failures, summary, text };
}

// Alone: node bench/pg-wrk-bench.js [--quick]
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const quick = process.argv.includes("--quick");
  const progress = (line) => process.stderr.write(`${line}\n`);
  runStoreWrkBench({ ...(quick ? STORE_WRK_SETTINGS.quick : STORE_WRK_SETTINGS.full), progress }).then(
    (result) => {
      const section = storeWrkSection(result);
      process.stdout.write(`${table(["Benchmark", "Figure", "Target", "Result"], section.summary)}\n\n${section.text.join("\n")}\n`);
      if (section.failures > 0) process.exitCode = 1;
    },
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
