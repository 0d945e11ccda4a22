import { createHash, randomUUID, timingSafeEqual } from "node:crypto";
import type { TlsCredentials } from "../gateway/tls.js";
import { peerCertThumbprint } from "../net/client-cert.js";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { RouteTable } from "../authz/routes.js";
import type { Portcullis } from "../core/core.js";
import { PortcullisError, deny, errorBody, serviceErrorBody } from "../errors/catalogue.js";
import { METRICS_CONTENT_TYPE, type PortcullisMetrics } from "../metrics/metrics.js";
import { valueOrThrow } from "../errors/result.js";
import { readBody, sendDenial, sendJson, whenClosed } from "../gateway/http.js";
import { ServerLifecycle } from "../gateway/lifecycle.js";
import { mergeGuardrails, parseCreateKeyInput, parseLimitsInput, parseReasonInput, parseRotateKeyInput, parseUpdateKeyInput } from "../keys/input.js";
import type { KeyStatus } from "../contract/keys.js";
import type { Logger } from "../log/logger.js";
import type { RequestContext } from "../contract/request.js";
import { Lifecycle, type Outcome } from "../pipeline/lifecycle.js";
import type { Pipeline } from "../pipeline/pipeline.js";
import { AdminReach } from "./reach.js";
import { type Governance, POLICY_ROUTES, dispatchPolicy, isPolicyRoute } from "./policy.js";
import type { HoldService } from "../holds/service.js";
import { APPROVAL_ROUTES, approvalsAnswer } from "./approvals.js";
import { RISK_ROUTES, dispatchRisk, isRiskRoute } from "./risk.js";
import type { RiskProfiles } from "../exposure/service.js";
import { ANOMALY_ROUTES, type AnomalyAdmin, anomaliesAnswer } from "./anomalies.js";
import { AUDIT_ROUTES, type AuditAdmin, auditAnswer } from "./audit.js";
import { KEY_ROUTES } from "./keys.js";
import { type AdminRoute, AdminSchemas, routeSpec } from "./schema/routes.js";
import { OPENAPI_PATH, openApiDocument } from "./schema/openapi.js";
import { AdminFront } from "./front.js";
import { type AdminStats, STATS_ROUTES, StatsStream, StatsStreams, statsAnswer } from "./stats.js";
import { PASSKEY_ROUTES, type PasskeyAdmin, passkeysAnswer } from "./passkeys.js";
import type { PasskeyService } from "../sessions/passkeys.js";

/**
 * The admin API: key management over HTTP, JSON in and out, protected by the same native
 * signatures as the gateway with `admin:` scopes. Every change is made through the one key service
 * and attributed to the admin key that signed it. An operator key reaches every account; an
 * account admin key only its own account's keys, granting only what it holds (admin/reach.ts).
 *
 *   GET  /portcullis/v1/time                   server time (public)
 *   POST /portcullis/v1/keys                   create a key; the HMAC secret is in this answer only
 *   GET  /portcullis/v1/keys?q=&account=&status=&after=&limit=
 *   GET  /portcullis/v1/keys/:id
 *   POST /portcullis/v1/keys/:id/revoke        { "reason"?: string }
 *   POST /portcullis/v1/keys/:id/suspend       { "reason"?: string }
 *   POST /portcullis/v1/keys/:id/resume
 *   PUT  /portcullis/v1/keys/:id/limits        { "limits": { "<limit name>": <n> } } (replaces the overrides)
 *   PATCH /portcullis/v1/keys/:id               { "label"?, "scopes"?, "ipAllowlist"?, "sessionTtl"?, "sessionBindAddress"?, "maxAge"? }
 *   POST /portcullis/v1/keys/:id/rotate        { "grace"?: "24h", "publicKey"?: PEM/JWK } -> the successor (and its secret)
 *   POST /portcullis/v1/keys/:id/end-sessions  { "reason"?: string } ends every session of the key
 *   GET  /admin/v1/openapi.json                the OpenAPI 3.1 document of every route (public)
 *
 * Each route declares its contract with its `RouteSpec` (admin/schema/): the request is checked
 * against it before the handler runs (unknown members and parameters refused, VALIDATION_FAILED
 * with the fields at fault), and the OpenAPI document is generated from the same declarations.
 */
