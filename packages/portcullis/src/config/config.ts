import { OperatorError } from "../errors/catalogue.js";
import { DEFAULT_OUTAGE_GRACE_MS } from "../core/core.js";
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { type AuditConfig, parseAuditConfig } from "../audit/config.js";
import { RouteTable, RouteTableError, type RouteSpec } from "../authz/routes.js";
import { type CustodyConfig, parseCustodyConfig } from "../custody/config.js";
import { DEFAULT_SEALING, type SealingSettings } from "../custody/hpke.js";
import { checkOperationRoutes } from "../dialects/operations.js";
import type { Environment } from "../contract/ids.js";
import { PROTOTYPE_NAMES, parseJson } from "../contract/json.js";
import { stripJsonComments } from "./jsonc.js";
import { type StoreSettings, StoreSettingsError, parseStoreSettings } from "../storage/location.js";
import { DEFAULT_IDLE_EXPIRY_MS, DEFAULT_WINDOW_MS, MAX_IDLE_EXPIRY_MS, MIN_IDLE_EXPIRY_MS } from "../contract/keys.js";
import { CidrError, CidrSet, DEFAULT_IPV6_PREFIX, IPV6_PREFIX_MAX, IPV6_PREFIX_MIN } from "../net/ip.js";
import { parseDuration } from "../keys/input.js";
import { maxLimit } from "../limits/gcra.js";
import { DEFAULT_SHIELD_POLICY, type ShieldPolicy } from "../limits/types.js";
import type { LimitKind, LimitScope, LimitSpec } from "../contract/limits.js";
import { parseDecimal } from "../operations/decimal.js";
import type { PriceTable } from "../operations/prices.js";
import type { PriceRefreshSettings } from "../operations/live-prices.js";
import { type BehaviourSettings, parseBehaviourSettings } from "../anomaly/responses.js";
import { WebSocketConfigError, type WebSocketSettings, compileWebSocketSettings } from "../gateway/websocket/config.js";
import { type TlsSettings, parseTlsSettings } from "../gateway/tls.js";
import { relyingParty } from "../sessions/passkeys.js";

/**
 * The configuration file (JSON). Every field is validated at startup; a mistake stops the process
 * with a message naming the field (and, for routes, the route). Relative paths are resolved
 * against the config file's directory.
 */
