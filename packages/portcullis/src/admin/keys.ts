import { DIALECTS, KEY_ALGORITHMS, KEY_STATUSES } from "../contract/keys.js";
import { ACCOUNT, ALLOWLIST, DURATION, EPOCH_MS, GUARDRAILS, ID, KEY, LIMIT_PARAM, LIMITS, OWNER, REASON, SCOPES, TEXT } from "./schema/common.js";
import { s } from "./schema/nodes.js";
import { type AdminRoute, adminRoute } from "./schema/routes.js";

/**
 * The key routes of the admin API and their contracts (admin/schema/): the handlers are in
 * admin/server.ts, the meaning of each member in keys/input.ts, which runs after the schema.
 */
const KEY_PARAM = { id: ID };
const REASON_BODY = s.object({ reason: s.optional(REASON) });

export const KEY_ROUTES: readonly AdminRoute[] = [
  adminRoute("GET", "/portcullis/v1/time", "public", {
    summary: "The server's clock (public): a client's skew check",
    answers: { 200: { description: "the time", schema: s.openObject({ serverTime: EPOCH_MS }) } },
  }),
  adminRoute("GET", "/portcullis/v1/health", "public", {
    summary: "Liveness (public)",
    answers: { 200: { description: "alive", schema: s.openObject({ status: s.enum(["ok"]) }) } },
  }),
  adminRoute("POST", "/portcullis/v1/keys", "admin:keys", {
    summary: "Create a key; an HMAC key's secret is in this answer only",
    body: s.object({
      account: ACCOUNT,
      subAccount: s.optional(s.nullable(ACCOUNT)),
      label: s.optional(TEXT(128)),
      scopes: SCOPES,
      ipAllowlist: s.optional(ALLOWLIST),
      algorithm: s.optional(s.enum(KEY_ALGORITHMS)),
      publicKey: s.optional(s.string({ minLength: 1, maxLength: 16_384, description: "the public key as PEM (SPKI) or JWK text, or for a secp256k1 key the hex of its point (0x02…/0x03… compressed, 0x04… uncompressed)" })),
      wallet: s.optional(s.string({ pattern: /^0x[0-9a-fA-F]{40}$/, description: "a wallet owner key (docs/wallets.md): the wallet's address, 0x and 40 hex digits" })),
      expires: s.optional(s.nullable(s.anyOf([s.string({ minLength: 1, maxLength: 64 }), EPOCH_MS]), 'a duration ("30d", "12h"), an ISO-8601 time or epoch milliseconds (or null)')),
      windowMs: s.optional(s.nullable(s.integer({ minimum: 1000, maximum: 60_000 }))),
      dialects: s.optional(s.array(s.enum(DIALECTS), { minItems: 1, maxItems: DIALECTS.length })),
      passphrase: s.optional(s.string({ pattern: /^[\x21-\x7e]{8,64}$/, description: "8 to 64 printable ASCII characters, no spaces (OKX keys)" })),
      limits: s.optional(LIMITS),
      sessionTtl: s.optional(s.nullable(DURATION)),
      sessionBindAddress: s.optional(s.boolean()),
      maxAge: s.optional(s.nullable(DURATION)),
      operator: s.optional(s.boolean()),
      owner: s.optional(OWNER),
      guardrails: s.optional(s.nullable(GUARDRAILS)),
      certThumbprint: s.optional(s.nullable(s.string({ pattern: /^[A-Za-z0-9_-]{43}$/, description: "the certificate's SHA-256 thumbprint: 43 characters of base64url (RFC 8705 x5t#S256), e.g. from `portcullis keys create --cert FILE`" }))),
    }),
    answers: { 201: { description: "the key (with `secret` for an HMAC key)", schema: KEY } },
  }),
  adminRoute("GET", "/portcullis/v1/keys", "admin:keys", {
    summary: "List keys, ordered by id, paged by `after`",
    query: {
      q: { schema: s.string({ minLength: 1, maxLength: 100, description: "search, case-insensitively: a key id prefix, an account prefix or a substring of the label (1 to 100 characters)" }) },
      account: { schema: ACCOUNT },
      status: { schema: s.enum(KEY_STATUSES) },
      after: { schema: ID },
      limit: LIMIT_PARAM,
    },
    answers: { 200: { description: "a page of keys; `next` is the `after` of the next page, or null", schema: s.openObject({ keys: s.array(KEY), next: s.nullable(s.string()) }) } },
  }),
  adminRoute("GET", "/portcullis/v1/keys/:id", "admin:keys", { summary: "One key", params: KEY_PARAM, answers: { 200: { description: "the key", schema: KEY } } }),
  adminRoute("POST", "/portcullis/v1/keys/:id/revoke", "admin:keys", { summary: "Revoke a key (final)", params: KEY_PARAM, body: REASON_BODY, answers: { 200: { description: "the key", schema: KEY } } }),
  adminRoute("POST", "/portcullis/v1/keys/:id/suspend", "admin:keys", { summary: "Suspend a key", params: KEY_PARAM, body: REASON_BODY, answers: { 200: { description: "the key", schema: KEY } } }),
  adminRoute("POST", "/portcullis/v1/keys/:id/resume", "admin:keys", { summary: "Resume a suspended key", params: KEY_PARAM, answers: { 200: { description: "the key", schema: KEY } } }),
  adminRoute("PUT", "/portcullis/v1/keys/:id/limits", "admin:keys", {
    summary: "Replace a key's limit overrides (an account admin key sets none)",
    params: KEY_PARAM,
    body: s.object({ limits: LIMITS }),
    answers: { 200: { description: "the key", schema: KEY } },
  }),
  adminRoute("PATCH", "/portcullis/v1/keys/:id", "admin:keys", {
    summary: "Change a key; members absent stay as they are (guardrails: a merge patch)",
    params: KEY_PARAM,
    body: s.object({
      label: s.optional(TEXT(128)),
      scopes: s.optional(SCOPES),
      ipAllowlist: s.optional(ALLOWLIST),
      sessionTtl: s.optional(s.nullable(DURATION)),
      sessionBindAddress: s.optional(s.boolean()),
      maxAge: s.optional(s.nullable(DURATION)),
      owner: s.optional(OWNER),
      guardrails: s.optional(s.nullable(GUARDRAILS)),
    }),
    answers: { 200: { description: "the key", schema: KEY } },
  }),
  adminRoute("POST", "/portcullis/v1/keys/:id/rotate", "admin:keys", {
    summary: "Rotate a key: a successor, the old key working for the grace period",
    params: KEY_PARAM,
    body: s.object({
      grace: s.optional(s.anyOf([s.enum(["0"]), DURATION], 'a duration such as "24h" (at most 30d), or "0"')),
      publicKey: s.optional(s.string({ minLength: 1, maxLength: 16_384, description: "the successor's public key (PEM, JWK, or hex for secp256k1): required for an asymmetric key" })),
    }),
    answers: { 201: { description: "the successor (with `secret` for an HMAC key) and its predecessor", schema: s.openObject({ id: s.string(), predecessor: KEY }) } },
  }),
  adminRoute("POST", "/portcullis/v1/keys/:id/end-sessions", "admin:keys", { summary: "End every session of a key", params: KEY_PARAM, body: REASON_BODY, answers: { 200: { description: "the key", schema: KEY } } }),
];
