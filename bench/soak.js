/**
 * The soak (`npm run soak`): a whole configured gateway, in its own process, in front of a real
 * upstream (both servers.js), driven for a long while (default 10 minutes) at a steady open-loop
 * rate with mixed honest and hostile traffic over loopback; its heap (after a full collection),
 * RSS, open descriptors and event-loop delay sampled every few seconds, and the honest requests'
 * latency percentiles per interval. It judges that they stay flat, prints one row per interval and
 * exits non-zero if a criterion fails (criteria below, `judge`).
 *
 *   node bench/soak.js [--duration 600] [--rate 200] [--write] [--json] [--leak]
 *
 * `--duration` (seconds; or SOAK_DURATION), `--rate` (requests per second, every kind together;
 * or SOAK_RATE), `--write` rewrites SOAK.md at the repository root with the report, `--json` prints
 * one JSON line with the whole result (the CI short form reads it), `--leak` starts the gateway
 * with a deliberate leak (4 KiB kept per request), to show that the criteria catch one.
 *
 * The gateway trusts loopback as a proxy, so every request names its client in X-Forwarded-For:
 * honest clients a few fixed addresses, hostile ones addresses that change every few dozen
 * requests (IPv4 and IPv6 prefixes), so that the gateway keeps meeting new addresses to block and
 * ban, as it would under attack, and must forget them again.
 *
 * Honest traffic: native RFC 9421 (HMAC and Ed25519), a session (logged on again every minute),
 * Binance (HMAC and Ed25519), Kraken, Coinbase ES256, OKX, Bybit, and WebSocket connections that
 * send a message, read the answer and drop without a close frame. Hostile traffic: bad signatures
 * on real key ids, replays of honest requests, stale timestamps, unknown keys, malformed
 * signature headers, unparsable HTTP, oversized bodies, a heavy public route until the address
 * is banned, WebSocket upgrades dropped mid-handshake, requests aborted after sending, slow bodies
 * and slowloris headers that the gateway must time out itself.
 */
