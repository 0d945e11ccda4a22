/**
 * Benchmark 17: the published latency figures. Debian's `wrk` is the load generator (a separate,
 * cheap C process: an in-process generator such as autocannon takes its CPU from the same cores
 * as the servers and flattens the differences between them), 32 connections over loopback, every
 * mode in front of the same upstream (servers.js `upstream`):
 *
 *   nginx           nginx as a reverse proxy, one worker, keep-alive to the upstream: the
 *                   external baseline (a private instance in a temporary directory);
 *   pass-through    a whole configured Portcullis (servers.js `wrk-gateway`) with a Gateway over
 *                   the same core, pipeline off, forwarding;
 *   public          the whole Portcullis, a public route (no credential);
 *   signed-native   the whole Portcullis, native RFC 9421 HMAC-SHA256 signed requests;
 *   signed-binance  the whole Portcullis, Binance HMAC-SHA256 signed requests;
 *   signed-https    the whole Portcullis serving HTTPS itself (`gateway.tls`, a P-256 certificate
 *                   made by openssl for the run; TLS 1.3 with wrk), native signed requests over
 *                   keep-alive connections: issue 17's HTTPS / HTTP target;
 *   authorizer      nginx in front running the shipped docs/deploy/nginx.conf (the full-request
 *                   protocol: every signed request proxied to Portcullis, `gateway.mode:
 *                   "authorizer"`, and forwarded on its 399), only its addresses templated;
 *   auth-request    the same authorizer behind nginx's `auth_request`, running the shipped
 *                   docs/deploy/nginx-auth-request.conf (body-less requests), addresses templated;
 *   workers         `portcullis start --workers N` (N = cores), hot state in a private Redis,
 *                   signed native requests (when the build has that option);
 *   pass-through-light, signed-light
 *                   the pass-through and the signed native rows again, with only
 *                   LIGHT_CONNECTIONS connections: the loop then has about one request to serve
 *                   at a time, so its delay is what a single task holds it for (a commit, a
 *                   batch of the behaviour stage, a collection), not the queue of 32
 *                   connections' requests that any server at full load works through in one turn.
 *
 * Every request is pre-generated here before its run, into a file that a generated wrk Lua script
 * loads and replays in order (one wrk thread, so nothing is sent twice): signed requests are then
 * unique (a fresh nonce, or a distinct microsecond timestamp for Binance) and fresh (signed just
 * before the run; the keys' freshness window is 15 s, longer than generation plus a run). A file
 * holds three times what the previous runs of the mode reached; a run that exhausts it resends its
 * last request, which the replay protection refuses, and is reported as failed. Every answer other
 * than 2xx, every socket error and every timeout counts as a failure: a refusal is not a
 * measurement.
 *
 * Each mode is measured in `rounds` rounds (every mode once a round, in a rotating order), each
 * measured run after a short discarded warm-up run; before the first round each server is primed.
 * CPU per request is the CPU time (user + system) of every server process of the mode over the
 * measured run (Node processes over IPC, nginx and worker processes from /proc/<pid>/stat),
 * divided by the requests wrk completed; the upstream's is not counted. The event-loop delay is
 * sampled inside the gateway process during each measured run (perf_hooks, 1 ms resolution).
 *
 * Run alone: `node bench/wrk-bench.js [--quick]` (after `npm run build`) prints this section.
 */
import { Buffer } from "node:buffer";
import { execFile, spawn } from "node:child_process";
import { createHmac, createSecretKey } from "node:crypto";
import { accessSync, constants as fsConstants, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseConfig } from "../packages/portcullis/dist/index.js";
import { serverSet } from "./gateway-bench.js";
import { startPrivateRedis } from "./redis-server.js";
import { AUTHORITY, GET_PATH, RequestSigner, SCOPES } from "./signing.js";
import { BENCH_LIMIT } from "./core.js";
import { fmt, median, quantile, table } from "./stats.js";
import { ask, processCpu } from "./ipc.js";
import { cpuBetween, treeCpu } from "./proc.js";

/** Parsing /proc/<pid>/stat (bench/proc.js), under test with this benchmark. */
export { procStat } from "./proc.js";

export const WRK_BIN = process.env.PORTCULLIS_BENCH_WRK ?? "/usr/bin/wrk";
export const NGINX_BIN = process.env.PORTCULLIS_BENCH_NGINX ?? "/usr/sbin/nginx";
export const OPENSSL_BIN = process.env.PORTCULLIS_BENCH_OPENSSL ?? "/usr/bin/openssl";
const PORTCULLIS_BIN = fileURLToPath(new URL("../packages/portcullis/bin/portcullis.js", import.meta.url));
export const NGINX_CONF = fileURLToPath(new URL("../docs/deploy/nginx.conf", import.meta.url));
export const NGINX_AUTH_REQUEST_CONF = fileURLToPath(new URL("../docs/deploy/nginx-auth-request.conf", import.meta.url));

export const WRK_TARGETS = {
  /** Signed (native HMAC) CPU per request at most this many times pass-through's. */
  cpuSignedOverPassThrough: 1.3,
  /** Signed (native HMAC) p99 latency at most this many times pass-through's. */
  p99SignedOverPassThrough: 1.5,
  /** The gateway's event-loop delay p99 at full load (signed native), ms. */
  loopDelayP99Ms: 1,
  /** The same at light load (signed-light): nothing blocks the loop for more than this, ms. */
  loopDelayLightP99Ms: 1,
  /** nginx + Portcullis authorizer throughput (signed) at least this many times the gateway alone's. */
  authorizerOverGateway: 1.5,
  /** The gateway's HTTPS throughput with keep-alive at least this share of its plain HTTP's (issue 17). */
  httpsOverHttp: 0.8,
};

export const WRK_BENCH_SETTINGS = {
  full: { rounds: 5, seconds: 3, warmupSeconds: 1, primeSeconds: 2, connections: 32 },
  quick: { rounds: 1, seconds: 1, warmupSeconds: 1, primeSeconds: 1, connections: 32 },
};

/** Every mode, in the order of the first round and of the report. */
export const WRK_MODES = ["nginx", "pass-through", "public", "signed-native", "signed-binance", "signed-https", "authorizer", "auth-request", "workers", "pass-through-light", "signed-light"];

