/**
 * Benchmarks 8-10: sessions.
 *
 *  8. In process: the per-request cost of the session path against the native HMAC scheme (a
 *     request signed with a session against one signed with an HMAC API key, the same route,
 *     paired batches as benchmark 1), and against per-request Ed25519 signatures (what a session
 *     saves an Ed25519 key).
 *  9. Gateway throughput for an Ed25519 key: requests signed with a session (an HMAC each, in the
 *     load generator and the gateway) against requests each signed with the Ed25519 key itself,
 *     through one full-security gateway, benchmark 2's machinery.
 * 10. Revocation fan-out: three `portcullis start` processes sharing one data directory and a
 *     private Redis (hot state and the change bus), the data directory polled only hourly; a key
 *     revoked through the first gateway's admin API, and how long until the other two refuse it.
 *     The same with the bus off (memory hot state, the data directory polled every 200 ms: the
 *     embedded default) as the baseline.
 */
import { Buffer } from "node:buffer";
import { fork } from "node:child_process";
import { createPrivateKey, createSecretKey, generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { setImmediate as turn } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { request } from "undici";
import { KeyService, initDataDir, openDataDir, parseCreateKeyInput, valueOrThrow } from "../packages/portcullis/dist/index.js";
import { createBenchCore } from "./core.js";
import { compareModes, serverSet } from "./gateway-bench.js";
import { generate, timePipeline } from "./pipeline-bench.js";
import { AUTHORITY, Ed25519RequestSigner, GET_PATH, NonceSource, RequestSigner, ROUTES, SCOPES } from "./signing.js";

/** The modes of benchmark 9, in the order of the first round. */
export const SESSION_MODES = ["ed25519-per-request", "ed25519-session"];

const CLI = fileURLToPath(new URL("../packages/portcullis/bin/portcullis.js", import.meta.url));

function ed25519Pair() {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  return { publicKeyPem: publicKey.export({ type: "spki", format: "pem" }).toString(), privateKey };
}

/** Logs on in process (what POST /portcullis/v1/session does once the pipeline allowed it). */
async function logonInProcess(core, keyId) {
  const key = await core.cache.load(keyId);
  const issued = await core.sessions.logon(key, {}, "127.0.0.1", Date.now());
  return new RequestSigner(issued.keyid, createSecretKey(Buffer.from(issued.secret, "utf8")));
}

/**
 * Runs benchmark 8. Options as benchmark 1. Returns per-batch series (µs per request) for the
 * API-key HMAC, the session, and the per-request Ed25519 requests (GET, every one allowed).
 */
export async function runSessionCostBench({ batches, batchSize, warmupBatches, progress = () => undefined }) {
  const clock = { ms: Date.now() };
  const pair = ed25519Pair();
  const bench = await createBenchCore({
    now: () => clock.ms,
    sessions: true,
    keys: [
      { account: "bench", scopes: SCOPES },
      { account: "bench", scopes: SCOPES, algorithm: "ed25519", publicKey: pair.publicKeyPem },
    ],
  });
  try {
    const keySigner = new RequestSigner(bench.keyId, createSecretKey(Buffer.from(bench.secret, "utf8")));
    const edId = bench.keys[1].id;
    const edSigner = new Ed25519RequestSigner(edId, pair.privateKey);
    // A session of the Ed25519 key: the case sessions are for.
    const sessionSigner = await logonInProcess(bench.core, edId);
    const series = { key: [], session: [], ed25519: [], edSession: [] };
    for (let b = -warmupBatches; b < batches; b++) {
      clock.ms += 1000;
      const created = Math.floor(clock.ms / 1000);
      const keyReqs = generate(keySigner, "GET", created, batchSize).requests;
      const sessionReqs = generate(sessionSigner, "GET", created, batchSize).requests;
      // Ed25519 requests are ~20× as slow: a tenth of the batch keeps the pairs short.
      const edCount = Math.max(10, Math.floor(batchSize / 10));
      const edReqs = generate(edSigner, "GET", created, edCount).requests;
      const edSessionReqs = generate(sessionSigner, "GET", created, edCount).requests;
      const steps = [
        async () => ["key", await timePipeline(bench.core, keyReqs)],
        async () => ["session", await timePipeline(bench.core, sessionReqs)],
        async () => ["ed25519", await timePipeline(bench.core, edReqs)],
        async () => ["edSession", await timePipeline(bench.core, edSessionReqs)],
      ];
      if (b % 2 !== 0) steps.reverse();
      for (const step of steps) {
        const [name, us] = await step();
        if (b >= 0) series[name].push(us);
      }
      if (b >= 0 && (b + 1) % 50 === 0) progress(`sessions in process: ${b + 1}/${batches} batches`);
      await turn();
    }
    return { batches, batchSize, warmupBatches, series };
  } finally {
    await bench.close();
  }
}

/** Logs on over HTTP to a gateway with an Ed25519 key; resolves to a session signer. */
export async function logonOverHttp(port, keyId, privateKey) {
  const nonces = new NonceSource();
  const created = Math.floor(Date.now() / 1000);
  const params = `("@method" "@authority" "@path" "@query");created=${created};nonce="${nonces.next()}";keyid="${keyId}";alg="ed25519"`;
  const base = `"@method": POST\n"@authority": ${AUTHORITY}\n"@path": /portcullis/v1/session\n"@query": ?\n"@signature-params": ${params}`;
  const signer = new Ed25519RequestSigner(keyId, privateKey);
  const res = await request(`http://127.0.0.1:${port}/portcullis/v1/session`, {
    method: "POST",
    headers: { host: AUTHORITY, "signature-input": `sig1=${params}`, signature: `sig1=:${signer.signBase(base)}:` },
  });
  const body = await res.body.json();
  if (res.statusCode !== 201) throw new Error(`logon refused: ${res.statusCode} ${JSON.stringify(body)}`);
  return new RequestSigner(body.keyid, createSecretKey(Buffer.from(body.secret, "utf8")));
}

/**
 * Runs benchmark 9 with benchmark 2's settings: one full-security gateway with sessions and an
 * Ed25519 key; the two modes differ only in how the load generator signs.
 */
export async function runSessionGatewayBench({ rounds, seconds, warmupSeconds, primeSeconds, connections, fixedRate, progress = () => undefined }) {
  const set = serverSet();
  try {
    const upstream = await set.start(["upstream"]);
    const origin = `http://127.0.0.1:${upstream.info.port}`;
    const gateway = await set.start(["gateway", origin, "sessions"]);
    const privateKey = createPrivateKey(gateway.info.privateKeyPem);
    const signers = {
      "ed25519-per-request": new Ed25519RequestSigner(gateway.info.keyId, privateKey),
      "ed25519-session": await logonOverHttp(gateway.info.port, gateway.info.keyId, privateKey),
    };
    const compared = await compareModes({
      modes: SESSION_MODES,
      servers: { "ed25519-per-request": gateway, "ed25519-session": gateway },
      upstream,
      signerOf: (mode) => signers[mode],
      rounds,
      seconds,
      warmupSeconds,
      primeSeconds,
      connections,
      fixedRate,
      label: "sessions gateway",
      progress,
    });
    return { rounds, seconds, warmupSeconds, primeSeconds, connections, fixedRate, ...compared };
  } finally {
    await set.stopAll();
  }
}

// --- benchmark 10 -----------------------------------------------------------------------------

/** Starts `portcullis start --config file`; resolves with its URLs once it logs that it started. */
function startGatewayProcess(file) {
  return new Promise((resolve, reject) => {
    const child = fork(CLI, ["start", "--config", file], { stdio: ["ignore", "pipe", "pipe", "ipc"] });
    let buffer = "";
    let stderr = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`gateway did not start: ${stderr.slice(-500)}`));
    }, 20_000);
    child.stderr.on("data", (d) => {
      stderr += d.toString();
    });
    child.stdout.on("data", (d) => {
      buffer += d.toString();
      for (const line of buffer.split("\n").slice(0, -1)) {
        if (!line.includes("portcullis started")) continue;
        clearTimeout(timer);
        child.stdout.resume();
        const { gateway, admin } = JSON.parse(line);
        resolve({ child, gateway, admin });
        return;
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited (${code}): ${stderr.slice(-500)}`));
    });
  });
}

function stopProcess(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null) {
      resolve();
      return;
    }
    const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

/** Headers of a bodiless native request signed by `signer` (HMAC), now. */
function signedHeaders(signer, method, path) {
  const params = `("@method" "@authority" "@path" "@query");created=${Math.floor(Date.now() / 1000)};nonce="${signer.nonces.next()}";keyid="${signer.keyId}";alg="hmac-sha256"`;
  const base = `"@method": ${method}\n"@authority": ${AUTHORITY}\n"@path": ${path}\n"@query": ?\n"@signature-params": ${params}`;
  return { host: AUTHORITY, "signature-input": `sig1=${params}`, signature: `sig1=:${signer.signBase(base)}:` };
}

async function status(base, signer, method, path) {
  const res = await request(`${base}${path}`, { method, headers: signedHeaders(signer, method, path) });
  await res.body.dump();
  return res.statusCode;
}

/**
 * One fan-out measurement: `count` keys, each revoked through the first gateway's admin API while
 * the other gateways are probed (a signed GET at a time each) until they refuse it. Returns the
 * latencies (ms) from the admin API's answer to each gateway's first refusal.
 */
async function measureFanout({ dataDir, redis, bus, count, progress, label }) {
  const upstream = createServer((req, res) => {
    req.resume();
    res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
  });
  await new Promise((resolve) => upstream.listen(0, "127.0.0.1", resolve));
  const upstreamUrl = `http://127.0.0.1:${upstream.address().port}`;
  const data = await openDataDir(dataDir);
  const service = new KeyService({ store: data.store, envelope: data.envelope, environment: data.environment });
  const admin = await service.create(valueOrThrow(parseCreateKeyInput({ account: "ops", scopes: ["admin:keys"], operator: true }, Date.now())), "bench");
  const keys = [];
  for (let i = 0; i < count; i++) keys.push(await service.create(valueOrThrow(parseCreateKeyInput({ account: "bench", scopes: ["read"] }, Date.now())), "bench"));
  await data.store.close();
  const prefix = `pcbench:${randomBytes(4).toString("hex")}:fan:`;
  const gateways = [];
  try {
    for (const n of [1, 2, 3]) {
      const config = {
        dataDir,
        environment: "live",
        gateway: { host: "127.0.0.1", port: 0, upstream: upstreamUrl, authorities: [AUTHORITY] },
        admin: n === 1 ? { enabled: true, host: "127.0.0.1", port: 0 } : { enabled: false },
        routes: ROUTES,
        // No limits, and no blocks after authentication failures: the probes keep asking (and the
        // refusals after each revocation would otherwise block the one address they come from).
        limits: { shield: { authFailuresPerIp: 1_000_000, authFailuresPerKey: 1_000_000 } },
        log: { level: "info" },
        ...(bus ? { hot: { backend: "redis", url: redis.url, prefix }, store: { pollInterval: "1h" } } : {}),
      };
      const file = join(dataDir, `fanout-${label}-${n}.json`);
      writeFileSync(file, JSON.stringify(config));
      gateways.push(await startGatewayProcess(file));
    }
    // Without the bus, each process keeps its own replay memory, begun at its start; the keys
    // were made before it, so a request signed in the same second could predate it and be fenced
    // (REPLAY_FENCED, docs/replay.md). Sign only once that second and the clock allowance are past.
    if (!bus) await new Promise((resolve) => setTimeout(resolve, 2_000));
    const adminSigner = new RequestSigner(admin.key.id, createSecretKey(Buffer.from(admin.secret, "utf8")));
    const latencies = [];
    for (let i = 0; i < keys.length; i++) {
      const signer = new RequestSigner(keys[i].key.id, createSecretKey(Buffer.from(keys[i].secret, "utf8")));
      // Every gateway has the key cached (and would serve it from the cache for a minute).
      for (const g of gateways) {
        const s = await status(g.gateway, signer, "GET", GET_PATH);
        if (s !== 200) throw new Error(`fan-out: key ${i} refused before revocation (${s})`);
      }
      const revoked = await status(gateways[0].admin, adminSigner, "POST", `/portcullis/v1/keys/${keys[i].key.id}/revoke`);
      if (revoked !== 200) throw new Error(`fan-out: revoke answered ${revoked}`);
      const t0 = performance.now();
      await Promise.all(
        gateways.slice(1).map(async (g) => {
          for (;;) {
            const s = await status(g.gateway, signer, "GET", GET_PATH);
            if (s === 401) {
              latencies.push(performance.now() - t0);
              return;
            }
            if (s !== 200) throw new Error(`fan-out: unexpected ${s}`);
            if (performance.now() - t0 > 10_000) throw new Error("fan-out: still allowed after 10 s");
          }
        }),
      );
      if ((i + 1) % 25 === 0) progress(`fan-out (${label}): ${i + 1}/${keys.length} keys`);
    }
    return latencies;
  } finally {
    await Promise.all(gateways.map((g) => stopProcess(g.child)));
    await new Promise((resolve) => upstream.close(resolve));
  }
}

/** Runs benchmark 10: with the bus (private Redis), then the polling baseline. */
export async function runFanoutBench({ redis, count, progress = () => undefined }) {
  const results = {};
  for (const [label, bus] of [["bus", true], ["poll", false]]) {
    const dir = mkdtempSync(join(tmpdir(), `portcullis-bench-fanout-${label}-`));
    try {
      await initDataDir(dir, "live");
      results[label] = await measureFanout({ dataDir: dir, redis, bus, count, progress, label });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return { count, redisVersion: redis.version, ...results };
}