export interface PortcullisConfig {
  /** Where the SQLite database, the keyring and the identity secret live. */
  readonly dataDir: string;
  /**
   * Keys of the other environment are refused: a test key never works in production. Null means
   * "the data directory's environment"; when set, it must match the data directory's.
   */
  readonly environment: Environment | null;
  readonly gateway: {
    /**
     * "proxy" (default): the gateway forwards what it allows to `upstream`. "authorizer": it
     * answers the venue's own proxy (nginx, Envoy, HAProxy, Traefik) whether to forward
     * (docs/deploy/authorizer.md).
     */
    readonly mode: "proxy" | "authorizer";
    readonly host: string;
    readonly port: number;
    /**
     * Origin of the protected API, e.g. http://127.0.0.1:9000. Required in proxy mode; optional in
     * authorizer mode, where it is only used to release held operations (null: none are held).
     */
    readonly upstream: string | null;
    readonly bodyLimit: number;
    readonly upstreamTimeoutMs: number;
    /** Peers whose X-Forwarded-For is believed (CIDR blocks). */
    readonly trustedProxies: readonly string[];
    /** Host values the gateway answers for (empty: any). */
    readonly authorities: readonly string[];
    /** The scheme clients use to reach the gateway (a TLS-terminating proxy in front: https). */
    readonly scheme: "http" | "https";
    readonly serverTiming: boolean;
    /** The gateway-upstream secret used to sign identity headers (file, mode 0600). */
    readonly identitySecretFile: string;
    /** Gateway processes sharing the ports (runtime/workers.ts): 1 is one process, "auto" one per core. */
    readonly workers: number | "auto";
    /** HTTPS on the gateway's listener, with optional mutual TLS (docs/tls.md); null: plain HTTP. */
    readonly tls: TlsSettings | null;
    /**
     * The header a trusted proxy terminating TLS passes the client certificate in (nginx:
     * `$ssl_client_escaped_cert`), lower case; believed from `trustedProxies` only. Null: none.
     */
    readonly clientCertHeader: string | null;
    /**
     * On SIGTERM, how long the gateway keeps serving while its probes answer 503 DRAINING, before
     * it stops accepting (a load balancer's time to notice), ms. Default 0.
     */
    readonly drainDelayMs: number;
    /** Then how long in-flight requests have to finish before their connections are closed, ms. Default 10 s. */
    readonly drainTimeoutMs: number;
    /** Each readiness check's timeout (/portcullis/v1/readyz), ms. Default 1 s. */
    readonly readinessTimeoutMs: number;
  };
  readonly admin: {
    readonly enabled: boolean;
    readonly host: string;
    readonly port: number;
    /** HTTPS on the admin listener, with optional mutual TLS (docs/tls.md); null: plain HTTP. */
    readonly tls: TlsSettings | null;
    /**
     * The origins the console is served from, as a browser writes them (`https://console.example`):
     * passkeys are bound to their host (docs/passkeys.md). Null: derived from the listener (its
     * scheme, host — `localhost` for a loopback or unspecified address — and port).
     */
    readonly origin: readonly string[] | null;
    /** Prometheus `GET /metrics` on the admin listener (docs/operations-endpoints.md). */
    readonly metrics: {
      readonly enabled: boolean;
      /** Served without a credential (an admin listener on a private network). Default false. */
      readonly public: boolean;
      /** A file (mode 0600) holding the bearer token scrapes must send, or null. */
      readonly tokenFile: string | null;
      /** One request in this many has its stages timed for the stage histogram (0: none). Default 64. */
      readonly sampleEvery: number;
    };
    /**
     * Serve the operator console (`@portcullis/console`'s built files) under `/console/` on the
     * admin listener (docs/console-backend.md). Default true; off: its paths answer CONSOLE_NOT_AVAILABLE.
     */
    readonly console: boolean;
  };
  readonly signatures: {
    readonly windowMs: number;
    readonly futureSkewMs: number;
  };
  readonly routes: readonly RouteSpec[];
  readonly limits: {
    readonly specs: readonly LimitSpec[];
    readonly shield: ShieldPolicy;
    readonly maxConcurrentPerKey: number;
    /** The prefix length IPv6 clients are grouped by in per-address limits, bans and blocks. */
    readonly ipv6Prefix: number;
  };
  /** Session logon (POST /portcullis/v1/session) and session-signed requests. */
  readonly sessions: { readonly enabled: boolean };
  /**
   * Wallet-owned accounts and agent keys (docs/wallets.md): the chain id of the EIP-712 domain,
   * the venue's domain (host) and API origin (uri) every wallet message must name. Null (no
   * `wallets` section): the wallet endpoints are not served.
   */
  readonly wallets: WalletSettings | null;
  /** Idle expiry of unrestricted trading keys (trade or withdraw, no IP allowlist), or null: off. */
  readonly keys: { readonly idleExpiryMs: number | null };
  /**
   * The durable store (storage/location.ts): SQLite in the data directory (default) or PostgreSQL;
   * how often SQLite is checked for changes other processes made (ms; PostgreSQL notifies); and how
   * long keys cached before the store became unreachable keep verifying (ms; 0, "off": refuse at once).
   */
  readonly store: StoreSettings & { readonly pollIntervalMs: number; readonly outageGraceMs: number };
  /** Where hot state lives: this process, or a Redis shared by every gateway. */
  readonly hot: { readonly backend: "memory" } | { readonly backend: "redis"; readonly url: string; readonly prefix: string };
  readonly log: { readonly level: string };
  /** Where the key-encryption key and the gateway's own signing keys live (custody/config.ts). */
  readonly custody: CustodyConfig;
  /** The audit log: which request decisions are recorded, batching, checkpoints, spill directory. */
  readonly audit: AuditConfig;
  /** WebSocket routes and their message tables (docs/websocket.md); none by default. */
  readonly websocket: WebSocketSettings;
  /**
   * Reference prices for the guardrails and the policy (docs/guardrails.md): a fixed table, and
   * optionally a refresher polling a Binance-shaped ticker. Empty by default.
   */
  readonly prices: { readonly table: PriceTable; readonly refresh: PriceRefreshSettings | null };
  /**
   * The maxOpenNotional guardrail's ledger (docs/guardrails.md, "Open notional"): how long a
   * reservation lives (default 24 h) and how many a key may hold at once (default 1000).
   */
  readonly guardrails: { readonly reservationTtlMs: number; readonly maxOpenOrders: number };
  /** The policy engine and the withdrawal address books (docs/policy.md). */
  readonly policy: {
    /** How long a new address of an address book cools down before the policy knows it. Default 24 h. */
    readonly addressCooldownMs: number;
  };
  /** The behaviour stage's responses to anomaly scores (docs/behaviour.md, "Responses"). */
  readonly behaviour: BehaviourSettings;
  /**
   * Sealed orders (docs/sealed-orders.md): the gateway's HPKE keys, rotated every `rotate`
   * (default 24 h), the previous one accepted for `grace` (default 10 min). On by default.
   */
  readonly sealing: SealingSettings;
}

