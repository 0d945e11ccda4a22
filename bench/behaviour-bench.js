/**
 * Benchmark 15: the behaviour model (docs/behaviour.md, "The model").
 *
 * 1,000 keys in 100 accounts, each running one seeded pattern over simulated time (a market maker
 * refreshing quotes every ~2 s, a periodic buyer, a portfolio reader, an arbitrageur bursting on two
 * symbols, and an adversarial key sending a new symbol, address, route and destination on every
 * request), interleaved in time order. Every event is handed to the model as the behaviour stage
 * does: `observe` against its key's state and its account's, then `observeAccount`. Timed in
 * batches of `batchSize` events (performance.now around each batch, divided by its size) after
 * warm-up batches; the figure is the median over batches, in µs per event. Then every key's state
 * is encoded: the largest and mean size, in bytes. Targets: ≤ 5 µs per event, ≤ 2,048 bytes.
 *
 * Run alone: `node bench/behaviour-bench.js [--quick]` (after `npm run build`) prints this section.
 */
import { performance } from "node:perf_hooks";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { BehaviourModel } from "../packages/portcullis/dist/behaviour/model.js";
import { fmt, mean, median, quantile, table } from "./stats.js";

export const BEHAVIOUR_TARGETS = {
  /** Median µs of observe + observeAccount per event. */
  observeUs: 5,
  /** Largest encoded state, bytes. */
  stateBytes: 2048,
};

export const BEHAVIOUR_BENCH_SETTINGS = {
  full: { keys: 1000, accounts: 100, hours: 1, batchSize: 5000, warmupBatches: 10 },
  quick: { keys: 1000, accounts: 100, hours: 0.1, batchSize: 2000, warmupBatches: 2 },
};

const MINUTE = 60_000;
const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 10, 1);
const PRICES = { BTCUSDT: 60_000, ETHUSDT: 3_000, SOLUSDT: 150 };
const LIQUIDITY = { BTCUSDT: 2e9, ETHUSDT: 1e9, SOLUSDT: 3e8 };

/** mulberry32. */
function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, exp: (m) => -Math.log(1 - next()) * m, int: (n) => Math.floor(next() * n), normal: () => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next()) };
}

function event(k, at, route, extra) {
  return {
    keyId: k.id,
    account: k.account,
    at: Math.round(at),
    keyCreatedAt: T0 - HOUR,
    route,
    operation: null,
    symbol: null,
    side: null,
    quantity: null,
    notional: null,
    asset: null,
    amount: null,
    value: null,
    destination: null,
    client: k.client,
    network: k.network,
    outcome: "allowed",
    code: null,
    authFailure: false,
    slot: k.slot,
    accountSlot: k.accountSlot,
    ...extra,
  };
}

function order(k, at, symbol, quantity) {
  return event(k, at, "POST /api/v3/order", { operation: "order.place", symbol, side: "buy", quantity, notional: quantity * (PRICES[symbol] ?? 1) });
}

/** The key's events over `ms` of simulated time. */
function traffic(k, r, ms) {
  const out = [];
  switch (k.slot % 10) {
    case 0:
    case 1: // market maker
      for (let t = T0 + r.exp(2000); t < T0 + ms; t += r.exp(2000)) {
        out.push(event(k, t, "DELETE /api/v3/order", { operation: "order.cancel", symbol: "BTCUSDT" }));
        out.push(order(k, t + 10, r.next() < 0.7 ? "BTCUSDT" : "ETHUSDT", 0.05 * Math.exp(0.1 * r.normal())));
        if (r.next() < 0.03) out.push(event(k, t + 20, "GET /api/v3/account", {}));
      }
      break;
    case 2:
    case 3:
    case 4: // periodic buyer (fast: every minute, so it contributes events in a short run)
      for (let t = T0 + r.exp(MINUTE); t < T0 + ms; t += MINUTE + (r.next() - 0.5) * 5000) {
        out.push(event(k, t, "GET /api/v3/account", {}));
        out.push(order(k, t + 900, "BTCUSDT", 0.002 * Math.exp(0.05 * r.normal())));
      }
      break;
    case 5:
    case 6:
    case 7: // portfolio reader
      for (let t = T0 + r.exp(30_000); t < T0 + ms; t += 30_000 + (r.next() - 0.5) * 10_000) out.push(event(k, t, r.next() < 0.5 ? "GET /api/v3/account" : "GET /api/v3/openOrders", {}));
      break;
    case 8: // arbitrageur
      for (let t = T0 + r.exp(10 * MINUTE); t < T0 + ms; t += r.exp(10 * MINUTE)) {
        const n = 5 + r.int(26);
        for (let i = 0, u = t; i < n; i++, u += r.exp(300)) out.push(order(k, u, r.next() < 0.5 ? "BTCUSDT" : "ETHUSDT", 0.2 * Math.exp(0.3 * r.normal())));
      }
      break;
    default: {
      // adversarial: something new on every request
      let i = 0;
      for (let t = T0 + r.exp(20_000); t < T0 + ms; t += r.exp(20_000), i++) {
        const who = { ...k, client: `10.${i % 250}.${(i >> 8) % 250}.${k.slot % 250}`, network: `10.${i % 250}.${(i >> 8) % 250}.0/24` };
        out.push(
          i % 3 === 0
            ? order(who, t, `S${i}X${k.slot}USDT`, 1 + i)
            : i % 3 === 1
              ? event(who, t, "POST /sapi/v1/capital/withdraw/apply", { operation: "withdraw", asset: "USDT", amount: i, value: i, destination: `dest-${k.slot}-${i}` })
              : event(who, t, `GET /route/${i}`, { outcome: "refused", code: "SIGNATURE_INVALID", authFailure: true }),
        );
      }
    }
  }
  return out;
}

