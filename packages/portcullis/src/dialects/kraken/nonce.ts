import { type Denial, deny } from "../../errors/catalogue.js";

/**
 * Finding Kraken's `nonce` in a request body, strictly. Kraken puts the nonce in the POST data:
 * form-encoded (`nonce=1616492376594&…`, the documented default) or a JSON object
 * (`{"nonce": "1616492376594", …}` or a JSON number), and signs `nonce + POST data`. The nonce
 * must be an unsigned 64-bit integer written in decimal digits; anything else — missing, empty,
 * signed, fractional, exponent, percent-encoded, above 2^64 - 1, or sent twice — is refused.
 *
 * The form parser works on the body bytes without decoding them (the common case allocates one
 * short string, the nonce's digits); the JSON path is validated by JSON.parse first, then scanned
 * for the top-level `nonce` member so that its exact text survives (a JSON number above 2^53
 * would lose precision through JSON.parse).
 */
export interface FoundNonce {
  /** The nonce exactly as the client wrote it (decimal digits): what it hashed. */
  readonly text: string;
  readonly value: bigint;
}

const FORM = "application/x-www-form-urlencoded";
const JSON_TYPE = "application/json";
const U64_MAX = 0xffff_ffff_ffff_ffffn;
/** 2^64 - 1 has 20 digits. */
const MAX_DIGITS = 20;

const AMP = 0x26;
const EQ = 0x3d;
const PERCENT = 0x25;
const PLUS = 0x2b;
// "nonce"
const N = 0x6e;
const O = 0x6f;
const C = 0x63;
const E = 0x65;

const utf8 = new TextDecoder("utf-8", { fatal: true });

export type BodyKind = "form" | "json" | null;

