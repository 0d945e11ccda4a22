/**
 * Byte helpers that work the same in browsers and Node: UTF-8, latin1 byte strings and base64,
 * built on TextEncoder and btoa/atob only.
 */

const utf8Encoder = new TextEncoder();

/** UTF-8 bytes of a string (lone surrogates become U+FFFD, exactly as fetch encodes a body). */
export function utf8(text: string): Uint8Array<ArrayBuffer> {
  return utf8Encoder.encode(text);
}

/**
 * The bytes of a byte string: one character per byte. A character above U+00FF has no byte, so
 * it is a TypeError rather than a silent re-encoding (HTTP field values are bytes, and the gateway
 * reads the signature base back the same way).
 */
export function byteStringToBytes(text: string): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0xff) throw new TypeError(`character U+${c.toString(16).toUpperCase().padStart(4, "0")} cannot be sent in an HTTP message`);
    out[i] = c;
  }
  return out;
}

/** A private copy of some bytes, backed by a plain ArrayBuffer (what WebCrypto and fetch take). */
export function copyBytes(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(bytes.byteLength);
  out.set(bytes);
  return out;
}

const CHUNK = 0x8000;

/** Standard base64 with padding (RFC 4648 section 4). */
export function bytesToBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += CHUNK) {
    binary += String.fromCharCode(...bytes.subarray(i, i + CHUNK));
  }
  return btoa(binary);
}

/** base64url without padding (RFC 4648 section 5). */
export function bytesToBase64Url(bytes: Uint8Array): string {
  return bytesToBase64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Decodes standard base64 (padding optional). Throws TypeError on anything else. */
export function base64ToBytes(text: string): Uint8Array<ArrayBuffer> {
  if (!BASE64.test(text) || text.length % 4 === 1) throw new TypeError("invalid base64");
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

/** `length` bytes from the platform CSPRNG. */
export function randomBytes(length: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(length);
  globalThis.crypto.getRandomValues(out);
  return out;
}
