import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from "node:crypto";

/**
 * Identity headers: how the gateway tells the upstream who is calling, in a form the upstream can
 * verify came from the gateway. After a request passes every check, the gateway strips the
 * caller's credentials and adds:
 *
 *   portcullis-request-id    the gateway's id for this request
 *   portcullis-key-id        the API key that signed it
 *   portcullis-account       the key's account
 *   portcullis-sub-account   the key's sub-account, when it has one
 *   portcullis-scopes        the key's scopes, comma-separated
 *   portcullis-client-ip     the client address the gateway resolved
 *   portcullis-timestamp     when the gateway forwarded it (epoch ms)
 *   portcullis-identity      v1=<base64url HMAC-SHA256 over all of the above, the method and the
 *                            request target, under the gateway-upstream secret>
 *
 * Any `portcullis-*` header a client sends is removed first, so the upstream never sees one the
 * gateway did not write. Binding the method and target means a captured set of identity headers
 * cannot be replayed onto a different request.
 */
export const IDENTITY_HEADERS = {
  requestId: "portcullis-request-id",
  keyId: "portcullis-key-id",
  account: "portcullis-account",
  subAccount: "portcullis-sub-account",
  scopes: "portcullis-scopes",
  clientIp: "portcullis-client-ip",
  timestamp: "portcullis-timestamp",
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

const DOMAIN = "portcullis-identity/v1";

function macInput(method: string, target: string, id: PortcullisIdentity, scopes: string): string {
  return `${DOMAIN}\n${id.timestamp}\n${method}\n${target}\n${id.requestId}\n${id.keyId}\n${id.account}\n${id.subAccount ?? ""}\n${scopes}\n${id.clientIp}`;
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

  /** Writes the identity headers for a request being forwarded into `out`. */
  write(out: Record<string, string | string[]>, method: string, target: string, identity: PortcullisIdentity, scopesText: string): void {
    const mac = createHmac("sha256", this.key).update(macInput(method, target, identity, scopesText), "latin1").digest("base64url");
    out[IDENTITY_HEADERS.requestId] = identity.requestId;
    out[IDENTITY_HEADERS.keyId] = identity.keyId;
    out[IDENTITY_HEADERS.account] = identity.account;
    if (identity.subAccount !== null) out[IDENTITY_HEADERS.subAccount] = identity.subAccount;
    out[IDENTITY_HEADERS.scopes] = scopesText;
    out[IDENTITY_HEADERS.clientIp] = identity.clientIp;
    out[IDENTITY_HEADERS.timestamp] = String(identity.timestamp);
    out[IDENTITY_HEADERS.signature] = `v1=${mac}`;
  }

}

export type IdentityVerification =
  | { readonly ok: true; readonly identity: PortcullisIdentity }
  | { readonly ok: false; readonly reason: "missing" | "malformed" | "bad-signature" | "stale" };

export interface IdentityVerifierOptions {
  /** How old (or how far in the future) the gateway's timestamp may be. Default 60 s. */
  readonly maxAgeMs?: number;
  /** Clock in epoch ms; for tests. */
  readonly now?: () => number;
}

export interface UpstreamRequest {
  readonly method?: string | undefined;
  /** The request target as the upstream received it (path and query), e.g. node's `req.url`. */
  readonly url?: string | undefined;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

function header(req: UpstreamRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? undefined : v;
}

/**
 * Upstream side: returns a function that checks a request's identity headers. Use it in the
 * service behind the gateway to trust `portcullis-account` and friends only when the gateway
 * wrote them:
 *
 *   const verify = createIdentityVerifier(process.env.PORTCULLIS_IDENTITY_SECRET);
 *   const result = verify(req);            // node:http / Express / Fastify request
 *   if (!result.ok) return res.writeHead(401).end();
 *   result.identity.account;               // the authenticated account
 */
export function createIdentityVerifier(
  secret: string | Buffer | KeyObject,
  options: IdentityVerifierOptions = {},
): (req: UpstreamRequest) => IdentityVerification {
  const key = toKey(secret);
  const maxAgeMs = options.maxAgeMs ?? 60_000;
  const now = options.now ?? Date.now;
  return (req) => {
    const signature = header(req, IDENTITY_HEADERS.signature);
    const keyId = header(req, IDENTITY_HEADERS.keyId);
    if (signature === undefined || keyId === undefined) return { ok: false, reason: "missing" };
    const requestId = header(req, IDENTITY_HEADERS.requestId);
    const account = header(req, IDENTITY_HEADERS.account);
    const scopesText = header(req, IDENTITY_HEADERS.scopes);
    const clientIp = header(req, IDENTITY_HEADERS.clientIp);
    const timestampText = header(req, IDENTITY_HEADERS.timestamp);
    const subAccount = header(req, IDENTITY_HEADERS.subAccount) ?? null;
    if (
      requestId === undefined ||
      account === undefined ||
      scopesText === undefined ||
      clientIp === undefined ||
      timestampText === undefined ||
      !/^[0-9]{1,16}$/.test(timestampText) ||
      !signature.startsWith("v1=") ||
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
    const expected = createHmac("sha256", key).update(macInput(req.method, req.url, identity, scopesText), "latin1").digest();
    const given = Buffer.from(signature.slice(3), "base64url");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: "bad-signature" };
    if (Math.abs(now() - identity.timestamp) > maxAgeMs) return { ok: false, reason: "stale" };
    return { ok: true, identity };
  };
}
