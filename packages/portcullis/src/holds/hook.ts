import { newOperationId } from "../contract/policy.js";
import type { KeyRisk, StepUpSettings } from "../contract/behaviour.js";
import type { Operation } from "../contract/operations.js";
import type { ReferencePrices } from "../contract/prices.js";
import { compareDecimal, multiplyDecimal } from "../operations/decimal.js";
import { type Denial, deny } from "../errors/catalogue.js";
import type { Logger } from "../log/logger.js";
import type { ApprovalTier, HeldTicket, PolicyDecider, PolicyDecision, PolicySubject } from "../contract/policy.js";
import { loggableKeyId, type RequestContext } from "../contract/request.js";
import { type HeldRequest, type HoldService } from "./service.js";

/**
 * Stage 10, the high-value policy, as the lifecycle's hold hook (pipeline/lifecycle.ts): for an
 * allowed request that carries an operation whose kind the policy judges, the policy decides —
 * allow (go on), block (POLICY_BLOCKED), or hold: the exact request, as it would be forwarded, is
 * stored by the hold service and the request is answered at once with its ticket. A request
 * without an operation (or of a kind no rule can hold or block) pays one check and nothing else.
 *
 * Fail closed: a policy or a store that fails refuses the request (POLICY_UNAVAILABLE), and a
 * surface that cannot hold (`capture` null: WebSocket messages, embedded middleware without a
 * release callback) refuses a hold (HOLD_NOT_SUPPORTED) — in both cases after telling the policy to
 * forget the value it recorded for the operation, since it will never be released.
 */
export interface HoldHookOptions {
  readonly policy: PolicyDecider;
  readonly holds: HoldService;
  /** The request as this surface would forward it (credentials removed); null: this surface cannot hold. */
  readonly capture: ((ctx: RequestContext) => HeldRequest) | null;
  readonly logger: Logger;
}

export type HoldAnswer = Denial | HeldTicket | undefined;

export function createHoldHook(options: HoldHookOptions): (ctx: RequestContext) => HoldAnswer | Promise<HoldAnswer> {
  const { policy, holds, capture, logger } = options;
  const forget = async (id: string, requestId: string): Promise<void> => {
    try {
      await policy.forget(id);
    } catch (err) {
      logger.warn({ requestId, operationId: id, err }, "the policy could not forget an operation that was not held");
    }
  };
  // Stage 11's step-up (docs/behaviour.md): a key whose risk state is `step-up` has its
  // high-value operations held for the step-up's approvals, whatever the policy would have done
  // short of a block. Without step-up settings, a step-up holds nothing.
  const stepUp = holds.stepUp;
  const prices = holds.prices;
  const judge = async (ctx: RequestContext, subject: PolicySubject, steppedUp: KeyRisk | null): Promise<HoldAnswer> => {
    const id = newOperationId();
    let decision: PolicyDecision;
    try {
      decision = policy.judges(subject.operation.kind) ? await policy.decide(subject, id) : ALLOWED;
    } catch (err) {
      logger.error({ requestId: ctx.requestId, err }, "the policy could not decide");
      return deny("POLICY_UNAVAILABLE", "the policy failed to decide");
    }
    // A step-up turns what the policy would allow into a hold for the step-up's approvals, and adds
    // them to what the policy would hold (its tiers and delay stay: a step-up never weakens a
    // hold); a block stays a block.
    if (steppedUp !== null && stepUp !== null && decision.action.type !== "block") {
      const held = decision.action.type === "hold" ? decision.action : null;
      decision = {
        action: { type: "hold", approvals: strictest(held?.approvals ?? [], stepUp.approvals), delayMs: held?.delayMs ?? 0 },
        rule: held === null ? `step-up ${steppedUp.actionId}` : `${decision.rule} + step-up ${steppedUp.actionId}`,
        version: decision.version,
      };
    }
    const action = decision.action;
    switch (action.type) {
      case "allow":
        return undefined;
      case "block":
        return deny("POLICY_BLOCKED", `rule ${decision.rule} (policy version ${decision.version})${action.reason === null ? "" : `: ${action.reason}`}`);
      case "hold":
        break;
    }
    if (capture === null) {
      await forget(id, ctx.requestId);
      return deny("HOLD_NOT_SUPPORTED", `rule ${decision.rule} holds it; this surface cannot hold requests`);
    }
    try {
      const ticket = await holds.holdRequest(id, subject, decision, capture(ctx), ctx.key?.record.owner ?? null);
      logger.info({ requestId: ctx.requestId, operationId: id, keyId: loggableKeyId(ctx), rule: decision.rule, kind: subject.operation.kind }, "operation held");
      return ticket;
    } catch (err) {
      logger.error({ requestId: ctx.requestId, operationId: id, err }, "the operation could not be held");
      await forget(id, ctx.requestId);
      return deny("POLICY_UNAVAILABLE", "the operation could not be stored");
    }
  };
  return (ctx) => {
    const operation = ctx.operation;
    if (operation === null) return undefined;
    const risk = ctx.risk;
    // A throttle is stronger than a step-up, and holds what a step-up holds.
    const steppedUp = risk !== null && stepUp !== null && highValue(operation, stepUp, prices) ? risk : null;
    if (steppedUp === null && !policy.judges(operation.kind)) return undefined;
    const key = ctx.key?.record ?? null;
    const subject: PolicySubject = { operation, account: key?.account ?? null, keyId: key?.id ?? null, client: ctx.client?.text ?? null, at: ctx.now };
    return judge(ctx, subject, steppedUp);
  };
}

/** Both sets of approvals: every tier of each, a group in both needing the larger count. */
function strictest(a: readonly ApprovalTier[], b: readonly ApprovalTier[]): ApprovalTier[] {
  const out = a.map((t) => ({ group: t.group, count: t.count }));
  for (const t of b) {
    const same = out.find((o) => o.group === t.group);
    if (same === undefined) out.push({ group: t.group, count: t.count });
    else same.count = Math.max(same.count, t.count);
  }
  return out;
}

/** The decision for a kind no rule of the policy can hold or block. */
const ALLOWED: PolicyDecision = { action: { type: "allow" }, rule: "none", version: 0 };

/**
 * Whether a stepped-up key's operation is held: withdrawals, transfers and key changes always;
 * orders worth at least the step-up's minimum (their notional, or quantity × reference price; an
 * order whose value cannot be told is held); cancels and reads never.
 */
export function highValue(operation: Operation, stepUp: StepUpSettings, prices: ReferencePrices | null): boolean {
  switch (operation.kind) {
    case "withdraw":
    case "transfer":
    case "key.create":
    case "key.update":
    case "key.revoke":
      return true;
    case "order.place": {
      const min = stepUp.minOrderValue;
      if (min === null) return true;
      let value = operation.notional;
      if (value === null && operation.quantity !== null) {
        const price = prices?.symbol(operation.symbol);
        if (price !== undefined) value = multiplyDecimal(operation.quantity, price);
      }
      return value === null || compareDecimal(value, min) >= 0;
    }
    default:
      return false;
  }
}
