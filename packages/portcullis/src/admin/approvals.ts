import { PortcullisError } from "../errors/catalogue.js";
import { isJsonObject } from "../contract/json.js";
import { HOLD_STATES, type HoldState } from "../contract/policy.js";
import type { RequestContext } from "../contract/request.js";
import { HoldService, type OperationView } from "../holds/service.js";
import { renderOperation, type DigestDocumentView } from "../holds/render.js";
import { ID, LIMIT_PARAM } from "./schema/common.js";
import { s } from "./schema/nodes.js";
import { type AdminRoute, adminRoute, routeId } from "./schema/routes.js";

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
const OPERATION = s.ref("Operation", s.openObject({ operationId: s.string(), state: s.enum(HOLD_STATES) }, "a held operation (docs/approvals.md)"));
const APPROVER = s.ref("Approver", s.openObject({ name: s.string(), groups: s.array(s.string()), publicKey: s.string() }, "an approver"));
const OP_PARAM = { id: ID };
const DECISION = {
  approver: s.string({ minLength: 1, maxLength: 64, description: "the approver's name" }),
  digest: s.string({ minLength: 1, maxLength: 256, description: "the digest the approver saw and signed (approvals show)" }),
  signature: s.string({ minLength: 1, maxLength: 1024, description: "the approver's Ed25519 signature over the digest (base64url)" }),
  reason: s.optional(s.nullable(s.string({ maxLength: 500 }))),
};

export const APPROVAL_ROUTES: readonly AdminRoute[] = [
  adminRoute("POST", "/portcullis/v1/approvers", "admin:approvers", {
    summary: "Register an approver (operator keys)",
    operatorOnly: true,
    body: s.object({
      name: s.string({ minLength: 1, maxLength: 64, description: "a person's name: 1 to 64 letters, digits, '.', '_', '-' or '@'" }),
      groups: s.array(s.string({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 64, description: "one or more groups: lower-case letters, digits, '.', '_' or '-'" }),
      publicKey: s.string({ minLength: 1, maxLength: 16_384, description: "the approver's Ed25519 public key (PEM or JWK)" }),
    }),
    answers: { 201: { description: "the approver", schema: APPROVER } },
  }),
  adminRoute("GET", "/portcullis/v1/approvers", "admin:approvers", {
    summary: "The approvers (operator keys)",
    operatorOnly: true,
    answers: { 200: { description: "the approvers", schema: s.openObject({ approvers: s.array(APPROVER) }) } },
  }),
  adminRoute("DELETE", "/portcullis/v1/approvers/:name", "admin:approvers", {
    summary: "Remove an approver (operator keys)",
    operatorOnly: true,
    params: { name: s.string({ pattern: /^[\x21-\x7e]{1,128}$/, description: "the approver's name" }) },
    answers: { 200: { description: "removed", schema: s.openObject({ removed: s.string() }) } },
  }),
  adminRoute("GET", "/portcullis/v1/approvals", "admin:approvals", {
    summary: "Held operations (operator keys)",
    operatorOnly: true,
    query: { state: { schema: s.enum(HOLD_STATES) }, limit: LIMIT_PARAM },
    answers: { 200: { description: "the operations", schema: s.openObject({ operations: s.array(OPERATION) }) } },
  }),
  adminRoute("GET", "/portcullis/v1/approvals/:id", "admin:approvals", {
    summary: "One operation: its digest document, its digest (recomputed) and its rendering (operator keys)",
    operatorOnly: true,
    params: OP_PARAM,
    answers: { 200: { description: "the operation", schema: s.openObject({ operationId: s.string(), document: s.any(), rendering: s.string() }) } },
  }),
  adminRoute("POST", "/portcullis/v1/approvals/:id/approve", "admin:approvals", {
    summary: "An approver's signed approval (operator keys carry it)",
    operatorOnly: true,
    params: OP_PARAM,
    body: s.object(DECISION),
    answers: { 200: { description: "the operation", schema: OPERATION } },
  }),
  adminRoute("POST", "/portcullis/v1/approvals/:id/reject", "admin:approvals", {
    summary: "An approver's signed rejection (operator keys carry it)",
    operatorOnly: true,
    params: OP_PARAM,
    body: s.object(DECISION),
    answers: { 200: { description: "the operation", schema: OPERATION } },
  }),
  adminRoute("POST", "/portcullis/v1/approvals/:id/cancel", "admin:approvals", {
    summary: "Cancel a held operation (operator keys)",
    operatorOnly: true,
    params: OP_PARAM,
    answers: { 200: { description: "the operation", schema: OPERATION } },
  }),
];

const ROUTE_IDS: ReadonlySet<string> = new Set(APPROVAL_ROUTES.map(routeId));

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

/**
 * The answer to one of APPROVAL_ROUTES, or undefined for another route. Operator keys only: every
 * one is declared `operatorOnly`, which the admin API enforces before any handler runs.
 */
export async function approvalsAnswer(holds: HoldService | null, ctx: RequestContext, body: () => unknown): Promise<{ status: number; body: unknown } | undefined> {
  const route = ctx.route;
  if (route === null || !ROUTE_IDS.has(route.id)) return undefined;
  const record = ctx.key?.record;
  if (record === undefined) throw new PortcullisError("INTERNAL", "approval route without a key");
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