/** Connections of the light-load modes (`-light`). */
export const LIGHT_CONNECTIONS = 2;

export const WRK_MODE_LABEL = {
  nginx: "nginx reverse proxy (1 worker)",
  "pass-through": "Portcullis pass-through",
  public: "Portcullis, public route",
  "signed-native": "Portcullis, signed requests (native RFC 9421 HMAC)",
  "signed-binance": "Portcullis, signed requests (Binance HMAC)",
  "signed-https": "Portcullis over HTTPS (its own TLS), signed requests (native HMAC)",
  authorizer: "nginx (docs/deploy/nginx.conf) + Portcullis authorizer, signed requests (native HMAC)",
  "auth-request": "nginx auth_request (docs/deploy/nginx-auth-request.conf) + Portcullis authorizer, signed requests (native HMAC)",
  workers: `Portcullis --workers ${availableParallelism()}, signed requests (native HMAC)`,
  "pass-through-light": `Portcullis pass-through, ${LIGHT_CONNECTIONS} connections`,
  "signed-light": `Portcullis, signed requests (native RFC 9421 HMAC), ${LIGHT_CONNECTIONS} connections`,
};

/** The freshness window of the benchmark's keys (ms): generation plus a run fit well inside it. */
const KEY_WINDOW_MS = 15_000;
const PUBLIC_PATH = "/api/v3/exchangeInfo";
const BINANCE_QUERY = "omitZeroBalances=true";
/** What a mode's first file holds per second of run: more than any mode reaches here. */
const FIRST_RATE = 15_000;
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5_000;
const OUTPUT_MARK = "PORTCULLIS_WRK ";
/** Why the issue's nginx + Lua reference row is not measured. */
const LUA_NOTE = "Debian's nginx has no Lua module here (libnginx-mod-http-lua), and verifying RFC 9421 HMAC-SHA256 in nginx Lua needs an HMAC-SHA256 library that module does not ship";

// --- requests, their file and the Lua script that replays them ---------------------------------

/** One HTTP/1.1 request as bytes on the wire (latin1 text): request line, headers, body. */
export function rawHttpRequest({ method, url, headers, body = "" }) {
  let text = `${method} ${url} HTTP/1.1\r\n`;
  for (const [name, value] of Object.entries(headers)) text += `${name}: ${value}\r\n`;
  if (body.length > 0 && !Object.keys(headers).some((n) => n.toLowerCase() === "content-length")) text += `content-length: ${Buffer.byteLength(body, "latin1")}\r\n`;
  return `${text}\r\n${body}`;
}

/** The request file: each request as its byte length in decimal, a newline, then its bytes. */
export function encodeRequests(requests) {
  return Buffer.from(requests.map((r) => `${Buffer.byteLength(r, "latin1")}\n${r}`).join(""), "latin1");
}

/** The inverse of encodeRequests (what the Lua script's init does), for the tests. */
export function decodeRequests(bytes) {
  const text = Buffer.from(bytes).toString("latin1");
  const out = [];
  let pos = 0;
  while (pos < text.length) {
    const nl = text.indexOf("\n", pos);
    if (nl < 0) throw new Error(`request file: no length at byte ${pos}`);
    const size = Number(text.slice(pos, nl));
    if (!Number.isInteger(size) || size <= 0 || nl + 1 + size > text.length) throw new Error(`request file: bad length at byte ${pos}`);
    out.push(text.slice(nl + 1, nl + 1 + size));
    pos = nl + 1 + size;
  }
  return out;
}

