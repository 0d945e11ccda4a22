import { keccak_256 } from "@noble/hashes/sha3.js";
import { isScope } from "../contract/permissions.js";
import { type JsonObject, PROTOTYPE_NAMES, isJsonObject, record, unknownMembers } from "../contract/json.js";
import { type Result, invalid, ok } from "../errors/result.js";
import { CidrError, parseCidr } from "../net/ip.js";
import { compareDecimal, formatDecimal, isZero, parseDecimal } from "../operations/decimal.js";
import {
  DIALECTS,
  type AgentTerms,
  type KeyGuardrails,
  DIALECT_ALGORITHMS,
  type Dialect,
  KEY_ALGORITHMS,
  type KeyAlgorithm,
  MAX_MAX_AGE_MS,
  MAX_SESSION_TTL_MS,
  MAX_WINDOW_MS,
  MIN_MAX_AGE_MS,
  MIN_SESSION_TTL_MS,
  CERT_THUMBPRINT_RE,
} from "../contract/keys.js";

/**
 * Validation of key-creation input, shared by the admin API (JSON from the network) and the CLI
 * (flags). Every problem is reported at once, per field, with a message a user can act on. The
 * parsers never throw for bad input: they return a `Result` (errors/result.ts), whose failure is
 * VALIDATION_FAILED with `fields` (field → problem). Fields are checked by own name against a set
 * of known ones, and whatever is keyed by a name the sender chose (the field errors, limit
 * overrides) is a null-prototype record (contract/json.ts), so `__proto__` or `constructor` is
 * an unknown field like any other.
 */
export interface CreateKeyInput {
  readonly account: string;
  readonly subAccount: string | null;
  readonly label: string;
  readonly scopes: readonly string[];
  readonly ipAllowlist: readonly string[];
  readonly algorithm: KeyAlgorithm | undefined;
  readonly publicKey: string | undefined;
  /** Absolute expiry in epoch ms, or null for none. */
  readonly expiresAt: number | null;
  readonly windowMs: number | null;
  readonly dialects: readonly Dialect[];
  /** OKX keys only: the passphrase the client will send (stored as a salted slow hash). */
  readonly passphrase: string | undefined;
  /** Limit overrides by limit name. */
  readonly limits: Readonly<Record<string, number>>;
  /** Lifetime of the key's sessions (ms), or null for the gateway default. */
  readonly sessionTtlMs: number | null;
  /** Bind the key's sessions to the address they log on from. */
  readonly sessionBindAddress: boolean;
  /** Scheduled rotation: the key expires this long after creation (ms), or null. */
  readonly maxAgeMs: number | null;
  /** An operator key (contract/keys.ts `KeyRecord.operator`); only an operator may create one. */
  readonly operator: boolean;
  /** The person who owns the key (contract/keys.ts `KeyRecord.owner`), or null. */
  readonly owner: string | null;
  /** The key's guardrails (contract/keys.ts `KeyGuardrails`), or null for none. */
  readonly guardrails: KeyGuardrails | null;
  /** The client certificate the key is bound to (contract/keys.ts `KeyRecord.certThumbprint`), or null. */
  readonly certThumbprint: string | null;
}

/**
 * A change to a key's guardrails, as a JSON merge patch (RFC 7396): a field given replaces the
 * key's, a field given as null removes that guardrail, a field absent stays. `null` instead of
 * the object removes them all.
 */
export type GuardrailsPatch = { readonly [F in keyof KeyGuardrails]?: KeyGuardrails[F] };

/** What `keys update` may change; absent fields stay as they are. */
export interface UpdateKeyInput {
  readonly label?: string;
  readonly scopes?: readonly string[];
  readonly ipAllowlist?: readonly string[];
  readonly sessionTtlMs?: number | null;
  readonly sessionBindAddress?: boolean;
  readonly maxAgeMs?: number | null;
  readonly owner?: string | null;
  readonly guardrails?: GuardrailsPatch | null;
}

