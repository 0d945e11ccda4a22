import type { IncomingHttpHeaders } from "node:http";
import { type Denial, deny, errorBody } from "../errors/catalogue.js";
import type { VerificationKey } from "../contract/verification-key.js";
import type { RequestContext, ReplayClaim, AuthScheme, Credential, RenderedError, SchemeOptions, SealBinding } from "../contract/request.js";
import type { NativeAlgorithm } from "../contract/keys.js";
import { verifySignature } from "../signatures/algorithms.js";
import { checkContentDigest } from "../signatures/content-digest.js";
import { checkFreshness, extractNativeCredential } from "../signatures/native.js";
import { type ParsedSignature, signatureBase } from "../signatures/rfc9421.js";
import { acceptableFrom, rememberUntil, singleUse } from "../replay/claims.js";

/**
 * The native scheme as a pipeline plug-in: RFC 9421 with Portcullis's policy (see
 * signatures/native.ts for the rules). Errors are Portcullis's own JSON: `{ code, message, requestId }`.
 */
class NativeCredential implements Credential {
  readonly scheme = "native" as const;
  readonly sealing: SealBinding;

  constructor(
    private readonly options: SchemeOptions,
    readonly signature: ParsedSignature,
    readonly keyId: string,
    private readonly created: number,
    private readonly nonce: string,
  ) {
    this.sealing = { nonce, components: signature.components };
  }

  fresh(ctx: RequestContext, key: VerificationKey): Denial | undefined {
    return checkFreshness(this.created, this.signature.params.expires, ctx.now, key.windowMs, this.options.futureSkewMs) ?? undefined;
  }

  verify(ctx: RequestContext, key: VerificationKey): Denial | undefined {
    const requested = this.signature.params.alg;
    const alg: NativeAlgorithm | undefined = requested === undefined ? key.nativeAlgorithms[0] : key.nativeAlgorithms.find((a) => a === requested);
    if (alg === undefined) return deny("ALGORITHM_MISMATCH", `key is ${key.record.algorithm}, alg is ${String(requested)}`);
    const base = signatureBase(
      { method: ctx.method, authority: ctx.authority, scheme: this.options.scheme, path: ctx.path, query: ctx.query, headers: ctx.headers },
      this.signature,
    );
    if (typeof base !== "string") return base;
    const material = alg === "hmac-sha256" ? key.hmacKey : key.publicKey;
    if (material === null || !verifySignature(alg, material, base, this.signature.signature)) return deny("SIGNATURE_INVALID");
    // The signature covers the Content-Digest header; now the header must match the body.
    if (ctx.body.length > 0 || this.signature.components.includes("content-digest")) {
      const digest = checkContentDigest(ctx.headers["content-digest"], ctx.body);
      if (digest !== null) return digest;
    }
    return undefined;
  }

  replayClaim(_ctx: RequestContext, key: VerificationKey): ReplayClaim {
    const signedAt = this.created * 1000;
    return singleUse(key.record.id, this.nonce, acceptableFrom(signedAt, this.options.futureSkewMs, key), rememberUntil(signedAt, key.windowMs));
  }
}

/** Portcullis's own error format, used by the native scheme and wherever no venue applies. */
export function renderNative(denial: Denial, requestId: string): RenderedError {
  return { status: denial.status, body: errorBody(denial, requestId) };
}

export function createNativeScheme(options: SchemeOptions): AuthScheme {
  return {
    name: "native",
    credentialHeaders: ["signature", "signature-input"],
    detect: (headers: IncomingHttpHeaders) => headers["signature-input"] !== undefined || headers.signature !== undefined,
    extract(ctx: RequestContext): Credential | Denial {
      const hasBody = ctx.body.length > 0;
      const parsed = extractNativeCredential(ctx.headers["signature-input"], ctx.headers.signature, hasBody);
      if ("ok" in parsed) return parsed;
      if (hasBody && ctx.headers["content-digest"] === undefined) return deny("CONTENT_DIGEST_MISSING");
      return new NativeCredential(options, parsed.signature, parsed.keyId, parsed.created, parsed.nonce);
    },
    render: renderNative,
  };
}
