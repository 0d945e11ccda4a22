/**
 * The fuzz suite's model of a request: a valid request for one signing scheme (`BaseRequest`,
 * signed here with the independent signers of test/support), the mutations applied to it (plain
 * data, so a failing case can be written to the corpus and replayed), and what the oracle must
 * therefore expect: forwarded, refused, or either (then whatever was forwarded must be what the
 * client signed).
 */
import type { KeyObject } from "node:crypto";
import { signRequest } from "../../support/harness.js";
import { type HeaderList, binanceSignParams, bybitHeaders, coinbaseHeaders, krakenHeaders, okxHeaders } from "../../support/venues.js";

export const SCHEMES = ["native-hmac", "native-ed25519", "session", "binance-query", "binance-body", "bybit", "okx", "coinbase", "kraken", "public"] as const;
export type SchemeName = (typeof SCHEMES)[number];

export const HOST = "gateway.test";

/** A request on the wire: headers in order, with duplicates and the client's spelling. */
export interface WireRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: HeaderList;
  readonly body: string;
  readonly remoteAddress: string;
}

/** The valid request a case starts from (before signing). */
export interface BaseRequest {
  /** Index into the scheme's routes (modulo their number). */
  readonly route: number;
  /** Query parameters, each already percent-encoded. */
  readonly query: readonly (readonly [string, string])[];
  /** Body fields (a JSON object's members, or form parameters); a GET has no body. */
  readonly fields: readonly (readonly [string, string])[];
  /** Kraken: send the body as JSON instead of a form. Bybit: leave X-BAPI-RECV-WINDOW out. */
  readonly json: boolean;
  /** Benign headers the client also sends. */
  readonly headers: readonly (readonly [string, string])[];
  /** Signing time relative to the gateway's clock, inside every scheme's window. */
  readonly skewMs: number;
  readonly remoteAddress: string;
}

/** What a mutation does to the validity of the request. */
export type Effect = "keeps" | "breaks" | "either";

export type Mutation =
  /** An unrelated header (x-fz-*): keeps. */
  | { readonly kind: "add"; readonly name: string; readonly value: string }
  /** A client-supplied identity, address, override or rewrite header: keeps, and must never reach the upstream. */
  | { readonly kind: "inject"; readonly name: string; readonly value: string }
  /** Connection naming a header the client sent: keeps (that header is hop-by-hop). */
  | { readonly kind: "connection" }
  /** A header name's case changed (bit i of `bits` upper-cases character i): keeps. */
  | { readonly kind: "case"; readonly pick: number; readonly bits: number }
  /** Expect: 100-continue: keeps. */
  | { readonly kind: "expect" }
  /** A credential header sent twice (the same value, or junk), before or after the original. */
  | { readonly kind: "duplicate"; readonly pick: number; readonly junk: string | null; readonly before: boolean }
  /** The signature's bytes changed (format kept): breaks. */
  | { readonly kind: "signature"; readonly at: number }
  /** A credential header cut short: breaks. */
  | { readonly kind: "truncate"; readonly pick: number; readonly keep: number }
  /** A credential header's value replaced: breaks. */
  | { readonly kind: "replace"; readonly pick: number; readonly value: string }
  /** Text inserted into a credential header: either (some insertions are insignificant). */
  | { readonly kind: "insert"; readonly pick: number; readonly at: number; readonly text: string }
  /** A credential header left out: breaks. */
  | { readonly kind: "remove"; readonly pick: number }
  /** The body changed. */
  | { readonly kind: "body"; readonly op: "flip" | "append" | "truncate" | "huge" | "proto"; readonly at: number; readonly text: string }
  /** The query changed. */
  | { readonly kind: "query"; readonly op: "reorder" | "add" | "drop" | "encode" | "raw"; readonly at: number; readonly text: string }
  /** The path changed. */
  | { readonly kind: "path"; readonly op: "encode" | "slash" | "double" | "upper" | "dot" | "dotdot"; readonly at: number }
  /** The method changed. */
  | { readonly kind: "method"; readonly to: string }
  /** The Host header changed. */
  | { readonly kind: "host"; readonly value: string }
  /** Signed at a time outside the window (ms from the clock): breaks. */
  | { readonly kind: "stale"; readonly ms: number }
  /** Another scheme's credential header added: either. */
  | { readonly kind: "foreign"; readonly name: string; readonly value: string }
  /** A second, junk signature label beside the real one (RFC 9421): either. */
  | { readonly kind: "label"; readonly input: string; readonly signature: string };

