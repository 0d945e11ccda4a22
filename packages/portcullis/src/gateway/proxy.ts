import type { IncomingHttpHeaders, ServerResponse } from "node:http";
import { Pool, errors as undiciErrors, type Dispatcher } from "undici";
import { type Denial, deny } from "../errors/catalogue.js";
import type { RequestContext } from "../contract/request.js";
import type { HeldRequest, ReleaseOutcome } from "../holds/service.js";
import type { HeldRow } from "../storage/types.js";
import type { IdentitySigner } from "./identity.js";

/**
 * Stage 12: forwarding to the upstream over a pool of keep-alive connections (undici). Which of
 * the client's request headers reach the upstream is decided by one function,
 * `upstreamRequestHeaders`, and the headers the gateway sets itself by `addForwarding`; the
 * WebSocket proxy's upstream legs use `addForwarding` too (they carry no client header at all).
 * Responses come back with hop-by-hop headers removed. An upstream that cannot be reached is a
 * 502, one that does not answer in time a 504.
 */

/** RFC 9110 section 7.6.1 hop-by-hop fields, plus the de-facto ones proxies must not forward. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "http2-settings",
]);

/**
 * Request headers never forwarded as the client sent them (README, "What the upstream receives"),
 * besides hop-by-hop headers, the schemes' credential headers and every name under a prefix of
 * `DROPPED_PREFIXES`:
 *
 * - the message's framing and the gateway's own handling: Host, Content-Length (undici sets both),
 *   Expect (the gateway answers 100-continue itself);
 * - the client-address family: what a proxy says about the client or the connection it came on.
 *   The gateway sets its own X-Forwarded-For (the address it decided the client has: the socket's,
 *   unless the peer is a trusted proxy), X-Forwarded-Proto and X-Forwarded-Host; every other is
 *   dropped so an upstream that believes one of them believes the gateway;
 * - the client-certificate family: what a TLS-terminating proxy says about the client's
 *   certificate (RFC 9440 Client-Cert, nginx, HAProxy, Traefik, IIS ARR, AWS ALB). The gateway
 *   decides the certificate itself (docs/tls.md); an upstream that believed one of these from the
 *   gateway would believe whatever a client wrote. The configured `gateway.clientCertHeader`, of
 *   any name, is dropped too (Pipeline.credentialHeaders);
 * - method overrides and URL rewrites: headers frameworks and servers (Symfony, Laravel, IIS,
 *   nginx, Envoy) take as the real method or target instead of the one the gateway authorised.
 */
const REQUEST_DROP = new Set([
  ...HOP_BY_HOP,
  "host",
  "content-length",
  "expect",
  // client address and connection
  "forwarded",
  "x-forwarded",
  "x-real-ip",
  "true-client-ip",
  "x-client-ip",
  "client-ip",
  "cf-connecting-ip",
  "cf-connecting-ipv6",
  "cf-pseudo-ipv4",
  "fastly-client-ip",
  "x-cluster-client-ip",
  "x-original-forwarded-for",
  "x-originating-ip",
  "x-remote-ip",
  "x-remote-addr",
  "x-proxyuser-ip",
  "wl-proxy-client-ip",
  "proxy-client-ip",
  "x-azure-clientip",
  "x-azure-socketip",
  "x-appengine-user-ip",
  "x-host",
  "x-original-host",
  // client certificate
  "client-cert",
  "client-cert-chain",
  "ssl-client-cert",
  "ssl-client-verify",
  "x-ssl-cert",
  "x-client-verify",
  "x-client-dn",
  "x-arr-clientcert",
  // method overrides
  "x-http-method-override",
  "x-http-method",
  "x-method-override",
  "x-original-method",
  // URL rewrites
  "x-original-url",
  "x-rewrite-url",
  "x-original-uri",
  "x-original-path",
]);

/**
 * Prefixes of dropped names: the X-Forwarded-* family (-For, -Host, -Proto, -Port, -Prefix,
 * -Server, -Ssl, -Uri, -Client-Cert…), Envoy's own x-envoy-* (it trusts them from an internal
 * peer), the gateway's own `portcullis-*` (the identity headers and the request id), and the
 * client-certificate names with many suffixes (X-Client-Cert[-Chain|-DN…], X-SSL-Client-*,
 * SSL-Client-*, AWS ALB's X-Amzn-Mtls-*).
 */
const DROPPED_PREFIXES = ["x-forwarded-", "x-envoy-", "portcullis-", "x-client-cert", "x-ssl-client-", "ssl-client-", "x-amzn-mtls-"] as const;

