import type { RouteSpec } from "../authz/routes.js";
import { PortcullisError } from "../errors/catalogue.js";
import { isJsonObject } from "../contract/json.js";
import { HOLD_STATES, type HoldState } from "../contract/policy.js";
import type { RequestContext } from "../contract/request.js";
import { HoldService, type OperationView } from "../holds/service.js";
import { renderOperation, type DigestDocumentView } from "../holds/render.js";

/**
 * The admin API's approvers and approvals (docs/approvals.md), for operator keys only:
 *
 *   POST   /portcullis/v1/approvers               { name, groups: [...], publicKey }   admin:approvers
 *   GET    /portcullis/v1/approvers                                                    admin:approvers
 *   DELETE /portcullis/v1/approvers/:name                                              admin:approvers
 *   GET    /portcullis/v1/approvals?state=&limit=                                       admin:approvals
 *   GET    /portcullis/v1/approvals/:id           the operation, its digest document, its digest
 *                                                 (recomputed here) and its rendering   admin:approvals
 *   POST   /portcullis/v1/approvals/:id/approve   { approver, digest, signature }       admin:approvals
 *   POST   /portcullis/v1/approvals/:id/reject    { approver, digest, signature, reason? } admin:approvals
 *   POST   /portcullis/v1/approvals/:id/cancel                                           admin:approvals
 *
 * An approval's signature is made by the approver's own Ed25519 key, elsewhere (the CLI's
 * `approvals approve ID --key FILE`): the admin key that carries it here proves nothing about it.
 */
export const APPROVAL_ROUTES: readonly RouteSpec[] = [
  { method: "POST", path: "/portcullis/v1/approvers", permission: "admin:approvers" },
  { method: "GET", path: "/portcullis/v1/approvers", permission: "admin:approvers" },
  { method: "DELETE", path: "/portcullis/v1/approvers/:name", permission: "admin:approvers" },
  { method: "GET", path: "/portcullis/v1/approvals", permission: "admin:approvals" },
  { method: "GET", path: "/portcullis/v1/approvals/:id", permission: "admin:approvals" },
  { method: "POST", path: "/portcullis/v1/approvals/:id/approve", permission: "admin:approvals" },
  { method: "POST", path: "/portcullis/v1/approvals/:id/reject", permission: "admin:approvals" },
  { method: "POST", path: "/portcullis/v1/approvals/:id/cancel", permission: "admin:approvals" },
];

const ROUTE_IDS: ReadonlySet<string> = new Set(APPROVAL_ROUTES.map((r) => `${typeof r.method === "string" ? r.method : r.method.join(",")} ${r.path}`));

/** An operation as `approvals show` prints it: the view, the signed facts and their rendering. */
export async function showOperation(holds: HoldService, id: string): Promise<OperationView & { document: DigestDocumentView; rendering: string }> {
  const view = await holds.view(id);
  const row = await holds.store.hold(id);
  if (row === undefined) throw new PortcullisError("OPERATION_NOT_FOUND");
  const document = HoldService.digestDocument(row) as unknown as DigestDocumentView;
  return { ...view, document, rendering: renderOperation(document, view) };
}

function text(o: Record<string, unknown>, name: string, errors: Record<string, string>): string {
  const v = o[name];
  if (typeof v !== "string" || v === "") {
    errors[name] = "a non-empty string";
    return "";
  }
  return v;
}

/** `{ approver, digest, signature }`, or VALIDATION_FAILED with the fields at fault. */
function parseDecision(raw: unknown): { approver: string; digest: string; signature: string; reason: string | null } {
  if (!isJsonObject(raw)) throw new PortcullisError("VALIDATION_FAILED", "the body must be a JSON object");
  const errors: Record<string, string> = {};
  const reason = raw.reason === undefined || raw.reason === null ? null : typeof raw.reason === "string" ? raw.reason : "";
  if (reason === "") errors.reason = "a string";
  const out = { approver: text(raw, "approver", errors), digest: text(raw, "digest", errors), signature: text(raw, "signature", errors), reason };
  if (Object.keys(errors).length > 0) throw new PortcullisError("VALIDATION_FAILED", `invalid decision: ${Object.keys(errors).join(", ")}`, errors);
  return out;
}

function parseApprover(raw: unknown): { name: string; groups: string[]; publicKey: string } {
  if (!isJsonObject(raw)) throw new PortcullisError("VALIDATION_FAILED", "the body must be a JSON object");
  const errors: Record<string, string> = {};
  const name = text(raw, "name", errors);
  const publicKey = text(raw, "publicKey", errors);
  const groups = raw.groups;
  if (!Array.isArray(groups) || !groups.every((g): g is string => typeof g === "string")) errors.groups = "a list of group names";
  if (Object.keys(errors).length > 0) throw new PortcullisError("VALIDATION_FAILED", `invalid approver: ${Object.keys(errors).join(", ")}`, errors);
  return { name, groups: groups as string[], publicKey };
}

/** The answer to one of APPROVAL_ROUTES, or undefined for another route. Operator keys only. */
export async function approvalsAnswer(holds: HoldService | null, ctx: RequestContext, body: () => unknown): Promise<{ status: number; body: unknown } | undefined> {
  const route = ctx.route;
  if (route === null || !ROUTE_IDS.has(route.id)) return undefined;
  const record = ctx.key?.record;
  if (record?.operator !== true) throw new PortcullisError("ADMIN_GRANT_EXCEEDED", "approvers and approvals are managed with an operator key");
  if (holds === null) throw new PortcullisError("ROUTE_NOT_FOUND");
  const actor = `key:${record.id}`;
  // Canonical, matched paths: /portcullis/v1/<approvers|approvals>/<name or id>[/<action>].
  const param = ctx.path.split("/")[4] ?? "";
  switch (route.id) {
    case "POST /portcullis/v1/approvers": {
      const input = parseApprover(body());
      return { status: 201, body: await holds.addApprover(input.name, input.groups, input.publicKey, actor) };
    }
    case "GET /portcullis/v1/approvers":
      return { status: 200, body: { approvers: await holds.approvers() } };
    case "DELETE /portcullis/v1/approvers/:name":
      await holds.removeApprover(param, actor);
      return { status: 200, body: { removed: param } };
    case "GET /portcullis/v1/approvals": {
      const params = new URLSearchParams(ctx.query ?? "");
      const state = params.get("state");
      if (state !== null && !(HOLD_STATES as readonly string[]).includes(state)) {
        throw new PortcullisError("VALIDATION_FAILED", `state must be one of ${HOLD_STATES.join(", ")}`, { state: "invalid" });
      }
      const limit = Number(params.get("limit") ?? "100");
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new PortcullisError("VALIDATION_FAILED", "limit must be an integer from 1 to 1000", { limit: "invalid" });
      return { status: 200, body: { operations: await holds.list({ limit, ...(state === null ? {} : { state: state as HoldState }) }) } };
    }
    case "GET /portcullis/v1/approvals/:id":
      return { status: 200, body: await showOperation(holds, param) };
    case "POST /portcullis/v1/approvals/:id/approve":
    case "POST /portcullis/v1/approvals/:id/reject": {
      const d = parseDecision(body());
      const decision = route.id.endsWith("/approve") ? "approve" : "reject";
      return { status: 200, body: await holds.decide(param, d.approver, decision, d.digest, d.signature, d.reason) };
    }
    case "POST /portcullis/v1/approvals/:id/cancel":
      return { status: 200, body: await holds.cancel(param, null, actor) };
    default:
      return undefined;
  }
}