/** One generated case: a base request for a scheme, at most one significant mutation, any number of neutral ones, and optional chaos. */
export interface FuzzCase {
  readonly scheme: SchemeName;
  readonly base: BaseRequest;
  readonly significant: Mutation | null;
  readonly neutral: readonly Mutation[];
  /** Several significant mutations at once: they may cancel out, so the expectation is `either`. */
  readonly chaos: readonly Mutation[];
}

// --- keys ------------------------------------------------------------------------------------

export interface FuzzKeys {
  readonly nativeHmac: { readonly id: string; readonly secret: string };
  readonly nativeEd: { readonly id: string; readonly privateKey: KeyObject };
  readonly session: { readonly token: string; readonly secret: string; readonly parentId: string };
  readonly binance: { readonly id: string; readonly secret: string };
  readonly bybit: { readonly id: string; readonly secret: string };
  readonly okx: { readonly id: string; readonly secret: string; readonly passphrase: string };
  readonly coinbase: { readonly id: string; readonly privateKey: KeyObject };
  readonly kraken: { readonly id: string; readonly secret: string };
}

// --- schemes ---------------------------------------------------------------------------------

interface Route {
  readonly method: string;
  readonly path: string;
}

/** What a scheme's signature covers (a change to a covered part must be refused). */
interface Covers {
  readonly method: boolean;
  readonly path: boolean;
  readonly query: boolean;
  readonly body: boolean;
  readonly authority: boolean;
}

export interface SchemeDef {
  readonly name: SchemeName;
  readonly routes: readonly Route[];
  readonly covers: Covers;
  /** Binance and Coinbase: reordering the query can leave the signed text unchanged. */
  readonly reorderBreaks: boolean;
  /** Credential headers (lower case), the targets of header mutations; every one is required. */
  readonly credentials: readonly string[];
  /** Query parameters allowed on a route of this method. */
  readonly query: (method: string) => boolean;
  readonly bodyKind: "json" | "form" | "kraken";
  /** How old a signed request may be (ms): the scheme's default window; null without a time. */
  readonly windowMs: number | null;
}

const ALL: Covers = { method: true, path: true, query: true, body: true, authority: true };
const NATIVE_ROUTES: Route[] = [
  { method: "GET", path: "/native/account" },
  { method: "GET", path: "/native/order" },
  { method: "POST", path: "/native/order" },
  { method: "DELETE", path: "/native/order" },
];
const always = (): boolean => true;
const getOnly = (m: string): boolean => m === "GET";

