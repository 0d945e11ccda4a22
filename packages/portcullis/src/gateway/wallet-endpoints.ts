import type { IncomingMessage, ServerResponse } from "node:http";
import { RouteTable, type RouteSpec } from "../authz/routes.js";
import type { Portcullis } from "../core/core.js";
import { type Denial, PortcullisError, deny } from "../errors/catalogue.js";
import type { RequestContext } from "../contract/request.js";
import { isJsonObject } from "../contract/json.js";
import { peerCertThumbprint } from "../net/client-cert.js";
import { type Exchange, Lifecycle } from "../pipeline/lifecycle.js";
import type { Pipeline } from "../pipeline/pipeline.js";
import { keyDenial } from "../pipeline/stages/key.js";
import { singleUse, CLOCK_ALLOWANCE_MS } from "../replay/claims.js";
import type { SessionAuthority } from "../sessions/authority.js";
import { AgentRegistry, walletDenial } from "../wallets/agents.js";
import type { LimitSpec } from "../contract/limits.js";
import { MAX_SHORT_LIFETIME_S, type ReadRevocation, type VerifiedLogon, type WalletVenue, verifyLogon, verifySiweLogon } from "@portcullis/client";
import { type JsonAnswer, parseJsonBody, readBody, renderJsonOutcome, whenClosed } from "./http.js";

/**
 * The wallet endpoints (docs/wallets.md), served by the gateway under its own prefix. They are
 * public routes: the request carries no API key signature, its wallet or agent signatures are in
 * the body, checked by the client package's protocol module (the one verification of wallet
 * messages). Each request still runs the one lifecycle (address, shield, routing, the address's
 * limits, audit) before its body is checked here:
 *
 *   POST /portcullis/v1/wallet/session   { siwe, signature } | { chainId, logon: Logon, signature }
 *        -> 201 { keyid, secret, expiresAt, scopes, apiKeyId, boundAddress }: a session of the owner key
 *   POST /portcullis/v1/agents           { chain: [ { chainId, approval, signature }, { chainId, delegation, signature }… ] }
 *        -> 201 { id, account, scopes, guardrails, limits, expiresAt, parent, ancestors, registered }
 *   POST /portcullis/v1/agents/revoke    { chainId, revocation: RevokeAgent, signature, signer: "owner" | <agent key id> }
 *        -> 200 { revoked: [ids] }
 */
export const WALLET_SESSION_PATH = "/portcullis/v1/wallet/session";
export const AGENTS_PATH = "/portcullis/v1/agents";
export const AGENTS_REVOKE_PATH = "/portcullis/v1/agents/revoke";

export const WALLET_ROUTES: readonly RouteSpec[] = [
  { method: "POST", path: WALLET_SESSION_PATH, permission: "public", weight: 10 },
  { method: "POST", path: AGENTS_PATH, permission: "public", weight: 10 },
  { method: "POST", path: AGENTS_REVOKE_PATH, permission: "public", weight: 10 },
];


/** A refusal of a wallet message, as the handler throws it (its detail is ours and not secret). */
function refuse(denial: Denial): never {
  throw new PortcullisError(denial.code, denial.detail === undefined ? undefined : `${denial.message} (${denial.detail})`);
}

function isDenial(v: unknown): v is Denial {
  return typeof v === "object" && v !== null && (v as { ok?: unknown }).ok === false;
}

/** A chain of a few links, or a logon: a few KiB. */
const WALLET_BODY_LIMIT = 64 * 1024;

export interface WalletEndpointsOptions {
  readonly venue: WalletVenue;
  readonly registry: AgentRegistry;
}

export class WalletEndpoints {
  readonly pipeline: Pipeline;
  private readonly core: Portcullis;
  private readonly sessions: SessionAuthority;
  private readonly venue: WalletVenue;
  private readonly registry: AgentRegistry;
  private readonly lifecycles: ReadonlyMap<"gateway" | "authorizer", Lifecycle<ServerResponse, JsonAnswer>>;

  constructor(core: Portcullis, options: WalletEndpointsOptions) {
    if (core.sessions === null) throw new TypeError("wallet logon needs the session authority (sessions.enabled)");
    this.core = core;
    this.sessions = core.sessions;
    this.venue = options.venue;
    this.registry = options.registry;
    this.pipeline = core.createPipeline(new RouteTable(WALLET_ROUTES, { allowReserved: true }));
    const exchange: Exchange<ServerResponse, JsonAnswer> = { handOn: (ctx) => this.answer(ctx), render: renderJsonOutcome, untilDone: whenClosed };
    const lifecycle = (surface: "gateway" | "authorizer"): Lifecycle<ServerResponse, JsonAnswer> => new Lifecycle({ pipeline: this.pipeline, surface, audit: core.audit, logger: core.logger, exchange });
    this.lifecycles = new Map([
      ["gateway", lifecycle("gateway")],
      ["authorizer", lifecycle("authorizer")],
    ]);
  }

  /** Is `path` (without its query) one of these endpoints? */
  serves(path: string): boolean {
    return path === WALLET_SESSION_PATH || path === AGENTS_PATH || path === AGENTS_REVOKE_PATH;
  }

