import { DIALECTS, type Dialect } from "../contract/keys.js";
import { AUTHENTICATED, PUBLIC, isPermission } from "../contract/permissions.js";
import type { Route } from "../contract/route.js";
import { OPERATION_KINDS, isOperationKind } from "../contract/operations.js";
import { OperatorError } from "../errors/catalogue.js";

/**
 * The route table: every route the gateway exposes maps to a permission (or is explicitly
 * public) and a weight; anything unmapped is denied. The table is validated and compiled once, at
 * startup: an unknown permission, a malformed pattern, a duplicate or an ambiguous overlap is an
 * error that names the route. Per request, a static route costs one Map lookup; a pattern walks
 * a small trie.
 *
 * Patterns: literal segments, `:name` for exactly one segment, and a final `*` for the rest of the
 * path (one or more segments). When two patterns match one path, the more specific wins, and the
 * table must make that choice unambiguous: at every segment one pattern is at least as specific
 * (literal > parameter > wildcard) as the other.
 */
export interface RouteSpec {
  readonly method: string | readonly string[];
  readonly path: string;
  readonly permission: string;
  readonly weight?: number;
  readonly tags?: readonly string[];
  /**
   * The venue dialect of this route (binance, kraken, coinbase, okx, bybit): requests may be
   * signed in it as well as natively, and refusals of unsigned requests use its error format.
   * Without it, a route accepts the native scheme only.
   */
  readonly dialect?: string;
  /**
   * When the shared hot store (Redis) is unreachable, admit with this process's local limits
   * instead of failing closed. For market data, never for trading or withdrawals.
   */
  readonly degradable?: boolean;
  /**
   * The operation this route's requests carry (docs/operations.md): `order.place`,
   * `order.cancel`, `withdraw`, `transfer`, `key.create`, `key.update`, `key.revoke` or `other`.
   * The operation stage decodes each request in the route's venue shape (its dialect's, or the
   * native shape) and refuses one that does not decode. Without it, requests are not decoded.
   */
  readonly operation?: string;
}

/** A route table that cannot be compiled (ROUTE_TABLE_INVALID): the message names the route. */
export class RouteTableError extends OperatorError<"ROUTE_TABLE_INVALID"> {
  override name = "RouteTableError";

  constructor(message: string) {
    super("ROUTE_TABLE_INVALID", message);
  }
}

type Segment = { kind: "literal"; value: string } | { kind: "param" } | { kind: "wildcard" };

interface ParsedRoute {
  readonly route: Route;
  readonly segments: readonly Segment[];
  readonly index: number;
}

interface TrieNode {
  literal: Map<string, TrieNode> | null;
  param: TrieNode | null;
  wildcard: Route | null;
  route: Route | null;
}

const METHOD_RE = /^[A-Z]{3,10}$/;
const LITERAL_RE = /^[A-Za-z0-9\-._~!$&'()+,;=@%]+$/;
const PARAM_RE = /^:[A-Za-z_][A-Za-z0-9_]*$/;
const RESERVED_PREFIX = "/portcullis/";

function describe(index: number, spec: { readonly method?: unknown; readonly path?: unknown }): string {
  const method = typeof spec.method === "string" ? spec.method : JSON.stringify(spec.method);
  return `route #${index + 1} (${method} ${typeof spec.path === "string" ? spec.path : JSON.stringify(spec.path)})`;
}

function parsePattern(path: unknown, where: string, allowReserved: boolean): Segment[] {
  if (typeof path !== "string" || !path.startsWith("/")) throw new RouteTableError(`${where}: path must start with "/"`);
  if (!allowReserved && (path.startsWith(RESERVED_PREFIX) || path === "/portcullis")) {
    throw new RouteTableError(`${where}: paths under ${RESERVED_PREFIX} are reserved for the gateway's own endpoints`);
  }
  if (path === "/") return [];
  const parts = path.slice(1).split("/");
  const segments: Segment[] = [];
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i] ?? "";
    if (part === "*") {
      if (i !== parts.length - 1) throw new RouteTableError(`${where}: "*" may only be the last segment`);
      segments.push({ kind: "wildcard" });
    } else if (part.startsWith(":")) {
      if (!PARAM_RE.test(part)) throw new RouteTableError(`${where}: bad parameter segment "${part}"`);
      segments.push({ kind: "param" });
    } else if (part === "" || part === "." || part === ".." || !LITERAL_RE.test(part)) {
      throw new RouteTableError(`${where}: bad path segment "${part}"`);
    } else {
      segments.push({ kind: "literal", value: part });
    }
  }
  return segments;
}

