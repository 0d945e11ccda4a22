import type { Denial } from "../errors/catalogue.js";
import { parseKeyId } from "../contract/ids.js";
import { operationSummary } from "../contract/operations.js";
import type { RequestContext } from "../contract/request.js";
import { type AuditFields, type AuditSurface, keyChangeEvent } from "./events.js";

/**
 * Building entries from what the rest of Portcullis already has: a key change as the store
 * receives it, or a request's context after the pipeline's decision. Only the facts listed in
 * AuditFields are taken; never a header, a body, a query string or a credential.
 */

export interface KeyChangeFacts {
  readonly keyId: string;
  readonly action: string;
  readonly actor: string;
  readonly at: number;
  readonly detail: Readonly<Record<string, unknown>>;
  readonly account: string | null;
  readonly subAccount: string | null;
}

export function keyChangeFields(c: KeyChangeFacts): AuditFields {
  return {
    event: keyChangeEvent(c.action),
    at: c.at,
    actor: c.actor,
    key: c.keyId,
    account: c.account ?? undefined,
    subAccount: c.subAccount ?? undefined,
    detail: c.detail,
  };
}

/** The request target without its query (which may carry a signature). */
function pathOf(url: string): string {
  const q = url.indexOf("?");
  return q < 0 ? url : url.slice(0, q);
}

/**
 * A key id as the caller claimed it, only when it is well formed (a malformed one is whatever the
 * caller typed, and is not recorded).
 */
function claimedKey(ctx: RequestContext): string | undefined {
  const id = ctx.keyId;
  if (id === null || id.length > 64) return undefined;
  return parseKeyId(id) === null ? undefined : id;
}

function timingsOf(ctx: RequestContext, stageNames: readonly string[]): Record<string, number> | undefined {
  const t = ctx.timings;
  if (t === null) return undefined;
  const out: Record<string, number> = {};
  for (let i = 0; i < t.length && i < stageNames.length; i++) {
    const ms = t[i] as number;
    if (!Number.isNaN(ms)) out[stageNames[i] as string] = Math.round(ms * 10_000) / 10;
  }
  return out;
}

/**
 * What an allowed request's entry says beyond the decision: the decoded operation (on a route that
 * declares one: docs/operations.md), degraded admission, a failed hand on.
 */
function allowedDetail(ctx: RequestContext): Record<string, unknown> | undefined {
  if (!ctx.degraded && ctx.outcome === null && ctx.operation === null) return undefined;
  const out: Record<string, unknown> = {};
  if (ctx.operation !== null) out.operation = operationSummary(ctx.operation);
  if (ctx.degraded) out.degraded = true;
  if (ctx.outcome !== null) out.outcome = ctx.outcome;
  return out;
}

/** The entry for a request the pipeline decided: `request.allow`, or `request.deny` with its code. */
export function decisionFields(ctx: RequestContext, surface: AuditSurface, stageNames: readonly string[]): AuditFields {
  const record = ctx.key?.record;
  const denial = ctx.denial;
  const keyId = record?.id ?? claimedKey(ctx);
  return {
    event: denial === null ? "request.allow" : "request.deny",
    at: ctx.now,
    // Only an allowed request is attributed to its key: a refused one may be a forgery or a replay
    // (the key it named is in `key`).
    actor: denial === null && record !== undefined ? `key:${record.id}` : "anonymous",
    key: keyId,
    account: record?.account,
    subAccount: record?.subAccount ?? undefined,
    client: ctx.client?.text ?? ctx.socketAddress,
    surface,
    requestId: ctx.requestId,
    method: ctx.method,
    path: ctx.route === null ? pathOf(ctx.url) : ctx.path,
    route: ctx.route?.id,
    scheme: ctx.scheme?.name,
    code: denial?.code,
    status: denial?.status,
    timings: timingsOf(ctx, stageNames),
    detail: denial === null ? allowedDetail(ctx) : deniedDetail(ctx, denial.detail),
  };
}

/**
 * A refused request's detail: the refusal's internal reason, and the decoded operation when it
 * was refused after the operation stage (a guardrail's refusal says what the order was).
 */
function deniedDetail(ctx: RequestContext, reason: string | undefined): Record<string, unknown> | undefined {
  if (ctx.operation === null) return reason === undefined ? undefined : { reason };
  return reason === undefined ? { operation: operationSummary(ctx.operation) } : { reason, operation: operationSummary(ctx.operation) };
}

/** What is known of a request refused before the pipeline ran (its body was too large…). */
export interface EarlyRequest {
  readonly requestId: string;
  readonly method: string | undefined;
  readonly url: string | undefined;
  readonly socketAddress: string | undefined;
}

export function refusalFields(denial: Denial, req: EarlyRequest, surface: AuditSurface, at: number): AuditFields {
  return {
    event: "request.deny",
    at,
    actor: "anonymous",
    client: req.socketAddress,
    surface,
    requestId: req.requestId,
    method: req.method,
    path: req.url === undefined ? undefined : pathOf(req.url),
    code: denial.code,
    status: denial.status,
  };
}
