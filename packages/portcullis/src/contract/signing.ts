import type { KeyObject } from "node:crypto";

/**
 * The keys Portcullis holds for itself, as opposed to its users' keys:
 *
 * - **signing keys** (Ed25519): the session-token key signs every session token at logon, the
 *   webhook key signs the behaviour stage's alerts (RFC 9421; docs/behaviour.md), the
 *   audit-checkpoint key signs the audit log's checkpoints. Anyone with the public key can verify
 *   what they signed; only the provider can sign.
 * - **stored secrets** (256-bit symmetric keys): e.g. the session-secret key from which every
 *   session's secret is derived.
 *
 * The contract of a `SigningKeyProvider`:
 *
 * - `open(purpose)` returns the one signing key of that purpose, creating it the first time. Every
 *   process that opens the same deployment (the same durable store, or the same HSM token) gets
 *   the same key: creation is race-free between processes.
 * - `SigningKey.sign` may be slow (an HSM round trip): it is called once per session logon or audit
 *   checkpoint, never per request. Verification uses `publicKey` in process.
 * - The private key never leaves the provider in a form anyone can use: the envelope provider keeps
 *   it encrypted under the key-encryption key at rest and as a KeyObject in memory; an HSM provider
 *   (PKCS#11, CKM_EDDSA) keeps it in the token, non-extractable.
 * - `kid` names the key version; it goes into what the key signs, so a verifier knows which public
 *   key to use after the key is replaced.
 */
export const SIGNING_PURPOSES = ["session-token", "audit-checkpoint", "webhook"] as const;
export type SigningPurpose = (typeof SIGNING_PURPOSES)[number];

export interface SigningKey {
  readonly purpose: SigningPurpose;
  /** Which provider holds the private key ("envelope", "pkcs11"…). */
  readonly provider: string;
  /** Names this key version, e.g. "session-token:Z3h0aW5n". */
  readonly kid: string;
  readonly algorithm: "ed25519";
  readonly publicKey: KeyObject;
  /** An Ed25519 signature (64 bytes) over `data`. */
  sign(data: Uint8Array): Promise<Buffer>;
}

export interface SigningKeyProvider {
  readonly name: string;
  open(purpose: SigningPurpose): Promise<SigningKey>;
}
