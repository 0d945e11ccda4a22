/**
 * The servers of the gateway benchmark, each run in its own process (forked by gateway-bench.js)
 * so that the load generator, the proxy under test and the upstream do not share an event loop:
 *
 *   node bench/servers.js upstream
 *   node bench/servers.js gateway <upstream-origin> full|pass-through|timing
 *   node bench/servers.js plain-proxy <upstream-origin>
 *
 * Each listens on 127.0.0.1 on a free port and reports `{ port, ... }` over the IPC channel. It
 * answers the message "cpu" with its CPU time so far, shuts down on "stop", and shuts down too if
 * the parent goes away.
 */
import { Buffer } from "node:buffer";
import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import process from "node:process";
import { Forwarder, Gateway, IdentitySigner } from "../packages/portcullis/dist/index.js";
import { silentLogger } from "../packages/portcullis/dist/log/logger.js";
import { createBenchCore } from "./core.js";
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
  return { info: { port }, stop: () => closeServer(server) };
}

async function startGateway(upstream, mode) {
  if (!["full", "pass-through", "timing"].includes(mode)) throw new Error(`unknown gateway mode ${mode}`);
  const timing = mode === "timing";
  const bench = await createBenchCore({ timing });
  const logger = silentLogger();
  const gateway = new Gateway({
    pipeline: bench.core.pipeline,
    forwarder: new Forwarder({ upstream }),
    identity: new IdentitySigner(randomBytes(32)),
    logger,
    passThrough: mode === "pass-through",
  });
  const address = await gateway.listen(0, "127.0.0.1");
  return {
    // The secret goes to the parent only: it signs the requests (a throwaway key in a temp dir).
    info: { port: address.port, keyId: bench.keyId, secret: bench.secret },
    async stop() {
      await gateway.close(0);
      await bench.close();
    },
  };
}

async function startPlainProxy(upstream) {
  const server = createPlainProxy(upstream);
  const port = await listen(server);
  return { info: { port }, stop: () => closeServer(server) };
}

async function main() {
  const [role, upstream, mode] = process.argv.slice(2);
  let running;
  if (role === "upstream") running = await startUpstream();
  else if (role === "gateway") running = await startGateway(upstream, mode);
  else if (role === "plain-proxy") running = await startPlainProxy(upstream);
  else throw new Error(`unknown role ${String(role)}`);

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
    // CPU time used so far (µs), so the parent can charge each run its share.
    else if (message === "cpu") process.send({ cpu: process.cpuUsage() });
  });
  // The parent went away without asking: clean up (the gateway's temp data dir) and go.
  process.on("disconnect", shutdown);
  process.send({ ready: true, ...running.info });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
