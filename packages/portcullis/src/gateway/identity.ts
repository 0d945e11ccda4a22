import { createHash, createHmac, createSecretKey, hkdfSync, timingSafeEqual, type KeyObject } from "node:crypto";

/**
 * Identity headers: how the gateway tells the upstream who is calling, in a form the upstream can
 * verify came from the gateway for this one request. After a request passes every check, the
 * gateway strips the caller's credentials and adds:
 *
 *   portcullis-request-id       the gateway's id for this request (used once)
 *   portcullis-key-id           the API key that signed it
 *   portcullis-account          the key's account
 *   portcullis-sub-account      the key's sub-account, when it has one
 *   portcullis-scopes           the key's scopes, comma-separated
 *   portcullis-client-ip        the client address the gateway resolved
 *   portcullis-timestamp        when the gateway forwarded it (epoch ms)
 *   portcullis-content-sha256   base64url SHA-256 of the exact body bytes forwarded (empty: the
 *                               digest of no bytes)
 *   portcullis-identity         v2=<base64url HMAC-SHA256 under the gateway-upstream secret over
 *                               the method, the request target, the body digest and all of the
 *                               above>
 *
 * Any `portcullis-*` header a client sends is removed first, so the upstream never sees one the
 * gateway did not write. The verifier checks the MAC, the time (a window of seconds), the body's
 * digest against the bytes it received, and that the request id was not seen before: a captured
 * set of identity headers is good for the one request it was written for, once.
 *
 * Format v1 (no body digest, no request-id check, a minute's window) is refused as
 * `unsupported-version`.
 */
export const IDENTITY_HEADERS = {
  requestId: "portcullis-request-id",
  keyId: "portcullis-key-id",
  account: "portcullis-account",
  subAccount: "portcullis-sub-account",
  scopes: "portcullis-scopes",
  clientIp: "portcullis-client-ip",
  timestamp: "portcullis-timestamp",
  contentDigest: "portcullis-content-sha256",
  signature: "portcullis-identity",
} as const;

export interface PortcullisIdentity {
  readonly requestId: string;
  readonly keyId: string;
  readonly account: string;
  readonly subAccount: string | null;
  readonly scopes: readonly string[];
  readonly clientIp: string;
  /** Epoch ms at which the gateway forwarded the request. */
  readonly timestamp: number;
}

const VERSION = "v2";
const DOMAIN = `portcullis-identity/${VERSION}`;
const PREFIX = `${VERSION}=`;

function macInput(method: string, target: string, digest: string, id: PortcullisIdentity, scopes: string): string {
  // Header values cannot contain a line feed, so the fields cannot run into one another.
  return `${DOMAIN}\n${id.timestamp}\n${method}\n${target}\n${digest}\n${id.requestId}\n${id.keyId}\n${id.account}\n${id.subAccount ?? ""}\n${scopes}\n${id.clientIp}`;
}

const EMPTY_DIGEST = createHash("sha256").digest("base64url");

function bodyDigest(body: Uint8Array): string {
  return body.length === 0 ? EMPTY_DIGEST : createHash("sha256").update(body).digest("base64url");
}

function toKey(secret: string | Buffer | KeyObject): KeyObject {
  if (typeof secret === "string" || Buffer.isBuffer(secret)) {
    const bytes = typeof secret === "string" ? Buffer.from(secret, "utf8") : secret;
    if (bytes.length < 32) throw new TypeError("the gateway-upstream identity secret must be at least 32 bytes");
    return createSecretKey(bytes);
  }
  return secret;
}

/** Gateway side: computes the identity headers for a request being forwarded. */
export class IdentitySigner {
  private readonly key: KeyObject;

  constructor(secret: string | Buffer | KeyObject) {
    this.key = toKey(secret);
  }

  /**
   * A 256-bit key for another purpose, derived from the identity secret with HKDF-SHA256 under its
   * own `info` label: every process sharing the data directory derives the same key, and it is
   * never the identity MAC's key.
   */
  deriveKey(info: string): KeyObject {
    if (info === "") throw new TypeError("a derived key needs its own info label");
    return createSecretKey(Buffer.from(hkdfSync("sha256", this.key, Buffer.alloc(0), info, 32)));
  }

