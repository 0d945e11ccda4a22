/**
 * Benchmark 13: per-key guardrails (docs/guardrails.md).
 *
 * 13a. Guardrails on an order. The guard stage (`guardrailStage`, pipeline/stages/guardrails.ts)
 *      run on a context holding a decoded Binance `order.place` (a limit order on BTCUSDT, 0.5 at
 *      60 100) and a key with every guardrail set (symbol allowlist, maximum quantity, maximum
 *      notional, ±5 % price band against a reference price; the order passes all four, so every
 *      check and the exact decimal arithmetic run). Median of rounds of a tight loop, ns per check.
 *
 * 13b. A route that declares no operation. The pipeline skips the operation and guard stages on
 *      one comparison (`route.operation === null`), so they are not even called; what is timed
 *      here is an upper bound: both stages' `run` called on such a request (each answers on its
 *      first check). Median of rounds of a tight loop, ns per request.
 *
 * Run alone: `node bench/guardrails-bench.js [--quick]` (after `npm run build`) prints this section.
 */
import process from "node:process";
import { fileURLToPath } from "node:url";
import { guardrailStage } from "../packages/portcullis/dist/pipeline/stages/guardrails.js";
import { operationStage } from "../packages/portcullis/dist/pipeline/stages/operation.js";
import { compileGuardrails } from "../packages/portcullis/dist/operations/guardrails.js";
import { parseDecimal } from "../packages/portcullis/dist/operations/decimal.js";
import { orderPlace } from "../packages/portcullis/dist/operations/fields.js";
import { StaticPrices } from "../packages/portcullis/dist/operations/prices.js";
import { fmt, median, quantile, table, timeLoop } from "./stats.js";

export const GUARDRAIL_TARGETS = {
  /** The guard stage's check of an order with every guardrail set, µs. */
  orderCheckUs: 2,
  /** The operation and guard stages on a route that declares no operation, µs. */
  noOperationUs: 0.3,
};

export const GUARDRAIL_BENCH_SETTINGS = {
  full: { rounds: 21, iterations: 200_000, warmup: 200_000 },
  quick: { rounds: 5, iterations: 20_000, warmup: 20_000 },
};

const verdict = (pass) => (pass ? "**PASS**" : "**FAIL**");


export function runGuardrailsBench({ rounds, iterations, warmup, progress = () => undefined }) {
  const d = (text) => parseDecimal(text);
  const prices = new StaticPrices({ symbols: { BTCUSDT: "60000", ETHUSDT: "3000" } });
  const guardrails = compileGuardrails({ symbols: ["BTCUSDT", "ETHUSDT"], maxQuantity: "2", maxNotional: "100000", priceBandPct: "5", withdrawAssets: ["USDT"], transferAssets: null });
  const order = orderPlace("BTCUSDT", "buy", "limit", d("0.5"), d("60100"), null);
  const guard = guardrailStage(prices);
  const op = operationStage(null);
  // The context fields the two stages read (a RequestContext in the pipeline).
  const ordered = { operation: order, key: { guardrails }, route: { operation: "order.place" } };
  const plain = { operation: null, key: { guardrails }, route: { operation: null, dialect: "binance" } };
  if (guard.run(ordered) !== undefined) throw new Error("the benchmark's order must pass its guardrails");
  progress(`benchmark 13: guardrails (${rounds} rounds of ${iterations} iterations)`);
  const orderCheck = timeLoop(() => guard.run(ordered), { rounds, iterations, warmup });
  const noOperation = timeLoop(() => op.run(plain) ?? guard.run(plain), { rounds, iterations, warmup });
  if (orderCheck.refused + noOperation.refused > 0) throw new Error("a benchmark request was refused");
  return { rounds, iterations, warmup, orderCheck: orderCheck.samples, noOperation: noOperation.samples };
}

export function guardrailsSection(result) {
  const orderUs = median(result.orderCheck) / 1000;
  const noOpUs = median(result.noOperation) / 1000;
  const spread = (list) => `${fmt(median(list), 1)} (p10–p90 ${fmt(quantile(list, 0.1), 1)}–${fmt(quantile(list, 0.9), 1)})`;
  return {
    summary: [
      ["Guardrails: the guard stage on an order with every guardrail set (median of rounds)", `${fmt(orderUs, 3)} µs`, `≤ ${GUARDRAIL_TARGETS.orderCheckUs} µs`, verdict(orderUs <= GUARDRAIL_TARGETS.orderCheckUs)],
      ["Guardrails: operation + guard stages on a route declaring no operation (median of rounds)", `${fmt(noOpUs, 3)} µs`, `≤ ${GUARDRAIL_TARGETS.noOperationUs} µs`, verdict(noOpUs <= GUARDRAIL_TARGETS.noOperationUs)],
    ],
    text: [
      "## 13. Per-key guardrails",
      "",
      `**Guardrails on an order.** The guard stage (\`pipeline/stages/guardrails.ts\`) on a decoded Binance \`order.place\` (limit, BTCUSDT, 0.5 at 60 100) of a key with every order guardrail set (symbol allowlist, maximum quantity, maximum notional, ±5 % price band against a reference price of 60 000); the order passes all four, so every check and its exact decimal arithmetic run. **A route that declares no operation**: the pipeline skips the operation and guard stages on one comparison, so they are not called at all; the figure is an upper bound, both stages' \`run\` called on such a request. ${result.rounds} rounds of ${result.iterations.toLocaleString("en-US")} iterations each (after ${result.warmup.toLocaleString("en-US")} warm-up iterations), a tight loop in one process.`,
      "",
      table(
        ["", "ns per call (median, p10–p90)", "Target", "Result"],
        [
          ["Guard stage, order with every guardrail", spread(result.orderCheck), `≤ ${GUARDRAIL_TARGETS.orderCheckUs * 1000} ns`, verdict(orderUs <= GUARDRAIL_TARGETS.orderCheckUs)],
          ["Operation + guard stages, no operation declared", spread(result.noOperation), `≤ ${GUARDRAIL_TARGETS.noOperationUs * 1000} ns`, verdict(noOpUs <= GUARDRAIL_TARGETS.noOperationUs)],
        ],
      ),
      "",
    ],
  };
}

// Alone: node bench/guardrails-bench.js [--quick]
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const quick = process.argv.includes("--quick");
  const progress = (line) => process.stderr.write(`${line}\n`);
  const section = guardrailsSection(runGuardrailsBench({ ...(quick ? GUARDRAIL_BENCH_SETTINGS.quick : GUARDRAIL_BENCH_SETTINGS.full), progress }));
  process.stdout.write(`${table(["Benchmark", "Figure", "Target", "Result"], section.summary)}\n\n${section.text.join("\n")}\n`);
}
