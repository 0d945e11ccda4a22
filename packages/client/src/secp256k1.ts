/**
 * secp256k1 keys, as Ethereum wallets and agents hold them: the private key is 32 bytes of hex
 * (`0x…`, the form viem takes). A request is signed `ecdsa-secp256k1-sha256`: ECDSA over the
 * SHA-256 of the signature base (WebCrypto's digest), by viem's `sign` (RFC 6979 nonces, low s),
 * and sent as r || s, 64 bytes, as `ecdsa-p256-sha256` is. Nothing here is written by hand: the
 * curve is viem's, the hash WebCrypto's; this module only moves bytes between them.
 *
 * viem is imported when first needed, so a bundle that never uses a secp256k1 key does not load it.
 */
import { sha256 } from "./algorithms.js";
import { byteStringToBytes } from "./encoding.js";
import { toPem } from "./keys.js";

/** A secp256k1 private key: `0x` and 64 hex digits. */
export type Secp256k1PrivateKey = `0x${string}`;

/** A secp256k1 public key in every form the gateway and the wallet protocol use. */
export interface Secp256k1PublicKey {
  /** SEC 1 compressed point: `0x02…` or `0x03…` (33 bytes). */
  readonly compressed: `0x${string}`;
  /** SEC 1 uncompressed point: `0x04…` (65 bytes). */
  readonly uncompressed: `0x${string}`;
  /** SubjectPublicKeyInfo PEM: what `keys create --algorithm secp256k1` stores (the hex forms are accepted too). */
  readonly publicKeyPem: string;
  /** The agent key text of the wallet protocol: `secp256k1:0x…` (compressed). */
  readonly agentKey: `secp256k1:0x${string}`;
}

export interface GeneratedSecp256k1Key extends Secp256k1PublicKey {
  /** Keep it secret. */
  readonly privateKey: Secp256k1PrivateKey;
}

const PRIVATE_KEY_RE = /^0x[0-9a-fA-F]{64}$/;
const HEX = "0123456789abcdef";

/** Throws TypeError unless `key` is `0x` and 64 hex digits. */
export function checkSecp256k1PrivateKey(key: unknown): asserts key is Secp256k1PrivateKey {
  if (typeof key !== "string" || !PRIVATE_KEY_RE.test(key)) {
    throw new TypeError("a secp256k1 privateKey must be 0x and 64 hex digits (32 bytes), as viem and Ethereum wallets write it");
  }
}

function toHex(bytes: Uint8Array): `0x${string}` {
  let out = "0x";
  for (const b of bytes) out += (HEX[b >> 4] ?? "") + (HEX[b & 15] ?? "");
  return out as `0x${string}`;
}

function fromHex(hex: string): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array((hex.length - 2) / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 + 2 * i, 4 + 2 * i), 16);
  return out;
}

/**
 * Signs a signature base (a byte string, one character per byte) with a secp256k1 private key:
 * r || s, 64 bytes, s in the lower half of the group order (viem's `sign` gives low s).
 */
export async function signSecp256k1(privateKey: Secp256k1PrivateKey, base: string): Promise<Uint8Array> {
  checkSecp256k1PrivateKey(privateKey);
  const digest = await sha256(byteStringToBytes(base));
  const { sign } = await import("viem/accounts");
  let signature: Uint8Array;
  try {
    signature = await sign({ hash: toHex(digest), privateKey, to: "bytes" });
  } catch (err) {
    // 0, or not below the group order: not a private key.
    throw new TypeError("the privateKey is not a valid secp256k1 private key", { cause: err });
  }
  // viem answers r || s || v (65 bytes); v is for recovery, which a request signature does not use.
  return signature.slice(0, 64);
}

/** The DER prefix of a secp256k1 SubjectPublicKeyInfo (id-ecPublicKey, secp256k1, a 65-byte BIT STRING). */
const SPKI_PREFIX = fromHex("0x3056301006072a8648ce3d020106052b8104000a034200");

function publicKeyForms(uncompressed: `0x${string}`): Secp256k1PublicKey {
  const point = fromHex(uncompressed);
  // SEC 1 section 2.3.3: the compressed form is x, prefixed 02 when y is even and 03 when odd.
  const yOdd = ((point[64] ?? 0) & 1) === 1;
  const compressed = `0x${yOdd ? "03" : "02"}${uncompressed.slice(4, 68)}` as `0x${string}`;
  const der = new Uint8Array(SPKI_PREFIX.length + point.length);
  der.set(SPKI_PREFIX, 0);
  der.set(point, SPKI_PREFIX.length);
  return { compressed, uncompressed, publicKeyPem: toPem("PUBLIC KEY", der), agentKey: `secp256k1:${compressed}` };
}

/** The public key of a secp256k1 private key: compressed, uncompressed, SPKI PEM and the agent key text. */
export async function secp256k1PublicKey(privateKey: Secp256k1PrivateKey): Promise<Secp256k1PublicKey> {
  checkSecp256k1PrivateKey(privateKey);
  const { privateKeyToAccount } = await import("viem/accounts");
  let uncompressed: `0x${string}`;
  try {
    uncompressed = privateKeyToAccount(privateKey).publicKey;
  } catch (err) {
    throw new TypeError("the privateKey is not a valid secp256k1 private key", { cause: err });
  }
  return publicKeyForms(uncompressed);
}

/** A new secp256k1 key from the platform CSPRNG (viem's `generatePrivateKey`), with its public forms. */
export async function generateSecp256k1Key(): Promise<GeneratedSecp256k1Key> {
  const { generatePrivateKey } = await import("viem/accounts");
  const privateKey = generatePrivateKey();
  return { privateKey, ...(await secp256k1PublicKey(privateKey)) };
}
