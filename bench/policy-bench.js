/**
 * Benchmark 14: policy evaluation with 100 rules (docs/policy.md).
 *
 * A policy of 100 rules compiled once (`CompiledPolicy`, as the policy service caches the version
 * in force), and `decide` timed on one withdrawal of 1500 USDT, in two cases:
 *
 *   13a. the withdrawal meets the catch-all after 99 rules that do not match it. Every one of them
 *        names the `withdraw` kind, so none is skipped by the engine's per-kind index: each is
 *        evaluated condition by condition (an account, key or asset list it is not in, a source
 *        block it is outside, an amount it is not over, a destination it does not have);
 *   13b. the same policy with the 50th rule matching it (its amount over 1000 and a source block).
 *
 * No velocity (the ledger is a database transaction, not evaluation) and no address-book read: the
 * destination fact is handed to the engine as the service hands it over. Timed in batches of
 * `batchSize` decisions (performance.now around each batch, divided by its size), after warm-up
 * batches; the figure is the median over batches, in µs per decision. Target: ≤ 10 µs.
 *
 * Run alone: `node bench/policy-bench.js [--quick]` (after `npm run build`) prints this section.
 */
import { performance } from "node:perf_hooks";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parsePolicyDocument } from "../packages/portcullis/dist/policy/document.js";
import { CompiledPolicy } from "../packages/portcullis/dist/policy/engine.js";
import { StaticPrices } from "../packages/portcullis/dist/operations/prices.js";
import { fmt, median, quantile, table } from "./stats.js";

export const POLICY_TARGETS = {
  /** Median µs of one decision over 100 rules. */
  decideUs: 10,
};

export const POLICY_BENCH_SETTINGS = {
  full: { batches: 200, batchSize: 5000, warmupBatches: 20 },
  quick: { batches: 20, batchSize: 2000, warmupBatches: 4 },
};

/** 99 withdrawal rules the benchmark's withdrawal never matches, each failing on its own kind of condition. */
function nonMatching(i) {
  const match = { kind: ["withdraw"] };
  switch (i % 6) {
    case 0:
      match.account = [`acct-${i}`, `acct-${i + 1000}`];
      break;
    case 1:
      match.key = [`key-${i}`];
      break;
    case 2:
      match.asset = ["BTC", "ETH"];
      match.amount = { over: "1" };
      break;
    case 3:
      match.source = ["192.168.0.0/16", "172.16.0.0/12"];
      break;
    case 4:
      match.amount = { over: String(100_000 + i) };
      break;
    default:
      match.destination = { youngerThan: "1h" };
      match.account = ["acme"];
  }
  return { name: `rule ${i}`, match, action: i % 2 === 0 ? { type: "block", reason: "bench" } : { type: "hold", approvals: [{ group: "treasury", count: 2 }], delay: "10m" } };
}

function compile(matchAt) {
  const rules = [];
  for (let i = 0; i < 99; i++) {
    rules.push(i === matchAt ? { name: `rule ${i} matches`, match: { kind: ["withdraw"], amount: { over: "1000" }, source: ["10.0.0.0/8"] }, action: { type: "hold", approvals: [{ group: "treasury", count: 2 }] } } : nonMatching(i));
  }
  rules.push({ name: "catch-all", action: { type: "allow" } });
  const parsed = parsePolicyDocument({ rules });
  if (!parsed.ok) throw new Error(parsed.message);
  return new CompiledPolicy(parsed.value, 1, "0".repeat(64), new StaticPrices({ assets: { USDT: "1", BTC: "60000", ETH: "3000" } }));
}

