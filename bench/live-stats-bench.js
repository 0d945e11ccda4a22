/**
 * What the console's live statistics (metrics/live-stats.ts) cost a request: the in-process
 * pipeline (as benchmark 1 runs it: `core.verify` over pre-signed requests) followed by what the
 * lifecycle does once a request is decided, `pipeline.observe` (the metrics' count, and with the
 * live statistics their count too), on two cores that differ only by the live statistics. Both
 * have the Prometheus counters, as `portcullis start` does. The pairs run back to back, in
 * alternating order, and the clock is frozen within a batch and steps 1 s between batches, as in
 * benchmark 1.
 *
 *   node bench/live-stats-bench.js [--batches N] [--batch-size N]
 *
 * Prints one JSON object: the median µs per request of each, their difference, and the ratio.
 */
import { performance } from "node:perf_hooks";
import { setImmediate as turn } from "node:timers/promises";
import { LiveStats } from "../packages/portcullis/dist/metrics/live-stats.js";
import { PortcullisMetrics } from "../packages/portcullis/dist/metrics/metrics.js";
import { createBenchCore } from "./core.js";
import { generate } from "./pipeline-bench.js";
import { RequestSigner } from "./signing.js";

/** µs per request: decide, then observe as the lifecycle does for an allowed request. */
async function timeDecideObserve(core, requests) {
  const pipeline = core.pipeline;
  const start = performance.now();
  for (let i = 0; i < requests.length; i++) {
    let ctx = core.verify(requests[i], "bench");
    if (ctx instanceof Promise) ctx = await ctx;
    if (ctx.denial !== null) throw new Error(`request ${i} was denied: ${ctx.denial.code}`);
    pipeline.observe(ctx, "allowed", "gateway");
  }
  return ((performance.now() - start) * 1000) / requests.length;
}

/**
 * ns per `decided` call alone, over `n` calls at 1 ms steps (a bucket change every 10,000), for a
 * key among `keys` (one in ten refused): the aggregator's own cost, out of the pipeline's noise.
 */
export function timeDecided(n = 2_000_000, keys = 100) {
  const live = new LiveStats();
  const records = Array.from({ length: keys }, (_, i) => ({ id: `pck_live_v1_${i}`, account: `acct-${i % 7}` }));
  const t0 = Date.now();
  const start = performance.now();
  for (let i = 0; i < n; i++) live.decided("gateway", i % 10 === 0 ? "RATE_LIMITED" : "OK", records[i % keys], t0 + i);
  return ((performance.now() - start) * 1e6) / n;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
};

export async function runLiveStatsBench({ batches = 40, batchSize = 2000, warmupBatches = 4 } = {}) {
  const clock = { ms: Date.now() };
  const now = () => clock.ms;
  const live = new LiveStats();
  const without = await createBenchCore({ now, metrics: new PortcullisMetrics({ processMetrics: false }) });
  const withStats = await createBenchCore({ now, metrics: new PortcullisMetrics({ processMetrics: false }), stats: live });
  try {
    const a = new RequestSigner(without.keyId, Buffer.from(without.secret, "utf8"));
    const b = new RequestSigner(withStats.keyId, Buffer.from(withStats.secret, "utf8"));
    const series = { without: [], with: [] };
    for (let i = -warmupBatches; i < batches; i++) {
      clock.ms += 1000;
      const created = Math.floor(clock.ms / 1000);
      const reqA = generate(a, "GET", created, batchSize).requests;
      const reqB = generate(b, "GET", created, batchSize).requests;
      const steps = [
        async () => {
          const us = await timeDecideObserve(without.core, reqA);
          if (i >= 0) series.without.push(us);
        },
        async () => {
          const us = await timeDecideObserve(withStats.core, reqB);
          if (i >= 0) series.with.push(us);
        },
      ];
      if (i % 2 !== 0) steps.reverse();
      for (const step of steps) await step();
      await turn();
    }
    const w = median(series.without);
    const s = median(series.with);
    const counted = live.snapshot(clock.ms).totals.allowed;
    const alone = [timeDecided(), timeDecided(), timeDecided()];
    const many = [timeDecided(2_000_000, 5_000), timeDecided(2_000_000, 5_000), timeDecided(2_000_000, 5_000)];
    return { batches, batchSize, usPerRequestWithout: w, usPerRequestWith: s, differenceUs: s - w, ratio: s / w, counted, nsPerDecided100Keys: median(alone), nsPerDecided5000Keys: median(many) };
  } finally {
    await without.close();
    await withStats.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (name, fallback) => {
    const i = process.argv.indexOf(name);
    return i < 0 ? fallback : Number(process.argv[i + 1]);
  };
  const result = await runLiveStatsBench({ batches: arg("--batches", 40), batchSize: arg("--batch-size", 2000) });
  console.log(JSON.stringify(result));
}
