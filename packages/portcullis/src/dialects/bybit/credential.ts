import { constants, createHmac, createVerify, timingSafeEqual } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import { type Denial, deny } from "../../errors/catalogue.js";
import type { VerificationKey } from "../../contract/verification-key.js";
import type { RequestContext, ReplayClaim, Credential, SchemeOptions } from "../../contract/request.js";
import { BYBIT_HEADERS, BYBIT_REFUSALS } from "./errors.js";
import { acceptableFrom, rememberUntil, singleUse } from "../../replay/claims.js";

/**
 * Bybit's v5 REST signing ("Integration Guidance", Authentication):
 *
 *   X-BAPI-API-KEY       the key id
 *   X-BAPI-TIMESTAMP     UTC epoch milliseconds
 *   X-BAPI-RECV-WINDOW   how long the request is valid, in ms (optional, default 5000)
 *   X-BAPI-SIGN          over  timestamp + key + recv_window + (query string | body)
 *
 * A GET signs its query string exactly as sent (not sorted, not re-encoded); any other method
 * signs its body exactly as sent. What is not signed may not be sent: a GET with a body, or a
 * POST with a query string, is refused. The recv_window is signed only when the header is sent.
 *
 * The algorithm follows the key, as on Bybit: a system-generated (HMAC) key signs with
 * HMAC-SHA256 in lower-case hex; a self-generated RSA key signs with RSA-SHA256 (PKCS#1 v1.5) in
 * base64, verified with the public key the gateway holds. X-BAPI-SIGN-TYPE (sent by v3-era
 * clients) is accepted when it says "2", HMAC-SHA256's number, and otherwise ignored.
 *
 * Time, Bybit's rule: server_time - recv_window <= timestamp < server_time + 1000, with the
 * gateway's future skew (default 1000 ms) in place of the 1000 and the recv_window capped by the
 * key's freshness window (default 5 s, up to 60 s per key): a client cannot widen its own window
 * beyond what the key allows. Bybit has no nonce: the signature is the single-use value.
 */
export const BYBIT_DEFAULT_RECV_WINDOW_MS = 5_000;

const HMAC_LENGTH = 32;
/** Anything longer than the base64 of an 8192-bit RSA signature is not a signature. */
const MAX_SIGN_LENGTH = 2048;
const SIGN_CHARS_RE = /^[A-Za-z0-9+/=]+$/;
const HEX_RE = /^[0-9a-fA-F]{64}$/;
const UPPER_HEX_RE = /[A-F]/;
const MAX_TIMESTAMP_DIGITS = 15;
const MAX_RECV_WINDOW_DIGITS = 9;

/** The decoded X-BAPI-SIGN of an HMAC request (verification is synchronous: one buffer serves all). */
const provided = Buffer.alloc(HMAC_LENGTH);

/** A run of 1..`max` decimal digits as a number, or -1. */
function parseDigits(text: string, max: number): number {
  if (text.length === 0 || text.length > max) return -1;
  let value = 0;
  for (let i = 0; i < text.length; i++) {
    const d = text.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    value = value * 10 + d;
  }
  return value;
}

class BybitCredential implements Credential {
  readonly scheme = "bybit" as const;

  constructor(
    private readonly options: SchemeOptions,
    readonly keyId: string,
    private readonly timestamp: string,
    private readonly time: number,
    /** The X-BAPI-RECV-WINDOW text as sent ("" when not sent: then it is not signed). */
    private readonly recvWindowText: string,
    private readonly recvWindow: number,
    private readonly sign: string,
  ) {}

  private windowOf(key: VerificationKey): number {
    return this.recvWindow < key.windowMs ? this.recvWindow : key.windowMs;
  }

  fresh(ctx: RequestContext, key: VerificationKey): Denial | undefined {
    if (ctx.now - this.time > this.windowOf(key)) return deny("CREATED_TOO_OLD");
    if (this.time - ctx.now > this.options.futureSkewMs) return deny("CREATED_IN_FUTURE");
    return undefined;
  }

