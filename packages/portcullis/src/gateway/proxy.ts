import type { IncomingHttpHeaders, ServerResponse } from "node:http";
import { Pool, errors as undiciErrors, type Dispatcher } from "undici";
import { type Denial, deny } from "../errors/catalogue.js";

/**
 * Stage 12: forwarding to the upstream over a pool of keep-alive connections (undici). Requests
 * are sent with hop-by-hop headers, credentials and any client-sent `portcullis-*` headers
 * removed; responses come back with hop-by-hop headers removed. An upstream that cannot be reached
 * is a 502, one that does not answer in time a 504.
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

/** Request headers the gateway consumes or rewrites and never forwards as they came. */
const REQUEST_DROP = new Set([...HOP_BY_HOP, "host", "content-length", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "forwarded"]);

export interface ForwarderOptions {
  /** Origin of the upstream, e.g. http://127.0.0.1:9000. */
  readonly upstream: string;
  /** Connect + response-headers timeout, and idle timeout while streaming the body. Default 10 s. */
  readonly timeoutMs?: number;
  /** Maximum pooled connections. Default 128. */
  readonly connections?: number;
}

/**
 * Header names listed in Connection (to drop as hop-by-hop). The usual values name no header, so
 * they cost nothing.
 */
function connectionTokens(value: string | string[] | undefined): Set<string> | null {
  if (value === undefined || value === "keep-alive" || value === "close" || value === "Keep-Alive" || value === "Close") return null;
  const text = typeof value === "string" ? value : value.join(",");
  const tokens = new Set<string>();
  for (const t of text.split(",")) {
    const token = t.trim().toLowerCase();
    if (token !== "") tokens.add(token);
  }
  return tokens.size === 0 ? null : tokens;
}

/**
 * Builds the upstream request headers from the client's, without hop-by-hop headers, the
 * signing schemes' credential headers (`credentials`), or any `portcullis-*` header. The caller
 * adds forwarding and identity headers.
 */
export function upstreamRequestHeaders(incoming: IncomingHttpHeaders, credentials: ReadonlySet<string>): Record<string, string | string[]> {
  const listed = connectionTokens(incoming.connection);
  const out: Record<string, string | string[]> = {};
  for (const name in incoming) {
    const value = incoming[name];
    if (value === undefined || REQUEST_DROP.has(name) || credentials.has(name) || name.startsWith("portcullis-")) continue;
    if (listed !== null && listed.has(name)) continue;
    out[name] = value;
  }
  return out;
}

/** Response headers to pass back to the client. */
function downstreamResponseHeaders(upstream: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const listed = connectionTokens(upstream.connection);
  const out: Record<string, string | string[]> = {};
  for (const name in upstream) {
    const value = upstream[name];
    if (value === undefined || HOP_BY_HOP.has(name)) continue;
    if (listed !== null && listed.has(name)) continue;
    out[name] = value;
  }
  return out;
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
   */
  forward(req: ForwardRequest, res: ServerResponse, responseHeaders: Record<string, string>): Promise<Denial | null> {
    let started = false;
    const options: Dispatcher.RequestOptions = {
      path: req.url,
      method: req.method,
      headers: req.headers,
      body: req.body.length > 0 ? req.body : null,
    };
    return this.pool
      .stream(options, ({ statusCode, headers }) => {
        started = true;
        const out = downstreamResponseHeaders(headers);
        for (const name in responseHeaders) out[name] = responseHeaders[name] as string;
        res.writeHead(statusCode, out);
        return res;
      })
      .then(
        () => null,
        (err: unknown) => {
          if (started || res.headersSent) {
            res.destroy();
            return null;
          }
          return classify(err);
        },
      );
  }

  close(): Promise<void> {
    return this.pool.close();
  }

  destroy(): Promise<void> {
    return this.pool.destroy();
  }
}
