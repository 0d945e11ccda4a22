/**
 * The fuzz suite's gateway and oracles. One real gateway (core on a temporary data directory,
 * frozen clock, every scheme's routes, a key per scheme, a session) in front of a real recording
 * upstream on a loopback port. Each case is signed, mutated, sent through the gateway's own
 * request listener (the one node:http calls, Host and Expect checks included) and judged:
 *
 * - never a 5xx, never a stack trace; a refusal is JSON in a known error shape with a code;
 * - forwarded only if it must or may be: a case whose mutation changed a signed part must not
 *   reach the upstream, an unchanged valid case must, and whatever reaches it must be what the
 *   client signed (the parts the scheme covers), with identity headers that verify and name the
 *   signing key;
 * - no client-supplied identity, address, override or rewrite header reaches the upstream: no
 *   value the case injected appears in any forwarded header, no name of that family (case and
 *   `_` folded) arrives except the gateway's own, and no credential header is forwarded;
 * - no log line holds a key's secret, the OKX passphrase, or the session's token or secret
 *   (checked every 1000 requests and at the end).
 */
import { generateKeyPairSync } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { request as httpRequest, type IncomingHttpHeaders, type RequestListener } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { inject } from "light-my-request";
import type { RouteSpec } from "../../../src/authz/routes.js";
import { ERROR_CODES } from "../../../src/errors/catalogue.js";
import { createIdentityVerifier, type IdentityVerifier } from "../../../src/gateway/identity.js";
import { IDENTITY_SECRET, type Recorded, type TestGateway, makeGateway } from "../../support/gateway.js";
import { signRequest } from "../../support/harness.js";
import { fuzzCase } from "./arbitraries.js";
import { ALL_CREDENTIAL_HEADERS, SCHEMES, type BuiltCase, type FuzzCase, type FuzzKeys, HOST, type SchemeName, type Signed, type WireRequest, buildCase, signedView } from "./model.js";

export const CORPUS_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "corpus");

/**
 * Generated requests per CI run, over the whole suite (PORTCULLIS_FUZZ_RUNS; default 100,000).
 * Each fuzz file takes its share of this number and asserts it ran all of it.
 */
export const FUZZ_RUNS = ((): number => {
  const raw = process.env.PORTCULLIS_FUZZ_RUNS;
  if (raw === undefined || raw === "") return 100_000;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1) throw new TypeError(`PORTCULLIS_FUZZ_RUNS must be a positive integer, got ${raw}`);
  return n;
})();

/** PORTCULLIS_FUZZ_SEED replays a reported run. */
export const FUZZ_SEED = process.env.PORTCULLIS_FUZZ_SEED === undefined || process.env.PORTCULLIS_FUZZ_SEED === "" ? undefined : Number(process.env.PORTCULLIS_FUZZ_SEED);

export const FUZZ_ROUTES: RouteSpec[] = [
  { method: "GET", path: "/public/time", permission: "public" },
  { method: "GET", path: "/native/account", permission: "read" },
  { method: ["GET", "POST", "DELETE"], path: "/native/order", permission: "trade" },
  { method: "GET", path: "/api/v3/account", permission: "read", dialect: "binance" },
  { method: ["GET", "POST", "DELETE"], path: "/api/v3/order", permission: "trade", dialect: "binance" },
  { method: "GET", path: "/v5/account/wallet-balance", permission: "read", dialect: "bybit" },
  { method: "POST", path: "/v5/order/create", permission: "trade", dialect: "bybit" },
  { method: "GET", path: "/api/v5/account/balance", permission: "read", dialect: "okx" },
  { method: "POST", path: "/api/v5/trade/order", permission: "trade", dialect: "okx" },
  { method: "GET", path: "/api/v3/brokerage/accounts", permission: "read", dialect: "coinbase" },
  { method: "POST", path: "/api/v3/brokerage/orders", permission: "trade", dialect: "coinbase" },
  { method: "POST", path: "/0/private/Balance", permission: "read", dialect: "kraken" },
  { method: "POST", path: "/0/private/AddOrder", permission: "trade", dialect: "kraken" },
];

