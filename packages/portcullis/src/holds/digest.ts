import { type KeyObject, createHash, createPublicKey, verify } from "node:crypto";
import canonicalize from "canonicalize";
import type { ApprovalTier } from "../contract/policy.js";

/**
 * What an approver signs (docs/approvals.md). The approval digest is SHA-256 over the RFC 8785
 * canonical JSON (the JSON Canonicalization Scheme, by the `canonicalize` package, written by one
 * of the RFC's authors) of everything that makes the held operation what it is:
 *
 *   { "v": 1, "operationId", "operation" (its summary, exactly as stored), "account", "keyId",
 *     "policy": { "version", "rule" }, "approvals": [ { "group", "count" } … ], "notBefore",
 *     "expiresAt", "request": "<SHA-256 hex of the exact held bytes>" }
 *
 * The held bytes are the request as it will be forwarded (method, target, headers and body,
 * credentials already removed) or a change's payload, so an approval binds the exact thing that
 * will be released, not a description of it. An approval or a rejection is an Ed25519 signature
 * over a fixed, domain-separated message naming the decision and the digest:
 *
 *   portcullis-approval/v1 approve <digest hex>      portcullis-approval/v1 reject <digest hex>
 *
 * so a signature means one decision about one operation and can be reused for nothing else (not an
 * audit checkpoint, not the other decision). Whoever shows an operation to an approver recomputes
 * the digest from the stored operation (never copies one it was sent), and the signature binds the
 * digest, never the rendering.
 */

/** The RFC 8785 canonical JSON text of `value` (throws TypeError for what JSON cannot hold). */
export function canonicalJson(value: unknown): string {
  let text: string | undefined;
  try {
    text = canonicalize(value);
  } catch (err) {
    throw new TypeError(`not canonicalizable JSON: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  if (text === undefined) throw new TypeError("not canonicalizable JSON: undefined");
  return text;
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** The facts of a held operation the digest covers. */
export interface DigestInput {
  readonly operationId: string;
  /** The operation's summary (`operationSummary`, or a change's), exactly as stored. */
  readonly operation: unknown;
  readonly account: string | null;
  readonly keyId: string | null;
  readonly policyVersion: number;
  readonly rule: string;
  readonly tiers: readonly ApprovalTier[];
  readonly notBefore: number | null;
  readonly expiresAt: number;
  /** SHA-256 (hex) of the exact held bytes (`heldBytesDigest`). */
  readonly requestDigest: string;
}

/** The approval digest (hex): SHA-256 of the canonical JSON of the operation's facts. */
export function approvalDigest(input: DigestInput): string {
  return sha256Hex(canonicalJson(digestDocument(input)));
}

/** The document whose canonical JSON is hashed (shown by `approvals show --json`). */
export function digestDocument(input: DigestInput): Record<string, unknown> {
  return {
    v: 1,
    operationId: input.operationId,
    operation: input.operation,
    account: input.account,
    keyId: input.keyId,
    policy: { version: input.policyVersion, rule: input.rule },
    approvals: input.tiers.map((t) => ({ group: t.group, count: t.count })),
    notBefore: input.notBefore,
    expiresAt: input.expiresAt,
    request: input.requestDigest,
  };
}

export type ApprovalDecision = "approve" | "reject";

const MESSAGE_PREFIX = "portcullis-approval/v1";
const DIGEST_RE = /^[0-9a-f]{64}$/;

/** The exact bytes an approver signs for `decision` over `digest` (64 lower-case hex digits). */
export function approvalMessage(decision: ApprovalDecision, digest: string): Buffer {
  if (!DIGEST_RE.test(digest)) throw new TypeError("an approval digest is 64 lower-case hex digits");
  return Buffer.from(`${MESSAGE_PREFIX} ${decision} ${digest}`, "utf8");
}

/**
 * Does `signature` (base64 or base64url text, as sent) verify as `decision` over `digest` with the
 * approver's public key? Never throws for what a caller sent.
 */
export function verifyApproval(publicKey: KeyObject, decision: ApprovalDecision, digest: string, signature: string): boolean {
  if (!/^[A-Za-z0-9+/_-]{86}(==)?$/.test(signature)) return false;
  const bytes = Buffer.from(signature.replaceAll("-", "+").replaceAll("_", "/"), "base64");
  if (bytes.length !== 64) return false;
  try {
    return verify(null, approvalMessage(decision, digest), publicKey, bytes);
  } catch {
    return false;
  }
}

/**
 * An approver's public key from its text (SPKI PEM, or an OKP/Ed25519 JWK), as the canonical SPKI
 * PEM; null for anything else (another key type, a private key, garbage).
 */
export function parseApproverKey(text: string): string | null {
  let key: KeyObject;
  try {
    const trimmed = text.trim();
    if (trimmed.startsWith("{")) {
      const jwk = JSON.parse(trimmed) as unknown;
      if (typeof jwk !== "object" || jwk === null || Array.isArray(jwk)) return null;
      const o = jwk as Record<string, unknown>;
      if (o.kty !== "OKP" || o.crv !== "Ed25519" || typeof o.x !== "string" || o.d !== undefined) return null;
      key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: o.x }, format: "jwk" });
    } else {
      if (!trimmed.startsWith("-----BEGIN PUBLIC KEY-----")) return null;
      key = createPublicKey({ key: trimmed, format: "pem" });
    }
  } catch {
    return null;
  }
  if (key.type !== "public" || key.asymmetricKeyType !== "ed25519") return null;
  return key.export({ type: "spki", format: "pem" }).toString();
}

/** The KeyObject of a stored (canonical SPKI PEM) approver key. */
export function approverKeyObject(pem: string): KeyObject {
  return createPublicKey({ key: pem, format: "pem" });
}
