/**
 * Benchmarks 5 and 6: what rate limits cost a request in process.
 *
 * 5. The added cost of limits in memory mode. Two cores built alike (embedded stores, the memory
 *    hot store), one without limits and one with the default limits of a gateway started from a
 *    config (benchLimits(): DEFAULT_LIMITS' names, scopes and windows, every limit raised so that
 *    nothing is ever refused), verify the same kind of freshly signed requests, batch by batch,
 *    back to back, in alternating order, exactly as benchmark 1 does; the figure is the per-batch
 *    difference in µs per request. The clock is frozen within a batch and steps one second between
 *    batches, as in benchmark 1 (the buckets drain and the replay map is swept as in real time).
 *
 * 6. Redis round trips per request. A core with the same limits and a RedisHotStore on a private
 *    redis-server (redis-server.js) verifies `requests` GETs, then as many POST orders, one at a
 *    time, real clock; Redis's own statistics say what reached it: INFO commandstats (EVAL and
 *    EVALSHA calls are the admissions; the commands a script runs are counted there too, under
 *    their own names) and a MONITOR connection, which reports every command with the address of
 *    the connection that sent it, or "lua" for a command run by a script, so the top-level
 *    commands of the hot store's own connection can be counted apart from the script's and from
 *    the measuring connection's.
 */
import { Buffer } from "node:buffer";
import { randomBytes } from "node:crypto";
import { setImmediate as turn } from "node:timers/promises";
import { RedisHotStore } from "../packages/portcullis/dist/storage/redis/hot.js";
import { benchLimits, createBenchCore, pastFence } from "./core.js";
import { generate, timePipeline } from "./pipeline-bench.js";
import { STATS_CONNECTION, commandDelta } from "./redis-server.js";
import { ORDER_BODY, RequestSigner } from "./signing.js";

const EMPTY = Buffer.alloc(0);

const signerOf = (bench) => new RequestSigner(bench.keyId, Buffer.from(bench.secret, "utf8"));

/** The names of the limits a request was charged against (from the pipeline's context). */
function chargedNames(ctx) {
  if (ctx.charges === null || ctx.chargeStates === null) throw new Error("a request with limits on carries no charges");
  return ctx.charges.map((c) => c.spec.name);
}

/**
 * Runs benchmark 5. Options as benchmark 1: `batches` measured batches of `batchSize` requests
 * after `warmupBatches`. Returns the per-batch series (µs per request) for both cores and both
 * requests, and the limits each request was charged against (read from the first batch).
 */
export async function runLimitsCostBench({ batches, batchSize, warmupBatches, progress = () => undefined }) {
  const clock = { ms: Date.now() };
  const now = () => clock.ms;
  const limits = benchLimits();
  const plain = await createBenchCore({ now });
  const limited = await createBenchCore({ now, limits });
  try {
    const plainSigner = signerOf(plain);
    const limitedSigner = signerOf(limited);
    const series = { getPlain: [], getLimits: [], postPlain: [], postLimits: [] };
    const charged = { GET: null, POST: null };
    const onContext = (method) => (ctx) => {
      const names = chargedNames(ctx).join(", ");
      if (charged[method] === null) charged[method] = names;
      else if (charged[method] !== names) throw new Error(`${method} requests were charged differently: ${charged[method]} / ${names}`);
    };

    for (let b = -warmupBatches; b < batches; b++) {
      clock.ms += 1000;
      const created = Math.floor(clock.ms / 1000);
      const getPlain = generate(plainSigner, "GET", created, batchSize).requests;
      const getLimits = generate(limitedSigner, "GET", created, batchSize).requests;
      const postPlain = generate(plainSigner, "POST", created, batchSize).requests;
      const postLimits = generate(limitedSigner, "POST", created, batchSize).requests;
      const measured = b >= 0;
      const record = (name, value) => {
        if (measured) series[name].push(value);
      };
      // The first batch checks (after its timed loops) what every request was charged.
      const first = b === -warmupBatches;

      // Each compared pair runs back to back, in alternating order from one batch to the next.
      const steps = [
        async () => record("getPlain", await timePipeline(plain.core, getPlain)),
        async () => record("getLimits", await timePipeline(limited.core, getLimits, first ? onContext("GET") : undefined)),
        async () => record("postPlain", await timePipeline(plain.core, postPlain)),
        async () => record("postLimits", await timePipeline(limited.core, postLimits, first ? onContext("POST") : undefined)),
      ];
      if (b % 2 !== 0) steps.reverse();
      for (const step of steps) await step();

      if (measured && (b + 1) % 100 === 0) progress(`limits cost: ${b + 1}/${batches} batches`);
      await turn();
    }
    return { batches, batchSize, warmupBatches, series, charged, specs: limits.specs };
  } finally {
    await plain.close();
    await limited.close();
  }
}