  verify(ctx: RequestContext, key: VerificationKey): Denial | undefined {
    const algorithm = key.record.algorithm;
    if (algorithm === "hmac-sha256") {
      const secret = key.hmacKey;
      if (secret === null) return BYBIT_REFUSALS.keyAlgorithm;
      if (!HEX_RE.test(this.sign)) return BYBIT_REFUSALS.hmacNotHex;
      const hmac = createHmac("sha256", secret)
        .update(this.timestamp, "latin1")
        .update(this.keyId, "latin1")
        .update(this.recvWindowText, "latin1");
      if (ctx.method === "GET") hmac.update(ctx.query ?? "", "latin1");
      else hmac.update(ctx.body);
      provided.write(this.sign, "hex");
      return timingSafeEqual(hmac.digest(), provided) ? undefined : deny("SIGNATURE_INVALID");
    }
    const publicKey = key.publicKey;
    if (algorithm !== "rsa" || publicKey === null) return BYBIT_REFUSALS.keyAlgorithm;
    const signature = Buffer.from(this.sign, "base64");
    // One signature, one spelling: a non-canonical base64 could otherwise replay it.
    if (signature.length === 0 || signature.toString("base64") !== this.sign) return BYBIT_REFUSALS.rsaNotBase64;
    const verifier = createVerify("sha256")
      .update(this.timestamp, "latin1")
      .update(this.keyId, "latin1")
      .update(this.recvWindowText, "latin1");
    if (ctx.method === "GET") verifier.update(ctx.query ?? "", "latin1");
    else verifier.update(ctx.body);
    try {
      return verifier.verify({ key: publicKey, padding: constants.RSA_PKCS1_PADDING }, signature) ? undefined : deny("SIGNATURE_INVALID");
    } catch {
      return deny("SIGNATURE_INVALID");
    }
  }

  replayClaim(_ctx: RequestContext, key: VerificationKey): ReplayClaim {
    // Hex is case-insensitive: the single-use value is its lower-case spelling.
    const value = key.record.algorithm === "hmac-sha256" && UPPER_HEX_RE.test(this.sign) ? this.sign.toLowerCase() : this.sign;
    return singleUse(key.record.id, value, acceptableFrom(this.time, this.options.futureSkewMs, key), rememberUntil(this.time, this.windowOf(key)));
  }
}

/** One header's value: the string, or null when absent or empty, or undefined when not one value. */
function header(headers: IncomingHttpHeaders, name: string): string | null | undefined {
  const value = headers[name];
  if (value === undefined || value === "") return null;
  return typeof value === "string" ? value : undefined;
}

/** Stage 3: the headers, present and well formed, or the Bybit refusal for the first that is not. */
export function extractBybitCredential(ctx: RequestContext, options: SchemeOptions): BybitCredential | Denial {
  const headers = ctx.headers;
  const keyId = header(headers, BYBIT_HEADERS.key);
  if (keyId === null) return BYBIT_REFUSALS.keyMissing;
  if (keyId === undefined) return BYBIT_REFUSALS.keyInvalid;
  const sign = header(headers, BYBIT_HEADERS.sign);
  if (sign === null) return BYBIT_REFUSALS.signMissing;
  const timestamp = header(headers, BYBIT_HEADERS.timestamp);
  if (timestamp === null) return BYBIT_REFUSALS.timestampMissing;
  const time = timestamp === undefined ? -1 : parseDigits(timestamp, MAX_TIMESTAMP_DIGITS);
  if (timestamp === undefined || time < 0) return BYBIT_REFUSALS.timestampInvalid;

  const recvWindowText = header(headers, BYBIT_HEADERS.recvWindow);
  let recvWindow = BYBIT_DEFAULT_RECV_WINDOW_MS;
  if (recvWindowText !== null) {
    recvWindow = recvWindowText === undefined ? -1 : parseDigits(recvWindowText, MAX_RECV_WINDOW_DIGITS);
    if (recvWindowText === undefined || recvWindow <= 0) return BYBIT_REFUSALS.recvWindowInvalid;
  }
  const signType = headers[BYBIT_HEADERS.signType];
  if (signType !== undefined && signType !== "2") return BYBIT_REFUSALS.signTypeInvalid;
  if (sign === undefined || sign.length > MAX_SIGN_LENGTH || !SIGN_CHARS_RE.test(sign)) return BYBIT_REFUSALS.signInvalid;

  if (ctx.method === "GET") {
    if (ctx.body.length > 0) return BYBIT_REFUSALS.bodyOnGet;
  } else if (ctx.query !== null && ctx.query !== "") {
    return BYBIT_REFUSALS.queryOnPost;
  }
  return new BybitCredential(options, keyId, timestamp, time, recvWindowText ?? "", recvWindow, sign);
}
