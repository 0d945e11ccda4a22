/**
 * The admin routes' contracts (admin/schema/): every route declares one; each request is checked
 * against it before its handler, over a real socket with the client SDK: unknown body members
 * and query parameters, wrong types, out-of-range values and repeated parameters are refused
 * VALIDATION_FAILED naming the field, and nothing is changed. Property-based (fast-check): any
 * unknown member on any route with a body is refused and named.
 */
import { PortcullisApiError, createClient, type PortcullisClient } from "@portcullis/client";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { ADMIN_ROUTES, AdminApi } from "../../src/admin/server.js";
import { KEY } from "../../src/admin/schema/common.js";
import { type Node, check, describe as describeNode, matches, s, toJsonSchema } from "../../src/admin/schema/nodes.js";
import { type AdminRoute, AdminSchemas, NO_BODY, adminRoute, routeId } from "../../src/admin/schema/routes.js";
import type { RequestContext } from "../../src/contract/request.js";
import { PortcullisError } from "../../src/errors/catalogue.js";
import { PROTOTYPE_NAMES, parseJson } from "../../src/contract/json.js";
import { silentLogger } from "../../src/log/logger.js";
import { type TestCore, makeCore } from "../support/harness.js";

let t: TestCore;
let admin: AdminApi;
let client: PortcullisClient;
let keyId: string;

beforeAll(async () => {
  t = await makeCore({ now: Date.now });
  admin = new AdminApi({ core: t.core, logger: silentLogger() });
  const address = await admin.listen(0, "127.0.0.1");
  const created = await t.createKey({ account: "ops", scopes: ["admin:*"], operator: true });
  client = createClient({ baseUrl: `http://127.0.0.1:${address.port}`, keyId: created.key.id, secret: created.secret ?? "" });
  keyId = (await t.createKey({ account: "acct-1", scopes: ["read"], label: "before" })).key.id;
});
afterAll(async () => {
  await admin.close(500);
  await t.cleanup();
});

async function refusal(p: Promise<unknown>): Promise<{ status: number; code: string; fields: Record<string, string> }> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PortcullisApiError);
  const e = err as PortcullisApiError;
  return { status: e.status, code: String(e.code), fields: (e.body as { fields?: Record<string, string> }).fields ?? {} };
}

/** The route's path with its parameters filled (a key id for `:id` on key routes, else a name). */
function pathOf(route: AdminRoute): string {
  return route.path.replace(/:([a-z]+)/g, (_m, name: string) => (route.path.startsWith("/portcullis/v1/keys/") ? keyId : `x-${name}`));
}

const SIGNED = ADMIN_ROUTES.filter((r) => r.permission !== "public");
const WITH_BODY = ADMIN_ROUTES.filter((r) => r.schema.body !== undefined);

