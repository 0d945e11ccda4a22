import { PortcullisError } from "../errors/catalogue.js";
import { ANOMALY_ACTIONS, type AnomalyAction, type AnomalyActionRecord, type AnomalyActionState } from "../contract/behaviour.js";
import type { RequestContext } from "../contract/request.js";
import type { SigningKeyProvider } from "../contract/signing.js";
import type { AnomalyResponder } from "../anomaly/responder.js";
import { webhookKeyView } from "../anomaly/webhook.js";
import type { AnomalyActionFilter } from "../storage/types.js";
import { AdminReach } from "./reach.js";
import { ACCOUNT, ID, LIMIT_PARAM } from "./schema/common.js";
import { s } from "./schema/nodes.js";
import { type AdminRoute, adminRoute, routeId } from "./schema/routes.js";

/**
 * The admin API's anomaly actions (docs/behaviour.md, "Responses"), scope `admin:anomalies`:
 *
 *   GET  /portcullis/v1/anomalies?key=&account=&state=&action=&before=&limit=   newest first
 *   GET  /portcullis/v1/anomalies/webhook-key       the public key that signs the alert webhook
 *   GET  /portcullis/v1/anomalies/:id
 *   POST /portcullis/v1/anomalies/:id/undo          clears, resumes or cancels what the action did
 *
 * An operator key sees every account's actions; an account admin key only its own account's
 * (another account's action is ANOMALY_ACTION_NOT_FOUND, exactly as one that does not exist).
 */
const ACTION = s.ref("AnomalyAction", s.openObject({ id: s.string(), keyId: s.string(), account: s.string(), action: s.enum(ANOMALY_ACTIONS), state: s.enum(["active", "undone", "done"]) }, "an anomaly action (docs/behaviour.md)"));

export const ANOMALY_ROUTES: readonly AdminRoute[] = [
  adminRoute("GET", "/portcullis/v1/anomalies", "admin:anomalies", {
    summary: "Anomaly actions, newest first",
    query: {
      key: { schema: ID },
      account: { schema: ACCOUNT },
      state: { schema: s.enum(["active", "undone", "done"]) },
      action: { schema: s.enum(ANOMALY_ACTIONS) },
      before: { schema: ID },
      limit: LIMIT_PARAM,
    },
    answers: { 200: { description: "the actions", schema: s.openObject({ actions: s.array(ACTION) }) } },
  }),
  adminRoute("GET", "/portcullis/v1/anomalies/webhook-key", "admin:anomalies", {
    summary: "The public key that signs the alert webhook",
    answers: { 200: { description: "the key", schema: s.openObject({}) } },
  }),
  adminRoute("GET", "/portcullis/v1/anomalies/:id", "admin:anomalies", { summary: "One anomaly action", params: { id: ID }, answers: { 200: { description: "the action", schema: ACTION } } }),
  adminRoute("POST", "/portcullis/v1/anomalies/:id/undo", "admin:anomalies", {
    summary: "Undo what an action did: clear a step-up or throttle, resume a suspended key, cancel a revoke in its grace",
    params: { id: ID },
    answers: { 200: { description: "the action", schema: ACTION } },
  }),
];

const ROUTE_IDS: ReadonlySet<string> = new Set(ANOMALY_ROUTES.map(routeId));

/** What the anomaly routes need: the responder, and the provider of the webhook's signing key. */
export interface AnomalyAdmin {
  readonly responder: AnomalyResponder;
  readonly signer: SigningKeyProvider;
}

const STATES: readonly AnomalyActionState[] = ["active", "undone", "done"];

/** The list query, or VALIDATION_FAILED with the fields at fault. */
function parseQuery(query: string | null, ownAccount: string | null): AnomalyActionFilter {
  const params = new URLSearchParams(query ?? "");
  const errors: Record<string, string> = {};
  const state = params.get("state");
  if (state !== null && !(STATES as readonly string[]).includes(state)) errors.state = `one of ${STATES.join(", ")}`;
  const action = params.get("action");
  if (action !== null && !(ANOMALY_ACTIONS as readonly string[]).includes(action)) errors.action = `one of ${ANOMALY_ACTIONS.join(", ")}`;
  const limit = Number(params.get("limit") ?? "100");
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) errors.limit = "an integer from 1 to 1000";
  if (Object.keys(errors).length > 0) throw new PortcullisError("VALIDATION_FAILED", `invalid query: ${Object.keys(errors).join(", ")}`, errors);
  const key = params.get("key");
  const before = params.get("before");
  // An account admin lists its own account's actions (another account has none it can see).
  const account = ownAccount ?? params.get("account");
  return {
    limit,
    ...(key === null ? {} : { keyId: key }),
    ...(account === null ? {} : { account }),
    ...(state === null ? {} : { state: state as AnomalyActionState }),
    ...(action === null ? {} : { action: action as AnomalyAction }),
    ...(before === null ? {} : { before }),
  };
}

/** The answer to one of ANOMALY_ROUTES, or undefined for another route. */
export async function anomaliesAnswer(admin: AnomalyAdmin | null, ctx: RequestContext): Promise<{ status: number; body: unknown } | undefined> {
  const route = ctx.route;
  if (route === null || !ROUTE_IDS.has(route.id)) return undefined;
  if (ctx.key === null) throw new PortcullisError("INTERNAL", "admin anomaly route without a key");
  if (admin === null) throw new PortcullisError("ROUTE_NOT_FOUND");
  const own = new AdminReach(ctx.key.record, ctx.key.scopes).account;
  const responder = admin.responder;
  // Canonical, matched paths: /portcullis/v1/anomalies/<id>[/undo].
  const id = ctx.path.split("/")[4] ?? "";
  /** The action, if the caller may see it; ANOMALY_ACTION_NOT_FOUND otherwise. */
  const reach = async (): Promise<AnomalyActionRecord> => {
    const record = await responder.get(id);
    if (own !== null && record.account !== own) throw new PortcullisError("ANOMALY_ACTION_NOT_FOUND");
    return record;
  };
  switch (route.id) {
    case "GET /portcullis/v1/anomalies":
      return { status: 200, body: { actions: await responder.list(parseQuery(ctx.query, own)) } };
    case "GET /portcullis/v1/anomalies/webhook-key":
      return { status: 200, body: webhookKeyView(await admin.signer.open("webhook")) };
    case "GET /portcullis/v1/anomalies/:id":
      return { status: 200, body: await reach() };
    case "POST /portcullis/v1/anomalies/:id/undo":
      await reach();
      return { status: 200, body: await responder.undo(id, `key:${ctx.key.record.id}`) };
    default:
      return undefined;
  }
}
