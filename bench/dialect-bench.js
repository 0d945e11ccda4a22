/**
 * Benchmark 4: in-process verification cost of each exchange dialect (Binance, Kraken, Coinbase
 * CDP JWT, OKX, Bybit) against the raw primitive of the same bytes.
 *
 * One `Portcullis` core (embedded stores, as benchmark 1) with every venue's routes (each
 * carrying `dialect: "<venue>"`) and one key per venue and algorithm, created through the key
 * service. For each case, each batch pre-generates (untimed) freshly signed requests, each with
 * a unique time (and the nonce or parameter its scheme needs, so replay protection sees every
 * request as new), then times, back to back and in alternating order, the whole pipeline
 * (`core.verify`, every request asserted allowed) over them and the raw primitive (the HMAC, or
 * the signature verification, no verifier can skip) over the very bytes they signed.
 *
 * The core's clock is frozen within a batch and steps one second between batches; request times
 * within a batch are distinct milliseconds of the second before the clock, so they are never
 * reused, always fresh, and the replay state expires and is swept as in real time.
 *
 * Coinbase verification is asynchronous (jose over WebCrypto, whose verify runs on libuv's thread
 * pool). Its cases are measured twice: one request at a time, each awaited before the next (the
 * latency a lone client sees, the same method as every other case), and with 64 in flight (the
 * throughput view: wall time per request while the pool works in parallel). Both report process
 * CPU time per request too (every thread, from process.cpuUsage).
 */
import { performance } from "node:perf_hooks";
import process from "node:process";
import { setImmediate as turn } from "node:timers/promises";
import { KRAKEN_DEFAULT_NONCE_WINDOW } from "../packages/portcullis/dist/dialects/kraken/index.js";
import { MemorySequenceStore } from "../packages/portcullis/dist/replay/sequences.js";
import { createBenchCore } from "./core.js";
import { DIALECT_CASES, DIALECT_ROUTES, KEY_DEFS, okxColdSigner } from "./dialect-signing.js";

/** The clock step between batches (ms); request times fill the second before the clock. */
const STEP_MS = 1000;

function deniedError(label, ctx, i) {
  return new Error(`${label}: request ${i} was denied: ${ctx.denial.code} ${ctx.denial.detail ?? ""}`);
}

/** CPU time of the whole process (every thread) since `start`, in µs. */
function cpuSince(start) {
  const used = process.cpuUsage(start);
  return used.user + used.system;
}

/**
 * Runs the requests through `core.verify`, `inFlight` at a time (1: each awaited before the
 * next; a synchronous answer is never awaited). Returns wall and CPU µs per request and how
 * many answers were promises.
 */
async function timePipeline(core, requests, inFlight, label) {
  const n = requests.length;
  let asyncAnswers = 0;
  const cpu = process.cpuUsage();
  const start = performance.now();
  if (inFlight === 1) {
    for (let i = 0; i < n; i++) {
      let ctx = core.verify(requests[i], "bench");
      if (ctx instanceof Promise) {
        asyncAnswers++;
        ctx = await ctx;
      }
      if (ctx.denial !== null) throw deniedError(label, ctx, i);
    }
  } else {
    let next = 0;
    const lane = async () => {
      while (next < n) {
        const i = next++;
        let ctx = core.verify(requests[i], "bench");
        if (ctx instanceof Promise) {
          asyncAnswers++;
          ctx = await ctx;
        }
        if (ctx.denial !== null) throw deniedError(label, ctx, i);
      }
    };
    await Promise.all(Array.from({ length: Math.min(inFlight, n) }, lane));
  }
  const elapsed = performance.now() - start;
  return { us: (elapsed * 1000) / n, cpuUs: cpuSince(cpu) / n, asyncAnswers };
}

/** Runs the raw primitive over the batch's raw inputs; wall and CPU µs per request. */
function timePrimitive(primitive, raws) {
  const cpu = process.cpuUsage();
  const start = performance.now();
  const sink = primitive(raws);
  const elapsed = performance.now() - start;
  if (sink < 0) throw new Error("unreachable"); // keeps the results observable
  return { us: (elapsed * 1000) / raws.length, cpuUs: cpuSince(cpu) / raws.length };
}

/** `count` signed requests whose times are distinct milliseconds up to `now`. */
function generate(sign, now, count) {
  const requests = new Array(count);
  const raws = new Array(count);
  for (let i = 0; i < count; i++) {
    const signed = sign(now - (count - 1) + i);
    requests[i] = signed.request;
    raws[i] = signed.raw;
  }
  return { requests, raws };
}

/** Times one request on its own (a cold key's first request); ms. */
async function timeOne(core, request, label) {
  const start = performance.now();
  let ctx = core.verify(request, "bench");
  if (ctx instanceof Promise) ctx = await ctx;
  const ms = performance.now() - start;
  if (ctx.denial !== null) throw deniedError(label, ctx, 0);
  return ms;
}

