/**
 * The Portcullis signing profile on top of RFC 9421: one signature labelled `sig1`, covering
 * `"@method" "@authority" "@path" "@query"` (and `"content-digest"` when there is a body), with
 * parameters `created`, `nonce`, `keyid`, `alg` in that order.
 */
import {
  type KeyPairAlgorithm,
  type SignatureAlgorithm,
  importHmacKey,
  isKeyPairAlgorithm,
  SIGNATURE_ALGORITHM_FOR,
  signSignatureBase,
} from "./algorithms.js";
import { contentDigest } from "./content-digest.js";
import { bytesToBase64Url, randomBytes, utf8 } from "./encoding.js";
import { type PrivateKeyInput, checkPrivateKeyInput, importPrivateKey } from "./keys.js";
import { serializeSignature, serializeSignatureInput, signatureBase } from "./rfc9421.js";
import { type Secp256k1PrivateKey, checkSecp256k1PrivateKey, signSecp256k1 } from "./secp256k1.js";
import { serializeString } from "./structured-fields.js";

/** The label of the one signature Portcullis accepts. */
export const SIGNATURE_LABEL = "sig1";
/** Components every Portcullis signature covers, in this order; `content-digest` follows when there is a body. */
export const REQUIRED_COMPONENTS = ["@method", "@authority", "@path", "@query"] as const;

/** An HMAC key: `secret` is the string the gateway printed, used as its UTF-8 bytes. */
export interface HmacSignerOptions {
  readonly keyId: string;
  readonly secret: string;
  readonly algorithm?: "hmac-sha256";
}

/** An asymmetric key whose public half is registered with the gateway. */
export interface KeyPairSignerOptions {
  readonly keyId: string;
  /** A CryptoKey, a private JWK, or a PKCS#8 PEM string (`-----BEGIN PRIVATE KEY-----`). */
  readonly privateKey: PrivateKeyInput;
  readonly algorithm: KeyPairAlgorithm;
}

/**
 * A secp256k1 key (an agent's key, an Ethereum-style key): signs `ecdsa-secp256k1-sha256`. The
 * private key is `0x` and 64 hex digits, as viem and wallets write it; register its public key
 * (`secp256k1PublicKey`) with `--algorithm secp256k1`.
 */
export interface Secp256k1SignerOptions {
  readonly keyId: string;
  readonly privateKey: Secp256k1PrivateKey;
  readonly algorithm: "secp256k1";
}

export type SignerOptions = HmacSignerOptions | KeyPairSignerOptions | Secp256k1SignerOptions;

export interface SignableRequest {
  readonly method: string;
  readonly url: string | URL;
  /** The exact body that will be sent; a string is sent as UTF-8. Empty means no body. */
  readonly body?: string | Uint8Array | null;
}