describe("every admin route declares its contract", () => {
  it.each(ADMIN_ROUTES.map((r) => [routeId(r), r] as const))("%s", (_id, route) => {
    expect(route.schema.summary.length).toBeGreaterThan(0);
    const success = Object.keys(route.schema.answers).map(Number);
    expect(success.some((status) => status >= 200 && status < 300)).toBe(true);
    // Each :param of the path is declared, and nothing else.
    const params = [...route.path.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => m[1]);
    expect(Object.keys(route.schema.params ?? {}).sort()).toEqual(params.sort());
    expect(new AdminSchemas(ADMIN_ROUTES).schemaOf(routeId(route))).toBe(route.schema);
  });

  it("a route without a schema, or with a parameter its path does not have, is a TypeError at construction", () => {
    const bare = { method: "GET", path: "/portcullis/v1/new", permission: "admin:keys" };
    expect(() => new AdminSchemas([...ADMIN_ROUTES, bare])).toThrow(TypeError);
    const declared = (path: string, schema: AdminRoute["schema"]): AdminRoute => ({ ...bare, path, schema });
    expect(() => new AdminSchemas([declared("/portcullis/v1/new/:id", { summary: "x", answers: { 200: { description: "x" } } })])).toThrow(/path parameter id/);
    expect(() => new AdminSchemas([declared("/portcullis/v1/new", { summary: "x", params: { id: s.string() }, answers: { 200: { description: "x" } } })])).toThrow(/does not have/);
    expect(() => new AdminSchemas([ADMIN_ROUTES[0] as AdminRoute, ADMIN_ROUTES[0] as AdminRoute])).toThrow(/twice/);
    expect(() => new AdminSchemas([declared("/portcullis/v1/new", { summary: "x", query: { n: { schema: s.array(s.integer()) } }, answers: { 200: { description: "x" } } })])).toThrow(/list of strings/);
    expect(() => new AdminSchemas([declared("/portcullis/v1/new", { summary: "x", query: { n: { schema: s.string(), repeatable: true } }, answers: { 200: { description: "x" } } })])).toThrow(/declared as a list/);
  });

  it("a repeated parameter (declared so) is read as a list of its values; a comma-separated one as one value", () => {
    const route = adminRoute("GET", "/portcullis/v1/new", "admin:keys", {
      summary: "x",
      query: { event: { schema: s.array(s.string({ pattern: /^[a-z.*]+$/ }), { maxItems: 2 }), repeatable: true }, ids: { schema: s.array(s.string({ minLength: 1 }), { maxItems: 2 }) } },
      answers: { 200: { description: "x" } },
    });
    const schemas = new AdminSchemas([route]);
    const validate = (query: string): Record<string, string> => {
      const ctx = { route: { id: routeId(route) }, path: route.path, query, body: Buffer.alloc(0) } as unknown as RequestContext;
      try {
        schemas.validate(ctx);
        return {};
      } catch (err) {
        expect(err).toBeInstanceOf(PortcullisError);
        return { ...(err as PortcullisError).fields };
      }
    };
    expect(validate("event=key.create&event=key.*&ids=a,b")).toEqual({});
    expect(validate("event=a&event=b&event=c")).toEqual({ event: expect.stringMatching(/at most 2/) as unknown });
    expect(validate("event=BAD")).toEqual({ event: expect.any(String) as unknown });
    expect(validate("ids=a,b,c&ids=a")).toEqual({ ids: "given more than once" });
    expect(validate("ids=a,,b")).toEqual({ ids: expect.any(String) as unknown });
  });
});

describe("bodies", () => {
  it("any unknown member, on any route with a body, is refused VALIDATION_FAILED naming it (property)", async () => {
    const declared = (r: AdminRoute): ReadonlySet<string> => new Set(Object.keys((r.schema.body ?? NO_BODY).properties));
    const name = fc.oneof(fc.string({ minLength: 1, maxLength: 20 }), fc.constantFrom(...PROTOTYPE_NAMES));
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...WITH_BODY), name, fc.jsonValue(), async (route, member, value) => {
        fc.pre(!declared(route).has(member));
        const json = Object.defineProperty({}, member, { value, enumerable: true });
        const r = await refusal(client.json(route.method, pathOf(route), { json }));
        expect({ route: routeId(route), status: r.status, code: r.code, problem: r.fields[member] }).toEqual({ route: routeId(route), status: 400, code: "VALIDATION_FAILED", problem: "unknown field" });
      }),
      { numRuns: 60 },
    );
    // Nothing changed, nothing polluted.
    expect(await client.json(`GET`, `/portcullis/v1/keys/${keyId}`)).toMatchObject({ status: "active", label: "before", limits: {} });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("a route without a body takes none: a member is an unknown field", async () => {
    for (const route of SIGNED.filter((r) => r.method === "POST" && r.schema.body === undefined)) {
      const r = await refusal(client.json("POST", pathOf(route), { json: { anything: 1 } }));
      expect({ route: routeId(route), status: r.status, code: r.code, fields: r.fields }).toEqual({ route: routeId(route), status: 400, code: "VALIDATION_FAILED", fields: { anything: "unknown field" } });
    }
  });

  it("a member of the wrong type is refused naming it, on every route and every member", async () => {
    const candidates: readonly unknown[] = [12345, "text", true, [[]], { unknownMember: 1 }];
    let tried = 0;
    for (const route of WITH_BODY) {
      for (const [member, node] of Object.entries((route.schema.body ?? NO_BODY).properties)) {
        const wrong = candidates.find((c) => !matches(node, c));
        if (wrong === undefined) continue; // an `any` member: the domain parser reads it
        tried++;
        const r = await refusal(client.json(route.method, pathOf(route), { json: { [member]: wrong } }));
        expect({ route: routeId(route), member, status: r.status, code: r.code, named: r.fields[member] !== undefined }).toEqual({ route: routeId(route), member, status: 400, code: "VALIDATION_FAILED", named: true });
      }
    }
    expect(tried).toBeGreaterThan(40);
  });

  it.each([
    ["a body that is not an object", [], "body"],
    ["a string too long", { account: "a", scopes: ["read"], label: "x".repeat(129) }, "label"],
    ["a list too long", { account: "a", scopes: ["read"], ipAllowlist: Array.from({ length: 257 }, () => "10.0.0.1") }, "ipAllowlist"],
    ["an integer out of range", { account: "a", scopes: ["read"], windowMs: 999 }, "windowMs"],
    ["an enum member it does not have", { account: "a", scopes: ["read"], algorithm: "dsa" }, "algorithm"],
    ["a nested unknown member", { account: "a", scopes: ["read"], guardrails: { band: 1 } }, "guardrails.band"],
    ["a limit name out of pattern", { account: "a", scopes: ["read"], limits: { "Bad Name": 5 } }, "limits"],
    ["a required member missing", { scopes: ["read"] }, "account"],
  ])("POST /keys: %s is VALIDATION_FAILED naming it", async (_name, json, field) => {
    const r = await refusal(client.json("POST", "/portcullis/v1/keys", { json }));
    expect({ status: r.status, code: r.code, named: r.fields[field] !== undefined }).toEqual({ status: 400, code: "VALIDATION_FAILED", named: true });
    expect(await client.json<{ keys: unknown[] }>("GET", "/portcullis/v1/keys?account=a")).toEqual({ keys: [], next: null });
  });

  it("a body the schema admits still meets the domain parser (keys/input.ts), which runs after it", async () => {
    const r = await refusal(client.json("POST", "/portcullis/v1/keys", { json: { account: "a", scopes: ["no-such-scope"] } }));
    expect(r).toMatchObject({ status: 400, code: "VALIDATION_FAILED", fields: { scopes: expect.stringMatching(/unknown scope/) as unknown } });
  });
});

