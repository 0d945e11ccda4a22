/**
 * Agent key ids, derived rather than drawn: a bot knows its agent's key id as soon as the
 * approval is signed, and a nonce is single use by construction (the same owner and nonce always
 * name the same key, so a second registration finds it taken, revoked or not).
 *
 * The id has the gateway's self-describing format (`pck_<env>_v1_<22 base62><6 base62 CRC-32>`);
 * only its body is derived: the first 128 bits of SHA-256 over a labelled, length-prefixed list of
 * the inputs.
 */
import { sha256 } from "viem/utils";
import type { Hex } from "viem";
import { utf8 } from "../encoding.js";

export type Environment = "live" | "test";

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

function base62(value: bigint, length: number): string {
  let out = "";
  let v = value;
  for (let i = 0; i < length; i++) {
    out = ALPHABET.charAt(Number(v % 62n)) + out;
    v /= 62n;
  }
  return out;
}

let crcTable: Uint32Array | null = null;

/** CRC-32 (IEEE 802.3, as zlib's `crc32`), the id's checksum: a typo detector, not a security measure. */
function crc32(text: string): number {
  if (crcTable === null) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (const byte of utf8(text)) crc = (crcTable[(crc ^ byte) & 0xff] ?? 0) ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** Length-prefixed parts, so no two lists of inputs hash alike. */
function derivedBody(parts: readonly string[]): bigint {
  const chunks = parts.map((p) => utf8(p));
  const total = chunks.reduce((n, c) => n + 4 + c.length, 0);
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    new DataView(bytes.buffer).setUint32(at, c.length);
    bytes.set(c, at + 4);
    at += 4 + c.length;
  }
  const digest: Hex = sha256(bytes);
  return BigInt(digest.slice(0, 34));
}

function keyIdWithBody(environment: Environment, body: bigint): string {
  const head = `pck_${environment}_v1_${base62(body, 22)}`;
  return head + base62(BigInt(crc32(head)), 6);
}

/** The key id of the agent an owner approves: from the chain, the owner's address (any case) and the approval's nonce. */
export function agentKeyId(environment: Environment, chainId: number, owner: string, nonce: string): string {
  return keyIdWithBody(environment, derivedBody(["portcullis-agent-v1", String(chainId), owner.toLowerCase(), nonce]));
}

/** The key id of an agent delegated from `parent` (an agent's key id) with the delegation's nonce. */
export function delegatedKeyId(environment: Environment, parent: string, nonce: string): string {
  return keyIdWithBody(environment, derivedBody(["portcullis-delegate-v1", parent, nonce]));
}

/** The environment an id names, or null when it is not an API key id of this format. */
export function keyIdEnvironment(id: string): Environment | null {
  const m = /^pck_(live|test)_v1_[0-9A-Za-z]{28}$/.exec(id);
  if (m === null) return null;
  const head = id.slice(0, 34);
  if (base62(BigInt(crc32(head)), 6) !== id.slice(34)) return null;
  return m[1] === "live" ? "live" : "test";
}
