import type { AuditEntry, AuditFields } from "./events.js";

/**
 * The canonical encoding of audit entries: JSON with object members sorted by key (UTF-16 code
 * units, as RFC 8785 orders them), no whitespace, numbers and strings as ECMAScript's
 * JSON.stringify writes them. The hash chain covers these exact bytes (UTF-8), so one entry has
 * exactly one encoding and anyone can recompute it.
 *
 * Everything that goes into an entry passes through here, so this is also where entries are kept
 * bounded and free of secrets: strings are cut at MAX_STRING characters, `detail` members with a
 * credential-like name are replaced by "[redacted]", and nesting stops at MAX_DEPTH.
 */

export const MAX_STRING = 512;
const MAX_DEPTH = 8;
const MAX_MEMBERS = 64;
export const REDACTED = "[redacted]";

/** Member names whose values are never recorded, at any depth of `detail`. */
const SENSITIVE = /secret|token|signature|passphrase|password|private|credential|authorization|cookie|envelope/i;

/** A string as entries hold it: at most MAX_STRING characters, then "…". */
export function bounded(s: string): string {
  return s.length > MAX_STRING ? `${s.slice(0, MAX_STRING)}…` : s;
}

/** Characters JSON.stringify writes as they are (no quote, backslash, control or surrogate). */
// eslint-disable-next-line no-control-regex -- the control characters are exactly what it excludes
const PLAIN = /^[^"\\\u0000-\u001f\ud800-\udfff]*$/;

/** JSON.stringify of the bounded string, without its cost for the usual plain strings. */
export function quote(s: string): string {
  const b = bounded(s);
  return PLAIN.test(b) ? `"${b}"` : JSON.stringify(b);
}

const text = quote;

function number(n: number): string {
  return Number.isFinite(n) ? JSON.stringify(n) : "null";
}

/**
 * Canonical JSON of any value, with JSON.stringify's rules for what it cannot represent
 * (undefined, functions and symbols are left out of objects and become null in arrays; a
 * non-finite number is null), bigints as decimal strings, and the bounds above.
 */
export function canonicalJson(value: unknown, redact = false): string {
  return encode(value, redact, 0) ?? "null";
}

function encode(value: unknown, redact: boolean, depth: number): string | undefined {
  switch (typeof value) {
    case "string":
      return text(value);
    case "number":
      return number(value);
    case "boolean":
      return value ? "true" : "false";
    case "bigint":
      return text(value.toString());
    case "undefined":
    case "function":
    case "symbol":
      return undefined;
    case "object":
      break;
  }
  if (value === null) return "null";
  if (depth >= MAX_DEPTH) return text("[too deep]");
  const maybe = value as { toJSON?: unknown };
  if (typeof maybe.toJSON === "function") return encode((maybe.toJSON as () => unknown).call(value), redact, depth);
  if (Array.isArray(value)) {
    const items = (value as unknown[]).slice(0, MAX_MEMBERS).map((v) => encode(v, redact, depth + 1) ?? "null");
    return `[${items.join(",")}]`;
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record).sort().slice(0, MAX_MEMBERS);
  const members: string[] = [];
  for (const k of keys) {
    const v = redact && SENSITIVE.test(k) ? text(REDACTED) : encode(record[k], redact, depth + 1);
    if (v !== undefined) members.push(`${text(k)}:${v}`);
  }
  return `{${members.join(",")}}`;
}

/**
 * The canonical text of the entry at `seq` with these facts. Written out member by member in
 * sorted order (it runs for every request decision at commit time); equal, by construction and by
 * a property test, to `canonicalJson` of the same object.
 */
export function encodeEntry(seq: number, f: AuditFields): string {
  let out = "{";
  if (f.account !== undefined) out += `"account":${text(f.account)},`;
  out += `"actor":${text(f.actor)},"at":${number(f.at)},`;
  if (f.client !== undefined) out += `"client":${text(f.client)},`;
  if (f.code !== undefined) out += `"code":${text(f.code)},`;
  if (f.detail !== undefined) out += `"detail":${canonicalJson(f.detail, true)},`;
  out += `"event":${text(f.event)},`;
  if (f.key !== undefined) out += `"key":${text(f.key)},`;
  if (f.method !== undefined) out += `"method":${text(f.method)},`;
  if (f.path !== undefined) out += `"path":${text(f.path)},`;
  if (f.requestId !== undefined) out += `"requestId":${text(f.requestId)},`;
  if (f.route !== undefined) out += `"route":${text(f.route)},`;
  if (f.scheme !== undefined) out += `"scheme":${text(f.scheme)},`;
  out += `"seq":${number(seq)},`;
  if (f.status !== undefined) out += `"status":${number(f.status)},`;
  if (f.subAccount !== undefined) out += `"subAccount":${text(f.subAccount)},`;
  if (f.surface !== undefined) out += `"surface":${text(f.surface)},`;
  if (f.timings !== undefined) out += `"timings":${canonicalJson(f.timings)},`;
  return `${out}"v":1}`;
}

const STRING_FIELDS = ["account", "client", "surface", "requestId", "method", "path", "route", "scheme", "code", "key", "subAccount"] as const;

/**
 * Reads an entry's text back: the facts, or null when it is not an entry of a known version (not
 * JSON, not an object, or missing what every entry has). Used by verification, queries and spill
 * replay; never trusts more than it checks.
 */
export function decodeEntry(entryText: string): AuditEntry | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(entryText);
  } catch {
    return null;
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return null;
  const o = parsed as Record<string, unknown>;
  if (o.v !== 1 || !Number.isSafeInteger(o.seq) || !Number.isSafeInteger(o.at)) return null;
  if (typeof o.event !== "string" || typeof o.actor !== "string") return null;
  for (const name of STRING_FIELDS) if (o[name] !== undefined && typeof o[name] !== "string") return null;
  if (o.status !== undefined && !Number.isSafeInteger(o.status)) return null;
  for (const name of ["detail", "timings"] as const) {
    const v = o[name];
    if (v !== undefined && (v === null || typeof v !== "object" || Array.isArray(v))) return null;
  }
  return o as unknown as AuditEntry;
}

/** The facts of an entry without its chain position (what a spill file holds). */
export function fieldsOf(entry: AuditEntry): AuditFields {
  const { v: _v, seq: _seq, ...fields } = entry;
  return fields;
}