/** Which parser a Content-Type calls for; null when Kraken does not take it. */
export function bodyKind(contentType: string | undefined): BodyKind {
  // The exact values clients send (ccxt, Kraken's examples) need no parsing.
  if (contentType === undefined || contentType === FORM) return "form";
  if (contentType === JSON_TYPE) return "json";
  const semi = contentType.indexOf(";");
  const media = (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
  if (media === FORM) return "form";
  if (media === JSON_TYPE) return "json";
  return null;
}

/** Checks the digits and converts; a denial unless `text` is 1-20 digits within 2^64 - 1. */
function toNonce(text: string): FoundNonce | Denial {
  const length = text.length;
  if (length === 0) return deny("PARAM_INVALID", "nonce is empty");
  if (length > MAX_DIGITS) return deny("PARAM_INVALID", "nonce is longer than 20 digits");
  for (let i = 0; i < length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return deny("PARAM_INVALID", "nonce is not an unsigned integer");
  }
  const value = BigInt(text);
  if (value > U64_MAX) return deny("PARAM_INVALID", "nonce is above 2^64 - 1");
  return { text, value };
}

function isNonceName(body: Buffer, start: number, end: number): boolean {
  return (
    end - start === 5 &&
    body[start] === N &&
    body[start + 1] === O &&
    body[start + 2] === N &&
    body[start + 3] === C &&
    body[start + 4] === E
  );
}

/** Is [start, end) a percent- or plus-encoded spelling of "nonce"? (Never written by an encoder.) */
function isEncodedNonceName(body: Buffer, start: number, end: number): boolean {
  const length = end - start;
  if (length < 5 || length > 15) return false;
  let encoded = false;
  for (let i = start; i < end; i++) {
    const b = body[i];
    if (b === PERCENT || b === PLUS) encoded = true;
  }
  if (!encoded) return false;
  try {
    return decodeURIComponent(body.toString("latin1", start, end).replaceAll("+", " ")) === "nonce";
  } catch {
    return false;
  }
}

function fromForm(body: Buffer): FoundNonce | Denial {
  const length = body.length;
  let found: FoundNonce | Denial | null = null;
  let start = 0;
  while (start < length) {
    let end = body.indexOf(AMP, start);
    if (end < 0) end = length;
    let eq = body.indexOf(EQ, start);
    if (eq < 0 || eq > end) eq = end;
    if (isNonceName(body, start, eq)) {
      if (found !== null) return deny("PARAM_INVALID", "nonce sent twice");
      found = eq === end ? deny("PARAM_INVALID", "nonce has no value") : toNonce(body.toString("latin1", eq + 1, end));
    } else if (isEncodedNonceName(body, start, eq)) {
      return deny("PARAM_INVALID", "nonce name is percent-encoded");
    }
    start = end + 1;
  }
  return found ?? deny("PARAM_MISSING", "no nonce in the POST data");
}

// --- JSON ---------------------------------------------------------------------------------

function skipSpace(text: string, i: number): number {
  for (;;) {
    const c = text.charCodeAt(i);
    if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return i;
    i++;
  }
}

/** `i` is at a string's opening quote; returns the index just past its closing quote. */
function endOfString(text: string, i: number): number {
  for (let j = i + 1; j < text.length; j++) {
    const c = text.charCodeAt(j);
    if (c === 0x5c) j++;
    else if (c === 0x22) return j + 1;
  }
  return text.length;
}

/** `i` is at a value's first character; returns the index just past it (the text is valid JSON). */
function endOfValue(text: string, i: number): number {
  const first = text.charCodeAt(i);
  if (first === 0x22) return endOfString(text, i);
  if (first === 0x7b || first === 0x5b) {
    let depth = 0;
    for (let j = i; j < text.length; j++) {
      const c = text.charCodeAt(j);
      if (c === 0x22) j = endOfString(text, j) - 1;
      else if (c === 0x7b || c === 0x5b) depth++;
      else if (c === 0x7d || c === 0x5d) {
        depth--;
        if (depth === 0) return j + 1;
      }
    }
    return text.length;
  }
  let j = i;
  for (; j < text.length; j++) {
    const c = text.charCodeAt(j);
    if (c === 0x2c || c === 0x7d || c === 0x5d || c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) break;
  }
  return j;
}

function jsonString(literal: string): string {
  // Only called on a complete string literal of valid JSON.
  return JSON.parse(literal) as string;
}

function fromJson(body: Buffer): FoundNonce | Denial {
  let text: string;
  let parsed: unknown;
  try {
    text = utf8.decode(body);
    parsed = JSON.parse(text);
  } catch {
    return deny("JSON_MALFORMED", "the JSON body does not parse");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    return deny("JSON_MALFORMED", "the JSON body is not an object");
  }
  // The text is a valid JSON object: walk its top-level members.
  let found: FoundNonce | Denial | null = null;
  let i = skipSpace(text, 0) + 1;
  for (;;) {
    i = skipSpace(text, i);
    if (text.charCodeAt(i) !== 0x22) break; // "}" of an empty object
    const keyEnd = endOfString(text, i);
    const rawKey = text.slice(i, keyEnd);
    const key = rawKey.includes("\\") ? jsonString(rawKey) : rawKey.slice(1, -1);
    i = skipSpace(text, skipSpace(text, keyEnd) + 1);
    const valueEnd = endOfValue(text, i);
    if (key === "nonce") {
      if (found !== null) return deny("PARAM_INVALID", "nonce sent twice");
      const raw = text.slice(i, valueEnd);
      found = toNonce(raw.charCodeAt(0) === 0x22 ? jsonString(raw) : raw);
    }
    i = skipSpace(text, valueEnd);
    if (text.charCodeAt(i) !== 0x2c) break;
    i++;
  }
  return found ?? deny("PARAM_MISSING", "no nonce in the JSON body");
}

/** The request's nonce, or the denial that refuses it. */
export function findNonce(body: Buffer, contentType: string | undefined): FoundNonce | Denial {
  if (body.length === 0) return deny("PARAM_MISSING", "no POST data (the nonce is required)");
  const kind = bodyKind(contentType);
  if (kind === "form") return fromForm(body);
  if (kind === "json") return fromJson(body);
  return deny("VALIDATION_FAILED", "Content-Type must be application/x-www-form-urlencoded or application/json");
}
