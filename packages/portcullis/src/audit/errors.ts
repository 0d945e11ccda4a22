/**
 * The audit commands' own error codes (the CLI prints them as `{"error":{"code","message"}}` with
 * --json). Stable like every other code: never renamed, never reused. Problems found *in* a log
 * are a different list: verify.ts AUDIT_PROBLEMS.
 */
export const AUDIT_ERRORS = {
  AUDIT_LOG_UNAVAILABLE: "There is no audit log here: no database at this path, or one without the audit tables (open it once with this version).",
  AUDIT_VERIFY_FAILED: "The audit log failed verification.",
  AUDIT_ARCHIVE_REFUSED: "Nothing was archived: the range does not verify, or it changed while the segment was being written.",
  AUDIT_KEY_INVALID: "The public key file is not an Ed25519 public key (SPKI PEM).",
  AUDIT_ANCHOR_INVALID: "The anchor file is not a checkpoint printed by `portcullis audit checkpoint --json`.",
  AUDIT_SEGMENT_UNREADABLE: "The segment file cannot be read.",
  AUDIT_SIGNER_UNAVAILABLE: "The audit-checkpoint signing key cannot be opened (keyring missing or unreadable).",
} as const;

export type AuditErrorCode = keyof typeof AUDIT_ERRORS;

export class AuditError extends Error {
  override name = "AuditError";
  constructor(
    readonly code: AuditErrorCode,
    message: string = AUDIT_ERRORS[code],
  ) {
    super(message);
  }
}
