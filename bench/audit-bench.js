/**
 * Benchmark 12: the audit log (docs/audit.md).
 *
 * 8a. Sustained decision logging with group commit. An `AuditLog` with its default batching
 *     (commit 50 ms after the first waiting entry, or at once when 2000 wait; at most 2000 per
 *     transaction, an event-loop turn between transactions) on the SQLite store
 *     of a fresh data directory (WAL, synchronous=FULL: one fsync per group commit), fed decision
 *     entries shaped like the gateway's (key, account, client, route, request id, code…) 1000 at a
 *     time with one event-loop turn between chunks, as a server hands them over; the figure is
 *     entries acknowledged (committed: encoded, hashed, inserted with their query indexes) per
 *     second, from the first record to the last acknowledgement.
 *
 * 8b. The cost on the request path. Two cores built alike (benchmark 1's: embedded stores, no
 *     limits, warm key cache), one recording every decision (`audit.requests: "all"`), one none;
 *     each verifies freshly signed GETs and hands every context to `core.audit.decision` exactly
 *     as the gateway does, in paired batches in alternating order as in benchmark 5. The request
 *     path is the timed loop (pipeline + the hand-over); the group commit that follows each batch
 *     is timed apart and reported per entry (off the request path, on the same event loop).
 *
 * 8c. Verification speed. A log of `entries` decision entries (appended in 10k-entry
 *     transactions, checkpoint signed at the end) verified through the read-only path of
 *     `portcullis audit verify`: every hash recomputed, every entry parsed and checked against its
 *     query columns, every checkpoint signature checked.
 *
 * Run alone: `node bench/audit-bench.js [--quick]` (after `npm run build`) prints this section.
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import process from "node:process";
import { setImmediate as turn } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { Buffer } from "node:buffer";
import { AuditLog } from "../packages/portcullis/dist/audit/log.js";
import { verifyAudit } from "../packages/portcullis/dist/audit/verify.js";
import { EnvelopeSigningKeys } from "../packages/portcullis/dist/custody/signing.js";
import { initDataDir, openDataDir } from "../packages/portcullis/dist/index.js";
import { openAuditReadOnly } from "../packages/portcullis/dist/storage/sqlite/audit.js";
import { createBenchCore } from "./core.js";
import { generate } from "./pipeline-bench.js";
import { RequestSigner } from "./signing.js";
import { fmt, median, quantile, table } from "./stats.js";

export const AUDIT_TARGETS = {
  /** Sustained decision logging with group commit, entries per second. */
  entriesPerSecond: 50_000,
  /** Seconds to verify one million entries. */
  verifyMillionSeconds: 10,
};

export const AUDIT_BENCH_SETTINGS = {
  full: { throughput: { rounds: 5, entries: 200_000 }, cost: { batches: 600, batchSize: 250, warmupBatches: 30 }, verify: { entries: 1_000_000, rounds: 3 } },
  quick: { throughput: { rounds: 1, entries: 20_000 }, cost: { batches: 20, batchSize: 250, warmupBatches: 4 }, verify: { entries: 50_000, rounds: 1 } },
};

const KEY_IDS = Array.from({ length: 100 }, (_, i) => `pck_live_v1_${String(i).padStart(22, "0")}abcdef`);

/** A decision entry as the gateway builds one (decisionFields), distinct per `i`. */
function decisionEntry(i, at) {
  const denied = i % 10 === 0;
  const key = KEY_IDS[i % KEY_IDS.length];
  return {
    event: denied ? "request.deny" : "request.allow",
    at,
    actor: denied ? "anonymous" : `key:${key}`,
    key,
    account: `acct-${i % 20}`,
    subAccount: undefined,
    client: `203.0.113.${i % 250}`,
    surface: "gateway",
    requestId: `6c1f1e9a-8d7b-4c3e-9f1a-${String(i).padStart(12, "0")}`,
    method: "GET",
    path: "/api/v3/account",
    route: "GET /api/v3/account",
    scheme: "native",
    code: denied ? "SIGNATURE_INVALID" : undefined,
    status: denied ? 401 : undefined,
    timings: undefined,
    detail: undefined,
  };
}

