import type { RouteSpec } from "../../authz/routes.js";
import type { RequestContext } from "../../contract/request.js";
import { record } from "../../contract/json.js";
import { PortcullisError } from "../../errors/catalogue.js";
import { parseJsonBody } from "../../gateway/http.js";
import { type ArrayNode, type BooleanNode, type IntegerNode, type Node, type ObjectNode, type Problems, type StringNode, check, s } from "./nodes.js";

/**
 * An admin route's structural contract, declared once beside its `RouteSpec`: what the path, the
 * query and the body may hold and what it answers. The admin API checks every request against it
 * before the handler runs (`AdminSchemas.validate`), and the OpenAPI document is generated from
 * the very same declarations (admin/schema/openapi.ts). The domain parsers (keys/input.ts,
 * policy/document.ts…) still run after it: the schema is the API's shape, the parser the meaning.
 *
 * Adding a route is one declaration, in the module that handles it, spread into `ADMIN_ROUTES`
 * (admin/server.ts):
 *
 *   export const AUDIT_ROUTES: readonly AdminRoute[] = [
 *     adminRoute("GET", "/portcullis/v1/audit/entries", "admin:audit", {
 *       summary: "Audit entries, oldest first",
 *       query: { event: { schema: s.array(s.string({ maxLength: 64 }), { maxItems: 32 }), repeatable: true }, limit: LIMIT_PARAM },
 *       answers: { 200: { description: "a page", schema: s.openObject({ entries: s.array(s.any()), next: s.nullable(s.integer()) }) } },
 *     }),
 *   ];
 *
 * A route in `ADMIN_ROUTES` without a schema fails to compile (and test/admin/schema.test.ts).
 */
export interface RouteSchema {
  readonly summary: string;
  readonly description?: string;
  /** One entry per `:name` of the path. */
  readonly params?: Readonly<Record<string, StringNode>>;
  /** Query parameters; any other is refused ("unknown parameter"). */
  readonly query?: Readonly<Record<string, QueryParam>>;
  /** The JSON body. Absent: none (an empty body or `{}`; any member is an unknown field). */
  readonly body?: ObjectNode;
  /** Status → what is answered (refusals are the shared error answer: openapi.ts). */
  readonly answers: Readonly<Record<number, AnswerSchema>>;
  /**
   * Only operator keys may call it: an account admin key is refused ADMIN_GRANT_EXCEEDED before the
   * request's shape is checked (AdminSchemas.validate).
   */
  readonly operatorOnly?: boolean;
}

/** A query parameter: its text is read as the node's type (an integer node: decimal digits). */
export interface QueryParam {
  readonly schema: StringNode | IntegerNode | BooleanNode | ArrayNode;
  readonly required?: boolean;
  /**
   * Given once per value (`event=a&event=b`; the schema is an array of them). Otherwise a
   * parameter given twice is refused, and an array parameter is one comma-separated value.
   */
  readonly repeatable?: boolean;
}

export interface AnswerSchema {
  readonly description: string;
  /** The JSON body; absent: a body that is not JSON (contentType) or none. */
  readonly schema?: Node;
  /** Default application/json; several for a choice (`text/csv`, `application/jsonl`). */
  readonly contentType?: string | readonly string[];
}

/** A route of the admin listener with its contract: the one place a route is declared. */
export interface AdminRoute extends RouteSpec {
  readonly method: string;
  readonly schema: RouteSchema;
}

/** Declares an admin route: `adminRoute("GET", "/portcullis/v1/keys", "admin:keys", { … })`. */
export function adminRoute(method: string, path: string, permission: string, schema: RouteSchema): AdminRoute {
  return { method, path, permission, schema };
}

/** The route as the route table takes it (which refuses members it does not know). */
export function routeSpec(route: AdminRoute): RouteSpec {
  const { schema: _schema, ...spec } = route;
  return spec;
}

/** The id the route table gives a route (`RequestContext.route.id`). */
export function routeId(route: RouteSpec): string {
  return `${typeof route.method === "string" ? route.method : route.method.join(",")} ${route.path}`;
}

/** An empty body: an empty request body parses to `{}` (gateway/http.ts `parseJsonBody`). */
export const NO_BODY: ObjectNode = s.object({});

interface Compiled {
  readonly schema: RouteSchema;
  /** Path segment index → parameter name and node. */
  readonly params: readonly { readonly index: number; readonly name: string; readonly node: StringNode }[];
  readonly query: ReadonlyMap<string, QueryParam>;
  readonly body: ObjectNode;
}

const INTEGER_TEXT = /^-?\d{1,16}$/;

/**
 * The admin routes' contracts, compiled once (a route without one, or whose parameters do not
 * match its path, is a programming mistake: TypeError at construction).
 */
