import type { RequestContext } from "../contract/request.js";
import { isJsonObject, record } from "../contract/json.js";
import { PortcullisError } from "../errors/catalogue.js";
import { invalid, valueOrThrow } from "../errors/result.js";
import type { AddressBook } from "../governance/address-book.js";
import type { ChangeOutcome, Initiator, PolicyService } from "../governance/policy-service.js";
import { normalizeIp } from "../net/ip.js";
import { parseOperationInput } from "../policy/operation-input.js";
import type { KeyService } from "../keys/service.js";
import { AdminReach } from "./reach.js";
import { MAX_RULES } from "../policy/document.js";
import { POLICY_KINDS, type PolicySubject } from "../contract/policy.js";
import { EPOCH_MS, HELD, ID, TEXT } from "./schema/common.js";
import { s } from "./schema/nodes.js";
import { type AdminRoute, adminRoute, routeId } from "./schema/routes.js";

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
const POLICY = s.ref("Policy", s.openObject({ version: s.integer(), rules: s.array(s.any()) }, "a policy version: its document, digest and who applied it (docs/policy.md)"));
const ADDRESS = s.ref("Address", s.openObject({ id: s.string(), account: s.string(), asset: s.string(), address: s.string() }, "an address book entry (docs/policy.md)"));
const PRINTABLE = s.nullable(s.string({ pattern: /^[\x21-\x7e]{1,128}$/ }), "printable ASCII without spaces (or null)");

export const POLICY_ROUTES: readonly AdminRoute[] = [
  adminRoute("GET", "/portcullis/v1/policy", "admin:policy", {
    summary: "The policy in force, or version N",
    query: { version: { schema: s.integer({ minimum: 0, maximum: 999_999_999, description: "a version number" }) } },
    answers: { 200: { description: "the version", schema: POLICY } },
  }),
  adminRoute("PUT", "/portcullis/v1/policy", "admin:policy", {
    summary: "Apply a policy document (operator keys); the policy in force may hold the change",
    operatorOnly: true,
    body: s.object(
      {
        description: s.optional(s.string({ maxLength: 1000 })),
        rules: s.array(s.object({ name: s.optional(s.string({ maxLength: 64 })), match: s.optional(s.any("what the rule matches (docs/policy.md)")), action: s.optional(s.any("allow, block or hold (docs/policy.md)")) }), { minItems: 1, maxItems: MAX_RULES }),
      },
      "a policy document (docs/policy.md); its rules are checked by the policy parser",
    ),
    answers: { 200: { description: "the version applied", schema: POLICY }, 202: { description: "held for approval", schema: HELD } },
  }),
  adminRoute("GET", "/portcullis/v1/policy/versions", "admin:policy", {
    summary: "Every version, newest first",
    answers: { 200: { description: "the versions", schema: s.openObject({ versions: s.array(s.any()) }) } },
  }),
  adminRoute("POST", "/portcullis/v1/policy/test", "admin:policy", {
    summary: "Dry run: which rule an operation meets, and why",
    body: s.object({
      operation: s.openObject({ kind: s.enum(POLICY_KINDS) }, 'an operation such as {"kind":"withdraw","asset":"USDT","amount":"1500","address":"…"}: the members of its kind (docs/policy.md)'),
      account: s.optional(PRINTABLE),
      key: s.optional(PRINTABLE),
      source: s.optional(s.nullable(s.string({ pattern: /^[0-9A-Fa-f:.]{2,45}$/ }), "an IP address (or null)")),
      at: s.optional(s.nullable(EPOCH_MS)),
      version: s.optional(s.integer({ minimum: 0, description: "a version number" })),
    }),
    answers: { 200: { description: "the trace", schema: s.openObject({}) } },
  }),
  adminRoute("GET", "/portcullis/v1/addresses", "admin:addresses", {
    summary: "The withdrawal address book",
    query: { account: { schema: ID }, asset: { schema: s.string({ pattern: /^[A-Za-z0-9._\-/:]{1,32}$/ }) }, removed: { schema: s.boolean("true to include removed entries") } },
    answers: { 200: { description: "the entries", schema: s.openObject({ addresses: s.array(ADDRESS) }) } },
  }),
  adminRoute("POST", "/portcullis/v1/addresses", "admin:addresses", {
    summary: "Add an address (it cools down before use); the policy may hold the change",
    body: s.object({
      account: ID,
      asset: s.string({ pattern: /^[A-Za-z0-9._\-/:]{1,32}$/, description: "an asset (letters, digits and ._-/:)" }),
      address: s.string({ pattern: /^[\x21-\x7e]{1,256}$/, description: "an address (printable ASCII without spaces, at most 256)" }),
      network: s.optional(s.nullable(s.string({ pattern: /^[A-Za-z0-9._\-/:]{1,64}$/ }), "a network name (letters, digits and ._-/:)")),
      tag: s.optional(s.nullable(s.string({ pattern: /^[\x20-\x7e]{1,128}$/ }), "a memo / tag (printable ASCII, at most 128)")),
      label: s.optional(TEXT(200)),
    }),
    answers: { 201: { description: "the entry", schema: ADDRESS }, 202: { description: "held for approval", schema: HELD } },
  }),
  adminRoute("DELETE", "/portcullis/v1/addresses/:id", "admin:addresses", {
    summary: "Remove an address at once",
    params: { id: ID },
    answers: { 200: { description: "the entry, removed", schema: ADDRESS } },
  }),
];

const IDS: ReadonlySet<string> = new Set(POLICY_ROUTES.map(routeId));

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

/**
 * Answers a policy or address route (`isPolicyRoute`); the pipeline has checked the scope, and the
 * admin API the request's shape (`body`: the parsed body, admin/schema/routes.ts).
 */
export async function dispatchPolicy(ctx: RequestContext, governance: Governance | null, now: number, body: unknown, keys: KeyService): Promise<Answer> {
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
    case "PUT /portcullis/v1/policy":
      // Operator keys only: declared operatorOnly, enforced before the handler.
      return outcome(await governance.policy.apply(body, initiator), 200);
    case "POST /portcullis/v1/policy/test": {
      const tested = testSubject(body, now);
      const version = tested.version;
      let subject = tested.subject;
      // The dry run evaluates with the named account's and key's facts (address book, spend), so
      // an account admin key names only its own: another account is ADMIN_GRANT_EXCEEDED, a key it
      // cannot reach KEY_NOT_FOUND (as a missing one), and no account is its own.
      if (reach !== null) {
        if (subject.account !== null && subject.account !== reach) throw new PortcullisError("ADMIN_GRANT_EXCEEDED", `an account admin key dry-runs its own account only (${reach})`);
        if (subject.keyId !== null) new AdminReach(caller, key.scopes).reach(await keys.get(subject.keyId));
        subject = { ...subject, account: reach };
      }
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
      return outcome(await governance.addresses.add(body, initiator, reach), 201);
    case "DELETE /portcullis/v1/addresses/:id": {
      // Address ids never need percent-encoding: an encoded one simply matches nothing.
      const id = ctx.path.split("/")[4] ?? "";
      return { status: 200, body: await governance.addresses.remove(id, initiator, reach) };
    }
    default:
      throw new PortcullisError("ROUTE_NOT_FOUND");
  }
}
