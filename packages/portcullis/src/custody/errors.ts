import { OperatorError, messagesOf } from "../errors/catalogue.js";

/**
 * The custody error codes. Custody refuses at startup (a wrong PIN, a missing token), in the CLI
 * (`custody rotate`, `backup`, `restore`) and when a stored ciphertext does not open; each refusal
 * has a stable code in the error catalogue (errors/catalogue.ts, area "custody"), never renamed or
 * reused, and a one-line message that names what to fix.
 *
 * No message ever carries a secret: not a KEK, a data key, a PIN, a stored secret or a private key
 * (a test scans every message the custody tests produce for the secrets they created). Messages
 * name paths, token labels, KEK versions and PKCS#11 return-value names only.
 */
const CUSTODY_CODES = [
  /** The keyring file is missing (run `portcullis init`). */
  "KEYRING_MISSING",
  /** The keyring file is readable by group or others. */
  "KEYRING_INSECURE",
  /** The keyring file is not a Portcullis keyring (bad JSON, wrong format, a KEK of the wrong size). */
  "KEYRING_INVALID",
  /** `create` found a keyring file already there (a KEK is never overwritten). */
  "KEYRING_EXISTS",
  /** The PKCS#11 module (shared library) cannot be loaded or initialised. */
  "CUSTODY_MODULE_NOT_FOUND",
  /** No token with the configured label is present. */
  "CUSTODY_TOKEN_NOT_FOUND",
  /** The token refused the PIN. */
  "CUSTODY_PIN_INCORRECT",
  /** The token's user PIN is locked after too many wrong tries. */
  "CUSTODY_PIN_LOCKED",
  /** No PIN: the pin file is missing or empty, or the environment variable is unset. */
  "CUSTODY_PIN_MISSING",
  /** The pin file is readable by group or others. */
  "CUSTODY_PIN_FILE_INSECURE",
  /** The token lacks a mechanism Portcullis needs (AES-GCM, Ed25519). */
  "CUSTODY_MECHANISM_UNSUPPORTED",
  /** Any other failure of the HSM (a PKCS#11 return value other than the ones above). */
  "CUSTODY_HSM_FAILED",
  /** An envelope names a KEK version this provider does not hold (retired, or another KEK). */
  "CUSTODY_KEK_VERSION_UNKNOWN",
  /** A wrapped key or sealed secret did not authenticate: tampered, moved to another row, or another KEK. */
  "CUSTODY_DECRYPT_FAILED",
  /** Not an envelope Portcullis writes (unknown format byte, truncated). */
  "CUSTODY_ENVELOPE_MALFORMED",
  /** The data directory's secrets are under another provider than the one configured. */
  "CUSTODY_PROVIDER_MISMATCH",
  /** Another rotation holds the data directory's custody lock. */
  "CUSTODY_ROTATION_IN_PROGRESS",
  /** A signing key in the token does not match what the data directory recorded for it. */
  "CUSTODY_SIGNING_KEY_MISMATCH",
  /**
   * An envelope write was refused: its envelope is under a KEK version below the data directory's
   * KEK floor (a rotation has rewrapped everything past it, and may be destroying it). Wrap again
   * under the active version.
   */
  "CUSTODY_KEK_RETIRED",
  /** The backup file is not a Portcullis backup, or is damaged. */
  "BACKUP_MALFORMED",
  /** The backup was made under another custody provider (keyring file against PKCS#11). */
  "BACKUP_PROVIDER_MISMATCH",
  /** The backup's data key does not unwrap with this data directory's KEK (another keyring or token). */
  "BACKUP_KEK_MISMATCH",
  /** The restore target already holds keys, held operations, approvers, policy versions, address book or ledger entries (and --force was not given). */
  "RESTORE_TARGET_NOT_EMPTY",
  /** The store cannot be backed up (or restored) this way: a PostgreSQL store without pg_dump / pg_restore on this host. */
  "BACKUP_UNSUPPORTED",
  /** The backup holds a SQLite store and the target keeps its store in PostgreSQL, or the other way round. */
  "BACKUP_STORE_MISMATCH",
  /** pg_dump or pg_restore exited with an error (its last lines are in the message): the server refused, a lock timed out… */
  "BACKUP_TOOL_FAILED",
] as const;

export type CustodyErrorCode = (typeof CUSTODY_CODES)[number];

/** The custody codes and their one-line messages (from the catalogue; kept for existing callers). */
export const CUSTODY_ERRORS = messagesOf(CUSTODY_CODES);

export class CustodyError extends OperatorError<CustodyErrorCode> {
  override name = "CustodyError";
}

/** Whether `err` is a store's refusal of an envelope under a KEK version below the floor. */
export function isKekRetired(err: unknown): boolean {
  return err instanceof OperatorError && err.code === "CUSTODY_KEK_RETIRED";
}
