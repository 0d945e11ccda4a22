import { approvalDigest, sha256Hex, canonicalJson } from "./digest.js";
import type { OperationView } from "./service.js";

/**
 * The readable rendering of a held operation, as an approver sees it before signing
 * (`portcullis approvals show`). It is computed from the digest document — the exact facts the
 * digest covers — by whoever shows it, and the digest is recomputed from the same document, so
 * what is shown and what is signed cannot drift apart. The signature binds the digest, never this
 * text.
 */

/** The facts the digest covers, as the admin API sends them (`document`). */
export interface DigestDocumentView {
  readonly v: number;
  readonly operationId: string;
  readonly operation: unknown;
  readonly account: string | null;
  readonly keyId: string | null;
  readonly policy: { readonly version: number; readonly rule: string };
  readonly approvals: readonly { readonly group: string; readonly count: number }[];
  readonly notBefore: number | null;
  readonly expiresAt: number;
  readonly request: string;
}

/** The digest of a digest document, recomputed (SHA-256 of its RFC 8785 canonical JSON). */
export function digestOfDocument(document: unknown): string {
  return sha256Hex(canonicalJson(document));
}

function when(ms: number | null): string {
  return ms === null ? "none" : new Date(ms).toISOString();
}

function field(name: string, value: unknown): string {
  return `  ${name.padEnd(12)}${value === null ? "(none)" : typeof value === "string" ? value : JSON.stringify(value)}`;
}

/** The lines an approver reads. `view` adds the live state (approvals so far) to the signed facts. */
export function renderOperation(document: DigestDocumentView, view: Pick<OperationView, "state" | "required" | "approvals" | "owner" | "reason">): string {
  const op = (document.operation ?? {}) as Record<string, unknown>;
  const lines = [
    `operation   ${document.operationId}  (${view.state}${view.reason === null ? "" : `: ${view.reason}`})`,
    `what        ${String(op.kind)}`,
    ...Object.entries(op)
      .filter(([k]) => k !== "kind")
      .map(([k, v]) => field(k, v)),
    `account     ${document.account ?? "(none: an operator's change)"}`,
    `key         ${document.keyId ?? "(none)"}${view.owner === null ? "" : `  owned by ${view.owner} (who may not approve it)`}`,
    `policy      version ${document.policy.version}, rule ${document.policy.rule}`,
    `needs       ${document.approvals.length === 0 ? "no approvals" : view.required.approvals.map((t) => `${t.count} of ${t.group} (have ${t.have})`).join(" and ")}`,
    `not before  ${when(document.notBefore)}`,
    `expires     ${when(document.expiresAt)}`,
    `request     sha-256 ${document.request} (the exact bytes that will be sent)`,
  ];
  for (const a of view.approvals) lines.push(`  ${a.decision === "approve" ? "approved" : "rejected"} by ${a.approver}${a.group === null ? "" : ` (${a.group})`} at ${new Date(a.at).toISOString()}`);
  lines.push(`digest      ${digestOfDocument(document)}`);
  return lines.join("\n");
}

export { approvalDigest };
