import type { Denial } from "../../errors/catalogue.js";
import { formDecode } from "../../operations/params.js";
import { DENIALS } from "./errors.js";

export { formDecode };

/**
 * The signing parameters of a Binance REST request, read strictly from the exact text sent: the
 * raw query string and the raw form body (as latin1 text, one character per byte). Nothing is
 * re-encoded; the scan records where things are, so the signature check can hash the original
 * bytes around the `signature` parameter.
 *
 * Rules: `signature`, `timestamp` and `recvWindow` may each appear once in the query and body
 * together (a second one, even in the other part, is refused); names are compared after
 * form-decoding (so `%74imestamp` is `timestamp`, as the venue would read it); `timestamp` is
 * 1-20 digits, in milliseconds, or microseconds when it has 16 digits or more (Binance accepts
 * both); `recvWindow` is milliseconds with up to three decimals, at most 60000, default 5000.
 */

export const DEFAULT_RECV_WINDOW_MS = 5000;
export const MAX_RECV_WINDOW_MS = 60_000;

const NONE = 0;
const SIGNATURE = 1;
const TIMESTAMP = 2;
const RECV_WINDOW = 3;

const EQUALS = 0x3d;
const PERCENT = 0x25;
const PLUS = 0x2b;
const DOT = 0x2e;
const ZERO = 0x30;

/** Microsecond timestamps are at least this large (16 digits); milliseconds stay below it until year 33658. */
const MICROSECONDS_FROM = 1e15;

/** Where the text being scanned came from. */
export const QUERY = 0;
export const BODY = 1;

/** What the scan found; filled in place (the credential is the accumulator, so nothing else is allocated). */
export interface SigningParams {
  /** The signature as sent, form-decoded; "" until found. */
  signature: string;
  /** Which text holds the signature (QUERY or BODY), -1 until found. */
  signatureIn: number;
  /** The range [cutStart, cutEnd) of that text to leave out of the payload: the pair and one `&`. */
  cutStart: number;
  cutEnd: number;
  /** Epoch ms (fractional for microsecond timestamps); NaN until found. */
  timestamp: number;
  /** ms; NaN until found (then the default applies). */
  recvWindow: number;
}

/**
 * Scans `text` (form-urlencoded, latin1) for the signing parameters. Returns a denial for a
 * duplicate or malformed one; `into` is left partly filled in that case.
 */
export function scanSigningParams(text: string, source: number, into: SigningParams): Denial | undefined {
  const length = text.length;
  let start = 0;
  while (start < length) {
    let end = text.indexOf("&", start);
    if (end < 0) end = length;
    if (end > start) {
      // Find the name's end and whether it needs decoding.
      let eq = start;
      let plain = true;
      for (; eq < end; eq++) {
        const c = text.charCodeAt(eq);
        if (c === EQUALS) break;
        if (c === PERCENT || c === PLUS) plain = false;
      }
      const which = nameOf(text, start, eq, plain);
      if (which !== NONE) {
        const denial = take(text, source, which, start, eq + 1, end, into);
        if (denial !== undefined) return denial;
      }
    }
    start = end + 1;
  }
  return undefined;
}

function nameOf(text: string, start: number, eq: number, plain: boolean): number {
  const length = eq - start;
  if (plain) {
    if (length === 9) {
      if (text.startsWith("signature", start)) return SIGNATURE;
      if (text.startsWith("timestamp", start)) return TIMESTAMP;
    } else if (length === 10 && text.startsWith("recvWindow", start)) {
      return RECV_WINDOW;
    }
    return NONE;
  }
  // Rare: an encoded name. Decode it the way the venue (a form parser) would.
  const name = formDecode(text, start, eq);
  if (name === "signature") return SIGNATURE;
  if (name === "timestamp") return TIMESTAMP;
  return name === "recvWindow" ? RECV_WINDOW : NONE;
}

/** Records one signing parameter whose value is text[valueStart, end) (valueStart may be end + 1 when there is no `=`). */
function take(text: string, source: number, which: number, start: number, valueStart: number, end: number, into: SigningParams): Denial | undefined {
  const from = Math.min(valueStart, end);
  switch (which) {
    case SIGNATURE: {
      if (into.signatureIn >= 0) return DENIALS.duplicate;
      if (from === end) return DENIALS.signatureMissing;
      into.signature = needsDecoding(text, from, end) ? formDecode(text, from, end) : text.slice(from, end);
      into.signatureIn = source;
      // Leave the pair out with the `&` before it (the usual `...&signature=...` at the end), or
      // the one after it when it comes first.
      if (start > 0) {
        into.cutStart = start - 1;
        into.cutEnd = end;
      } else {
        into.cutStart = start;
        into.cutEnd = end < text.length ? end + 1 : end;
      }
      return undefined;
    }
    case TIMESTAMP: {
      if (!Number.isNaN(into.timestamp)) return DENIALS.duplicate;
      if (from === end) return DENIALS.timestampMissing;
      const value = parseTimestamp(text, from, end);
      if (value < 0) return DENIALS.timestampInvalid;
      into.timestamp = value;
      return undefined;
    }
    default: {
      if (!Number.isNaN(into.recvWindow)) return DENIALS.duplicate;
      if (from === end) return DENIALS.recvWindowEmpty;
      const value = parseRecvWindow(text, from, end);
      if (value < 0) return DENIALS.recvWindowInvalid;
      if (value > MAX_RECV_WINDOW_MS) return DENIALS.recvWindowTooLarge;
      into.recvWindow = value;
      return undefined;
    }
  }
}

/** 1-20 ASCII digits: epoch ms, or µs from 16 digits on (returned as fractional ms); -1 if malformed. */
function parseTimestamp(text: string, start: number, end: number): number {
  if (end - start > 20) return -1;
  let value = 0;
  for (let i = start; i < end; i++) {
    const digit = text.charCodeAt(i) - ZERO;
    if (digit < 0 || digit > 9) return -1;
    value = value * 10 + digit;
  }
  return value >= MICROSECONDS_FROM ? value / 1000 : value;
}

/** 1-20 digits, optionally `.` and 1-3 digits; -1 if malformed. */
function parseRecvWindow(text: string, start: number, end: number): number {
  let value = 0;
  let i = start;
  for (; i < end; i++) {
    const digit = text.charCodeAt(i) - ZERO;
    if (digit < 0 || digit > 9) break;
    value = value * 10 + digit;
  }
  const integerDigits = i - start;
  if (integerDigits === 0 || integerDigits > 20) return -1;
  if (i === end) return value;
  if (text.charCodeAt(i) !== DOT) return -1;
  const decimals = end - i - 1;
  if (decimals < 1 || decimals > 3) return -1;
  let fraction = 0;
  for (i++; i < end; i++) {
    const digit = text.charCodeAt(i) - ZERO;
    if (digit < 0 || digit > 9) return -1;
    fraction = fraction * 10 + digit;
  }
  return value + fraction / 10 ** decimals;
}

function needsDecoding(text: string, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === PERCENT || c === PLUS) return true;
  }
  return false;
}

/** Is this Content-Type one whose body carries form parameters (or absent, which Binance reads as a form)? */
export function isFormBody(contentType: string | undefined): boolean {
  if (contentType === undefined) return true;
  const semicolon = contentType.indexOf(";");
  const mediaType = (semicolon < 0 ? contentType : contentType.slice(0, semicolon)).trim();
  return mediaType.length === 33 && mediaType.toLowerCase() === "application/x-www-form-urlencoded";
}
