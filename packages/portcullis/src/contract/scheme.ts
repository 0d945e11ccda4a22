import type { IncomingHttpHeaders } from "node:http";
import type { Denial } from "../errors/catalogue.js";
import type { VerificationKey } from "./verification-key.js";
import type { Dialect } from "./keys.js";
import type { RequestContext } from "./request.js";
import type { Charge, ChargeState } from "./limits.js";

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

/** What a scheme needs recorded so that its request cannot be replayed. */
export type ReplayClaim =
  | { readonly kind: "nonce"; readonly keyId: string; readonly value: string; readonly expiresAt: number }
  | { readonly kind: "sequence"; readonly keyId: string; readonly value: bigint; readonly window: bigint };
