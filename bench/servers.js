/**
 * The servers of the gateway benchmark, each run in its own process (forked by gateway-bench.js)
 * so that the load generator, the proxy under test and the upstream do not share an event loop:
 *
 *   node bench/servers.js upstream
 *   node bench/servers.js gateway <upstream-origin> full|pass-through|timing|memory-limits
 *   node bench/servers.js gateway <upstream-origin> redis-limits <redis-url> <key-prefix>
 *   node bench/servers.js gateway <upstream-origin> sessions
 *   node bench/servers.js plain-proxy <upstream-origin>
 *   node bench/servers.js soak-gateway <upstream-origin> <config-json> [leak]
 *   node bench/servers.js wrk-gateway <upstream-origin> <config-json> [pass-through]
 *
 * Gateway modes: `full` (the whole pipeline, no limits), `pass-through` (no pipeline), `timing`
 * (full, with Server-Timing), `memory-limits` (full, with the default limits of a configured
 * gateway, raised so that nothing is refused: core.js benchLimits(); hot state in process
 * memory) and `redis-limits` (the same limits, hot state in Redis: a RedisHotStore on the given
 * URL and key prefix, as `hot.backend: "redis"` sets one up) and `sessions` (full, no limits, with
 * session logon, an Ed25519 key whose private half — a throwaway — it reports to the parent).
 *
 * The upstream answers every request with a small account document, and completes WebSocket
 * upgrades with an echo of each message (as `{ id, status: 200, result: {} }`).
 *
 * `soak-gateway` is the soak's gateway (soak.js): a whole configured Portcullis, started the way
 * `portcullis start` starts one (startPortcullis over a fresh data directory — on PostgreSQL when
 * the sections' `store` names it — with the given config's sections and this upstream), so its heap, RSS and descriptors are the gateway's alone.
 * It creates keys on request (`{ createKeys: [input…] }` → `{ keys: [{ id, secret }…] }`) and
 * answers `{ sample: true }` with its own measurements after a full garbage collection (heap used,
 * of which compiled code, external memory, RSS, open descriptors, event-loop delay since the
 * previous sample), and `{ loopDelay: "reset" | "read" }` with the event loop's delay at 1 ms
 * resolution since the last reset (bench/loop-delay.js). `leak` makes it keep 4 KiB
 * per request it receives: a deliberate leak, to show that the soak's criteria catch one.
 *
 * `wrk-gateway` is benchmark 17's (wrk-bench.js): the soak gateway's whole Portcullis, with its
 * event-loop delay sampled at a 1 ms resolution (reset and read over IPC around each run); with
 * `pass-through`, a Gateway with the pipeline off over the same running core is the one served.
 *
 * Each listens on 127.0.0.1 on a free port and reports `{ port, ... }` over the IPC channel. It
 * answers the message "cpu" with its CPU time so far and the requests it has received, shuts
 * down on "stop", and shuts down too if the parent goes away.
 */
import { Buffer } from "node:buffer";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer } from "node:http";
import { monitorEventLoopDelay } from "node:perf_hooks";
import process from "node:process";
import { getHeapSpaceStatistics, setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { WebSocketServer } from "ws";
import {
  Forwarder,
  Gateway,
  IdentitySigner,
  initDataDir,
  parseConfig,
  parseCreateKeyInput,
  startPortcullis,
  valueOrThrow,
} from "../packages/portcullis/dist/index.js";
import { silentLogger } from "../packages/portcullis/dist/log/logger.js";
import { RedisHotStore } from "../packages/portcullis/dist/storage/redis/hot.js";
import { SessionEndpoints } from "../packages/portcullis/dist/gateway/session-endpoints.js";
import { benchLimits, createBenchCore, pastFence } from "./core.js";
import { SCOPES } from "./signing.js";
import { createPlainProxy } from "./plain-proxy.js";

/** What the upstream answers: a small account document, as a venue's API would. */
const ACCOUNT = Buffer.from(
  JSON.stringify({
    accountType: "SPOT",
    canTrade: true,
    balances: [
      { asset: "BTC", free: "0.51200000", locked: "0.00000000" },
      { asset: "USDT", free: "10250.00000000", locked: "500.00000000" },
    ],
  }),
);

function listen(server) {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      resolve(server.address().port);
    });
  });
}

