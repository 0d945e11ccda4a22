/**
 * The servers of the gateway benchmark, each run in its own process (forked by gateway-bench.js)
 * so that the load generator, the proxy under test and the upstream do not share an event loop:
 *
 *   node bench/servers.js upstream
 *   node bench/servers.js gateway <upstream-origin> full|pass-through|timing|memory-limits
 *   node bench/servers.js gateway <upstream-origin> redis-limits <redis-url> <key-prefix>
 *   node bench/servers.js gateway <upstream-origin> sessions
 *   node bench/servers.js plain-proxy <upstream-origin>
 *
 * Gateway modes: `full` (the whole pipeline, no limits), `pass-through` (no pipeline), `timing`
 * (full, with Server-Timing), `memory-limits` (full, with the default limits of a configured
 * gateway, raised so that nothing is refused: core.js benchLimits(); hot state in process
 * memory) and `redis-limits` (the same limits, hot state in Redis: a RedisHotStore on the given
 * URL and key prefix, as `hot.backend: "redis"` sets one up) and `sessions` (full, no limits, with
 * session logon, an Ed25519 key whose private half — a throwaway — it reports to the parent).
 *
 * Each listens on 127.0.0.1 on a free port and reports `{ port, ... }` over the IPC channel. It
 * answers the message "cpu" with its CPU time so far and the requests it has received, shuts
 * down on "stop", and shuts down too if the parent goes away.
 */
import { Buffer } from "node:buffer";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { createServer } from "node:http";
import process from "node:process";
import { Forwarder, Gateway, IdentitySigner } from "../packages/portcullis/dist/index.js";
import { silentLogger } from "../packages/portcullis/dist/log/logger.js";
import { RedisHotStore } from "../packages/portcullis/dist/storage/redis/hot.js";
import { SessionEndpoints } from "../packages/portcullis/dist/gateway/session-endpoints.js";
import { benchLimits, createBenchCore } from "./core.js";
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
  const port = await listen(server);
  return { info: { port }, stop: () => closeServer(server), server };
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
  });
  // The parent went away without asking: clean up (the gateway's temp data dir) and go.
  process.on("disconnect", shutdown);
  process.send({ ready: true, ...running.info });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
