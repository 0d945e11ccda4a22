/**
 * Benchmark 16: the synchronous risk check of stage 11 (docs/behaviour.md).
 *
 * The risk stage (`behaviourStage`, pipeline/stages/behaviour.ts) run on a context whose key has
 * no risk state (the common case), and on one whose key is throttled until a time in the future
 * (the state is put on the context for admission). Median of rounds of a tight loop, ns per check.
 *
 * Run alone: `node bench/risk-bench.js [--quick]` (after `npm run build`) prints this section.
 */
import process from "node:process";
import { fileURLToPath } from "node:url";
import { behaviourStage } from "../packages/portcullis/dist/pipeline/stages/behaviour.js";
import { fmt, median, quantile, table, timeLoop } from "./stats.js";

export const RISK_TARGETS = {
  /** The risk stage's check of one request, µs. */
  checkUs: 0.3,
};

export const RISK_BENCH_SETTINGS = {
  full: { rounds: 21, iterations: 1_000_000, warmup: 1_000_000 },
  quick: { rounds: 5, iterations: 100_000, warmup: 100_000 },
};

const verdict = (pass) => (pass ? "**PASS**" : "**FAIL**");

export function runRiskBench({ rounds, iterations, warmup, progress = () => undefined }) {
  const stage = behaviourStage();
  const now = Date.UTC(2026, 11, 6);
  const throttle = { state: "throttle", actionId: `an_${"ab".repeat(16)}`, reason: "score 91", since: now - 1000, until: now + 3_600_000 };
  // The context fields the stage reads and writes (a RequestContext in the pipeline).
  const plain = { now, key: { record: { risk: null } }, risk: null };
  const risky = { now, key: { record: { risk: throttle } }, risk: null };
  progress(`benchmark 16: the risk check (${rounds} rounds of ${iterations} iterations)`);
  const none = timeLoop(() => stage.run(plain), { rounds, iterations, warmup });
  const throttled = timeLoop(() => stage.run(risky), { rounds, iterations, warmup });
  if (risky.risk !== throttle || plain.risk !== null) throw new Error("the risk stage did not set the context's risk state");
  if (none.refused + throttled.refused > 0) throw new Error("the risk stage refused a request");
  return { rounds, iterations, warmup, none: none.samples, throttled: throttled.samples };
}

export function riskSection(result) {
  const noneUs = median(result.none) / 1000;
  const throttledUs = median(result.throttled) / 1000;
  const worst = Math.max(noneUs, throttledUs);
  const spread = (list) => `${fmt(median(list), 1)} (p10–p90 ${fmt(quantile(list, 0.1), 1)}–${fmt(quantile(list, 0.9), 1)})`;
  return {
    summary: [["Behaviour: the synchronous risk check per request (stage 11, median of rounds, worse case)", `${fmt(worst, 3)} µs`, `≤ ${RISK_TARGETS.checkUs} µs`, verdict(worst <= RISK_TARGETS.checkUs)]],
    text: [
      "## 16. The synchronous risk check (stage 11)",
      "",
      `The risk stage (\`pipeline/stages/behaviour.ts\`) on a request whose key has no risk state, and on one whose key is throttled (the state is put on the context for admission). ${result.rounds} rounds of ${result.iterations.toLocaleString("en-US")} iterations each (after ${result.warmup.toLocaleString("en-US")} warm-up iterations), a tight loop in one process. Scoring happens off the request path (benchmark 15).`,
      "",
      table(
        ["", "ns per check (median, p10–p90)", "Target", "Result"],
        [
          ["Key without a risk state", spread(result.none), `≤ ${RISK_TARGETS.checkUs * 1000} ns`, verdict(noneUs <= RISK_TARGETS.checkUs)],
          ["Throttled key", spread(result.throttled), `≤ ${RISK_TARGETS.checkUs * 1000} ns`, verdict(throttledUs <= RISK_TARGETS.checkUs)],
        ],
      ),
      "",
    ],
  };
}

// Alone: node bench/risk-bench.js [--quick]
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const quick = process.argv.includes("--quick");
  const progress = (line) => process.stderr.write(`${line}\n`);
  const section = riskSection(runRiskBench({ ...(quick ? RISK_BENCH_SETTINGS.quick : RISK_BENCH_SETTINGS.full), progress }));
  process.stdout.write(`${table(["Benchmark", "Figure", "Target", "Result"], section.summary)}\n\n${section.text.join("\n")}\n`);
}
