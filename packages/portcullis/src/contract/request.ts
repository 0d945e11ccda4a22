import type { IncomingHttpHeaders } from "node:http";
import type { Denial, ErrorCode } from "../errors/catalogue.js";
import type { KeyRisk } from "./behaviour.js";
import type { ClientAddress } from "../net/client-address.js";
import { parseKeyId } from "./ids.js";
import type { Dialect } from "./keys.js";
import type { Charge, ChargeState } from "./limits.js";
import type { Operation, OperationKind } from "./operations.js";
import type { Route } from "./route.js";
import type { VerificationKey } from "./verification-key.js";

// A request as the pipeline's stages see it, and the signing schemes that plug into those stages.
// One module: a scheme's stages take the request's context, and the context holds its scheme.

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
  /**
   * The thumbprint of the client certificate the connection proved over mutual TLS
   * (net/client-cert.ts `peerCertThumbprint`), or null/absent: none. Checked against a
   * certificate-bound key (docs/tls.md).
   */
  readonly clientCert?: string | null;
  /**
   * Whether the surface hands the body on itself, so a sealed body may be opened for it
   * (docs/sealed-orders.md). False (the authorizer: the venue's proxy forwards the body as sent):
   * a sealed request is refused SEALED_NOT_SUPPORTED. Default true.
   */
  readonly opensSealed?: boolean;
}

/**
 * One request's state as it moves through the stages. One shape for every request: each stage
 * fills in its own fields, and nothing is added later.
 */
/** An order's part in the open-notional ledger, from reservation to settlement. */
export interface OpenOrderTicket {
  readonly kind: "place" | "cancel";
  /** The key whose ledger it is (a session's: its API key). */
  readonly keyId: string;
  /** The reservation (the request id) of a place; null for a cancel. */
  readonly id: string | null;
  /** Settled once: released, bound to the venue's order ids, or matched against (a cancel). */
  settled: boolean;
}

export class RequestContext {
  readonly requestId: string;
  readonly method: string;
  readonly url: string;
  /**
   * The request's headers. Replaced (never edited) by `unseal` for a sealed request: every stage
   * and surface after the unseal stage sees the plaintext's.
   */
  headers: IncomingHttpHeaders;
  /**
   * The exact body bytes sent, up to the signature stage (which verifies them); for a sealed
   * request, the plaintext from the unseal stage on (`unseal`): what the operation is decoded
   * from, what the guardrails and the policy judge, and what is forwarded.
   */
  body: Buffer;
  readonly socketAddress: string | undefined;
  /** PipelineRequest.opensSealed. */
  readonly opensSealed: boolean;
  /** The request came sealed and was opened (the HPKE key id), or null. */
  sealed: string | null = null;
  /**
   * The client certificate's thumbprint (mutual TLS), or null: none (PipelineRequest.clientCert);
   * stage 1 replaces it with the one a trusted proxy passed on, when one is configured.
   */
  clientCert: string | null;
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
  /**
   * What the request does, decoded by the operation stage from the exact bytes sent, on a route
   * that declares an operation (docs/operations.md); null on every other route.
   */
  operation: Operation | null = null;
  /**
   * A WebSocket message's params, set by its surface (gateway/websocket/): what the operation
   * stage decodes on a messages pipeline, in the route's venue shape. Null for an HTTP request.
   */
  messageParams: MessageParams | null = null;
  /**
   * The key's risk state in force (stage 11, docs/behaviour.md): a throttle (admission charges
   * the key's extra limit) or a step-up (stage 10 holds its next high-value operation); null for none.
   */
  risk: KeyRisk | null = null;

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

  /**
   * The request proved its key: its signature (or session proof) verified (set by the pipeline when
   * stage 6 passes). A refusal of a request that did not is no evidence about the key's holder.
   */
  verified = false;
  denial: Denial | null = null;
  /**
   * An order of a key with the maxOpenNotional guardrail (docs/guardrails.md): its reservation in
   * the open-notional ledger, or the cancel to match against it, until settled from the
   * upstream's answer (pipeline/open-notional.ts); null for every other request.
   */
  openOrder: OpenOrderTicket | null = null;
  /** An allowed request whose hand on failed (a handler's refusal, an upstream failure): its code. */
  outcome: ErrorCode | null = null;
  /** Stage durations in ms by stage index (NaN for a stage skipped), when timing is on. */
  timings: number[] | null = null;
  /**
   * Stage durations in ms of a request sampled for the stage latency metrics (one in N, the
   * pipeline's `metrics.sampleEvery`), or null. Kept apart from `timings`: a sampled request shows
   * no Server-Timing and its audit entry records no timings.
   */
  sample: number[] | null = null;

