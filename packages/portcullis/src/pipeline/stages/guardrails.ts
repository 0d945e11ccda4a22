import type { ReferencePrices } from "../../contract/prices.js";
import { checkGuardrails } from "../../operations/guardrails.js";
import type { Stage } from "./stage.js";

/**
 * The guard stage (docs/guardrails.md), right after the operation stage: the request's decoded
 * operation against its key's guardrails (compiled with the key: `VerificationKey.guardrails`; a
 * session's are its key's). A key without guardrails, or a request without an operation, goes
 * on at once. Like the operation stage it is never reached on a route that declares no
 * operation: the pipeline skips both on one check of `route.operation === null`.
 *
 * `prices` are the reference prices (contract/prices.ts) for the price band and for the notional
 * of a market order; null when none are configured (a check that needs one then refuses).
 */
export function guardrailStage(prices: ReferencePrices | null): Stage {
  return {
    name: "guard",
    run(ctx) {
      const op = ctx.operation;
      const guardrails = ctx.key?.guardrails ?? null;
      if (op === null || guardrails === null) return undefined;
      return checkGuardrails(guardrails, op, prices);
    },
  };
}