/** This process's user + system CPU seconds since `start` (a process.cpuUsage() reading). */
function cpuSince(start) {
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1e6;
}

async function withDataDir(fn) {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-bench-audit-"));
  let data = null;
  try {
    await initDataDir(dir, "live");
    data = await openDataDir(dir);
    return await fn(data, dir);
  } finally {
    if (data !== null) await data.store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

// --- 8a ----------------------------------------------------------------------------------------

async function throughputRound(entries) {
  return withDataDir(async (data) => {
    let commits = 0;
    let acknowledged = 0;
    const log = new AuditLog({
      store: data.store.audit,
      signer: new EnvelopeSigningKeys(data.store, data.envelope),
      checkpointIntervalMs: 0,
      onCommit: (c) => {
        commits += 1;
        acknowledged += c.entries;
      },
    });
    const chunk = 1000;
    const cpu = process.cpuUsage();
    const start = performance.now();
    for (let i = 0; i < entries; i += chunk) {
      const at = Date.now();
      for (let j = i; j < Math.min(entries, i + chunk); j++) log.record(decisionEntry(j, at));
      await turn();
    }
    await log.flush();
    const seconds = (performance.now() - start) / 1000;
    const cpuSeconds = cpuSince(cpu);
    const stats = log.stats;
    await log.close();
    if (acknowledged !== entries || stats.committed !== entries || stats.dropped !== 0) {
      throw new Error(`audit throughput: ${acknowledged} of ${entries} acknowledged, ${stats.dropped} dropped`);
    }
    return { entries, seconds, perSecond: entries / seconds, cpuUs: (cpuSeconds * 1e6) / entries, commits, batch: entries / commits };
  });
}

// --- 8b ----------------------------------------------------------------------------------------

/** Pipeline + hand-over to the audit log per request (timed), then the group commit (timed apart). */
async function timeWithAudit(core, requests) {
  const start = performance.now();
  for (let i = 0; i < requests.length; i++) {
    let ctx = core.verify(requests[i], "bench");
    if (ctx instanceof Promise) ctx = await ctx;
    if (ctx.denial !== null) throw new Error(`audit cost: request ${i} was denied: ${ctx.denial.code}`);
    core.audit.decision(ctx, "embedded");
  }
  const path = performance.now() - start;
  const commitStart = performance.now();
  await core.audit.flush();
  const commit = performance.now() - commitStart;
  return { pathUs: (path * 1000) / requests.length, commitUs: (commit * 1000) / requests.length };
}

async function runCostBench({ batches, batchSize, warmupBatches, progress }) {
  const clock = { ms: Date.now() };
  const now = () => clock.ms;
  const without = await createBenchCore({ now, audit: { requests: "none", checkpointIntervalMs: 0 } });
  const withAudit = await createBenchCore({ now, audit: { requests: "all", checkpointIntervalMs: 0, batchWindowMs: 60_000, batchEntries: 100_000 } });
  try {
    const signers = [without, withAudit].map((b) => new RequestSigner(b.keyId, Buffer.from(b.secret, "utf8")));
    const series = { without: [], with: [], commit: [] };
    for (let b = -warmupBatches; b < batches; b++) {
      clock.ms += 1000;
      const created = Math.floor(clock.ms / 1000);
      const a = generate(signers[0], "GET", created, batchSize).requests;
      const c = generate(signers[1], "GET", created, batchSize).requests;
      const measured = b >= 0;
      const steps = [
        async () => {
          const r = await timeWithAudit(without.core, a);
          if (measured) series.without.push(r.pathUs);
        },
        async () => {
          const r = await timeWithAudit(withAudit.core, c);
          if (measured) {
            series.with.push(r.pathUs);
            series.commit.push(r.commitUs);
          }
        },
      ];
      if (b % 2 !== 0) steps.reverse();
      for (const step of steps) await step();
      if (measured && (b + 1) % 100 === 0) progress(`audit cost: ${b + 1}/${batches} batches`);
      await turn();
    }
    const recorded = withAudit.core.audit.stats;
    if (recorded.committed !== (batches + warmupBatches) * batchSize) throw new Error(`audit cost: ${recorded.committed} entries committed, expected ${(batches + warmupBatches) * batchSize}`);
    return { batches, batchSize, warmupBatches, series };
  } finally {
    await without.close();
    await withAudit.close();
  }
}

// --- 8c ----------------------------------------------------------------------------------------

async function runVerifyBench({ entries, rounds, progress }) {
  return withDataDir(async (data, dir) => {
    const at = Date.now();
    const chunk = 10_000;
    const buildStart = performance.now();
    for (let i = 0; i < entries; i += chunk) {
      const batch = [];
      for (let j = i; j < Math.min(entries, i + chunk); j++) batch.push(decisionEntry(j, at + j));
      await data.store.audit.append(batch);
      if ((i / chunk) % 20 === 19) progress(`audit verify: built ${i + chunk}/${entries} entries`);
    }
    const buildSeconds = (performance.now() - buildStart) / 1000;
    const log = new AuditLog({ store: data.store.audit, signer: new EnvelopeSigningKeys(data.store, data.envelope), requests: "none", checkpointIntervalMs: 0 });
    await log.close();
    const db = join(dir, "portcullis.db");
    const bytes = statSync(db).size + (statSync(`${db}-wal`, { throwIfNoEntry: false })?.size ?? 0);
    const times = [];
    const cpuTimes = [];
    for (let r = 0; r < rounds; r++) {
      const reader = openAuditReadOnly(db, { spillDir: null, archiveDir: null });
      if (reader === null) throw new Error("audit verify: no audit log");
      try {
        const cpu = process.cpuUsage();
        const start = performance.now();
        const report = await verifyAudit(reader.audit);
        const seconds = (performance.now() - start) / 1000;
        cpuTimes.push(cpuSince(cpu));
        if (!report.ok || report.verified !== entries || report.checkpoints < 1) throw new Error(`audit verify: ${JSON.stringify(report.problem)} (${report.verified} verified)`);
        times.push(seconds);
        progress(`audit verify: ${entries} entries in ${fmt(seconds)} s`);
      } finally {
        reader.close();
      }
    }
    return { entries, rounds, times, cpuTimes, buildSeconds, megabytes: bytes / 2 ** 20 };
  });
}

/** Runs benchmark 12. */
export async function runAuditBench({ throughput, cost, verify, progress = () => undefined }) {
  const rounds = [];
  for (let r = 0; r < throughput.rounds; r++) {
    rounds.push(await throughputRound(throughput.entries));
    progress(`audit throughput: round ${r + 1}/${throughput.rounds}: ${fmt(rounds.at(-1).perSecond, 0)} entries/s`);
  }
  const costResult = await runCostBench({ ...cost, progress });
  const verifyResult = await runVerifyBench({ ...verify, progress });
  return { throughput: { rounds, entries: throughput.entries }, cost: costResult, verify: verifyResult };
}

const verdict = (pass) => (pass ? "**PASS**" : "**FAIL**");

/** The report section and summary rows of benchmark 12. */
export function auditSection(result) {
  const perSecond = result.throughput.rounds.map((r) => r.perSecond);
  const rate = median(perSecond);
  const { series, batches, batchSize, warmupBatches } = result.cost;
  const added = series.with.map((x, i) => x - series.without[i]);
  const commit = series.commit;
  const v = result.verify;
  const perMillion = (median(v.times) * 1_000_000) / v.entries;
  const spread = (list, d = 2) => `${fmt(median(list), d)} (p10–p90 ${fmt(quantile(list, 0.1), d)}–${fmt(quantile(list, 0.9), d)})`;
  return {
    summary: [
      ["Audit: sustained decision logging with group commit, SQLite (median of rounds)", `${fmt(rate, 0)} entries/s`, `≥ ${AUDIT_TARGETS.entriesPerSecond.toLocaleString("en-US")}`, verdict(rate >= AUDIT_TARGETS.entriesPerSecond)],
      ["Audit: added cost on the request path (GET, median of per-batch differences)", `${fmt(median(added))} µs/req`, "none (informational)", "–"],
      ["Audit: verification of 1M entries (median of rounds)", `${fmt(perMillion, 1)} s${v.entries === 1_000_000 ? "" : ` (extrapolated from ${v.entries.toLocaleString("en-US")})`}`, `≤ ${AUDIT_TARGETS.verifyMillionSeconds} s`, verdict(perMillion <= AUDIT_TARGETS.verifyMillionSeconds)],
    ],
    text: [
      "## 12. The audit log",
      "",
      `**Sustained decision logging.** An \`AuditLog\` with its default batching (a group commit 50 ms after the first waiting entry, or at once when 2000 wait; at most 2000 entries per transaction, with an event-loop turn between transactions so that requests are served during a backlog) on the SQLite store of a fresh data directory (WAL, \`synchronous = FULL\`: one fsync per group commit), fed ${result.throughput.entries.toLocaleString("en-US")} decision entries shaped like the gateway's, 1000 at a time with an event-loop turn between chunks; entries acknowledged (encoded, hashed, inserted with their query indexes, committed) per second, from the first record to the last acknowledgement. ${result.throughput.rounds.length} round${result.throughput.rounds.length === 1 ? "" : "s"}, each on a new directory.`,
      "",
      table(
        ["Round", "Entries", "Seconds", "Entries/s", "CPU µs per entry (this process, user + system)", "Group commits", "Entries per commit"],
        result.throughput.rounds.map((r, i) => [String(i + 1), String(r.entries), fmt(r.seconds, 3), fmt(r.perSecond, 0), fmt(r.cpuUs, 1), String(r.commits), fmt(r.batch, 0)]),
      ),
      "",
      `Median: **${fmt(rate, 0)} entries/s** (target ≥ ${AUDIT_TARGETS.entriesPerSecond.toLocaleString("en-US")}: ${verdict(rate >= AUDIT_TARGETS.entriesPerSecond)}).`,
      "",
      `**Cost on the request path.** Two cores built as in benchmark 1, one recording every decision (\`audit.requests: "all"\`), one none; each verifies freshly signed GETs through \`core.verify\` and hands each context to \`core.audit.decision\` as the gateway does. ${batches} measured batches of ${batchSize} requests per core (after ${warmupBatches} warm-up batches), the two sides of a pair back to back in alternating order, as in benchmark 5; each side's group commit runs after its timed loop and is timed apart (it is off the request path, but on the same event loop).`,
      "",
      table(
        ["", "µs per request"],
        [
          ["Request path without audit (median)", fmt(median(series.without))],
          ["Request path with audit (median)", fmt(median(series.with))],
          ["Added on the request path, per-batch pairs (median, p10–p90)", spread(added)],
          ["Group commit per entry, off the request path (median, p10–p90)", spread(commit)],
        ],
      ),
      "",
      `**Verification.** ${v.entries.toLocaleString("en-US")} decision entries (${fmt(v.megabytes, 0)} MiB of database; built in ${fmt(v.buildSeconds, 1)} s in 10 000-entry transactions), one signed checkpoint, verified through the read-only path of \`portcullis audit verify\` (every hash recomputed, every entry parsed and checked against its query columns, every checkpoint signature checked). ${v.rounds} round${v.rounds === 1 ? "" : "s"}: ${v.times.map((t, i) => `${fmt(t, 2)} s (${fmt(v.cpuTimes[i], 2)} s of CPU)`).join(", ")}; **${fmt(v.entries / median(v.times), 0)} entries/s**, so 1M entries in **${fmt(perMillion, 1)} s** (target ≤ ${AUDIT_TARGETS.verifyMillionSeconds} s: ${verdict(perMillion <= AUDIT_TARGETS.verifyMillionSeconds)}).`,
      "",
    ],
  };
}

// Alone: node bench/audit-bench.js [--quick]
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const quick = process.argv.includes("--quick");
  const progress = (line) => process.stderr.write(`${line}\n`);
  runAuditBench({ ...(quick ? AUDIT_BENCH_SETTINGS.quick : AUDIT_BENCH_SETTINGS.full), progress })
    .then((result) => {
      const section = auditSection(result);
      process.stdout.write(`${table(["Benchmark", "Figure", "Target", "Result"], section.summary)}\n\n${section.text.join("\n")}\n`);
    })
    .catch((err) => {
      console.error(err);
      process.exit(1);
    });
}
