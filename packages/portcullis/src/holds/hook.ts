import { newOperationId } from "../contract/policy.js";
import { type Denial, deny } from "../errors/catalogue.js";
import type { Logger } from "../log/logger.js";
import type { HeldTicket, PolicyDecider, PolicyDecision, PolicySubject } from "../contract/policy.js";
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
  const forget = async (id: string): Promise<void> => {
    try {
      await policy.forget(id);
    } catch (err) {
      logger.warn({ operationId: id, err }, "the policy could not forget an operation that was not held");
    }
  };
  const judge = async (ctx: RequestContext, subject: PolicySubject): Promise<HoldAnswer> => {
    const id = newOperationId();
    let decision: PolicyDecision;
    try {
      decision = await policy.decide(subject, id);
    } catch (err) {
      logger.error({ requestId: ctx.requestId, err }, "the policy could not decide");
      return deny("POLICY_UNAVAILABLE", "the policy failed to decide");
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
      await forget(id);
      return deny("HOLD_NOT_SUPPORTED", `rule ${decision.rule} holds it; this surface cannot hold requests`);
    }
    try {
      const ticket = await holds.holdRequest(id, subject, decision, capture(ctx), ctx.key?.record.owner ?? null);
      logger.info({ requestId: ctx.requestId, operationId: id, keyId: loggableKeyId(ctx), rule: decision.rule, kind: subject.operation.kind }, "operation held");
      return ticket;
    } catch (err) {
      logger.error({ requestId: ctx.requestId, operationId: id, err }, "the operation could not be held");
      await forget(id);
      return deny("POLICY_UNAVAILABLE", "the operation could not be stored");
    }
  };
  return (ctx) => {
    const operation = ctx.operation;
    if (operation === null || !policy.judges(operation.kind)) return undefined;
    const key = ctx.key?.record ?? null;
    const subject: PolicySubject = { operation, account: key?.account ?? null, keyId: key?.id ?? null, client: ctx.client?.text ?? null, at: ctx.now };
    return judge(ctx, subject);
  };
}
