import { type JsonObject, isJsonObject, unknownMembers } from "../contract/json.js";
import { grantedPermissions } from "../contract/permissions.js";
import type { RequestContext } from "../contract/request.js";
import type { Portcullis } from "../core/core.js";
import { AUTH_FAILURES, type ErrorCode, PortcullisError } from "../errors/catalogue.js";
import { parseJsonBody } from "../gateway/http.js";
import { keyDenial } from "../pipeline/stages/key.js";
import type { Pipeline } from "../pipeline/pipeline.js";
import type { PasskeyRow } from "../storage/types.js";
import { s } from "./schema/nodes.js";
import { type AdminRoute, adminRoute, routeId } from "./schema/routes.js";
import { MAX_PASSKEY_LABEL, PasskeyCloneError, type PasskeyService, parseAuthenticationCredential, parseRegistrationCredential, passkeyView } from "../sessions/passkeys.js";

/**
 * Passkeys (WebAuthn) on the admin API (docs/passkeys.md): the console's sign-in with a passkey
 * bound to an API key, beside the signed logon.
 *
 *   POST   /portcullis/v1/passkeys/registration/options   signed by the key itself (never a session): { "label"?: string }
 *          -> 200 PublicKeyCredentialCreationOptionsJSON (for navigator.credentials.create)
 *   POST   /portcullis/v1/passkeys/registration            { "credential": RegistrationResponseJSON } -> 201 passkey
 *   GET    /portcullis/v1/passkeys                         the caller's key's passkeys -> { "passkeys": [...] }
 *   DELETE /portcullis/v1/passkeys/:id                     -> 200 the passkey removed
 *   POST   /portcullis/v1/passkeys/authentication/options  public -> 200 PublicKeyCredentialRequestOptionsJSON
 *   POST   /portcullis/v1/passkeys/authentication          public: { "credential": AuthenticationResponseJSON }
 *          -> 201 { keyid, secret, expiresAt, scopes, apiKeyId, boundAddress }: a session of the
 *             passkey's key, as POST /portcullis/v1/session answers
 *
 * A passkey is registered only to an admin key (one with an `admin:` scope), by a request signed
 * with that key itself (never a session: SESSION_NOT_ALLOWED), since a passkey signs in with every
 * scope of its key for as long as the key lives. The sign-in routes are public, charged
 * to the client's address by the route's weight like any public route; each refused sign-in is
 * also counted as an authentication failure of the address (AUTH_FAILURES), so repeated guesses
 * block it (IP_BLOCKED) as bad signatures do.
 */
/** A passkey as the routes answer it (sessions/passkeys.ts `passkeyView`). */
const PASSKEY = s.ref(
  "Passkey",
  s.openObject({ id: s.string(), keyId: s.string(), label: s.string(), transports: s.array(s.string()), counter: s.integer(), createdAt: s.integer(), lastUsedAt: s.nullable(s.integer()) }),
);
/** The browser's credential, `PublicKeyCredential.toJSON()`: read strictly by sessions/passkeys.ts. */
const CREDENTIAL = s.any("the browser's PublicKeyCredential.toJSON() (WebAuthn Level 3), read strictly by the server");
const OPTIONS_ANSWER = (what: string) => ({ 200: { description: what, schema: s.openObject({ challenge: s.string() }) } });

export const PASSKEY_ROUTES: readonly AdminRoute[] = [
  adminRoute("POST", "/portcullis/v1/passkeys/registration/options", "authenticated", {
    summary: "WebAuthn creation options for a new passkey of the calling admin key (signed by the key itself: a session is SESSION_NOT_ALLOWED)",
    body: s.object({ label: s.optional(s.string({ minLength: 1, maxLength: MAX_PASSKEY_LABEL })) }),
    answers: OPTIONS_ANSWER("PublicKeyCredentialCreationOptionsJSON, for navigator.credentials.create"),
  }),
  adminRoute("POST", "/portcullis/v1/passkeys/registration", "authenticated", {
    summary: "Register the passkey the browser created (signed by the key itself; its challenge single use, 5 minutes)",
    body: s.object({ credential: CREDENTIAL }),
    answers: { 201: { description: "the passkey", schema: PASSKEY } },
  }),
  adminRoute("GET", "/portcullis/v1/passkeys", "authenticated", {
    summary: "The calling key's passkeys",
    answers: { 200: { description: "the passkeys", schema: s.openObject({ passkeys: s.array(PASSKEY) }) } },
  }),
  adminRoute("DELETE", "/portcullis/v1/passkeys/:id", "authenticated", {
    summary: "Remove one of the calling key's passkeys",
    params: { id: s.string({ minLength: 1, maxLength: 200 }) },
    answers: { 200: { description: "the passkey removed", schema: PASSKEY } },
  }),
  { ...adminRoute("POST", "/portcullis/v1/passkeys/authentication/options", "public", {
    summary: "WebAuthn request options for a passkey sign-in (public; challenge single use, 2 minutes)",
    body: s.object({}),
    answers: OPTIONS_ANSWER("PublicKeyCredentialRequestOptionsJSON, for navigator.credentials.get"),
  }), weight: 5 },
  { ...adminRoute("POST", "/portcullis/v1/passkeys/authentication", "public", {
    summary: "Sign in with a passkey: a session of the passkey's key, as POST /portcullis/v1/session answers (public)",
    body: s.object({ credential: CREDENTIAL }),
    answers: {
      201: {
        description: "the session",
        schema: s.openObject({ keyid: s.string(), secret: s.string(), expiresAt: s.integer(), scopes: s.array(s.string()), apiKeyId: s.string(), boundAddress: s.nullable(s.string()) }),
      },
    },
  }), weight: 10 },
];