async function runCase(env, def, settings, progress) {
  const { core, clock, keys, cold } = env;
  const key = keys[def.key];
  const { batches, batchSize, warmupBatches } = settings[def.cost];
  if (batchSize > STEP_MS) throw new Error(`batchSize ${batchSize} exceeds ${STEP_MS}: request times would repeat`);
  const sign = def.signer(key);
  const primitive = def.primitive(key);
  const series = { pipeline: [], raw: [], pipelineCpu: [], rawCpu: [] };
  let asyncAnswers = 0;

  // The key's first request: loads it from the store (and pays whatever a scheme does once per key).
  if (!cold.has(def.key)) {
    clock.ms += STEP_MS;
    cold.set(def.key, await timeOne(core, sign(clock.ms).request, def.id));
  }

  for (let b = -warmupBatches; b < batches; b++) {
    clock.ms += STEP_MS;
    const { requests, raws } = generate(sign, clock.ms, batchSize);
    const measured = b >= 0;
    let pipeline = null;
    let raw = null;
    const steps = [
      async () => {
        pipeline = await timePipeline(core, requests, def.inFlight, def.id);
      },
      () => {
        raw = timePrimitive(primitive, raws);
      },
    ];
    if (b % 2 !== 0) steps.reverse();
    for (const step of steps) await step();
    if (measured) {
      series.pipeline.push(pipeline.us);
      series.pipelineCpu.push(pipeline.cpuUs);
      series.raw.push(raw.us);
      series.rawCpu.push(raw.cpuUs);
      asyncAnswers += pipeline.asyncAnswers;
    }
    // Let the core's timers (last-used flush, background key refresh) run between batches.
    await turn();
  }
  progress(`dialects: ${def.id} done (${batches} batches of ${batchSize})`);
  return { ...def, batches, batchSize, warmupBatches, series, asyncAnswers, requests: batches * batchSize };
}

/**
 * The first requests of an OKX key nobody has used yet, `count` of them in flight at once: none
 * is answered before a slow passphrase hash has run for it. Returns the wall time until all are
 * answered (ms), to compare with one cold request on its own.
 */
async function okxColdBurst(env, count) {
  const { core, clock, coldOkx } = env;
  clock.ms += STEP_MS;
  const { requests } = generate(okxColdSigner(coldOkx.id, coldOkx.secret), clock.ms, count);
  const start = performance.now();
  const contexts = await Promise.all(requests.map((r) => core.verify(r, "bench")));
  const ms = performance.now() - start;
  contexts.forEach((ctx, i) => {
    if (ctx.denial !== null) throw deniedError("okx cold burst", ctx, i);
  });
  return ms;
}

/**
 * What the Kraken replay stage (the embedded increasing-nonce store, with the scheme's default
 * window) costs per claim when one key's nonces are `spacing` apart: `claims` increasing claims
 * after as many unmeasured ones. Returns µs per claim for each spacing.
 */
function krakenReplayCost(spacings, claims) {
  return spacings.map((spacing) => {
    const store = new MemorySequenceStore();
    const step = BigInt(spacing);
    let nonce = BigInt(Date.now());
    const run = () => {
      for (let i = 0; i < claims; i++) {
        nonce += step;
        if (store.claim("bench", nonce, KRAKEN_DEFAULT_NONCE_WINDOW) !== "fresh") throw new Error("kraken replay probe: claim refused");
      }
    };
    run();
    const start = performance.now();
    run();
    return { spacing, us: ((performance.now() - start) * 1000) / claims };
  });
}

/**
 * Runs benchmark 4. `settings` has `hmac` and `signature` entries of `{ batches, batchSize,
 * warmupBatches }` (batchSize at most 1000); `coldBurst` is the in-flight count of the OKX
 * cold-start probe; `sequenceClaims` the claim count of the Kraken replay probe; `progress` is
 * called with a line of text now and then. Returns one result per case (its per-batch series in
 * µs per request), the first-request time of every key (ms), the OKX cold-burst time (ms) and the
 * Kraken replay cost by nonce spacing (µs per claim).
 */
export async function runDialectBench({ hmac, signature, coldBurst, sequenceClaims, progress = () => undefined }) {
  const clock = { ms: Date.now() };
  const names = Object.keys(KEY_DEFS);
  const pairs = names.map((name) => (KEY_DEFS[name].pair === null ? null : KEY_DEFS[name].pair()));
  const inputs = names.map((name, i) => KEY_DEFS[name].input(pairs[i]));
  // One more OKX key, for the cold-start probe.
  inputs.push(KEY_DEFS.okx.input(null));
  const bench = await createBenchCore({ now: () => clock.ms, routes: DIALECT_ROUTES, keys: inputs });
  try {
    const keys = {};
    names.forEach((name, i) => {
      keys[name] = { ...bench.keys[i], pair: pairs[i] };
    });
    const env = { core: bench.core, clock, keys, cold: new Map(), coldOkx: bench.keys[names.length] };
    const settings = { hmac, signature };
    const cases = [];
    for (const def of DIALECT_CASES) cases.push(await runCase(env, def, settings, progress));
    const coldBurstMs = await okxColdBurst(env, coldBurst);
    const firstRequest = names.map((name) => ({ key: name, label: KEY_DEFS[name].label, ms: env.cold.get(name) }));
    const krakenReplay = krakenReplayCost([1, 10, 100, 1000], sequenceClaims);
    return { cases, firstRequest, coldBurst: { count: coldBurst, ms: coldBurstMs }, krakenReplay };
  } finally {
    await bench.close();
  }
}
