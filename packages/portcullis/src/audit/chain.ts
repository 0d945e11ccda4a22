import { createHash, createPublicKey, verify, type KeyObject } from "node:crypto";
import { canonicalJson } from "./canonical.js";

/**
 * The hash chain and what is signed over it.
 *
 *   hash(0)   = 32 zero bytes (the genesis)
 *   hash(n)   = SHA-256( hash(n-1) || UTF-8(entry text n) )
 *
 * A checkpoint signs (Ed25519, the gateway's audit-checkpoint key) the canonical JSON
 * `{"at","hash","kid","seq","type":"portcullis.audit.checkpoint","v":1}` (hash in lower-case hex):
 * whoever holds the public key can check that the log had exactly this history up to `seq` when
 * it was signed. A segment seal signs the same kind of object for an archived range.
 */
export const GENESIS: Buffer = Buffer.alloc(32);

export function chainHash(prev: Buffer, entryText: string): Buffer {
  return createHash("sha256").update(prev).update(entryText, "utf8").digest();
}

export interface CheckpointFacts {
  readonly seq: number;
  readonly hash: Buffer;
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
  return Buffer.from(canonicalJson({ at: c.at, hash: c.hash.toString("hex"), kid: c.kid, seq: c.seq, type: "portcullis.audit.checkpoint", v: 1 }), "utf8");
}

export interface SealFacts {
  readonly first: number;
  readonly last: number;
  /** The hash before `first` (the previous segment's last, or the genesis). */
  readonly prev: Buffer;
  /** The hash of entry `last`. */
  readonly hash: Buffer;
  readonly at: number;
  readonly kid: string;
}

/** The bytes a segment seal's signature covers. */
export function sealMessage(s: SealFacts): Buffer {
  return Buffer.from(
    canonicalJson({
      at: s.at,
      first: s.first,
      hash: s.hash.toString("hex"),
      kid: s.kid,
      last: s.last,
      prev: s.prev.toString("hex"),
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

export function hex(b: Buffer): string {
  return b.toString("hex");
}

/** 32 bytes from 64 lower-case hex digits, or null. */
export function fromHex(s: unknown): Buffer | null {
  return typeof s === "string" && /^[0-9a-f]{64}$/.test(s) ? Buffer.from(s, "hex") : null;
}
