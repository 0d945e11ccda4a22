import { RouteTable, type RouteSpec } from "../authz/routes.js";
import { peerCertThumbprint } from "../net/client-cert.js";
import type { Portcullis } from "../core/core.js";
import type { IncomingMessage, ServerResponse } from "node:http";
import { PortcullisError, serviceErrorBody } from "../errors/catalogue.js";
import { parseJsonBody, readBody, sendDenial, sendJson, whenClosed } from "./http.js";
import { limitHeaders } from "../limits/headers.js";
import { parseDuration } from "../keys/input.js";
import type { RequestContext } from "../contract/request.js";
import { isJsonObject, record, unknownMembers } from "../contract/json.js";
import { type Exchange, Lifecycle, type Outcome } from "../pipeline/lifecycle.js";
import type { Pipeline } from "../pipeline/pipeline.js";
import type { AuditSurface } from "../audit/events.js";
import type { IssuedSession, LogonRequest, SessionAuthority } from "../sessions/authority.js";

/**
 * The session endpoints, served by the gateway (and the admin listener, for the console) under its own prefix (DESIGN.md, promised
 * interfaces). Each request runs through the full pipeline first (signature, freshness, replay,
 * the key's status and allowlist, limits), over this route table:
 *
 *   POST   /portcullis/v1/session           logon, signed with the API key in the native scheme;
 *                                          body (optional): { "scopes"?: [...], "ttl"?: "5m",
 *                                          "bindAddress"?: true }
 *          -> 201 { keyid, secret, expiresAt, scopes, apiKeyId, boundAddress }
 *   POST   /portcullis/v1/session/refresh   signed with the session: the same session, a new expiry
 *          -> 200 (the same shape; the secret does not change)
 *   DELETE /portcullis/v1/session           signed with the session: logout -> 204
 *
 * A session's requests are native RFC 9421 requests with alg="hmac-sha256", keyid = the token
 * and the session secret's UTF-8 bytes as the HMAC key.
 */
export const SESSION_PATH = "/portcullis/v1/session";

export const SESSION_ROUTES: readonly RouteSpec[] = [
  { method: "POST", path: SESSION_PATH, permission: "authenticated", weight: 10 },
  { method: "POST", path: `${SESSION_PATH}/refresh`, permission: "authenticated", weight: 1 },
  { method: "DELETE", path: SESSION_PATH, permission: "authenticated", weight: 1 },
];

export interface Answer {
  readonly status: number;
  /** JSON text, or null for no body (204). */
  readonly body: string | null;
}

function view(issued: IssuedSession): string {
  return JSON.stringify({
    keyid: issued.keyid,
    secret: issued.secret,
    expiresAt: issued.expiresAt,
    scopes: issued.scopes,
    apiKeyId: issued.keyId,
    boundAddress: issued.boundAddress,
  });
}

const LOGON_FIELDS: ReadonlySet<string> = new Set(["scopes", "ttl", "bindAddress"]);

/** Render: the endpoint's answer, or a refusal, with the request's rate-limit fields. */
function render(ctx: RequestContext, outcome: Outcome<Answer>, res: ServerResponse): void {
  const headers = limitHeaders(ctx);
  switch (outcome.kind) {
    case "refused":
      sendDenial(res, outcome.denial, ctx.requestId, { headers });
      return;
    case "failed":
      sendJson(res, outcome.error.status, serviceErrorBody(outcome.error, ctx.requestId), ctx.requestId, undefined, headers);
      return;
    case "answered": {
      const answer = outcome.answer;
      if (answer.body === null) {
        res.writeHead(answer.status, { "portcullis-request-id": ctx.requestId, "cache-control": "no-store", ...headers });
        res.end();
      } else {
        sendJson(res, answer.status, answer.body, ctx.requestId, undefined, headers);
      }
    }
  }
}

/**
 * A logon's body (parsed by `parseJsonBody`); VALIDATION_FAILED with the fields at fault. Field
 * errors are a null-prototype record (contract/json.ts): `__proto__` is an unknown field too.
 */
export function parseLogon(raw: unknown): LogonRequest {
  if (!isJsonObject(raw)) throw new PortcullisError("VALIDATION_FAILED", "the body must be a JSON object");
  const o = raw;
  const errors = record<string>();
  for (const field of unknownMembers(o, LOGON_FIELDS)) errors[field] = "unknown field";
  const out: { scopes?: readonly string[]; ttlMs?: number; bindAddress?: boolean } = {};
  if (o.scopes !== undefined) {
    if (!Array.isArray(o.scopes) || !o.scopes.every((x): x is string => typeof x === "string")) errors.scopes = "a list of scopes, e.g. [\"read\"]";
    else out.scopes = o.scopes;
  }
  if (o.ttl !== undefined) {
    const ms = typeof o.ttl === "string" ? parseDuration(o.ttl) : null;
    if (ms === null || !ms.ok) errors.ttl = 'a duration such as "5m" or "1h"';
    else out.ttlMs = ms.value;
  }
  if (o.bindAddress !== undefined) {
    if (typeof o.bindAddress !== "boolean") errors.bindAddress = "true or false";
    else out.bindAddress = o.bindAddress;
  }
  const fields = Object.keys(errors);
  if (fields.length > 0) throw new PortcullisError("VALIDATION_FAILED", `invalid logon: ${fields.map((f) => `${f}: ${errors[f] ?? ""}`).join("; ")}`, { ...errors });
  return out;
}