export const SCHEME_DEFS: Readonly<Record<SchemeName, SchemeDef>> = {
  "native-hmac": { name: "native-hmac", routes: NATIVE_ROUTES, covers: ALL, reorderBreaks: true, credentials: ["signature", "signature-input", "content-digest"], query: always, bodyKind: "json", windowMs: 5000 },
  "native-ed25519": { name: "native-ed25519", routes: NATIVE_ROUTES, covers: ALL, reorderBreaks: true, credentials: ["signature", "signature-input", "content-digest"], query: always, bodyKind: "json", windowMs: 5000 },
  session: { name: "session", routes: NATIVE_ROUTES, covers: ALL, reorderBreaks: true, credentials: ["signature", "signature-input", "content-digest"], query: always, bodyKind: "json", windowMs: 5000 },
  "binance-query": {
    name: "binance-query",
    routes: [
      { method: "GET", path: "/api/v3/order" },
      { method: "GET", path: "/api/v3/account" },
      { method: "POST", path: "/api/v3/order" },
      { method: "DELETE", path: "/api/v3/order" },
    ],
    covers: { method: false, path: false, query: true, body: true, authority: false },
    reorderBreaks: false,
    credentials: ["x-mbx-apikey"],
    query: always,
    bodyKind: "form",
    windowMs: 5000,
  },
  "binance-body": {
    name: "binance-body",
    routes: [
      { method: "POST", path: "/api/v3/order" },
      { method: "DELETE", path: "/api/v3/order" },
    ],
    covers: { method: false, path: false, query: true, body: true, authority: false },
    reorderBreaks: false,
    credentials: ["x-mbx-apikey"],
    query: always,
    bodyKind: "form",
    windowMs: 5000,
  },
  bybit: {
    name: "bybit",
    routes: [
      { method: "GET", path: "/v5/account/wallet-balance" },
      { method: "POST", path: "/v5/order/create" },
    ],
    // A GET signs its query, a POST its body; the other part may not be sent at all.
    covers: { method: false, path: false, query: true, body: true, authority: false },
    reorderBreaks: true,
    credentials: ["x-bapi-api-key", "x-bapi-sign", "x-bapi-timestamp", "x-bapi-recv-window"],
    query: getOnly,
    bodyKind: "json",
    windowMs: 5000,
  },
  okx: {
    name: "okx",
    routes: [
      { method: "GET", path: "/api/v5/account/balance" },
      { method: "POST", path: "/api/v5/trade/order" },
    ],
    covers: { method: true, path: true, query: true, body: true, authority: false },
    reorderBreaks: true,
    credentials: ["ok-access-key", "ok-access-sign", "ok-access-timestamp", "ok-access-passphrase"],
    query: always,
    bodyKind: "json",
    windowMs: 30_000,
  },
  coinbase: {
    name: "coinbase",
    routes: [
      { method: "GET", path: "/api/v3/brokerage/accounts" },
      { method: "POST", path: "/api/v3/brokerage/orders" },
    ],
    // The token's uri claim names method, host and path; query and body are not covered (as on Coinbase).
    covers: { method: true, path: true, query: false, body: false, authority: true },
    reorderBreaks: false,
    credentials: ["authorization"],
    query: always,
    bodyKind: "json",
    windowMs: 120_000,
  },
  kraken: {
    name: "kraken",
    routes: [
      { method: "POST", path: "/0/private/Balance" },
      { method: "POST", path: "/0/private/AddOrder" },
    ],
    // A query string is refused (API-Sign does not cover it).
    covers: { method: false, path: true, query: true, body: true, authority: false },
    reorderBreaks: true,
    credentials: ["api-key", "api-sign"],
    query: () => false,
    bodyKind: "kraken",
    windowMs: null,
  },
  public: {
    name: "public",
    routes: [{ method: "GET", path: "/public/time" }],
    covers: { method: false, path: false, query: false, body: false, authority: false },
    reorderBreaks: false,
    credentials: [],
    query: always,
    bodyKind: "json",
    windowMs: null,
  },
};

/** Every credential header of every scheme (lower case): the `foreign` mutation's names. */
export const ALL_CREDENTIAL_HEADERS = [...new Set(Object.values(SCHEME_DEFS).flatMap((d) => d.credentials))];

// --- signing ---------------------------------------------------------------------------------

/** A signed request, and what the upstream must receive for it. */
export interface Signed {
  readonly wire: WireRequest;
  /** The target and body the upstream receives (a dialect's signature parameter removed). */
  readonly forwardUrl: string;
  readonly forwardBody: string;
  /** The key the identity headers name (a session's parent key), or null for a public route. */
  readonly keyId: string | null;
}

export function routeOf(scheme: SchemeName, base: BaseRequest): Route {
  const routes = SCHEME_DEFS[scheme].routes;
  return routes[base.route % routes.length] ?? { method: "GET", path: "/" };
}

function joinParams(params: readonly (readonly [string, string])[]): string {
  return params.map(([k, v]) => `${k}=${v}`).join("&");
}

function jsonText(fields: readonly (readonly [string, string])[]): string {
  return `{${fields.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(",")}}`;
}

/**
 * Signs `base` for `scheme` at `now` (epoch ms), `nonce` a value that increases per call (Kraken's
 * nonce). Header order: Host, the benign headers, Content-Type, the credentials.
 */
