/**
 * An agent's public key as the wallet messages name it, and signatures over a message's EIP-712
 * digest by such a key (a delegation, or a revocation by an agent above the revoked one):
 *
 * - `ed25519:<base64url of the 32-byte key>`: Ed25519 over the 32 digest bytes (WebCrypto), 64 bytes;
 * - `secp256k1:0x<33-byte compressed point>`: ECDSA over the digest, 65 bytes r‖s‖v, as Ethereum
 *   signs a hash (viem's `sign`); checked by recovering the public key (viem's `recoverPublicKey`).
 *
 * Signatures travel as `0x` hex.
 */
import { bytesToHex, hexToBytes, isHex, recoverPublicKey } from "viem/utils";
import type { Hex } from "viem";
import { privateKeyToAccount, sign } from "viem/accounts";
import { base64ToBytes, bytesToBase64Url, copyBytes } from "../encoding.js";

export type AgentKeyAlgorithm = "ed25519" | "secp256k1";

export interface AgentPublicKey {
  readonly algorithm: AgentKeyAlgorithm;
  /** Ed25519: the 32 raw bytes; secp256k1: the 33-byte compressed point. */
  readonly bytes: Uint8Array;
  /** The text form, canonical (what `formatAgentKey` writes). */
  readonly text: string;
}

const ED25519_RE = /^ed25519:([A-Za-z0-9_-]{43})$/;
const SECP256K1_RE = /^secp256k1:(0x0[23][0-9a-f]{64})$/;

function base64UrlToBytes(text: string): Uint8Array<ArrayBuffer> {
  const std = text.replace(/-/g, "+").replace(/_/g, "/");
  return base64ToBytes(std + "=".repeat((4 - (std.length % 4)) % 4));
}

/** Reads an agent key's text; null when it is not one (secp256k1 hex in lower case). */
export function parseAgentKey(text: string): AgentPublicKey | null {
  const ed = ED25519_RE.exec(text);
  if (ed !== null) {
    const bytes = base64UrlToBytes(ed[1] ?? "");
    // A last character with stray low bits decodes to the same bytes: only the canonical text is accepted.
    if (bytes.length !== 32 || `ed25519:${bytesToBase64Url(bytes)}` !== text) return null;
    return { algorithm: "ed25519", bytes, text };
  }
  const k1 = SECP256K1_RE.exec(text);
  if (k1 !== null) return { algorithm: "secp256k1", bytes: hexToBytes(k1[1] as Hex), text };
  return null;
}

/** The text form of a raw public key. */
export function formatAgentKey(algorithm: AgentKeyAlgorithm, bytes: Uint8Array): string {
  if (algorithm === "ed25519") {
    if (bytes.length !== 32) throw new TypeError("an Ed25519 public key is 32 bytes");
    return `ed25519:${bytesToBase64Url(bytes)}`;
  }
  if (bytes.length !== 33 || (bytes[0] !== 2 && bytes[0] !== 3)) throw new TypeError("a secp256k1 agent key is a 33-byte compressed point");
  return `secp256k1:${bytesToHex(bytes)}`;
}

/** The compressed form of an uncompressed secp256k1 point (0x04‖x‖y): the parity of y picks 02 or 03. */
export function compressSecp256k1(uncompressed: Uint8Array): Uint8Array {
  if (uncompressed.length !== 65 || uncompressed[0] !== 4) throw new TypeError("not an uncompressed secp256k1 point");
  const out = new Uint8Array(33);
  out[0] = ((uncompressed[64] ?? 0) & 1) === 0 ? 2 : 3;
  out.set(uncompressed.subarray(1, 33), 1);
  return out;
}

/** The agent key text of a secp256k1 private key (`0x` + 32 bytes hex). */
export function secp256k1AgentKey(privateKey: Hex): string {
  return formatAgentKey("secp256k1", compressSecp256k1(hexToBytes(privateKeyToAccount(privateKey).publicKey)));
}

/** The agent key text of an Ed25519 public CryptoKey (or key pair). */
export async function ed25519AgentKey(publicKey: CryptoKey): Promise<string> {
  return formatAgentKey("ed25519", new Uint8Array(await globalThis.crypto.subtle.exportKey("raw", publicKey)));
}

/** A key that signs wallet messages' digests as an agent: an Ed25519 CryptoKey, or a secp256k1 private key in hex. */
export type AgentSigningKey = { readonly algorithm: "ed25519"; readonly privateKey: CryptoKey } | { readonly algorithm: "secp256k1"; readonly privateKey: Hex };

/** Signs a 32-byte EIP-712 digest with an agent's key. */
export async function signDigest(key: AgentSigningKey, digest: Hex): Promise<Hex> {
  if (key.algorithm === "ed25519") {
    const signature = await globalThis.crypto.subtle.sign("Ed25519", key.privateKey, copyBytes(hexToBytes(digest)));
    return bytesToHex(new Uint8Array(signature));
  }
  return sign({ hash: digest, privateKey: key.privateKey, to: "hex" });
}

/**
 * Does `signature` sign `digest` under the agent key? False for anything malformed: a wrong
 * length, a non-hex string, a point that is not on the curve.
 */
export async function verifyDigest(key: AgentPublicKey, digest: Hex, signature: string): Promise<boolean> {
  if (!isHex(signature, { strict: true })) return false;
  const sig = hexToBytes(signature);
  try {
    if (key.algorithm === "ed25519") {
      if (sig.length !== 64) return false;
      const publicKey = await globalThis.crypto.subtle.importKey("raw", copyBytes(key.bytes), { name: "Ed25519" }, false, ["verify"]);
      return await globalThis.crypto.subtle.verify("Ed25519", publicKey, copyBytes(sig), copyBytes(hexToBytes(digest)));
    }
    if (sig.length !== 65) return false;
    const recovered = hexToBytes(await recoverPublicKey({ hash: digest, signature }));
    const compressed = compressSecp256k1(recovered);
    if (compressed.length !== key.bytes.length) return false;
    let diff = 0;
    for (let i = 0; i < compressed.length; i++) diff |= (compressed[i] ?? 0) ^ (key.bytes[i] ?? 0);
    return diff === 0;
  } catch {
    return false;
  }
}
