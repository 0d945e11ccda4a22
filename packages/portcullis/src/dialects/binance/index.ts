import type { IncomingHttpHeaders } from "node:http";
import type { Denial } from "../../errors/catalogue.js";
import type { VerificationKey } from "../../contract/verification-key.js";
import type { RequestContext, ReplayClaim, AuthScheme, Credential, ForwardedRequest, SchemeOptions } from "../../contract/request.js";
import { DENIALS, createBinanceRenderer } from "./errors.js";
import { binanceLimitHeaders } from "./limits.js";
import { binanceFreshness, createBinanceMessageSigning } from "./message.js";
import { BODY, DEFAULT_RECV_WINDOW_MS, QUERY, type SigningParams, isFormBody, scanSigningParams } from "./params.js";
import { type Hmac, type SignedPayload, verifyBinanceSignature } from "./signature.js";
import { acceptableFrom, rememberUntil, singleUse } from "../../replay/claims.js";

export { binanceErrorFor } from "./errors.js";
export { binanceLimitHeaders } from "./limits.js";
export { type SignedPayload, type WebSocketParamValue, verifyBinanceSignature, verifyWebSocketSignature, webSocketSignaturePayload } from "./signature.js";

/**
 * The Binance dialect (spot REST, "SIGNED endpoint security" of binance-spot-api-docs):
 *
 * - `X-MBX-APIKEY: <Portcullis key id>`;
 * - `timestamp`, optional `recvWindow` and `signature` in the query string or the form body;
 * - the signature covers the query string concatenated with the body exactly as sent (Binance's
 *   `totalParams`), without the `signature` parameter: HMAC-SHA256 as hex, Ed25519 or RSA
 *   PKCS#1 v1.5 SHA-256 as base64;
 * - fresh when `timestamp < now + 1000 ms` (the gateway's futureSkewMs, 1000 by default) and
 *   `now - timestamp <= recvWindow`, where the key's own window caps recvWindow;
 * - each signature is accepted once (it is the request's single-use value until it expires), and
 *   is removed from the request before it is forwarded (a credential never reaches the upstream);
 * - refusals in Binance's `{"code", "msg"}` shape (errors.ts);
 * - WebSocket API requests signed in their own parameters (message.ts).
 */
const HEADER = "x-mbx-apikey";

class BinanceCredential implements Credential, SigningParams, SignedPayload {
  readonly scheme = "binance" as const;
  signature = "";
  signatureIn = -1;
  cutStart = 0;
  cutEnd = 0;
  timestamp = Number.NaN;
  recvWindow = Number.NaN;
  /** The canonical signature, set by verify for replay. */
  private nonce = "";

  constructor(
    private readonly futureSkewMs: number,
    readonly keyId: string,
    /** The raw query string (no "?") and the exact body: what the signature covers. */
    private readonly query: string | null,
    private readonly body: Buffer,
  ) {}

  fresh(ctx: RequestContext, key: VerificationKey): Denial | undefined {
    return binanceFreshness(this.timestamp, this.recvWindow, key, ctx.now, this.futureSkewMs);
  }

  verify(_ctx: RequestContext, key: VerificationKey): Denial | undefined {
    const result = verifyBinanceSignature(key, this, this.signature);
    if (typeof result !== "string") return result;
    this.nonce = result;
    return undefined;
  }

  replayClaim(_ctx: RequestContext, key: VerificationKey): ReplayClaim {
    // Remembered for as long as any window could accept it: the client's recvWindow bounds the
    // key's (whatever the key is changed to), plus Binance's 1 s of clock allowance.
    return singleUse(key.record.id, this.nonce, acceptableFrom(this.timestamp, this.futureSkewMs, key), rememberUntil(this.timestamp, this.recvWindow));
  }

  /** Upstream, the `signature` pair is gone from the query or the form body (its `&` with it). */
  forwarded(ctx: RequestContext): ForwardedRequest {
    if (this.signatureIn === QUERY) {
      const query = this.query ?? "";
      const rest = query.slice(0, this.cutStart) + query.slice(this.cutEnd);
      return { url: rest === "" ? ctx.path : `${ctx.path}?${rest}`, body: this.body };
    }
    if (this.signatureIn === BODY) {
      return { url: ctx.url, body: Buffer.concat([this.body.subarray(0, this.cutStart), this.body.subarray(this.cutEnd)]) };
    }
    return { url: ctx.url, body: this.body };
  }

  // --- the signed payload: query + body, minus the signature pair -----------------------------

  feed(hmac: Hmac): void {
    const query = this.query;
    if (query !== null) {
      if (this.signatureIn === QUERY) {
        if (this.cutStart > 0) hmac.update(query.slice(0, this.cutStart), "latin1");
        if (this.cutEnd < query.length) hmac.update(query.slice(this.cutEnd), "latin1");
      } else {
        hmac.update(query, "latin1");
      }
    }
    const body = this.body;
    if (body.length > 0) {
      if (this.signatureIn === BODY) {
        if (this.cutStart > 0) hmac.update(body.subarray(0, this.cutStart));
        if (this.cutEnd < body.length) hmac.update(body.subarray(this.cutEnd));
      } else {
        hmac.update(body);
      }
    }
  }

  bytes(): Buffer {
    const query = this.query ?? "";
    const body = this.body;
    const cut = this.cutEnd - this.cutStart;
    const out = Buffer.allocUnsafe(query.length + body.length - cut);
    let n = 0;
    if (this.signatureIn === QUERY) {
      n += out.write(query.slice(0, this.cutStart), n, "latin1");
      n += out.write(query.slice(this.cutEnd), n, "latin1");
    } else {
      n += out.write(query, n, "latin1");
    }
    if (this.signatureIn === BODY) {
      n += body.copy(out, n, 0, this.cutStart);
      n += body.copy(out, n, this.cutEnd);
    } else {
      n += body.copy(out, n);
    }
    return n === out.length ? out : out.subarray(0, n);
  }
}

export function createBinanceScheme(options: SchemeOptions): AuthScheme {
  const futureSkewMs = options.futureSkewMs;
  return {
    name: "binance",
    credentialHeaders: [HEADER],
    detect: (headers: IncomingHttpHeaders) => headers[HEADER] !== undefined,
    extract(ctx: RequestContext): Credential | Denial {
      const header = ctx.headers[HEADER];
      // A malformed id (including one sent twice) is refused by the key stage as -2014.
      const keyId = typeof header === "string" ? header : "";
      const credential = new BinanceCredential(futureSkewMs, keyId, ctx.query, ctx.body);
      if (ctx.query !== null) {
        const denial = scanSigningParams(ctx.query, QUERY, credential);
        if (denial !== undefined) return denial;
      }
      if (ctx.body.length > 0 && isFormBody(ctx.headers["content-type"])) {
        const denial = scanSigningParams(ctx.body.toString("latin1"), BODY, credential);
        if (denial !== undefined) return denial;
      }
      if (credential.signatureIn < 0) return DENIALS.signatureMissing;
      if (Number.isNaN(credential.timestamp)) return DENIALS.timestampMissing;
      if (Number.isNaN(credential.recvWindow)) credential.recvWindow = DEFAULT_RECV_WINDOW_MS;
      return credential;
    },
    render: createBinanceRenderer(futureSkewMs),
    message: createBinanceMessageSigning(futureSkewMs),
    limitHeaders: binanceLimitHeaders,
  };
}
