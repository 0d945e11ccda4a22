import type { IncomingHttpHeaders } from "node:http";
import type { Denial } from "../errors/catalogue.js";
import type { VerificationKey } from "../keys/cache.js";
import type { Dialect } from "../keys/model.js";
import type { RequestContext } from "../pipeline/context.js";
import type { Charge, ChargeState } from "../limits/types.js";
import type { ReplayClaim } from "../storage/types.js";

/**
 * A signing scheme (the native RFC 9421 scheme, or an exchange dialect) is a plug-in of four
 * pipeline stages: credential extraction (3), freshness (5), signature (6) and replay (7). The
 * pipeline does everything else — routing, key lookup and status, IP allowlists, scopes — the
 * same way for every scheme.
 *
 * `extract` parses the request's credential strictly and returns it as an object that carries
 * the scheme's own checks for the later stages, so no stage ever casts or re-parses.
 */
export type StageAnswer = Denial | undefined | Promise<Denial | undefined>;

export interface Credential {
  readonly scheme: Dialect;
  /** The key id the request claims, as the key service knows it. */
  readonly keyId: string;
  /** Stage 5: is the request fresh? */
  fresh(ctx: RequestContext, key: VerificationKey): StageAnswer;
  /** Stage 6: does the signature verify (and everything it covers match the request)? */
  verify(ctx: RequestContext, key: VerificationKey): StageAnswer;
  /**
   * Stage 7: what must be recorded so this request cannot be replayed — a single-use value, or
   * an increasing nonce (null: nothing). The hot store records it together with the request's
   * limits, all or nothing (one round trip in Redis); it runs only after stage 6.
   */
  replayClaim(ctx: RequestContext, key: VerificationKey): ReplayClaim | null;
}

/** A refusal in a scheme's own wire format. */
export interface RenderedError {
  readonly status: number;
  readonly body: string;
  readonly headers?: Readonly<Record<string, string>>;
}

/** A WebSocket message's parameters, as the gateway parsed them: JSON strings, numbers and booleans. */
export type MessageParams = Readonly<Record<string, string | number | boolean>>;

/**
 * Optional: a scheme whose venue authenticates single WebSocket messages by their own parameters
 * (Binance's WebSocket API: `apiKey`, `timestamp`, `signature` in a request's params). A message
 * yields the same `Credential` as an HTTP request, so stages 4 to 7 (key, freshness, signature,
 * replay) are the pipeline's own; the credential reads only `ctx.now` of the message's context.
 */
export interface MessageSigning {
  /**
   * The parameters that carry credentials: the one list the gateway removes from every message it
   * forwards on a route of this scheme, however the message was authenticated (its own signature,
   * the connection's logon or upgrade, or not at all). The upstream never sees them.
   */
  readonly credentialParams: ReadonlySet<string>;
  /** Cheap: does the message carry its own signature (and so act for its own key)? */
  signed(params: MessageParams | null): boolean;
  /** Stage 3 for a signed message: its credential, parsed strictly. */
  extract(params: MessageParams): Credential | Denial;
  /**
   * Stage 3 for an unsigned message on a connection logged on by message (Binance's
   * `session.logon`) as `keyId`, when its method needs a key: what the scheme still asks of each
   * such message (Binance: a fresh `timestamp`). The logon proved the key, so the credential's
   * `verify` passes and it claims nothing for replay; never use it for anything else.
   */
  loggedOn(params: MessageParams | null, keyId: string): Credential | Denial;
}

export interface AuthScheme {
  readonly name: Dialect;
  /** Request headers that carry this scheme's credentials; never forwarded upstream. */
  readonly credentialHeaders: readonly string[];
  /** Cheap: does this request carry this scheme's credential? (Presence of its headers.) */
  detect(headers: IncomingHttpHeaders): boolean;
  /** Stage 3: parse the credential strictly. */
  extract(ctx: RequestContext): Credential | Denial;
  /** Renders a refusal in the scheme's (venue's) format and codes. */
  render(denial: Denial, requestId: string): RenderedError;
  /** Optional: single WebSocket messages signed in their own parameters (see MessageSigning). */
  readonly message?: MessageSigning;
  /** Optional: the venue's own rate-limit headers (Binance's X-MBX-USED-WEIGHT-1M…). */
  limitHeaders?(charges: readonly Charge[], states: readonly ChargeState[]): Record<string, string>;
}

/** Options every scheme factory receives. */
export interface SchemeOptions {
  /** The scheme clients use to reach the gateway ("https" behind a TLS terminator). */
  readonly scheme: "http" | "https";
  /** How far in the future a request's time may be (ms). */
  readonly futureSkewMs: number;
}