/** What `keys rotate` takes. */
export interface RotateKeyInput {
  /** How long the old key keeps working (ms). */
  readonly graceMs: number;
  /** The successor's public key (required to rotate an asymmetric key: you keep the private half). */
  readonly publicKey: string | undefined;
}

/** The old key's grace period: one day unless the caller chooses, at most 30 days. */
export const DEFAULT_ROTATION_GRACE_MS = 86_400_000;
export const MAX_ROTATION_GRACE_MS = 30 * 86_400_000;

const LIMIT_NAME_RE = /^[a-z][a-z0-9._-]{0,63}$/;

/**
 * Validates limit overrides: `{ "<limit name>": <positive integer> }`, at most 32 of them. A
 * failure names the field `limits`.
 */
export function parseLimitOverrides(raw: unknown): Result<Record<string, number>> {
  const problem = (text: string) => invalid(`limits: ${text}`, { limits: text });
  if (!isJsonObject(raw)) return problem('an object of limit names to limits, e.g. {"key-weight-1m": 12000}');
  const entries = Object.entries(raw);
  if (entries.length > 32) return problem("at most 32 overrides");
  const limits = record<number>();
  for (const [name, value] of entries) {
    if (!LIMIT_NAME_RE.test(name) || PROTOTYPE_NAMES.has(name)) return problem(`bad limit name ${JSON.stringify(name)}`);
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= 0 || value > 1_000_000_000) {
      return problem(`${name} must be a positive integer up to 1000000000`);
    }
    limits[name] = value;
  }
  return ok(limits);
}

const ACCOUNT_RE = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$/;
// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\u0000-\u001f\u007f]/;
const MAX_ALLOWLIST = 256;

const DURATION_RE = /^([1-9][0-9]{0,8})(ms|s|m|h|d|w)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** Parses "90s", "15m", "12h", "30d", "2w" into milliseconds. */
export function parseDuration(text: string): Result<number> {
  const m = DURATION_RE.exec(text.trim());
  if (m === null) return invalid(`${JSON.stringify(text)} is not a duration such as "90s", "15m", "12h", "30d" or "2w"`);
  return ok(Number(m[1]) * (UNIT_MS[m[2] ?? ""] ?? 0));
}

/** A duration in milliseconds, or null when `text` is not one. */
function durationMs(text: string): number | null {
  const parsed = parseDuration(text);
  return parsed.ok ? parsed.value : null;
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === "string");
}

/** Field → problem: a null-prototype record, since unknown fields are named by the sender. */
type Errors = Record<string, string>;

const NOT_AN_OBJECT = invalid("the body must be a JSON object");

function objectOf(raw: unknown): JsonObject | null {
  return isJsonObject(raw) ? raw : null;
}

function unknownFields(o: JsonObject, known: ReadonlySet<string>, errors: Errors): void {
  for (const field of unknownMembers(o, known)) errors[field] = "unknown field";
}

/** The result: `value` when no field has a problem, else every problem at once. */
function resultOf<T>(errors: Errors, what: string, value: T): Result<T> {
  const fields = Object.keys(errors);
  if (fields.length === 0) return ok(value);
  return invalid(`${what}: ${fields.map((f) => `${f}: ${errors[f] ?? ""}`).join("; ")}`, errors);
}

function parseLabel(v: unknown, errors: Errors): string | undefined {
  if (typeof v !== "string" || v.length > 128 || CONTROL_RE.test(v)) {
    errors.label = "at most 128 characters, no control characters";
    return undefined;
  }
  return v;
}

/** A person's name: the key's owner, an approver (1 to 64 characters: letters, digits, `.`, `_`, `-`, `@`). */
export const PERSON_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

function parseOwner(v: unknown, errors: Errors): string | null {
  if (v === null) return null;
  if (typeof v !== "string" || !PERSON_NAME_RE.test(v)) {
    errors.owner = "a person's name: 1 to 64 letters, digits, '.', '_', '-' or '@'";
    return null;
  }
  return v;
}