export function signBase(scheme: SchemeName, base: BaseRequest, keys: FuzzKeys, now: number, nonce: bigint): Signed {
  const def = SCHEME_DEFS[scheme];
  const { method, path } = routeOf(scheme, base);
  const time = now + base.skewMs;
  const seconds = Math.floor(time / 1000);
  const query = def.query(method) ? joinParams(base.query) : "";
  const hasBody = method !== "GET" && method !== "DELETE";
  const headers: HeaderList = [["Host", HOST]];
  for (const [n, v] of base.headers) headers.push([n, headerSafe(v)]);
  const wire = (url: string, body: string, more: HeaderList, contentType: string | null): WireRequest => ({
    method,
    url,
    headers: [...headers, ...(contentType === null ? [] : [["Content-Type", contentType] as [string, string]]), ...more],
    body,
    remoteAddress: base.remoteAddress,
  });
  const url = query === "" ? path : `${path}?${query}`;
  switch (scheme) {
    case "native-hmac":
    case "native-ed25519":
    case "session": {
      const body = hasBody ? jsonText(base.fields) : "";
      const key = scheme === "native-hmac" ? keys.nativeHmac.secret : scheme === "session" ? keys.session.secret : keys.nativeEd.privateKey;
      const keyId = scheme === "native-hmac" ? keys.nativeHmac.id : scheme === "session" ? keys.session.token : keys.nativeEd.id;
      const signed = signRequest({ method, url, host: HOST, body, keyId, key, alg: scheme === "native-ed25519" ? "ed25519" : "hmac-sha256", created: seconds });
      const more: HeaderList = [];
      if (signed["content-digest"] !== undefined) more.push(["Content-Digest", signed["content-digest"]]);
      more.push(["Signature-Input", signed["signature-input"]], ["Signature", signed.signature]);
      const identity = scheme === "native-hmac" ? keys.nativeHmac.id : scheme === "session" ? keys.session.parentId : keys.nativeEd.id;
      return { wire: wire(url, body, more, hasBody ? "application/json" : null), forwardUrl: url, forwardBody: body, keyId: identity };
    }
    case "binance-query": {
      const params = joinParams([...base.query, ["timestamp", String(time)]]);
      const signedQuery = binanceSignParams(params, params, keys.binance.secret);
      return {
        wire: wire(`${path}?${signedQuery}`, "", [["X-MBX-APIKEY", keys.binance.id]], null),
        forwardUrl: `${path}?${params}`,
        forwardBody: "",
        keyId: keys.binance.id,
      };
    }
    case "binance-body": {
      const params = joinParams([...base.fields.map(([k, v]) => [k, encodeURIComponent(v)] as const), ["timestamp", String(time)]]);
      const body = binanceSignParams(params, query + params, keys.binance.secret);
      return {
        wire: wire(url, body, [["X-MBX-APIKEY", keys.binance.id]], "application/x-www-form-urlencoded"),
        forwardUrl: url,
        forwardBody: params,
        keyId: keys.binance.id,
      };
    }
    case "bybit": {
      const body = hasBody ? jsonText(base.fields) : "";
      const more = bybitHeaders({ method, url, body, keyId: keys.bybit.id, secret: keys.bybit.secret, time, recvWindow: base.json ? null : "5000" });
      return { wire: wire(url, body, more, hasBody ? "application/json" : null), forwardUrl: url, forwardBody: body, keyId: keys.bybit.id };
    }
    case "okx": {
      const body = hasBody ? jsonText(base.fields) : "";
      const more = okxHeaders({ method, url, body, keyId: keys.okx.id, secret: keys.okx.secret, passphrase: keys.okx.passphrase, time });
      return { wire: wire(url, body, more, hasBody ? "application/json" : null), forwardUrl: url, forwardBody: body, keyId: keys.okx.id };
    }
    case "coinbase": {
      const body = hasBody ? jsonText(base.fields) : "";
      const more = coinbaseHeaders({ method, host: HOST, path, keyId: keys.coinbase.id, privateKey: keys.coinbase.privateKey, seconds });
      return { wire: wire(url, body, more, hasBody ? "application/json" : null), forwardUrl: url, forwardBody: body, keyId: keys.coinbase.id };
    }
    case "kraken": {
      const nonceText = String(nonce);
      const body = base.json
        ? `{"nonce":${nonceText}${base.fields.map(([k, v]) => `,${JSON.stringify(k)}:${JSON.stringify(v)}`).join("")}}`
        : joinParams([["nonce", nonceText], ...base.fields.map(([k, v]) => [k, encodeURIComponent(v)] as const)]);
      const more = krakenHeaders({ path, nonce: nonceText, body, keyId: keys.kraken.id, secret: keys.kraken.secret });
      return { wire: wire(path, body, more, base.json ? "application/json" : "application/x-www-form-urlencoded"), forwardUrl: path, forwardBody: body, keyId: keys.kraken.id };
    }
    case "public":
      return { wire: wire(url, "", [], null), forwardUrl: url, forwardBody: "", keyId: null };
  }
}