function closeServer(server) {
  return new Promise((resolve) => {
    server.close(() => {
      resolve();
    });
    server.closeAllConnections();
  });
}

async function startUpstream() {
  const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    req.resume();
    res.writeHead(200, { "content-type": "application/json", "content-length": ACCOUNT.length });
    res.end(ACCOUNT);
  });
  const wss = new WebSocketServer({ noServer: true });
  wss.on("connection", (ws) => {
    ws.on("error", () => undefined);
    ws.on("message", (data) => {
      let id = null;
      try {
        id = JSON.parse(data.toString()).id ?? null;
      } catch {
        // not JSON: answered with a null id
      }
      ws.send(JSON.stringify({ id, status: 200, result: {} }));
    });
  });
  server.on("upgrade", (req, socket, head) => {
    socket.on("error", () => undefined);
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit("connection", ws, req));
  });
  const port = await listen(server);
  return {
    info: { port },
    stop: () => closeServer(server),
    server,
    // The soak asks it to close its idle connections (and WebSockets), to see the gateway's go.
    async onMessage(message) {
      if (message.closeIdle !== true) return undefined;
      for (const ws of wss.clients) ws.terminate();
      server.closeIdleConnections();
      return { closed: true };
    },
  };
}

/** The limits and hot store of a gateway mode: none (memory) unless the mode has limits. */
async function hotStateOf(mode, redisUrl, prefix) {
  if (mode !== "memory-limits" && mode !== "redis-limits") return {};
  const limits = benchLimits();
  if (mode === "memory-limits") return { limits };
  if (redisUrl === undefined || prefix === undefined) throw new Error("redis-limits needs a redis URL and a key prefix");
  // As the runtime opens it (runtime.ts openHotStore): default command timeout, the limits' shield.
  const hot = new RedisHotStore({ url: redisUrl, prefix, policy: limits.shield });
  try {
    await hot.ready();
    await pastFence(hot);
  } catch (err) {
    await hot.close();
    throw err;
  }
  return { limits, hot };
}

async function startGateway(upstream, mode, redisUrl, prefix) {
  if (!["full", "pass-through", "timing", "memory-limits", "redis-limits", "sessions"].includes(mode)) throw new Error(`unknown gateway mode ${mode}`);
  const timing = mode === "timing";
  const sessions = mode === "sessions";
  const pair = sessions ? generateKeyPairSync("ed25519") : null;
  const bench = await createBenchCore({
    timing,
    ...(await hotStateOf(mode, redisUrl, prefix)),
    ...(pair === null ? {} : { sessions, keys: [{ account: "bench", scopes: SCOPES, algorithm: "ed25519", publicKey: pair.publicKey.export({ type: "spki", format: "pem" }).toString() }] }),
  });
  const logger = silentLogger();
  const gateway = new Gateway({
    pipeline: bench.core.pipeline,
    forwarder: new Forwarder({ upstream }),
    identity: new IdentitySigner(randomBytes(32)),
    logger,
    passThrough: mode === "pass-through",
    ...(sessions ? { sessions: new SessionEndpoints(bench.core) } : {}),
  });
  const address = await gateway.listen(0, "127.0.0.1");
  return {
    // The secret goes to the parent only: it signs the requests (a throwaway key in a temp dir).
    info: { port: address.port, keyId: bench.keyId, secret: bench.secret, ...(pair === null ? {} : { privateKeyPem: pair.privateKey.export({ type: "pkcs8", format: "pem" }).toString() }) },
    server: gateway.server,
    async stop() {
      await gateway.close(0);
      await bench.close();
    },
  };
}

