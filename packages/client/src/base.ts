/**
 * @portcullis/client/base: the SDK without the wallet protocol (so without viem, which that
 * protocol loads). The package root (`entry/index.ts`, outside this folder so the folders point one
 * way: entry -> wallet -> root) re-exports it and the wallet protocol.
 *
 * @portcullis/client: signs requests for a Portcullis gateway (RFC 9421 HTTP Message Signatures)
 * with WebCrypto (viem and @hpke/core for what it lacks), so it runs in Node 20+ and current browsers.
 *
 * - `createClient`: a signing HTTP client (time sync, retry on clock refusals, typed errors), and
 *   `client.logon()`: a session client (an HMAC per request whatever the key, refreshed by itself);
 * - `createSessionClient`: the same for a session opened elsewhere (a passkey sign-in);
 * - `createSigner`: just the signature headers, for use with any HTTP library;
 * - `generateKeyPair` / `importPrivateKey`: Ed25519 and ECDSA P-256 keys;
 * - `generateSecp256k1Key` / `secp256k1PublicKey`: secp256k1 keys (hex, as viem holds them), which
 *   sign `ecdsa-secp256k1-sha256`;
 * - `signatureBase`, `serializeSignatureParams`, `signSignatureBase`…: the generic RFC 9421 pieces;
 * - `sealBody`, `sealedAad`, `hpkeKeyCache`: sealed orders (HPKE, RFC 9180), which
 *   `client.request(method, path, { json, sealed: true })` does by itself;
 * - wallet-owned accounts (`signAgentApproval`, `signDelegation`, `verifyAgentChain`, `walletLogon`…).
 */
export type { KeyPairAlgorithm, SignatureAlgorithm } from "./algorithms.js";
export { importHmacKey, signSignatureBase } from "./algorithms.js";
export type { ClientOptions, LogonOptions, PortcullisClient, RequestOptions, SessionAnswer, SessionClient, SessionClientOptions, SessionInfo } from "./client.js";
export { createClient, createSessionClient, TIME_PATH } from "./client.js";
export { contentDigest } from "./content-digest.js";
export { PortcullisApiError } from "./errors.js";
export type { GeneratedKeyPair, PrivateKeyInput } from "./keys.js";
export { generateKeyPair, importPrivateKey } from "./keys.js";
export type { GeneratedSecp256k1Key, Secp256k1PrivateKey, Secp256k1PublicKey } from "./secp256k1.js";
export { generateSecp256k1Key, secp256k1PublicKey } from "./secp256k1.js";
export type { HeaderFields, MessageRequest, SignatureParameters } from "./rfc9421.js";
export { DERIVED_COMPONENTS, serializeSignature, serializeSignatureInput, serializeSignatureParams, signatureBase } from "./rfc9421.js";
export type {
  HmacSignerOptions,
  KeyPairSignerOptions,
  Secp256k1SignerOptions,
  SignableRequest,
  SignatureHeaders,
  SignerOptions,
  SignOptions,
  Signer,
} from "./signer.js";
export { createSigner, generateNonce, REQUIRED_COMPONENTS, SIGNATURE_LABEL } from "./signer.js";
export type { HpkeKeyCache, HpkePublicKey, SealBinding } from "./sealing.js";
export { HPKE_PATH, HPKE_SUITE, SEALED_CONTENT_TYPE, SEALED_HEADER, SEALED_TYPE_HEADER, hpkeKeyCache, parseHpkeKeys, sealBody, sealedAad } from "./sealing.js";