// --- mutations -------------------------------------------------------------------------------

/** Header names whose duplicates node:http discards (the first is kept); all others are joined. */
const SINGLE_VALUE = new Set([
  "age", "authorization", "content-length", "content-type", "etag", "expires", "from", "host", "if-modified-since", "if-unmodified-since",
  "last-modified", "location", "max-forwards", "proxy-authorization", "referer", "retry-after", "server", "user-agent",
]);

function findHeader(headers: HeaderList, name: string): number {
  return headers.findIndex(([n]) => n.toLowerCase() === name);
}

function withHeaders(w: WireRequest, headers: HeaderList): WireRequest {
  return { ...w, headers };
}

function splitUrl(url: string): { path: string; query: string | null } {
  const q = url.indexOf("?");
  return q < 0 ? { path: url, query: null } : { path: url.slice(0, q), query: url.slice(q + 1) };
}

function joinUrl(path: string, query: string | null): string {
  return query === null ? path : `${path}?${query}`;
}

/** Percent-encodes the character at `at` of `text` (skipping `%`, `&`, `=`, `/`, `?`), or returns it unchanged. */
function encodeOne(text: string, at: number, protect: string): string {
  for (let k = 0; k < text.length; k++) {
    const i = (at + k) % text.length;
    const c = text[i] ?? "";
    if (!protect.includes(c) && c !== "%" && c.charCodeAt(0) < 128) {
      return `${text.slice(0, i)}%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}${text.slice(i + 1)}`;
    }
  }
  return text;
}

const BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const HEX = "0123456789abcdef";

/** Changes one signature character (not a base64 value's last, which may carry only padding bits) to another of its alphabet. */
function alterChar(text: string, start: number, end: number, alphabet: string, at: number): string {
  const span = end - start;
  if (span <= 0) return `${text}0`;
  const i = start + (at % span);
  const c = text[i] ?? "A";
  const k = alphabet.indexOf(c);
  const next = alphabet[(k + 1 + (at % (alphabet.length - 1))) % alphabet.length] ?? "A";
  return `${text.slice(0, i)}${next === c ? (alphabet[0] === c ? alphabet[1] : alphabet[0]) : next}${text.slice(i + 1)}`;
}

/** The wire request with its signature's bytes changed. */
function alterSignature(scheme: SchemeName, w: WireRequest, at: number): WireRequest {
  const headers: HeaderList = w.headers.map(([n, v]) => [n, v]);
  const set = (name: string, f: (v: string) => string): WireRequest => {
    const i = findHeader(headers, name);
    const entry = headers[i];
    if (entry !== undefined) entry[1] = f(entry[1]);
    return withHeaders(w, headers);
  };
  switch (scheme) {
    case "native-hmac":
    case "native-ed25519":
    case "session":
      // sig1=:<base64>: ; leave the last two data characters alone (padding bits).
      return set("signature", (v) => alterChar(v, 6, v.length - 4, BASE64, at));
    case "binance-query":
    case "binance-body": {
      const inUrl = w.url.indexOf("signature=");
      if (inUrl >= 0) {
        const s = inUrl + "signature=".length;
        return { ...w, url: alterChar(w.url, s, s + 64, HEX, at) };
      }
      const s = w.body.indexOf("signature=") + "signature=".length;
      return { ...w, body: alterChar(w.body, s, s + 64, HEX, at) };
    }
    case "bybit":
      return set("x-bapi-sign", (v) => alterChar(v, 0, v.length, HEX, at));
    case "okx":
      return set("ok-access-sign", (v) => alterChar(v, 0, v.length - 3, BASE64, at));
    case "kraken":
      return set("api-sign", (v) => alterChar(v, 0, v.length - 4, BASE64, at));
    case "coinbase":
      // The JWT's signature part (base64url): its first characters.
      return set("authorization", (v) => {
        const dot = v.lastIndexOf(".");
        return alterChar(v, dot + 1, v.length - 2, BASE64.replace("+/", "-_"), at);
      });
    case "public":
      return w;
  }
}

