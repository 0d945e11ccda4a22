/**
 * The custody error codes. Custody refuses at startup (a wrong PIN, a missing token), in the CLI
 * (`custody rotate`, `backup`, `restore`) and when a stored ciphertext does not open; each refusal
 * has a stable code here, never renamed or reused, and a one-line message that names what to fix.
 *
 * No message ever carries a secret: not a KEK, a data key, a PIN, a stored secret or a private key
 * (a test scans every message the custody tests produce for the secrets they created). Messages
 * name paths, token labels, KEK versions and PKCS#11 return-value names only.
 */
export const CUSTODY_ERRORS = {
  /** The keyring file is missing (run `portcullis init`). */
  KEYRING_MISSING: "no keyring file",
  /** The keyring file is readable by group or others. */
  KEYRING_INSECURE: "the keyring file is readable by group or others",
  /** The keyring file is not a Portcullis keyring (bad JSON, wrong format, a KEK of the wrong size). */
  KEYRING_INVALID: "the keyring file is not a valid Portcullis keyring",
  /** `create` found a keyring file already there (a KEK is never overwritten). */
  KEYRING_EXISTS: "a keyring file already exists",
  /** The PKCS#11 module (shared library) cannot be loaded or initialised. */
  CUSTODY_MODULE_NOT_FOUND: "the PKCS#11 module cannot be loaded",
  /** No token with the configured label is present. */
  CUSTODY_TOKEN_NOT_FOUND: "no PKCS#11 token with the configured label",
  /** The token refused the PIN. */
  CUSTODY_PIN_INCORRECT: "the token refused the PIN",
  /** The token's user PIN is locked after too many wrong tries. */
  CUSTODY_PIN_LOCKED: "the token's PIN is locked",
  /** No PIN: the pin file is missing or empty, or the environment variable is unset. */
  CUSTODY_PIN_MISSING: "no PIN for the token",
  /** The pin file is readable by group or others. */
  CUSTODY_PIN_FILE_INSECURE: "the pin file is readable by group or others",
  /** The token lacks a mechanism Portcullis needs (AES-GCM, Ed25519). */
  CUSTODY_MECHANISM_UNSUPPORTED: "the token does not support a required mechanism",
  /** Any other failure of the HSM (a PKCS#11 return value other than the ones above). */
  CUSTODY_HSM_FAILED: "the HSM failed",
  /** An envelope names a KEK version this provider does not hold (retired, or another KEK). */
  CUSTODY_KEK_VERSION_UNKNOWN: "the KEK version is not held by this provider",
  /** A wrapped key or sealed secret did not authenticate: tampered, moved to another row, or another KEK. */
  CUSTODY_DECRYPT_FAILED: "the ciphertext does not decrypt",
  /** Not an envelope Portcullis writes (unknown format byte, truncated). */
  CUSTODY_ENVELOPE_MALFORMED: "the envelope is malformed",
  /** The data directory's secrets are under another provider than the one configured. */
  CUSTODY_PROVIDER_MISMATCH: "the data directory's secrets are under another custody provider",
  /** Another rotation holds the data directory's custody lock. */
  CUSTODY_ROTATION_IN_PROGRESS: "another KEK rotation is running",
  /** A signing key in the token does not match what the data directory recorded for it. */
  CUSTODY_SIGNING_KEY_MISMATCH: "the token's signing key does not match the recorded one",
  /** The backup file is not a Portcullis backup, or is damaged. */
  BACKUP_MALFORMED: "not a Portcullis backup, or a damaged one",
  /** The backup was made under another custody provider (keyring file against PKCS#11). */
  BACKUP_PROVIDER_MISMATCH: "the backup was made under another custody provider",
  /** The backup's data key does not unwrap with this data directory's KEK (another keyring or token). */
  BACKUP_KEK_MISMATCH: "the backup cannot be opened with this KEK",
  /** The restore target already holds keys (and --force was not given). */
  RESTORE_TARGET_NOT_EMPTY: "the restore target already holds keys",
} as const;

export type CustodyErrorCode = keyof typeof CUSTODY_ERRORS;

export class CustodyError extends Error {
  override name = "CustodyError";
  readonly code: CustodyErrorCode;

  constructor(code: CustodyErrorCode, message?: string) {
    super(message ?? CUSTODY_ERRORS[code]);
    this.code = code;
  }
}
