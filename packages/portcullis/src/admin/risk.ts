import type { RequestContext } from "../contract/request.js";
import { PortcullisError } from "../errors/catalogue.js";
import { record } from "../contract/json.js";
import type { KeyRecord } from "../contract/keys.js";
import { MAX_TOP, type RiskFilter, type RiskProfiles } from "../exposure/service.js";
import type { KeyService } from "../keys/service.js";
import { AdminReach } from "./reach.js";
import { ACCOUNT, ID } from "./schema/common.js";
import { s } from "./schema/nodes.js";
import { type AdminRoute, adminRoute, routeId } from "./schema/routes.js";

/**
 * Keys' risk profiles on the admin API (docs/behaviour.md, "Risk profile"), read under `admin:keys`:
 *
 *   GET /portcullis/v1/keys/:id/risk           one key's profile: exposure, score, sensitivities
 *   GET /portcullis/v1/risk?top=N[&account=A]  the N riskiest keys, riskiest first (default 10)
 *   GET /portcullis/v1/risk?keys=ID,ID,…       the scores of up to 100 keys (the console's keys table)
 *
 * An account admin key sees only its own account's keys, as for GET /portcullis/v1/keys/:id:
 * another account's key is KEY_NOT_FOUND, and the ranking covers its own account only; `keys=`
 * leaves out the ids it cannot see, exactly as unknown ones.
 */
const PROFILE = s.ref("RiskProfile", s.openObject({ keyId: s.string(), account: s.string(), riskScore: s.integer({ minimum: 0, maximum: 100 }), exposure: s.any(), sensitivities: s.array(s.any()) }, "a key's risk profile (docs/behaviour.md)"));
/** The most ids `keys=` takes. */
export const MAX_SCORED_KEYS = 100;

export const RISK_ROUTES: readonly AdminRoute[] = [
  adminRoute("GET", "/portcullis/v1/keys/:id/risk", "admin:keys", {
    summary: "One key's risk profile: exposure, score, sensitivities",
    params: { id: ID },
    answers: { 200: { description: "the profile", schema: PROFILE } },
  }),
  adminRoute("GET", "/portcullis/v1/risk", "admin:keys", {
    summary: "The riskiest keys (`top`), or the scores of the keys named (`keys`)",
    description: "`keys` answers `{ scores }` and takes neither `top` nor `account`; without it the answer is `{ keys }`, riskiest first.",
    query: {
      top: { schema: s.integer({ minimum: 1, maximum: MAX_TOP, description: `an integer from 1 to ${MAX_TOP} (default 10)` }) },
      account: { schema: ACCOUNT },
      keys: { schema: s.array(ID, { minItems: 1, maxItems: MAX_SCORED_KEYS, description: `1 to ${MAX_SCORED_KEYS} key ids, comma-separated` }) },
    },
    answers: {
      200: {
        description: "`{ keys }` (top) or `{ scores }` (keys: id → score, 0 to 100; ids the caller cannot see are left out)",
        schema: s.anyOf([s.openObject({ keys: s.array(PROFILE) }), s.openObject({ scores: s.record(s.integer({ minimum: 0, maximum: 100 })) })]),
      },
    },
  }),
];

const IDS: ReadonlySet<string> = new Set(RISK_ROUTES.map(routeId));

/** Whether the route is one of this module's. */
export function isRiskRoute(routeId: string): boolean {
  return IDS.has(routeId);
}

function topParam(text: string | null): number {
  if (text === null) return 10;
  const n = Number(text);
  if (!/^\d{1,4}$/.test(text) || n < 1 || n > MAX_TOP) throw new PortcullisError("VALIDATION_FAILED", `top must be an integer from 1 to ${MAX_TOP}`, { top: "invalid" });
  return n;
}

/** Answers a risk route (`isRiskRoute`); the pipeline has checked the scope. */
export async function dispatchRisk(ctx: RequestContext, risk: RiskProfiles | null, keys: KeyService): Promise<{ status: number; body: unknown }> {
  const route = ctx.route;
  const key = ctx.key;
  if (route === null || key === null) throw new PortcullisError("INTERNAL", "risk route without a route or a key");
  if (risk === null) throw new PortcullisError("ROUTE_NOT_FOUND", "risk profiles are not served by this admin API");
  const reach = new AdminReach(key.record, key.scopes);
  switch (route.id) {
    case "GET /portcullis/v1/keys/:id/risk": {
      // Key ids never need percent-encoding: an encoded one simply matches no key.
      const id = ctx.path.split("/")[4] ?? "";
      reach.reach(await keys.get(id));
      return { status: 200, body: await risk.profile(id) };
    }
    case "GET /portcullis/v1/risk": {
      const params = new URLSearchParams(ctx.query ?? "");
      const ids = params.get("keys");
      if (ids !== null) return { status: 200, body: { scores: await scores(ids.split(","), params, reach, risk, keys) } };
      const top = topParam(params.get("top"));
      const asked = params.get("account");
      const own = reach.account;
      if (own !== null && asked !== null && asked !== own) return { status: 200, body: { keys: [] } };
      const account = own ?? asked;
      const filter: RiskFilter = { ...(account === null ? {} : { account }), ...(own === null ? {} : { operator: false }) };
      return { status: 200, body: { keys: await risk.top(top, filter) } };
    }
    default:
      throw new PortcullisError("ROUTE_NOT_FOUND");
  }
}

/**
 * `?keys=ID,…`: the scores of the keys the caller may see (the others, like unknown ids, are left
 * out, so another account's ids do not leak). The schema has checked the ids (1 to 100).
 */
async function scores(ids: readonly string[], params: URLSearchParams, reach: AdminReach, risk: RiskProfiles, keys: KeyService): Promise<Record<string, number>> {
  const fields = record<string>();
  for (const name of ["top", "account"]) if (params.has(name)) fields[name] = "not with keys";
  if (Object.keys(fields).length > 0) throw new PortcullisError("VALIDATION_FAILED", "keys= takes neither top nor account", fields);
  const found: KeyRecord[] = [];
  for (const id of new Set(ids)) {
    try {
      found.push(reach.reach(await keys.get(id)));
    } catch (err) {
      if (!(err instanceof PortcullisError && err.code === "KEY_NOT_FOUND")) throw err;
    }
  }
  const out = record<number>();
  for (const profile of await risk.scores(found)) out[profile.keyId] = profile.riskScore;
  return out;
}