/** A header value node:http could deliver: no CR, LF or NUL, no surrounding whitespace. */
export function headerSafe(value: string): string {
  // eslint-disable-next-line no-control-regex -- the control characters are what is removed
  return value.replace(/[\x00-\x08\x0a-\x1f\x7f]/g, "").trim();
}

/** A header name with its case changed: bit j of `bits` upper-cases character j (names are ASCII). */
function recase(name: string, bits: number): string {
  let out = "";
  for (let j = 0; j < name.length; j++) {
    const c = name.charAt(j);
    out += (bits >> j % 30) & 1 ? c.toUpperCase() : c.toLowerCase();
  }
  return out;
}

function editQuery(query: string | null, parts: readonly string[], m: Extract<Mutation, { kind: "query" }>): string {
  if (m.op === "reorder" && parts.length >= 2) {
    const i = m.at % parts.length;
    return [...parts.filter((_, k) => k !== i), parts[i] ?? ""].join("&");
  }
  if (m.op === "add" || m.op === "reorder") return [...parts, `fz${m.at % 100}=${encodeURIComponent(m.text)}`].join("&");
  if (m.op === "drop" && parts.length > 0) return parts.filter((_, k) => k !== m.at % parts.length).join("&");
  if (m.op === "encode") return encodeOne(query ?? "a", m.at, "&=");
  return `${query ?? ""}${query === null || query === "" ? "" : "&"}${m.text.replace(/[#\s]/g, "")}`;
}

function editPath(path: string, m: Extract<Mutation, { kind: "path" }>): string {
  switch (m.op) {
    case "encode":
      return encodeOne(path, m.at, "/");
    case "slash":
      return `${path}/`;
    case "double":
      return path.replace("/", "//");
    case "upper": {
      const letters: number[] = [];
      for (let i = 0; i < path.length; i++) if (/[a-z]/.test(path.charAt(i))) letters.push(i);
      const i = letters[m.at % Math.max(1, letters.length)] ?? 1;
      return path.slice(0, i) + path.slice(i, i + 1).toUpperCase() + path.slice(i + 1);
    }
    case "dot":
      return path.replace(/\/([^/]*)$/, "/./$1");
    case "dotdot":
      return path.replace(/\/([^/]*)$/, "/x/../$1");
  }
}

export interface Applied {
  readonly wire: WireRequest;
  readonly effect: Effect;
}

const METHOD_ORDER = ["GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"];