/**
 * A header name as servers behind the gateway may read it: lower case, `_` as `-` (CGI, WSGI, PHP
 * and nginx with underscores_in_headers make `Portcullis_Account` and `portcullis-account` one
 * name). node:http already lowers names; the common name has neither upper case nor `_`.
 */
const NOT_NORMAL = /[A-Z_]/;

function normalName(name: string): string {
  return NOT_NORMAL.test(name) ? name.toLowerCase().replaceAll("_", "-") : name;
}

/** Is a header of this name (as sent) dropped whatever the Connection header lists? */
function droppedName(name: string, credentials: ReadonlySet<string>): boolean {
  const normal = normalName(name);
  if (REQUEST_DROP.has(normal) || credentials.has(normal)) return true;
  for (const prefix of DROPPED_PREFIXES) if (normal.startsWith(prefix)) return true;
  return false;
}

/**
 * `droppedName`'s answers per credential set (each caller passes one set, built once), for the
 * names requests carry again and again: one map lookup a header instead of the tests. At most
 * NAME_ANSWERS names each, the first seen; a name past them is tested every time.
 */
const nameAnswers = new WeakMap<ReadonlySet<string>, Map<string, boolean>>();
const NAME_ANSWERS = 256;

export interface ForwarderOptions {
  /** Origin of the upstream, e.g. http://127.0.0.1:9000. */
  readonly upstream: string;
  /** Connect + response-headers timeout, and idle timeout while streaming the body. Default 10 s. */
  readonly timeoutMs?: number;
  /** Maximum pooled connections. Default 128. */
  readonly connections?: number;
}

/**
 * Header names listed in Connection (to drop as hop-by-hop), normalised. The usual values name
 * no header, so they cost nothing.
 */
function connectionTokens(value: string | string[] | undefined): Set<string> | null {
  if (value === undefined || value === "keep-alive" || value === "close" || value === "Keep-Alive" || value === "Close") return null;
  const text = typeof value === "string" ? value : value.join(",");
  const tokens = new Set<string>();
  for (const t of text.split(",")) {
    const token = normalName(t.trim());
    if (token !== "") tokens.add(token);
  }
  return tokens.size === 0 ? null : tokens;
}

/**
 * Builds the upstream request headers from the client's: every header is forwarded except
 * hop-by-hop headers (and those Connection lists), the signing schemes' credential headers
 * (`credentials`, lower case), the client-address family, method overrides, URL rewrites and
 * the gateway's own `portcullis-*` names (REQUEST_DROP, DROPPED_PREFIXES), each matched on its
 * normalised name (case, `_` for `-`). The caller adds the forwarding headers (`addForwarding`)
 * and the identity headers.
 */
export function upstreamRequestHeaders(incoming: IncomingHttpHeaders, credentials: ReadonlySet<string>): Record<string, string | string[]> {
  const listed = connectionTokens(incoming.connection);
  let answers = nameAnswers.get(credentials);
  if (answers === undefined) {
    answers = new Map();
    nameAnswers.set(credentials, answers);
  }
  const out: Record<string, string | string[]> = {};
  for (const name in incoming) {
    const value = incoming[name];
    if (value === undefined) continue;
    let drop = answers.get(name);
    if (drop === undefined) {
      drop = droppedName(name, credentials);
      if (answers.size < NAME_ANSWERS) answers.set(name, drop);
    }
    if (drop || (listed !== null && listed.has(normalName(name)))) continue;
    out[name] = value;
  }
  return out;
}

/** What the gateway tells the upstream about a request it forwards. */
export interface Forwarding {
  /** The client's address as the gateway decided it (the socket's, unless the peer is a trusted proxy). */
  readonly clientIp: string;
  /** The scheme clients use. */
  readonly scheme: string;
  /** The request's authority (Host), lower case; absent without one. */
  readonly authority: string | undefined;
  readonly requestId: string;
}

/**
 * Sets the forwarding headers every request to the upstream carries, HTTP or a WebSocket leg's
 * upgrade: X-Forwarded-For (one address, the gateway's decision), X-Forwarded-Proto,
 * X-Forwarded-Host and Portcullis-Request-Id. Any client-sent header of these names was dropped
 * by `upstreamRequestHeaders`.
 */
export function addForwarding(headers: Record<string, string | string[]>, forwarding: Forwarding): void {
  headers["x-forwarded-for"] = forwarding.clientIp;
  headers["x-forwarded-proto"] = forwarding.scheme;
  if (forwarding.authority !== undefined) headers["x-forwarded-host"] = forwarding.authority;
  headers["portcullis-request-id"] = forwarding.requestId;
}

