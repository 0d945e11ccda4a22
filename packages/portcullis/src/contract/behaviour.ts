import type { Decimal, OperationKind, OrderSide } from "./operations.js";
import type { ApprovalTier } from "./policy.js";

/**
 * The contract of stage 11, behaviour (docs/behaviour.md): what the behaviour model observes of
 * each decision, what it answers (a score with its explanation), the responses a score leads to,
 * and the risk state a response leaves on a key, which the request path checks synchronously.
 *
 * The request path pays one field check (`VerificationKey.risk`) and one push of its context onto
 * a queue; everything else (turning the context into a `BehaviourEvent`, updating the key's model,
 * scoring, responding) runs after the decision, off the request path.
 */

/** One decision as the behaviour model sees it: plain numbers and strings, built off the request path. */
export interface BehaviourEvent {
  readonly keyId: string;
  readonly account: string;
  /** When the request was decided (epoch ms, the pipeline's clock). */
  readonly at: number;
  /** When the key was created (its age at first use; dormancy is measured from its last event). */
  readonly keyCreatedAt: number;
  /**
   * When the key was last used before this request, as its record said (`KeyRecord.lastUsedAt`,
   * written in batches), or null when never; absent is as null. The model reads it only for a key
   * whose state it does not hold (its first event, or a state that was lost — unreadable after a
   * restart, another format): a key used before is then measured for dormancy from that use, not
   * taken for a key at its first use long after its creation.
   */
  readonly keyLastUsedAt?: number | null;
  /** The route's id (an HTTP route) or the WebSocket method; "" when the request reached no route. */
  readonly route: string;
  /** The operation the request carried, or null (a route that declares none, or a refusal before decoding). */
  readonly operation: OperationKind | null;
  /** order.place / order.cancel: the instrument (upper case), else null. */
  readonly symbol: string | null;
  readonly side: OrderSide | null;
  /** order.place: base quantity and value in the quote asset, as floats (statistics, not accounting); null when unknown. */
  readonly quantity: number | null;
  readonly notional: number | null;
  /** withdraw / transfer: the asset, the amount and its value in the reference currency (null when unknown). */
  readonly asset: string | null;
  readonly amount: number | null;
  readonly value: number | null;
  /** withdraw: the destination (the address, or the venue's saved address name), else null. */
  readonly destination: string | null;
  /**
   * withdraw: the destination is in the account's withdrawal address book and past its cooldown
   * (docs/policy.md): the account's owner named it, so it is not new whoever first sends to it.
   * Absent is as false. Filled in by the engine off the request path.
   */
  readonly destinationKnown?: boolean;
  /** The client address (its group: an IPv4 address or an IPv6 prefix), or null. */
  readonly client: string | null;
  /** The client's network prefix (IPv4 /24, IPv6 /48), or null. */
  readonly network: string | null;
  /** How the request ended. */
  readonly outcome: "allowed" | "held" | "refused" | "failed";
  /** The refusal's code (refused), or the hand on's failure code (failed); null otherwise. */
  readonly code: string | null;
  /** A refusal for a bad credential on a key that exists (a wrong signature, a wrong passphrase…). */
  readonly authFailure: boolean;
  /**
   * The request proved the key (its signature verified). One that did not — refused at or before
   * the signature — may come from anyone who knows the key's id: it is evidence of an attack on the
   * key, not of its holder's behaviour, so the responder never acts on its key beyond an alert.
   * Absent is as true (events built by hand).
   */
  readonly verified?: boolean;
}

/** One feature's part in a score: what was seen, against what, how far. */
export interface FeatureContribution {
  /** A stable feature name (`rate.1m`, `symbol.new`, `notional`, `address.new`, `network.new`, `hour`, `errors`, `cancel-ratio`, `withdraw.destination-new`, `dormancy`…). */
  readonly feature: string;
  /** What this event showed, as text ("62 requests/min", "XYZUSDT", "18,400 USDT"). */
  readonly observed: string;
  /** What was normal for the key (or its account, or the defaults), as text ("median 3.1/min, MAD 1.2"). */
  readonly baseline: string;
  /** How far from normal, in the model's own unit (robust z-score, or a rule's fixed weight); ≥ 0. */
  readonly deviation: number;
  /** Points this feature added to the score. */
  readonly points: number;
}