export const ADMIN_ROUTES: readonly AdminRoute[] = [
  // The server's time and health, and the keys (admin/keys.ts).
  ...KEY_ROUTES,
  // The policy and the address books (admin/policy.ts).
  ...POLICY_ROUTES,
  ...APPROVAL_ROUTES,
  // Keys' risk profiles (admin/risk.ts).
  ...RISK_ROUTES,
  ...ANOMALY_ROUTES,
  // The audit log (admin/audit.ts).
  ...AUDIT_ROUTES,
  // The console's live statistics (admin/stats.ts).
  ...STATS_ROUTES,
  // Passkeys: registration, and the console's sign-in with one (admin/passkeys.ts).
  ...PASSKEY_ROUTES,
];

/**
 * Every admin route's contract, compiled once: each request is checked against it before its
 * handler runs (admin/schema/routes.ts), and the OpenAPI document is generated from it.
 */
const ADMIN_SCHEMAS = new AdminSchemas(ADMIN_ROUTES);

const ADMIN_BODY_LIMIT = 64 * 1024;

export interface AdminApiOptions {
  readonly core: Portcullis;
  /** Serve HTTPS (docs/tls.md): the admin listener's certificate, key and mutual TLS; absent: plain HTTP. */
  readonly tls?: TlsCredentials | undefined;
  readonly logger: Logger;
  readonly now?: () => number;
  /** The policy service and address book (admin/policy.ts); without them those routes are ROUTE_NOT_FOUND. */
  readonly governance?: Governance;
  /** Approvers and held operations (admin/approvals.ts); without it those routes are not found. */
  readonly holds?: HoldService;
  /** Keys' risk profiles (admin/risk.ts); without them those routes are not found. */
  readonly risk?: RiskProfiles;
  /** The behaviour stage's anomaly actions (admin/anomalies.ts); without it those routes are not found. */
  readonly anomalies?: AnomalyAdmin;
  /** The audit log's routes (admin/audit.ts); without it those routes are not found. */
  readonly audit?: AuditAdmin;
  /** Passkeys, the console's WebAuthn sign-in (admin/passkeys.ts); without them (or sessions) those routes are not found. */
  readonly passkeys?: PasskeyService;
  /** Prometheus `GET /metrics` (docs/operations-endpoints.md); without it the path is not found. */
  readonly metrics?: AdminMetrics;
  /** The console's built files (admin/console.ts); absent: `/console/` answers CONSOLE_NOT_AVAILABLE. */
  readonly console?: { readonly dir: string } | undefined;
  /** The live statistics (admin/stats.ts); without them those routes are not found. */
  readonly stats?: AdminStats;
}

/**
 * How `GET /metrics` is served. Prometheus cannot sign a request, so the endpoint is not behind the
 * admin API's signatures: it is open (`public`, for an admin listener on a private network), or
 * it takes a static bearer token (Prometheus's `authorization.credentials_file`), compared in
 * constant time. Neither: every scrape is refused METRICS_UNAUTHORIZED. A scrape is never audited
 * nor charged to a limit (one every few seconds would drown the audit log).
 */
export interface AdminMetrics {
  readonly metrics: PortcullisMetrics;
  readonly public: boolean;
  /** The bearer token (from `admin.metrics.tokenFile`), or null. */
  readonly token: string | null;
}

const METRICS_PATH = "/metrics";
/**
 * Refused scrapes are logged at most once per this long (ms), with how many were refused since the
 * previous such line: a client hammering /metrics without the token must not flood the log.
 */
const REFUSED_SCRAPE_LOG_MS = 60_000;

interface Answer {
  readonly status: number;
  readonly body: unknown;
  /** Already written to the response by its handler (an audit export): nothing left to render. */
  readonly streamed?: true;
}

