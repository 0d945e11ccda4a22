/**
 * What an agent may do: the terms an owner's approval or an agent's delegation grants, read
 * strictly from JSON, and the one attenuation rule every link of a delegation chain must pass
 * (`narrows`): a link may only take away, never add.
 *
 * Pure and synchronous; the gateway and an offline verifier run the same code.
 */

/** The codes a wallet message can be refused with (the gateway's error catalogue has each). */
export type WalletCode =
  | "WALLET_MESSAGE_MALFORMED"
  | "WALLET_SIGNATURE_INVALID"
  | "WALLET_DOMAIN_MISMATCH"
  | "WALLET_URI_MISMATCH"
  | "WALLET_CHAIN_MISMATCH"
  | "WALLET_EXPIRED"
  | "WALLET_NOT_YET_VALID"
  | "AGENT_SCOPE_FORBIDDEN"
  | "AGENT_WIDENED"
  | "AGENT_CHAIN_BROKEN";

export interface WalletRefusal {
  readonly ok: false;
  readonly code: WalletCode;
  readonly message: string;
  /** The index of the chain link at fault, when the refusal is about one. */
  readonly link?: number;
}

export type WalletResult<T> = { readonly ok: true; readonly value: T } | WalletRefusal;

export function refuse(code: WalletCode, message: string, link?: number): WalletRefusal {
  return link === undefined ? { ok: false, code, message } : { ok: false, code, message, link };
}

/** The scopes an agent may hold: trading authority, never `withdraw`, `transfer` or `admin:*`. */
export const AGENT_SCOPES = ["read", "trade"] as const;
export type AgentScope = (typeof AGENT_SCOPES)[number];

/** `symbols: ["*"]`: any symbol. */
export const ANY_SYMBOL = "*";

/** One rate ceiling: at most `value` under the gateway's limit `name` (it can only lower the limit in force). */
export interface AgentLimit {
  readonly name: string;
  readonly value: number;
}

/**
 * The terms of one link. Decimals are plain strings ("" for no cap); `expiresAt` is epoch seconds.
 * Limits only ever lower the gateway's limit of that name, never raise it.
 */
export interface AgentTerms {
  readonly scopes: readonly AgentScope[];
  /** `["*"]` for any symbol; otherwise upper case, compared without separators ("BTC-USDT" is "BTCUSDT"). */
  readonly symbols: readonly string[];
  readonly maxOrderNotional: string;
  readonly maxOrderQuantity: string;
  readonly maxOpenNotional: string;
  readonly limits: readonly AgentLimit[];
  readonly expiresAt: number;
}

export const TERM_FIELDS = ["scopes", "symbols", "maxOrderNotional", "maxOrderQuantity", "maxOpenNotional", "limits", "expiresAt"] as const;
export const CAP_FIELDS = ["maxOrderNotional", "maxOrderQuantity", "maxOpenNotional"] as const;
export type CapField = (typeof CAP_FIELDS)[number];

export const MAX_SYMBOLS = 100;
export const MAX_LIMITS = 16;
/** Limit values: whole numbers from 1 to 10^9. */
export const MAX_LIMIT_VALUE = 1_000_000_000;

const SYMBOL_RE = /^[A-Z0-9][A-Z0-9/_:-]{0,31}$/;
const LIMIT_NAME_RE = /^[a-z][a-z0-9_.-]{0,63}$/;
/** A positive plain decimal: no sign, no exponent, at most 30 integer and 18 fraction digits. */
const DECIMAL_RE = /^(0|[1-9][0-9]{0,29})(\.[0-9]{1,18})?$/;
/** Nonces: 8 to 64 letters and digits (EIP-4361's own rule is at least 8 alphanumerics). */
export const NONCE_RE = /^[A-Za-z0-9]{8,64}$/;

/** An upper-case symbol without separators, as guardrails compare them. */
export function compactSymbol(symbol: string): string {
  return symbol.replace(/[-/_:]/g, "");
}

/** Is this a positive plain decimal a cap may hold? */
export function isCapDecimal(text: string): boolean {
  return DECIMAL_RE.test(text) && /[1-9]/.test(text);
}