/** Response headers to pass back to the client. */
function downstreamResponseHeaders(upstream: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const listed = connectionTokens(upstream.connection);
  const out: Record<string, string | string[]> = {};
  for (const name in upstream) {
    const value = upstream[name];
    if (value === undefined || HOP_BY_HOP.has(name)) continue;
    if (listed !== null && listed.has(normalName(name))) continue;
    out[name] = value;
  }
  return out;
}

/** One forwarded exchange, as undici hands it back to `intoResponse` and `streamed` (its `opaque`). */
interface Exchange {
  readonly res: ServerResponse;
  /** The gateway's own response headers; they win over the upstream's. */
  readonly extra: Record<string, string>;
  /** True once the upstream's answer began (its headers went to `res`, or were tried). */
  started: boolean;
  readonly settle: (failure: Denial | null) => void;
}

/** undici's stream factory: the upstream's status and headers go to the client, its body into `res`. */
function intoResponse({ statusCode, headers, opaque }: Dispatcher.StreamFactoryData<Exchange>): ServerResponse {
  opaque.started = true;
  const out = downstreamResponseHeaders(headers);
  const extra = opaque.extra;
  for (const name in extra) out[name] = extra[name] as string;
  opaque.res.writeHead(statusCode, out);
  return opaque.res;
}

/** undici's stream callback: the exchange is over; a failure before the answer began is a denial. */
function streamed(err: Error | null, { opaque }: { opaque: Exchange }): void {
  if (err === null) {
    opaque.settle(null);
  } else if (opaque.started || opaque.res.headersSent) {
    opaque.res.destroy();
    opaque.settle(null);
  } else {
    opaque.settle(classify(err));
  }
}

function classify(err: unknown): Denial {
  if (
    err instanceof undiciErrors.HeadersTimeoutError ||
    err instanceof undiciErrors.BodyTimeoutError ||
    err instanceof undiciErrors.ConnectTimeoutError
  ) {
    return deny("UPSTREAM_TIMEOUT", err.message);
  }
  return deny("UPSTREAM_UNAVAILABLE", err instanceof Error ? `${err.name}: ${err.message}` : "upstream error");
}

export interface ForwardRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: Record<string, string | string[]>;
  readonly body: Buffer;
}

export class Forwarder {
  private readonly pool: Pool;

  constructor(options: ForwarderOptions) {
    let origin: URL;
    try {
      origin = new URL(options.upstream);
    } catch {
      throw new TypeError(`upstream must be an absolute http(s) URL, got ${options.upstream}`);
    }
    if ((origin.protocol !== "http:" && origin.protocol !== "https:") || origin.pathname !== "/" || origin.search !== "") {
      throw new TypeError(`upstream must be an origin such as http://127.0.0.1:9000 (no path), got ${options.upstream}`);
    }
    const timeoutMs = options.timeoutMs ?? 10_000;
    this.pool = new Pool(origin.origin, {
      connections: options.connections ?? 128,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      connectTimeout: timeoutMs,
      keepAliveTimeout: 30_000,
    });
  }

  /**
   * Sends the request and streams the answer into `res`. Resolves to a denial when nothing was
   * sent to the client yet (the caller answers 502/504), or null when the response was written
   * (or the exchange failed after the headers went out, in which case `res` is destroyed).
   * Per request: one promise and one `Exchange`; undici's factory and callback are shared.
   */
  forward(req: ForwardRequest, res: ServerResponse, responseHeaders: Record<string, string>): Promise<Denial | null> {
    return new Promise((settle) => {
      const opaque: Exchange = { res, extra: responseHeaders, started: false, settle };
      this.pool.stream({ path: req.url, method: req.method, headers: req.headers, body: req.body.length > 0 ? req.body : null, opaque }, intoResponse, streamed);
    });
  }