export class AdminApi {
  readonly server: Server;
  private readonly core: Portcullis;
  private readonly pipeline: Pipeline;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly governance: Governance | null;
  private readonly lifecycle: Lifecycle<ServerResponse, Answer>;
  private readonly listener: ServerLifecycle;
  private readonly holds: HoldService | null;
  private readonly risk: RiskProfiles | null;
  private readonly anomalies: AnomalyAdmin | null;
  private readonly audit: AuditAdmin | null;
  private readonly passkeys: PasskeyAdmin | null;
  private readonly metrics: AdminMetrics | null;
  /** SHA-256 of the metrics token: compared in constant time over equal lengths. */
  private readonly metricsDigest: Buffer | null;
  /** Scrapes refused since the last "metrics scrape refused" line, and when that was. */
  private refusedScrapes = 0;
  private refusedLoggedAt = Number.NEGATIVE_INFINITY;
  /** The console's sign-in (session endpoints) and static files, answered first (admin/front.ts). */
  private readonly front: AdminFront;
  private readonly stats: StatsStreams | null;

  constructor(options: AdminApiOptions) {
    this.front = new AdminFront({ core: options.core, logger: options.logger, console: options.console });
    this.stats = options.stats === undefined ? null : new StatsStreams(options.stats, options.core, options.logger, options.now ?? Date.now);
    this.metrics = options.metrics ?? null;
    const token = this.metrics?.token ?? null;
    if (token !== null && token.length < 16) throw new TypeError("the metrics token must be at least 16 characters");
    this.metricsDigest = token === null ? null : createHash("sha256").update(token).digest();
    this.holds = options.holds ?? null;
    this.risk = options.risk ?? null;
    this.anomalies = options.anomalies ?? null;
    this.audit = options.audit ?? null;
    this.core = options.core;
    this.logger = options.logger;
    this.now = options.now ?? Date.now;
    this.governance = options.governance ?? null;
    this.pipeline = options.core.createPipeline(new RouteTable(ADMIN_ROUTES.map(routeSpec), { allowReserved: true }));
    this.passkeys = options.passkeys === undefined ? null : { service: options.passkeys, core: options.core, pipeline: this.pipeline };
    this.listener = new ServerLifecycle({ requestTimeout: 30_000, headersTimeout: 10_000, bodyLimit: ADMIN_BODY_LIMIT, tls: options.tls }, this.handle);
    this.server = this.listener.server;
    this.lifecycle = new Lifecycle({
      pipeline: this.pipeline,
      surface: "admin",
      audit: this.core.audit,
      logger: this.logger,
      exchange: {
        handOn: (ctx, res) => this.dispatch(ctx, res),
        render: (ctx, outcome, res) => {
          AdminApi.render(ctx, outcome, res);
        },
        untilDone: whenClosed,
      },
    });
  }

  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    const requestId = randomUUID();
    this.listener.track(res);
    this.serve(req, res, requestId).catch((err: unknown) => {
      this.logger.error({ requestId, err }, "unhandled admin API error");
      sendDenial(res, deny("INTERNAL"), requestId, { close: true });
    });
  };

  private async serve(req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> {
    const url = req.url ?? "";
    if (this.metrics !== null && (url === METRICS_PATH || url.startsWith(`${METRICS_PATH}?`))) {
      req.resume();
      await this.serveMetrics(this.metrics, req, res, requestId);
      return;
    }
    if (url === OPENAPI_PATH || url.startsWith(`${OPENAPI_PATH}?`)) {
      req.resume();
      AdminApi.serveOpenApi(req, res, requestId);
      return;
    }
    // The console (issue 18): sessions and static files, each with its own lifecycle or none (admin/front.ts).
    if (await this.front.serve(req, res, requestId)) return;
    let body = readBody(req, ADMIN_BODY_LIMIT);
    if (body instanceof Promise) body = await body;
    await this.lifecycle.serve({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body, socketAddress: req.socket.remoteAddress, clientCert: peerCertThumbprint(req.socket) }, requestId, res);
  }

  /** `GET /metrics`: the exposition text, open or behind the bearer token (AdminMetrics). */
  private async serveMetrics(metrics: AdminMetrics, req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> {
    const method = req.method ?? "";
    if (method !== "GET" && method !== "HEAD") {
      sendDenial(res, deny("ROUTE_NOT_FOUND"), requestId);
      return;
    }
    if (!metrics.public && !this.metricsAuthorized(req.headers.authorization)) {
      this.refusedScrapes++;
      const now = this.now();
      if (now - this.refusedLoggedAt >= REFUSED_SCRAPE_LOG_MS) {
        this.logger.info({ requestId, client: req.socket.remoteAddress, code: "METRICS_UNAUTHORIZED", refused: this.refusedScrapes }, "metrics scrape refused (refused: how many since the last such line, at most one a minute)");
        this.refusedLoggedAt = now;
        this.refusedScrapes = 0;
      }
      sendJson(res, 401, errorBody(deny("METRICS_UNAUTHORIZED"), requestId), requestId, undefined, { "www-authenticate": 'Bearer realm="portcullis-metrics"' });
      return;
    }
    let text: string;
    try {
      text = await metrics.metrics.render();
    } catch (err) {
      this.logger.error({ requestId, err }, "metrics could not be rendered");
      sendDenial(res, deny("INTERNAL"), requestId);
      return;
    }
    if (res.headersSent) return;
    res.writeHead(200, { "content-type": METRICS_CONTENT_TYPE, "content-length": Buffer.byteLength(text), "cache-control": "no-store", "x-content-type-options": "nosniff", "portcullis-request-id": requestId });
    res.end(text);
  }

  /**
   * `GET /admin/v1/openapi.json`: the document, public like `/time` (a client generator or the
   * console reads it before it has a key). It is the same for every caller and changes only with
   * the code, so it is built once, cached by clients (ETag) and, like a scrape, never audited.
   */
  private static serveOpenApi(req: IncomingMessage, res: ServerResponse, requestId: string): void {
    const method = req.method ?? "";
    if (method !== "GET" && method !== "HEAD") {
      sendDenial(res, deny("ROUTE_NOT_FOUND"), requestId);
      return;
    }
    const doc = openApi();
    const headers = { etag: doc.etag, "cache-control": "public, max-age=300", "x-content-type-options": "nosniff", "portcullis-request-id": requestId };
    if (req.headers["if-none-match"] === doc.etag) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    res.writeHead(200, { ...headers, "content-type": "application/json; charset=utf-8", "content-length": doc.body.length });
    res.end(method === "HEAD" ? undefined : doc.body);
  }

  private metricsAuthorized(header: string | undefined): boolean {
    const expected = this.metricsDigest;
    if (expected === null || header === undefined) return false;
    const match = /^Bearer +(\S+) *$/i.exec(header);
    if (match === null) return false;
    return timingSafeEqual(createHash("sha256").update(match[1] ?? "").digest(), expected);
  }

  /** Render: the handler's JSON answer, its refusal (with the fields at fault), or the pipeline's. */
  private static render(ctx: RequestContext, outcome: Outcome<Answer>, res: ServerResponse): void {
    switch (outcome.kind) {
      case "refused":
        sendDenial(res, outcome.denial, ctx.requestId);
        return;
      case "failed":
        sendJson(res, outcome.error.status, serviceErrorBody(outcome.error, ctx.requestId), ctx.requestId, { close: outcome.error.code === "INTERNAL" });
        return;
      case "answered":
        if (outcome.answer.streamed === true) return;
        // A live statistics stream writes its own answer, for as long as it lasts (admin/stats.ts).
        if (outcome.answer.body instanceof StatsStream) outcome.answer.body.start(res);
        else sendJson(res, outcome.answer.status, JSON.stringify(outcome.answer.body), ctx.requestId);
        return;
      case "held":
        sendJson(res, 202, JSON.stringify(outcome.ticket), ctx.requestId);
    }
  }

  private async dispatch(ctx: RequestContext, res: ServerResponse): Promise<Answer> {
    const route = ctx.route;
    if (route === null) throw new PortcullisError("ROUTE_NOT_FOUND");
    // The request's shape (admin/schema/): refused before any handler reads it.
    const body = ADMIN_SCHEMAS.validate(ctx);
    // The live statistics (admin/stats.ts) are this process's memory: served during a store outage too.
    const stats = statsAnswer(this.stats, ctx);
    if (stats !== undefined) return stats;
    // Every route but the public ones reads or writes the durable store. While it is known to be
    // out (docs/failures.md) they are refused before any step is taken, so an operation of several
    // steps (an approval that releases, a rotation) never starts half; when the outage is not known
    // yet, the store's own DURABLE_STORE_UNAVAILABLE (storage/postgres/unavailable.ts) says the same.
    if (route.permission !== null && this.core.availability !== null && this.core.availability.outageSince !== null) {
      throw new PortcullisError("DURABLE_STORE_UNAVAILABLE");
    }
    if (isPolicyRoute(route.id)) return dispatchPolicy(ctx, this.governance, this.now(), body, this.core.keys);
    if (isRiskRoute(route.id)) return dispatchRisk(ctx, this.risk, this.core.keys);
    const keys = this.core.keys;
    const actor = `key:${ctx.key?.record.id ?? "unknown"}`;
    // Paths are canonical and matched: /portcullis/v1/keys/<id>[/<action>]. Key ids never need
    // percent-encoding, so the raw segment is the id (an encoded one simply matches no key).
    const id = ctx.path.split("/")[4] ?? "";
    // Who may reach what (every key route); the public routes have no key.
    const reach = (): AdminReach => {
      if (ctx.key === null) throw new PortcullisError("INTERNAL", "admin key route without a key");
      return new AdminReach(ctx.key.record, ctx.key.scopes);
    };
    /**
     * Checks that an account admin may reach the key the path names (else KEY_NOT_FOUND, as for no
     * key); an operator reaches every key. Accounts and the operator flag never change, so the
     * check holds for the change that follows.
     */
    const target = async (): Promise<AdminReach> => {
      const r = reach();
      if (r.account !== null) r.reach(await keys.get(id));
      return r;
    };
    const approvals = await approvalsAnswer(this.holds, ctx, () => body);
    if (approvals !== undefined) return approvals;
    const anomalies = await anomaliesAnswer(this.anomalies, ctx);
    if (anomalies !== undefined) return anomalies;
    const audit = await auditAnswer(this.audit, ctx, res);
    if (audit !== undefined) return audit;
    const passkeys = await passkeysAnswer(this.passkeys, ctx);
    if (passkeys !== undefined) return passkeys;
    switch (route.id) {
      case "GET /portcullis/v1/time":
        return { status: 200, body: { serverTime: this.now() } };
      case "GET /portcullis/v1/health":
        return { status: 200, body: { status: "ok" } };
      case "POST /portcullis/v1/keys": {
        const input = valueOrThrow(parseCreateKeyInput(body, this.now()));
        reach().grant(input);
        const created = await keys.create(input, actor);
        this.logger.info({ requestId: ctx.requestId, keyId: created.key.id, actor }, "key created");
        return { status: 201, body: created.secret === null ? created.key : { ...created.key, secret: created.secret } };
      }
      case "GET /portcullis/v1/keys": {
        // The schema has checked the parameters (admin/keys.ts): their types and ranges.
        const params = new URLSearchParams(ctx.query ?? "");
        const status = params.get("status") as KeyStatus | null;
        const limit = Number(params.get("limit") ?? "100");
        const after = params.get("after");
        const search = params.get("q");
        // An account admin lists its own account's keys (another account has none it can see).
        const own = reach().account;
        const asked = params.get("account");
        if (own !== null && asked !== null && asked !== own) return { status: 200, body: { keys: [], next: null } };
        const account = own ?? asked;
        const list = await keys.list({
          limit,
          ...(account === null ? {} : { account }),
          ...(own === null ? {} : { operator: false }),
          ...(status === null ? {} : { status }),
          ...(after === null ? {} : { after }),
          ...(search === null ? {} : { search }),
        });
        const last = list[list.length - 1];
        return { status: 200, body: { keys: list, next: list.length === limit && last !== undefined ? last.id : null } };
      }
      case "GET /portcullis/v1/keys/:id":
        return { status: 200, body: reach().reach(await keys.get(id)) };
      case "POST /portcullis/v1/keys/:id/revoke":
        await target();
        return { status: 200, body: await keys.revoke(id, actor, valueOrThrow(parseReasonInput(body))) };
      case "POST /portcullis/v1/keys/:id/suspend":
        await target();
        return { status: 200, body: await keys.suspend(id, actor, valueOrThrow(parseReasonInput(body))) };
      case "POST /portcullis/v1/keys/:id/resume":
        await target();
        return { status: 200, body: await keys.resume(id, actor) };
      case "PUT /portcullis/v1/keys/:id/limits": {
        const r = await target();
        const limits = valueOrThrow(parseLimitsInput(body));
        r.grant({ limits });
        return { status: 200, body: await keys.setLimits(id, limits, actor) };
      }
      case "PATCH /portcullis/v1/keys/:id": {
        const r = await target();
        const input = valueOrThrow(parseUpdateKeyInput(body));
        r.grant({ ...(input.scopes === undefined ? {} : { scopes: input.scopes }), ...(input.ipAllowlist === undefined ? {} : { ipAllowlist: input.ipAllowlist }) });
        // Guardrails are a merge patch: what an account admin grants is the key's after the change.
        if (input.guardrails !== undefined && r.account !== null) r.grant({ guardrails: mergeGuardrails((await keys.get(id)).guardrails, input.guardrails) });
        return { status: 200, body: await keys.update(id, input, actor) };
      }
      case "POST /portcullis/v1/keys/:id/rotate": {
        // The successor holds what the key holds: an account admin must hold it too.
        const r = reach();
        if (r.account !== null) {
          const key = r.reach(await keys.get(id));
          r.grant({ scopes: key.scopes, ipAllowlist: key.ipAllowlist, guardrails: key.guardrails });
        }
        const rotated = await keys.rotate(id, valueOrThrow(parseRotateKeyInput(body)), actor);
        this.logger.info({ requestId: ctx.requestId, keyId: rotated.key.id, rotatedFrom: id, actor }, "key rotated");
        const successor = rotated.secret === null ? rotated.key : { ...rotated.key, secret: rotated.secret };
        return { status: 201, body: { ...successor, predecessor: rotated.predecessor } };
      }
      case "POST /portcullis/v1/keys/:id/end-sessions":
        await target();
        return { status: 200, body: await keys.endSessions(id, actor, valueOrThrow(parseReasonInput(body))) };
      default:
        throw new PortcullisError("ROUTE_NOT_FOUND");
    }
  }

  listen(port: number, host = "127.0.0.1"): Promise<AddressInfo> {
    return this.listener.listen(port, host);
  }

  close(drainMs = 10_000): Promise<void> {
    this.stats?.close();
    return this.listener.close(drainMs);
  }
}

let document: { readonly body: Buffer; readonly etag: string } | null = null;

/** The OpenAPI document of ADMIN_ROUTES, serialized once (on its first request). */
function openApi(): { readonly body: Buffer; readonly etag: string } {
  if (document === null) {
    const body = Buffer.from(JSON.stringify(openApiDocument(ADMIN_ROUTES)), "utf8");
    document = { body, etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"` };
  }
  return document;
}

/** The OpenAPI 3.1 document of the admin API (what `GET /admin/v1/openapi.json` answers). */
export function adminOpenApiDocument(): unknown {
  return JSON.parse(openApi().body.toString("utf8")) as unknown;
}
