import { ERROR_CODES } from "../../errors/catalogue.js";
import { type JsonSchema, type Node, s, toJsonSchema } from "./nodes.js";
import { type AdminRoute, type AnswerSchema, NO_BODY, type QueryParam } from "./routes.js";

/**
 * The OpenAPI 3.1 document of the admin API, generated from the very declarations that validate
 * each request (admin/schema/routes.ts): built once, served at `GET /admin/v1/openapi.json`.
 * Servers are omitted, so a reader resolves the paths against the listener it fetched it from.
 */

/** Where the admin listener serves the document (public: no signature, not audited). */
export const OPENAPI_PATH = "/admin/v1/openapi.json";

const SECURITY_SCHEME = "portcullisSignature";

/** The refusal every route may answer: a stable code, a public message, the request id, the fields at fault. */
const ERROR = s.ref(
  "Error",
  s.object({
    code: s.enum(ERROR_CODES, "the stable error code (docs/errors.md); never renamed"),
    message: s.string({ description: "a public message" }),
    requestId: s.string({ description: "the request's id, also in the portcullis-request-id header" }),
    fields: s.optional(s.record(s.string(), { description: "VALIDATION_FAILED: each field (or query parameter) at fault and its problem" })),
  }),
);

const DESCRIPTION = [
  "The Portcullis admin API: keys, the policy and the address books, approvers and approvals, anomaly actions and risk profiles (docs/admin-api.md).",
  "",
  "Every request but the public ones is signed with an admin key (RFC 9421 HTTP Message Signatures, the native scheme of docs/signing.md, or a session's HMAC) and needs the `admin:*` scope its operation names in `x-portcullis-permission`.",
  "An operator key reaches every account; an account admin key only its own (another account's object is answered exactly like a missing one).",
  "",
  "Each request is checked against the schemas of this document before it is handled: path parameters, query parameters and the JSON body. Members and query parameters that are not declared are refused, as are query parameters given twice (unless declared as a list of repeated values). A refusal is 400 `VALIDATION_FAILED` whose `fields` names every field at fault.",
].join("\n");

/** The OpenAPI 3.1 document of `routes`. */
export function openApiDocument(routes: readonly AdminRoute[]): JsonSchema {
  const components = new Map<string, JsonSchema>();
  const schema = (node: Node): JsonSchema => toJsonSchema(node, components);
  const paths: Record<string, Record<string, unknown>> = {};
  const errorSchema = schema(ERROR);
  for (const route of routes) {
    const r = route.schema;
    const path = route.path.replace(/:([A-Za-z0-9_]+)/g, "{$1}");
    const item = (paths[path] ??= {});
    const parameters: unknown[] = [];
    for (const [name, node] of Object.entries(r.params ?? {})) parameters.push({ name, in: "path", required: true, schema: schema(node) });
    for (const [name, p] of Object.entries(r.query ?? {})) parameters.push(queryParameter(name, p, schema));
    const body = r.body ?? NO_BODY;
    const hasBody = Object.keys(body.properties).length > 0;
    const publicRoute = route.permission === "public";
    const responses: Record<string, unknown> = {};
    for (const [status, answer] of Object.entries(r.answers)) {
      responses[status] = {
        description: answer.description,
        ...(answer.schema === undefined && answer.contentType === undefined ? {} : { content: content(answer, schema) }),
      };
    }
    const error = { $ref: "#/components/responses/Error" };
    responses["400"] = error;
    if (!publicRoute) {
      responses["401"] = error;
      responses["403"] = error;
    }
    responses.default = error;
    item[route.method.toLowerCase()] = {
      operationId: operationId(route),
      summary: r.summary,
      ...(r.description === undefined ? {} : { description: r.description }),
      tags: [tagOf(route.path)],
      ...(parameters.length === 0 ? {} : { parameters }),
      ...(hasBody ? { requestBody: { required: body.required.length > 0, content: { "application/json": { schema: schema(body) } } } } : {}),
      responses,
      security: publicRoute ? [] : [{ [SECURITY_SCHEME]: [route.permission] }],
      "x-portcullis-permission": route.permission,
      ...(r.operatorOnly === true ? { "x-portcullis-operator-only": true } : {}),
    };
  }
  return {
    openapi: "3.1.0",
    jsonSchemaDialect: "https://json-schema.org/draft/2020-12/schema",
    info: { title: "Portcullis admin API", version: "v1", description: DESCRIPTION },
    paths,
    components: {
      schemas: Object.fromEntries([...components].sort(([a], [b]) => a.localeCompare(b))),
      responses: { Error: { description: "a refusal: its code says why (docs/errors.md)", content: { "application/json": { schema: errorSchema } } } },
      securitySchemes: {
        [SECURITY_SCHEME]: {
          type: "apiKey",
          in: "header",
          name: "Signature",
          description:
            "RFC 9421 HTTP Message Signatures: the `Signature-Input` and `Signature` headers, signed by an admin key (Ed25519, ECDSA P-256, secp256k1, RSA or HMAC-SHA256) or by a session's HMAC key; `created` within the key's window and a single-use `nonce` (docs/signing.md). The roles each operation lists are the `admin:*` scopes it needs.",
        },
      },
    },
  };
}

/** An answer's media types, each with its schema (if any). */
function content(answer: AnswerSchema, schema: (node: Node) => JsonSchema): Record<string, unknown> {
  const types = answer.contentType === undefined ? ["application/json"] : typeof answer.contentType === "string" ? [answer.contentType] : answer.contentType;
  return Object.fromEntries(types.map((type) => [type, answer.schema === undefined ? {} : { schema: schema(answer.schema) }]));
}

function queryParameter(name: string, p: QueryParam, schema: (node: Node) => JsonSchema): Record<string, unknown> {
  const array = p.schema.kind === "array" || p.repeatable === true;
  return {
    name,
    in: "query",
    ...(p.required === true ? { required: true } : {}),
    ...(p.schema.description === undefined ? {} : { description: p.schema.description }),
    ...(array ? { style: "form", explode: p.repeatable === true } : {}),
    schema: schema(p.schema),
  };
}

/** `GET /portcullis/v1/keys/:id/risk` → `getKeysByIdRisk`. */
function operationId(route: AdminRoute): string {
  const words = route.path
    .replace(/^\/portcullis\/v1\//, "")
    .split("/")
    .flatMap((segment) => (segment.startsWith(":") ? ["by", segment.slice(1)] : segment.split(/[^A-Za-z0-9]+/)))
    .filter((w) => w !== "");
  return [route.method.toLowerCase(), ...words.map((w) => w.charAt(0).toUpperCase() + w.slice(1))].join("");
}

/** The first segment after /portcullis/v1/: keys, policy, addresses, approvals… */
function tagOf(path: string): string {
  return path.split("/")[3] ?? "admin";
}