const subject = {
  operation: { kind: "withdraw", asset: "USDT", amount: { coefficient: 1500n, scale: 0 }, address: "TQn9Y2khEsLJW1ChVWFMSMeRDow5KcbLSE", addressName: null, network: "TRX", tag: null },
  account: "acme",
  keyId: "pck_live_v1_0000000000000000000000abcdef",
  client: "10.1.2.3",
  at: Date.UTC(2026, 11, 6),
};
/** In the book for 30 days: older than every `youngerThan` of the rules. */
const facts = { destination: { addedAt: subject.at - 30 * 86_400_000, usableFrom: subject.at - 29 * 86_400_000 } };

function timeCase(policy, expected, { batches, batchSize, warmupBatches }) {
  const first = policy.decide(subject, facts);
  if (first.rule !== expected) throw new Error(`expected rule "${expected}", got "${first.rule}"`);
  const perDecision = [];
  let sink = 0;
  for (let b = 0; b < warmupBatches + batches; b++) {
    const t0 = performance.now();
    for (let i = 0; i < batchSize; i++) sink += policy.decide(subject, facts).version;
    const us = ((performance.now() - t0) * 1000) / batchSize;
    if (b >= warmupBatches) perDecision.push(us);
  }
  if (sink === 0) throw new Error("no decisions");
  return perDecision;
}

export async function runPolicyBench({ batches, batchSize, warmupBatches, progress = () => {} }) {
  progress("  13a: 99 non-matching rules, then the catch-all");
  const last = timeCase(compile(-1), "catch-all", { batches, batchSize, warmupBatches });
  progress("  13b: the 50th rule matches");
  const middle = timeCase(compile(49), "rule 49 matches", { batches, batchSize, warmupBatches });
  const explained = compile(-1).explain(subject, facts);
  await Promise.resolve();
  return { last, middle, batches, batchSize, warmupBatches, traced: explained.trace.length };
}

const verdict = (pass) => (pass ? "**PASS**" : "**FAIL**");

/** The report section and summary rows of benchmark 14. */
export function policySection(result) {
  const spread = (list) => `${fmt(median(list))} (p10–p90 ${fmt(quantile(list, 0.1))}–${fmt(quantile(list, 0.9))})`;
  const last = median(result.last);
  const middle = median(result.middle);
  return {
    summary: [
      ["Policy: `decide` over 100 rules, catch-all after 99 non-matching (median)", `${fmt(last)} µs`, `≤ ${POLICY_TARGETS.decideUs} µs`, verdict(last <= POLICY_TARGETS.decideUs)],
      ["Policy: `decide` over 100 rules, the 50th matches (median)", `${fmt(middle)} µs`, `≤ ${POLICY_TARGETS.decideUs} µs`, verdict(middle <= POLICY_TARGETS.decideUs)],
    ],
    text: [
      "## 14. Policy evaluation, 100 rules",
      "",
      `A compiled policy of 100 rules (99 withdrawal rules, each failing on a different kind of condition, then a catch-all), \`decide\` on one 1500 USDT withdrawal; ${result.batches} batches of ${result.batchSize} decisions after ${result.warmupBatches} warm-up batches. No velocity (a ledger transaction, not evaluation) and no address-book read (the destination is handed over as the service does). The dry run of the same decision lists ${result.traced} rules.`,
      "",
      table(
        ["Case", "µs per decision: median (p10–p90)"],
        [
          ["Catch-all after 99 non-matching rules", spread(result.last)],
          ["The 50th rule matches", spread(result.middle)],
        ],
      ),
      "",
    ],
  };
}

// Alone: node bench/policy-bench.js [--quick]
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const quick = process.argv.includes("--quick");
  const progress = (line) => process.stderr.write(`${line}\n`);
  runPolicyBench({ ...(quick ? POLICY_BENCH_SETTINGS.quick : POLICY_BENCH_SETTINGS.full), progress })
    .then((result) => {
      const section = policySection(result);
      process.stdout.write(`${table(["Benchmark", "Figure", "Target", "Result"], section.summary)}\n\n${section.text.join("\n")}\n`);
    })
    .catch((err) => {
      console.error(err);
      process.exit(1);
    });
}
