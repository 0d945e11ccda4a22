import { randomBytes } from "node:crypto";
import { OPERATION_KINDS, type Operation } from "./operations.js";

/**
 * The contract between the operation model, the policy engine (stage 10: docs/policy.md) and held
 * operations with their approvals (docs/approvals.md). The engine decides what happens to an
 * operation; the hold service keeps what it holds and releases it exactly once.
 *
 * Besides the operations a request route decodes (contract/operations.ts), the policy governs two
 * changes made through the admin API and the CLI: a new policy version, and a new address in the
 * withdrawal address book. Removing an address is never governed: it only narrows.
 */

/** A change of the policy itself: applying a new version is judged by the version in force. */
export interface PolicyChange {
  readonly kind: "policy.change";
  /** The version the change would create. */
  readonly version: number;
  /** SHA-256 (hex) of the new document's canonical JSON (RFC 8785): what approvers approve. */
  readonly digest: string;
  /** How many rules the new version has. */
  readonly rules: number;
}

/** A new destination in an account's withdrawal address book. */
export interface AddressAdd {
  readonly kind: "address.add";
  readonly account: string;
  /** Upper case. */
  readonly asset: string;
  readonly address: string;
  readonly network: string | null;
  readonly tag: string | null;
  readonly label: string;
}

const OPERATION_ID_RE = /^op_[0-9a-f]{32}$/;

/**
 * A new operation id: `op_` and 128 random bits. Every operation the policy decides gets one
 * before it is decided (the `ref` of its velocity entry), and a held one keeps it.
 */
export function newOperationId(): string {
  return `op_${randomBytes(16).toString("hex")}`;
}

export function isOperationId(value: string): boolean {
  return OPERATION_ID_RE.test(value);
}

/** What the policy judges: an operation a request carries, or a governed change. */
export type GovernedOperation = Operation | PolicyChange | AddressAdd;

/** Every kind a policy rule may match, in catalogue order. */
export const POLICY_KINDS = [...OPERATION_KINDS, "policy.change", "address.add"] as const;
export type PolicyKind = (typeof POLICY_KINDS)[number];

const KINDS: ReadonlySet<string> = new Set(POLICY_KINDS);

export function isPolicyKind(value: unknown): value is PolicyKind {
  return typeof value === "string" && KINDS.has(value);
}

/** Who asks for an operation, and from where: what a rule may match besides the operation. */
export interface PolicySubject {
  readonly operation: GovernedOperation;
  /** The initiating key's account; null for a change an operator makes on the data directory. */
  readonly account: string | null;
  /** The initiating key; null for a change made on the data directory. */
  readonly keyId: string | null;
  /** The client address as text (the source address), or null when there is none (the CLI). */
  readonly client: string | null;
  /** When (epoch ms), by the deciding process's clock. */
  readonly at: number;
}

/** One tier of approvals: `count` distinct approvers of `group`. */
export interface ApprovalTier {
  readonly group: string;
  readonly count: number;
}

/**
 * What a rule does with an operation it matches. A hold waits for its approvals (one tier, or two
 * tiers that must both be met) and for its delay (a time lock during which the initiator may
 * cancel); a hold may have both. A hold always has approvals, a delay, or both.
 */
export type PolicyAction =
  | { readonly type: "allow" }
  | { readonly type: "block"; readonly reason: string | null }
  | { readonly type: "hold"; readonly approvals: readonly ApprovalTier[]; readonly delayMs: number };

/** The engine's decision: the action of the first rule that matched, in the version in force. */
export interface PolicyDecision {
  readonly action: PolicyAction;
  /** The name of the rule that matched. */
  readonly rule: string;
  /** The policy version that decided (0: the built-in default, one catch-all allow). */
  readonly version: number;
}

/** One rule's evaluation in a dry run: whether it matched, and why (or why not), condition by condition. */
export interface PolicyTraceStep {
  readonly rule: string;
  readonly matched: boolean;
  readonly because: readonly string[];
}

export interface PolicyExplanation {
  readonly decision: PolicyDecision;
  /** Every rule evaluated, in order, up to and including the one that matched. */
  readonly trace: readonly PolicyTraceStep[];
}

/**
 * The policy as the request path and the hold service use it.
 *
 * Velocity (amounts over a window, per key and per account) counts what was allowed and what is
 * held: `decide` records the operation's value under `ref` in the same atomic step as the decision
 * when the decision is not a block, so two concurrent withdrawals cannot both pass a cap that only
 * one fits under; `forget` takes it back when a held operation ends without being released.
 */
export interface PolicyDecider {
  /**
   * True when some rule of the version in force can do anything but allow an operation of `kind`
   * (the request path asks nothing more of the engine for kinds that are always allowed).
   */
  judges(kind: PolicyKind): boolean;
  decide(subject: PolicySubject, ref: string): PolicyDecision | Promise<PolicyDecision>;
  /** The decision with every rule evaluated and why; records nothing. */
  explain(subject: PolicySubject): Promise<PolicyExplanation>;
  /** Takes back the value recorded under `ref` (a held operation cancelled, rejected or expired). */
  forget(ref: string): Promise<void>;
}

/** Where a held operation stands (docs/approvals.md). */
export const HOLD_STATES = [
  /** Waiting for approvals, its delay, or both. */
  "pending",
  /** Every condition met; to be released by the next gateway process that claims it. */
  "ready",
  /** Claimed by one process, being released (forwarded, or applied). */
  "releasing",
  /** Released; the upstream's answer (or the change's result) is recorded. */
  "released",
  /** Claimed, but the process died before recording the outcome: never sent again automatically. */
  "unknown",
  "cancelled",
  "rejected",
  "expired",
] as const;
export type HoldState = (typeof HOLD_STATES)[number];

/** What a held operation still needs, as its initiator and approvers see it. */
export interface HoldRequirements {
  /** Each tier: its group, how many approvals it needs, and how many it has. */
  readonly approvals: readonly { readonly group: string; readonly count: number; readonly have: number }[];
  /** The end of its delay (epoch ms), or null for none. The initiator may cancel until then. */
  readonly notBefore: number | null;
  /** Approvals after this moment (epoch ms) are refused, and the operation expires. */
  readonly expiresAt: number;
}

/** The answer to a held operation: the native one is `202 {"operationId","state","required"}`. */
export interface HeldTicket {
  readonly operationId: string;
  readonly state: HoldState;
  readonly required: HoldRequirements;
}

/** The governed changes that are not requests: what releasing one does. */
export type ChangeKind = "policy.change" | "address.add";

/**
 * The hold service as the policy's own changes use it: a change the policy holds is kept with its
 * payload (JSON: the policy document, the address entry) and, once released, handed back to the
 * releaser registered for its kind, exactly once.
 */
export interface ChangeHolder {
  /**
   * Holds a governed change the policy decided to hold. `operationId` is the id `decide` was given
   * as `ref`; `initiatorOwner` is the person behind the initiator (who may not approve it).
   */
  holdChange(operationId: string, subject: PolicySubject, decision: PolicyDecision, payload: unknown, initiatorOwner: string | null): Promise<HeldTicket>;
  /** What releasing a change of `kind` does; its result is recorded as the operation's outcome. */
  onRelease(kind: ChangeKind, release: (payload: unknown) => Promise<unknown>): void;
}
