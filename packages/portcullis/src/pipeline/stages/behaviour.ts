import { riskInForce } from "../../contract/behaviour.js";
import type { Stage } from "./stage.js";

/**
 * Stage 11, behaviour, on the request path (docs/behaviour.md): the key's current risk state, left
 * on its record by a response of the behaviour stage, is put on the context for the stages and
 * hooks that act on it — admission charges a throttled key against its extra limit
 * (`ANOMALY_THROTTLED`), stage 10's hook holds a stepped-up (or throttled) key's next high-value
 * operation. One
 * field read and a time comparison; a lapsed state is none. (A suspended or revoked key never gets
 * here: stage 4 refuses it.) Scoring and responses happen after the decision, off the request path.
 */
export function behaviourStage(): Stage {
  return {
    name: "risk",
    run(ctx) {
      const key = ctx.key;
      if (key !== null) {
        const risk = key.record.risk;
        if (risk !== null) ctx.risk = riskInForce(risk, ctx.now);
      }
      return undefined;
    },
  };
}
