import type { RouteSpec } from "../authz/routes.js";
import type { RequestContext } from "../contract/request.js";
import { PortcullisError } from "../errors/catalogue.js";
import { MAX_TOP, type RiskFilter, type RiskProfiles } from "../exposure/service.js";
import type { KeyService } from "../keys/service.js";
import { AdminReach } from "./reach.js";

/**
 * Keys' risk profiles on the admin API (docs/behaviour.md, "Risk profile"), read under `admin:keys`:
 *
 *   GET /portcullis/v1/keys/:id/risk           one key's profile: exposure, score, sensitivities
 *   GET /portcullis/v1/risk?top=N[&account=A]  the N riskiest keys, riskiest first (default 10)
 *
 * An account admin key sees only its own account's keys, as for GET /portcullis/v1/keys/:id:
 * another account's key is KEY_NOT_FOUND, and the ranking covers its own account only.
 */
export const RISK_ROUTES: readonly RouteSpec[] = [
  { method: "GET", path: "/portcullis/v1/keys/:id/risk", permission: "admin:keys" },
  { method: "GET", path: "/portcullis/v1/risk", permission: "admin:keys" },
];

const IDS: ReadonlySet<string> = new Set(RISK_ROUTES.map((r) => `${String(r.method)} ${r.path}`));

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
