import type { RouteSpec } from "../authz/routes.js";
import type { PolicySubject } from "../contract/policy.js";
import type { RequestContext } from "../contract/request.js";
import { isJsonObject, record } from "../contract/json.js";
import { PortcullisError } from "../errors/catalogue.js";
import { invalid, valueOrThrow } from "../errors/result.js";
import { parseJsonBody } from "../gateway/http.js";
import type { AddressBook } from "../governance/address-book.js";
import type { ChangeOutcome, Initiator, PolicyService } from "../governance/policy-service.js";
import { normalizeIp } from "../net/ip.js";
import { parseOperationInput } from "../policy/operation-input.js";

/**
 * The policy and the withdrawal address books on the admin API (docs/policy.md):
 *
 *   GET    /portcullis/v1/policy[?version=N]     the version in force (or version N)      admin:policy
 *   PUT    /portcullis/v1/policy                 apply a document (operator keys only)    admin:policy
 *   GET    /portcullis/v1/policy/versions        every version, newest first              admin:policy
 *   POST   /portcullis/v1/policy/test            dry run: { operation, account?, key?, source?, at?, version? }
 *   GET    /portcullis/v1/addresses[?account=&asset=&removed=true]                        admin:addresses
 *   POST   /portcullis/v1/addresses              { account, asset, address, network?, tag?, label? }
 *   DELETE /portcullis/v1/addresses/:id          removed at once
 *
 * A change the policy holds answers 202 `{ operationId, state, required }`, as a held request
 * does; one it blocks, 403 POLICY_BLOCKED. An account admin key reads the policy and its own
 * account's address book; it cannot apply a policy (ADMIN_GRANT_EXCEEDED), and another account's
 * entries are ADDRESS_NOT_FOUND, as missing ones.
 */
export const POLICY_ROUTES: readonly RouteSpec[] = [
  { method: "GET", path: "/portcullis/v1/policy", permission: "admin:policy" },
  { method: "PUT", path: "/portcullis/v1/policy", permission: "admin:policy" },
  { method: "GET", path: "/portcullis/v1/policy/versions", permission: "admin:policy" },
  { method: "POST", path: "/portcullis/v1/policy/test", permission: "admin:policy" },
  { method: "GET", path: "/portcullis/v1/addresses", permission: "admin:addresses" },
  { method: "POST", path: "/portcullis/v1/addresses", permission: "admin:addresses" },
  { method: "DELETE", path: "/portcullis/v1/addresses/:id", permission: "admin:addresses" },
];

const IDS: ReadonlySet<string> = new Set(POLICY_ROUTES.map((r) => `${String(r.method)} ${r.path}`));

/** The policy service and the address book the admin API changes. */
export interface Governance {
  readonly policy: PolicyService;
  readonly addresses: AddressBook;
}

interface Answer {
  readonly status: number;
  readonly body: unknown;
}

const TEST_FIELDS = new Set(["operation", "account", "key", "source", "at", "version"]);

function outcome<T>(out: ChangeOutcome<T>, appliedStatus: number): Answer {
  if (out.state === "held") return { status: 202, body: { operationId: out.ticket.operationId, state: out.ticket.state, required: out.ticket.required } };
  return { status: appliedStatus, body: out.result };
}

function versionParam(text: string | null): number | undefined {
  if (text === null) return undefined;
  const n = Number(text);
  if (!/^\d{1,9}$/.test(text) || !Number.isSafeInteger(n)) throw new PortcullisError("VALIDATION_FAILED", "version must be a version number", { version: "invalid" });
  return n;
}