/** A logon's body is a few scopes and options. */
const SESSION_BODY_LIMIT = 16 * 1024;

export class SessionEndpoints {
  readonly pipeline: Pipeline;
  private readonly core: Portcullis;
  private readonly sessions: SessionAuthority;
  private readonly lifecycles: ReadonlyMap<AuditSurface, Lifecycle<ServerResponse, Answer>>;

  constructor(core: Portcullis) {
    if (core.sessions === null) throw new TypeError("the core has no session authority (PortcullisOptions.sessions)");
    this.core = core;
    this.sessions = core.sessions;
    // Shares the core's keys, cache, replay state and limits: a nonce spent here cannot be replayed
    // on the gateway's routes, and logons count against the key's limits.
    this.pipeline = core.createPipeline(new RouteTable(SESSION_ROUTES, { allowReserved: true }));
    const exchange: Exchange<ServerResponse, Answer> = {
      handOn: (ctx) => this.answer(ctx),
      render: (ctx, outcome, res) => {
        render(ctx, outcome, res);
      },
      untilDone: whenClosed,
    };
    const lifecycle = (surface: AuditSurface): Lifecycle<ServerResponse, Answer> =>
      new Lifecycle({ pipeline: this.pipeline, surface, audit: core.audit, logger: core.logger, exchange });
    this.lifecycles = new Map([
      ["gateway", lifecycle("gateway")],
      ["embedded", lifecycle("embedded")],
      ["authorizer", lifecycle("authorizer")],
      // The admin listener (admin/console.ts): the console signs in with the user's own key.
      ["admin", lifecycle("admin")],
    ]);
  }

  /** Is `path` (without its query) one of these endpoints? */
  static serves(path: string): boolean {
    return path === SESSION_PATH || path === `${SESSION_PATH}/refresh`;
  }

  /**
   * Serves one request (the gateway, the authorizer and the embedded middleware call this): its body read, then
   * the request lifecycle over the session routes, then the endpoint; every refusal answered in
   * the native JSON shape with its code. Rejects only for our own faults.
   */
  async serve(req: IncomingMessage, res: ServerResponse, requestId: string, surface: "gateway" | "embedded" | "authorizer" | "admin" = "gateway", bodyLimit = SESSION_BODY_LIMIT): Promise<void> {
    let body = readBody(req, Math.min(bodyLimit, SESSION_BODY_LIMIT));
    if (body instanceof Promise) body = await body;
    const lifecycle = this.lifecycles.get(surface) as Lifecycle<ServerResponse, Answer>;
    await lifecycle.serve({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body, socketAddress: req.socket.remoteAddress, clientCert: peerCertThumbprint(req.socket) }, requestId, res);
  }

  /** A session event for the audit log: who, which session (its id, never its token or secret). */
  private audited(event: "session.create" | "session.refresh" | "session.revoke", ctx: RequestContext, sessionId: string, detail: Record<string, unknown>): void {
    const record = ctx.key?.record;
    this.core.audit.record({
      event,
      at: ctx.now,
      actor: `key:${record?.id ?? "unknown"}`,
      key: record?.id,
      account: record?.account,
      client: ctx.client?.text,
      requestId: ctx.requestId,
      detail: { session: sessionId, ...detail },
    });
  }

  /** Answers a request the pipeline allowed. Throws PortcullisError for a refusal. */
  async answer(ctx: RequestContext): Promise<Answer> {
    const key = ctx.key;
    const route = ctx.route;
    if (key === null || route === null) throw new PortcullisError("INTERNAL", "session endpoint without a key");
    const session = key.session;
    switch (route.id) {
      case `POST ${SESSION_PATH}`: {
        if (session !== null) throw new PortcullisError("SESSION_NOT_ALLOWED");
        const issued = await this.sessions.logon(key, parseLogon(parseJsonBody(ctx.body)), ctx.client?.text ?? "", ctx.now);
        this.audited("session.create", ctx, issued.sessionId, { scopes: issued.scopes, expiresAt: issued.expiresAt, boundAddress: issued.boundAddress });
        return { status: 201, body: view(issued) };
      }
      case `POST ${SESSION_PATH}/refresh`: {
        if (session === null) throw new PortcullisError("SESSION_REQUIRED");
        const issued = await this.sessions.refresh(session, key, ctx.now);
        this.audited("session.refresh", ctx, session.sid, { expiresAt: issued.expiresAt });
        return { status: 200, body: view(issued) };
      }
      case `DELETE ${SESSION_PATH}`: {
        if (session === null || ctx.keyId === null) throw new PortcullisError("SESSION_REQUIRED");
        try {
          await this.core.endSession(session, ctx.keyId, ctx.now);
        } catch (err) {
          // Fail closed: the caller learns the logout is not recorded, and may retry it.
          this.core.logger.warn({ requestId: ctx.requestId, err }, "logout could not be recorded");
          throw new PortcullisError("HOT_STORE_UNAVAILABLE");
        }
        this.audited("session.revoke", ctx, session.sid, { reason: "logout" });
        return { status: 204, body: null };
      }
      default:
        throw new PortcullisError("ROUTE_NOT_FOUND");
    }
  }
}
