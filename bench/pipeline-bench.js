/**
 * Benchmark 1: the in-process pipeline against the raw HMAC-SHA256 of the same signature bases.
 *
 * Each batch pre-generates (untimed) a few thousand freshly signed requests, then times, back to
 * back, the pipeline over them and `createHmac(...).update(base).digest()` over the very same
 * bases. The pipeline does everything a request costs in embedded mode: address, routing, parsing
 * the signature headers, the key cache, freshness, rebuilding the signature base and checking the
 * HMAC, claiming the nonce, authorization; the HMAC loop is the floor nothing can go below.
 *
 * The core's clock is frozen within a batch (so `created` is always fresh) and steps one second
 * between batches, so nonces expire and are swept as they would be in real time, and the replay
 * map stays at a realistic size instead of growing for the whole run.
 */
import { Buffer } from "node:buffer";
import { createHmac } from "node:crypto";
import { performance } from "node:perf_hooks";
import { setImmediate as turn } from "node:timers/promises";
import { createBenchCore } from "./core.js";
import { ORDER_BODY, RequestSigner } from "./signing.js";

const EMPTY = Buffer.alloc(0);

/** `count` signed requests in the pipeline's input shape, with their signature bases. */
export function generate(signer, method, created, count) {
  const requests = new Array(count);
  const bases = new Array(count);
  for (let i = 0; i < count; i++) {
    const signed = signer.sign(method, created);
    requests[i] = {
      method,
      url: signed.url,
      headers: signed.headers,
      body: method === "POST" ? ORDER_BODY : EMPTY,
      socketAddress: "127.0.0.1",
    };
    bases[i] = signed.base;
  }
  return { requests, bases };
}

/** Every benchmark request must be allowed: a denial means the figures measure the wrong work. */
function deniedError(ctx, i) {
  return new Error(`request ${i} was denied: ${ctx.denial.code} ${ctx.denial.detail ?? ""}`);
}

/**
 * Runs every request through `core.verify`; returns microseconds per request. Awaits only when
 * the pipeline answers with a promise (a key-cache miss); with a warm cache it never does.
 * `onContext`, when given, sees each context after the timed loop.
 */
export async function timePipeline(core, requests, onContext) {
  const contexts = onContext === undefined ? null : new Array(requests.length);
  const start = performance.now();
  for (let i = 0; i < requests.length; i++) {
    let ctx = core.verify(requests[i], "bench");
    if (ctx instanceof Promise) ctx = await ctx;
    if (ctx.denial !== null) throw deniedError(ctx, i);
    if (contexts !== null) contexts[i] = ctx;
  }
  const elapsed = performance.now() - start;
  if (contexts !== null) contexts.forEach(onContext);
  return (elapsed * 1000) / requests.length;
}

/** The baseline: one HMAC-SHA256 per signature base, keyed with the secret's bytes. */
function timeHmac(keyBytes, bases) {
  let sink = 0;
  const start = performance.now();
  for (let i = 0; i < bases.length; i++) {
    sink ^= createHmac("sha256", keyBytes).update(bases[i]).digest()[0];
  }
  const elapsed = performance.now() - start;
  if (sink < 0) throw new Error("unreachable"); // keeps the digests observable
  return (elapsed * 1000) / bases.length;
}

/**
 * Runs benchmark 1. Options: `batches` measured batches (after `warmupBatches` unmeasured ones),
 * `batchSize` requests per batch, `progress` a function called with a line of text now and then.
 * Returns the per-batch series (µs per request) and the per-stage samples (ms per request).
 */
export async function runPipelineBench({ batches, batchSize, warmupBatches, progress = () => undefined }) {
  const clock = { ms: Date.now() };
  const now = () => clock.ms;
  const plain = await createBenchCore({ now });
  const timed = await createBenchCore({ now, timing: true });
  try {
    const keyBytes = Buffer.from(plain.secret, "utf8");
    const signer = new RequestSigner(plain.keyId, keyBytes);
    const timingSigner = new RequestSigner(timed.keyId, Buffer.from(timed.secret, "utf8"));
    const stageNames = timed.core.pipeline.stageNames;
    const series = { getPipeline: [], getHmac: [], postPipeline: [], postHmac: [], timedPipeline: [] };
    const stageSamples = stageNames.map(() => []);

    for (let b = -warmupBatches; b < batches; b++) {
      clock.ms += 1000;
      const created = Math.floor(clock.ms / 1000);
      const get = generate(signer, "GET", created, batchSize);
      const post = generate(signer, "POST", created, batchSize);
      const timing = generate(timingSigner, "GET", created, batchSize);
      const measured = b >= 0;
      const record = (name, value) => {
        if (measured) series[name].push(value);
      };

      // The compared pairs run back to back, in alternating order from one batch to the next.
      const steps = [
        async () => record("getPipeline", await timePipeline(plain.core, get.requests)),
        async () => record("getHmac", timeHmac(keyBytes, get.bases)),
        async () => record("postPipeline", await timePipeline(plain.core, post.requests)),
        async () => record("postHmac", timeHmac(keyBytes, post.bases)),
      ];
      if (b % 2 !== 0) steps.reverse();
      for (const step of steps) await step();

      // Per-stage durations, on another core with timing on (it costs a clock read per stage).
      const perRequest = await timePipeline(timed.core, timing.requests, (ctx) => {
        if (!measured || ctx.timings === null) return;
        ctx.timings.forEach((ms, s) => stageSamples[s].push(ms));
      });
      record("timedPipeline", perRequest);

      if (measured && (b + 1) % 10 === 0) progress(`pipeline: ${b + 1}/${batches} batches`);
      // Let the core's timers (change feed, last-used flush, key refresh) run between batches.
      await turn();
    }
    return { batches, batchSize, warmupBatches, series, stageNames, stageSamples };
  } finally {
    await plain.close();
    await timed.close();
  }
}