/** Validates one raw route entry; one parsed route per method. */
function readSpec(raw: unknown, index: number, allowReserved: boolean): ParsedRoute[] {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw new RouteTableError(`route #${index + 1}: must be an object`);
  const spec = raw as Record<string, unknown>;
  const where = describe(index, spec);
  const methods: unknown = typeof spec.method === "string" ? [spec.method] : spec.method;
  if (!Array.isArray(methods) || methods.length === 0) throw new RouteTableError(`${where}: method is required`);
  const segments = parsePattern(spec.path, where, allowReserved);
  const path = spec.path as string;
  const permission = spec.permission;
  if (typeof permission !== "string" || (permission !== PUBLIC && permission !== AUTHENTICATED && !isPermission(permission))) {
    throw new RouteTableError(`${where}: unknown permission ${JSON.stringify(permission)}`);
  }
  const weight = spec.weight ?? 1;
  if (typeof weight !== "number" || !Number.isInteger(weight) || weight < 0 || weight > 1_000_000) {
    throw new RouteTableError(`${where}: weight must be an integer from 0 to 1000000`);
  }
  const tags: unknown = spec.tags ?? [];
  if (!Array.isArray(tags) || !tags.every((t): t is string => typeof t === "string")) {
    throw new RouteTableError(`${where}: tags must be an array of strings`);
  }
  const dialect = spec.dialect ?? null;
  if (dialect !== null && (typeof dialect !== "string" || dialect === "native" || !(DIALECTS as readonly string[]).includes(dialect))) {
    throw new RouteTableError(`${where}: unknown dialect ${JSON.stringify(dialect)} (one of ${DIALECTS.filter((d) => d !== "native").join(", ")})`);
  }
  const degradable = spec.degradable ?? false;
  if (typeof degradable !== "boolean") throw new RouteTableError(`${where}: degradable must be true or false`);
  if (degradable && permission !== PUBLIC && permission !== "read") {
    throw new RouteTableError(`${where}: only public and read routes may be degradable (this one needs ${permission})`);
  }
  const operation = spec.operation ?? null;
  if (operation !== null && !isOperationKind(operation)) {
    throw new RouteTableError(`${where}: unknown operation ${JSON.stringify(operation)} (one of ${OPERATION_KINDS.join(", ")})`);
  }
  if (operation !== null && permission === PUBLIC) {
    throw new RouteTableError(`${where}: a public route cannot declare an operation (only a signed request's operation is decoded)`);
  }
  const known = new Set(["method", "path", "permission", "weight", "tags", "dialect", "degradable", "operation"]);
  for (const field of Object.keys(spec)) {
    if (!known.has(field)) throw new RouteTableError(`${where}: unknown field "${field}"`);
  }
  return methods.map((method: unknown) => {
    if (typeof method !== "string" || !METHOD_RE.test(method)) {
      throw new RouteTableError(`${where}: bad method ${JSON.stringify(method)} (use upper case, e.g. GET)`);
    }
    const route: Route = {
      id: `${method} ${path}`,
      method,
      pattern: path,
      permission: permission === PUBLIC ? null : (permission),
      weight,
      tags: Object.freeze([...tags]),
      dialect: dialect as Dialect | null,
      degradable,
      operation,
    };
    return { route, segments, index };
  });
}

const RANK = { literal: 0, param: 1, wildcard: 2 } as const;

/** Can one path match both patterns? */
function overlaps(a: readonly Segment[], b: readonly Segment[]): boolean {
  for (let i = 0; ; i++) {
    const sa = a[i];
    const sb = b[i];
    if (sa === undefined || sb === undefined) {
      // One pattern ended: they overlap only if the other ends too, or continues with a wildcard
      // that could match... nothing (wildcards need one or more segments), so both must end.
      return sa === undefined && sb === undefined;
    }
    if (sa.kind === "wildcard" || sb.kind === "wildcard") return true;
    if (sa.kind === "literal" && sb.kind === "literal" && sa.value !== sb.value) return false;
  }
}

/** Is `a` at least as specific as `b` at every segment (so `a` wins wherever both match)? */
function refines(a: readonly Segment[], b: readonly Segment[]): boolean {
  for (let i = 0; ; i++) {
    const sa = a[i];
    const sb = b[i];
    if (sb !== undefined && sb.kind === "wildcard") return sa !== undefined;
    if (sa === undefined || sb === undefined) return sa === undefined && sb === undefined;
    if (sa.kind === "wildcard") return false;
    if (RANK[sa.kind] > RANK[sb.kind]) return false;
  }
}

function newNode(): TrieNode {
  return { literal: null, param: null, wildcard: null, route: null };
}

/** A compiled, validated route table. */
export class RouteTable {
  readonly routes: readonly Route[];
  /** method -> path -> route, for the routes without parameters */
  private readonly exact = new Map<string, Map<string, Route>>();
  private readonly tries = new Map<string, TrieNode>();

