import { OperatorError } from "../../errors/catalogue.js";
import { AUTHENTICATED, PUBLIC, isPermission, type RoutePermission } from "../../contract/permissions.js";
import type { Route } from "../../contract/route.js";
import { PROTOTYPE_NAMES } from "../../contract/json.js";
import { RouteTable, RouteTableError, type RouteSpec } from "../../authz/routes.js";
import type { LimitSpec } from "../../contract/limits.js";
import { type OperationKind, isOperationKind } from "../../contract/operations.js";
import { OPERATION_DECODERS } from "../../dialects/operations.js";

/**
 * The WebSocket routes (the `websocket` section of the config file, docs/websocket.md). A route is
 * one path the gateway accepts WebSocket upgrades on and proxies to the same path upstream, with
 * a message table: every method a client may send maps to a permission and a weight, exactly as
 * the HTTP route table maps a method and path. A method that is not mapped is refused, and so is
 * every message on a route that is not listed. Validated once, at startup: a mistake is an error
 * naming the route.
 *
 *   "websocket": {
 *     "maxMessageBytes": 65536,
 *     "routes": [{
 *       "path": "/ws-api/v3", "dialect": "binance", "anonymous": true, "weight": 2,
 *       "methods": {
 *         "time":        { "permission": "public", "weight": 1 },
 *         "order.place": { "permission": "trade", "weight": 1, "tags": ["order"] }
 *       }
 *     }]
 *   }
 */
export interface WebSocketMethodSpec {
  /** The permission the message needs ("public": none; "authenticated": any key or session). */
  readonly permission: string;
  /** Charged against the weight limits, like an HTTP route's weight. Default 1. */
  readonly weight?: number;
  /** "order" (charged to the order-count limits) or "cancel" (to the cancel limits only). */
  readonly tags?: readonly string[];
  /**
   * The operation the message carries (docs/operations.md), decoded from its params in the
   * route's venue shape, so that the guardrails (docs/guardrails.md) apply to it as to its REST
   * twin. On a Binance route `order.place` and `order.cancel` declare their own by default;
   * null declares none.
   */
  readonly operation?: string | null;
}

export interface WebSocketRouteSpec {
  /** The exact path (no patterns) of the upgrade request, proxied to the same path upstream. */
  readonly path: string;
  /**
   * "binance": the Binance WebSocket API: answers and errors in its shape and codes, and
   * authentication by message (`session.logon` with an Ed25519 key, or `apiKey` + `signature`
   * on a single request). Absent: the native format, authentication at the upgrade only.
   */
  readonly dialect?: string;
  /** What a signed upgrade needs. Default "authenticated" (any valid API key or session). */
  readonly permission?: string;
  /** Charged for the upgrade request. Default 1. */
  readonly weight?: number;
  /**
   * An unsigned upgrade is accepted (charged against the address's limits). Such a connection
   * may call public methods, and on a Binance route authenticate by message. Default false:
   * an unsigned upgrade is refused (401) before it completes.
   */
  readonly anonymous?: boolean;
  readonly methods: Readonly<Record<string, WebSocketMethodSpec>>;
}

export interface WebSocketSpec {
  readonly routes?: readonly WebSocketRouteSpec[];
  /** Largest message accepted from a client, in bytes; a larger one closes the connection with 1009. Default 64 KiB. */
  readonly maxMessageBytes?: number;
  /** The gateway pings every client this often and drops one that did not answer the last ping. Default 30 000. */
  readonly pingIntervalMs?: number;
  /** Messages of one connection waiting for their checks; past it, the gateway stops reading the socket. Default 64. */
  readonly maxPendingMessages?: number;
}

/** The methods a Binance route answers itself (Binance's session authentication), weight 2 each as on Binance. */
export const BINANCE_SESSION_METHODS = ["session.logon", "session.status", "session.logout"] as const;
export type BinanceSessionMethod = (typeof BINANCE_SESSION_METHODS)[number];

export function isBinanceSessionMethod(name: string): name is BinanceSessionMethod {
  return (BINANCE_SESSION_METHODS as readonly string[]).includes(name);
}

/** One mapped message method, compiled. */
export interface WebSocketMethod {
  readonly name: string;
  /** Null for a public method. */
  readonly permission: RoutePermission | null;
  /**
   * The method as a route of the limit plan (weight and tags; `method` is "WS"), so a message is
   * charged exactly like an HTTP request of that weight, against the same buckets.
   */
  readonly route: Route;
}