export interface SignOptions {
  /** Creation time, integer unix seconds. Default: now, from the local clock. */
  readonly created?: number;
  /** 8-128 characters of [A-Za-z0-9-._~+/=]. Default: 16 random bytes, base64url (22 characters). */
  readonly nonce?: string;
  /**
   * More header fields the signature covers, by lower-case name, after `content-digest` (a sealed
   * request's `portcullis-sealed` and `portcullis-sealed-type`). Send them with these exact values.
   */
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * Headers to add to the request (lower-case names). A type alias, not an interface, so that it
 * can be passed where a `Record<string, string>` / `HeadersInit` is expected.
 */
export type SignatureHeaders = {
  readonly "signature-input": string;
  readonly signature: string;
  /** Present when the body is non-empty. */
  readonly "content-digest"?: string;
};

export interface Signer {
  readonly keyId: string;
  /** The RFC 9421 `alg` value sent with each signature. */
  readonly algorithm: SignatureAlgorithm;
  sign(request: SignableRequest, options?: SignOptions): Promise<SignatureHeaders>;
}

const NONCE = /^[A-Za-z0-9\-._~+/=]{8,128}$/;
const FIELD_NAME = /^[a-z0-9!#$%&'*+\-.^_`|~]+$/;
const METHOD = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** A fresh nonce: 16 bytes from the CSPRNG, base64url (22 characters). */
export function generateNonce(): string {
  return bytesToBase64Url(randomBytes(16));
}

function checkOptions(options: unknown): asserts options is SignerOptions {
  if (typeof options !== "object" || options === null) throw new TypeError("signer options must be an object");
  const o = options as Record<string, unknown>;
  if (typeof o.keyId !== "string" || o.keyId === "") throw new TypeError("keyId is required (the API key id, e.g. pck_live_v1_...)");
  serializeString(o.keyId); // printable ASCII, or TypeError
  const hasSecret = "secret" in o && o.secret !== undefined;
  const hasPrivateKey = "privateKey" in o && o.privateKey !== undefined;
  if (hasSecret && hasPrivateKey) throw new TypeError("give either secret (HMAC) or privateKey, not both");
  if (hasSecret) {
    if (typeof o.secret !== "string" || o.secret === "") throw new TypeError("secret must be a non-empty string");
    if (o.algorithm !== undefined && o.algorithm !== "hmac-sha256") {
      throw new TypeError(`a secret signs with hmac-sha256, not ${JSON.stringify(o.algorithm)}`);
    }
    return;
  }
  if (!hasPrivateKey) throw new TypeError("give secret (HMAC key) or privateKey + algorithm");
  if (o.algorithm === "secp256k1") {
    checkSecp256k1PrivateKey(o.privateKey);
    return;
  }
  if (!isKeyPairAlgorithm(o.algorithm)) {
    throw new TypeError(`unsupported algorithm ${JSON.stringify(o.algorithm)} for privateKey (use "ed25519", "ecdsa-p256" or "secp256k1")`);
  }
  checkPrivateKeyInput(o.privateKey, o.algorithm);
}

function isHmacOptions(options: SignerOptions): options is HmacSignerOptions {
  return typeof (options as { secret?: unknown }).secret === "string";
}

function isSecp256k1Options(options: SignerOptions): options is Secp256k1SignerOptions {
  return options.algorithm === "secp256k1";
}

function checkSignOptions(options: SignOptions): void {
  const { created, nonce } = options;
  if (created !== undefined && (!Number.isSafeInteger(created) || created < 0)) {
    throw new TypeError("created must be a non-negative integer number of unix seconds");
  }
  if (nonce !== undefined && (typeof nonce !== "string" || !NONCE.test(nonce))) {
    throw new TypeError("nonce must be 8-128 characters of [A-Za-z0-9-._~+/=]");
  }
  for (const [name, value] of Object.entries(options.headers ?? {})) {
    if (!FIELD_NAME.test(name) || name === "content-digest") throw new TypeError(`headers: ${JSON.stringify(name)} is not a lower-case header name to cover`);
    if (typeof value !== "string") throw new TypeError(`headers.${name} must be a string`);
  }
}

/**
 * Creates a signer for one API key. Options are checked now (TypeError for a missing keyId, an
 * empty secret, an unsupported algorithm or a key of the wrong kind); a PEM or JWK is imported
 * on first use.
 */
export function createSigner(options: SignerOptions): Signer {
  checkOptions(options);
  const keyId = options.keyId;
  let algorithm: SignatureAlgorithm;
  let signBase: (base: string) => Promise<Uint8Array>;
  if (isSecp256k1Options(options)) {
    const privateKey = options.privateKey;
    algorithm = "ecdsa-secp256k1-sha256";
    signBase = (base) => signSecp256k1(privateKey, base);
  } else {
    let load: () => Promise<CryptoKey>;
    if (isHmacOptions(options)) {
      const secret = options.secret;
      algorithm = "hmac-sha256";
      load = () => importHmacKey(secret);
    } else {
      const { privateKey, algorithm: keyAlgorithm } = options;
      algorithm = SIGNATURE_ALGORITHM_FOR[keyAlgorithm];
      load = () => importPrivateKey(privateKey, keyAlgorithm);
    }
    const alg = algorithm;
    // The key is imported on first use, once; a failed import is tried again next time.
    let keyPromise: Promise<CryptoKey> | undefined;
    const key = (): Promise<CryptoKey> => {
      keyPromise ??= load().catch((err: unknown) => {
        keyPromise = undefined;
        throw err;
      });
      return keyPromise;
    };
    signBase = async (base) => signSignatureBase(alg, await key(), base);
  }

  async function sign(request: SignableRequest, signOptions: SignOptions = {}): Promise<SignatureHeaders> {
    checkSignOptions(signOptions);
    if (typeof request.method !== "string" || !METHOD.test(request.method)) throw new TypeError("request.method must be an HTTP method");
    const url = typeof request.url === "string" ? new URL(request.url) : request.url;
    const body = typeof request.body === "string" ? utf8(request.body) : request.body;
    const hasBody = body !== undefined && body !== null && body.length > 0;
    const digest = hasBody ? await contentDigest(body) : undefined;

    const components: string[] = [...REQUIRED_COMPONENTS];
    if (digest !== undefined) components.push("content-digest");
    const covered = signOptions.headers ?? {};
    components.push(...Object.keys(covered));
    const params = {
      created: signOptions.created ?? Math.floor(Date.now() / 1000),
      nonce: signOptions.nonce ?? generateNonce(),
      keyid: keyId,
      alg: algorithm,
    };
    const headers = digest === undefined ? { ...covered } : { ...covered, "content-digest": digest };
    const base = signatureBase({ method: request.method, url, headers }, components, params);
    const signature = await signBase(base);
    const out = {
      "signature-input": serializeSignatureInput(SIGNATURE_LABEL, components, params),
      signature: serializeSignature(SIGNATURE_LABEL, signature),
    };
    return digest === undefined ? out : { ...out, "content-digest": digest };
  }

  return { keyId, algorithm, sign };
}