/**
 * How long keys cached before the durable store became unreachable keep verifying (docs/failures.md):
 * long enough to ride out a PostgreSQL failover, short enough that a key revoked meanwhile (through
 * another store's admin, or a restore) is not honoured for long. The core's default, named here too.
 */
export { DEFAULT_OUTAGE_GRACE_MS };

/**
 * The limits a gateway applies when its config says nothing (and the ones `portcullis init` and
 * the demo write out): Binance-like budgets that protect a matching engine without getting in a
 * well-behaved bot's way. The account's weight budget is shared by all of its keys: one key may
 * use its whole budget, but opening more keys does not multiply it.
 */
export const DEFAULT_LIMITS = {
  ip: [{ name: "ip-weight-1m", limit: 6000, window: "1m" }],
  key: [{ name: "key-weight-1m", limit: 1200, window: "1m" }],
  account: [{ name: "account-weight-1m", limit: 2400, window: "1m" }],
  orders: [
    { name: "orders-10s", limit: 100, window: "10s" },
    { name: "orders-1d", limit: 200_000, window: "1d" },
  ],
  cancels: [{ name: "cancels-10s", limit: 200, window: "10s" }],
} as const;

/** The most gateway processes `gateway.workers` and `--workers` may ask for. */
export const MAX_WORKERS = 256;

/**
 * A number of gateway processes: an integer from 1 to MAX_WORKERS, or "auto" (one per core);
 * absent, 1. `where` names the setting or flag in the error.
 */
export function parseWorkers(v: unknown, where: string): number | "auto" {
  if (v === undefined) return 1;
  if (v === "auto") return v;
  if (typeof v === "number" && Number.isInteger(v) && v >= 1 && v <= MAX_WORKERS) return v;
  throw new ConfigError(`${where} must be an integer from 1 to ${MAX_WORKERS}, or "auto" (one per core)`);
}

/** The configuration is not valid (CONFIG_INVALID) or its file cannot be read (CONFIG_UNREADABLE). */
export class ConfigError extends OperatorError<"CONFIG_INVALID" | "CONFIG_UNREADABLE"> {
  override name = "ConfigError";

  constructor(message: string, code: "CONFIG_INVALID" | "CONFIG_UNREADABLE" = "CONFIG_INVALID", options?: ErrorOptions) {
    super(code, message, options);
  }
}

type Json = Record<string, unknown>;

function obj(v: unknown, where: string): Json {
  if (v === undefined) return {};
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw new ConfigError(`${where} must be an object`);
  return v as Json;
}

function only(o: Json, where: string, allowed: readonly string[]): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw new ConfigError(`${where}.${k} is not a known setting (known: ${allowed.join(", ")})`);
  }
}

function str(o: Json, key: string, where: string, fallback: string): string {
  const v = o[key];
  if (v === undefined) return fallback;
  if (typeof v !== "string" || v === "") throw new ConfigError(`${where}.${key} must be a non-empty string`);
  return v;
}

function int(o: Json, key: string, where: string, fallback: number, min: number, max: number): number {
  const v = o[key];
  if (v === undefined) return fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw new ConfigError(`${where}.${key} must be an integer from ${min} to ${max}`);
  }
  return v;
}

function bool(o: Json, key: string, where: string, fallback: boolean): boolean {
  const v = o[key];
  if (v === undefined) return fallback;
  if (typeof v !== "boolean") throw new ConfigError(`${where}.${key} must be true or false`);
  return v;
}

function strings(o: Json, key: string, where: string): string[] {
  const v = o[key];
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) throw new ConfigError(`${where}.${key} must be a list of strings`);
  return v;
}

