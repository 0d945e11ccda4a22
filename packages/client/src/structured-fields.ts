/**
 * The few Structured Field Values (RFC 8941 section 4.1) serializers the signature headers need.
 * Each one refuses a value the RFC cannot represent with a TypeError, instead of producing a
 * header the gateway would have to reject.
 */
import { bytesToBase64 } from "./encoding.js";

const KEY = /^[a-z*][a-z0-9_\-.*]*$/;
const MAX_INTEGER = 999_999_999_999_999;

/** An sf-key: dictionary keys (signature labels) and parameter names. */
export function serializeKey(key: string): string {
  if (!KEY.test(key)) throw new TypeError(`${JSON.stringify(key)} is not a structured field key (lower-case letters, digits, _ - . *)`);
  return key;
}

/** An sf-string: printable ASCII only, with `"` and `\` escaped. */
export function serializeString(value: string): string {
  let out = '"';
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) {
      throw new TypeError(`${JSON.stringify(value)} is not a structured field string (printable ASCII only)`);
    }
    if (c === 0x22 || c === 0x5c) out += "\\";
    out += value.charAt(i);
  }
  return out + '"';
}

/** An sf-integer: at most 15 digits. */
export function serializeInteger(value: number): string {
  if (!Number.isInteger(value) || Math.abs(value) > MAX_INTEGER) {
    throw new TypeError(`${String(value)} is not a structured field integer`);
  }
  return String(value);
}

/** An sf-binary: base64 between colons. */
export function serializeByteSequence(bytes: Uint8Array): string {
  return `:${bytesToBase64(bytes)}:`;
}
