import { createHash, createPublicKey, hash, verify, type KeyObject } from "node:crypto";
import { canonicalJson } from "./canonical.js";

/**
 * The hash chain and what is signed over it.
 *
 *   hash(0)   = "0" × 64 (the genesis)
 *   hash(n)   = lower-case hex of SHA-256( UTF-8( hash(n-1) || entry text n ) )
 *
 * Hashes are 64 lower-case hex digits everywhere (stored, signed, exported), so the chain is
 * recomputed with one string concatenation and one one-shot digest per entry. A checkpoint signs
 * (Ed25519, the gateway's audit-checkpoint key) the canonical JSON
 * `{"at","hash","kid","seq","type":"portcullis.audit.checkpoint","v":1}`:
 * whoever holds the public key can check that the log had exactly this history up to `seq` when
 * it was signed. A segment seal signs the same kind of object for an archived range.
 */
export const GENESIS = "0".repeat(64);

export function chainHash(prev: string, entryText: string): string {
  return hash("sha256", prev + entryText, "hex");
}

export interface CheckpointFacts {
  readonly seq: number;
  /** The hash of entry `seq`. */
  readonly hash: string;
  /** When it was signed, epoch ms. */
  readonly at: number;
  readonly kid: string;
}

export interface SignedCheckpoint extends CheckpointFacts {
  /** Ed25519, 64 bytes. */
  readonly signature: Buffer;
}

/** The bytes a checkpoint's signature covers. */
export function checkpointMessage(c: CheckpointFacts): Buffer {
  return Buffer.from(canonicalJson({ at: c.at, hash: c.hash, kid: c.kid, seq: c.seq, type: "portcullis.audit.checkpoint", v: 1 }), "utf8");
}

export interface SealFacts {
  readonly first: number;
  readonly last: number;
  /** The hash before `first` (the previous segment's last, or the genesis). */
  readonly prev: string;
  /** The hash of entry `last`. */
  readonly hash: string;
  readonly at: number;
  readonly kid: string;
}

/** The bytes a segment seal's signature covers. */
export function sealMessage(s: SealFacts): Buffer {
  return Buffer.from(
    canonicalJson({
      at: s.at,
      first: s.first,
      hash: s.hash,
      kid: s.kid,
      last: s.last,
      prev: s.prev,
      type: "portcullis.audit.segment",
      v: 1,
    }),
    "utf8",
  );
}

/** Ed25519 verification that never throws (a malformed signature is just invalid). */
export function verifySignature(message: Buffer, signature: Buffer, publicKey: KeyObject): boolean {
  try {
    return signature.length === 64 && verify(null, message, publicKey, signature);
  } catch {
    return false;
  }
}

/** "SHA256:<base64 of the SPKI DER digest>", as ssh-keygen prints fingerprints. */
export function fingerprint(publicKey: KeyObject): string {
  const der = publicKey.export({ type: "spki", format: "der" });
  return `SHA256:${createHash("sha256").update(der).digest("base64").replace(/=+$/, "")}`;
}

/** An Ed25519 public key from PEM (SPKI), or null. */
export function parseEd25519PublicKey(pem: string): KeyObject | null {
  try {
    const key = createPublicKey(pem);
    return key.asymmetricKeyType === "ed25519" ? key : null;
  } catch {
    return null;
  }
}

/** Whether `s` is a hash as the chain writes them: 64 lower-case hex digits. */
export function isHash(s: unknown): s is string {
  return typeof s === "string" && /^[0-9a-f]{64}$/.test(s);
}