/** Validates a parsed config object. `baseDir` resolves relative paths. */
export function parseConfig(raw: unknown, baseDir: string): PortcullisConfig {
  const root = obj(raw, "config");
  only(root, "config", ["$schema", "dataDir", "environment", "gateway", "admin", "signatures", "routes", "limits", "sessions", "store", "hot", "log", "custody", "audit", "websocket", "keys", "prices", "guardrails", "policy", "behaviour", "sealing", "wallets"]);
  const dataDir = resolve(baseDir, str(root, "dataDir", "config", "./data"));
  const environment = root.environment ?? null;
  if (environment !== null && environment !== "live" && environment !== "test") {
    throw new ConfigError('config.environment must be "live" or "test"');
  }

  const g = obj(root.gateway, "gateway");
  only(g, "gateway", ["mode", "host", "port", "upstream", "bodyLimit", "upstreamTimeoutMs", "trustedProxies", "authorities", "scheme", "serverTiming", "identitySecretFile", "workers", "tls", "clientCertHeader", "drainDelay", "drainTimeout", "readinessTimeout"]);
  const mode = str(g, "mode", "gateway", "proxy");
  if (mode !== "proxy" && mode !== "authorizer") throw new ConfigError('gateway.mode must be "proxy" or "authorizer"');
  const upstream = str(g, "upstream", "gateway", "");
  if (upstream === "" && mode === "proxy") throw new ConfigError("gateway.upstream is required (the origin of the API to protect, e.g. http://127.0.0.1:9000)");
  const trustedProxies = strings(g, "trustedProxies", "gateway");
  try {
    new CidrSet(trustedProxies);
  } catch (err) {
    throw new ConfigError(`gateway.trustedProxies: ${err instanceof CidrError ? err.message : String(err)}`);
  }
  if (mode === "authorizer" && trustedProxies.length === 0) {
    throw new ConfigError("gateway.trustedProxies is required in authorizer mode: the proxies (nginx, Envoy…) allowed to ask the authorizer");
  }
  const gatewayTls = tlsSettings(g.tls, "gateway.tls", baseDir);
  const clientCertHeader = g.clientCertHeader === undefined ? null : str(g, "clientCertHeader", "gateway", "").toLowerCase();
  if (clientCertHeader !== null) {
    if (!/^[a-z0-9-]{1,64}$/.test(clientCertHeader)) throw new ConfigError("gateway.clientCertHeader must be a header name (letters, digits and -), e.g. X-Client-Cert");
    if (trustedProxies.length === 0) throw new ConfigError("gateway.clientCertHeader needs gateway.trustedProxies: the header is believed from those proxies only");
  }
  // With TLS the gateway's clients use https (signatures cover the scheme's default port).
  const scheme = str(g, "scheme", "gateway", gatewayTls === null ? "http" : "https");
  if (scheme !== "http" && scheme !== "https") throw new ConfigError('gateway.scheme must be "http" or "https"');
  if (gatewayTls !== null && scheme !== "https") throw new ConfigError('gateway.scheme must be "https" (or absent) when gateway.tls is set');

  const a = obj(root.admin, "admin");
  only(a, "admin", ["enabled", "host", "port", "tls", "metrics", "console", "origin"]);
  const adminOrigin = a.origin === undefined ? null : typeof a.origin === "string" ? [a.origin] : strings(a, "origin", "admin");
  if (adminOrigin !== null) {
    try {
      relyingParty(adminOrigin);
    } catch (err) {
      throw new ConfigError(`admin.origin must be an origin or a list of origins on one host (${err instanceof Error ? err.message : String(err)})`);
    }
  }
  const adminTls = tlsSettings(a.tls, "admin.tls", baseDir);
  const am = obj(a.metrics, "admin.metrics");
  only(am, "admin.metrics", ["enabled", "public", "tokenFile", "sampleEvery"]);
  const metricsTokenFile = str(am, "tokenFile", "admin.metrics", "");
  const drainDelayMs = duration(g, "drainDelay", "gateway", 0);
  if (drainDelayMs > 300_000) throw new ConfigError("gateway.drainDelay must be at most 5m");
  const drainTimeoutMs = duration(g, "drainTimeout", "gateway", 10_000);
  if (drainTimeoutMs > 600_000) throw new ConfigError("gateway.drainTimeout must be at most 10m");
  const readinessTimeoutMs = duration(g, "readinessTimeout", "gateway", 1000);
  if (readinessTimeoutMs < 10 || readinessTimeoutMs > 60_000) throw new ConfigError("gateway.readinessTimeout must be from 10ms to 1m");
  const s = obj(root.signatures, "signatures");
  only(s, "signatures", ["windowMs", "futureSkewMs"]);
  const se = obj(root.sessions, "sessions");
  only(se, "sessions", ["enabled"]);
  const sl = obj(root.sealing, "sealing");
  only(sl, "sealing", ["enabled", "rotate", "grace"]);
  const sealing: SealingSettings = {
    enabled: bool(sl, "enabled", "sealing", DEFAULT_SEALING.enabled),
    rotateMs: duration(sl, "rotate", "sealing", DEFAULT_SEALING.rotateMs),
    graceMs: duration(sl, "grace", "sealing", DEFAULT_SEALING.graceMs),
  };
  if (sealing.rotateMs < 60_000 || sealing.rotateMs > 90 * 86_400_000) throw new ConfigError("sealing.rotate must be from 1m to 90d");
  if (sealing.graceMs > sealing.rotateMs) throw new ConfigError("sealing.grace must not be longer than sealing.rotate");
  const st = obj(root.store, "store");
  let storeSettings: StoreSettings;
  try {
    storeSettings = parseStoreSettings(st, "store", ["pollInterval", "outageGrace"]);
  } catch (err) {
    if (err instanceof StoreSettingsError) throw new ConfigError(err.message);
    throw err;
  }
  const pollIntervalMs = duration(st, "pollInterval", "store", 200);
  if (pollIntervalMs < 10 || pollIntervalMs > 3_600_000) throw new ConfigError("store.pollInterval must be from 10ms to 1h");
  // "off": no grace — a request whose key needs the store is refused as soon as it cannot be reached.
  const outageGraceMs = st.outageGrace === "off" ? 0 : duration(st, "outageGrace", "store", DEFAULT_OUTAGE_GRACE_MS);
  if (outageGraceMs > 3_600_000) throw new ConfigError("store.outageGrace must be at most 1h");
  const k = obj(root.keys, "keys");
  only(k, "keys", ["idleExpiry"]);
  let idleExpiryMs: number | null;
  if (k.idleExpiry === "off") idleExpiryMs = null;
  else {
    idleExpiryMs = duration(k, "idleExpiry", "keys", DEFAULT_IDLE_EXPIRY_MS);
    if (idleExpiryMs < MIN_IDLE_EXPIRY_MS || idleExpiryMs > MAX_IDLE_EXPIRY_MS) throw new ConfigError('keys.idleExpiry must be from 1d to 366d, or "off"');
  }
  const l = obj(root.log, "log");
  only(l, "log", ["level"]);
  const level = str(l, "level", "log", "info");
  if (!["fatal", "error", "warn", "info", "debug", "trace", "silent"].includes(level)) {
    throw new ConfigError("log.level must be one of fatal, error, warn, info, debug, trace, silent");
  }

  const routes = root.routes;
  if (!Array.isArray(routes) || routes.length === 0) {
    throw new ConfigError("routes must be a non-empty list: every route the gateway exposes maps to a permission");
  }
  try {
    checkOperationRoutes(new RouteTable(routes as RouteSpec[]).routes);
  } catch (err) {
    if (err instanceof RouteTableError) throw new ConfigError(`routes: ${err.message}`);
    throw err;
  }

  const limits = parseLimits(root.limits);
  checkWeights(routes as RouteSpec[], limits.specs);
  let websocket: WebSocketSettings;
  try {
    websocket = compileWebSocketSettings(root.websocket, limits.specs);
  } catch (err) {
    if (err instanceof WebSocketConfigError) throw new ConfigError(err.message);
    throw err;
  }
  if (mode === "authorizer" && websocket.routes.length > 0) throw new ConfigError("websocket routes need the proxy mode: an authorizer does not carry WebSocket connections");
  const h = obj(root.hot, "hot");
  only(h, "hot", ["backend", "url", "prefix"]);
  const backend = str(h, "backend", "hot", "memory");
  let hot: PortcullisConfig["hot"];
  if (backend === "memory") hot = { backend };
  else if (backend === "redis") {
    const url = str(h, "url", "hot", "redis://127.0.0.1:6379");
    if (!/^rediss?:\/\//.test(url)) throw new ConfigError("hot.url must be a redis:// or rediss:// URL");
    const prefix = str(h, "prefix", "hot", "pc:");
    if (!/^[A-Za-z0-9:_.-]{1,32}$/.test(prefix)) throw new ConfigError("hot.prefix must be 1-32 characters of letters, digits and :_.-");
    hot = { backend, url, prefix };
  } else throw new ConfigError('hot.backend must be "memory" or "redis"');
  const custody = parseCustodyConfig(root.custody, baseDir);
  if (!custody.ok) throw new ConfigError(custody.message);
  const audit = parseAuditConfig(root.audit, dataDir);
  if (!audit.ok) throw new ConfigError(audit.message);

  const po = obj(root.policy, "policy");
  only(po, "policy", ["addressCooldown"]);
  const addressCooldownMs = duration(po, "addressCooldown", "policy", 24 * 3_600_000);
  if (addressCooldownMs > 30 * 86_400_000) throw new ConfigError("policy.addressCooldown must be at most 30d");

  return {
    dataDir,
    environment,
    gateway: {
      host: str(g, "host", "gateway", "0.0.0.0"),
      port: int(g, "port", "gateway", 8080, 0, 65535),
      mode,
      upstream: upstream === "" ? null : upstream,
      bodyLimit: int(g, "bodyLimit", "gateway", 1024 * 1024, 0, 64 * 1024 * 1024),
      upstreamTimeoutMs: int(g, "upstreamTimeoutMs", "gateway", 10_000, 100, 300_000),
      trustedProxies,
      authorities: strings(g, "authorities", "gateway").map((x) => x.toLowerCase()),
      scheme,
      serverTiming: bool(g, "serverTiming", "gateway", false),
      identitySecretFile: resolve(dataDir, str(g, "identitySecretFile", "gateway", "identity.secret")),
      workers: parseWorkers(g.workers, "gateway.workers"),
      tls: gatewayTls,
      clientCertHeader,
      drainDelayMs,
      drainTimeoutMs,
      readinessTimeoutMs,
    },
    admin: {
      enabled: bool(a, "enabled", "admin", true),
      host: str(a, "host", "admin", "127.0.0.1"),
      port: int(a, "port", "admin", 8081, 0, 65535),
      tls: adminTls,
      origin: adminOrigin,
      metrics: {
        enabled: bool(am, "enabled", "admin.metrics", true),
        public: bool(am, "public", "admin.metrics", false),
        tokenFile: metricsTokenFile === "" ? null : resolve(dataDir, metricsTokenFile),
        sampleEvery: int(am, "sampleEvery", "admin.metrics", 64, 0, 1_000_000),
      },
      console: bool(a, "console", "admin", true),
    },
    signatures: {
      windowMs: int(s, "windowMs", "signatures", DEFAULT_WINDOW_MS, 1000, 60_000),
      futureSkewMs: int(s, "futureSkewMs", "signatures", 1000, 0, 60_000),
    },
    routes: routes as RouteSpec[],
    limits,
    sessions: { enabled: bool(se, "enabled", "sessions", true) },
    wallets: parseWallets(root.wallets),
    keys: { idleExpiryMs },
    store: { ...storeSettings, pollIntervalMs, outageGraceMs },
    hot,
    log: { level },
    custody: custody.value,
    audit: audit.value,
    websocket,
    prices: parsePrices(root.prices),
    guardrails: parseGuardrails(root.guardrails),
    policy: { addressCooldownMs },
    behaviour: parseBehaviour(root.behaviour),
    sealing,
  };
}

/** The wallets section (docs/wallets.md), or null when absent. */
export interface WalletSettings {
  /** The EIP-712 domain's chainId (and SIWE's Chain ID): a positive integer. */
  readonly chainId: number;
  /** The venue's host as wallet messages name it (SIWE's domain), e.g. "api.example.com". */
  readonly domain: string;
  /** The API origin wallet messages name (SIWE's URI), e.g. "https://api.example.com". */
  readonly uri: string;
}

function parseWallets(raw: unknown): WalletSettings | null {
  if (raw === undefined) return null;
  const w = obj(raw, "wallets");
  only(w, "wallets", ["chainId", "domain", "uri"]);
  if (w.chainId === undefined || w.domain === undefined || w.uri === undefined) throw new ConfigError("wallets needs chainId, domain and uri (docs/wallets.md)");
  const chainId = int(w, "chainId", "wallets", 1, 1, Number.MAX_SAFE_INTEGER);
  const domain = str(w, "domain", "wallets", "");
  // An RFC 3986 authority: a host name or address, optionally a port (what SIWE's domain is).
  if (!/^[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?$/.test(domain)) throw new ConfigError('wallets.domain must be the venue\'s host, e.g. "api.example.com" (optionally with a port)');
  const uri = str(w, "uri", "wallets", "");
  let parsed: URL | null;
  try {
    parsed = new URL(uri);
  } catch {
    parsed = null;
  }
  if (parsed === null || (parsed.protocol !== "https:" && parsed.protocol !== "http:") || parsed.origin !== uri) {
    throw new ConfigError('wallets.uri must be the API origin, e.g. "https://api.example.com" (scheme, host and port only)');
  }
  return { chainId, domain, uri };
}

/** A listener's `tls` object (gateway/tls.ts), or null when absent. */
function tlsSettings(raw: unknown, where: string, baseDir: string): TlsSettings | null {
  const parsed = parseTlsSettings(raw, where, baseDir, (text) => {
    const ms = parseDuration(text);
    return ms.ok ? ms.value : null;
  });
  if (!parsed.ok) throw new ConfigError(parsed.message);
  return parsed.value;
}

/** The `behaviour` section (anomaly/responses.ts). */
function parseBehaviour(raw: unknown): BehaviourSettings {
  const behaviour = parseBehaviourSettings(raw);
  if (!behaviour.ok) throw new ConfigError(behaviour.message);
  return behaviour.value;
}

const PRICE_NAME_RE = /^[A-Z0-9][A-Z0-9._:/-]{0,39}$/;

/** A `{ NAME: "decimal" }` table of `prices`, names upper case, values plain decimals above zero. */
function priceTable(raw: unknown, where: string): Record<string, string> {
  const t = obj(raw, where);
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [name, value] of Object.entries(t)) {
    const upper = name.toUpperCase();
    const parsed = typeof value === "string" ? parseDecimal(value) : null;
    if (!PRICE_NAME_RE.test(upper) || PROTOTYPE_NAMES.has(name)) throw new ConfigError(`${where}: ${JSON.stringify(name)} is not a symbol or asset name`);
    if (parsed === null || parsed.coefficient === 0n) throw new ConfigError(`${where}.${name} must be a decimal string above zero, such as "60000.5"`);
    out[upper] = value as string;
  }
  return out;
}

/** The `guardrails` section (docs/guardrails.md, "Open notional"). */
function parseGuardrails(raw: unknown): PortcullisConfig["guardrails"] {
  const g = obj(raw, "guardrails");
  only(g, "guardrails", ["reservationTtl", "maxOpenOrders"]);
  const reservationTtlMs = duration(g, "reservationTtl", "guardrails", 86_400_000);
  if (reservationTtlMs < 60_000 || reservationTtlMs > 30 * 86_400_000) throw new ConfigError("guardrails.reservationTtl must be from 1m to 30d");
  return { reservationTtlMs, maxOpenOrders: int(g, "maxOpenOrders", "guardrails", 1000, 1, 100_000) };
}

/** The `prices` section (docs/guardrails.md). */
function parsePrices(raw: unknown): PortcullisConfig["prices"] {
  const p = obj(raw, "prices");
  only(p, "prices", ["symbols", "assets", "refresh"]);
  const table: PriceTable = { symbols: priceTable(p.symbols, "prices.symbols"), assets: priceTable(p.assets, "prices.assets") };
  if (p.refresh === undefined) return { table, refresh: null };
  const r = obj(p.refresh, "prices.refresh");
  only(r, "prices.refresh", ["url", "interval", "maxAge", "referenceAsset"]);
  const url = str(r, "url", "prices.refresh", "");
  let parsedUrl: URL | null;
  try {
    parsedUrl = new URL(url);
  } catch {
    parsedUrl = null;
  }
  if (parsedUrl === null || (parsedUrl.protocol !== "http:" && parsedUrl.protocol !== "https:")) {
    throw new ConfigError("prices.refresh.url must be an http(s) URL of a Binance-shaped ticker, e.g. http://127.0.0.1:9000/api/v3/ticker/price");
  }
  const intervalMs = duration(r, "interval", "prices.refresh", 10_000);
  if (intervalMs < 1000 || intervalMs > 3_600_000) throw new ConfigError("prices.refresh.interval must be from 1s to 1h");
  const maxAgeMs = duration(r, "maxAge", "prices.refresh", Math.max(60_000, 3 * intervalMs));
  if (maxAgeMs < intervalMs || maxAgeMs > 86_400_000) throw new ConfigError("prices.refresh.maxAge must be at least the interval and at most 1d");
  const referenceAsset = str(r, "referenceAsset", "prices.refresh", "USDT").toUpperCase();
  if (!/^[A-Z0-9]{1,20}$/.test(referenceAsset)) throw new ConfigError("prices.refresh.referenceAsset must be an asset name such as USDT");
  return { table, refresh: { url, intervalMs, maxAgeMs, referenceAsset } };
}

function duration(o: Json, key: string, where: string, fallbackMs: number): number {
  const v = o[key];
  if (v === undefined) return fallbackMs;
  const ms = typeof v === "string" ? parseDuration(v) : null;
  if (ms === null || !ms.ok) throw new ConfigError(`${where}.${key} must be a duration such as "10s", "1m", "1d"`);
  return ms.value;
}

const SCOPES: Readonly<Record<string, { scope: LimitScope; kind: LimitKind }>> = {
  ip: { scope: "ip", kind: "weight" },
  key: { scope: "key", kind: "weight" },
  account: { scope: "account", kind: "weight" },
  orders: { scope: "account", kind: "orders" },
  cancels: { scope: "account", kind: "cancels" },
};

/** A route heavier than a weight limit it is charged against could never be admitted. */
function checkWeights(routes: readonly RouteSpec[], specs: readonly LimitSpec[]): void {
  const weightLimits = specs.filter((spec) => spec.kind === "weight");
  routes.forEach((route, i) => {
    const weight = route.weight ?? 1;
    for (const spec of weightLimits) {
      if (weight <= spec.limit) continue;
      const methods = Array.isArray(route.method) ? route.method.join(",") : String(route.method);
      throw new ConfigError(
        `route #${i + 1} (${methods} ${route.path}) weighs ${weight}, more than limit ${spec.name} allows per window (${spec.limit}): it could never be admitted`,
      );
    }
  });
}

/** The `limits` section; absent, the built-in DEFAULT_LIMITS (and default shields). */
function parseLimits(raw: unknown): PortcullisConfig["limits"] {
  const l = obj(raw ?? DEFAULT_LIMITS, "limits");
  only(l, "limits", [...Object.keys(SCOPES), "maxConcurrentPerKey", "ipv6Prefix", "shield"]);
  const specs: LimitSpec[] = [];
  const names = new Set<string>();
  for (const [group, { scope, kind }] of Object.entries(SCOPES)) {
    const list = l[group];
    if (list === undefined) continue;
    if (!Array.isArray(list)) throw new ConfigError(`limits.${group} must be a list`);
    list.forEach((item: unknown, i) => {
      const where = `limits.${group}[${i}]`;
      const o = obj(item, where);
      only(o, where, ["name", "limit", "window"]);
      const name = str(o, "name", where, "");
      if (!/^[a-z][a-z0-9._-]{0,63}$/.test(name)) throw new ConfigError(`${where}.name must be lower-case letters, digits and ._- (e.g. "key-weight-1m")`);
      if (PROTOTYPE_NAMES.has(name)) throw new ConfigError(`${where}.name ${name} is reserved (a member of Object.prototype)`);
      if (names.has(name)) throw new ConfigError(`${where}: limit name ${name} is used twice`);
      names.add(name);
      const limit = int(o, "limit", where, 0, 1, 1_000_000_000);
      if (typeof o.window !== "string") throw new ConfigError(o.window === undefined ? `${where}.window is required` : `${where}.window must be a duration such as "10s", "1m", "1d"`);
      const windowMs = duration(o, "window", where, 0);
      if (windowMs > 7 * 86_400_000) throw new ConfigError(`${where}.window must be at most 7 days`);
      // GCRA works on limit × window (ms) in exact double arithmetic.
      if (limit > maxLimit(windowMs)) throw new ConfigError(`${where}.limit must be at most ${maxLimit(windowMs)} for a window of ${o.window}`);
      specs.push({ name, scope, kind, limit, windowMs });
    });
  }
  const s = obj(l.shield, "limits.shield");
  only(s, "limits.shield", ["strikes", "strikeWindow", "banBase", "banMax", "authFailuresPerIp", "authFailuresPerKey", "authFailureWindow", "authBlock"]);
  const d = DEFAULT_SHIELD_POLICY;
  const shield: ShieldPolicy = {
    strikes: int(s, "strikes", "limits.shield", d.strikes, 1, 1_000_000),
    strikeWindowMs: duration(s, "strikeWindow", "limits.shield", d.strikeWindowMs),
    banBaseMs: duration(s, "banBase", "limits.shield", d.banBaseMs),
    banMaxMs: duration(s, "banMax", "limits.shield", d.banMaxMs),
    authFailuresPerIp: int(s, "authFailuresPerIp", "limits.shield", d.authFailuresPerIp, 1, 1_000_000),
    authFailuresPerKey: int(s, "authFailuresPerKey", "limits.shield", d.authFailuresPerKey, 1, 1_000_000),
    authFailureWindowMs: duration(s, "authFailureWindow", "limits.shield", d.authFailureWindowMs),
    authBlockMs: duration(s, "authBlock", "limits.shield", d.authBlockMs),
  };
  return {
    specs,
    shield,
    maxConcurrentPerKey: int(l, "maxConcurrentPerKey", "limits", 0, 0, 100_000),
    ipv6Prefix: int(l, "ipv6Prefix", "limits", DEFAULT_IPV6_PREFIX, IPV6_PREFIX_MIN, IPV6_PREFIX_MAX),
  };
}

export function loadConfig(file: string): PortcullisConfig {
  return loadConfigSource(file).config;
}

/** A config file's text, where its relative paths resolve, and its name: what every worker process parses (runtime/workers.ts). */
export interface ConfigSource {
  readonly text: string;
  readonly baseDir: string;
  readonly file: string;
}

/** Reads and validates a config file, keeping its text (`portcullis start --workers N` hands the same text to each worker). */
export function loadConfigSource(file: string): { readonly config: PortcullisConfig; readonly source: ConfigSource } {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError(`cannot read config ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, "CONFIG_UNREADABLE");
  }
  const source = { text, baseDir: dirname(resolve(file)), file };
  return { config: parseConfigText(source.text, source.baseDir, file), source };
}

/**
 * Parses and validates a config file's text. Its objects have no prototype (contract/json.ts):
 * a setting is there only if it was written.
 */
export function parseConfigText(text: string, baseDir: string, file = "file"): PortcullisConfig {
  let raw: unknown;
  try {
    raw = parseJson(stripJsonComments(text));
  } catch (err) {
    throw new ConfigError(`config ${file} is not valid JSON: ${err instanceof Error ? err.message : String(err)}`, "CONFIG_UNREADABLE");
  }
  return parseConfig(raw, baseDir);
}
