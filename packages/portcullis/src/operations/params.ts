import { type JsonObject, isJsonObject, parseJson } from "../contract/json.js";
import { type Denial, deny } from "../errors/catalogue.js";
import type { Lookup } from "./fields.js";
import type { MessageParams } from "../contract/request.js";

/**
 * A request's parameters as an operation decoder reads them: form-encoded text (a query string, a
 * form body) or a JSON object body. Strict where the gateway and the upstream could read one
 * request two ways: a parameter (or JSON member, at any depth) sent twice is refused, whatever the
 * venue would have kept (the first, the last, the query's), so no reading differs.
 */

const PERCENT = 0x25;
const PLUS = 0x2b;

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

/**
 * application/x-www-form-urlencoded decoding (the Binance dialect's reading of its parameter
 * names, and every decoder's reading of form parameters) of text[start, end) (WHATWG URL: `+` is a space,
 * `%XX` a byte, a `%` not followed by two hex digits stays as it is, bytes are UTF-8).
 */
export function formDecode(text: string, start = 0, end = text.length): string {
  const bytes = Buffer.allocUnsafe(end - start);
  let n = 0;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === PLUS) {
      bytes[n++] = 0x20;
      continue;
    }
    if (c === PERCENT && i + 2 < end) {
      const hi = hexValue(text.charCodeAt(i + 1));
      const lo = hexValue(text.charCodeAt(i + 2));
      if (hi >= 0 && lo >= 0) {
        bytes[n++] = hi * 16 + lo;
        i += 2;
        continue;
      }
    }
    bytes[n++] = c & 0xff;
  }
  return bytes.toString("utf8", 0, n);
}

/** Decodes a form-encoded name or value, text[start, end) (formDecode, the venues' form reading). */
export type FormDecoder = (text: string, start: number, end: number) => string;

/** Limits what one request may make a decoder allocate. */
export const MAX_PARAMS = 256;

/**
 * Adds the pairs of `text` (a=1&b=2, as latin1 text: one character per byte) to `into`, names and
 * values decoded with `decode`. A denial for a name already there (OPERATION_PARAM_DUPLICATED) or
 * too many parameters.
 */
export function collectForm(text: string, decode: FormDecoder, into: Map<string, string>): Denial | undefined {
  const length = text.length;
  let start = 0;
  while (start < length) {
    let end = text.indexOf("&", start);
    if (end < 0) end = length;
    if (end > start) {
      let eq = text.indexOf("=", start);
      if (eq < 0 || eq > end) eq = end;
      const name = decode(text, start, eq);
      const value = eq < end ? decode(text, eq + 1, end) : "";
      if (into.has(name)) return deny("OPERATION_PARAM_DUPLICATED", `${name} is sent more than once`);
      if (into.size >= MAX_PARAMS) return deny("OPERATION_MALFORMED", `more than ${MAX_PARAMS} parameters`);
      into.set(name, value);
    }
    start = end + 1;
  }
  return undefined;
}

/** Both the query string (when there is one) and the body's form parameters, duplicates refused across the two. */
export function formParams(query: string | null, body: string | null, decode: FormDecoder = formDecode): Map<string, string> | Denial {
  const params = new Map<string, string>();
  if (query !== null) {
    const denial = collectForm(query, decode, params);
    if (denial !== undefined) return denial;
  }
  if (body !== null) {
    const denial = collectForm(body, decode, params);
    if (denial !== undefined) return denial;
  }
  return params;
}

/** A lookup over a map of form parameters. */
export function formLookup(params: ReadonlyMap<string, string>): Lookup {
  return (name) => params.get(name);
}

