import { randomBytes } from "node:crypto";
import { crc32 } from "node:zlib";

/**
 * Self-describing key ids: `<prefix>_<environment>_v<version>_<body><checksum>`, for example
 * `pck_live_v1_5Jx0sQ2fT9aLmB7cN1dE4gHk3Xq9Zp`.
 *
 * - prefix: says what the string is (`pck` an API key, `pcs` a session), so a leaked id is
 *   recognisable by secret scanners;
 * - environment: `live` or `test`; a gateway refuses ids of the other environment;
 * - version: the id format version;
 * - body: 128 random bits from the CSPRNG (22 base62 characters);
 * - checksum: CRC-32 of everything before it (6 base62 characters), so a mistyped or forged id is
 *   refused without touching storage.
 */
export type Environment = "live" | "test";
export type KeyIdKind = "key" | "session";

export const KEY_ID_PREFIX: Record<KeyIdKind, string> = { key: "pck", session: "pcs" };
const FORMAT_VERSION = "v1";
const BODY_LEN = 22;
const CHECK_LEN = 6;
const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const KEY_ID_RE = /^(pck|pcs)_(live|test)_v1_([0-9A-Za-z]{28})$/;

function base62(value: bigint, length: number): string {
  let out = "";
  let v = value;
  for (let i = 0; i < length; i++) {
    out = ALPHABET.charAt(Number(v % 62n)) + out;
    v /= 62n;
  }
  return out;
}

function checksum(text: string): string {
  return base62(BigInt(crc32(text)), CHECK_LEN);
}

export function generateKeyId(environment: Environment, kind: KeyIdKind = "key"): string {
  const random = BigInt(`0x${randomBytes(16).toString("hex")}`);
  const head = `${KEY_ID_PREFIX[kind]}_${environment}_${FORMAT_VERSION}_${base62(random, BODY_LEN)}`;
  return head + checksum(head);
}

export interface ParsedKeyId {
  readonly kind: KeyIdKind;
  readonly environment: Environment;
}

/** Validates format and checksum. Returns null for anything that is not a well-formed id. */
export function parseKeyId(id: string): ParsedKeyId | null {
  if (id.length !== 40) return null;
  const m = KEY_ID_RE.exec(id);
  if (m === null) return null;
  const head = id.slice(0, id.length - CHECK_LEN);
  if (checksum(head) !== id.slice(id.length - CHECK_LEN)) return null;
  return { kind: m[1] === "pcs" ? "session" : "key", environment: m[2] === "live" ? "live" : "test" };
}

/** Is this key id a session token (sessions/token.ts) rather than an API key's id? */
export function isSessionToken(id: string): boolean {
  return id.startsWith(`${KEY_ID_PREFIX.session}_`);
}