const ROUTE_IDS: ReadonlySet<string> = new Set(PASSKEY_ROUTES.map(routeId));

/** A passkey session's lifetime: 15 minutes, or the key's own session lifetime when shorter. */
export const PASSKEY_SESSION_TTL_MS = 15 * 60_000;

const OPTIONS_FIELDS: ReadonlySet<string> = new Set(["label"]);
const CREDENTIAL_FIELDS: ReadonlySet<string> = new Set(["credential"]);

/** The body as a JSON object with only `known` members (VALIDATION_FAILED otherwise). */
function body(ctx: RequestContext, known: ReadonlySet<string>): JsonObject {
  const raw = parseJsonBody(ctx.body);
  if (!isJsonObject(raw)) throw new PortcullisError("VALIDATION_FAILED", "the body must be a JSON object");
  const extra = unknownMembers(raw, known);
  if (extra.length > 0) throw new PortcullisError("VALIDATION_FAILED", `unknown field: ${extra.join(", ")}`, Object.fromEntries(extra.map((f) => [f, "unknown field"])));
  return raw;
}

function label(o: JsonObject): string {
  const v = o.label;
  if (v === undefined) return "";
  // eslint-disable-next-line no-control-regex
  if (typeof v !== "string" || v.length > MAX_PASSKEY_LABEL || /[\u0000-\u001f\u007f]/.test(v)) {
    throw new PortcullisError("VALIDATION_FAILED", `label: a string of at most ${MAX_PASSKEY_LABEL} characters, no control characters`, { label: "invalid" });
  }
  return v;
}

/**
 * The caller, checked: an admin key, acting with all of its scopes, and signing with **the key
 * itself**. A passkey outlives every session, so a session (15 minutes, perhaps stolen, perhaps
 * opened with a passkey) must not be able to mint one: that would turn a short credential into a
 * lasting one that `end-sessions` does not end. SESSION_NOT_ALLOWED, as for a logon with a session.
 */
function registrant(ctx: RequestContext): NonNullable<RequestContext["key"]> {
  const key = ctx.key;
  if (key === null) throw new PortcullisError("INTERNAL", "passkey route without a key");
  if (key.session !== null) throw new PortcullisError("SESSION_NOT_ALLOWED", "register a passkey with a request signed by the key itself: a session cannot create a credential that outlives it");
  const held = grantedPermissions(key.record.scopes);
  if (![...held].some((p) => p.startsWith("admin:"))) throw new PortcullisError("SCOPE_MISSING", "passkeys sign in to the console: only an admin key (an admin: scope) may have one");
  return key;
}

/** What the passkey routes need of the admin API. */
export interface PasskeyAdmin {
  readonly service: PasskeyService;
  readonly core: Portcullis;
  /** The admin pipeline: refused sign-ins are counted toward its address blocks. */
  readonly pipeline: Pipeline;
}

