import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import { type Denial, deny } from "../../errors/catalogue.js";
import type { VerificationKey } from "../../contract/verification-key.js";
import type { RequestContext, ReplayClaim, AuthScheme, Credential, RenderedError, SchemeOptions } from "../../contract/request.js";
import { createKrakenRenderer } from "./errors.js";
import { findNonce } from "./nonce.js";
import { increasing } from "../../replay/claims.js";

export { KRAKEN_ERRORS, KRAKEN_ERROR_FOR } from "./errors.js";
export { findNonce, type FoundNonce } from "./nonce.js";

/**
 * The Kraken dialect (Kraken's spot REST authentication):
 *
 *   API-Key:  the Portcullis key id
 *   API-Sign: base64(HMAC-SHA512(base64-decoded secret, URI path + SHA-256(nonce + POST data)))
 *
 * where the nonce is the `nonce` parameter of the POST data (form-encoded or JSON), an unsigned
 * 64-bit integer that must increase per key. There is no timestamp: stage 5 accepts, and the
 * increasing nonce is the replay protection (stage 7, once the signature has verified), with a
 * window that tolerates requests arriving slightly out of order — a nonce up to `window` below
 * the highest accepted is accepted once, never twice (see SequenceStore).
 *
 * The URI path is the request path exactly as sent; the signature covers the exact body bytes.
 * A query string is refused: API-Sign does not cover it, so it would reach the upstream unsigned.
 * Refusals are Kraken's `{"error": ["EAPI:…"]}` (errors.ts).
 */

/**
 * The default nonce window: 5000 nonce units. Kraken's own keys default to 0 and let the user set
 * a window in nonce units; with the millisecond nonces that ccxt and most clients send, 5000 is
 * 5 s, the same tolerance as the native scheme's default freshness window — room for requests
 * that overtake each other on parallel connections, while a nonce is still accepted at most once.
 */
export const KRAKEN_DEFAULT_NONCE_WINDOW = 5_000n;

const U64_MAX = 0xffff_ffff_ffff_ffffn;

/** Options of the Kraken scheme, on top of every scheme's. */
export interface KrakenSchemeOptions extends SchemeOptions {
  /**
   * How far below the highest accepted nonce a new one may be, in nonce units (0: every nonce
   * must be higher than the last). Default 5000.
   */
  readonly krakenNonceWindow?: bigint | number;
}

/** API-Sign: standard base64 of 64 bytes, canonical (88 characters, the last data one on a 4-bit boundary). */
const API_SIGN_RE = /^[A-Za-z0-9+/]{85}[AQgw]==$/;

class KrakenCredential implements Credential {
  readonly scheme = "kraken" as const;

  constructor(
    readonly keyId: string,
    private readonly apiSign: string,
    private readonly nonceText: string,
    private readonly nonce: bigint,
    private readonly window: bigint,
  ) {}

  /** Kraken has no timestamp: the increasing nonce (stage 7) is the protection. */
  fresh(): undefined {
    return undefined;
  }

  verify(ctx: RequestContext, key: VerificationKey): Denial | undefined {
    const secret = key.hmacKeyDecoded;
    if (secret === null) return deny("ALGORITHM_MISMATCH", "the key has no Kraken (base64) secret");
    const inner = createHash("sha256").update(this.nonceText, "latin1").update(ctx.body).digest();
    // The path as sent: node hands the request target over as latin1 text, one char per byte.
    const expected = createHmac("sha512", secret).update(ctx.path, "latin1").update(inner).digest();
    const given = Buffer.from(this.apiSign, "base64");
    return timingSafeEqual(expected, given) ? undefined : deny("SIGNATURE_INVALID");
  }

  replayClaim(_ctx: RequestContext, key: VerificationKey): ReplayClaim {
    return increasing(key.record.id, this.nonce, this.window);
  }
}

function nonceWindow(option: bigint | number | undefined): bigint {
  if (option === undefined) return KRAKEN_DEFAULT_NONCE_WINDOW;
  const window = typeof option === "number" && Number.isSafeInteger(option) ? BigInt(option) : option;
  if (typeof window !== "bigint" || window < 0n || window > U64_MAX) {
    throw new TypeError("krakenNonceWindow must be an integer from 0 to 2^64 - 1");
  }
  return window;
}

export function createKrakenScheme(options: KrakenSchemeOptions): AuthScheme {
  const window = nonceWindow(options.krakenNonceWindow);
  const render = createKrakenRenderer();
  return {
    name: "kraken",
    credentialHeaders: ["api-key", "api-sign"],
    detect: (headers: IncomingHttpHeaders) => headers["api-sign"] !== undefined || headers["api-key"] !== undefined,
    extract(ctx: RequestContext): Credential | Denial {
      const headers = ctx.headers;
      const keyId = headers["api-key"];
      if (keyId === undefined || keyId.length === 0) return deny("CREDENTIALS_MISSING", "API-Key header missing");
      if (typeof keyId !== "string") return deny("KEY_ID_MALFORMED", "API-Key sent more than once");
      const apiSign = headers["api-sign"];
      if (apiSign === undefined) return deny("SIGNATURE_HEADER_MALFORMED", "API-Sign header missing");
      if (typeof apiSign !== "string" || !API_SIGN_RE.test(apiSign)) {
        return deny("SIGNATURE_HEADER_MALFORMED", "API-Sign is not base64 of 64 bytes");
      }
      if (ctx.query !== null && ctx.query.length > 0) {
        return deny("SIGNATURE_COMPONENT_MISSING", "API-Sign does not cover the query string");
      }
      const nonce = findNonce(ctx.body, headers["content-type"]);
      if ("ok" in nonce) return nonce;
      return new KrakenCredential(keyId, apiSign, nonce.text, nonce.value, window);
    },
    render: (denial: Denial, _requestId: string): RenderedError => render(denial),
  };
}