/** "evalsha 2000, get 8000" from a Map of name -> count, largest first. */
function listCounts(counts, per = 1) {
  const entries = [...counts].sort((a, b) => b[1] - a[1]);
  return entries.map(([name, n]) => `${name.toUpperCase()} ${per === 1 ? n : (n / per).toFixed(2)}`).join(", ");
}

function countBy(list, keyOf) {
  const counts = new Map();
  for (const x of list) counts.set(keyOf(x), (counts.get(keyOf(x)) ?? 0) + 1);
  return counts;
}

/**
 * Runs benchmark 6 against `redis` (a private server from startPrivateRedis). Returns, per request
 * kind, the requests sent, the commandstats delta, and MONITOR's top-level commands of the hot
 * store's connection, of any other connection, and the commands run inside scripts.
 */
export async function runRoundTripCount({ redis, requests, progress = () => undefined }) {
  const limits = benchLimits();
  const prefix = `pcbench:${randomBytes(4).toString("hex")}:rt:`;
  const hot = new RedisHotStore({ url: redis.url, prefix, policy: limits.shield });
  await hot.ready();
  await pastFence(hot);
  const bench = await createBenchCore({ limits, hot });
  const monitor = await redis.stats.monitor();
  try {
    const signer = signerOf(bench);
    // The hot store's connection: the one client that is neither ours (statistics) nor a monitor.
    const clients = (await redis.stats.clients()).filter((c) => c.name !== STATS_CONNECTION && !c.flags.includes("O"));
    if (clients.length !== 1) throw new Error(`expected one hot-store connection to the private redis, found ${clients.length}`);
    const hotAddress = clients[0].addr;

    const phases = [];
    for (const method of ["GET", "POST"]) {
      await monitor.mark(method);
      const before = await redis.stats.commands();
      let charged = null;
      for (let i = 0; i < requests; i++) {
        const signed = signer.sign(method, Math.floor(Date.now() / 1000));
        const req = { method, url: signed.url, headers: signed.headers, body: method === "POST" ? ORDER_BODY : EMPTY, socketAddress: "127.0.0.1" };
        const ctx = await bench.core.verify(req, "bench");
        if (ctx.denial !== null) throw new Error(`round trips: ${method} request ${i} was denied: ${ctx.denial.code} ${ctx.denial.detail ?? ""}`);
        charged ??= chargedNames(ctx).join(", ");
      }
      const after = await redis.stats.commands();
      phases.push({ method, requests, charged, delta: commandDelta(before, after) });
      progress(`round trips: ${requests} ${method} requests through the redis hot store`);
    }
    await monitor.mark("done");

    return {
      version: redis.version,
      prefix,
      phases: phases.map((p) => {
        const events = monitor.events.filter((e) => e.phase === p.method);
        const scripts = (p.delta.get("evalsha") ?? 0) + (p.delta.get("eval") ?? 0);
        const fromHot = events.filter((e) => e.source === hotAddress);
        const inScripts = events.filter((e) => e.source === "lua");
        const fromOthers = events.filter((e) => e.source !== hotAddress && e.source !== "lua");
        return {
          ...p,
          scripts,
          perRequest: scripts / p.requests,
          hotTopLevel: fromHot.length,
          hotCommands: listCounts(countBy(fromHot, (e) => e.command)),
          hotOther: listCounts(countBy(fromHot.filter((e) => e.command !== "evalsha" && e.command !== "eval"), (e) => e.command)),
          scriptCommands: listCounts(countBy(inScripts, (e) => e.command), p.requests),
          otherConnections: listCounts(countBy(fromOthers, (e) => e.command)),
          deltaText: listCounts(p.delta),
        };
      }),
    };
  } finally {
    monitor.stop();
    await bench.close();
  }
}