function parseCertThumbprint(v: unknown, errors: Errors): string | null {
  if (v === null) return null;
  if (typeof v !== "string" || !CERT_THUMBPRINT_RE.test(v)) {
    errors.certThumbprint = "the certificate's SHA-256 thumbprint: 43 characters of base64url (RFC 8705 x5t#S256), e.g. from `portcullis keys create --cert FILE`";
    return null;
  }
  return v;
}

function parseScopes(v: unknown, errors: Errors): string[] {
  if (!isStringArray(v) || v.length === 0) {
    errors.scopes = "required: a non-empty list such as read,trade";
    return [];
  }
  const bad = v.filter((s) => !isScope(s));
  if (bad.length > 0) errors.scopes = `unknown scope(s): ${bad.join(", ")}`;
  return [...new Set(v)].sort();
}

function parseAllowlist(v: unknown, errors: Errors): string[] {
  const out: string[] = [];
  if (!isStringArray(v) || v.length > MAX_ALLOWLIST) {
    errors.ipAllowlist = `a list of at most ${MAX_ALLOWLIST} IPv4/IPv6 addresses or CIDR blocks`;
    return out;
  }
  for (const entry of v) {
    try {
      const canonical = parseCidr(entry.trim()).canonical;
      if (!out.includes(canonical)) out.push(canonical);
    } catch (err) {
      errors.ipAllowlist = err instanceof CidrError ? err.message : "invalid entry";
      break;
    }
  }
  return out;
}

/** A duration given as text ("15m") or milliseconds, within [min, max]; null is allowed when `nullable`. */
function parseBoundedDuration(v: unknown, field: string, min: number, max: number, errors: Errors): number | null {
  if (v === null) return null;
  const ms = typeof v === "string" ? durationMs(v) : typeof v === "number" && Number.isSafeInteger(v) ? v : null;
  const range = `from ${describeMs(min)} to ${describeMs(max)}`;
  if (ms === null) errors[field] = `a duration such as "15m", "12h" or "90d", ${range}`;
  else if (ms < min || ms > max) errors[field] = `must be ${range}`;
  else return ms;
  return null;
}

