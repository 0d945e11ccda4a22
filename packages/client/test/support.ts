/**
 * Test support: an independent verifier for Portcullis native signatures, written against
 * node:crypto and the wire format only (no code from src/), so the SDK is checked from outside.
 */
import { createHash, createHmac, createPublicKey, timingSafeEqual, verify, type KeyObject } from "node:crypto";

/** A request as it appeared on the wire (or as the SDK says it will send it). */
export interface WireRequest {
  readonly method: string;
  /** Host header value. */
  readonly authority: string;
  /** The request target, e.g. `/api/v3/order?symbol=BTCUSDT`. */
  readonly target: string;
  readonly body: Buffer;
  readonly headers: Readonly<Record<string, string | undefined>>;
}

export type Verifier =
  | { readonly alg: "hmac-sha256"; readonly secret: string }
  | { readonly alg: "ed25519" | "ecdsa-p256-sha256" | "ecdsa-secp256k1-sha256"; readonly publicKey: KeyObject | string };

export interface Parsed {
  readonly components: string;
  readonly created: number;
  readonly nonce: string;
  readonly keyid: string;
  readonly alg: string;
  readonly params: string;
  readonly signature: Buffer;
}

const INPUT =
  /^sig1=(\(("@method" "@authority" "@path" "@query"(?: "content-digest")?)\);created=(\d+);nonce="([A-Za-z0-9\-._~+/=]{8,128})";keyid="([^"\\]+)";alg="([a-z0-9-]+)")$/;
const SIGNATURE = /^sig1=:([A-Za-z0-9+/]+={0,2}):$/;

export function parseNative(headers: WireRequest["headers"]): Parsed {
  const input = INPUT.exec(headers["signature-input"] ?? "");
  const sig = SIGNATURE.exec(headers.signature ?? "");
  if (input === null) throw new Error(`unexpected Signature-Input: ${String(headers["signature-input"])}`);
  if (sig === null) throw new Error(`unexpected Signature: ${String(headers.signature)}`);
  const [, params = "", components = "", created = "", nonce = "", keyid = "", alg = ""] = input;
  return { params, components, created: Number(created), nonce, keyid, alg, signature: Buffer.from(sig[1] ?? "", "base64") };
}

export function sha256Digest(body: Buffer | string): string {
  return `sha-256=:${createHash("sha256").update(body).digest("base64")}:`;
}

/** The RFC 9421 signature base, rebuilt from the wire request. */
export function wireBase(req: WireRequest, parsed: Parsed): string {
  const q = req.target.indexOf("?");
  const path = q < 0 ? req.target : req.target.slice(0, q);
  const query = q < 0 ? "?" : req.target.slice(q);
  const lines = [
    `"@method": ${req.method}`,
    `"@authority": ${req.authority.toLowerCase()}`,
    `"@path": ${path}`,
    `"@query": ${query}`,
  ];
  if (parsed.components.endsWith('"content-digest"')) lines.push(`"content-digest": ${String(req.headers["content-digest"])}`);
  lines.push(`"@signature-params": ${parsed.params}`);
  return lines.join("\n");
}

/**
 * True when the request carries a valid native signature: the right components (content-digest
 * exactly when there is a body, and matching it), the expected alg, and a signature that verifies.
 */
export function verifyWire(req: WireRequest, verifier: Verifier): boolean {
  const parsed = parseNative(req.headers);
  if (parsed.alg !== verifier.alg) return false;
  const hasBody = req.body.length > 0;
  if (hasBody !== parsed.components.endsWith('"content-digest"')) return false;
  if (hasBody && req.headers["content-digest"] !== sha256Digest(req.body)) return false;
  const base = Buffer.from(wireBase(req, parsed), "latin1");
  if (verifier.alg === "hmac-sha256") {
    const mac = createHmac("sha256", Buffer.from(verifier.secret, "utf8")).update(base).digest();
    return mac.length === parsed.signature.length && timingSafeEqual(mac, parsed.signature);
  }
  const key = typeof verifier.publicKey === "string" ? createPublicKey(verifier.publicKey) : verifier.publicKey;
  if (verifier.alg === "ed25519") return verify(null, base, key, parsed.signature);
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (curve !== (verifier.alg === "ecdsa-p256-sha256" ? "prime256v1" : "secp256k1")) return false;
  return verify("sha256", base, { key, dsaEncoding: "ieee-p1363" }, parsed.signature);
}