/** Heap, RSS and descriptors after a full collection, and the event-loop delay since the last sample. */
function sampler() {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc");
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  return () => {
    gc();
    const memory = process.memoryUsage();
    // Compiled code (the code spaces) grows for minutes as the JIT optimises; objects are the rest.
    const code = getHeapSpaceStatistics().reduce((n, space) => n + (space.space_name.startsWith("code") ? space.space_used_size : 0), 0);
    const sample = {
      heapUsed: memory.heapUsed,
      heapObjects: memory.heapUsed - code,
      code,
      rss: memory.rss,
      external: memory.external,
      fds: readdirSync("/proc/self/fd").length - 1, // less the one readdirSync itself holds open
      loopDelayP99Ms: delay.percentile(99) / 1e6,
      loopDelayMaxMs: delay.max / 1e6,
    };
    delay.reset();
    return sample;
  };
}

/**
 * The event loop's delay at 1 ms resolution (bench/loop-delay.js), since the last reset. Node's
 * histogram holds each interval between its 1 ms timer's callbacks (the 1 ms included); the
 * figures here are what each interval exceeded the 1 ms by, in ms: how long the loop was kept
 * from the timer. `over1ms`/`over2ms` count the intervals late by more than that.
 */
function fineLoopDelay() {
  const RESOLUTION_NS = 1e6;
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const late = (ns) => Math.max(0, Math.round((ns - RESOLUTION_NS) / 1e3) / 1e3);
  const above = (limitMs) => {
    // The share of intervals at or below each recorded value, walked upwards to the limit.
    let before = 0;
    for (const [pct, value] of delay.percentiles) {
      if (value - RESOLUTION_NS > limitMs * 1e6) return Math.round(((100 - before) / 100) * delay.count);
      before = pct;
    }
    return 0;
  };
  return {
    reset() {
      delay.reset();
      return { reset: true };
    },
    read() {
      return {
        count: delay.count,
        p50: late(delay.percentile(50)),
        p90: late(delay.percentile(90)),
        p99: late(delay.percentile(99)),
        p999: late(delay.percentile(99.9)),
        max: late(delay.max),
        over1ms: above(1),
        over2ms: above(2),
      };
    },
  };
}

/**
 * The soak's gateway: `portcullis start` over a fresh data directory, with `sections` (the
 * config's routes, limits, websocket… as JSON) and this upstream; keys created over IPC.
 */
async function startSoakGateway(upstream, sections, leak) {
  const base = mkdtempSync(join(tmpdir(), "portcullis-soak-"));
  // A directory init creates: one that exists without a store.json counts as a SQLite one.
  const dataDir = join(base, "data");
  let running;
  try {
    const raw = JSON.parse(sections);
    // Sections that name a PostgreSQL store get a data directory on it (its store.json), as
    // `portcullis init --store URL --schema S` makes one; the config's store section agrees with it.
    const store = raw.store?.backend === "postgres" ? { backend: "postgres", url: raw.store.url, schema: raw.store.schema, poolSize: raw.store.poolSize ?? 10 } : undefined;
    await initDataDir(dataDir, "live", store);
    const config = parseConfig({ ...raw, dataDir, gateway: { ...raw.gateway, host: "127.0.0.1", port: 0, upstream }, admin: { enabled: false } }, dataDir);
    running = await startPortcullis(config, silentLogger());
  } catch (err) {
    rmSync(base, { recursive: true, force: true });
    throw err;
  }
  const sample = sampler();
  const fineDelay = fineLoopDelay();
  const kept = [];
  if (leak) running.gateway.server.on("request", () => kept.push(Buffer.alloc(4096, 1)));
  return {
    info: { port: running.gatewayAddress.port },
    server: running.gateway.server,
    running,
    async onMessage(message) {
      if (message.sample === true) return { sample: sample() };
      if (message.loopDelay === "reset") return { loopDelay: fineDelay.reset() };
      if (message.loopDelay === "read") return { loopDelay: fineDelay.read() };
      if (Array.isArray(message.createKeys)) {
        const keys = [];
        for (const input of message.createKeys) {
          const { key, secret } = await running.core.keys.create(valueOrThrow(parseCreateKeyInput(input, Date.now())), "soak");
          keys.push({ id: key.id, secret: secret ?? null });
        }
        return { keys };
      }
      return undefined;
    },
    async stop() {
      await running.close(0);
      rmSync(base, { recursive: true, force: true });
    },
  };
}