import { Buffer } from "node:buffer";
import { createSecretKey, generateKeyPairSync, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { connect } from "node:net";
import { performance } from "node:perf_hooks";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { Agent, request } from "undici";
import WebSocket from "ws";
import { generateKeyId } from "../packages/portcullis/dist/contract/ids.js";
import { DEFAULT_LIMITS } from "../packages/portcullis/dist/index.js";
import { DIALECT_CASES, DIALECT_ROUTES, KEY_DEFS } from "./dialect-signing.js";
import { serverSet } from "./gateway-bench.js";
import { logonOverHttp } from "./session-bench.js";
import { AUTHORITY, Ed25519RequestSigner, GET_PATH, ORDER_BODY, POST_PATH, RequestSigner, SCOPES } from "./signing.js";
import { fmt, median, quantile, table } from "./stats.js";
import { ask } from "./ipc.js";

const SOAK_MD = fileURLToPath(new URL("../SOAK.md", import.meta.url));

// --- settings ---------------------------------------------------------------------------------

function parseArgs(argv) {
  const opts = {
    duration: Number(process.env.SOAK_DURATION ?? 600),
    rate: Number(process.env.SOAK_RATE ?? 200),
    write: false,
    json: false,
    leak: false,
    latencyFactor: 2,
    latencySlackMs: 10,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => Number(argv[++i]);
    if (arg === "--duration") opts.duration = value();
    else if (arg === "--rate") opts.rate = value();
    else if (arg === "--latency-factor") opts.latencyFactor = value();
    else if (arg === "--latency-slack-ms") opts.latencySlackMs = value();
    else if (arg === "--write") opts.write = true;
    else if (arg === "--json") opts.json = true;
    else if (arg === "--leak") opts.leak = true;
    else throw new Error(`unknown argument ${arg}`);
  }
  for (const name of ["duration", "rate", "latencyFactor", "latencySlackMs"]) {
    if (!Number.isFinite(opts[name]) || opts[name] <= 0) throw new Error(`--${name} must be a positive number`);
  }
  // Samples every 5 s (2 s in a short run), table rows every 30 s (5 s in a short run).
  opts.sampleSeconds = opts.duration >= 120 ? 5 : 2;
  opts.rowSeconds = opts.duration >= 300 ? 30 : opts.duration >= 120 ? 10 : 5;
  // Warm-up, left out of the judgement: JIT, caches, pools and the first hostile addresses.
  opts.warmupSeconds = Math.min(60, Math.round(opts.duration * 0.2));
  return opts;
}

/** Raised budgets (honest traffic is never limited), except one heavy public route per address. */
const FLOOD_PATH = "/api/v3/exchangeInfo";
const IP_WEIGHT = 200_000;
const FLOOD_WEIGHT = 50_000;
const WS_PATH = "/ws-api/v3";
/** The gateway's headers timeout (gateway/server.ts); a slowloris must be gone soon after it. */
const HEADERS_TIMEOUT_MS = 10_000;
const SLOWLORIS_BOUND_MS = HEADERS_TIMEOUT_MS + 5_000;
/** An honest request refused as too old after this long is late (the machine stalled), not wrong. */
const LATE_MS = 4_000;
const FRESHNESS_CODES = new Set(["CREATED_TOO_OLD", "-1021", "EAPI:Invalid nonce", "50102", "10002"]);
/** At most this share of the honest requests may be late. */
const LATE_SHARE = 0.005;

/** The gateway's config sections: the dialect routes (native accepted on each), limits, WebSocket. */
function gatewayConfig() {
  return {
    environment: "live",
    gateway: { trustedProxies: ["127.0.0.1/32"], bodyLimit: 64 * 1024 },
    signatures: { windowMs: 5000 },
    sessions: { enabled: true },
    routes: [...DIALECT_ROUTES, { method: "GET", path: FLOOD_PATH, permission: "public", weight: FLOOD_WEIGHT, dialect: "binance" }],
    limits: {
      ip: [{ name: "ip-weight-1m", limit: IP_WEIGHT, window: "1m" }],
      key: [{ name: "key-weight-1m", limit: 100_000_000, window: "1m" }],
      account: [{ name: "account-weight-1m", limit: 100_000_000, window: "1m" }],
      orders: DEFAULT_LIMITS.orders.map((l) => ({ ...l, limit: l.window === "1d" ? 100_000_000 : 10_000_000 })),
      cancels: [{ name: "cancels-10s", limit: 10_000_000, window: "10s" }],
    },
    websocket: {
      routes: [{ path: WS_PATH, dialect: "binance", anonymous: true, weight: 2, methods: { ping: { permission: "public", weight: 1 } } }],
    },
  };
}

// --- the servers ------------------------------------------------------------------------------

/** The keys the honest clients sign with, created in the gateway; each with its signer(s). */
async function createKeys(gateway) {
  const native = generateKeyPairSync("ed25519");
  const dialect = ["binanceHmac", "binanceEd25519", "kraken", "coinbaseEs256", "okx", "bybitHmac"].map((name) => {
    const def = KEY_DEFS[name];
    const pair = def.pair === null ? null : def.pair();
    return { name, pair, input: def.input(pair) };
  });
  const inputs = [
    { account: "soak", scopes: SCOPES },
    { account: "soak", scopes: SCOPES, algorithm: "ed25519", publicKey: native.publicKey.export({ type: "spki", format: "pem" }).toString() },
    ...dialect.map((d) => d.input),
  ];
  const { keys } = await ask(gateway.child, { createKeys: inputs });
  const byName = Object.fromEntries(dialect.map((d, i) => [d.name, { id: keys[i + 2].id, secret: keys[i + 2].secret, pair: d.pair }]));
  return {
    hmac: new RequestSigner(keys[0].id, createSecretKey(Buffer.from(keys[0].secret, "utf8"))),
    ed25519: new Ed25519RequestSigner(keys[1].id, native.privateKey),
    ed25519PrivateKey: native.privateKey,
    dialect: byName,
  };
}

// --- traffic ----------------------------------------------------------------------------------

/** A fresh epoch-ms value each call (the dialect signers need one time per request). */
function uniqueTimes() {
  let last = 0;
  return () => {
    last = Math.max(Date.now(), last + 1);
    return last;
  };
}

/** Honest client addresses: one per honest kind, fixed for the whole run. */
const honestAddress = (i) => `192.0.2.${i + 1}`;

/**
 * Hostile client addresses: each hostile kind moves to a new address every `per` requests,
 * alternating IPv4 and IPv6 (a new /64 each time), so the gateway keeps meeting new addresses.
 */
function hostileAddresses(per = 40) {
  const counts = new Map();
  return (kind) => {
    const n = counts.get(kind) ?? 0;
    counts.set(kind, n + 1);
    const block = Math.floor(n / per);
    const k = KIND_INDEX.get(kind) ?? 0;
    return block % 2 === 0 ? `10.${k}.${(block >> 9) & 255}.${(block >> 1) & 255}` : `2001:db8:${k.toString(16)}:${(block >> 1).toString(16)}::1`;
  };
}

/** The body of a refusal: its `code` (native JSON, or a venue's numeric code), or "-". */
function codeOf(status, text) {
  if (status < 400) return "";
  try {
    const body = JSON.parse(text);
    const code = body.code ?? body.error?.code ?? body.retCode ?? body.error?.[0];
    return code === undefined ? "-" : String(code);
  } catch {
    return "-";
  }
}

/**
 * The traffic mix: kind → weight in the schedule. `honest` kinds must answer 2xx (and are the
 * ones whose latency is measured); hostile kinds must never answer 2xx when `refused` is set.
 */
const KINDS = [
  // honest
  { kind: "native-hmac-get", weight: 3, honest: true },
  { kind: "native-hmac-post", weight: 2, honest: true },
  { kind: "native-ed25519-get", weight: 1, honest: true },
  { kind: "session-get", weight: 2, honest: true },
  { kind: "binance-hmac-get", weight: 1, honest: true },
  { kind: "binance-hmac-post", weight: 1, honest: true },
  { kind: "binance-ed25519-get", weight: 1, honest: true },
  { kind: "kraken-post", weight: 1, honest: true },
  { kind: "coinbase-es256-get", weight: 1, honest: true },
  { kind: "okx-get", weight: 1, honest: true },
  { kind: "okx-post", weight: 1, honest: true },
  { kind: "bybit-hmac-get", weight: 1, honest: true },
  // hostile: must be refused
  { kind: "bad-signature", weight: 2, refused: true },
  { kind: "bad-signature-binance", weight: 1, refused: true },
  { kind: "replay", weight: 1, refused: true },
  { kind: "stale", weight: 1, refused: true },
  { kind: "unknown-key", weight: 1, refused: true },
  { kind: "malformed-signature", weight: 1, refused: true },
  { kind: "unparsable-http", weight: 0.5, refused: true },
  { kind: "oversized-body", weight: 0.25, refused: true },
  // hostile: answered (or not) as the gateway sees fit, but never with a 5xx
  { kind: "flood", weight: 1 },
  { kind: "websocket", weight: 0.5 },
  { kind: "websocket-half-upgrade", weight: 0.25 },
  { kind: "aborted", weight: 0.5 },
  { kind: "slow-body", weight: 0.25 },
  { kind: "slowloris", weight: 0.1 },
];
const KIND_INDEX = new Map(KINDS.map((k, i) => [k.kind, i]));

/** The schedule: the kinds spread evenly over a cycle (largest remainder), one slot per request. */
function schedule() {
  const slots = [];
  const scale = 8; // weights are multiples of 1/8
  for (const k of KINDS) for (let i = 0; i < Math.round(k.weight * scale); i++) slots.push({ k, at: (i + 0.5) / Math.round(k.weight * scale) });
  slots.sort((a, b) => a.at - b.at || KIND_INDEX.get(a.k.kind) - KIND_INDEX.get(b.k.kind));
  return slots.map((s) => s.k);
}

/** A raw TCP conversation: writes `chunks` (with a pause between), then reads the status line. */
function raw(port, chunks, { pauseMs = 0, holdMs = 0, destroyAfterWrite = false, timeoutMs = 30_000 } = {}) {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    const start = performance.now();
    let data = "";
    let done = false;
    const finish = (outcome) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ ...outcome, heldMs: performance.now() - start });
    };
    const timer = setTimeout(() => {
      finish({ status: 0, code: "client-timeout" });
    }, timeoutMs);
    socket.on("error", () => {
      finish(data === "" ? { status: 0, code: "reset" } : statusOf(data));
    });
    socket.on("data", (d) => {
      data += d.toString("latin1");
    });
    socket.on("close", () => {
      finish(data === "" ? { status: 0, code: "closed" } : statusOf(data));
    });
    socket.on("connect", () => {
      let i = 0;
      const next = () => {
        if (done) return;
        socket.write(chunks[i++]);
        if (i < chunks.length) setTimeout(next, pauseMs).unref();
        else if (destroyAfterWrite) finish({ status: 0, code: "aborted" });
        else if (holdMs > 0) setTimeout(() => finish(data === "" ? { status: 0, code: "client-gave-up" } : statusOf(data)), holdMs).unref();
      };
      next();
    });
  });
}