export const ACCOUNT = "fuzz-acct";

export interface FuzzGateway {
  readonly t: TestGateway;
  readonly keys: FuzzKeys;
  /** The listener node:http calls for every request (Host and Expect checks, then the gateway). */
  readonly listener: RequestListener;
  readonly verifyIdentity: IdentityVerifier;
  /** Requests sent and judged so far. */
  count: number;
  /** Kraken's increasing nonce. */
  nonce: bigint;
  /** Log lines searched for secrets so far. */
  logLinesScanned: number;
  /** The (clock + skew) times cases were signed at. */
  readonly signedAt: Set<number>;
  close(): Promise<void>;
}

export async function startFuzzGateway(): Promise<FuzzGateway> {
  // The upstream accepts large headers, so a 64 KiB header the gateway forwards is recorded, not refused by it.
  const t = await makeGateway({ routes: FUZZ_ROUTES, sessions: true }, { upstreamMaxHeaderSize: 1024 * 1024 });
  const key = async (input: Record<string, unknown>): Promise<{ id: string; secret: string }> => {
    const created = await t.createKey({ account: ACCOUNT, scopes: ["read", "trade"], ...input });
    return { id: created.key.id, secret: created.secret ?? "" };
  };
  const pem = (k: { export(o: { type: "spki"; format: "pem" }): string | Buffer }): string => k.export({ type: "spki", format: "pem" }).toString();
  const ed = generateKeyPairSync("ed25519");
  const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const nativeHmac = await key({});
  const nativeEd = await key({ algorithm: "ed25519", publicKey: pem(ed.publicKey) });
  const okxPassphrase = "Fuzz-Passphrase-1";
  const keys0 = {
    nativeHmac,
    nativeEd: { id: nativeEd.id, privateKey: ed.privateKey },
    binance: await key({ dialects: ["binance"] }),
    bybit: await key({ dialects: ["bybit"] }),
    okx: { ...(await key({ dialects: ["okx"], passphrase: okxPassphrase })), passphrase: okxPassphrase },
    coinbase: { id: (await key({ dialects: ["coinbase"], publicKey: pem(ec.publicKey) })).id, privateKey: ec.privateKey },
    kraken: await key({ dialects: ["kraken"] }),
  };
  // A session, logged on with the HMAC key (sessions are native only).
  const logonBody = JSON.stringify({ ttl: "15m" });
  const logon = signRequest({ method: "POST", url: "/portcullis/v1/session", host: HOST, keyId: nativeHmac.id, key: nativeHmac.secret, created: t.clock.seconds, body: logonBody });
  const res = await t.inject({ method: "POST", url: "/portcullis/v1/session", headers: { ...logon, "content-type": "application/json" }, payload: logonBody });
  if (res.statusCode !== 201) throw new Error(`session logon failed: ${res.statusCode} ${res.payload}`);
  const session = res.json<{ keyid: string; secret: string }>();
  const listener = t.gateway.server.listeners("request")[0] as RequestListener | undefined;
  if (listener === undefined) throw new Error("the gateway's server has no request listener");
  const h: FuzzGateway = {
    t,
    keys: { ...keys0, session: { token: session.keyid, secret: session.secret, parentId: nativeHmac.id } },
    listener,
    verifyIdentity: createIdentityVerifier(IDENTITY_SECRET, { now: t.clock.now }),
    count: 0,
    nonce: BigInt(t.clock.ms) * 1000n,
    signedAt: new Set(),
    logLinesScanned: 0,
    close: () => t.close(),
  };
  return h;
}

// --- sending ---------------------------------------------------------------------------------

export interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly payload: string;
}