describe("query parameters", () => {
  it("an unknown query parameter is refused on every route (and every problem is named at once)", async () => {
    for (const route of ADMIN_ROUTES.filter((r) => r.method === "GET")) {
      const r = await refusal(client.json("GET", `${pathOf(route)}?nosuch=1&__proto__=x`));
      expect({ route: routeId(route), status: r.status, code: r.code, fields: Object.entries(r.fields).sort() }).toEqual({
        route: routeId(route),
        status: 400,
        code: "VALIDATION_FAILED",
        fields: [["__proto__", "unknown parameter"], ["nosuch", "unknown parameter"]],
      });
    }
  });

  it.each([
    ["limit=0", "limit"],
    ["limit=1001", "limit"],
    ["limit=1.5", "limit"],
    ["limit=abc", "limit"],
    ["status=gone", "status"],
    ["status=active&status=revoked", "status"],
    ["q=", "q"],
    [`q=${"x".repeat(101)}`, "q"],
    ["account=", "account"],
  ])("GET /keys?%s is VALIDATION_FAILED naming %s", async (query, field) => {
    const r = await refusal(client.json("GET", `/portcullis/v1/keys?${query}`));
    expect({ status: r.status, code: r.code, named: r.fields[field] !== undefined }).toEqual({ status: 400, code: "VALIDATION_FAILED", named: true });
  });

  it("q (1 to 100 characters) reaches the key list as `search`; the answer keeps its shape", async () => {
    const list = vi.spyOn(t.core.keys, "list");
    try {
      const answer = await client.json<{ keys: unknown[]; next: string | null }>("GET", `/portcullis/v1/keys?q=${encodeURIComponent("acct 1/é")}&limit=5`);
      expect(list).toHaveBeenCalledWith(expect.objectContaining({ search: "acct 1/é", limit: 5 }));
      expect(answer).toEqual({ keys: expect.any(Array) as unknown, next: null });
      await client.json("GET", `/portcullis/v1/keys?q=${"x".repeat(100)}`);
      expect(list).toHaveBeenLastCalledWith(expect.objectContaining({ search: "x".repeat(100) }));
    } finally {
      list.mockRestore();
    }
  });

  it("answers match their declared schemas (the key routes)", async () => {
    const page = await client.json<{ keys: unknown[] }>("GET", "/portcullis/v1/keys?limit=10");
    expect(page.keys.length).toBeGreaterThan(0);
    for (const key of page.keys) expect(matches(KEY, key)).toBe(true);
    const declared = (id: string, status: number): Node => {
      const node = ADMIN_ROUTES.find((r) => routeId(r) === id)?.schema.answers[status]?.schema;
      if (node === undefined) throw new Error(`${id} declares no ${status} answer`);
      return node;
    };
    const problemsOf = (node: Node, value: unknown): Record<string, string> => {
      const out: Record<string, string> = Object.create(null) as Record<string, string>;
      check(node, value, "", out);
      return { ...out };
    };
    const created = await client.json<{ id: string }>("POST", "/portcullis/v1/keys", { json: { account: "acct-2", scopes: ["read"] } });
    const answers: [string, number, unknown][] = [
      ["GET /portcullis/v1/time", 200, await client.json("GET", "/portcullis/v1/time")],
      ["GET /portcullis/v1/health", 200, await client.json("GET", "/portcullis/v1/health")],
      ["POST /portcullis/v1/keys", 201, created],
      ["GET /portcullis/v1/keys", 200, page],
      ["GET /portcullis/v1/keys/:id", 200, await client.json("GET", `/portcullis/v1/keys/${created.id}`)],
      ["PATCH /portcullis/v1/keys/:id", 200, await client.json("PATCH", `/portcullis/v1/keys/${created.id}`, { json: { label: "x", guardrails: { symbols: ["BTCUSDT"] } } })],
      ["POST /portcullis/v1/keys/:id/suspend", 200, await client.json("POST", `/portcullis/v1/keys/${created.id}/suspend`, { json: { reason: "r" } })],
      ["POST /portcullis/v1/keys/:id/resume", 200, await client.json("POST", `/portcullis/v1/keys/${created.id}/resume`)],
      ["POST /portcullis/v1/keys/:id/rotate", 201, await client.json("POST", `/portcullis/v1/keys/${created.id}/rotate`, { json: { grace: "1h" } })],
    ];
    for (const [id, status, body] of answers) expect({ id, problems: problemsOf(declared(id, status), body) }).toEqual({ id, problems: {} });
  });
});

