import type { IncomingHttpHeaders } from "node:http";
import { compactVerify, errors as joseErrors } from "jose";
import { type Denial, deny } from "../../errors/catalogue.js";
import type { VerificationKey } from "../../contract/verification-key.js";
import type { RequestContext, ReplayClaim, AuthScheme, Credential, SchemeOptions, StageAnswer } from "../../contract/request.js";
import { authorityOf } from "../../signatures/rfc9421.js";
import { type VerifyKey, algorithmOf, verifyKeyFor } from "./keys.js";
import { renderCoinbase } from "./render.js";
import { type CdpAlgorithm, type CdpToken, parseBearerToken } from "./token.js";
import { acceptableFrom, singleUse } from "../../replay/claims.js";

/**
 * The Coinbase dialect: CDP API keys (Coinbase Advanced Trade). Every request carries a fresh JWT
 * in `Authorization: Bearer`, signed ES256 (ECDSA P-256) or EdDSA (Ed25519) with the key's
 * private half; Portcullis holds the public key. The token names the key (`kid` = `sub`), the
 * request (`uri` = method, host and path) and its own lifetime (`nbf`..`exp`, at most 120 s), and
 * its header `nonce` is single-use for that lifetime. The body is not covered (as on Coinbase).
 *
 * Stages: 3 parses the token strictly (token.ts); 5 checks nbf/exp/iat and the lifetime; 6 checks
 * the algorithm against the key and the uri against the request, then verifies the signature
 * with jose over a CryptoKey imported once per loaded key (keys.ts); 7 spends the nonce.
 * Refusals use Coinbase's error shape (render.ts). See docs/dialects/coinbase.md.
 */

/** The longest a token may be valid (exp - nbf), in seconds. */
export const MAX_LIFETIME_SECONDS = 120;

const VERIFY_OPTIONS: Readonly<Record<CdpAlgorithm, { readonly algorithms: string[] }>> = {
  ES256: { algorithms: ["ES256"] },
  EdDSA: { algorithms: ["EdDSA"] },
};

/** Does the token's uri claim name this request (method, the gateway's host, path; no query)? */
export function uriMatches(uri: string, ctx: RequestContext, scheme: "http" | "https"): boolean {
  const space = uri.indexOf(" ");
  if (space <= 0 || uri.slice(0, space) !== ctx.method) return false;
  let rest = uri.slice(space + 1);
  // ccxt strips only "https://" from its base URL, so against an http gateway the claim starts
  // with "http://". A prefix is accepted only when it is the gateway's own scheme.
  const prefix = scheme === "https" ? "https://" : "http://";
  if (rest.startsWith(prefix)) rest = rest.slice(prefix.length);
  const slash = rest.indexOf("/");
  if (slash <= 0) return false;
  const authority = authorityOf(rest.slice(0, slash), scheme);
  return ctx.authority !== undefined && authority === ctx.authority && rest.slice(slash) === ctx.path;
}

function joseDenial(err: unknown): Denial {
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return deny("SIGNATURE_INVALID");
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return deny("ALGORITHM_MISMATCH");
  if (err instanceof joseErrors.JWSInvalid) return deny("TOKEN_MALFORMED", err.message);
  return deny("SIGNATURE_INVALID", err instanceof Error ? err.message : "verification failed");
}

class CoinbaseCredential implements Credential {
  readonly scheme = "coinbase" as const;
  readonly keyId: string;

  constructor(
    private readonly options: SchemeOptions,
    readonly token: CdpToken,
  ) {
    this.keyId = token.keyId;
  }

  fresh(ctx: RequestContext): Denial | undefined {
    const { nbf, exp, iat } = this.token;
    if (exp - nbf > MAX_LIFETIME_SECONDS) return deny("TOKEN_LIFETIME_TOO_LONG", `${exp - nbf} s`);
    const latest = ctx.now + this.options.futureSkewMs;
    if (nbf * 1000 > latest || (iat !== undefined && iat * 1000 > latest)) return deny("TOKEN_NOT_YET_VALID");
    if (exp * 1000 <= ctx.now) return deny("TOKEN_EXPIRED");
    return undefined;
  }

  verify(ctx: RequestContext, key: VerificationKey): StageAnswer {
    const alg = algorithmOf(key);
    if (alg === null || key.publicKey === null) return deny("ALGORITHM_MISMATCH", `key is ${key.record.algorithm}`);
    if (alg !== this.token.alg) return deny("ALGORITHM_MISMATCH", `key is ${key.record.algorithm}, alg is ${this.token.alg}`);
    if (!uriMatches(this.token.uri, ctx, this.options.scheme)) return deny("TOKEN_URI_MISMATCH");
    const verifyKey = verifyKeyFor(key.publicKey, alg);
    if (verifyKey instanceof Promise) {
      return verifyKey.then(
        (imported) => this.check(imported, alg),
        () => deny("SIGNATURE_INVALID", "public key import failed"),
      );
    }
    return this.check(verifyKey, alg);
  }

  private check(verifyKey: VerifyKey, alg: CdpAlgorithm): Promise<Denial | undefined> {
    return compactVerify(this.token.compact, verifyKey, VERIFY_OPTIONS[alg]).then(() => undefined, joseDenial);
  }

  replayClaim(_ctx: RequestContext, key: VerificationKey): ReplayClaim {
    // Acceptable from its nbf (or iat, when later) less the clock allowance; remembered for as
    // long as the token is valid: afterwards stage 5 refuses it anyway.
    const { nbf, iat } = this.token;
    const signedAt = (iat !== undefined && iat > nbf ? iat : nbf) * 1000;
    return singleUse(key.record.id, this.token.nonce, acceptableFrom(signedAt, this.options.futureSkewMs, key), this.token.exp * 1000);
  }
}

/** Is this request's Authorization a bearer token? ("Bearer" in any case, then one space.) */
function hasBearer(headers: IncomingHttpHeaders): boolean {
  const value = headers.authorization;
  return typeof value === "string" && value.length > 7 && value.charCodeAt(6) === 0x20 && value.slice(0, 6).toLowerCase() === "bearer";
}

export function createCoinbaseScheme(options: SchemeOptions): AuthScheme {
  return {
    name: "coinbase",
    credentialHeaders: ["authorization"],
    detect: hasBearer,
    extract(ctx: RequestContext): Credential | Denial {
      const authorization = ctx.headers.authorization;
      if (authorization === undefined || !hasBearer(ctx.headers)) return deny("CREDENTIALS_MISSING");
      const token = parseBearerToken(authorization);
      if ("ok" in token) return token;
      return new CoinbaseCredential(options, token);
    },
    render: renderCoinbase,
  };
}