export interface WebSocketRoute {
  /** "WS /path", for logs and errors. */
  readonly id: string;
  readonly path: string;
  readonly dialect: "binance" | null;
  readonly anonymous: boolean;
  readonly methods: ReadonlyMap<string, WebSocketMethod>;
  /** The upgrade as an HTTP route for the pipeline: signed. */
  readonly signedUpgrade: RouteSpec;
  /** ... and unsigned (public), when `anonymous`. */
  readonly anonymousUpgrade: RouteSpec | null;
}

export interface WebSocketSettings {
  readonly routes: readonly WebSocketRoute[];
  readonly maxMessageBytes: number;
  readonly pingIntervalMs: number;
  readonly maxPendingMessages: number;
}

/** The websocket section cannot be compiled (WEBSOCKET_CONFIG_INVALID): the message names the route. */
export class WebSocketConfigError extends OperatorError<"WEBSOCKET_CONFIG_INVALID"> {
  override name = "WebSocketConfigError";

  constructor(message: string) {
    super("WEBSOCKET_CONFIG_INVALID", message);
  }
}

const METHOD_NAME_RE = /^[A-Za-z][A-Za-z0-9._-]{0,63}$/;
const TAGS: ReadonlySet<string> = new Set(["order", "cancel"]);

type Json = Record<string, unknown>;

function object(v: unknown, where: string): Json {
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw new WebSocketConfigError(`${where} must be an object`);
  return v as Json;
}

function only(o: Json, where: string, allowed: readonly string[]): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw new WebSocketConfigError(`${where}: unknown field "${k}" (known: ${allowed.join(", ")})`);
  }
}

function integer(v: unknown, where: string, fallback: number, min: number, max: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) throw new WebSocketConfigError(`${where} must be an integer from ${min} to ${max}`);
  return v;
}

function permissionOf(v: unknown, where: string): RoutePermission | null {
  if (v === PUBLIC) return null;
  if (typeof v === "string" && (v === AUTHENTICATED || isPermission(v))) return v;
  throw new WebSocketConfigError(`${where}: unknown permission ${JSON.stringify(v)}`);
}

/** The operations a Binance WebSocket API method carries unless its spec says otherwise: its REST twin's. */
const BINANCE_METHOD_OPERATIONS: ReadonlyMap<string, OperationKind> = new Map([
  ["order.place", "order.place"],
  ["order.cancel", "order.cancel"],
]);

function operationOf(v: unknown, name: string, dialect: "binance" | null, where: string): OperationKind | null {
  if (v === undefined) return dialect === "binance" ? (BINANCE_METHOD_OPERATIONS.get(name) ?? null) : null;
  if (v === null) return null;
  const decoder = OPERATION_DECODERS[dialect ?? "native"];
  if (!isOperationKind(v) || !decoder.kinds.has(v) || decoder.decodeMessage === undefined) {
    throw new WebSocketConfigError(`${where}.operation: ${JSON.stringify(v)} is not an operation of the ${dialect ?? "native"} shape (one of ${[...decoder.kinds].join(", ")})`);
  }
  return v;
}

function compileMethod(routePath: string, name: string, raw: unknown, where: string, dialect: "binance" | null = null): WebSocketMethod {
  const spec = object(raw, where);
  only(spec, where, ["permission", "weight", "tags", "operation"]);
  const permission = permissionOf(spec.permission, where);
  const weight = integer(spec.weight, `${where}.weight`, 1, 0, 1_000_000);
  const tags: unknown = spec.tags ?? [];
  if (!Array.isArray(tags) || !tags.every((t): t is string => typeof t === "string" && TAGS.has(t))) {
    throw new WebSocketConfigError(`${where}.tags must be a list of "order" / "cancel"`);
  }
  const route: Route = {
    id: `WS ${routePath} ${name}`,
    method: "WS",
    pattern: routePath,
    permission,
    weight,
    tags: Object.freeze([...tags]),
    // The venue whose shape the message's operation is read in (no scheme is chosen by it: a
    // message's credential is set by its connection).
    dialect,
    degradable: false,
    operation: operationOf(spec.operation, name, dialect, where),
  };
  return { name, permission, route };
}