/** The answer to one of PASSKEY_ROUTES, or undefined for another route. */
export async function passkeysAnswer(admin: PasskeyAdmin | null, ctx: RequestContext): Promise<{ status: number; body: unknown } | undefined> {
  const route = ctx.route;
  if (route === null || !ROUTE_IDS.has(route.id)) return undefined;
  if (admin === null || admin.core.sessions === null) throw new PortcullisError("ROUTE_NOT_FOUND");
  const service = admin.service;
  switch (route.id) {
    case "POST /portcullis/v1/passkeys/registration/options": {
      const key = registrant(ctx);
      return { status: 200, body: await service.registrationOptions(key.record, label(body(ctx, OPTIONS_FIELDS)), ctx.now) };
    }
    case "POST /portcullis/v1/passkeys/registration": {
      const key = registrant(ctx);
      const credential = parseRegistrationCredential(body(ctx, CREDENTIAL_FIELDS).credential);
      const row = await service.register(key.record, credential, `key:${key.record.id}`, ctx.now);
      admin.core.logger.info({ requestId: ctx.requestId, keyId: row.keyId, credential: row.id }, "passkey registered");
      return { status: 201, body: passkeyView(row) };
    }
    case "GET /portcullis/v1/passkeys": {
      const key = ctx.key;
      if (key === null) throw new PortcullisError("INTERNAL", "passkey route without a key");
      return { status: 200, body: { passkeys: (await service.list(key.record.id)).map(passkeyView) } };
    }
    case "DELETE /portcullis/v1/passkeys/:id": {
      const key = ctx.key;
      if (key === null) throw new PortcullisError("INTERNAL", "passkey route without a key");
      // Canonical, matched path: /portcullis/v1/passkeys/<id>; credential ids are base64url.
      const id = ctx.path.split("/")[4] ?? "";
      return { status: 200, body: passkeyView(await service.remove(id, key.record.id, `key:${key.record.id}`, ctx.now)) };
    }
    case "POST /portcullis/v1/passkeys/authentication/options":
      body(ctx, new Set());
      return { status: 200, body: await service.authenticationOptions(ctx.now) };
    case "POST /portcullis/v1/passkeys/authentication":
      return signIn(admin, ctx);
    default:
      return undefined;
  }
}

/** A refused sign-in counts toward the address's block (an authentication failure). */
function counted(admin: PasskeyAdmin, ctx: RequestContext, code: ErrorCode): void {
  if (ctx.client !== null && AUTH_FAILURES.has(code)) admin.pipeline.recordFailure(code, ctx.client.group, null, false, ctx.now);
}

/**
 * The sign-in: the passkey's answer verified, then its key checked as stage 4 checks a key (status,
 * expiry, environment, allowlist, client certificate), then a session of the key, audited as a
 * logon (`session.create`, method "passkey", with the credential id).
 */
async function signIn(admin: PasskeyAdmin, ctx: RequestContext): Promise<{ status: number; body: unknown }> {
  const core = admin.core;
  const sessions = core.sessions;
  if (sessions === null) throw new PortcullisError("ROUTE_NOT_FOUND");
  let passkey: PasskeyRow;
  try {
    const credential = parseAuthenticationCredential(body(ctx, CREDENTIAL_FIELDS).credential);
    passkey = (await admin.service.authenticate(credential, ctx.now)).passkey;
  } catch (err) {
    if (err instanceof PasskeyCloneError) {
      const p = err.passkey;
      core.audit.record({
        event: "passkey.clone",
        at: ctx.now,
        actor: "anonymous",
        key: p.keyId,
        account: p.account,
        client: ctx.client?.text,
        requestId: ctx.requestId,
        detail: { passkey: p.id, counter: p.counter, presented: err.presented },
      });
      core.logger.warn({ requestId: ctx.requestId, keyId: p.keyId, credential: p.id, counter: p.counter, presented: err.presented }, "passkey sign-in refused: the signature counter went back (a cloned authenticator?)");
    }
    if (err instanceof PortcullisError) counted(admin, ctx, err.code);
    throw err;
  }
  const key = await core.cache.load(passkey.keyId);
  const denial = keyDenial(key, sessions.environment, "native", ctx.client, ctx.clientCert, ctx.now, null);
  if (denial !== undefined || key === null) {
    const code = denial?.code ?? "KEY_UNKNOWN";
    counted(admin, ctx, code);
    throw new PortcullisError(code);
  }
  if (![...grantedPermissions(key.record.scopes)].some((p) => p.startsWith("admin:"))) throw new PortcullisError("SCOPE_MISSING", "the passkey's key no longer holds an admin: scope");
  const keyTtl = key.record.sessionTtlMs ?? PASSKEY_SESSION_TTL_MS;
  const issued = await sessions.logon(key, keyTtl > PASSKEY_SESSION_TTL_MS ? { ttlMs: PASSKEY_SESSION_TTL_MS } : {}, ctx.client?.text ?? "", ctx.now);
  core.audit.record({
    event: "session.create",
    at: ctx.now,
    actor: `key:${key.record.id}`,
    key: key.record.id,
    account: key.record.account,
    client: ctx.client?.text,
    requestId: ctx.requestId,
    detail: { session: issued.sessionId, scopes: issued.scopes, expiresAt: issued.expiresAt, boundAddress: issued.boundAddress, method: "passkey", passkey: passkey.id },
  });
  return {
    status: 201,
    body: { keyid: issued.keyid, secret: issued.secret, expiresAt: issued.expiresAt, scopes: issued.scopes, apiKeyId: issued.keyId, boundAddress: issued.boundAddress },
  };
}