/** Compares two plain decimals (as `isCapDecimal` accepts) exactly: -1, 0 or 1. */
export function compareDecimalText(a: string, b: string): number {
  const [ai = "", af = ""] = a.split(".");
  const [bi = "", bf = ""] = b.split(".");
  if (ai.length !== bi.length) return ai.length < bi.length ? -1 : 1;
  if (ai !== bi) return ai < bi ? -1 : 1;
  const width = Math.max(af.length, bf.length);
  const pa = af.padEnd(width, "0");
  const pb = bf.padEnd(width, "0");
  return pa === pb ? 0 : pa < pb ? -1 : 1;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/** Epoch seconds as a uint64 a JSON number can carry exactly. */
export function isEpochSeconds(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/**
 * Reads an object with exactly the members `fields` (none missing, none extra). Answers the
 * members or a message naming what is wrong.
 */
export function exactMembers(value: unknown, fields: readonly string[], what: string): Record<string, unknown> | string {
  if (!isPlainObject(value)) return `${what} is not a JSON object`;
  for (const name of Object.keys(value)) {
    if (!fields.includes(name)) return `${what} has an unknown member "${name}"`;
  }
  for (const name of fields) {
    if (!Object.hasOwn(value, name)) return `${what} lacks "${name}"`;
  }
  return value;
}

function stringList(value: unknown, what: string, max: number): readonly string[] | string {
  if (!Array.isArray(value)) return `${what} is not an array`;
  if (value.length > max) return `${what} has more than ${max} entries`;
  const seen = new Set<string>();
  for (const item of value) {
    if (typeof item !== "string") return `${what} holds a non-string`;
    if (seen.has(item)) return `${what} lists "${item}" twice`;
    seen.add(item);
  }
  return value as string[];
}

/**
 * Reads a link's terms from the members of its message (already checked to be exactly the
 * message's members). `link` is the index in the chain, for the refusal.
 */
export function readTerms(m: Record<string, unknown>, link?: number): WalletResult<AgentTerms> {
  const bad = (message: string): WalletRefusal => refuse("WALLET_MESSAGE_MALFORMED", message, link);
  const scopes = stringList(m["scopes"], "scopes", 8);
  if (typeof scopes === "string") return bad(scopes);
  if (scopes.length === 0) return bad("scopes is empty");
  for (const scope of scopes) {
    if (!(AGENT_SCOPES as readonly string[]).includes(scope)) {
      return refuse("AGENT_SCOPE_FORBIDDEN", `an agent may hold only ${AGENT_SCOPES.join(" and ")}, not "${scope}"`, link);
    }
  }
  const symbols = stringList(m["symbols"], "symbols", MAX_SYMBOLS);
  if (typeof symbols === "string") return bad(symbols);
  if (symbols.includes(ANY_SYMBOL)) {
    if (symbols.length !== 1) return bad(`symbols: "*" stands alone`);
  } else {
    const compact = new Set<string>();
    for (const s of symbols) {
      if (!SYMBOL_RE.test(s)) return bad(`symbols: "${s}" is not an upper-case symbol`);
      const c = compactSymbol(s);
      if (compact.has(c)) return bad(`symbols: "${s}" is listed twice`);
      compact.add(c);
    }
  }
  for (const field of CAP_FIELDS) {
    const cap = m[field];
    if (typeof cap !== "string" || (cap !== "" && !isCapDecimal(cap))) {
      return bad(`${field} is not "" or a positive plain decimal`);
    }
  }
  const limitsRaw = m["limits"];
  if (!Array.isArray(limitsRaw)) return bad("limits is not an array");
  if (limitsRaw.length > MAX_LIMITS) return bad(`limits has more than ${MAX_LIMITS} entries`);
  const limits: AgentLimit[] = [];
  const names = new Set<string>();
  for (const entry of limitsRaw) {
    const l = exactMembers(entry, ["name", "value"], "a limit");
    if (typeof l === "string") return bad(l);
    const name = l["name"];
    const value = l["value"];
    if (typeof name !== "string" || !LIMIT_NAME_RE.test(name)) return bad("a limit's name is not a limit name");
    if (names.has(name)) return bad(`limits name "${name}" twice`);
    names.add(name);
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1 || value > MAX_LIMIT_VALUE) {
      return bad(`limit "${name}": value is not a whole number from 1 to ${MAX_LIMIT_VALUE}`);
    }
    limits.push({ name, value });
  }
  const expiresAt = m["expiresAt"];
  if (!isEpochSeconds(expiresAt)) return bad("expiresAt is not epoch seconds");
  return {
    ok: true,
    value: {
      scopes: scopes as AgentScope[],
      symbols,
      maxOrderNotional: m["maxOrderNotional"] as string,
      maxOrderQuantity: m["maxOrderQuantity"] as string,
      maxOpenNotional: m["maxOpenNotional"] as string,
      limits,
      expiresAt,
    },
  };
}

/** Where a child's terms reach beyond its parent's. */
export interface Widening {
  readonly field: (typeof TERM_FIELDS)[number];
  readonly message: string;
}

/**
 * The attenuation rule: null when `child` allows nothing `parent` does not; else the first
 * widening found.
 *
 * - scopes: a subset;
 * - symbols: a subset (compared without separators); a parent's `*` allows any, a child's `*`
 *   needs the parent's;
 * - each cap: a capped parent needs a capped child, no larger ("" is no cap);
 * - limits: every limit the parent names, the child names too, no higher (a child may add limits:
 *   a limit only ever lowers the gateway's);
 * - expiresAt: no later.
 */
export function narrows(parent: AgentTerms, child: AgentTerms): Widening | null {
  const parentScopes = new Set<string>(parent.scopes);
  for (const scope of child.scopes) {
    if (!parentScopes.has(scope)) return { field: "scopes", message: `scope "${scope}" is not granted above` };
  }
  const parentAny = parent.symbols.length === 1 && parent.symbols[0] === ANY_SYMBOL;
  if (!parentAny) {
    const childAny = child.symbols.length === 1 && child.symbols[0] === ANY_SYMBOL;
    if (childAny) return { field: "symbols", message: `"*" (any symbol) is not granted above` };
    const allowed = new Set(parent.symbols.map(compactSymbol));
    for (const s of child.symbols) {
      if (!allowed.has(compactSymbol(s))) return { field: "symbols", message: `symbol ${s} is not granted above` };
    }
  }
  for (const field of CAP_FIELDS) {
    const above = parent[field];
    if (above === "") continue;
    const here = child[field];
    if (here === "") return { field, message: `${field} is uncapped, above it is ${above}` };
    if (compareDecimalText(here, above) > 0) return { field, message: `${field} ${here} is above ${above}` };
  }
  const childLimits = new Map(child.limits.map((l) => [l.name, l.value]));
  for (const l of parent.limits) {
    const here = childLimits.get(l.name);
    if (here === undefined) return { field: "limits", message: `limit "${l.name}" (${l.value} above) is dropped` };
    if (here > l.value) return { field: "limits", message: `limit "${l.name}" ${here} is above ${l.value}` };
  }
  if (child.expiresAt > parent.expiresAt) return { field: "expiresAt", message: `expiresAt ${child.expiresAt} is after ${parent.expiresAt}` };
  return null;
}
