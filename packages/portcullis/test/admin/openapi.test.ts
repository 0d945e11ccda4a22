/**
 * `GET /admin/v1/openapi.json` over a real socket: public (no signature), cached (ETag, 304),
 * never audited; the document is valid OpenAPI 3.1 (the official schema, through
 * @seriousme/openapi-schema-validator) and names every admin route exactly once, with the
 * permission it needs, its parameters, its body and the error shape.
 */
import { Validator } from "@seriousme/openapi-schema-validator";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_ROUTES, AdminApi, adminOpenApiDocument } from "../../src/admin/server.js";
import { ERROR_CODES } from "../../src/errors/catalogue.js";
import { routeId } from "../../src/admin/schema/routes.js";
import { silentLogger } from "../../src/log/logger.js";
import { type TestCore, makeCore } from "../support/harness.js";

interface Operation {
  operationId: string;
  parameters?: { name: string; in: string; required?: boolean; schema: Record<string, unknown>; style?: string; explode?: boolean }[];
  requestBody?: { required: boolean; content: Record<string, { schema: Record<string, unknown> }> };
  responses: Record<string, unknown>;
  security: Record<string, string[]>[];
  "x-portcullis-permission": string;
  "x-portcullis-operator-only"?: boolean;
}
interface Doc {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Record<string, unknown>>; securitySchemes: Record<string, unknown> };
}

const OPENAPI = "/admin/v1/openapi.json";
let t: TestCore;
let admin: AdminApi;
let base: string;
let doc: Doc;

beforeAll(async () => {
  t = await makeCore({ now: Date.now });
  admin = new AdminApi({ core: t.core, logger: silentLogger() });
  base = `http://127.0.0.1:${(await admin.listen(0, "127.0.0.1")).port}`;
  const res = await fetch(`${base}${OPENAPI}`);
  expect(res.status).toBe(200);
  doc = (await res.json()) as Doc;
});
afterAll(async () => {
  await admin.close(500);
  await t.cleanup();
});

const operations = (): [string, string, Operation][] => Object.entries(doc.paths).flatMap(([path, item]) => Object.entries(item).map(([method, op]) => [method.toUpperCase(), path, op] as [string, string, Operation]));

