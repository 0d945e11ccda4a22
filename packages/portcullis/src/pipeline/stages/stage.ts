import type { StageAnswer } from "../../dialects/scheme.js";
import type { Denial } from "../../errors/catalogue.js";
import type { RequestContext } from "../context.js";

/**
 * A stage of the pipeline: a factory (one module per stage, beside this file) validates its
 * options and precomputes everything at construction, and returns this small object. `run` looks
 * things up and answers: nothing to go on, or a denial (a value, never an exception). An answer may
 * be a promise only when the stage really waits (a key load, the hot store).
 */
export interface Stage {
  /** The Server-Timing metric name (and the audit entry's timing name). */
  readonly name: string;
  readonly run: (ctx: RequestContext) => StageAnswer;
}

/** A refusal that can be retried at `until` (epoch ms): its Retry-After comes from the context. */
export function retryAfter(denial: Denial, ctx: RequestContext, until: number): Denial {
  ctx.retryAfterMs = Math.max(0, until - ctx.now);
  return denial;
}