  constructor(req: PipelineRequest, requestId: string, now: number) {
    this.requestId = requestId;
    this.method = req.method;
    this.url = req.url;
    this.headers = req.headers;
    this.body = req.body;
    this.socketAddress = req.socketAddress;
    this.clientCert = req.clientCert ?? null;
    this.opensSealed = req.opensSealed ?? true;
    this.now = now;
  }

  /**
   * The unseal stage's one change (docs/sealed-orders.md): from here on the body is the plaintext,
   * and the headers are the plaintext's: its content type and length, without the sealed headers
   * and the Content-Digest of the sealed bytes (which the signature stage has checked).
   */
  unseal(hpkeKeyId: string, plaintext: Buffer, contentType: string): void {
    const headers: IncomingHttpHeaders = {};
    for (const name in this.headers) {
      if (SEALED_DROPPED.has(name)) continue;
      const value = this.headers[name];
      if (value !== undefined) headers[name] = value;
    }
    headers["content-type"] = contentType;
    headers["content-length"] = String(plaintext.length);
    this.headers = headers;
    this.body = plaintext;
    this.sealed = hpkeKeyId;
  }
}

/** Headers of a sealed request that do not describe its plaintext. */
const SEALED_DROPPED: ReadonlySet<string> = new Set(["portcullis-sealed", "portcullis-sealed-type", "content-digest", "content-length", "transfer-encoding", "content-type"]);

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
  /**
   * Optional, for a scheme that carries credentials inside the request target or body (Binance's
   * `signature` parameter): the request as it is forwarded upstream, without them. Absent: the
   * target and body are forwarded as sent (credential headers are removed for every scheme).
   */
  forwarded?(ctx: RequestContext): ForwardedRequest;
  /**
   * The native scheme's (sessions' included): what a sealed body is bound to
   * (docs/sealed-orders.md): the signature's nonce and the components it covers. Absent: the
   * scheme cannot carry a sealed body (SEALED_NOT_SUPPORTED).
   */
  readonly sealing?: SealBinding;
}

/** What a sealed body's associated data binds it to, besides the key id, method and target. */
export interface SealBinding {
  readonly nonce: string;
  /** The covered components, lower case (`portcullis-sealed`, `content-digest`…). */
  readonly components: readonly string[];
}

/** A request's target and body as the gateway forwards them (`Credential.forwarded`). */
export interface ForwardedRequest {
  /** Path and query. */
  readonly url: string;
  readonly body: Buffer;
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

/**
 * A venue's operation decoder (docs/operations.md): reads a request on a route of that venue (its
 * dialect, or native for a route without one) as the operation the route declares, strictly, from
 * the bytes the signature covered. Chosen by the route's dialect, not by the scheme the request
 * was signed in: the upstream reads the venue's shape whoever signed it.
 */
export interface OperationDecoder {
  /** The kinds the venue's shape defines; a route of this venue declaring another is refused at startup. */
  readonly kinds: ReadonlySet<OperationKind>;
  /** The operation, or a refusal (OPERATION_MALFORMED, OPERATION_PARAM_MISSING / _INVALID / _DUPLICATED). */
  decode(ctx: RequestContext, kind: OperationKind): Operation | Denial;
  /**
   * The same, from a WebSocket message's params (the venue's WebSocket API names them as its
   * REST API does); absent when the venue has no such API. A JSON number is read as the decimal
   * the gateway forwards (its shortest form).
   */
  decodeMessage?(params: MessageParams, kind: OperationKind): Operation | Denial;
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
  | {
      readonly kind: "nonce";
      readonly keyId: string;
      readonly value: string;
      /** The earliest time (epoch ms) the request could have been accepted (replay/claims.ts `acceptableFrom`). */
      readonly since: number;
      /** Until when the value must be remembered (epoch ms). */
      readonly expiresAt: number;
    }
  | { readonly kind: "sequence"; readonly keyId: string; readonly value: bigint; readonly window: bigint };
