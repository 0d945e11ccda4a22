import { type Denial, deny } from "../../errors/catalogue.js";
import type { VerificationKey } from "../../contract/verification-key.js";
import type { RequestContext, ReplayClaim, Credential, MessageParams, MessageSigning } from "../../contract/request.js";
import { DENIALS } from "./errors.js";
import { DEFAULT_RECV_WINDOW_MS, MAX_RECV_WINDOW_MS } from "./params.js";
import { verifyWebSocketSignature } from "./signature.js";
import { acceptableFrom, rememberUntil, singleUse } from "../../replay/claims.js";

/**
 * The Binance WebSocket API's request security (binance-spot-api-docs, web-socket-api.md,
 * "Request security" and "Session Authentication"), as the Binance scheme's message signing:
 *
 * - a SIGNED request carries `apiKey`, `timestamp`, optional `recvWindow` (at most 60000, up to
 *   three decimals) and `signature` over every other parameter, sorted by name, as
 *   `name=value&…` in raw UTF-8 (signature.ts); HMAC, Ed25519 and RSA keys;
 * - on a connection logged on with `session.logon`, requests may omit `apiKey` and `signature`,
 *   but SIGNED ones still carry a fresh `timestamp`;
 * - freshness as on REST: `timestamp < now + 1000 ms` (the gateway's futureSkewMs) and
 *   `now - timestamp <= recvWindow`, the key's own window capping recvWindow; every signature is
 *   accepted once (its replay claim is recorded with the request's limits).
 *
 * `apiKey` and `signature` are the credentials: never forwarded, on any message.
 */
const CREDENTIAL_PARAMS: ReadonlySet<string> = new Set(["apiKey", "signature"]);

const DIGITS_RE = /^[0-9]{1,20}$/;
const RECV_WINDOW_RE = /^[0-9]{1,20}(\.[0-9]{1,3})?$/;

function present(v: string | number | boolean | undefined): v is string | number | boolean {
  return v !== undefined && v !== "";
}

/** `timestamp` (a JSON integer, or its digits as a string), or why not. */
function timestampOf(params: MessageParams | null): number | Denial {
  const v = params?.timestamp;
  if (!present(v)) return DENIALS.timestampMissing;
  const n = typeof v === "number" ? v : typeof v === "string" && DIGITS_RE.test(v) ? Number(v) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 0) return DENIALS.timestampInvalid;
  return n;
}

/** `recvWindow` (default 5000), or why not. */
function recvWindowOf(params: MessageParams | null): number | Denial {
  const v = params?.recvWindow;
  if (v === undefined) return DEFAULT_RECV_WINDOW_MS;
  if (v === "") return DENIALS.recvWindowEmpty;
  let n: number;
  if (typeof v === "number") {
    n = v;
    if (!Number.isFinite(n) || n < 0 || Math.round(n * 1000) !== n * 1000) return DENIALS.recvWindowInvalid;
  } else if (typeof v === "string" && RECV_WINDOW_RE.test(v)) {
    n = Number(v);
  } else {
    return DENIALS.recvWindowInvalid;
  }
  if (n > MAX_RECV_WINDOW_MS) return DENIALS.recvWindowTooLarge;
  return n;
}

/** Binance's freshness rule (REST and WebSocket alike). */
export function binanceFreshness(timestamp: number, recvWindow: number, key: VerificationKey, now: number, futureSkewMs: number): Denial | undefined {
  const ahead = timestamp - now;
  // Binance: timestamp < serverTime + 1000 (never refused for being at or before now).
  if (ahead > 0 && ahead >= futureSkewMs) return deny("CREATED_IN_FUTURE");
  // Binance: serverTime - timestamp <= recvWindow; the key's window is the operator's cap.
  const window = recvWindow < key.windowMs ? recvWindow : key.windowMs;
  if (-ahead > window) return deny("CREATED_TOO_OLD");
  return undefined;
}

/** A message's credential: signed (its own key) or logged on (the connection's key, freshness only). */
class BinanceMessageCredential implements Credential {
  readonly scheme = "binance" as const;
  /** The canonical signature, set by verify for replay. */
  private nonce = "";

  constructor(
    private readonly futureSkewMs: number,
    readonly keyId: string,
    private readonly timestamp: number,
    private readonly recvWindow: number,
    /** The signed parameters; null for a logged-on connection's message. */
    private readonly signed: MessageParams | null,
  ) {}

  fresh(ctx: RequestContext, key: VerificationKey): Denial | undefined {
    return binanceFreshness(this.timestamp, this.recvWindow, key, ctx.now, this.futureSkewMs);
  }

  verify(_ctx: RequestContext, key: VerificationKey): Denial | undefined {
    if (this.signed === null) return undefined;
    const result = verifyWebSocketSignature(key, this.signed);
    if (typeof result !== "string") return result;
    this.nonce = result;
    return undefined;
  }

  replayClaim(_ctx: RequestContext, key: VerificationKey): ReplayClaim | null {
    if (this.signed === null) return null;
    // Remembered for as long as any window could accept it, plus Binance's 1 s of clock allowance.
    return singleUse(key.record.id, this.nonce, acceptableFrom(this.timestamp, this.futureSkewMs, key), rememberUntil(this.timestamp, this.recvWindow));
  }
}

export function createBinanceMessageSigning(futureSkewMs: number): MessageSigning {
  return {
    credentialParams: CREDENTIAL_PARAMS,
    signed: (params) => params?.signature !== undefined,
    extract(params) {
      const apiKey = params.apiKey;
      if (typeof apiKey !== "string" || apiKey === "") return DENIALS.apiKeyMissing;
      const timestamp = timestampOf(params);
      if (typeof timestamp !== "number") return timestamp;
      const recvWindow = recvWindowOf(params);
      if (typeof recvWindow !== "number") return recvWindow;
      const signature = params.signature;
      if (typeof signature !== "string" || signature === "") return DENIALS.signatureMissing;
      return new BinanceMessageCredential(futureSkewMs, apiKey, timestamp, recvWindow, params);
    },
    loggedOn(params, keyId) {
      const timestamp = timestampOf(params);
      if (typeof timestamp !== "number") return timestamp;
      const recvWindow = recvWindowOf(params);
      if (typeof recvWindow !== "number") return recvWindow;
      return new BinanceMessageCredential(futureSkewMs, keyId, timestamp, recvWindow, null);
    },
  };
}