  /** Serves one request (the gateway and the authorizer call this): its body read, the lifecycle over the wallet routes, then the endpoint. */
  async serve(req: IncomingMessage, res: ServerResponse, requestId: string, surface: "gateway" | "authorizer" = "gateway"): Promise<void> {
    let body = readBody(req, WALLET_BODY_LIMIT);
    if (body instanceof Promise) body = await body;
    const lifecycle = this.lifecycles.get(surface) as Lifecycle<ServerResponse, JsonAnswer>;
    await lifecycle.serve({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body, socketAddress: req.socket.remoteAddress, clientCert: peerCertThumbprint(req.socket) }, requestId, res);
  }

  private async answer(ctx: RequestContext): Promise<JsonAnswer> {
    const route = ctx.route;
    if (route === null) throw new PortcullisError("INTERNAL", "wallet endpoint without a route");
    const body = parseJsonBody(ctx.body);
    switch (route.id) {
      case `POST ${WALLET_SESSION_PATH}`:
        return this.logon(ctx, body);
      case `POST ${AGENTS_PATH}`: {
        const registered = await this.registry.register(body, ctx.now, ctx.client?.text ?? null);
        if (isDenial(registered)) refuse(registered);
        return { status: 201, body: JSON.stringify(registered) };
      }
      case `POST ${AGENTS_REVOKE_PATH}`: {
        const request: ReadRevocation | Denial = this.registry.readRevocation(body, ctx.now);
        if (isDenial(request)) refuse(request);
        // The signature first: a message that does not verify consumes no nonce.
        const authorized = await this.registry.authorizeRevocation(request);
        if (isDenial(authorized)) refuse(authorized);
        await this.claimNonce(ctx, `revoke:${request.signer}:${request.agent}`, request.nonce, request.expiresAt);
        return { status: 200, body: JSON.stringify(await this.registry.revoke(authorized, ctx.client?.text ?? null)) };
      }
      default:
        throw new PortcullisError("ROUTE_NOT_FOUND");
    }
  }

  /**
   * The message's nonce, single use until it expires: a claim in the hot store (replay/claims.ts),
   * as a request's nonce is; a nonce the store may have forgotten (it restarted since the message
   * was issued) is refused too.
   */
  private async claimNonce(ctx: RequestContext, who: string, nonce: string, expiresAt: number): Promise<void> {
    // The earliest the message can have been issued: its expiry less the longest validity.
    const issuedAt = expiresAt - MAX_SHORT_LIFETIME_S * 1000;
    const result = await this.core.hot.admit({
      now: ctx.now,
      ip: ctx.client?.group ?? "",
      replay: singleUse(`wallet|${who}`, nonce, issuedAt - CLOCK_ALLOWANCE_MS, expiresAt + CLOCK_ALLOWANCE_MS),
      charges: [],
      session: null,
    });
    // "fenced": the hot store's memory began after the message could have been issued.
    if (!result.ok) refuse(deny("WALLET_NONCE_REPLAYED", result.reason === "replayed" ? undefined : result.reason));
  }

  /** Wallet logon: the message checked (SIWE or EIP-712), its nonce claimed, the owner key found, a session of it issued. */
  private async logon(ctx: RequestContext, raw: unknown): Promise<JsonAnswer> {
    const siwe = isJsonObject(raw) && raw.siwe !== undefined;
    const result = siwe ? await verifySiweLogon(raw, { venue: this.venue, now: ctx.now }) : await verifyLogon(raw, { venue: this.venue, now: ctx.now });
    if (!result.ok) refuse(walletDenial(result));
    const verified: VerifiedLogon = result.value;
    await this.claimNonce(ctx, `logon:${verified.owner}`, verified.nonce, verified.expiresAt);
    const owners = await this.core.keys.wallets(verified.owner);
    // SIWE names no account: the address's oldest active owner key (docs/wallets.md).
    const owner = owners.find((k) => k.effectiveStatus === "active" && (verified.account === null || k.account === verified.account));
    if (owner === undefined) throw new PortcullisError("WALLET_UNKNOWN");
    const key = this.core.cache.peek(owner.id) ?? (await this.core.cache.load(owner.id));
    if (key === null || key.record.status !== "active") throw new PortcullisError("WALLET_UNKNOWN");
    // The owner key's own bounds, as on any request of its sessions: its address allowlist, the
    // client certificate it is bound to (a session it could not use is not issued).
    const denial = keyDenial(key, this.core.keys.environment, "native", ctx.client, ctx.clientCert, ctx.now, null);
    if (denial !== undefined) refuse(denial);
    const issued = await this.sessions.logon(key, {}, ctx.client?.text ?? "", ctx.now);
    this.core.audit.record({
      event: "session.create",
      at: ctx.now,
      actor: `wallet:${verified.owner}`,
      key: owner.id,
      account: owner.account,
      client: ctx.client?.text,
      requestId: ctx.requestId,
      detail: { session: issued.sessionId, method: siwe ? "siwe" : "eip712", address: verified.owner, scopes: issued.scopes, expiresAt: issued.expiresAt },
    });
    return {
      status: 201,
      body: JSON.stringify({ keyid: issued.keyid, secret: issued.secret, expiresAt: issued.expiresAt, scopes: issued.scopes, apiKeyId: issued.keyId, boundAddress: issued.boundAddress }),
    };
  }
}

/** The wallet endpoints of a core, for the venue `wallets` (config `wallets`) and its configured limits. */
export function walletEndpoints(core: Portcullis, venue: WalletVenue, limits: readonly LimitSpec[]): WalletEndpoints {
  return new WalletEndpoints(core, { venue, registry: new AgentRegistry({ keys: core.keys, venue, limits }) });
}
