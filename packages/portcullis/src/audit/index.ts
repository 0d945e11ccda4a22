/**
 * The tamper-evident audit log (stage 13; docs/audit.md). The logic lives in the modules beside
 * this one; this is what the rest of Portcullis (and the library's users) use:
 *
 * - events.ts: the event catalogue and an entry's facts;
 * - canonical.ts, chain.ts: the canonical encoding, the hash chain, what checkpoints sign;
 * - log.ts: the writer (group commit of decisions, spill files, checkpoints);
 * - verify.ts, segment.ts, archive.ts: verification, archived segments, retention;
 * - the SQLite store's side is storage/sqlite/audit.ts (migration 6).
 */
import type { SigningKeyProvider } from "../contract/signing.js";
import { AuditLog } from "./log.js";
import type { AuditStore } from "./store.js";

export { AUDIT_EVENTS, keyChangeEvent, type AuditEntry, type AuditEventName, type AuditFields, type AuditSurface, type CatalogueEvent } from "./events.js";
export { canonicalJson, encodeEntry, decodeEntry } from "./canonical.js";
export { GENESIS, chainHash, checkpointMessage, sealMessage, fingerprint, type SignedCheckpoint } from "./chain.js";
export { AuditLog, type AuditLogOptions, type AuditSettings, type AuditStats, type CommitInfo, type DecisionRecorder, type RequestAuditMode } from "./log.js";
export { verifyAudit, verifySegment, AUDIT_PROBLEMS, type AuditProblem, type AuditProblemCode, type VerifyOptions, type VerifyReport } from "./verify.js";
export { archiveAudit, type ArchiveOptions, type ArchiveResult } from "./archive.js";
export { AUDIT_ERRORS, AuditError, type AuditErrorCode } from "./errors.js";
export type { AuditStore, AuditSource, ChainHead, StoredEntry, ArchiveRecord } from "./store.js";

/**
 * An audit log for a short-lived process that changes durable state on a data directory (the
 * CLI): it records no requests and signs one checkpoint when closed, so a change made from the
 * command line is covered by a signature at once, not at the gateway's next checkpoint. It also
 * replays any spill files a gateway left behind.
 */
export function checkpointer(data: { readonly store: { readonly audit: AuditStore }; readonly signingKeys: SigningKeyProvider }): AuditLog {
  return new AuditLog({ store: data.store.audit, signer: data.signingKeys, requests: "none", checkpointIntervalMs: 0 });
}