/** The dry run's subject, from `{ operation, account?, key?, source?, at?, version? }`. */
function testSubject(raw: unknown, now: number): { subject: PolicySubject; version: number | undefined } {
  if (!isJsonObject(raw)) throw new PortcullisError("VALIDATION_FAILED", "the body is { operation, account?, key?, source?, at?, version? }");
  const fields = record<string>();
  for (const name of Object.keys(raw)) if (!TEST_FIELDS.has(name)) fields[name] = "unknown field";
  const text = (name: string): string | null => {
    const v = raw[name];
    if (v === undefined || v === null) return null;
    if (typeof v !== "string" || !/^[\x21-\x7e]{1,128}$/.test(v)) {
      fields[name] = "printable ASCII without spaces";
      return null;
    }
    return v;
  };
  const account = text("account");
  const key = text("key");
  const sourceText = text("source");
  const source = sourceText === null ? null : normalizeIp(sourceText);
  if (sourceText !== null && source === null) fields.source = "an IP address";
  const at = raw.at ?? now;
  if (typeof at !== "number" || !Number.isSafeInteger(at) || at < 0) fields.at = "epoch milliseconds";
  const version = raw.version;
  if (version !== undefined && (typeof version !== "number" || !Number.isSafeInteger(version) || version < 0)) fields.version = "a version number";
  if (Object.keys(fields).length > 0) throw new PortcullisError("VALIDATION_FAILED", `the dry run is not valid: ${Object.entries(fields).map(([k, v]) => `${k}: ${v}`).join("; ")}`, { ...fields });
  const parsed = parseOperationInput(raw.operation);
  if (!parsed.ok) valueOrThrow(invalid(parsed.message, Object.fromEntries(Object.entries(parsed.fields).map(([k, v]) => [`operation.${k}`, v]))));
  const operation = valueOrThrow(parsed);
  return {
    subject: { operation, account, keyId: key, client: source, at: typeof at === "number" ? at : now },
    version: typeof version === "number" ? version : undefined,
  };
}

/** Whether the route is one of this module's. */
export function isPolicyRoute(routeId: string): boolean {
  return IDS.has(routeId);
}

/** Answers a policy or address route (`isPolicyRoute`); the pipeline has checked the scope. */
export async function dispatchPolicy(ctx: RequestContext, governance: Governance | null, now: number): Promise<Answer> {
  const route = ctx.route;
  const key = ctx.key;
  if (route === null || key === null) throw new PortcullisError("INTERNAL", "policy route without a route or a key");
  if (governance === null) throw new PortcullisError("ROUTE_NOT_FOUND", "the policy is not served by this admin API");
  const caller = key.record;
  const initiator: Initiator = { actor: `key:${caller.id}`, account: caller.account, keyId: caller.id, client: ctx.client?.text ?? null, owner: caller.owner };
  /** The account an account admin key is confined to; null for an operator. */
  const reach = caller.operator ? null : caller.account;
  const params = new URLSearchParams(ctx.query ?? "");
  switch (route.id) {
    case "GET /portcullis/v1/policy":
      return { status: 200, body: await governance.policy.show(versionParam(params.get("version"))) };
    case "GET /portcullis/v1/policy/versions":
      return { status: 200, body: { versions: await governance.policy.versions() } };
    case "PUT /portcullis/v1/policy": {
      if (reach !== null) throw new PortcullisError("ADMIN_GRANT_EXCEEDED", "only an operator key applies a policy (an account admin key reads it)");
      return outcome(await governance.policy.apply(parseJsonBody(ctx.body), initiator), 200);
    }
    case "POST /portcullis/v1/policy/test": {
      const { subject, version } = testSubject(parseJsonBody(ctx.body), now);
      const explanation = await governance.policy.explain(subject, version);
      return { status: 200, body: explanation };
    }
    case "GET /portcullis/v1/addresses": {
      const account = params.get("account");
      const asset = params.get("asset");
      const removed = params.get("removed");
      if (removed !== null && removed !== "true" && removed !== "false") throw new PortcullisError("VALIDATION_FAILED", "removed must be true or false", { removed: "invalid" });
      const list = await governance.addresses.list({ ...(account === null ? {} : { account }), ...(asset === null ? {} : { asset }), ...(removed === null ? {} : { removed: removed === "true" }) }, reach);
      return { status: 200, body: { addresses: list } };
    }
    case "POST /portcullis/v1/addresses":
      return outcome(await governance.addresses.add(parseJsonBody(ctx.body), initiator, reach), 201);
    case "DELETE /portcullis/v1/addresses/:id": {
      // Address ids never need percent-encoding: an encoded one simply matches nothing.
      const id = ctx.path.split("/")[4] ?? "";
      return { status: 200, body: await governance.addresses.remove(id, initiator, reach) };
    }
    default:
      throw new PortcullisError("ROUTE_NOT_FOUND");
  }
}