  /**
   * Writes the identity headers into `out` for a request forwarded as `method target` with
   * exactly `body` (what goes on the wire to the upstream, not what the client sent; empty for a
   * WebSocket upgrade).
   */
  write(out: Record<string, string | string[]>, method: string, target: string, body: Uint8Array, identity: PortcullisIdentity, scopesText: string): void {
    const digest = bodyDigest(body);
    const mac = createHmac("sha256", this.key).update(macInput(method, target, digest, identity, scopesText), "latin1").digest("base64url");
    out[IDENTITY_HEADERS.requestId] = identity.requestId;
    out[IDENTITY_HEADERS.keyId] = identity.keyId;
    out[IDENTITY_HEADERS.account] = identity.account;
    if (identity.subAccount !== null) out[IDENTITY_HEADERS.subAccount] = identity.subAccount;
    out[IDENTITY_HEADERS.scopes] = scopesText;
    out[IDENTITY_HEADERS.clientIp] = identity.clientIp;
    out[IDENTITY_HEADERS.timestamp] = String(identity.timestamp);
    out[IDENTITY_HEADERS.contentDigest] = digest;
    out[IDENTITY_HEADERS.signature] = `${PREFIX}${mac}`;
  }
}

export type IdentityVerification =
  | { readonly ok: true; readonly identity: PortcullisIdentity }
  | {
      readonly ok: false;
      /**
       * - `missing`: no identity headers (an anonymous request);
       * - `unsupported-version`: identity headers of another format version (v1);
       * - `malformed`: a header missing or unreadable;
       * - `bad-signature`: the MAC does not match (another secret, or a header, the method or
       *   the target changed);
       * - `stale`: the timestamp is outside the window (or older than what the replay cache can
       *   still tell apart, see `maxEntries`);
       * - `body-mismatch`: the body received is not the one the gateway forwarded;
       * - `replayed`: this request id was already accepted.
       */
      readonly reason: "missing" | "unsupported-version" | "malformed" | "bad-signature" | "stale" | "body-mismatch" | "replayed";
    };

export interface IdentityVerifierOptions {
  /**
   * How old (or how far in the future) the gateway's timestamp may be, in ms: the clock skew
   * between gateway and upstream plus the time a request takes to get there. Default 5000; at most
   * 60000.
   */
  readonly maxAgeMs?: number;
  /**
   * How many request ids the replay cache holds (ids are kept for their window only). When it is
   * full, the oldest id is dropped and every request no newer than it is refused as `stale`
   * from then on, so a dropped id can never be replayed. Default 1,000,000.
   */
  readonly maxEntries?: number;
  /** Clock in epoch ms; for tests. */
  readonly now?: () => number;
}

export interface UpstreamRequest {
  readonly method?: string | undefined;
  /** The request target as the upstream received it (path and query), e.g. node's `req.url`. */
  readonly url?: string | undefined;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

/**
 * Checks one request's identity headers against the exact body bytes the upstream received
 * (an empty buffer when there is none, e.g. a WebSocket upgrade). A request accepted once is
 * refused as `replayed` after that.
 */
export type IdentityVerifier = (req: UpstreamRequest, body: Uint8Array) => IdentityVerification;

function header(req: UpstreamRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? undefined : v;
}

/**
 * The request ids accepted within the window, each until its timestamp leaves the window. Bounded:
 * when full, the oldest entry is dropped and `floor` moves to its expiry, so every request whose
 * window ends at or before the floor (the dropped one included) is refused as stale.
 */
class SeenRequests {
  private readonly expiries = new Map<string, number>();
  private floor = Number.NEGATIVE_INFINITY;

  constructor(private readonly maxEntries: number) {}

  /** False when `expiry` is at or below what the cache can still vouch for. */
  covers(expiry: number): boolean {
    return expiry > this.floor;
  }

  has(requestId: string): boolean {
    return this.expiries.has(requestId);
  }

  add(requestId: string, expiry: number, now: number): void {
    this.prune(now);
    while (this.expiries.size >= this.maxEntries) {
      const oldest = this.expiries.entries().next();
      if (oldest.done === true) break;
      const [id, at] = oldest.value;
      this.expiries.delete(id);
      if (at > this.floor) this.floor = at;
    }
    this.expiries.set(requestId, expiry);
  }