/** Applies one mutation; `effect` is what it does to a valid request of `scheme`. */
export function applyMutation(scheme: SchemeName, w: WireRequest, m: Mutation): Applied {
  const def = SCHEME_DEFS[scheme];
  const creds = def.credentials;
  const target = (pick: number): string | undefined => creds[pick % Math.max(1, creds.length)];
  const changed = (before: WireRequest, after: WireRequest): boolean =>
    before.url !== after.url || before.body !== after.body || before.method !== after.method || JSON.stringify(before.headers) !== JSON.stringify(after.headers);
  const significant = (after: WireRequest, covered: boolean): Applied => ({ wire: after, effect: !changed(w, after) ? "keeps" : covered ? "breaks" : "either" });
  switch (m.kind) {
    case "add":
    case "inject":
      return { wire: withHeaders(w, [...w.headers, [m.name, headerSafe(m.value)]]), effect: "keeps" };
    case "connection": {
      // Names the first benign x-fz- header (if any) as hop-by-hop.
      const named = w.headers.find(([n]) => n.toLowerCase().startsWith("x-fz-"));
      return { wire: withHeaders(w, [...w.headers, ["Connection", named === undefined ? "keep-alive" : named[0]]]), effect: "keeps" };
    }
    case "case": {
      const i = m.pick % w.headers.length;
      const headers: HeaderList = w.headers.map(([n, v], k) => [k === i ? recase(n, m.bits) : n, v]);
      return { wire: withHeaders(w, headers), effect: "keeps" };
    }
    case "expect":
      // Sent once (two are joined into "100-continue, 100-continue", which is refused).
      return { wire: findHeader(w.headers, "expect") >= 0 ? w : withHeaders(w, [...w.headers, ["Expect", "100-continue"]]), effect: "keeps" };
    case "duplicate": {
      const name = target(m.pick);
      if (name === undefined) return { wire: w, effect: "keeps" };
      const i = findHeader(w.headers, name);
      const entry = w.headers[i];
      if (entry === undefined) return { wire: w, effect: "keeps" };
      const copy: [string, string] = [entry[0], m.junk === null ? entry[1] : headerSafe(m.junk)];
      const headers: HeaderList = [...w.headers];
      headers.splice(m.before ? i : i + 1, 0, copy);
      // node:http keeps the first Authorization; other names are joined into one value.
      const effect: Effect = SINGLE_VALUE.has(name) ? (m.before && copy[1] !== entry[1] ? "breaks" : "keeps") : "either";
      return { wire: withHeaders(w, headers), effect };
    }
    case "signature":
      return significant(alterSignature(scheme, w, m.at), true);
    case "truncate":
    case "replace":
    case "insert":
    case "remove": {
      const name = target(m.pick);
      const i = name === undefined ? -1 : findHeader(w.headers, name);
      const entry = w.headers[i];
      if (entry === undefined) return { wire: w, effect: "keeps" };
      const headers: HeaderList = w.headers.map(([n, v]) => [n, v]);
      if (m.kind === "remove") {
        headers.splice(i, 1);
        return significant(withHeaders(w, headers), true);
      }
      const v = entry[1];
      const next =
        m.kind === "truncate" ? v.slice(0, Math.min(m.keep, v.length - 1)) : m.kind === "replace" ? headerSafe(m.value) : headerSafe(v.slice(0, m.at % (v.length + 1)) + m.text + v.slice(m.at % (v.length + 1)));
      headers[i] = [entry[0], next];
      // node:http trims a value's surrounding whitespace: compare what the gateway will see.
      const same = next.trim() === v.trim();
      return { wire: withHeaders(w, headers), effect: same ? "keeps" : m.kind === "insert" ? "either" : "breaks" };
    }
    case "body": {
      const b = w.body;
      let next: string;
      if (m.op === "flip") {
        if (b.length === 0) next = m.text === "" ? "x" : m.text;
        else {
          const i = m.at % b.length;
          const c = b[i] ?? "";
          next = b.slice(0, i) + (c === "0" ? "1" : "0") + b.slice(i + 1);
        }
      } else if (m.op === "append") next = b + (m.text === "" ? " " : m.text);
      else if (m.op === "truncate") next = b.slice(0, b.length === 0 ? 0 : m.at % b.length);
      else if (m.op === "huge") next = b + " ".repeat(64 * 1024);
      else next = b.startsWith("{") ? `{"__proto__":{"admin":true},"constructor":{"prototype":{"x":1}},${b.slice(1)}` : `__proto__=1&${b}`;
      return significant({ ...w, body: next }, def.covers.body);
    }
    case "query": {
      const { path, query } = splitUrl(w.url);
      const parts = query === null || query === "" ? [] : query.split("&");
      const next = editQuery(query, parts, m);
      const after = { ...w, url: joinUrl(path, next === "" && query === null ? null : next) };
      // Binance reads parameter names percent-decoded: `%73ignature` is the signature parameter,
      // left out of the signed text either way.
      const breaks = m.op === "reorder" || (m.op === "encode" && !def.reorderBreaks) ? def.covers.query && def.reorderBreaks : def.covers.query;
      return significant(after, breaks);
    }
    case "path": {
      const { path, query } = splitUrl(w.url);
      const next = editPath(path, m);
      return significant({ ...w, url: joinUrl(next, query) }, def.covers.path);
    }
    case "method": {
      const to = m.to === w.method ? (METHOD_ORDER[(METHOD_ORDER.indexOf(m.to) + 1) % METHOD_ORDER.length] ?? "PUT") : m.to;
      return significant({ ...w, method: to }, def.covers.method);
    }
    case "host": {
      const i = findHeader(w.headers, "host");
      const headers: HeaderList = w.headers.map(([n, v]) => [n, v]);
      const value = headerSafe(m.value);
      if (i >= 0) headers[i] = ["Host", value];
      const same = value.toLowerCase().replace(/:80$/, "") === HOST;
      return { wire: withHeaders(w, headers), effect: same ? "keeps" : def.covers.authority ? "breaks" : "either" };
    }
    case "stale": {
      // Applied by signing at another time (see `buildCase`); Kraken has no time.
      if (def.windowMs === null) return { wire: w, effect: "keeps" };
      const outside = m.ms <= -(def.windowMs + 1000) || m.ms > 2000;
      return { wire: w, effect: outside ? "breaks" : "either" };
    }
    case "foreign":
      return { wire: withHeaders(w, [...w.headers, [m.name, headerSafe(m.value)]]), effect: "either" };
    case "label": {
      const headers: HeaderList = w.headers.map(([n, v]) => {
        const l = n.toLowerCase();
        if (l === "signature-input") return [n, `${v}, ${headerSafe(m.input)}`];
        if (l === "signature") return [n, `${v}, ${headerSafe(m.signature)}`];
        return [n, v];
      });
      return significant(withHeaders(w, headers), false);
    }
  }
}

