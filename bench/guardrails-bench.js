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
 * 13c. The open-notional step for a key without maxOpenNotional. The lifecycle calls
 *      `OpenNotional.begin` (pipeline/open-notional.ts) on every allowed request; on an order of a
 *      key without the guardrail it answers on a field check. Median of rounds, ns per call: what
 *      the guardrail costs every key that does not use it.
 *
 * 13d. (Run alone only.) The open-notional ledger on an order of a key with maxOpenNotional:
 *      `begin` (the reservation) then `settle` with a Binance FILLED answer (the release), awaited
 *      one order after another, against the memory hot store's ledger and, when a Redis answers at
 *      127.0.0.1:6379, the Redis hot store's (two round trips: the reserve script, then HDEL).
 *
 * Run alone: `node bench/guardrails-bench.js [--quick]` (after `npm run build`) prints this section.
 */
import { Buffer } from "node:buffer";
import { performance } from "node:perf_hooks";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { guardrailStage } from "../packages/portcullis/dist/pipeline/stages/guardrails.js";
import { operationStage } from "../packages/portcullis/dist/pipeline/stages/operation.js";
import { compileGuardrails } from "../packages/portcullis/dist/operations/guardrails.js";
import { parseDecimal } from "../packages/portcullis/dist/operations/decimal.js";
import { orderPlace } from "../packages/portcullis/dist/operations/fields.js";
import { StaticPrices } from "../packages/portcullis/dist/operations/prices.js";
import { OpenNotional } from "../packages/portcullis/dist/pipeline/open-notional.js";
import { MemoryHotStore } from "../packages/portcullis/dist/storage/memory/hot.js";
import { RedisHotStore } from "../packages/portcullis/dist/storage/redis/hot.js";
import { fmt, median, quantile, table, timeLoop } from "./stats.js";

export const GUARDRAIL_TARGETS = {
  /** The guard stage's check of an order with every guardrail set, µs. */
  orderCheckUs: 2,
  /** The operation and guard stages on a route that declares no operation, µs. */
  noOperationUs: 0.3,
  /** The open-notional step on an order of a key without maxOpenNotional, µs. */
  openUnsetUs: 0.05,
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
  const open = new OpenNotional({ ledger: new MemoryHotStore().openOrders, prices });
  const unset = { operation: order, key: { guardrails, record: { id: "pk_test_bench" } }, requestId: "r", now: 0, openOrder: null };
  const openUnset = timeLoop(() => open.begin(unset), { rounds, iterations, warmup });
  if (orderCheck.refused + noOperation.refused + openUnset.refused > 0) throw new Error("a benchmark request was refused");
  return { rounds, iterations, warmup, orderCheck: orderCheck.samples, noOperation: noOperation.samples, openUnset: openUnset.samples };
}

export function guardrailsSection(result) {
  const orderUs = median(result.orderCheck) / 1000;
  const noOpUs = median(result.noOperation) / 1000;
  const unsetUs = median(result.openUnset) / 1000;
  const spread = (list) => `${fmt(median(list), 1)} (p10–p90 ${fmt(quantile(list, 0.1), 1)}–${fmt(quantile(list, 0.9), 1)})`;
  return {
    summary: [
      ["Guardrails: the guard stage on an order with every guardrail set (median of rounds)", `${fmt(orderUs, 3)} µs`, `≤ ${GUARDRAIL_TARGETS.orderCheckUs} µs`, verdict(orderUs <= GUARDRAIL_TARGETS.orderCheckUs)],
      ["Guardrails: operation + guard stages on a route declaring no operation (median of rounds)", `${fmt(noOpUs, 3)} µs`, `≤ ${GUARDRAIL_TARGETS.noOperationUs} µs`, verdict(noOpUs <= GUARDRAIL_TARGETS.noOperationUs)],
      ["Guardrails: the open-notional step on an order of a key without maxOpenNotional (median of rounds)", `${fmt(unsetUs, 3)} µs`, `≤ ${GUARDRAIL_TARGETS.openUnsetUs} µs`, verdict(unsetUs <= GUARDRAIL_TARGETS.openUnsetUs)],
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
          ["Open-notional step, order of a key without maxOpenNotional", spread(result.openUnset), `≤ ${GUARDRAIL_TARGETS.openUnsetUs * 1000} ns`, verdict(unsetUs <= GUARDRAIL_TARGETS.openUnsetUs)],
        ],
      ),
      "",
    ],
  };
}

