/**
 * Sealed orders (docs/sealed-orders.md): a request body encrypted to the gateway with HPKE
 * (RFC 9180, base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM) through @hpke/core
 * over WebCrypto, so that whatever sits between the bot and the gateway (a CDN, a TLS-terminating
 * load balancer, their logs) sees ciphertext. The gateway opens it after verifying the signature
 * and forwards the plaintext to the venue.
 *
 * The seal is bound to the signature it travels under: its associated data is
 * `portcullis-sealed-v1\n<keyid>\n<nonce>\n<method>\n<path+query>`, the signature's keyid and
 * nonce, so the same sealed body under another signature does not open. Seal first, then sign:
 * the signature's Content-Digest covers the sealed bytes, and it must cover the two sealed headers.
 * The client (`client.request(method, path, { json, sealed: true })`) does all of it.
 */
import { Aes128Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/core";
import { base64ToBytes, utf8 } from "./encoding.js";

/** The gateway's HPKE key endpoint, relative to the base URL. */
export const HPKE_PATH = "/portcullis/v1/hpke";
/** A sealed body's content type. */
export const SEALED_CONTENT_TYPE = "application/portcullis-sealed";
/** The header naming the gateway's HPKE key the body is sealed to. */
export const SEALED_HEADER = "portcullis-sealed";
/** The header carrying the plaintext's content type. */
export const SEALED_TYPE_HEADER = "portcullis-sealed-type";
/** The suite the gateway speaks, as /portcullis/v1/hpke names it. */
export const HPKE_SUITE = { kem: "DHKEM(X25519, HKDF-SHA256)", kdf: "HKDF-SHA256", aead: "AES-128-GCM" } as const;

/** A key as /portcullis/v1/hpke publishes it. */
export interface HpkePublicKey {
  readonly id: string;
  /** The raw 32-byte X25519 public key, base64url. */
  readonly publicKey: string;
  /** When it stops being current (epoch ms). */
  readonly notAfter: number;
}

/** What a sealed body is bound to: the request's signature (keyid, nonce) and its method and target. */
export interface SealBinding {
  /** The signature's keyid (the API key id, or the session token). */
  readonly keyId: string;
  /** The signature's nonce. */
  readonly nonce: string;
  /** Upper case, as sent. */
  readonly method: string;
  /** The path and query exactly as sent (`/api/v3/order?x=1`). */
  readonly target: string;
}

let suiteInstance: CipherSuite | undefined;
function suite(): CipherSuite {
  suiteInstance ??= new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes128Gcm() });
  return suiteInstance;
}

/** The associated data binding a sealed body to its signature. */
export function sealedAad(binding: SealBinding): Uint8Array<ArrayBuffer> {
  return utf8(`portcullis-sealed-v1\n${binding.keyId}\n${binding.nonce}\n${binding.method}\n${binding.target}`);
}

function base64UrlToBytes(text: string): Uint8Array<ArrayBuffer> {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) throw new TypeError("invalid base64url");
  const padded = text.replace(/-/g, "+").replace(/_/g, "/");
  return base64ToBytes(padded + "=".repeat((4 - (padded.length % 4)) % 4));
}

/**
 * Seals `plaintext` to the gateway's key `key`, bound to `binding`: the body to send
 * (`enc || ciphertext`, 32 + plaintext + 16 bytes).
 */
export async function sealBody(key: HpkePublicKey, plaintext: Uint8Array, binding: SealBinding): Promise<Uint8Array<ArrayBuffer>> {
  const raw = base64UrlToBytes(key.publicKey);
  if (raw.length !== 32) throw new TypeError("an HPKE public key is 32 bytes (X25519)");
  const s = suite();
  const recipientPublicKey = await s.kem.deserializePublicKey(raw.buffer);
  const copy = new Uint8Array(plaintext.length);
  copy.set(plaintext);
  const { enc, ct } = await s.seal({ recipientPublicKey }, copy.buffer, sealedAad(binding).buffer);
  const out = new Uint8Array(enc.byteLength + ct.byteLength);
  out.set(new Uint8Array(enc), 0);
  out.set(new Uint8Array(ct), enc.byteLength);
  return out;
}

/** Reads /portcullis/v1/hpke's answer: the keys, current first. Throws TypeError on another shape or suite. */
export function parseHpkeKeys(body: unknown): HpkePublicKey[] {
  const o = typeof body === "object" && body !== null ? (body as Record<string, unknown>) : {};
  const suiteOf = typeof o.suite === "object" && o.suite !== null ? (o.suite as Record<string, unknown>) : {};
  if (suiteOf.kem !== HPKE_SUITE.kem || suiteOf.kdf !== HPKE_SUITE.kdf || suiteOf.aead !== HPKE_SUITE.aead) throw new TypeError(`${HPKE_PATH} names another HPKE suite`);
  if (!Array.isArray(o.keys)) throw new TypeError(`${HPKE_PATH} did not answer keys`);
  const keys: HpkePublicKey[] = [];
  for (const k of o.keys as unknown[]) {
    const r = typeof k === "object" && k !== null ? (k as Record<string, unknown>) : {};
    if (typeof r.id !== "string" || typeof r.publicKey !== "string" || typeof r.notAfter !== "number") throw new TypeError(`${HPKE_PATH} answered a key of another shape`);
    keys.push({ id: r.id, publicKey: r.publicKey, notAfter: r.notAfter });
  }
  if (keys.length === 0) throw new TypeError(`${HPKE_PATH} answered no key`);
  return keys;
}

/**
 * The gateway's current key, fetched once and cached until its `notAfter` (on the gateway's clock,
 * `now()` being the caller's estimate of it); `invalidate` forgets it (after SEALED_KEY_UNKNOWN).
 * Concurrent callers share one fetch.
 */
export interface HpkeKeyCache {
  current(): Promise<HpkePublicKey>;
  invalidate(): void;
}

export function hpkeKeyCache(load: () => Promise<unknown>, now: () => number): HpkeKeyCache {
  let cached: HpkePublicKey | undefined;
  let inflight: Promise<HpkePublicKey> | undefined;
  return {
    current() {
      if (cached !== undefined && now() < cached.notAfter) return Promise.resolve(cached);
      inflight ??= load()
        .then((body) => {
          const first = parseHpkeKeys(body)[0] as HpkePublicKey;
          cached = first;
          return first;
        })
        .finally(() => {
          inflight = undefined;
        });
      return inflight;
    },
    invalidate() {
      cached = undefined;
    },
  };
}