/** A lookup over a JSON object's own members. */
export function jsonLookup(object: JsonObject): Lookup {
  return (name) => (Object.hasOwn(object, name) ? object[name] : undefined);
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Is this Content-Type JSON (application/json, any parameters)? */
export function isJsonType(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  if (contentType === "application/json") return true;
  const semi = contentType.indexOf(";");
  return (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase() === "application/json";
}

/**
 * The body as one JSON object: UTF-8, valid JSON, an object at the top, no member name twice in
 * any object. Objects have no prototype (contract/json.ts), so `__proto__` is an ordinary member.
 * Wrapped (`{ object }`), so never mistaken for a denial whatever members were sent.
 */
export function parseJsonBody(body: Buffer): { readonly object: JsonObject } | Denial {
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    return deny("OPERATION_MALFORMED", "the body is not UTF-8");
  }
  let parsed: unknown;
  try {
    parsed = parseJson(text);
  } catch {
    return deny("OPERATION_MALFORMED", "the body is not valid JSON");
  }
  if (!isJsonObject(parsed)) return deny("OPERATION_MALFORMED", "the body is not a JSON object");
  const duplicate = duplicateMember(text);
  if (duplicate !== null) return deny("OPERATION_PARAM_DUPLICATED", `${duplicate} is sent more than once`);
  return { object: parsed };
}

/** The body's JSON object as a lookup of its members (a function: never mistaken for a denial). */
export function readJsonObject(body: Buffer): Lookup | Denial {
  const parsed = parseJsonBody(body);
  return "object" in parsed ? jsonLookup(parsed.object) : parsed;
}

/**
 * The query string's parameters and a JSON object body's members together (a venue that reads
 * both, as Binance-compatible upstreams do): a name in both is refused as a duplicate.
 */
export function queryAndJson(query: string | null, body: Buffer, decode: FormDecoder = formDecode): Lookup | Denial {
  const form = formParams(query, null, decode);
  if (!(form instanceof Map)) return form;
  const parsed = parseJsonBody(body);
  if (!("object" in parsed)) return parsed;
  const object = parsed.object;
  for (const name of form.keys()) {
    if (Object.hasOwn(object, name)) return deny("OPERATION_PARAM_DUPLICATED", `${name} is sent more than once`);
  }
  return (name) => form.get(name) ?? (Object.hasOwn(object, name) ? object[name] : undefined);
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * The first member name that appears twice in one object of `text` (already known to be valid
 * JSON), compared after unescaping ("a" and "\u0061" are one name); null when there is none.
 */
export function duplicateMember(text: string): string | null {
  // One entry per open container: the names seen so far for an object, null for an array.
  const open: (Set<string> | null)[] = [];
  const length = text.length;
  for (let i = 0; i < length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x7b /* { */) open.push(new Set());
    else if (c === 0x5b /* [ */) open.push(null);
    else if (c === 0x7d /* } */ || c === 0x5d /* ] */) open.pop();
    else if (c === QUOTE) {
      let j = i + 1;
      let escaped = false;
      for (; j < length; j++) {
        const d = text.charCodeAt(j);
        if (d === BACKSLASH) {
          escaped = true;
          j++;
        } else if (d === QUOTE) {
          break;
        }
      }
      const names = open[open.length - 1];
      if (names !== undefined && names !== null) {
        let k = j + 1;
        while (k < length && (text.charCodeAt(k) === 0x20 || text.charCodeAt(k) === 0x09 || text.charCodeAt(k) === 0x0a || text.charCodeAt(k) === 0x0d)) k++;
        if (text.charCodeAt(k) === 0x3a /* : */) {
          const name = escaped ? (JSON.parse(text.slice(i, j + 1)) as string) : text.slice(i + 1, j);
          if (names.has(name)) return name;
          names.add(name);
        }
      }
      i = j;
    }
  }
  return null;
}

/** The parameters of a venue whose requests carry a JSON object body (OKX, Bybit, Coinbase). */
export function jsonBodyParams(body: Buffer, contentType: string | undefined): Lookup | Denial {
  if (body.length === 0) return deny("OPERATION_MALFORMED", "the operation is read from a JSON body, and there is none");
  if (!isJsonType(contentType)) return deny("OPERATION_MALFORMED", "the body must be application/json");
  return readJsonObject(body);
}

/**
 * A lookup over a WebSocket message's params (already checked to be strings, finite numbers and
 * booleans, in a null-prototype record). A number reads as its shortest decimal form, which is
 * what the gateway forwards (the message is re-serialised), so the upstream reads the same value;
 * a form such as 1e21 is then no plain decimal and is refused as one.
 */
export function messageLookup(params: MessageParams): Lookup {
  return (name) => {
    if (!Object.hasOwn(params, name)) return undefined;
    const value = params[name];
    return typeof value === "number" ? String(value) : value;
  };
}