  /** Drops expired ids from the front (insertion order is close to expiry order). */
  private prune(now: number): void {
    for (const [id, at] of this.expiries) {
      if (at >= now) break;
      this.expiries.delete(id);
    }
  }
}

function positiveInteger(name: string, value: number | undefined, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0 || value > max) throw new TypeError(`${name} must be an integer from 1 to ${max}`);
  return value;
}

/**
 * Upstream side: returns a function that checks a request's identity headers and body. Use it in
 * the service behind the gateway to trust `portcullis-account` and friends only when the gateway
 * wrote them for this request:
 *
 *   const verify = createIdentityVerifier(process.env.PORTCULLIS_IDENTITY_SECRET);
 *   const body = await readBody(req);      // the exact bytes received
 *   const result = verify(req, body);      // node:http / Express / Fastify request
 *   if (!result.ok) return res.writeHead(401).end();
 *   result.identity.account;               // the authenticated account
 *
 * The replay cache lives in this function: create one verifier per process and keep it. Several
 * upstream processes each keep their own, so run the hop over mutual TLS (see the README) rather
 * than rely on the cache alone.
 */
export function createIdentityVerifier(secret: string | Buffer | KeyObject, options: IdentityVerifierOptions = {}): IdentityVerifier {
  const key = toKey(secret);
  const maxAgeMs = positiveInteger("maxAgeMs", options.maxAgeMs, 5_000, 60_000);
  const seen = new SeenRequests(positiveInteger("maxEntries", options.maxEntries, 1_000_000, 100_000_000));
  const now = options.now ?? Date.now;
  return (req, body) => {
    const signature = header(req, IDENTITY_HEADERS.signature);
    const keyId = header(req, IDENTITY_HEADERS.keyId);
    if (signature === undefined || keyId === undefined) return { ok: false, reason: "missing" };
    if (!signature.startsWith(PREFIX)) return { ok: false, reason: /^v[0-9]+=/.test(signature) ? "unsupported-version" : "malformed" };
    const requestId = header(req, IDENTITY_HEADERS.requestId);
    const account = header(req, IDENTITY_HEADERS.account);
    const scopesText = header(req, IDENTITY_HEADERS.scopes);
    const clientIp = header(req, IDENTITY_HEADERS.clientIp);
    const timestampText = header(req, IDENTITY_HEADERS.timestamp);
    const digest = header(req, IDENTITY_HEADERS.contentDigest);
    const subAccount = header(req, IDENTITY_HEADERS.subAccount) ?? null;
    if (
      requestId === undefined ||
      requestId === "" ||
      account === undefined ||
      scopesText === undefined ||
      clientIp === undefined ||
      timestampText === undefined ||
      !/^[0-9]{1,16}$/.test(timestampText) ||
      digest === undefined ||
      req.method === undefined ||
      req.url === undefined
    ) {
      return { ok: false, reason: "malformed" };
    }
    const identity: PortcullisIdentity = {
      requestId,
      keyId,
      account,
      subAccount,
      scopes: scopesText === "" ? [] : scopesText.split(","),
      clientIp,
      timestamp: Number(timestampText),
    };
    const expected = createHmac("sha256", key).update(macInput(req.method, req.url, digest, identity, scopesText), "latin1").digest();
    const given = Buffer.from(signature.slice(PREFIX.length), "base64url");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: "bad-signature" };
    const at = now();
    const expiry = identity.timestamp + maxAgeMs;
    if (Math.abs(at - identity.timestamp) > maxAgeMs || !seen.covers(expiry)) return { ok: false, reason: "stale" };
    // The digest header is covered by the MAC; the body must be the one it names.
    const actual = Buffer.from(bodyDigest(body), "latin1");
    const claimed = Buffer.from(digest, "latin1");
    if (actual.length !== claimed.length || !timingSafeEqual(actual, claimed)) return { ok: false, reason: "body-mismatch" };
    if (seen.has(requestId)) return { ok: false, reason: "replayed" };
    seen.add(requestId, expiry, at);
    return { ok: true, identity };
  };
}