function compileRoute(raw: unknown, index: number, seen: Set<string>): WebSocketRoute {
  const first = `websocket.routes[${index}]`;
  const spec = object(raw, first);
  const where = `${first} (${typeof spec.path === "string" ? spec.path : JSON.stringify(spec.path)})`;
  only(spec, where, ["path", "dialect", "permission", "weight", "anonymous", "methods"]);
  const path = spec.path;
  if (typeof path !== "string") throw new WebSocketConfigError(`${where}: path must be a string`);
  // The route table's own rules for paths (canonical, not under /portcullis/), and no patterns.
  try {
    new RouteTable([{ method: "GET", path, permission: PUBLIC }]);
  } catch (err) {
    if (err instanceof RouteTableError) throw new WebSocketConfigError(`${where}: ${err.message.replace(/^route #1 \([^)]*\): /, "")}`);
    throw err;
  }
  if (path.split("/").some((s) => s === "*" || s.startsWith(":"))) throw new WebSocketConfigError(`${where}: a WebSocket path is exact (no :param or *)`);
  if (seen.has(path)) throw new WebSocketConfigError(`${where}: path ${path} is listed twice`);
  seen.add(path);
  const dialect = spec.dialect ?? null;
  if (dialect !== null && dialect !== "binance") throw new WebSocketConfigError(`${where}: unknown dialect ${JSON.stringify(dialect)} (WebSocket routes speak "binance" or, without dialect, the native format)`);
  const upgradePermission = spec.permission ?? AUTHENTICATED;
  if (upgradePermission === PUBLIC) throw new WebSocketConfigError(`${where}: permission is what a signed upgrade needs; use "anonymous": true for unsigned upgrades`);
  permissionOf(upgradePermission, `${where}.permission`);
  const weight = integer(spec.weight, `${where}.weight`, 1, 0, 1_000_000);
  const anonymous = spec.anonymous ?? false;
  if (typeof anonymous !== "boolean") throw new WebSocketConfigError(`${where}.anonymous must be true or false`);
  const methodsRaw = object(spec.methods, `${where}.methods`);
  const methods = new Map<string, WebSocketMethod>();
  for (const [name, m] of Object.entries(methodsRaw)) {
    if (!METHOD_NAME_RE.test(name) || PROTOTYPE_NAMES.has(name)) throw new WebSocketConfigError(`${where}: bad method name ${JSON.stringify(name)}`);
    if (dialect === "binance" && isBinanceSessionMethod(name)) {
      throw new WebSocketConfigError(`${where}: ${name} is answered by the gateway on a Binance route and cannot be mapped`);
    }
    methods.set(name, compileMethod(path, name, m, `${where}.methods.${name}`, dialect));
  }
  if (dialect === "binance") {
    // session.logon is decided like the signed request it is (its key charged too); status and logout are public.
    for (const name of BINANCE_SESSION_METHODS) {
      methods.set(name, compileMethod(path, name, { permission: name === "session.logon" ? AUTHENTICATED : PUBLIC, weight: 2 }, `${where} ${name}`));
    }
  }
  if (methods.size === 0) throw new WebSocketConfigError(`${where}: methods must map at least one method`);
  return {
    id: `WS ${path}`,
    path,
    dialect,
    anonymous,
    methods,
    signedUpgrade: { method: "GET", path, permission: upgradePermission as string, weight },
    // The dialect only chooses the format of refusals (a public route reads no credentials).
    anonymousUpgrade: anonymous ? { method: "GET", path, permission: PUBLIC, weight, ...(dialect === null ? {} : { dialect }) } : null,
  };
}

/**
 * Validates and compiles the `websocket` section. Throws WebSocketConfigError naming the route
 * and field at fault; `limits` are the configured limits, so that a method heavier than a weight
 * limit (it could never be admitted) is refused, as for HTTP routes.
 */
export function compileWebSocketSettings(raw: unknown, limits: readonly LimitSpec[] = []): WebSocketSettings {
  const spec = raw === undefined ? {} : object(raw, "websocket");
  only(spec, "websocket", ["routes", "maxMessageBytes", "pingIntervalMs", "maxPendingMessages"]);
  const list: unknown = spec.routes ?? [];
  if (!Array.isArray(list)) throw new WebSocketConfigError("websocket.routes must be a list");
  const seen = new Set<string>();
  const routes = list.map((r: unknown, i) => compileRoute(r, i, seen));
  const weightLimits = limits.filter((l) => l.kind === "weight");
  for (const route of routes) {
    for (const method of route.methods.values()) {
      for (const limit of weightLimits) {
        if (method.route.weight > limit.limit) {
          throw new WebSocketConfigError(`${route.id} method ${method.name} weighs ${method.route.weight}, more than limit ${limit.name} allows per window (${limit.limit}): it could never be admitted`);
        }
      }
    }
  }
  return {
    routes,
    maxMessageBytes: integer(spec.maxMessageBytes, "websocket.maxMessageBytes", 64 * 1024, 64, 16 * 1024 * 1024),
    pingIntervalMs: integer(spec.pingIntervalMs, "websocket.pingIntervalMs", 30_000, 1_000, 600_000),
    maxPendingMessages: integer(spec.maxPendingMessages, "websocket.maxPendingMessages", 64, 1, 10_000),
  };
}
