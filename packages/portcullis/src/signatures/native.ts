import { type Denial, deny } from "../errors/catalogue.js";
import { NATIVE_ALGORITHMS, type NativeAlgorithm } from "../contract/keys.js";
import { type ParsedSignature, parseSignatureHeaders } from "./rfc9421.js";

/**
 * Portcullis's native scheme: RFC 9421 with a fixed policy on top. A request must carry one
 * signature that covers `@method`, `@authority`, `@path` and `@query` (and `content-digest` when it
 * has a body), with the parameters `created`, `nonce` and `keyid`; `alg`, when present, must be one
 * Portcullis supports and must match the key.
 */
export const REQUIRED_COMPONENTS = ["@method", "@authority", "@path", "@query"] as const;

const NONCE_RE = /^[A-Za-z0-9\-._~+/=]{8,128}$/;
const nativeAlgorithms: ReadonlySet<string> = new Set(NATIVE_ALGORITHMS);

export interface NativeCredential {
  readonly signature: ParsedSignature;
  readonly keyId: string;
  readonly created: number;
  readonly nonce: string;
  readonly alg: NativeAlgorithm | undefined;
}

/** Parses and checks the signature headers against the native policy (stage 3). */
export function extractNativeCredential(
  signatureInput: string | string[] | undefined,
  signature: string | string[] | undefined,
  hasBody: boolean,
): NativeCredential | Denial {
  const parsed = parseSignatureHeaders(signatureInput, signature);
  if ("ok" in parsed) return parsed;
  const { created, nonce, keyid, alg } = parsed.params;
  if (created === undefined || nonce === undefined || keyid === undefined) {
    const missing = [created === undefined ? "created" : "", nonce === undefined ? "nonce" : "", keyid === undefined ? "keyid" : ""];
    return deny("SIGNATURE_PARAM_MISSING", `missing ${missing.filter(Boolean).join(", ")}`);
  }
  if (!NONCE_RE.test(nonce)) return deny("NONCE_MALFORMED");
  if (alg !== undefined && !nativeAlgorithms.has(alg)) {
    return deny("SIGNATURE_PARAM_INVALID", `unsupported alg ${alg}`);
  }
  const components = parsed.components;
  for (const required of REQUIRED_COMPONENTS) {
    if (!components.includes(required)) return deny("SIGNATURE_COMPONENT_MISSING", `${required} is not covered`);
  }
  if (hasBody && !components.includes("content-digest")) {
    return deny("SIGNATURE_COMPONENT_MISSING", "the request has a body but content-digest is not covered");
  }
  return { signature: parsed, keyId: keyid, created, nonce, alg: alg as NativeAlgorithm | undefined };
}

/** Checks `created` (and `expires`) against the clock (stage 5). */
export function checkFreshness(
  createdSeconds: number,
  expiresSeconds: number | undefined,
  now: number,
  windowMs: number,
  futureSkewMs: number,
): Denial | null {
  const createdMs = createdSeconds * 1000;
  // `created` has one-second resolution: a request signed at 12.9 s says 12 s.
  if (now - createdMs > windowMs + 999) return deny("CREATED_TOO_OLD");
  if (createdMs - now > futureSkewMs) return deny("CREATED_IN_FUTURE");
  if (expiresSeconds !== undefined && expiresSeconds * 1000 <= now) return deny("SIGNATURE_EXPIRED");
  return null;
}