export function runBehaviourBench({ keys, accounts, hours, batchSize, warmupBatches, progress = () => {} }) {
  const model = new BehaviourModel({ liquidity: (s) => LIQUIDITY[s] });
  const r = rng(15);
  const events = [];
  for (let i = 0; i < keys; i++) {
    const client = `198.51.${i % 250}.${1 + (i % 200)}`;
    const k = { id: `key-${i}`, account: `acct-${i % accounts}`, slot: i, accountSlot: i % accounts, client, network: `198.51.${i % 250}.0/24` };
    for (const e of traffic(k, r, hours * HOUR)) events.push(e);
  }
  events.sort((a, b) => a.at - b.at);
  progress(`  ${events.length} events from ${keys} keys over ${hours} simulated hours`);
  const keyStates = new Array(keys).fill(null);
  const accountStates = new Array(accounts).fill(null);
  const perEvent = [];
  const cpuPerEvent = [];
  let sink = 0;
  const batches = Math.floor(events.length / batchSize);
  if (batches <= warmupBatches) throw new Error("too few events for the warm-up");
  for (let b = 0; b < batches; b++) {
    const from = b * batchSize;
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    for (let i = from; i < from + batchSize; i++) {
      const e = events[i];
      const result = model.observe(keyStates[e.slot], e, accountStates[e.accountSlot]);
      keyStates[e.slot] = result.state;
      accountStates[e.accountSlot] = model.observeAccount(accountStates[e.accountSlot], e);
      sink += result.score.score;
    }
    const us = ((performance.now() - t0) * 1000) / batchSize;
    const cpu = process.cpuUsage(c0);
    if (b >= warmupBatches) {
      perEvent.push(us);
      cpuPerEvent.push((cpu.user + cpu.system) / batchSize);
    }
  }
  if (!(sink >= 0)) throw new Error("no scores");
  const sizes = [];
  for (const s of keyStates) if (s !== null) sizes.push(model.encode(s).length);
  for (const s of accountStates) if (s !== null) sizes.push(model.encode(s).length);
  const decodedOk = keyStates.every((s) => s === null || model.decode(model.encode(s)) !== null);
  if (!decodedOk) throw new Error("a state did not decode");
  return { perEvent, cpuPerEvent, sizes, events: events.length, keys, accounts, hours, batches: batches - warmupBatches, batchSize, warmupBatches };
}

const verdict = (pass) => (pass ? "**PASS**" : "**FAIL**");

/** The report section and summary rows of benchmark 15. */
export function behaviourSection(result) {
  const us = median(result.perEvent);
  const max = Math.max(...result.sizes);
  const avg = mean(result.sizes);
  return {
    summary: [
      ["Behaviour: `observe` + `observeAccount` per event, 1,000 keys (median)", `${fmt(us)} µs`, `≤ ${BEHAVIOUR_TARGETS.observeUs} µs`, verdict(us <= BEHAVIOUR_TARGETS.observeUs)],
      ["Behaviour: encoded state per key (largest)", `${fmt(max, 0)} B`, `≤ ${fmt(BEHAVIOUR_TARGETS.stateBytes, 0)} B`, verdict(max <= BEHAVIOUR_TARGETS.stateBytes)],
    ],
    text: [
      "## 15. The behaviour model",
      "",
      `${result.keys} keys in ${result.accounts} accounts over ${result.hours} simulated hour${result.hours === 1 ? "" : "s"} (${result.events} events, in time order): market makers, periodic buyers, portfolio readers, arbitrageurs, and adversarial keys sending a new symbol, address, route or destination (and signature failures) on every request. Each event is scored against its key's state and its account's (\`observe\`), then folded into the account's (\`observeAccount\`); ${result.batches} batches of ${result.batchSize} events timed after ${result.warmupBatches} warm-up batches. Then every key's and account's state is encoded.`,
      "",
      table(
        ["Measure", "Figure"],
        [
          ["µs per event, observe + observeAccount: median (p10–p90)", `${fmt(us)} (${fmt(quantile(result.perEvent, 0.1))}–${fmt(quantile(result.perEvent, 0.9))})`],
          ["CPU µs per event (process user + system, same batches): median (p10–p90)", `${fmt(median(result.cpuPerEvent))} (${fmt(quantile(result.cpuPerEvent, 0.1))}–${fmt(quantile(result.cpuPerEvent, 0.9))})`],
          ["Encoded state, bytes: largest / mean", `${fmt(max, 0)} / ${fmt(avg, 0)}`],
        ],
      ),
      "",
    ],
  };
}

// Alone: node bench/behaviour-bench.js [--quick]
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const quick = process.argv.includes("--quick");
  const progress = (line) => process.stderr.write(`${line}\n`);
  try {
    const section = behaviourSection(runBehaviourBench({ ...(quick ? BEHAVIOUR_BENCH_SETTINGS.quick : BEHAVIOUR_BENCH_SETTINGS.full), progress }));
    process.stdout.write(`${table(["Benchmark", "Figure", "Target", "Result"], section.summary)}\n\n${section.text.join("\n")}\n`);
  } catch (err) {
    console.error(err);
    process.exit(1);
  }
}