export interface BuiltCase {
  readonly signed: Signed;
  /** The request as sent. */
  readonly wire: WireRequest;
  /** forwarded: must reach the upstream as signed; refused: must not reach it; either: if it does, as signed. */
  readonly expect: "forwarded" | "refused" | "either";
  /** Values of injected identity / address / override headers: none may reach the upstream. */
  readonly injected: readonly string[];
}

/** Signs a case's base request and applies its mutations. */
export function buildCase(c: FuzzCase, keys: FuzzKeys, now: number, nonce: bigint): BuiltCase {
  const stale = [c.significant, ...c.chaos].find((m) => m?.kind === "stale");
  const offset = stale?.kind === "stale" ? stale.ms : 0;
  const signed = signBase(c.scheme, c.base, keys, now + offset, nonce);
  let wire = signed.wire;
  let effect: Effect = "keeps";
  if (c.significant !== null) {
    const applied = applyMutation(c.scheme, wire, c.significant);
    wire = applied.wire;
    effect = applied.effect;
  }
  for (const m of c.chaos) {
    const applied = applyMutation(c.scheme, wire, m);
    wire = applied.wire;
    // One mutation can undo another (a method changed and changed back, a junk duplicate
    // removed, a host changed and then changed to one that reads the same as the signed one).
    if (applied.effect !== "keeps" || effect !== "keeps") effect = "either";
  }
  for (const m of c.neutral) wire = applyMutation(c.scheme, wire, m).wire;
  // The public route is forwarded whatever credentials it carries, or refused for what they are.
  if (c.scheme === "public" && effect === "breaks") effect = "either";
  const injected = [...c.neutral, ...(c.significant === null ? [] : [c.significant]), ...c.chaos].flatMap((m) => (m.kind === "inject" ? [headerSafe(m.value)] : []));
  return { signed, wire, expect: effect === "keeps" ? "forwarded" : effect === "breaks" ? "refused" : "either", injected };
}

/**
 * What a scheme's signature covers, read off a request as the upstream received it (or as it was
 * signed): a forwarded request must show the same text as the signed one.
 */
export function signedView(scheme: SchemeName, method: string, url: string, body: string, authority: string | undefined): string {
  const c = SCHEME_DEFS[scheme].covers;
  const { path, query } = splitUrl(url);
  return JSON.stringify([c.method ? method : "", c.path ? path : "", c.query ? (query ?? "") : "", c.body ? body : "", c.authority ? (authority ?? "") : ""]);
}