function statusOf(text) {
  const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
  if (m === null) return { status: 0, code: "garbled" };
  const status = Number(m[1]);
  const body = text.slice(text.indexOf("\r\n\r\n") + 4);
  return { status, code: codeOf(status, body) };
}

/** The requests of every kind; `send(kind)` resolves to `{ status, code }`. */
function traffic({ port, signers, session }) {
  const origin = `http://127.0.0.1:${port}`;
  const honestPool = new Agent({ connections: 64, keepAliveTimeout: 4_000, headersTimeout: 15_000, bodyTimeout: 15_000 });
  const hostilePool = new Agent({ connections: 64, keepAliveTimeout: 4_000, headersTimeout: 15_000, bodyTimeout: 15_000 });
  const time = uniqueTimes();
  const hostile = hostileAddresses();
  const dialect = Object.fromEntries(
    ["binance-hmac-get", "binance-hmac-post", "binance-ed25519-get", "kraken-post", "okx-get", "okx-post", "bybit-hmac-get"]
      .map((id) => [id, DIALECT_CASES.find((c) => c.id === id)])
      .map(([id, c]) => [id, c.signer(signers.dialect[c.key])]),
  );
  dialect["coinbase-es256-get"] = DIALECT_CASES.find((c) => c.id === "coinbase-es256-latency").signer(signers.dialect.coinbaseEs256);
  const recent = []; // recently answered honest native requests, for replays

  async function http(pool, { method, url, headers, body }, address) {
    const res = await request(`${origin}${url}`, {
      method,
      headers: { ...headers, "x-forwarded-for": address },
      body: body === undefined || body.length === 0 ? undefined : body,
      dispatcher: pool,
    });
    const text = await res.body.text();
    return { status: res.statusCode, code: codeOf(res.statusCode, text) };
  }

  const nativeRequest = (signer, method) => {
    const signed = signer.sign(method, Math.floor(Date.now() / 1000));
    return { ...signed, body: method === "POST" ? ORDER_BODY : undefined };
  };

  function webSocket(address, drop) {
    return new Promise((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}${WS_PATH}`, { headers: { host: AUTHORITY, "x-forwarded-for": address }, handshakeTimeout: 15_000 });
      let outcome = null;
      const timer = setTimeout(() => {
        outcome ??= { status: 0, code: "ws-no-answer" };
        ws.terminate();
      }, 15_000);
      ws.on("unexpected-response", (_req, res) => {
        res.resume();
        outcome = { status: res.statusCode, code: `ws-${res.statusCode}` };
        ws.terminate();
      });
      ws.on("open", () => {
        ws.send(JSON.stringify({ id: "1", method: "ping", params: {} }));
      });
      ws.on("message", () => {
        outcome = { status: 101, code: "" };
        // Dropped without a close frame (a client that goes away), or closed properly.
        if (drop) ws.terminate();
        else ws.close(1000);
      });
      ws.on("error", () => {
        outcome ??= { status: 0, code: "ws-error" };
      });
      ws.on("close", () => {
        clearTimeout(timer);
        resolve(outcome ?? { status: 0, code: "ws-closed" });
      });
    });
  }

  let wsCount = 0;
  let badCount = 0;
  let unknownCount = 0;
  const senders = {
    "native-hmac-get": async (a) => {
      const req = nativeRequest(signers.hmac, "GET");
      const out = await http(honestPool, req, a);
      if (out.status === 200) {
        recent.push(req);
        if (recent.length > 64) recent.shift();
      }
      return out;
    },
    "native-hmac-post": (a) => http(honestPool, nativeRequest(signers.hmac, "POST"), a),
    "native-ed25519-get": (a) => http(honestPool, nativeRequest(signers.ed25519, "GET"), a),
    "session-get": (a) => http(honestPool, nativeRequest(session.signer, "GET"), a),
    websocket: (a) => webSocket(a, wsCount++ % 2 === 0),
    "bad-signature": (_a, h) => {
      const req = nativeRequest(badCount++ % 2 === 0 ? signers.hmac : signers.ed25519, "GET");
      req.headers.signature = `sig1=:${randomBytes(req.headers.signature.length > 60 ? 64 : 32).toString("base64")}:`;
      return http(hostilePool, req, h);
    },
    "bad-signature-binance": (_a, h) => {
      const { request: req } = dialect["binance-hmac-get"](time());
      req.url = req.url.replace(/signature=[0-9a-f]+/, `signature=${randomBytes(32).toString("hex")}`);
      return http(hostilePool, req, h);
    },
    replay: (_a, h) => {
      const req = recent.pop();
      if (req === undefined) return Promise.resolve({ status: 0, code: "no-request-to-replay" });
      return http(hostilePool, req, h);
    },
    stale: (_a, h) => http(hostilePool, { ...signers.hmac.sign("GET", Math.floor(Date.now() / 1000) - 600), body: undefined }, h),
    // A fresh well-formed id each time (the key cache must not grow with them), or a malformed one.
    "unknown-key": (_a, h) => {
      const id = unknownCount++ % 4 === 3 ? `${signers.hmac.keyId.slice(0, -8)}${randomBytes(4).toString("hex")}` : generateKeyId("live");
      const stranger = new RequestSigner(id, randomBytes(32));
      return http(hostilePool, nativeRequest(stranger, "GET"), h);
    },
    "malformed-signature": (_a, h) => {
      const req = nativeRequest(signers.hmac, "GET");
      req.headers["signature-input"] = `sig1=("@method" "@path";created=x;;keyid="${signers.hmac.keyId}"`;
      return http(hostilePool, req, h);
    },
    "unparsable-http": (_a, h) =>
      raw(port, [`GET ${GET_PATH} HTTP/1.1\r\nHost: ${AUTHORITY}\r\nX-Forwarded-For: ${h}\r\nBad Header Line\r\n\r\n`], { holdMs: 10_000 }),
    "oversized-body": async (_a, h) => {
      try {
        return await http(hostilePool, { method: "POST", url: POST_PATH, headers: { host: AUTHORITY, "content-type": "application/json" }, body: Buffer.alloc(256 * 1024, 0x61) }, h);
      } catch (err) {
        return { status: 0, code: `client-${err.code ?? err.name}` };
      }
    },
    flood: (_a, h) => http(hostilePool, { method: "GET", url: FLOOD_PATH, headers: { host: AUTHORITY } }, h),
    "websocket-half-upgrade": (_a, h) =>
      raw(port, [`GET ${WS_PATH} HTTP/1.1\r\nHost: ${AUTHORITY}\r\nX-Forwarded-For: ${h}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`], { destroyAfterWrite: true }),
    aborted: (_a, h) => {
      const req = nativeRequest(signers.hmac, "GET");
      const head = Object.entries({ ...req.headers, "x-forwarded-for": h }).map(([n, v]) => `${n}: ${v}\r\n`).join("");
      return raw(port, [`GET ${req.url} HTTP/1.1\r\n${head}\r\n`], { destroyAfterWrite: true });
    },
    "slow-body": (_a, h) =>
      raw(port, [`POST ${POST_PATH} HTTP/1.1\r\nHost: ${AUTHORITY}\r\nX-Forwarded-For: ${h}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{"sym`, `bol":`], {
        pauseMs: 1_000,
        holdMs: 1_000,
      }),
    // Headers that never end: the gateway must close the connection itself (its headers timeout).
    slowloris: (_a, h) => raw(port, [`GET ${GET_PATH} HTTP/1.1\r\nHost: ${AUTHORITY}\r\nX-Forwarded-For: ${h}\r\n`, "X-a: b\r\n"], { pauseMs: 2_000, timeoutMs: 40_000 }),
  };
  for (const id of Object.keys(dialect)) senders[id] = (a) => http(honestPool, dialect[id](time()).request, a);

  return {
    send(k) {
      const address = honestAddress(KIND_INDEX.get(k.kind));
      const h = k.honest === true ? "" : hostile(k.kind);
      return senders[k.kind](address, h).catch((err) => ({ status: 0, code: `client-${err.code ?? err.name}` }));
    },
    async close() {
      await Promise.all([honestPool.destroy(), hostilePool.destroy()]);
    },
  };
}

// --- the run ----------------------------------------------------------------------------------

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const log = opts.json ? (line) => process.stderr.write(`${line}\n`) : (line) => process.stdout.write(`${line}\n`);
  const set = serverSet();
  try {
    const upstream = await set.start(["upstream"]);
    const gateway = await set.start(["soak-gateway", `http://127.0.0.1:${upstream.info.port}`, JSON.stringify(gatewayConfig()), ...(opts.leak ? ["leak"] : [])]);
    const port = gateway.info.port;
    const signers = await createKeys(gateway);
    const session = { signer: await logonOverHttp(port, signers.ed25519.keyId, signers.ed25519PrivateKey) };
    const sample = async () => (await ask(gateway.child, { sample: true })).sample;
    const baseline = await sample();
    log(`soak: gateway pid ${gateway.child.pid} on port ${port}; ${opts.rate} req/s for ${opts.duration} s${opts.leak ? " (with a deliberate leak)" : ""}; idle: ${mb(baseline.rss)} MB RSS, ${mb(baseline.heapUsed)} MB heap, ${baseline.fds} fds`);

    const load = traffic({ port, signers, session });
    const slots = schedule();
    const result = await drive({ opts, load, slots, sample, session, signers, port, log });

    // Quiesce: the clients go, the upstream closes its idle connections; the gateway's
    // descriptors must come back to where they were before any traffic.
    await load.close();
    await ask(upstream.child, { closeIdle: true });
    let final = await sample();
    for (let i = 0; i < 20 && final.fds > baseline.fds; i++) {
      await sleep(250);
      final = await sample();
    }
    const verdict = judge({ opts, baseline, final, ...result });
    const report = render({ opts, baseline, final, verdict, ...result });
    log(report);
    if (opts.write) writeFileSync(SOAK_MD, `${markdown({ opts, baseline, final, verdict, ...result })}\n`);
    if (opts.json) process.stdout.write(`${JSON.stringify({ ok: verdict.ok, failures: verdict.failures, measures: verdict.measures, baseline, final, rows: result.rows, codes: result.codes })}\n`);
    process.exitCode = verdict.ok ? 0 : 1;
  } finally {
    await set.stopAll();
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const mb = (bytes) => fmt(bytes / 1048576, 1);

/** Drives the schedule open-loop (each request sent when due, whatever the earlier ones do). */
async function drive({ opts, load, slots, sample, session, signers, port, log }) {
  const start = performance.now();
  const end = start + opts.duration * 1000;
  const samples = []; // { t, ...gateway sample, honest latencies (ms), counts }
  const codes = new Map(); // "kind status code" → count
  const inFlight = new Set();
  let sent = 0;
  let interval = newInterval();
  let nextSample = start + opts.sampleSeconds * 1000;
  let nextLogon = start + 60_000;
  let logonFailures = 0;
  let slowlorisHeldMs = 0;

  function newInterval() {
    return { latencies: [], answered: 0, sent: 0, late: 0, failures: [], byClass: { honest: 0, refused: 0, other: 0, fivexx: 0 } };
  }

  function dispatch(k, due) {
    interval.sent++;
    const p = load.send(k).then(({ status, code, heldMs }) => {
      const key = `${k.kind} ${status} ${code}`.trim();
      if (k.kind === "slowloris") slowlorisHeldMs = Math.max(slowlorisHeldMs, heldMs);
      codes.set(key, (codes.get(key) ?? 0) + 1);
      interval.answered++;
      if (status >= 500) {
        interval.byClass.fivexx++;
        interval.failures.push(key);
      }
      if (k.honest === true) {
        const latency = performance.now() - due;
        interval.latencies.push(latency);
        if (status >= 200 && status < 300) interval.byClass.honest++;
        // Refused as too old after waiting seconds for its answer: the machine stalled (counted
        // as late, with a bound of its own, below); any other refusal of an honest request fails.
        else if (latency > LATE_MS && FRESHNESS_CODES.has(code)) interval.late++;
        else interval.failures.push(key);
      } else if (k.refused === true) {
        if (status >= 200 && status < 300) interval.failures.push(`${key} (a hostile request was forwarded)`);
        else interval.byClass.refused++;
      } else interval.byClass.other++;
    });
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  }

  while (performance.now() < end) {
    const now = performance.now();
    const due = Math.floor(((now - start) * opts.rate) / 1000);
    while (sent < due) {
      dispatch(slots[sent % slots.length], start + (sent * 1000) / opts.rate);
      sent++;
    }
    if (now >= nextLogon) {
      nextLogon += 60_000;
      // An honest client logs on again every minute (its session lives 15).
      logonOverHttp(port, signers.ed25519.keyId, signers.ed25519PrivateKey).then(
        (signer) => {
          session.signer = signer;
        },
        () => {
          logonFailures++;
        },
      );
    }
    if (now >= nextSample) {
      nextSample += opts.sampleSeconds * 1000;
      const done = interval;
      interval = newInterval();
      const s = await sample();
      samples.push({ t: (performance.now() - start) / 1000, ...s, ...summarize(done) });
    }
    await sleep(2);
  }
  // Let the requests in flight finish (slowloris ones are answered by the gateway's timeout).
  let drainTimer;
  await Promise.race([Promise.all(inFlight), new Promise((resolve) => (drainTimer = setTimeout(resolve, 45_000)))]);
  clearTimeout(drainTimer);
  const elapsed = (performance.now() - start) / 1000;
  // The answers that came after the end: judged for failures, left out of the curves.
  samples.push({ t: elapsed, tail: true, ...(await sample()), ...summarize(interval) });
  const rows = rowsOf(samples.filter((s) => s.tail !== true), opts);
  for (const r of rows) log(rowText(r));
  return { samples, rows, codes: Object.fromEntries([...codes].sort()), sent, elapsed, logonFailures, slowlorisHeldMs, stillInFlight: inFlight.size };
}

function summarize(i) {
  return { latencies: i.latencies, answered: i.answered, sentInInterval: i.sent, late: i.late, failures: i.failures, byClass: i.byClass };
}

/** Table rows: `rowSeconds` of samples each; memory and descriptors as the row's last sample. */
function rowsOf(samples, opts) {
  const rows = [];
  let group = [];
  let rowEnd = opts.rowSeconds;
  const flush = () => {
    if (group.length === 0) return;
    const last = group[group.length - 1];
    const latencies = group.flatMap((s) => s.latencies);
    const seconds = last.t - (rows.length === 0 ? 0 : rows[rows.length - 1].t);
    rows.push({
      t: last.t,
      rss: last.rss,
      heapObjects: last.heapObjects,
      code: last.code,
      external: last.external,
      fds: last.fds,
      fdsMax: Math.max(...group.map((s) => s.fds)),
      loopP99: Math.max(...group.map((s) => s.loopDelayP99Ms)),
      p50: quantile(latencies, 0.5),
      p99: quantile(latencies, 0.99),
      p999: quantile(latencies, 0.999),
      rate: group.reduce((n, s) => n + s.answered, 0) / seconds,
      honest: group.reduce((n, s) => n + s.byClass.honest, 0),
      refused: group.reduce((n, s) => n + s.byClass.refused, 0),
      other: group.reduce((n, s) => n + s.byClass.other, 0),
      fivexx: group.reduce((n, s) => n + s.byClass.fivexx, 0),
      failures: group.reduce((n, s) => n + s.failures.length, 0),
    });
    group = [];
  };
  for (const s of samples) {
    group.push(s);
    if (s.t >= rowEnd - 0.5) {
      flush();
      while (rowEnd <= s.t + 0.5) rowEnd += opts.rowSeconds;
    }
  }
  flush();
  return rows;
}

const ROW_HEADER = ["t (s)", "RSS MB", "heap objects MB", "code MB", "external MB", "fds (max)", "loop p99 ms", "p50 ms", "p99 ms", "p99.9 ms", "answers/s", "honest 2xx", "hostile refused", "other hostile", "5xx", "failures"];
const rowCells = (r) => [
  fmt(r.t, 0),
  mb(r.rss),
  mb(r.heapObjects),
  mb(r.code),
  mb(r.external),
  `${r.fds} (${r.fdsMax})`,
  fmt(r.loopP99, 1),
  fmt(r.p50, 1),
  fmt(r.p99, 1),
  fmt(r.p999, 1),
  fmt(r.rate, 0),
  String(r.honest),
  String(r.refused),
  String(r.other),
  String(r.fivexx),
  String(r.failures),
];
const rowText = (r) => rowCells(r).map((c, i) => `${ROW_HEADER[i]} ${c}`).join(" · ");

// --- the judgement ----------------------------------------------------------------------------

/** Least-squares slope of y over x. */
function slope(xs, ys) {
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  const my = ys.reduce((a, b) => a + b, 0) / ys.length;
  let num = 0;
  let den = 0;
  for (let i = 0; i < xs.length; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

/**
 * The criteria, over the samples after the warm-up, split into thirds:
 * - heap objects after a full collection (compiled code left out: the JIT grows it for minutes),
 *   with the external memory they hold (Buffers): the last third's
 *   median at most max(2 MiB, 5 %) above the first third's (a leak of a few hundred bytes per
 *   request exceeds it within a few minutes, of a KiB per request within the short form);
 * - RSS: the last third's median at most max(16 MiB, 15 %) above the first third's (the allocator
 *   keeps what it grew to, so RSS is only a backstop for leaks outside the JavaScript heap);
 * - descriptors: the last third's median at most 16 above the first third's, and once the traffic
 *   has stopped and the upstream has closed its idle connections, at most 2 above the idle count
 *   before the first request (every socket, file and timer-held handle given back); a client
 *   whose headers never end is closed within 5 s of the gateway's 10 s headers timeout (node:http's default sweep held
 *   it up to 40 s);
 * - honest latency: the median over the last third's samples of each sample's p99 at most
 *   `latencyFactor` × the same over the first third, plus `latencySlackMs`;
 * - no 5xx, every honest request 2xx (but for at most 0.5 % refused as too old after waiting over
 *   4 s: a stalled machine, not a wrong answer; the latency criterion judges the stalls), no refusable hostile request forwarded, every request
 *   answered (or closed), and the schedule kept (at least 95 % of rate × duration sent);
 * - coverage: every hostile kind met its refusal at least once, and some address was banned.
 */
function judge({ opts, baseline, final, samples, codes, sent, elapsed, logonFailures, slowlorisHeldMs, stillInFlight }) {
  const failures = [];
  const steady = samples.filter((s) => s.t > opts.warmupSeconds && s.tail !== true);
  const third = Math.max(1, Math.floor(steady.length / 3));
  const first = steady.slice(0, third);
  const last = steady.slice(-third);
  const med = (list, f) => median(list.map(f));
  // The JavaScript heap's objects (not its compiled code, which the JIT grows for minutes) and the
  // memory they hold outside it (Buffers), after a full collection.
  const js = (s) => s.heapObjects + s.external;
  const heap = [med(first, js), med(last, js)];
  const rss = [med(first, (s) => s.rss), med(last, (s) => s.rss)];
  const fds = [med(first, (s) => s.fds), med(last, (s) => s.fds)];
  // Per sample p99, then the median over the third: one interval of a busy machine moves it little.
  const p99 = [med(first, (s) => quantile(s.latencies, 0.99)), med(last, (s) => quantile(s.latencies, 0.99))];
  const heapSlope = slope(steady.map((s) => s.t / 60), steady.map((s) => js(s) / 1048576));
  const measures = {
    heapFirstMB: heap[0] / 1048576,
    heapLastMB: heap[1] / 1048576,
    heapSlopeMBPerMin: heapSlope,
    rssFirstMB: rss[0] / 1048576,
    rssLastMB: rss[1] / 1048576,
    fdsFirst: fds[0],
    fdsLast: fds[1],
    fdsIdleBefore: baseline.fds,
    fdsIdleAfter: final.fds,
    p99FirstMs: p99[0],
    p99LastMs: p99[1],
    slowlorisHeldMs,
    sent,
    elapsed,
  };
  const check = (ok, text) => {
    if (!ok) failures.push(text);
  };
  check(steady.length >= 3, `too few samples after the warm-up (${steady.length})`);
  const heapTol = Math.max(2 * 1048576, heap[0] * 0.05);
  check(heap[1] - heap[0] <= heapTol, `heap objects + external grew ${mb(heap[1] - heap[0])} MB (first third ${mb(heap[0])}, last ${mb(heap[1])}; allowed ${mb(heapTol)})`);
  const rssTol = Math.max(16 * 1048576, rss[0] * 0.15);
  check(rss[1] - rss[0] <= rssTol, `RSS grew ${mb(rss[1] - rss[0])} MB (first third ${mb(rss[0])}, last ${mb(rss[1])}; allowed ${mb(rssTol)})`);
  check(fds[1] - fds[0] <= 16, `open descriptors grew from ${fds[0]} to ${fds[1]} under the same load`);
  check(final.fds <= baseline.fds + 2, `${final.fds} descriptors open once idle again, against ${baseline.fds} before the traffic`);
  const p99Bound = opts.latencyFactor * p99[0] + opts.latencySlackMs;
  check(p99[1] <= p99Bound, `honest p99 drifted from ${fmt(p99[0], 1)} ms to ${fmt(p99[1], 1)} ms (allowed ${fmt(p99Bound, 1)} ms)`);
  const bad = samples.flatMap((s) => s.failures);
  if (bad.length > 0) {
    const counted = new Map();
    for (const b of bad) counted.set(b, (counted.get(b) ?? 0) + 1);
    failures.push(`${bad.length} failed answers: ${[...counted].map(([b, n]) => `${n} × ${b}`).join("; ")}`);
  }
  const late = samples.reduce((n, s) => n + s.late, 0);
  const honest = samples.reduce((n, s) => n + s.latencies.length, 0);
  measures.late = late;
  check(late <= LATE_SHARE * honest, `${late} honest requests of ${honest} were refused as too old after waiting over ${LATE_MS / 1000} s for an answer`);
  check(logonFailures === 0, `${logonFailures} session logons failed`);
  check(stillInFlight === 0, `${stillInFlight} requests never answered nor closed`);
  check(sent >= 0.95 * opts.rate * opts.duration, `only ${sent} requests sent of ${opts.rate * opts.duration} scheduled (the load generator fell behind)`);
  const seen = (kind, pred) => Object.entries(codes).some(([key]) => key.startsWith(`${kind} `) && pred(key.slice(kind.length + 1)));
  for (const k of KINDS.filter((x) => x.refused === true)) {
    check(seen(k.kind, (rest) => /^4\d\d/.test(rest) || /^0 (closed|reset|client-)/.test(rest)), `${k.kind}: never refused`);
  }
  check(seen("flood", (rest) => rest.includes("IP_BANNED") || rest.includes("-1003")), "flood: no address was banned");
  check(seen("slowloris", (rest) => rest !== "0 client-timeout"), "slowloris: the gateway never closed a connection whose headers never ended");
  check(slowlorisHeldMs <= SLOWLORIS_BOUND_MS, `slowloris: a connection whose headers never ended was held ${fmt(slowlorisHeldMs / 1000, 1)} s (the gateway's headers timeout is ${HEADERS_TIMEOUT_MS / 1000} s)`);
  return { ok: failures.length === 0, failures, measures };
}

// --- the report -------------------------------------------------------------------------------

function render({ opts, verdict }) {
  const m = verdict.measures;
  const lines = [
    "",
    `after ${fmt(m.elapsed, 0)} s (${m.sent} requests; warm-up ${opts.warmupSeconds} s left out), first third → last third:`,
    `  heap objects + external after GC ${fmt(m.heapFirstMB, 1)} → ${fmt(m.heapLastMB, 1)} MB (slope ${fmt(m.heapSlopeMBPerMin, 3)} MB/min) · RSS ${fmt(m.rssFirstMB, 1)} → ${fmt(m.rssLastMB, 1)} MB · fds ${m.fdsFirst} → ${m.fdsLast} (idle ${m.fdsIdleBefore} before, ${m.fdsIdleAfter} after) · honest p99 ${fmt(m.p99FirstMs, 1)} → ${fmt(m.p99LastMs, 1)} ms · slowloris held at most ${fmt(m.slowlorisHeldMs / 1000, 1)} s`,
    verdict.ok ? "soak: PASS" : `soak: FAIL\n${verdict.failures.map((f) => `  - ${f}`).join("\n")}`,
  ];
  return lines.join("\n");
}

function markdown({ opts, baseline, final, verdict, rows, codes }) {
  const m = verdict.measures;
  const byKind = new Map();
  for (const [key, n] of Object.entries(codes)) {
    const [kind, ...rest] = key.split(" ");
    const list = byKind.get(kind) ?? [];
    list.push(`${rest.join(" ") || "?"} × ${n}`);
    byKind.set(kind, list);
  }
  return [
    "# Soak",
    "",
    `\`npm run soak\` (bench/soak.js) on ${new Date().toISOString().slice(0, 10)}, Node ${process.version}, ${opts.rate} requests/s for ${opts.duration} s: one gateway process (the whole configured pipeline, hot state in memory, audit log on) in front of a small upstream, mixed honest and hostile traffic over loopback. Memory is measured after a full collection (heap objects: the JavaScript heap without its compiled code; external: Buffers and other memory held by JavaScript objects); each row ends at *t* and shows the last sample's memory and descriptors (and the row's highest descriptor count), the event loop's worst p99 delay and the honest requests' latency (from the moment each was due) over the row.`,
    "",
    `**${verdict.ok ? "Pass" : "Fail"}.** First third → last third after a ${opts.warmupSeconds} s warm-up: heap objects + external ${fmt(m.heapFirstMB, 1)} → ${fmt(m.heapLastMB, 1)} MB (slope ${fmt(m.heapSlopeMBPerMin, 3)} MB/min), RSS ${fmt(m.rssFirstMB, 1)} → ${fmt(m.rssLastMB, 1)} MB, descriptors ${m.fdsFirst} → ${m.fdsLast} (idle: ${baseline.fds} before the traffic, ${final.fds} after it), honest p99 ${fmt(m.p99FirstMs, 1)} → ${fmt(m.p99LastMs, 1)} ms; a client whose headers never ended was held at most ${fmt(m.slowlorisHeldMs / 1000, 1)} s.`,
    ...(verdict.ok ? [] : ["", ...verdict.failures.map((f) => `- ${f}`)]),
    "",
    table(ROW_HEADER, rows.map(rowCells)),
    "",
    "Answers by kind (status and code; 0 is a connection the gateway closed or the client dropped):",
    "",
    table(["kind", "answers"], [...byKind].map(([kind, list]) => [kind, list.join(", ")])),
  ].join("\n");
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