/**
 * 13d: reserve then release, one order after another, on a ledger; µs per order (median of rounds).
 */
export async function runOpenLedgerBench({ rounds, orders, ledger }) {
  const prices = new StaticPrices({ symbols: { BTCUSDT: "60000" } });
  const guardrails = compileGuardrails({ symbols: null, maxQuantity: null, maxNotional: null, priceBandPct: null, withdrawAssets: null, transferAssets: null, maxOpenNotional: "1000000" });
  const order = orderPlace("BTCUSDT", "buy", "limit", parseDecimal("0.5"), parseDecimal("60100"), null);
  const open = new OpenNotional({ ledger, prices });
  const filled = { status: 200, body: Buffer.from(JSON.stringify({ orderId: 1, clientOrderId: "c", status: "FILLED" })) };
  const key = { guardrails, record: { id: `pk_test_bench_${process.pid}` } };
  const samples = [];
  let n = 0;
  for (let r = 0; r <= rounds; r++) {
    const t0 = performance.now();
    for (let i = 0; i < orders; i++) {
      const ctx = { operation: order, key, requestId: `r${n++}`, now: Date.now(), openOrder: null };
      const denial = await open.begin(ctx);
      if (denial !== undefined) throw new Error(`refused: ${denial.code}`);
      await open.settle(ctx, filled, false);
    }
    // Round 0 warms up.
    if (r > 0) samples.push(((performance.now() - t0) * 1000) / orders);
  }
  return samples;
}

// Alone: node bench/guardrails-bench.js [--quick]
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const quick = process.argv.includes("--quick");
  const progress = (line) => process.stderr.write(`${line}\n`);
  const section = guardrailsSection(runGuardrailsBench({ ...(quick ? GUARDRAIL_BENCH_SETTINGS.quick : GUARDRAIL_BENCH_SETTINGS.full), progress }));
  process.stdout.write(`${table(["Benchmark", "Figure", "Target", "Result"], section.summary)}\n\n${section.text.join("\n")}\n`);
  const ledgerRounds = quick ? 3 : 7;
  const ledgerOrders = quick ? 500 : 2000;
  const rows = [];
  const memory = await runOpenLedgerBench({ rounds: ledgerRounds, orders: ledgerOrders, ledger: new MemoryHotStore().openOrders });
  rows.push(["memory hot store", `${fmt(median(memory), 2)} (p10–p90 ${fmt(quantile(memory, 0.1), 2)}–${fmt(quantile(memory, 0.9), 2)})`]);
  const redis = new RedisHotStore({ url: "redis://127.0.0.1:6379", prefix: `pcbench:${process.pid}:`, commandTimeoutMs: 2000 });
  try {
    await redis.ready();
    const samples = await runOpenLedgerBench({ rounds: ledgerRounds, orders: ledgerOrders, ledger: redis.openOrders });
    rows.push(["Redis hot store (127.0.0.1, 2 round trips)", `${fmt(median(samples), 2)} (p10–p90 ${fmt(quantile(samples, 0.1), 2)}–${fmt(quantile(samples, 0.9), 2)})`]);
  } catch (err) {
    rows.push(["Redis hot store", `not measured: ${err instanceof Error ? err.message : String(err)}`]);
  } finally {
    await redis.close();
  }
  process.stdout.write(`\n**13d. The open-notional ledger, reserve then release** (${ledgerRounds} rounds of ${ledgerOrders} orders, awaited one after another):\n\n${table(["ledger", "µs per order (median, p10–p90)"], rows)}\n`);
}
