import type { IncomingHttpHeaders } from "node:http";
import type { Route } from "../authz/routes.js";
import type { Denial, ErrorCode } from "../errors/catalogue.js";
import type { VerificationKey } from "../keys/cache.js";
import type { ClientAddress } from "../net/client-address.js";
import type { AuthScheme, Credential } from "../dialects/scheme.js";
import type { Charge, ChargeState } from "../limits/types.js";
import { parseKeyId } from "../keys/ids.js";

/** What the pipeline needs of an HTTP request, whichever server it came through. */
export interface PipelineRequest {
  readonly method: string;
  /** The request target exactly as sent (path and query), e.g. node's `req.url`. */
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  /** The exact body bytes (empty when there is none). */
  readonly body: Buffer;
  /** The socket's peer address. */
  readonly socketAddress: string | undefined;
}

/**
 * One request's state as it moves through the stages. One shape for every request: each stage
 * fills in its own fields, and nothing is added later.
 */
export class RequestContext {
  readonly requestId: string;
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  readonly socketAddress: string | undefined;
  /** Epoch ms when the pipeline started; every time check of this request uses it. */
  readonly now: number;

  path = "";
  query: string | null = null;
  authority: string | undefined = undefined;

  // Stage outputs.
  client: ClientAddress | null = null;
  route: Route | null = null;
  /** The scheme the request is signed in (detected from its headers), or null. */
  scheme: AuthScheme | null = null;
  /** More than one scheme's credential headers were present. */
  schemeAmbiguous = false;
  /** The scheme whose format a refusal is rendered in (the request's, else the route's venue). */
  renderer: AuthScheme | null = null;
  credential: Credential | null = null;
  keyId: string | null = null;
  key: VerificationKey | null = null;

  // Admission (stages 7 and 9).
  /** The limits the request was charged against, and their state after the decision. */
  charges: readonly Charge[] | null = null;
  chargeStates: readonly ChargeState[] | null = null;
  /** Index of the charge that refused the request, or -1. */
  refusedCharge = -1;
  /** For a refusal that can be retried later (429s): when, in ms. */
  retryAfterMs = -1;
  /** The request holds one of its key's concurrency slots (released by Pipeline.finish). */
  slotHeld = false;
  /** Admitted by the local fallback while the shared hot store was unreachable. */
  degraded = false;

  denial: Denial | null = null;
  /** An allowed request whose hand on failed (a handler's refusal, an upstream failure): its code. */
  outcome: ErrorCode | null = null;
  /** Stage durations in ms by stage index (NaN for a stage skipped), when timing is on. */
  timings: number[] | null = null;

  constructor(req: PipelineRequest, requestId: string, now: number) {
    this.requestId = requestId;
    this.method = req.method;
    this.url = req.url;
    this.headers = req.headers;
    this.body = req.body;
    this.socketAddress = req.socketAddress;
    this.now = now;
  }
}

/**
 * The key id a log line may name for this request: the key that was found (for a session, its API
 * key), else the claimed id when it is a well-formed key id. Never a session token (a credential)
 * nor whatever else a caller put in its keyid (it could be anything, a pasted secret included).
 */
export function loggableKeyId(ctx: RequestContext): string | undefined {
  const found = ctx.key?.record.id;
  if (found !== undefined) return found;
  const claimed = ctx.keyId;
  return claimed !== null && parseKeyId(claimed)?.kind === "key" ? claimed : undefined;
}