describe("the builder", () => {
  const problems = (node: Node, value: unknown): Record<string, string> => {
    const out: Record<string, string> = Object.create(null) as Record<string, string>;
    check(node, value, "", out);
    return { ...out };
  };

  it("names every problem at once, by member path; a record's problems by the record", () => {
    const node = s.object({ a: s.integer({ minimum: 1, maximum: 3 }), b: s.optional(s.array(s.object({ c: s.boolean() }))), m: s.optional(s.record(s.integer(), { keyPattern: /^[a-z]+$/ })) });
    expect(problems(node, { a: 4, b: [{ c: true }, { c: 1, d: 2 }], m: { x: 1, Y: 2 }, z: 0 })).toEqual({
      a: "an integer from 1 to 3",
      "b[1].c": "true or false",
      "b[1].d": "unknown field",
      m: "an object of names to values, each an integer",
      z: "unknown field",
    });
    expect(problems(node, {})).toEqual({ a: "required" });
    expect(problems(node, null)).toEqual({ body: "an object" });
  });

  it("reads own members only: an inherited name is not present, a member named __proto__ is unknown", () => {
    const node = s.object({ toString: s.string(), a: s.optional(s.string()) });
    expect(problems(node, {})).toEqual({ toString: "required" });
    expect(Object.entries(problems(node, parseJson('{"toString": "x", "__proto__": {"a": 5}}')))).toEqual([["__proto__", "unknown field"]]);
  });

  it("emits JSON Schema 2020-12: strict objects, nullable types, named schemas as $ref once", () => {
    const components = new Map<string, Record<string, unknown>>();
    const named = s.ref("Thing", s.openObject({ id: s.string() }));
    const schema = toJsonSchema(s.object({ a: s.nullable(s.integer({ minimum: 0 })), b: s.optional(named), c: s.array(named, { maxItems: 2 }), e: s.nullable(s.enum(["x"])) }), components);
    expect(schema).toEqual({
      type: "object",
      properties: {
        a: { type: ["integer", "null"], minimum: 0 },
        b: { $ref: "#/components/schemas/Thing" },
        c: { type: "array", items: { $ref: "#/components/schemas/Thing" }, maxItems: 2 },
        e: { anyOf: [{ type: "string", enum: ["x"] }, { type: "null" }] },
      },
      required: ["a", "c", "e"],
      additionalProperties: false,
    });
    expect([...components.keys()]).toEqual(["Thing"]);
    expect(describeNode(s.array(s.string({ maxLength: 3 }), { minItems: 1, maxItems: 2 }))).toBe("a list of 1 to 2 items, each a string of at most 3 characters");
  });
});