describe("GET /admin/v1/openapi.json", () => {
  it("is public, JSON, cached by ETag (304), HEAD without a body; other methods are not found", async () => {
    const res = await fetch(`${base}${OPENAPI}`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(res.headers.get("cache-control")).toBe("public, max-age=300");
    const etag = res.headers.get("etag") ?? "";
    expect(etag).toMatch(/^"[A-Za-z0-9_-]{27}"$/);
    expect(await res.json()).toEqual(adminOpenApiDocument());
    const again = await fetch(`${base}${OPENAPI}`, { headers: { "if-none-match": etag } });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe("");
    const head = await fetch(`${base}${OPENAPI}`, { method: "HEAD" });
    expect({ status: head.status, etag: head.headers.get("etag"), body: await head.text() }).toEqual({ status: 200, etag, body: "" });
    const post = await fetch(`${base}${OPENAPI}`, { method: "POST" });
    expect({ status: post.status, code: ((await post.json()) as { code: string }).code }).toEqual({ status: 404, code: "ROUTE_NOT_FOUND" });
  });

  it("is never audited (like /metrics)", async () => {
    await t.core.audit.flush();
    const before = t.core.audit.stats.recorded;
    for (let i = 0; i < 3; i++) expect((await fetch(`${base}${OPENAPI}?x=${i}`)).status).toBe(200);
    await t.core.audit.flush();
    expect(t.core.audit.stats.recorded).toBe(before);
  });

  it("is valid OpenAPI 3.1 against the official schema", async () => {
    const validator = new Validator();
    const result = await validator.validate(structuredClone(doc) as unknown as Record<string, unknown>);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe("3.1");
    expect(doc.openapi).toBe("3.1.0");
    // The validator does refuse a broken document (this test can fail).
    const broken = structuredClone(doc) as unknown as { paths: Record<string, Record<string, Record<string, unknown>>> };
    const op = broken.paths["/portcullis/v1/keys"]?.get;
    if (op !== undefined) op.parameters = [{ name: "q", in: "body" }];
    expect((await new Validator().validate(broken as unknown as Record<string, unknown>)).valid).toBe(false);
  });

  it("every schema in it is valid JSON Schema 2020-12 (the meta-schema, by the validator's own Ajv)", async () => {
    // The OpenAPI schema does not look inside Schema Objects; Ajv 2020 does. It is the one the
    // validator itself depends on (resolved from it: no second copy of Ajv to keep).
    const require = createRequire(fileURLToPath(import.meta.resolve("@seriousme/openapi-schema-validator")));
    const { Ajv2020 } = (await import(pathToFileURL(require.resolve("ajv/dist/2020")).href)) as { Ajv2020: new (o: object) => { validateSchema(s: unknown): boolean; errors?: unknown } };
    const ajv = new Ajv2020({ strict: true, validateFormats: false });
    const schemas: [string, unknown][] = Object.entries(doc.components.schemas).map(([name, schema]) => [`components/schemas/${name}`, schema]);
    for (const [method, path, op] of operations()) {
      for (const p of op.parameters ?? []) schemas.push([`${method} ${path} ${p.name}`, p.schema]);
      for (const [type, c] of Object.entries(op.requestBody?.content ?? {})) schemas.push([`${method} ${path} body ${type}`, c.schema]);
      for (const [status, answer] of Object.entries(op.responses)) {
        for (const [type, c] of Object.entries((answer as { content?: Record<string, { schema?: unknown }> }).content ?? {})) if (c.schema !== undefined) schemas.push([`${method} ${path} ${status} ${type}`, c.schema]);
      }
    }
    expect(schemas.length).toBeGreaterThan(80);
    for (const [where, schema] of schemas) expect({ where, valid: ajv.validateSchema(schema), errors: ajv.errors ?? null }).toEqual({ where, valid: true, errors: null });
    // And it does refuse a schema that is not one.
    expect(ajv.validateSchema({ type: "strng" })).toBe(false);
  });

  it("names every admin route exactly once, with the permission it needs", () => {
    const documented = operations().map(([method, path]) => `${method} ${path.replace(/\{([^}]+)\}/g, ":$1")}`);
    expect(documented.sort()).toEqual(ADMIN_ROUTES.map(routeId).sort());
    expect(new Set(documented).size).toBe(documented.length);
    for (const route of ADMIN_ROUTES) {
      const op = doc.paths[route.path.replace(/:([A-Za-z0-9_]+)/g, "{$1}")]?.[route.method.toLowerCase()];
      expect(op?.["x-portcullis-permission"]).toBe(route.permission);
      expect(op?.security).toEqual(route.permission === "public" ? [] : [{ portcullisSignature: [route.permission] }]);
      expect(op?.["x-portcullis-operator-only"]).toBe(route.schema.operatorOnly === true ? true : undefined);
    }
    expect(new Set(operations().map(([, , op]) => op.operationId)).size).toBe(operations().length);
  });

  it("declares path and query parameters, bodies and answers from the same schemas that validate them", () => {
    const list = doc.paths["/portcullis/v1/keys"]?.get;
    expect(list?.parameters?.map((p) => p.name).sort()).toEqual(["account", "after", "limit", "q", "status"]);
    expect(list?.parameters?.find((p) => p.name === "q")?.schema).toMatchObject({ type: "string", minLength: 1, maxLength: 100 });
    expect(list?.parameters?.find((p) => p.name === "limit")?.schema).toMatchObject({ type: "integer", minimum: 1, maximum: 1000 });
    const risk = doc.paths["/portcullis/v1/risk"]?.get;
    expect(risk?.parameters?.find((p) => p.name === "keys")).toMatchObject({ in: "query", style: "form", explode: false, schema: { type: "array", minItems: 1, maxItems: 100 } });
    const one = doc.paths["/portcullis/v1/keys/{id}"]?.get;
    expect(one?.parameters).toEqual([expect.objectContaining({ name: "id", in: "path", required: true })]);
    const create = doc.paths["/portcullis/v1/keys"]?.post;
    const body = create?.requestBody?.content["application/json"]?.schema;
    expect(create?.requestBody?.required).toBe(true);
    expect(body).toMatchObject({ type: "object", additionalProperties: false, required: ["account", "scopes"] });
    expect(create?.responses["201"]).toMatchObject({ content: { "application/json": { schema: { $ref: "#/components/schemas/Key" } } } });
    // Routes without a body declare none; every route answers the shared error.
    expect(doc.paths["/portcullis/v1/keys/{id}/resume"]?.post?.requestBody).toBeUndefined();
    for (const [, , op] of operations()) expect(op.responses.default).toEqual({ $ref: "#/components/responses/Error" });
  });

  it("describes the error shape with its codes, and the RFC 9421 signature", () => {
    const error = doc.components.schemas.Error as { properties: { code: { enum: string[] } }; required: string[] };
    expect(error.properties.code.enum).toEqual([...ERROR_CODES]);
    expect(error.properties.code.enum).toContain("VALIDATION_FAILED");
    expect(error.required).toEqual(["code", "message", "requestId"]);
    expect(doc.components.securitySchemes.portcullisSignature).toMatchObject({ type: "apiKey", in: "header", name: "Signature", description: expect.stringMatching(/RFC 9421/) as unknown });
  });
});