/** In-process: the request as node:http would hand it to the listener (names folded, duplicates joined as node joins them, the target as sent). */
async function viaInject(h: FuzzGateway, w: WireRequest): Promise<Answer> {
  const headers = Object.create(null) as Record<string, string | string[]>;
  for (const [n, v] of w.headers) {
    const k = n.toLowerCase();
    const prev = headers[k];
    headers[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  const url = w.url;
  const res = await inject(
    (req, out) => {
      // light-my-request normalises the URL as WHATWG does (dot segments, non-ASCII); node:http
      // hands over the request target exactly as sent.
      req.url = url;
      h.listener(req, out);
    },
    { method: w.method, url: "/", headers, remoteAddress: w.remoteAddress, ...(w.body === "" ? {} : { payload: w.body }) },
  );
  return { status: res.statusCode, headers: res.headers as IncomingHttpHeaders, payload: res.payload };
}

/** Over a real socket to the listening gateway: header lines exactly as listed (order, case, duplicates, no Host if none). */
async function viaSocket(w: WireRequest, port: number): Promise<Answer> {
  const raw: string[] = [];
  for (const [n, v] of w.headers) raw.push(n, v);
  const body = Buffer.from(w.body, "utf8");
  if (body.length > 0 && !w.headers.some(([n]) => /^(content-length|transfer-encoding)$/i.test(n))) raw.push("Content-Length", String(body.length));
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: "127.0.0.1", port, method: w.method, path: w.url, headers: raw, setHost: false, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, payload: Buffer.concat(chunks).toString("utf8") });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

/**
 * The upstream's record of this request (removed from the recorder), or undefined when nothing
 * reached it. Cases of several schemes are in flight at once, so other records may be waiting
 * for their answers; the suite's last test checks that none is left over (a request forwarded
 * although its client was given a refusal).
 */
function takeRecord(h: FuzzGateway, answer: Answer): Recorded | undefined {
  const id = answer.headers["portcullis-request-id"];
  const requests = h.t.upstream.requests;
  const i = typeof id === "string" ? requests.findIndex((r) => r.headers["portcullis-request-id"] === id) : -1;
  return i < 0 ? undefined : requests.splice(i, 1)[0];
}

// --- the oracles -----------------------------------------------------------------------------

/** Names (lower case, `_` read as `-`) a client must never get to the upstream; the gateway may write some itself. */
const CLIENT_FAMILY = new Set([
  "forwarded", "x-real-ip", "true-client-ip", "x-client-ip", "client-ip", "cf-connecting-ip", "fastly-client-ip", "x-cluster-client-ip",
  "x-originating-ip", "x-remote-ip", "x-remote-addr", "x-http-method-override", "x-http-method", "x-method-override", "x-original-method",
  "x-original-url", "x-rewrite-url", "x-original-uri", "x-host", "x-original-host",
]);
const FAMILY_PREFIXES = ["portcullis-", "x-forwarded-", "x-envoy-"];
const GATEWAY_WRITES = new Set(["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "portcullis-request-id"]);
const IDENTITY_NAMES = new Set([
  "portcullis-key-id", "portcullis-account", "portcullis-sub-account", "portcullis-scopes", "portcullis-client-ip", "portcullis-timestamp",
  "portcullis-content-sha256", "portcullis-identity",
]);
const CREDENTIAL_NAMES = new Set(ALL_CREDENTIAL_HEADERS.filter((n) => n !== "content-digest"));
const CATALOGUE: ReadonlySet<string> = new Set(ERROR_CODES);
/** The unique part of an injected value (arbitraries.ts). */
const MARKER = /fzm[a-z0-9]{10}/;
const STACK = /\n\s+at |\bat [\w$.<>]+ \(|\.(?:ts|js|mjs|cjs):\d+:\d+|\b[A-Z]\w*(?:Error|Exception): /;

function canonicalIp(text: string): string {
  if (!text.includes(":")) return text;
  try {
    return new URL(`http://[${text}]/`).hostname.slice(1, -1);
  } catch {
    return text;
  }
}

/** A refusal's body in one of the error shapes the gateway speaks (native or a venue's), with its code. */
function refusalProblem(answer: Answer, method: string): string | null {
  if (method === "HEAD") return null;
  const type = answer.headers["content-type"];
  if (typeof type !== "string" || !type.startsWith("application/json")) return `refusal without a JSON content type (${String(type)})`;
  if (typeof answer.headers["portcullis-request-id"] !== "string") return "refusal without portcullis-request-id";
  let body: unknown;
  try {
    body = JSON.parse(answer.payload);
  } catch {
    return "refusal body is not JSON";
  }
  if (body === null || typeof body !== "object") return "refusal body is not an object";
  const o = body as Record<string, unknown>;
  const ok200 = answer.status === 200;
  if (typeof o.code === "string" && typeof o.message === "string" && typeof o.requestId === "string") {
    return !ok200 && CATALOGUE.has(o.code) ? null : `native refusal with code ${o.code} (not in the catalogue) or status ${answer.status}`;
  }
  if (typeof o.code === "number" && typeof o.msg === "string") return !ok200 && o.code < 0 ? null : `Binance refusal with code ${o.code}`; // Binance
  if (typeof o.code === "string" && typeof o.msg === "string" && Array.isArray(o.data)) return !ok200 && /^\d+$/.test(o.code) ? null : `OKX refusal with code ${o.code}`; // OKX
  if (typeof o.retCode === "number" && typeof o.retMsg === "string") return o.retCode !== 0 ? null : "Bybit refusal with retCode 0"; // Bybit
  if (Array.isArray(o.error) && o.error.length > 0 && o.error.every((e) => typeof e === "string" && /^[EW]\w+:/.test(e))) return null; // Kraken
  if (typeof o.error === "string" && typeof o.error_details === "string" && typeof o.message === "string") {
    return !ok200 && CATALOGUE.has(o.error_details) ? null : `Coinbase refusal with error_details ${o.error_details}`;
  }
  return `refusal in no known error shape: ${answer.payload.slice(0, 200)}`;
}

/** Everything wrong with the gateway's answer to one case (empty: all oracles hold). */
export function judge(
  h: FuzzGateway,
  scheme: SchemeName | null,
  signed: Signed | null,
  injected: readonly string[],
  wire: WireRequest,
  expect: BuiltCase["expect"],
  answer: Answer,
  record: Recorded | undefined,
): string[] {
  const problems: string[] = [];
  if (answer.status >= 500) problems.push(`answered ${answer.status}`);
  if (STACK.test(answer.payload)) problems.push("the answer holds a stack trace");
  if (record === undefined) {
    if (expect === "forwarded") problems.push(`a valid request was refused: ${answer.status} ${answer.payload.slice(0, 300)}`);
    const refusal = refusalProblem(answer, wire.method);
    if (refusal !== null) problems.push(refusal);
    return problems;
  }
  // Forwarded.
  if (answer.status !== 200 || answer.headers["x-upstream"] !== "echo") problems.push(`forwarded, but the answer is not the upstream's (${answer.status})`);
  if (expect === "refused") problems.push("forwarded a request whose signed content was changed");
  const headers = record.headers;
  const authority = typeof headers["x-forwarded-host"] === "string" ? headers["x-forwarded-host"] : undefined;
  if (signed !== null && scheme !== null) {
    const s = signed;
    if (expect === "forwarded") {
      if (record.method !== s.wire.method || record.url !== s.forwardUrl || record.body !== s.forwardBody) {
        problems.push(`forwarded ${record.method} ${record.url} (${record.body.length} bytes), signed ${s.wire.method} ${s.forwardUrl} (${s.forwardBody.length} bytes)`);
      }
    }
    if (signedView(scheme, record.method, record.url, record.body, authority ?? "") !== signedView(scheme, s.wire.method, s.forwardUrl, s.forwardBody, HOST)) {
      problems.push(`forwarded content the client did not sign: ${record.method} ${record.url.slice(0, 200)}`);
    }
    if (s.keyId !== null) {
      const verified = h.verifyIdentity({ method: record.method, url: record.url, headers }, record.rawBody);
      if (!verified.ok) problems.push(`identity headers do not verify: ${verified.reason}`);
      else if (verified.identity.keyId !== s.keyId || verified.identity.account !== ACCOUNT) problems.push(`identity names ${verified.identity.keyId} / ${verified.identity.account}, signed by ${s.keyId}`);
    }
  }
  const isPublic = signed === null || signed.keyId === null;
  for (const name of Object.keys(headers)) {
    const folded = name.toLowerCase().replaceAll("_", "-");
    if (CREDENTIAL_NAMES.has(folded)) problems.push(`credential header ${name} forwarded`);
    const family = CLIENT_FAMILY.has(folded) || FAMILY_PREFIXES.some((p) => folded.startsWith(p));
    const gateways = name === folded && (GATEWAY_WRITES.has(folded) || (!isPublic && IDENTITY_NAMES.has(folded)));
    if (family && !gateways) problems.push(`client header ${name} forwarded`);
  }
  const values = Object.entries(headers).map(([n, v]) => `${n}: ${Array.isArray(v) ? v.join("\n") : (v ?? "")}`);
  for (const value of injected) {
    const m = MARKER.exec(value);
    const needle = m === null ? value : m[0];
    const hit = values.find((v) => v.includes(needle));
    if (hit !== undefined) problems.push(`injected value reached the upstream: ${hit.slice(0, 120)}`);
  }
  if (canonicalIp(String(headers["x-forwarded-for"])) !== canonicalIp(wire.remoteAddress)) problems.push(`x-forwarded-for is ${String(headers["x-forwarded-for"])}, the client is ${wire.remoteAddress}`);
  if (headers["x-forwarded-proto"] !== "http") problems.push(`x-forwarded-proto is ${String(headers["x-forwarded-proto"])}`);
  return problems;
}

export class FuzzFailure extends Error {
  override name = "FuzzFailure";
}

/** Builds, sends and judges one case; throws a FuzzFailure naming every broken oracle. */
export async function runCase(h: FuzzGateway, c: FuzzCase, via: { readonly socketPort?: number } = {}): Promise<void> {
  h.t.clock.advance(1);
  h.nonce += 1n;
  // Binance, Bybit and OKX use the signature itself as the single-use value: two cases signed at
  // the same moment with the same content would be a replay. Every case is signed at its own time.
  while (h.signedAt.has(h.t.clock.ms + c.base.skewMs)) h.t.clock.advance(1);
  h.signedAt.add(h.t.clock.ms + c.base.skewMs);
  if (h.signedAt.size > 50_000) for (const at of h.signedAt) if (at < h.t.clock.ms - 10_000) h.signedAt.delete(at);
  const built = buildCase(c, h.keys, h.t.clock.ms, h.nonce);
  const wire = via.socketPort === undefined ? built.wire : { ...built.wire, remoteAddress: "127.0.0.1" };
  const answer = via.socketPort === undefined ? await viaInject(h, wire) : await viaSocket(wire, via.socketPort);
  const record = takeRecord(h, answer);
  h.count++;
  const problems = judge(h, c.scheme, built.signed, built.injected, wire, built.expect, answer, record);
  if (h.count % 1000 === 0) problems.push(...scanLogs(h));
  if (problems.length > 0) {
    throw new FuzzFailure(`${c.scheme} (expected ${built.expect}): ${problems.join("; ")}\n${describe(wire)}`);
  }
}

/** A raw request (a corpus entry with no scheme), judged with the same oracles. */
export async function runRaw(h: FuzzGateway, wire: WireRequest, expect: BuiltCase["expect"], socketPort: number): Promise<void> {
  const local = { ...wire, remoteAddress: "127.0.0.1" };
  const answer = await viaSocket(local, socketPort);
  const record = takeRecord(h, answer);
  h.count++;
  const injected = wire.headers.flatMap(([, v]) => (MARKER.test(v) ? [v] : []));
  const problems = judge(h, null, null, injected, local, expect, answer, record);
  if (problems.length > 0) throw new FuzzFailure(`raw (expected ${expect}): ${problems.join("; ")}\n${describe(wire)}`);
}

/**
 * No log line may hold a secret, a passphrase or a session token: the gateway's log lines so far
 * are searched for every one this gateway's keys have, then dropped (so memory stays flat).
 */
export function scanLogs(h: FuzzGateway): string[] {
  const k = h.keys;
  const secrets = [k.nativeHmac.secret, k.binance.secret, k.bybit.secret, k.okx.secret, k.okx.passphrase, k.kraken.secret, k.session.secret, k.session.token];
  const lines = h.t.logLines;
  const problems: string[] = [];
  for (const line of lines) for (const secret of secrets) if (line.includes(secret)) problems.push(`a log line holds a secret: ${line.slice(0, 200)}`);
  h.logLinesScanned += lines.length;
  lines.length = 0;
  return problems;
}

function describe(w: WireRequest): string {
  const cut = (s: string): string => (s.length > 160 ? `${s.slice(0, 160)}…(${s.length} chars)` : s);
  return [`${w.method} ${cut(w.url)} from ${w.remoteAddress}`, ...w.headers.map(([n, v]) => `  ${n}: ${cut(v)}`), `  body: ${cut(JSON.stringify(w.body))}`].join("\n");
}

// --- the property ----------------------------------------------------------------------------

/**
 * Runs `runs` generated cases of `scheme`. On a failure, fast-check shrinks it; the smallest
 * failing case is written to the corpus directory as `found-<scheme>-<seed>.json` (review it and
 * commit it: the corpus test replays it on every run) and the test fails with fast-check's report.
 */
export async function fuzzScheme(h: FuzzGateway, scheme: SchemeName, runs: number): Promise<void> {
  // The last failing case fast-check tried: after shrinking, the smallest.
  const found: { smallest: FuzzCase | null } = { smallest: null };
  const details = await fc.check(
    fc.asyncProperty(fuzzCase(scheme), async (c) => {
      try {
        await runCase(h, c);
      } catch (err) {
        found.smallest = c;
        throw err;
      }
    }),
    { numRuns: runs, ...(FUZZ_SEED === undefined ? {} : { seed: FUZZ_SEED }), endOnFailure: false, maxSkipsPerRun: 0 },
  );
  if (!details.failed) return;
  if (found.smallest !== null) {
    mkdirSync(CORPUS_DIR, { recursive: true });
    const file = join(CORPUS_DIR, `found-${scheme}-${details.seed}.json`);
    const entry = { description: `found by the fuzz suite (seed ${details.seed}, path ${details.counterexamplePath ?? ""}); say what it shows`, case: found.smallest };
    writeFileSync(file, `${JSON.stringify(entry, null, 2)}\n`);
  }
  const cause = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
  throw new FuzzFailure(`${fc.defaultReportMessage(details) ?? "fuzz property failed"}\n${cause}`);
}

/** The header bytes of a case as sent (node:http refuses more than 16 KiB with HEADERS_TOO_LARGE). */
function headerBytes(c: FuzzCase, h: FuzzGateway): number {
  const wire = buildCase(c, h.keys, h.t.clock.ms, h.nonce).wire;
  return wire.headers.reduce((n, [name, value]) => n + name.length + value.length + 4, wire.url.length);
}

/**
 * `runs` cases of the given schemes over real connections to the listening gateway: node's own
 * parser reads the header lines (their case, duplicates, order), and the same oracles judge the
 * answer. Cases whose headers would pass node's 16 KiB limit are left to the in-process runs.
 */
export async function fuzzOverSockets(h: FuzzGateway, schemes: readonly SchemeName[], runs: number, port: number): Promise<void> {
  const details = await fc.check(
    fc.asyncProperty(
      fc.oneof(...schemes.map((s) => fuzzCase(s))).filter((c) => headerBytes(c, h) < 12 * 1024),
      async (c) => {
        await runCase(h, c, { socketPort: port });
      },
    ),
    { numRuns: runs, ...(FUZZ_SEED === undefined ? {} : { seed: FUZZ_SEED }) },
  );
  if (!details.failed) return;
  const cause = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
  throw new FuzzFailure(`${fc.defaultReportMessage(details) ?? "fuzz property failed"}\n${cause}`);
}

/** Each scheme's share of FUZZ_RUNS (every scheme gets the same; the shares add up to at least FUZZ_RUNS). */
export function runsPerScheme(total: number = FUZZ_RUNS): number {
  return Math.ceil(total / SCHEMES.length);
}
