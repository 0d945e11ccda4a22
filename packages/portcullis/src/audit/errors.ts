import { OperatorError, messagesOf } from "../errors/catalogue.js";

/**
 * The audit commands' own error codes (the CLI prints them as `CODE: message`, or
 * `{"error":{"code","message"}}` with --json). They live in the error catalogue (area "audit"),
 * stable like every other code: never renamed, never reused. Problems found *in* a log are a
 * different list: verify.ts AUDIT_PROBLEMS.
 */
const AUDIT_CODES = [
  "AUDIT_LOG_UNAVAILABLE",
  "AUDIT_VERIFY_FAILED",
  "AUDIT_ARCHIVE_REFUSED",
  "AUDIT_KEY_INVALID",
  "AUDIT_ANCHOR_INVALID",
  "AUDIT_SEGMENT_UNREADABLE",
  "AUDIT_SIGNER_UNAVAILABLE",
] as const;

export type AuditErrorCode = (typeof AUDIT_CODES)[number];

/** The audit codes and their messages (from the catalogue; kept for existing callers). */
export const AUDIT_ERRORS = messagesOf(AUDIT_CODES);

export class AuditError extends OperatorError<AuditErrorCode> {
  override name = "AuditError";
}