/** What a key was compared with: its own history, its account's other keys (cold start), or the defaults. */
export type BehaviourBasis = "key" | "account" | "defaults";

/** The score of one event for its key, with its explanation. */
export interface BehaviourScore {
  readonly keyId: string;
  readonly account: string;
  /** When the event was decided (epoch ms). */
  readonly at: number;
  /** 0 (as usual) to 100 (certainly not the key's owner). */
  readonly score: number;
  readonly basis: BehaviourBasis;
  /** Events the key's model had seen before this one. */
  readonly seen: number;
  /** The features that added points, largest first (at most 8). */
  readonly contributions: readonly FeatureContribution[];
}

/** What the responder may do, weakest first. */
export const ANOMALY_ACTIONS = ["record", "alert", "step-up", "throttle", "suspend", "revoke"] as const;
export type AnomalyAction = (typeof ANOMALY_ACTIONS)[number];

export function isAnomalyAction(value: unknown): value is AnomalyAction {
  return typeof value === "string" && (ANOMALY_ACTIONS as readonly string[]).includes(value);
}

/**
 * A key's risk state, left on its record by a response (`KeyRecord.risk`) and checked on the
 * request path: `step-up` holds the key's next high-value operation for approval, `throttle`
 * charges its requests against a small extra limit. (A suspension is the key's status; a revocation
 * its end.) Cleared by an operator (undoing the action) or when `until` passes.
 */
export interface KeyRisk {
  readonly state: "step-up" | "throttle";
  /** The anomaly action that set it (`an_…`). */
  readonly actionId: string;
  /** Why, for operators and the key's owner: the score and its largest contributions, in words. */
  readonly reason: string;
  readonly since: number;
  /** When it lapses (epoch ms), or null: until an operator clears it. */
  readonly until: number | null;
}

export const KEY_RISK_STATES = ["step-up", "throttle"] as const;

/** The key's risk state in force at `now` (a lapsed one is none). */
export function riskInForce(risk: KeyRisk | null, now: number): KeyRisk | null {
  return risk !== null && (risk.until === null || risk.until > now) ? risk : null;
}

const ACTION_ID_RE = /^an_[0-9a-f]{32}$/;

export function isAnomalyActionId(value: string): boolean {
  return ACTION_ID_RE.test(value);
}

/** Where an action stands: in force, undone by an operator, or (revoke) carried out after its grace. */
export type AnomalyActionState = "active" | "undone" | "done";

/** One action the responder took, as stored (`anomaly.action` in the audit log; undone by an operator). */
export interface AnomalyActionRecord {
  /** `an_` and 128 random bits (hex). */
  readonly id: string;
  readonly keyId: string;
  readonly account: string;
  readonly action: AnomalyAction;
  readonly score: number;
  /** The score and its explanation that led to it. */
  readonly explanation: BehaviourScore;
  readonly at: number;
  readonly state: AnomalyActionState;
  /** A revoke's grace: the key is suspended at once and revoked for good at this time unless undone; else null. */
  readonly dueAt: number | null;
  readonly undoneAt: number | null;
  /** Who undid it (an operator's key id, or `cli`). */
  readonly undoneBy: string | null;
}

/** The latest score of each key, as the risk profile and the operator's views read it. */
export interface AnomalyScores {
  /** The key's latest score, or null when none was computed yet. */
  latest(keyId: string): Promise<BehaviourScore | null>;
}

/**
 * What a step-up holds (stage 10's hook, holds/hook.ts): every withdrawal, transfer and key change
 * of a stepped-up key, and its orders worth at least `minOrderValue` in their quote asset (an order
 * whose value cannot be told is held); each needs these approvals.
 */
export interface StepUpSettings {
  readonly approvals: readonly ApprovalTier[];
  /** Orders below this value (in the order's quote asset) go on; null: every order is held. */
  readonly minOrderValue: Decimal | null;
}