/** A Lua string literal of an ASCII path. */
function luaString(text) {
  if (!/^[\x20-\x7e]*$/.test(text)) throw new Error(`not a printable ASCII path: ${JSON.stringify(text)}`);
  return `"${text.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

/**
 * The wrk script: each thread loads `file` (encodeRequests) in init and hands out its requests in
 * order, one per call of request() (the call wrk makes on thread 0 before connecting, to parse
 * the request, takes nothing from the file). Past the end it resends the last one (`cycle`: starts again),
 * counting each such request in `overflow`. done() prints one line, OUTPUT_MARK and JSON: the
 * requests completed, the duration, wrk's error counts (`status`: answers other than 2xx/3xx),
 * latency percentiles (µs), the requests handed out and the overflow.
 */
export function luaScript(file, { cycle = false } = {}) {
  return `-- generated by bench/wrk-bench.js: replays pre-generated requests in order
local path = ${luaString(file)}
local cycle = ${cycle ? "true" : "false"}
reqs = {}
count = 0
sent = 0
overflow = 0
checked = false
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  local pos = 1
  local len = #data
  while pos <= len do
    local nl = string.find(data, "\\n", pos, true)
    local size = tonumber(string.sub(data, pos, nl - 1))
    count = count + 1
    reqs[count] = string.sub(data, nl + 1, nl + size)
    pos = nl + size + 1
  end
end

function request()
  -- wrk calls request() once on thread 0 before any connection, to check (parse) the request
  -- it returns: that call sends nothing, so it takes nothing from the file.
  if not checked then
    checked = true
    return reqs[1]
  end
  sent = sent + 1
  local i = sent
  if i > count then
    overflow = overflow + 1
    if cycle then i = (i - 1) % count + 1 else i = count end
  end
  return reqs[i]
end

function done(summary, latency, requests)
  local handed, over, loaded = 0, 0, 0
  for _, t in ipairs(threads) do
    handed = handed + (t:get("sent") or 0)
    over = over + (t:get("overflow") or 0)
    loaded = loaded + (t:get("count") or 0)
  end
  local e = summary.errors
  io.write(string.format(${luaString(OUTPUT_MARK)} .. '{"requests":%.0f,"durationUs":%.0f,"bytes":%.0f,"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,"timeout":%.0f,"p50Us":%.0f,"p90Us":%.0f,"p99Us":%.0f,"maxUs":%.0f,"meanUs":%.1f,"loaded":%.0f,"sent":%.0f,"overflow":%.0f}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    loaded, handed, over))
end
`;
}

/**
 * The figures of one wrk run from its standard output (the script's done() line): requests, rps,
 * p50/p90/p99/max ms, `failures` (status + socket errors + timeouts) and `overflow` (requests
 * handed out past the end of a file that must not cycle). Throws when the line is missing.
 */
export function parseWrkOutput(stdout) {
  const line = String(stdout)
    .split("\n")
    .find((l) => l.startsWith(OUTPUT_MARK));
  if (line === undefined) throw new Error(`wrk printed no result line: ${String(stdout).slice(-500)}`);
  const r = JSON.parse(line.slice(OUTPUT_MARK.length));
  for (const field of ["requests", "durationUs", "status", "connect", "read", "write", "timeout", "p50Us", "p99Us", "overflow"]) {
    if (typeof r[field] !== "number" || !Number.isFinite(r[field])) throw new Error(`wrk result: ${field} is missing`);
  }
  return {
    requests: r.requests,
    seconds: r.durationUs / 1e6,
    rps: r.durationUs > 0 ? r.requests / (r.durationUs / 1e6) : 0,
    p50: r.p50Us / 1000,
    p90: r.p90Us / 1000,
    p99: r.p99Us / 1000,
    max: r.maxUs / 1000,
    status: r.status,
    socketErrors: r.connect + r.read + r.write,
    timeouts: r.timeout,
    failures: r.status + r.connect + r.read + r.write + r.timeout,
    loaded: r.loaded,
    sent: r.sent,
    overflow: r.overflow,
  };
}

/** One wrk run: `-t1 -c<connections> -d<seconds>s` replaying `requests` (strings) against `port`. */
export async function runWrk({ dir, port, requests, cycle, seconds, connections, scheme = "http" }) {
  const file = join(dir, "requests.bin");
  const script = join(dir, "replay.lua");
  writeFileSync(file, encodeRequests(requests));
  writeFileSync(script, luaScript(file, { cycle }));
  const args = ["-t1", `-c${connections}`, `-d${seconds}s`, "--timeout", "5s", "-s", script, `${scheme}://127.0.0.1:${port}/`];
  const stdout = await new Promise((resolve, reject) => {
    execFile(WRK_BIN, args, { maxBuffer: 4 * 1024 * 1024, timeout: (seconds + 60) * 1000 }, (err, out, errText) => {
      if (err !== null) reject(new Error(`wrk ${args.join(" ")}: ${err.message} ${String(errText).slice(-300)}`));
      else resolve(out);
    });
  });
  rmSync(file, { force: true });
  return parseWrkOutput(stdout);
}

/**
 * How many requests to pre-generate for a run of `seconds` of a mode that has reached `rate`
 * req/s so far: three times that (a warm run can go much faster than a cold one), never fewer
 * than for 5,000 req/s, plus 5,000.
 */
export function requestsFor(rate, seconds) {
  return Math.ceil(Math.max(rate, 5000) * seconds * 3) + 5000;
}

// --- servers ------------------------------------------------------------------------------

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Resolves once 127.0.0.1:`port` accepts a connection; rejects after `timeoutMs`. */
async function waitForPort(port, timeoutMs, what) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const socket = connect(port, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`${what}: not listening on ${port} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The event-loop delay sampler of a wrk-gateway process: reset before a run, read after it. */
function loopProbe(child, resolutionMs) {
  return {
    reset: () => ask(child, { loopDelay: "reset" }),
    async read() {
      const { loopDelay } = await ask(child, { loopDelay: "read" });
      // Each sample is an interval of the resolution-ms timer: the delay is what exceeds it.
      const delay = (ns) => Math.max(0, ns / 1e6 - resolutionMs);
      return { p50: delay(loopDelay.p50), p99: delay(loopDelay.p99), max: delay(loopDelay.max) };
    },
  };
}

/** The gateway's config sections: the benchmark's routes, limits raised so that nothing is refused. */
export function gatewaySections(extra = {}) {
  const raise = (name, window) => ({ name, limit: BENCH_LIMIT, window });
  return {
    environment: "live",
    routes: [
      // A Binance-dialect route also accepts the native scheme.
      { method: "GET", path: GET_PATH, permission: "read", weight: 20, dialect: "binance" },
      { method: "GET", path: PUBLIC_PATH, permission: "public", weight: 20, dialect: "binance" },
    ],
    limits: {
      ip: [raise("ip-weight-1m", "1m")],
      key: [raise("key-weight-1m", "1m")],
      account: [raise("account-weight-1m", "1m")],
      orders: [raise("orders-10s", "10s"), raise("orders-1d", "1d")],
      cancels: [raise("cancels-10s", "10s")],
    },
    ...extra,
    gateway: { ...extra.gateway },
  };
}

/** The authorizer's own settings: nginx, on loopback, is the proxy allowed to ask. */
const AUTHORIZER_SECTIONS = { gateway: { mode: "authorizer", trustedProxies: ["127.0.0.1/32"] } };

const KEY_INPUTS = [
  { account: "bench", scopes: SCOPES, windowMs: KEY_WINDOW_MS },
  { account: "bench", scopes: SCOPES, dialects: ["binance"], windowMs: KEY_WINDOW_MS },
];

/** Signs native RFC 9421 GETs: `make(n)` returns n raw requests, signed now, each with its own nonce. */
function nativeRequests(keyId, secret) {
  const signer = new RequestSigner(keyId, createSecretKey(Buffer.from(secret, "utf8")));
  return (n) => {
    const created = Math.floor(Date.now() / 1000);
    const out = new Array(n);
    for (let i = 0; i < n; i++) out[i] = rawHttpRequest(signer.sign("GET", created));
    return out;
  };
}

/**
 * Signs Binance GET /api/v3/account requests (query-signed, HMAC-SHA256 hex over the query), with
 * microsecond timestamps, each one distinct (Binance's replay identity is the signature).
 */
function binanceRequests(keyId, secret) {
  let lastUs = 0;
  return (n) => {
    const out = new Array(n);
    for (let i = 0; i < n; i++) {
      lastUs = Math.max(Date.now() * 1000, lastUs + 1);
      const payload = `${BINANCE_QUERY}&recvWindow=${KEY_WINDOW_MS}&timestamp=${lastUs}`;
      const signature = createHmac("sha256", secret).update(payload, "latin1").digest("hex");
      out[i] = rawHttpRequest({ method: "GET", url: `${GET_PATH}?${payload}&signature=${signature}`, headers: { host: AUTHORITY, "x-mbx-apikey": keyId } });
    }
    return out;
  };
}

/** The one unsigned request of the public route (replayed in a cycle). */
function publicRequests() {
  const one = rawHttpRequest({ method: "GET", url: PUBLIC_PATH, headers: { host: AUTHORITY } });
  return () => [one];
}

/**
 * A shipped server block (docs/deploy/nginx.conf or nginx-auth-request.conf) with only its three
 * addresses replaced — the authorizer's, the venue's and the listener — as the tests run it.
 */
export function templateShipped(text, { port, upstreamPort, authorizerPort }) {
  const swaps = [
    ["server 127.0.0.1:8081;", `server 127.0.0.1:${authorizerPort};`],
    ["server 127.0.0.1:9000;", `server 127.0.0.1:${upstreamPort};`],
    ["listen 8080;", `listen 127.0.0.1:${port};`],
  ];
  let out = text;
  for (const [from, to] of swaps) {
    if (out.split(from).length !== 2) throw new Error(`the shipped nginx config no longer has "${from}" exactly once`);
    out = out.replace(from, to);
  }
  return out;
}

/**
 * nginx's config: a reverse proxy to the upstream or, with `shipped` (the text of a
 * docs/deploy/*.conf) and `authorizerPort`, that shipped server block in front of the authorizer.
 */
export function nginxConfig({ dir, port, upstreamPort, authorizerPort = null, shipped = null }) {
  const temp = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((t) => `  ${t}_temp_path ${join(dir, `${t}-temp`)};`).join("\n");
  const server =
    shipped === null || authorizerPort === null
      ? `  upstream backend {
    server 127.0.0.1:${upstreamPort};
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }`
      : templateShipped(shipped, { port, upstreamPort, authorizerPort });
  return `# generated by bench/wrk-bench.js
worker_processes 1;
events {
  worker_connections 4096;
}
http {
  access_log off;
${temp}
${server}
}
`;
}

/** A private nginx (master + one worker) on a free port; `stop()` ends it and removes its directory. */
async function startNginx({ upstreamPort, authorizerPort = null, shipped = null }) {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-bench-nginx-"));
  const port = await freePort();
  const conf = join(dir, "nginx.conf");
  writeFileSync(conf, nginxConfig({ dir, port, upstreamPort, authorizerPort, shipped }));
  const child = spawn(NGINX_BIN, ["-p", dir, "-e", join(dir, "error.log"), "-c", conf, "-g", `daemon off; pid ${join(dir, "nginx.pid")};`], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk) => {
    stderr += chunk.toString("utf8");
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      await new Promise((resolve) => {
        const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
        child.once("exit", () => {
          clearTimeout(timer);
          resolve();
        });
        child.kill("SIGQUIT");
      });
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await Promise.race([
      waitForPort(port, 10_000, "nginx"),
      new Promise((_, reject) => child.once("exit", (code) => reject(new Error(`nginx exited with code ${String(code)}: ${stderr.slice(-500)}`)))),
    ]);
  } catch (err) {
    await stop();
    throw err;
  }
  return { port, pid: child.pid, stop };
}

// --- what this build supports --------------------------------------------------------------

function executable(file) {
  try {
    accessSync(file, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Whether the build's config accepts `gateway.mode: "authorizer"`. */
export function authorizerSupported() {
  try {
    const sections = gatewaySections(AUTHORIZER_SECTIONS);
    parseConfig({ ...sections, gateway: { ...sections.gateway, upstream: "http://127.0.0.1:1" } }, tmpdir());
    return true;
  } catch {
    return false;
  }
}

/** Whether this build's config takes `gateway.tls`. */
function tlsSupported() {
  try {
    const sections = gatewaySections({ gateway: { tls: { cert: "/nonexistent.crt", key: "/nonexistent.key" } } });
    parseConfig({ ...sections, gateway: { ...sections.gateway, upstream: "http://127.0.0.1:1" } }, tmpdir());
    return true;
  } catch (err) {
    // A build that knows the setting refuses these files only when it loads them, not here.
    return !/tls/.test(err instanceof Error ? err.message : String(err));
  }
}

/** A self-signed P-256 certificate for 127.0.0.1 in `dir` (the HTTPS mode's): `{ cert, key }` paths. */
function makeCertificate(dir) {
  const cert = join(dir, "gateway.crt");
  const key = join(dir, "gateway.key");
  return new Promise((resolve, reject) => {
    const args = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-days", "1"];
    execFile(OPENSSL_BIN, args, { timeout: 30_000 }, (err, _out, errText) => {
      if (err !== null) reject(new Error(`openssl ${args.join(" ")}: ${String(errText).slice(-300)}`));
      else resolve({ cert, key });
    });
  });
}

/** Whether `portcullis start --help` lists --workers. */
function workersSupported() {
  return new Promise((resolve) => {
    execFile(process.execPath, [PORTCULLIS_BIN, "start", "--help"], { timeout: 20_000 }, (err, stdout) => resolve(err === null && /--workers\b/.test(stdout)));
  });
}

/** What can run here: a reason per mode that cannot (shown in the report), none for those that can. */
export async function availability() {
  const missing = {};
  if (!executable(WRK_BIN)) {
    for (const mode of WRK_MODES) missing[mode] = `wrk not found at ${WRK_BIN} (apt-get install wrk, or set PORTCULLIS_BENCH_WRK)`;
    return missing;
  }
  const nginx = executable(NGINX_BIN);
  if (!nginx) missing.nginx = `nginx not found at ${NGINX_BIN} (apt-get install nginx, or set PORTCULLIS_BENCH_NGINX)`;
  if (!authorizerSupported()) missing.authorizer = 'not available in this build (the config does not accept `gateway.mode: "authorizer"`)';
  else if (!nginx) missing.authorizer = missing.nginx;
  if (missing.authorizer !== undefined) missing["auth-request"] = missing.authorizer;
  else if (!existsSync(NGINX_AUTH_REQUEST_CONF)) missing["auth-request"] = `not available in this build (no ${NGINX_AUTH_REQUEST_CONF})`;
  if (!(await workersSupported())) missing.workers = "not available in this build (`portcullis start --help` does not list --workers)";
  if (!executable(OPENSSL_BIN)) missing["signed-https"] = `openssl not found at ${OPENSSL_BIN} (it makes the run's certificate)`;
  else if (!tlsSupported()) missing["signed-https"] = "not available in this build (the config does not accept `gateway.tls`)";
  return missing;
}

/**
 * `portcullis start --workers N` over a fresh data directory, hot state in `redis`: its keys
 * created with the CLI, the port fixed in the config. `cpu()` sums the whole process tree.
 */
export async function startWorkers({ origin, redis, workers }) {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-bench-workers-"));
  const dataDir = join(dir, "data");
  const cli = (args) =>
    new Promise((resolve, reject) => {
      execFile(process.execPath, [PORTCULLIS_BIN, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
        if (err !== null) reject(new Error(`portcullis ${args[0]}: ${String(stderr).slice(-500)}`));
        else resolve(stdout);
      });
    });
  let child = null;
  const stop = async () => {
    if (child !== null && child.exitCode === null && child.signalCode === null) {
      const running = child;
      await new Promise((resolve) => {
        const timer = setTimeout(() => running.kill("SIGKILL"), STOP_TIMEOUT_MS * 2);
        running.once("exit", () => {
          clearTimeout(timer);
          resolve();
        });
        running.kill("SIGTERM");
      });
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await cli(["init", "--data", dataDir, "--upstream", origin]);
    const port = await freePort();
    const config = join(dir, "portcullis.json");
    const sections = gatewaySections({ hot: { backend: "redis", url: redis.url }, admin: { enabled: false } });
    writeFileSync(config, JSON.stringify({ ...sections, dataDir, gateway: { host: "127.0.0.1", port, upstream: origin } }));
    const key = JSON.parse(await cli(["keys", "create", "--data", dataDir, "--account", "bench", "--scopes", SCOPES.join(","), "--window", String(KEY_WINDOW_MS), "--json"]));
    const id = key.id ?? key.key?.id;
    const secret = key.secret;
    if (typeof id !== "string" || typeof secret !== "string") throw new Error("portcullis keys create --json: no id and secret in its output");
    // `workers` null: without the option (one process), to check this setup on a build without it.
    const option = workers === null ? [] : ["--workers", String(workers)];
    child = spawn(process.execPath, [PORTCULLIS_BIN, "start", "--config", config, ...option], { stdio: ["ignore", "ignore", "inherit"] });
    await waitForPort(port, START_TIMEOUT_MS, "portcullis start --workers");
    return { port, pid: child.pid, key: { id, secret }, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

// --- the benchmark ---------------------------------------------------------------------------

/**
 * Runs benchmark 17. Returns `{ settings, missing, runs, primeFailures }`: `missing` says
 * why each mode that did not run did not; `runs` lists every measured run.
 */
export async function runWrkBench({ rounds, seconds, warmupSeconds, primeSeconds, connections, progress = () => undefined }) {
  const settings = { rounds, seconds, warmupSeconds, primeSeconds, connections, workers: availableParallelism() };
  const missing = await availability();
  if (WRK_MODES.every((m) => missing[m] !== undefined)) {
    progress(`benchmark 17 NOT RUN: ${missing.nginx}`);
    return { settings, missing, runs: [], primeFailures: 0 };
  }
  for (const mode of WRK_MODES) if (missing[mode] !== undefined) progress(`benchmark 17: ${mode} NOT MEASURED: ${missing[mode]}`);

  const set = serverSet();
  const dir = mkdtempSync(join(tmpdir(), "portcullis-bench-wrk-"));
  const stops = [];
  let redis = null;
  try {
    const upstream = await set.start(["upstream"]);
    const origin = `http://127.0.0.1:${upstream.info.port}`;
    const config = JSON.stringify(gatewaySections());
    const gateway = await set.start(["wrk-gateway", origin, config]);
    const pass = await set.start(["wrk-gateway", origin, config, "pass-through"]);
    const { keys } = await ask(gateway.child, { createKeys: KEY_INPUTS });
    const native = nativeRequests(keys[0].id, keys[0].secret);
    const binance = binanceRequests(keys[1].id, keys[1].secret);
    const nodeServer = (server) => ({
      port: server.info.port,
      cpu: async () => (await processCpu(server.child)).cpu,
      loop: loopProbe(server.child, server.info.loopResolutionMs),
    });
    const servers = {
      "pass-through": { ...nodeServer(pass), make: native },
      public: { ...nodeServer(gateway), make: publicRequests(), cycle: true },
      "signed-native": { ...nodeServer(gateway), make: native },
      "signed-binance": { ...nodeServer(gateway), make: binance },
      "pass-through-light": { ...nodeServer(pass), make: native, connections: LIGHT_CONNECTIONS },
      "signed-light": { ...nodeServer(gateway), make: native, connections: LIGHT_CONNECTIONS },
    };
    if (missing["signed-https"] === undefined) {
      try {
        const tls = await makeCertificate(dir);
        const https = await set.start(["wrk-gateway", origin, JSON.stringify(gatewaySections({ gateway: { tls } }))]);
        const httpsKeys = (await ask(https.child, { createKeys: [KEY_INPUTS[0]] })).keys;
        servers["signed-https"] = { ...nodeServer(https), make: nativeRequests(httpsKeys[0].id, httpsKeys[0].secret), scheme: "https" };
      } catch (err) {
        missing["signed-https"] = `could not be started: ${err instanceof Error ? err.message : String(err)}`;
        progress(`benchmark 17: signed-https NOT MEASURED: ${missing["signed-https"]}`);
      }
    }
    if (missing.nginx === undefined) {
      const nginx = await startNginx({ upstreamPort: upstream.info.port });
      stops.push(nginx.stop);
      // The same signed requests as the gateway's: nginx forwards them unread.
      servers.nginx = { port: nginx.port, cpu: async () => treeCpu(nginx.pid), cpuTree: true, loop: null, make: native };
    }
    if (missing.authorizer === undefined || missing["auth-request"] === undefined) {
      // One authorizer process behind two nginx instances, each running a shipped config: the
      // modes run one at a time, so each run's CPU and loop delay are its own mode's.
      let authorizer = null;
      let authKeys = null;
      const behind = async (mode, shippedFile) => {
        if (missing[mode] !== undefined) return;
        try {
          if (authorizer === null) {
            authorizer = await set.start(["wrk-gateway", origin, JSON.stringify(gatewaySections(AUTHORIZER_SECTIONS))]);
            authKeys = (await ask(authorizer.child, { createKeys: [KEY_INPUTS[0]] })).keys;
          }
          const running = authorizer;
          const nginx = await startNginx({ upstreamPort: upstream.info.port, authorizerPort: running.info.port, shipped: readFileSync(shippedFile, "utf8") });
          stops.push(nginx.stop);
          servers[mode] = {
            port: nginx.port,
            cpu: async () => ({ nginx: treeCpu(nginx.pid), gateway: (await processCpu(running.child)).cpu }),
            cpuTree: "mixed",
            loop: loopProbe(running.child, running.info.loopResolutionMs),
            make: nativeRequests(authKeys[0].id, authKeys[0].secret),
          };
        } catch (err) {
          missing[mode] = `could not be started: ${err instanceof Error ? err.message : String(err)}`;
          progress(`benchmark 17: ${mode} NOT MEASURED: ${missing[mode]}`);
        }
      };
      await behind("authorizer", NGINX_CONF);
      await behind("auth-request", NGINX_AUTH_REQUEST_CONF);
    }
    if (missing.workers === undefined) {
      try {
        redis = await startPrivateRedis();
        const workers = await startWorkers({ origin, redis, workers: settings.workers });
        stops.push(workers.stop);
        servers.workers = { port: workers.port, cpu: async () => treeCpu(workers.pid), cpuTree: true, loop: null, make: nativeRequests(workers.key.id, workers.key.secret) };
      } catch (err) {
        missing.workers = `could not be started: ${err instanceof Error ? err.message : String(err)}`;
        progress(`benchmark 17: workers NOT MEASURED: ${missing.workers}`);
      }
    }
    const modes = WRK_MODES.filter((m) => servers[m] !== undefined);

    // Requests per second each mode has reached so far: its next file holds three times that.
    const reached = Object.fromEntries(modes.map((m) => [m, FIRST_RATE]));
    const load = async (mode, runSeconds) => {
      const s = servers[mode];
      const count = s.cycle === true ? 1 : requestsFor(reached[mode], runSeconds);
      const run = await runWrk({ dir, port: s.port, requests: s.make(count), cycle: s.cycle === true, seconds: runSeconds, connections: s.connections ?? connections, scheme: s.scheme ?? "http" });
      if (s.cycle !== true) reached[mode] = Math.max(reached[mode], run.rps);
      return { ...run, failures: run.failures + (s.cycle === true ? 0 : run.overflow) };
    };
    const cpuOf = async (s) => s.cpu();
    const cpuSpent = (s, before, after) => {
      if (s.cpuTree === true) return cpuBetween(before, after);
      if (s.cpuTree === "mixed") return cpuBetween(before.nginx, after.nginx) + (after.gateway - before.gateway);
      return after - before;
    };

    let primeFailures = 0;
    for (const mode of modes) {
      const prime = await load(mode, primeSeconds);
      primeFailures += prime.failures;
      // The first file was a guess: size the next ones from what this mode really reached.
      reached[mode] = Math.max(prime.rps, 1000);
      progress(`benchmark 17: primed ${mode}: ${Math.round(prime.rps)} req/s, failures ${prime.failures}`);
    }
    const runs = [];
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < modes.length; i++) {
        const mode = modes[(i + round) % modes.length];
        const s = servers[mode];
        const warmup = await load(mode, warmupSeconds);
        if (s.loop !== null) await s.loop.reset();
        const before = await cpuOf(s);
        const run = await load(mode, seconds);
        const after = await cpuOf(s);
        const loop = s.loop === null ? null : await s.loop.read();
        const cpuUs = cpuSpent(s, before, after) / run.requests;
        runs.push({ round, mode, ...run, cpuUs, loop, warmupFailures: warmup.failures });
        progress(`benchmark 17: round ${round + 1}/${rounds} ${mode}: ${Math.round(run.rps)} req/s, p99 ${fmt(run.p99, 2)} ms, ${fmt(cpuUs, 1)} µs CPU/req, failures ${run.failures + warmup.failures}`);
      }
    }
    return { settings, missing, runs, primeFailures };
  } finally {
    for (const stop of stops) await stop();
    await set.stopAll();
    if (redis !== null) await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

// --- report ------------------------------------------------------------------------------

const verdict = (pass) => (pass ? "**PASS**" : "**FAIL**");
const spread = (list, decimals = 2) => `${fmt(median(list), decimals)}× (p10–p90 ${fmt(quantile(list, 0.1), decimals)}–${fmt(quantile(list, 0.9), decimals)})`;

/** Per-round ratios a/b of `field` between two modes (rounds where both ran). */
function roundRatios(runs, a, b, field) {
  const out = [];
  for (const ra of runs.filter((r) => r.mode === a)) {
    const rb = runs.find((r) => r.mode === b && r.round === ra.round);
    if (rb !== undefined) out.push(ra[field] / rb[field]);
  }
  return out;
}

/** The section of BENCHMARKS.md: `{ summary: rows, text: lines, failures }`. */
export function wrkSection(result) {
  const { settings, missing, runs } = result;
  const failures = runs.reduce((n, r) => n + r.failures + r.warmupFailures, 0) + result.primeFailures;
  const heading = "## 17. Latency under wrk, with nginx as the external baseline";
  if (runs.length === 0) {
    const why = missing.nginx ?? "nothing could run";
    return {
      failures: 0,
      summary: [["Latency under wrk (benchmark 17)", "**NOT RUN**", "–", `**NOT RUN: ${why}**`]],
      text: [heading, "", `**NOT RUN on this machine: ${why}.** None of this benchmark's figures were measured.`, ""],
    };
  }
  const of = (mode) => runs.filter((r) => r.mode === mode);
  const med = (mode, pick) => median(of(mode).map(pick));
  const ran = (mode) => of(mode).length > 0;
  const portcullisRow = (mode) => mode !== "nginx";
  const row = (mode) => {
    if (!ran(mode)) return [WRK_MODE_LABEL[mode], `**${missing[mode] ?? "not measured"}**`, "–", "–", "–", "–", "–", "–", "–"];
    const loop = (pick) => (of(mode).some((r) => r.loop !== null) ? fmt(med(mode, (r) => (r.loop === null ? Number.NaN : pick(r.loop))), 2) : "–");
    return [
      WRK_MODE_LABEL[mode],
      fmt(med(mode, (r) => r.rps), 0),
      fmt(med(mode, (r) => r.p50), 2),
      fmt(med(mode, (r) => r.p99), 2),
      fmt(med(mode, (r) => r.cpuUs), 1),
      portcullisRow(mode) ? loop((l) => l.p50) : "–",
      portcullisRow(mode) ? loop((l) => l.p99) : "–",
      portcullisRow(mode) ? loop((l) => l.max) : "–",
      String(of(mode).reduce((n, r) => n + r.failures + r.warmupFailures, 0)),
    ];
  };

  const cpuRatios = roundRatios(runs, "signed-native", "pass-through", "cpuUs");
  const p99Ratios = roundRatios(runs, "signed-native", "pass-through", "p99");
  const binanceCpu = roundRatios(runs, "signed-binance", "pass-through", "cpuUs");
  const binanceP99 = roundRatios(runs, "signed-binance", "pass-through", "p99");
  const loopP99 = med("signed-native", (r) => r.loop.p99);
  const loopLightP99 = med("signed-light", (r) => r.loop.p99);
  const loopFigure = (mode, pick) => (ran(mode) ? `${fmt(med(mode, (r) => pick(r.loop)), 2)} ms` : `**${missing[mode] ?? "not measured"}**`);
  const authRatios = roundRatios(runs, "authorizer", "signed-native", "rps");
  const target = (label, ratios, bound, pass, fmtBound) => [label, ratios.length === 0 ? "n/a" : spread(ratios), fmtBound, ratios.length === 0 ? "–" : verdict(pass(median(ratios), bound))];
  const targetRows = [
    target("Signed (native HMAC) / pass-through, CPU µs per request", cpuRatios, WRK_TARGETS.cpuSignedOverPassThrough, (m, b) => m <= b, `≤ ${WRK_TARGETS.cpuSignedOverPassThrough}×`),
    target("Signed (native HMAC) / pass-through, p99 latency", p99Ratios, WRK_TARGETS.p99SignedOverPassThrough, (m, b) => m <= b, `≤ ${WRK_TARGETS.p99SignedOverPassThrough}×`),
    [
      "Event-loop delay p99 at full load (signed native HMAC)",
      ran("signed-native") ? `${fmt(loopP99, 2)} ms` : "n/a",
      `≤ ${WRK_TARGETS.loopDelayP99Ms} ms`,
      ran("signed-native") ? verdict(loopP99 <= WRK_TARGETS.loopDelayP99Ms) : "–",
    ],
    [
      `Event-loop delay p99 at light load, ${LIGHT_CONNECTIONS} connections (signed native HMAC): the longest a task holds the loop`,
      loopFigure("signed-light", (l) => l.p99),
      `≤ ${WRK_TARGETS.loopDelayLightP99Ms} ms`,
      ran("signed-light") ? verdict(loopLightP99 <= WRK_TARGETS.loopDelayLightP99Ms) : "–",
    ],
    ran("signed-https")
      ? target("HTTPS / plain HTTP, signed native throughput with keep-alive (issue 17)", roundRatios(runs, "signed-https", "signed-native", "rps"), WRK_TARGETS.httpsOverHttp, (m, b) => m >= b, `≥ ${WRK_TARGETS.httpsOverHttp}×`)
      : ["HTTPS / plain HTTP, signed native throughput with keep-alive (issue 17)", `**${missing["signed-https"] ?? "not measured"}**`, `≥ ${WRK_TARGETS.httpsOverHttp}×`, "–"],
    ran("authorizer")
      ? target("nginx + Portcullis authorizer / Portcullis gateway alone, signed throughput", authRatios, WRK_TARGETS.authorizerOverGateway, (m, b) => m >= b, `≥ ${WRK_TARGETS.authorizerOverGateway}×`)
      : ["nginx + Portcullis authorizer / Portcullis gateway alone, signed throughput", `**${missing.authorizer ?? "not measured"}**`, `≥ ${WRK_TARGETS.authorizerOverGateway}×`, "–"],
  ];
  const info = [
    ["Event-loop delay p99 at full load, pass-through (the same 32 connections' queue, no security)", loopFigure("pass-through", (l) => l.p99), "none (informational)", "–"],
    [`Event-loop delay max at light load, ${LIGHT_CONNECTIONS} connections (signed native HMAC)`, loopFigure("signed-light", (l) => l.max), "none (informational)", "–"],
    [`Event-loop delay p99 / max at light load, ${LIGHT_CONNECTIONS} connections, pass-through`, ran("pass-through-light") ? `${fmt(med("pass-through-light", (r) => r.loop.p99), 2)} / ${fmt(med("pass-through-light", (r) => r.loop.max), 2)} ms` : `**${missing["pass-through-light"] ?? "not measured"}**`, "none (informational)", "–"],
    ["Signed (Binance HMAC) / pass-through, CPU µs per request", binanceCpu.length === 0 ? "n/a" : spread(binanceCpu), "none (informational)", "–"],
    ["Signed (Binance HMAC) / pass-through, p99 latency", binanceP99.length === 0 ? "n/a" : spread(binanceP99), "none (informational)", "–"],
    ["Pass-through / nginx, CPU µs per request", spread(roundRatios(runs, "pass-through", "nginx", "cpuUs")), "none (informational)", "–"],
    ["Signed (native HMAC) / nginx, throughput", spread(roundRatios(runs, "signed-native", "nginx", "rps")), "none (informational)", "–"],
    ...(ran("auth-request")
      ? [
          ["nginx auth_request + authorizer / Portcullis gateway alone, signed throughput", spread(roundRatios(runs, "auth-request", "signed-native", "rps")), "none (informational)", "–"],
          ...(ran("authorizer") ? [["nginx auth_request + authorizer / nginx full request (nginx.conf) + authorizer, throughput", spread(roundRatios(runs, "auth-request", "authorizer", "rps")), "none (informational)", "–"]] : []),
        ]
      : []),
  ];
  const summary = targetRows.map(([label, figure, bound, result]) => [`wrk: ${label}`, figure, bound, result]);
  const notMeasured = WRK_MODES.filter((m) => !ran(m));

  const text = [
    heading,
    "",
    `Debian's \`wrk\` (\`${WRK_BIN}\`) drives every mode from its own process: one thread, ${settings.connections} connections, over loopback, each mode in front of the same upstream (a small node:http server answering a 190-byte account document, bench/servers.js \`upstream\`). ${settings.rounds} rounds; each round runs every mode once, in a rotating order, each measured run of ${settings.seconds} s preceded by a discarded ${settings.warmupSeconds} s warm-up run (and each server primed for ${settings.primeSeconds} s before the first round). Figures are medians over the rounds.`,
    "",
    `The Portcullis rows are a whole configured Portcullis, started as \`portcullis start\` starts one (\`startPortcullis\` over a fresh data directory): the benchmark's two routes, the limits of every scope configured and raised to ${BENCH_LIMIT.toLocaleString("en-US")} per window (so nothing is refused, but every limit is still counted), the audit log and the behaviour stage on their defaults, hot state in memory. *Pass-through* is a Gateway with the pipeline off over the same running core, in its own process (as benchmark 2's pass-through mode). The signed requests are pre-generated just before each run, unique (their own nonce; a distinct microsecond timestamp for Binance) and fresh (the keys' freshness window is ${KEY_WINDOW_MS / 1000} s, which covers generation plus a run); a generated wrk Lua script loads them and sends each once, in order. The nginx and pass-through rows are sent the same signed native requests, forwarded unread; the public row sends one unsigned request to a public route over and over. Every answer other than 2xx, socket error or timeout counts as a failure (a refusal is not a measurement), and so does a run that used up its file.`,
    "",
    `*CPU µs per request* is the CPU time (user + system) of every server process of the mode during the measured run — the gateway process over IPC (\`process.cpuUsage\`), nginx's master and worker (and \`--workers\`' processes) from \`/proc/<pid>/stat\`, both for the authorizer rows — divided by the requests wrk completed; neither the upstream nor wrk is counted. The *event-loop delay* columns are sampled inside the gateway process during each measured run (\`perf_hooks.monitorEventLoopDelay\`, 1 ms resolution): how much later than due its 1 ms timer ran, i.e. how long the loop was busy with requests before it could run a callback. At full load the loop finds about one request per connection waiting at each turn and serves them all before the timer's turn comes, so its delay there is about ${settings.connections} requests' worth of work, for the pass-through too; the *${LIGHT_CONNECTIONS} connections* rows run the pass-through and the signed gateway again with only ${LIGHT_CONNECTIONS} connections, where the delay is what a single task (an audit commit handed to the writer, a batch of the behaviour stage, a garbage collection) holds the loop for.`,
    "",
    table(["Mode", "req/s", "p50 ms", "p99 ms", "CPU µs per request", "Event-loop delay p50 ms", "p99 ms", "max ms", "Failures (all runs)"], [
      ...WRK_MODES.map(row),
      ["nginx + Lua verifying the same signed requests (the issue's reference row)", `**not measured here**: ${LUA_NOTE}`, "–", "–", "–", "–", "–", "–", "–"],
    ]),
    "",
    ...(notMeasured.length === 0 ? [] : [`**Not measured in this run:** ${notMeasured.map((m) => `${WRK_MODE_LABEL[m]} — ${missing[m] ?? "not measured"}`).join("; ")}.`, ""]),
    table(["Figure", "Median of per-round ratios", "Target", "Result"], [...targetRows, ...info]),
    "",
    `**Why benchmark 2's full-security / pass-through ratio differs from this one.** Benchmark 2's load generator (autocannon) runs inside the benchmark's own Node process, signs every request as it sends it and shares the machine's ${availableParallelism()} cores with the proxy under test and the upstream: at full load the machine, not the proxy, is the bottleneck, and a mode that costs more CPU also slows the generator and the upstream, so throughput ratios are flattened (and its CPU per request rises as throughput falls). Here wrk is a separate C process replaying pre-generated requests, costing a few µs per request and the same for every mode, so the throughput and latency differences are the servers' own, and the CPU per request is counted for the server processes only.`,
    "",
    table(
      ["Round", "Mode", "req/s", "p50 ms", "p99 ms", "max ms", "CPU µs/req", "Loop delay p99 ms", "Requests", "Failures", "Warm-up failures"],
      runs.map((r) => [String(r.round + 1), WRK_MODE_LABEL[r.mode], fmt(r.rps, 0), fmt(r.p50, 2), fmt(r.p99, 2), fmt(r.max, 1), fmt(r.cpuUs, 1), r.loop === null ? "–" : fmt(r.loop.p99, 2), String(r.requests), String(r.failures), String(r.warmupFailures)]),
    ),
    "",
  ];
  return { failures, summary, text };
}

// Alone: node bench/wrk-bench.js [--quick]
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const quick = process.argv.includes("--quick");
  const progress = (line) => process.stderr.write(`${line}\n`);
  runWrkBench({ ...(quick ? WRK_BENCH_SETTINGS.quick : WRK_BENCH_SETTINGS.full), progress }).then(
    (result) => {
      const section = wrkSection(result);
      process.stdout.write(`${table(["Benchmark", "Figure", "Target", "Result"], section.summary)}\n\n${section.text.join("\n")}\n`);
      if (section.failures > 0) process.exitCode = 1;
    },
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