/**
 * The latency benchmark's gateway (wrk-bench.js): a whole configured Portcullis, started as
 * `portcullis start` starts one (startPortcullis over a fresh data directory, with `sections` and
 * this upstream). With `passThrough`, a second Gateway over the same running core, with the
 * pipeline off (as benchmark 2's pass-through mode), listens too and is the one reported and
 * counted: the gateway's own forwarding path, inside the same whole process. Keys are created
 * over IPC as for the soak gateway; the event-loop delay is sampled at a 1 ms resolution and read
 * over IPC (`{ loopDelay: "reset" }` before a run, `{ loopDelay: "read" }` after it).
 */
async function startWrkGateway(upstream, sections, passThrough) {
  const soak = await startSoakGateway(upstream, sections, false);
  const delay = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  delay.enable();
  let pass = null;
  if (passThrough) {
    pass = new Gateway({ pipeline: soak.running.core.pipeline, forwarder: new Forwarder({ upstream }), identity: new IdentitySigner(randomBytes(32)), logger: silentLogger(), passThrough: true });
    await pass.listen(0, "127.0.0.1");
  }
  return {
    info: { port: pass === null ? soak.info.port : pass.server.address().port, loopResolutionMs: LOOP_RESOLUTION_MS },
    server: pass === null ? soak.server : pass.server,
    async onMessage(message) {
      if (message.loopDelay === "reset") {
        delay.reset();
        return { reset: true };
      }
      if (message.loopDelay === "read") {
        // Each sample is the interval between two of the 1 ms timer's runs (ns).
        return { loopDelay: { p50: delay.percentile(50), p99: delay.percentile(99), max: delay.max, count: delay.count } };
      }
      return soak.onMessage(message);
    },
    async stop() {
      delay.disable();
      if (pass !== null) await pass.close(0);
      await soak.stop();
    },
  };
}

/** The event-loop delay histogram's resolution in the latency benchmark's gateway. */
const LOOP_RESOLUTION_MS = 1;

async function startPlainProxy(upstream) {
  const server = createPlainProxy(upstream);
  const port = await listen(server);
  return { info: { port }, stop: () => closeServer(server), server };
}

async function main() {
  const [role, upstream, mode, redisUrl, prefix] = process.argv.slice(2);
  let running;
  if (role === "upstream") running = await startUpstream();
  else if (role === "gateway") running = await startGateway(upstream, mode, redisUrl, prefix);
  else if (role === "plain-proxy") running = await startPlainProxy(upstream);
  else if (role === "soak-gateway") running = await startSoakGateway(upstream, mode, redisUrl === "leak");
  else if (role === "wrk-gateway") running = await startWrkGateway(upstream, mode, redisUrl === "pass-through");
  else throw new Error(`unknown role ${String(role)}`);

  // Requests received so far (every one, answered or not), for per-request figures.
  let requests = 0;
  running.server.on("request", () => {
    requests++;
  });

  let stopping = false;
  const shutdown = () => {
    if (stopping) return;
    stopping = true;
    running.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on("message", (message) => {
    if (message === "stop") shutdown();
    // CPU time used so far (µs) and requests received, so the parent can charge each run its share.
    else if (message === "cpu") process.send({ cpu: process.cpuUsage(), requests });
    // A role's own requests (the soak gateway's samples and keys), answered with the same `seq`.
    else if (message !== null && typeof message === "object" && running.onMessage !== undefined) {
      running.onMessage(message).then(
        (answer) => process.send({ seq: message.seq, ...answer }),
        (err) => process.send({ seq: message.seq, error: String(err) }),
      );
    }
  });
  // The parent went away without asking: clean up (the gateway's temp data dir) and go.
  process.on("disconnect", shutdown);
  process.send({ ready: true, ...running.info });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