  /**
   * Like `forward`, but the answer is read whole before any of it goes to `res`, and `read` is
   * awaited in between with its status and body (null when the body is larger than `limit`): an
   * order whose answer the open-notional ledger must see settled before the client sees it
   * (pipeline/open-notional.ts). Only such orders take this path; answers to orders are small.
   */
  async forwardRead(
    req: ForwardRequest,
    res: ServerResponse,
    responseHeaders: Record<string, string>,
    limit: number,
    read: (status: number, body: Buffer | null) => Promise<void>,
  ): Promise<Denial | null> {
    let status: number;
    let headers: Record<string, string | string[] | undefined>;
    let body: Buffer;
    try {
      const answer = await this.pool.request({ path: req.url, method: req.method, headers: req.headers, body: req.body.length > 0 ? req.body : null });
      const chunks: Buffer[] = [];
      for await (const chunk of answer.body) chunks.push(chunk as Buffer);
      status = answer.statusCode;
      headers = answer.headers;
      body = Buffer.concat(chunks);
    } catch (err) {
      return classify(err);
    }
    await read(status, body.length <= limit ? body : null);
    const out = downstreamResponseHeaders(headers);
    for (const name in responseHeaders) out[name] = responseHeaders[name] as string;
    out["content-length"] = String(body.length);
    res.writeHead(status, out);
    res.end(body);
    return null;
  }

  /**
   * Sends the request and reads the answer into memory, up to `limit` bytes of body (the rest is
   * discarded, and `truncated` says so): a held operation's release, whose answer is recorded
   * rather than streamed to a client. An upstream that cannot be reached is its denial.
   */
  async call(req: ForwardRequest, limit: number): Promise<{ status: number; contentType: string | null; body: Buffer; truncated: boolean } | Denial> {
    try {
      const answer = await this.pool.request({ path: req.url, method: req.method, headers: req.headers, body: req.body.length > 0 ? req.body : null });
      const chunks: Buffer[] = [];
      let size = 0;
      let truncated = false;
      for await (const chunk of answer.body) {
        const bytes = chunk as Buffer;
        if (size < limit) chunks.push(bytes.subarray(0, limit - size));
        if (size + bytes.length > limit) truncated = true;
        size += bytes.length;
      }
      const type = answer.headers["content-type"];
      return { status: answer.statusCode, contentType: typeof type === "string" ? type : null, body: Buffer.concat(chunks), truncated };
    } catch (err) {
      return classify(err);
    }
  }

  close(): Promise<void> {
    return this.pool.close();
  }

  destroy(): Promise<void> {
    return this.pool.destroy();
  }
}

/**
 * A request held by stage 10, exactly as `forward` would send it now: the target and body as
 * forwarded (a dialect's credentials removed: `Credential.forwarded`), the headers the upstream
 * may see, and the identity to sign again when it is released (gateway and embedded surfaces).
 */
export function heldRequestOf(ctx: RequestContext, credentialHeaders: ReadonlySet<string>): HeldRequest {
  const outgoing = ctx.credential?.forwarded?.(ctx) ?? ctx;
  const key = ctx.key;
  const record = key?.record;
  return {
    method: ctx.method,
    url: outgoing.url,
    headers: upstreamRequestHeaders(ctx.headers, credentialHeaders),
    body: outgoing.body,
    clientIp: ctx.client?.text ?? "",
    authority: ctx.authority ?? null,
    identity:
      record === undefined || key === null
        ? null
        : { keyId: record.id, account: record.account, subAccount: record.subAccount, scopes: record.scopes, scopesText: key.scopesText },
  };
}

/**
 * Releases a held request (the hold service's releaser, called once per operation by the process
 * that claimed it): forwarded exactly as stored, with the forwarding headers and identity headers
 * signed now (a fresh timestamp; the operation id as the request id). The answer is recorded.
 * The gateway's, and the authorizer's when it has an upstream.
 */
export function heldReleaser(forwarder: Forwarder, identity: IdentitySigner, scheme: string, now: () => number): (request: HeldRequest, row: HeldRow) => Promise<ReleaseOutcome> {
  return async (request, row) => {
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(request.headers)) headers[name] = typeof value === "string" ? value : [...value];
    addForwarding(headers, { clientIp: request.clientIp, scheme, authority: request.authority ?? undefined, requestId: row.id });
    const id = request.identity;
    if (id !== null) {
      identity.write(
        headers,
        request.method,
        request.url,
        request.body,
        { requestId: row.id, keyId: id.keyId, account: id.account, subAccount: id.subAccount, scopes: id.scopes, clientIp: request.clientIp, timestamp: now() },
        id.scopesText,
      );
    }
    const answer = await forwarder.call({ method: request.method, url: request.url, headers, body: request.body }, 64 * 1024);
    if ("ok" in answer) return { status: answer.status, body: Buffer.from(JSON.stringify({ code: answer.code, message: answer.message }), "utf8"), contentType: "application/json" };
    return { status: answer.status, body: answer.body, contentType: answer.contentType };
  };
}