function describeMs(ms: number): string {
  for (const [unit, size] of [["d", 86_400_000], ["h", 3_600_000], ["m", 60_000], ["s", 1000]] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

function parseFlag(v: unknown, field: string, errors: Errors): boolean {
  if (typeof v !== "boolean") errors[field] = "true or false";
  return v === true;
}

const SYMBOL_RE = /^[A-Z0-9][A-Z0-9._:/-]{0,39}$/;
const ASSET_RE = /^[A-Z0-9]{1,20}$/;
const MAX_GUARDRAIL_LIST = 256;
const GUARDRAIL_INPUT_FIELDS: ReadonlySet<string> = new Set(["symbols", "maxQuantity", "maxNotional", "priceBandPct", "withdrawAssets", "transferAssets", "maxOpenNotional"]);
const NO_GUARDRAILS: KeyGuardrails = Object.freeze({
  symbols: null,
  maxQuantity: null,
  maxNotional: null,
  priceBandPct: null,
  withdrawAssets: null,
  transferAssets: null,
  maxOpenNotional: null,
});

/** A list of symbols or assets, upper-cased, de-duplicated and sorted; null stays null. */
function parseNameList(v: unknown, field: string, re: RegExp, example: string, errors: Errors): string[] | null {
  if (v === null) return null;
  if (!isStringArray(v) || v.length === 0 || v.length > MAX_GUARDRAIL_LIST) {
    errors[field] = `a list of 1 to ${MAX_GUARDRAIL_LIST} names such as ${example} (null for no allowlist)`;
    return null;
  }
  const names = v.map((n) => n.trim().toUpperCase());
  const bad = names.filter((n) => !re.test(n));
  if (bad.length > 0) {
    errors[field] = `not a name: ${bad.slice(0, 5).map((n) => JSON.stringify(n)).join(", ")} (letters and digits${re === SYMBOL_RE ? ", and . _ : / -" : ""})`;
    return null;
  }
  return [...new Set(names)].sort();
}

/** A positive decimal given as a string ("2.5"), canonical as written; null stays null. */
function parseCap(v: unknown, field: string, errors: Errors): string | null {
  if (v === null) return null;
  const value = typeof v === "string" ? parseDecimal(v) : null;
  if (value === null || isZero(value)) {
    errors[field] = 'a decimal string greater than zero, such as "2.5" (digits, optionally a point and digits)';
    return null;
  }
  return formatDecimal(value);
}

const HUNDRED = Object.freeze({ coefficient: 100n, scale: 0 });

/** The price band in percent: a decimal (string or number) greater than 0 and below 100. */
function parseBand(v: unknown, field: string, errors: Errors): string | null {
  if (v === null) return null;
  const text = typeof v === "number" && Number.isFinite(v) ? String(v) : typeof v === "string" ? v : "";
  const value = parseDecimal(text);
  if (value === null || isZero(value) || compareDecimal(value, HUNDRED) >= 0) {
    errors[field] = 'a percentage greater than 0 and below 100, such as 5 or "0.5"';
    return null;
  }
  return formatDecimal(value);
}

/**
 * Validates guardrails (`guardrails` of a create or update): an object of the fields of
 * contract/keys.ts `KeyGuardrails`, unknown fields refused, each problem named
 * `guardrails.<field>`. With `partial` (an update) only the fields given are returned.
 */
function parseGuardrailFields(raw: unknown, partial: boolean, errors: Errors): GuardrailsPatch {
  const o = objectOf(raw);
  if (o === null) {
    errors.guardrails = "an object with symbols, maxQuantity, maxNotional, priceBandPct, withdrawAssets, transferAssets or maxOpenNotional (or null for none)";
    return {};
  }
  for (const field of unknownMembers(o, GUARDRAIL_INPUT_FIELDS)) errors[`guardrails.${field}`] = "unknown field";
  const out: { -readonly [F in keyof KeyGuardrails]?: KeyGuardrails[F] } = partial ? {} : { ...NO_GUARDRAILS };
  if (o.symbols !== undefined) out.symbols = parseNameList(o.symbols, "guardrails.symbols", SYMBOL_RE, "BTCUSDT,ETHUSDT", errors);
  if (o.maxQuantity !== undefined) out.maxQuantity = parseCap(o.maxQuantity, "guardrails.maxQuantity", errors);
  if (o.maxNotional !== undefined) out.maxNotional = parseCap(o.maxNotional, "guardrails.maxNotional", errors);
  if (o.priceBandPct !== undefined) out.priceBandPct = parseBand(o.priceBandPct, "guardrails.priceBandPct", errors);
  if (o.withdrawAssets !== undefined) out.withdrawAssets = parseNameList(o.withdrawAssets, "guardrails.withdrawAssets", ASSET_RE, "USDT,BTC", errors);
  if (o.transferAssets !== undefined) out.transferAssets = parseNameList(o.transferAssets, "guardrails.transferAssets", ASSET_RE, "USDT,BTC", errors);
  if (o.maxOpenNotional !== undefined) out.maxOpenNotional = parseCap(o.maxOpenNotional, "guardrails.maxOpenNotional", errors);
  return out;
}

/** Guardrails with every field null are no guardrails. */
function orNone(g: KeyGuardrails): KeyGuardrails | null {
  return g.symbols === null && g.maxQuantity === null && g.maxNotional === null && g.priceBandPct === null && g.withdrawAssets === null && g.transferAssets === null && g.maxOpenNotional === null
    ? null
    : g;
}

/** A key's guardrails after `patch` (an update's merge patch; null removes them all). */
export function mergeGuardrails(current: KeyGuardrails | null, patch: GuardrailsPatch | null): KeyGuardrails | null {
  if (patch === null) return null;
  return orNone({ ...NO_GUARDRAILS, ...current, ...patch });
}

/**
 * A wallet address as given (`0x` and 40 hex digits; mixed case must carry a valid EIP-55
 * checksum), in its EIP-55 form; null when it is none.
 */
export function parseWalletAddress(v: unknown): string | null {
  if (typeof v !== "string" || !/^0x[0-9a-fA-F]{40}$/.test(v)) return null;
  const hex = v.slice(2);
  const checksummed = eip55(hex.toLowerCase());
  // All lower or all upper case carries no checksum; mixed case must be exactly the checksum.
  if (hex !== hex.toLowerCase() && hex !== hex.toUpperCase() && `0x${hex}` !== checksummed) return null;
  return checksummed;
}

/**
 * EIP-55: a hex digit of the address is upper case when the matching nibble of the Keccak-256 of
 * the lower-case address text is 8 or more (keccak from @noble/hashes, already loaded by the
 * gateway's other dependencies; viem, which has the same, costs a third of a second to load).
 */
function eip55(lower: string): string {
  const hash = keccak_256(new TextEncoder().encode(lower));
  let out = "0x";
  for (let i = 0; i < lower.length; i++) {
    const nibble = ((hash[i >> 1] ?? 0) >> (i % 2 === 0 ? 4 : 0)) & 0xf;
    out += nibble >= 8 ? (lower[i] ?? "").toUpperCase() : (lower[i] ?? "");
  }
  return out;
}

/** What an agent's signed terms make of its key (docs/wallets.md): its guardrails and limits. */
export interface AgentKeyTerms {
  readonly guardrails: KeyGuardrails | null;
  readonly limits: Record<string, number>;
}

/**
 * Validates an agent's signed terms as key input, the same rules as any key's guardrails and
 * limit overrides: symbols (`["*"]`: any), maxOrderNotional → maxNotional, maxOrderQuantity →
 * maxQuantity, maxOpenNotional → maxOpenNotional ("" = no cap), limits `[{ name, value }]`.
 * VALIDATION_FAILED names the terms' fields.
 */
export function parseAgentTerms(terms: AgentTerms): Result<AgentKeyTerms> {
  const errors = record<string>();
  const symbols = terms.symbols.length === 1 && terms.symbols[0] === "*" ? null : parseNameList([...terms.symbols], "symbols", SYMBOL_RE, "BTCUSDT,ETHUSDT", errors);
  const maxNotional = terms.maxOrderNotional === "" ? null : parseCap(terms.maxOrderNotional, "maxOrderNotional", errors);
  const maxQuantity = terms.maxOrderQuantity === "" ? null : parseCap(terms.maxOrderQuantity, "maxOrderQuantity", errors);
  const maxOpenNotional = terms.maxOpenNotional === "" ? null : parseCap(terms.maxOpenNotional, "maxOpenNotional", errors);
  const raw = record<number>();
  for (const { name, value } of terms.limits) {
    if (Object.hasOwn(raw, name)) errors.limits = `limit ${JSON.stringify(name)} given twice`;
    raw[name] = value;
  }
  let limits = record<number>();
  if (terms.limits.length > 0) {
    const parsed = parseLimitOverrides(raw);
    if (parsed.ok) limits = parsed.value;
    else Object.assign(errors, parsed.fields);
  }
  const guardrails = orNone({ ...NO_GUARDRAILS, symbols, maxNotional, maxQuantity, maxOpenNotional });
  return resultOf(errors, "invalid agent terms", { guardrails, limits });
}

/**
 * Validates raw input (a parsed JSON object or CLI options). `expires` may be an ISO-8601
 * timestamp, epoch ms, or a duration such as "30d" relative to `now`.
 */
export function parseCreateKeyInput(raw: unknown, now: number): Result<CreateKeyInput> {
  const errors = record<string>();
  const o = objectOf(raw);
  if (o === null) return NOT_AN_OBJECT;
  unknownFields(o, CREATE_FIELDS, errors);

  const account = o.account;
  if (typeof account !== "string" || !ACCOUNT_RE.test(account)) {
    errors.account = "required: 1-64 characters of letters, digits and . _ : @ -, starting with a letter or digit";
  }
  let subAccount: string | null = null;
  if (o.subAccount !== undefined && o.subAccount !== null) {
    if (typeof o.subAccount !== "string" || !ACCOUNT_RE.test(o.subAccount)) errors.subAccount = "same rules as account";
    else subAccount = o.subAccount;
  }
  const label = o.label === undefined ? "" : (parseLabel(o.label, errors) ?? "");
  const scopes = parseScopes(o.scopes, errors);
  const ipAllowlist = o.ipAllowlist === undefined ? [] : parseAllowlist(o.ipAllowlist, errors);

  let algorithm: KeyAlgorithm | undefined;
  if (o.algorithm !== undefined) {
    if (typeof o.algorithm !== "string" || !(KEY_ALGORITHMS as readonly string[]).includes(o.algorithm)) {
      errors.algorithm = `one of ${KEY_ALGORITHMS.join(", ")}`;
    } else algorithm = o.algorithm as KeyAlgorithm;
  }
  let publicKey: string | undefined;
  if (o.publicKey !== undefined) {
    if (typeof o.publicKey !== "string") errors.publicKey = "a PEM or JWK text";
    else publicKey = o.publicKey;
  }
  // A wallet owner key (docs/wallets.md): its credential is the wallet's address.
  if (o.wallet !== undefined) {
    const address = parseWalletAddress(o.wallet);
    if (address === null) errors.wallet = "a wallet address: 0x and 40 hex digits (mixed case must be a valid EIP-55 checksum)";
    else if (publicKey !== undefined) errors.wallet = "give a wallet or a public key, not both";
    else if (algorithm !== undefined && algorithm !== "ethereum") errors.wallet = `a wallet owner key is of algorithm ethereum, not ${algorithm}`;
    else {
      algorithm = "ethereum";
      publicKey = address;
    }
  } else if (algorithm === "ethereum") {
    errors.algorithm = "an ethereum key is a wallet owner key: give its address as wallet";
  }
  if (algorithm !== undefined && algorithm !== "hmac-sha256" && publicKey === undefined) {
    errors.publicKey = `required for ${algorithm} keys: the server stores only your public key`;
  }
  if (algorithm === "hmac-sha256" && publicKey !== undefined) {
    errors.publicKey = "not allowed for hmac-sha256 keys (the server generates the secret)";
  }

  let expiresAt: number | null = null;
  if (o.expires !== undefined && o.expires !== null) {
    const e = o.expires;
    let at: number | null = null;
    if (typeof e === "number" && Number.isSafeInteger(e)) at = e;
    else if (typeof e === "string") {
      const d = durationMs(e);
      if (d !== null) at = now + d;
      else if (/^\d{4}-\d{2}-\d{2}T/.test(e) && !Number.isNaN(Date.parse(e))) at = Date.parse(e);
    }
    if (at === null) errors.expires = 'a duration ("30d", "12h"), an ISO-8601 time or epoch milliseconds';
    else if (at <= now) errors.expires = "must be in the future";
    else expiresAt = at;
  }

  let windowMs: number | null = null;
  if (o.windowMs !== undefined && o.windowMs !== null) {
    if (typeof o.windowMs !== "number" || !Number.isInteger(o.windowMs) || o.windowMs < 1000 || o.windowMs > MAX_WINDOW_MS) {
      errors.windowMs = `an integer from 1000 to ${MAX_WINDOW_MS} (milliseconds)`;
    } else windowMs = o.windowMs;
  }

  let dialects: Dialect[] = ["native"];
  if (o.dialects !== undefined) {
    if (!isStringArray(o.dialects) || o.dialects.length === 0) errors.dialects = "a non-empty list";
    else {
      const bad = o.dialects.filter((d) => !(DIALECTS as readonly string[]).includes(d));
      if (bad.length > 0) errors.dialects = `unsupported dialect(s): ${bad.join(", ")} (supported: ${DIALECTS.join(", ")})`;
      else dialects = [...new Set(o.dialects as Dialect[])];
    }
  }
  // A venue's scheme fixes its algorithms. With a public key the algorithm is only known once
  // the key is parsed; the key service checks that case again.
  const effectiveAlgorithm: KeyAlgorithm | undefined = algorithm ?? (publicKey === undefined ? "hmac-sha256" : undefined);
  if (effectiveAlgorithm !== undefined && errors.dialects === undefined) {
    const incompatible = dialects.filter((d) => !DIALECT_ALGORITHMS[d].includes(effectiveAlgorithm));
    if (incompatible.length > 0) {
      errors.dialects = `${incompatible.join(", ")} cannot sign with ${effectiveAlgorithm} keys (${incompatible
        .map((d) => `${d}: ${DIALECT_ALGORITHMS[d].join("/")}`)
        .join("; ")})`;
    }
  }

  let passphrase: string | undefined;
  if (o.passphrase !== undefined) {
    if (typeof o.passphrase !== "string" || !/^[\x21-\x7e]{8,64}$/.test(o.passphrase)) {
      errors.passphrase = "8 to 64 printable ASCII characters, no spaces";
    } else if (!dialects.includes("okx")) {
      errors.passphrase = "only OKX keys carry a passphrase (add --dialect okx)";
    } else passphrase = o.passphrase;
  } else if (dialects.includes("okx")) {
    errors.passphrase = "required for OKX keys: the passphrase your client will send";
  }

  let limits = record<number>();
  if (o.limits !== undefined) {
    const parsed = parseLimitOverrides(o.limits);
    if (parsed.ok) limits = parsed.value;
    else Object.assign(errors, parsed.fields);
  }

  const sessionTtlMs = o.sessionTtl === undefined ? null : parseBoundedDuration(o.sessionTtl, "sessionTtl", MIN_SESSION_TTL_MS, MAX_SESSION_TTL_MS, errors);
  const sessionBindAddress = o.sessionBindAddress === undefined ? false : parseFlag(o.sessionBindAddress, "sessionBindAddress", errors);
  const maxAgeMs = o.maxAge === undefined ? null : parseBoundedDuration(o.maxAge, "maxAge", MIN_MAX_AGE_MS, MAX_MAX_AGE_MS, errors);
  const operator = o.operator === undefined ? false : parseFlag(o.operator, "operator", errors);
  const owner = o.owner === undefined ? null : parseOwner(o.owner, errors);
  const certThumbprint = o.certThumbprint === undefined ? null : parseCertThumbprint(o.certThumbprint, errors);
  const guardrails = o.guardrails === undefined || o.guardrails === null ? null : orNone({ ...NO_GUARDRAILS, ...parseGuardrailFields(o.guardrails, false, errors) });
  // A rotation policy sets the expiry, unless an earlier one was asked for.
  if (maxAgeMs !== null && (expiresAt === null || expiresAt > now + maxAgeMs)) expiresAt = now + maxAgeMs;

  return resultOf(errors, "invalid key", {
    account: account as string,
    subAccount,
    label,
    scopes,
    ipAllowlist,
    algorithm,
    publicKey,
    expiresAt,
    windowMs,
    dialects,
    passphrase,
    limits,
    sessionTtlMs,
    sessionBindAddress,
    maxAgeMs,
    operator,
    owner,
    guardrails,
    certThumbprint,
  });
}

const CREATE_FIELDS: ReadonlySet<string> = new Set([
  "wallet",
  "account",
  "subAccount",
  "label",
  "scopes",
  "ipAllowlist",
  "algorithm",
  "publicKey",
  "expires",
  "windowMs",
  "dialects",
  "passphrase",
  "limits",
  "sessionTtl",
  "sessionBindAddress",
  "maxAge",
  "operator",
  "owner",
  "guardrails",
  "certThumbprint",
]);

const UPDATE_FIELDS: ReadonlySet<string> = new Set(["label", "scopes", "ipAllowlist", "sessionTtl", "sessionBindAddress", "maxAge", "owner", "guardrails"]);

/**
 * Validates a key update (the admin API's PATCH body, or `keys update` flags): only the fields
 * given change. `sessionTtl` and `maxAge` may be null to return to the default / drop the policy;
 * `guardrails` is a merge patch (`GuardrailsPatch`), or null to remove them all.
 */
export function parseUpdateKeyInput(raw: unknown): Result<UpdateKeyInput> {
  const errors = record<string>();
  const o = objectOf(raw);
  if (o === null) return NOT_AN_OBJECT;
  unknownFields(o, UPDATE_FIELDS, errors);
  const out: { -readonly [F in keyof UpdateKeyInput]: UpdateKeyInput[F] } = {};
  if (o.label !== undefined) {
    const label = parseLabel(o.label, errors);
    if (label !== undefined) out.label = label;
  }
  if (o.scopes !== undefined) out.scopes = parseScopes(o.scopes, errors);
  if (o.ipAllowlist !== undefined) out.ipAllowlist = parseAllowlist(o.ipAllowlist, errors);
  if (o.sessionTtl !== undefined) out.sessionTtlMs = parseBoundedDuration(o.sessionTtl, "sessionTtl", MIN_SESSION_TTL_MS, MAX_SESSION_TTL_MS, errors);
  if (o.sessionBindAddress !== undefined) out.sessionBindAddress = parseFlag(o.sessionBindAddress, "sessionBindAddress", errors);
  if (o.maxAge !== undefined) out.maxAgeMs = parseBoundedDuration(o.maxAge, "maxAge", MIN_MAX_AGE_MS, MAX_MAX_AGE_MS, errors);
  if (o.owner !== undefined) out.owner = parseOwner(o.owner, errors);
  if (o.guardrails !== undefined) out.guardrails = o.guardrails === null ? null : parseGuardrailFields(o.guardrails, true, errors);
  if (Object.keys(o).length === 0) errors.body = `nothing to change: give one or more of ${[...UPDATE_FIELDS].join(", ")}`;
  return resultOf(errors, "invalid update", out);
}

/** Validates a rotation request: `{ "grace"?: "24h", "publicKey"?: "<PEM or JWK>" }`. */
export function parseRotateKeyInput(raw: unknown): Result<RotateKeyInput> {
  const errors = record<string>();
  const o = objectOf(raw);
  if (o === null) return NOT_AN_OBJECT;
  unknownFields(o, ROTATE_FIELDS, errors);
  let graceMs = DEFAULT_ROTATION_GRACE_MS;
  if (o.grace !== undefined) {
    // Zero grace is allowed: the old key stops at once (a leaked key).
    graceMs = o.grace === "0" || o.grace === 0 ? 0 : (parseBoundedDuration(o.grace, "grace", 1000, MAX_ROTATION_GRACE_MS, errors) ?? 0);
  }
  let publicKey: string | undefined;
  if (o.publicKey !== undefined) {
    if (typeof o.publicKey !== "string") errors.publicKey = "a PEM or JWK text";
    else publicKey = o.publicKey;
  }
  return resultOf(errors, "invalid rotation", { graceMs, publicKey });
}

const ROTATE_FIELDS: ReadonlySet<string> = new Set(["grace", "publicKey"]);
const REASON_FIELDS: ReadonlySet<string> = new Set(["reason"]);
const LIMITS_FIELDS: ReadonlySet<string> = new Set(["limits"]);

/** Validates the body of revoke, suspend and end-sessions: `{ "reason"?: string }`. */
export function parseReasonInput(raw: unknown): Result<string | null> {
  const errors = record<string>();
  const o = objectOf(raw);
  if (o === null) return NOT_AN_OBJECT;
  unknownFields(o, REASON_FIELDS, errors);
  const reason = o.reason;
  if (reason !== undefined && reason !== null && (typeof reason !== "string" || reason.length > 500)) errors.reason = "a string of at most 500 characters";
  return resultOf(errors, "invalid request", typeof reason === "string" ? reason : null);
}

/** Validates the body of `PUT /keys/:id/limits`: `{ "limits": { "<limit name>": <n> } }`. */
export function parseLimitsInput(raw: unknown): Result<Record<string, number>> {
  const errors = record<string>();
  const o = objectOf(raw);
  if (o === null) return NOT_AN_OBJECT;
  unknownFields(o, LIMITS_FIELDS, errors);
  const limits = parseLimitOverrides(o.limits);
  if (!limits.ok) Object.assign(errors, limits.fields);
  return resultOf(errors, "invalid limits", limits.ok ? limits.value : record<number>());
}
