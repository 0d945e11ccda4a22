import { createHmac, timingSafeEqual } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import { type Denial, deny } from "../../errors/catalogue.js";
import type { VerificationKey } from "../../contract/verification-key.js";
import type { RequestContext, ReplayClaim, Credential, SchemeOptions, StageAnswer } from "../../contract/request.js";
import { OKX_HEADERS, OKX_REFUSALS } from "./errors.js";
import { parseOkxTimestamp } from "./timestamp.js";
import { acceptableFrom, rememberUntil, singleUse } from "../../replay/claims.js";

/**
 * OKX's REST signing (docs-v5, "REST Authentication"):
 *
 *   OK-ACCESS-KEY         the key id
 *   OK-ACCESS-TIMESTAMP   ISO 8601 UTC with milliseconds, e.g. 2020-12-08T09:08:57.715Z
 *   OK-ACCESS-SIGN        base64(HMAC-SHA256(secret, timestamp + METHOD + requestPath + body))
 *   OK-ACCESS-PASSPHRASE  the passphrase chosen when the key was created
 *
 * requestPath is the request target as sent, query included; body is the exact bytes sent (empty
 * for a GET). OKX has no nonce: the signature itself is the single-use value (a repeat of the
 * same signed request within its window is refused).
 *
 * Time: a request is fresh for 30 s after its timestamp (OKX's rule; a key created with its own
 * window uses that instead) and may be at most the gateway's future skew ahead of the clock.
 */

/** OKX: "The request will expire 30 seconds after the timestamp." */
export const OKX_WINDOW_MS = 30_000;
/** Passphrases are 8-64 printable characters (keys/input.ts): anything longer cannot match. */
const MAX_PASSPHRASE = 64;
const SIGN_LENGTH = 32;
/**
 * The canonical base64 of 32 bytes: 43 characters and one `=`, the last character carrying two
 * zero bits. Only the canonical form is accepted, so one signature has exactly one spelling and
 * cannot be replayed under another.
 */
const SIGN_RE = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

/**
 * The decoded OK-ACCESS-SIGN of the request being verified. Verification is synchronous and
 * the buffer is read right after it is written, so one buffer serves every request.
 */
const provided = Buffer.alloc(SIGN_LENGTH);

function windowOf(key: VerificationKey): number {
  return key.record.windowMs ?? OKX_WINDOW_MS;
}

class OkxCredential implements Credential {
  readonly scheme = "okx" as const;

  constructor(
    private readonly options: SchemeOptions,
    readonly keyId: string,
    private readonly timestamp: string,
    private readonly time: number,
    private readonly sign: string,
    private readonly passphrase: string,
  ) {}

  fresh(ctx: RequestContext, key: VerificationKey): Denial | undefined {
    if (ctx.now - this.time > windowOf(key)) return deny("CREATED_TOO_OLD");
    if (this.time - ctx.now > this.options.futureSkewMs) return deny("CREATED_IN_FUTURE");
    return undefined;
  }

  /**
   * The signature, then the passphrase. The passphrase is checked only for a request whose
   * signature verifies, so only a holder of the secret can make the gateway run its slow hash.
   */
  verify(ctx: RequestContext, key: VerificationKey): StageAnswer {
    const secret = key.hmacKey;
    if (secret === null) return OKX_REFUSALS.notHmac;
    // One update for the text (each update is a call into C++), one for the body bytes.
    const hmac = createHmac("sha256", secret).update(this.timestamp + ctx.method + ctx.url, "latin1");
    if (ctx.body.length > 0) hmac.update(ctx.body);
    const expected = hmac.digest();
    provided.write(this.sign, "base64");
    if (!timingSafeEqual(expected, provided)) return deny("SIGNATURE_INVALID");

    const check = key.passphrase;
    if (check === null) return OKX_REFUSALS.noPassphrase;
    if (this.passphrase.length > MAX_PASSPHRASE) return OKX_REFUSALS.passphraseTooLong;
    const ok = check.check(this.passphrase);
    if (typeof ok === "boolean") return ok ? undefined : deny("PASSPHRASE_INVALID");
    return ok.then(
      (matched) => (matched ? undefined : deny("PASSPHRASE_INVALID")),
      (err: unknown) => deny("INTERNAL", `passphrase check failed: ${err instanceof Error ? err.message : "unknown"}`),
    );
  }

  replayClaim(_ctx: RequestContext, key: VerificationKey): ReplayClaim {
    return singleUse(key.record.id, this.sign, acceptableFrom(this.time, this.options.futureSkewMs, key), rememberUntil(this.time, windowOf(key)));
  }
}

/** One header's value: the string, or null when absent or empty, or undefined when not one value. */
function header(headers: IncomingHttpHeaders, name: string): string | null | undefined {
  const value = headers[name];
  if (value === undefined || value === "") return null;
  return typeof value === "string" ? value : undefined;
}

/** Stage 3: the four headers, present and well formed, or the OKX refusal for the first that is not. */
export function extractOkxCredential(ctx: RequestContext, options: SchemeOptions): OkxCredential | Denial {
  const headers = ctx.headers;
  const keyId = header(headers, OKX_HEADERS.key);
  if (keyId === null) return OKX_REFUSALS.keyMissing;
  if (keyId === undefined) return OKX_REFUSALS.keyInvalid;
  const sign = header(headers, OKX_HEADERS.sign);
  if (sign === null) return OKX_REFUSALS.signMissing;
  const timestamp = header(headers, OKX_HEADERS.timestamp);
  if (timestamp === null) return OKX_REFUSALS.timestampMissing;
  const passphrase = header(headers, OKX_HEADERS.passphrase);
  if (passphrase === null) return OKX_REFUSALS.passphraseMissing;
  if (passphrase === undefined) return OKX_REFUSALS.passphraseInvalid;
  const time = timestamp === undefined ? NaN : parseOkxTimestamp(timestamp);
  if (timestamp === undefined || Number.isNaN(time)) return OKX_REFUSALS.timestampInvalid;
  if (sign === undefined || !SIGN_RE.test(sign)) return OKX_REFUSALS.signInvalid;
  return new OkxCredential(options, keyId, timestamp, time, sign, passphrase);
}
