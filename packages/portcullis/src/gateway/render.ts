import type { ServerResponse } from "node:http";
import type { RequestContext } from "../contract/request.js";
import { renderHeld } from "../dialects/held.js";
import { type Denial, deny } from "../errors/catalogue.js";
import { limitHeaders } from "../limits/headers.js";
import type { Outcome } from "../pipeline/lifecycle.js";
import { sendDenial, sendJson, serverTimingHeader } from "./http.js";

/**
 * How the gateway and the authorizer write an outcome that is not an upstream's answer: a held
 * operation's ticket (in the request's dialect: dialects/held.ts) or a refusal (in the request's
 * dialect, with its RateLimit / Retry-After headers). Returns false for an answered outcome that
 * carried no refusal (the surface writes it itself).
 */
export function renderRefusal<A>(
  res: ServerResponse,
  ctx: RequestContext,
  outcome: Outcome<A>,
  options: { readonly now: number; readonly timingNames: readonly string[]; readonly close: boolean; readonly refusal: (answer: A) => Denial | null },
): boolean {
  const timing = ctx.timings === null ? undefined : serverTimingHeader(options.timingNames, ctx.timings);
  if (outcome.kind === "held") {
    const held = renderHeld(ctx.renderer?.name ?? null, outcome.ticket, ctx.operation, options.now);
    const headers: Record<string, string> = { ...limitHeaders(ctx) };
    if (timing !== undefined) headers["server-timing"] = timing;
    sendJson(res, held.status, held.body, ctx.requestId, { close: options.close }, headers);
    return true;
  }
  const denial = outcome.kind === "refused" ? outcome.denial : outcome.kind === "answered" ? options.refusal(outcome.answer) : deny("INTERNAL");
  if (denial === null) return false;
  sendDenial(res, denial, ctx.requestId, { serverTiming: timing, close: options.close || outcome.kind === "failed", renderer: ctx.renderer, headers: limitHeaders(ctx) });
  return true;
}