  /**
   * @param specs the routes.
   * @param options.allowReserved lets Portcullis's own tables (the admin API) use /portcullis/.
   */
  constructor(specs: readonly RouteSpec[], options: { readonly allowReserved?: boolean } = {}) {
    // The table usually comes from a JSON file, so every field is checked as if it were unknown.
    const list: unknown = specs;
    if (!Array.isArray(list)) throw new RouteTableError("routes must be an array");
    const parsed: ParsedRoute[] = [];
    list.forEach((raw: unknown, index) => {
      for (const route of readSpec(raw, index, options.allowReserved === true)) parsed.push(route);
    });
    for (let i = 0; i < parsed.length; i++) {
      for (let j = i + 1; j < parsed.length; j++) {
        const a = parsed[i];
        const b = parsed[j];
        if (a === undefined || b === undefined || a.route.method !== b.route.method) continue;
        if (!overlaps(a.segments, b.segments)) continue;
        const aRefinesB = refines(a.segments, b.segments);
        const bRefinesA = refines(b.segments, a.segments);
        const names = `${describe(a.index, specs[a.index] ?? {})} and ${describe(b.index, specs[b.index] ?? {})}`;
        if (aRefinesB && bRefinesA) throw new RouteTableError(`${names} are duplicates for ${a.route.method}`);
        if (!aRefinesB && !bRefinesA) {
          throw new RouteTableError(`${names} overlap ambiguously for ${a.route.method}: neither is more specific`);
        }
      }
    }

    for (const { route, segments } of parsed) {
      if (segments.every((s) => s.kind === "literal")) {
        let byPath = this.exact.get(route.method);
        if (byPath === undefined) {
          byPath = new Map();
          this.exact.set(route.method, byPath);
        }
        byPath.set(route.pattern, route);
        continue;
      }
      let node = this.tries.get(route.method);
      if (node === undefined) {
        node = newNode();
        this.tries.set(route.method, node);
      }
      for (const segment of segments) {
        if (segment.kind === "literal") {
          node.literal ??= new Map();
          let next = node.literal.get(segment.value);
          if (next === undefined) {
            next = newNode();
            node.literal.set(segment.value, next);
          }
          node = next;
        } else if (segment.kind === "param") {
          node.param ??= newNode();
          node = node.param;
        } else {
          node.wildcard = route;
        }
      }
      if (segments[segments.length - 1]?.kind !== "wildcard") node.route = route;
    }
    // Static routes also live in the trie, so that a pattern walk can fall back past them.
    for (const route of [...this.exact.values()].flatMap((byPath) => [...byPath.values()])) {
      let node = this.tries.get(route.method);
      if (node === undefined) continue;
      for (const part of route.pattern === "/" ? [] : route.pattern.slice(1).split("/")) {
        node.literal ??= new Map();
        let next = node.literal.get(part);
        if (next === undefined) {
          next = newNode();
          node.literal.set(part, next);
        }
        node = next;
      }
      node.route = route;
    }
    this.routes = Object.freeze(parsed.map((p) => p.route));
  }

  /** Finds the route for a canonical path (see `isCanonicalPath`). */
  match(method: string, path: string): Route | undefined {
    const exact = this.exact.get(method)?.get(path);
    if (exact !== undefined) return exact;
    const root = this.tries.get(method);
    if (root === undefined) return undefined;
    const segments = path === "/" ? [] : path.slice(1).split("/");
    return walk(root, segments, 0);
  }
}

function walk(node: TrieNode, segments: readonly string[], i: number): Route | undefined {
  if (i === segments.length) return node.route ?? undefined;
  const segment = segments[i] ?? "";
  const literal = node.literal?.get(segment);
  if (literal !== undefined) {
    const found = walk(literal, segments, i + 1);
    if (found !== undefined) return found;
  }
  if (node.param !== null && segment !== "") {
    const found = walk(node.param, segments, i + 1);
    if (found !== undefined) return found;
  }
  return node.wildcard ?? undefined;
}

const HEX = /^[0-9A-Fa-f]{2}$/;
// Characters that must never be percent-encoded in a canonical path: unreserved characters
// (RFC 3986 section 2.3), which have a plain form, and "/", which servers disagree about (one
// decodes %2F into a segment separator, another does not).
function isNeedlesslyEncoded(code: number): boolean {
  return (
    (code >= 0x30 && code <= 0x39) ||
    (code >= 0x41 && code <= 0x5a) ||
    (code >= 0x61 && code <= 0x7a) ||
    code === 0x2d ||
    code === 0x2e ||
    code === 0x5f ||
    code === 0x7e ||
    code === 0x2f
  );
}

/**
 * A canonical path has no dot segments, no empty segments, and percent-encodes only what must be
 * encoded. Anything else could be read differently by the gateway and the upstream, so it is
 * refused before any route is looked up.
 */
export function isCanonicalPath(path: string): boolean {
  if (path.length === 0 || path.charCodeAt(0) !== 0x2f) return false;
  let segmentStart = 1;
  for (let i = 1; i <= path.length; i++) {
    const c = i < path.length ? path.charCodeAt(i) : 0x2f;
    if (c === 0x2f) {
      const len = i - segmentStart;
      if (len === 0 && !(i === path.length && path.length === 1)) return false;
      if (len === 1 && path.charCodeAt(segmentStart) === 0x2e) return false;
      if (len === 2 && path.charCodeAt(segmentStart) === 0x2e && path.charCodeAt(segmentStart + 1) === 0x2e) return false;
      segmentStart = i + 1;
    } else if (c === 0x25 /* % */) {
      const hex = path.slice(i + 1, i + 3);
      if (!HEX.test(hex)) return false;
      if (isNeedlesslyEncoded(parseInt(hex, 16))) return false;
      i += 2;
    } else if (c <= 0x20 || c >= 0x7f || c === 0x5c /* \ */ || c === 0x23 /* # */) {
      return false;
    }
  }
  return true;
}