export class AdminSchemas {
  private readonly routes = new Map<string, Compiled>();

  constructor(routes: readonly RouteSpec[]) {
    for (const route of routes) {
      const schema = (route as Partial<AdminRoute>).schema;
      const id = routeId(route);
      if (schema === undefined) throw new TypeError(`admin route ${id} has no schema (declare it with adminRoute)`);
      if (this.routes.has(id)) throw new TypeError(`admin route ${id} is declared twice`);
      const segments = route.path.split("/");
      const params: { index: number; name: string; node: StringNode }[] = [];
      segments.forEach((segment, index) => {
        if (!segment.startsWith(":")) return;
        const name = segment.slice(1);
        const node = schema.params?.[name];
        if (node === undefined) throw new TypeError(`admin route ${id}: no schema for the path parameter ${name}`);
        params.push({ index, name, node });
      });
      if (Object.keys(schema.params ?? {}).length !== params.length) throw new TypeError(`admin route ${id}: a parameter is declared that the path does not have`);
      for (const [name, p] of Object.entries(schema.query ?? {})) {
        // A list parameter's values are text: its items are strings.
        if (p.schema.kind === "array" && p.schema.items.kind !== "string") throw new TypeError(`admin route ${id}: query parameter ${name} must be a list of strings`);
        if (p.repeatable === true && p.schema.kind !== "array") throw new TypeError(`admin route ${id}: the repeated query parameter ${name} must be declared as a list`);
      }
      this.routes.set(id, { schema, params, query: new Map(Object.entries(schema.query ?? {})), body: schema.body ?? NO_BODY });
    }
  }

  /** The contract of a route, by id. */
  schemaOf(id: string): RouteSchema | undefined {
    return this.routes.get(id)?.schema;
  }

  /**
   * Checks the request against its route's contract and answers its parsed body (a
   * null-prototype object, `parseJsonBody`). Every problem at once: VALIDATION_FAILED with
   * `fields`; malformed JSON: JSON_MALFORMED.
   */
  validate(ctx: RequestContext): unknown {
    const route = ctx.route;
    const compiled = route === null ? undefined : this.routes.get(route.id);
    if (compiled === undefined) throw new PortcullisError("INTERNAL", `admin route ${route?.id ?? "(none)"} has no schema`);
    // Who may call it comes before what it was sent: an account admin key learns nothing of an
    // operator-only route's checks (the handlers refuse it too; this makes the declaration binding).
    if (compiled.schema.operatorOnly === true && ctx.key?.record.operator !== true) {
      throw new PortcullisError("ADMIN_GRANT_EXCEEDED", "only an operator key may call this route");
    }
    const problems = record<string>();
    if (compiled.params.length > 0) {
      const segments = ctx.path.split("/");
      for (const p of compiled.params) check(p.node, segments[p.index] ?? "", p.name, problems);
    }
    checkQuery(compiled.query, ctx.query, problems);
    const body = parseJsonBody(ctx.body);
    check(compiled.body, body, "", problems);
    const names = Object.keys(problems);
    if (names.length > 0) {
      throw new PortcullisError("VALIDATION_FAILED", `invalid request: ${names.map((n) => `${n}: ${problems[n] ?? ""}`).join("; ")}`, problems);
    }
    return body;
  }
}

function checkQuery(declared: ReadonlyMap<string, QueryParam>, query: string | null, problems: Problems): void {
  if (query === null || query === "") {
    for (const [name, p] of declared) if (p.required === true) problems[name] = "required";
    return;
  }
  const values = new Map<string, string[]>();
  for (const [name, value] of new URLSearchParams(query)) {
    const list = values.get(name);
    if (list === undefined) values.set(name, [value]);
    else list.push(value);
  }
  for (const [name, list] of values) {
    const p = declared.get(name);
    if (p === undefined) {
      problems[name] = "unknown parameter";
      continue;
    }
    if (p.repeatable === true) {
      check(p.schema, list, name, problems);
      continue;
    }
    if (list.length > 1) {
      problems[name] = "given more than once";
      continue;
    }
    checkText(p.schema, list[0] ?? "", name, problems);
  }
  for (const [name, p] of declared) if (p.required === true && !values.has(name)) problems[name] = "required";
}

/** A query parameter's text, read as its node's type. */
function checkText(node: QueryParam["schema"], text: string, name: string, problems: Problems): void {
  switch (node.kind) {
    case "integer":
      check(node, INTEGER_TEXT.test(text) ? Number(text) : text, name, problems);
      return;
    case "boolean":
      check(node, text === "true" ? true : text === "false" ? false : text, name, problems);
      return;
    case "array":
      check(node, text.split(","), name, problems);
      return;
    case "string":
      check(node, text, name, problems);
  }
}
