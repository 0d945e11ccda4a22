import { createPrivateKey, createPublicKey, createSecretKey, generateKeyPairSync, randomBytes, sign, type KeyObject } from "node:crypto";
import type { MetaStore } from "../storage/types.js";
import type { SigningKey, SigningKeyProvider, SigningPurpose } from "../contract/signing.js";
import { type Envelope, retryUnderActiveKek } from "./envelope.js";

/**
 * The keys Portcullis holds for itself, kept by envelope encryption in the durable store: the
 * embedded signing-key provider and stored secrets. What a signing-key provider promises (the HSM
 * provider keeps the same promises) is in contract/signing.ts.
 */

interface StoredSigningKey {
  readonly v: 1;
  readonly alg: "ed25519";
  readonly kid: string;
  /** SPKI PEM. */
  readonly publicKey: string;
  /** The PKCS#8 DER private key, envelope-encrypted, base64. */
  readonly privateKey: string;
}

export const SIGNING_KEY_PURPOSE = "signing-key";
export const STORED_SECRET_PURPOSE = "stored-secret";

function metaName(kind: "signing-key" | "secret", name: string): string {
  return `${kind}:${name}`;
}

function isStoredSigningKey(value: unknown): value is StoredSigningKey {
  if (value === null || typeof value !== "object") return false;
  const o = value as Record<string, unknown>;
  return o.v === 1 && o.alg === "ed25519" && typeof o.kid === "string" && typeof o.publicKey === "string" && typeof o.privateKey === "string";
}

/**
 * The embedded signing-key provider: the private key is generated here, stored envelope-encrypted
 * (under the deployment's KEK, whichever provider holds that) in the durable store's meta table,
 * and decrypted into a KeyObject once per process.
 */
export class EnvelopeSigningKeys implements SigningKeyProvider {
  readonly name = "envelope";

  constructor(
    private readonly meta: MetaStore,
    private readonly envelope: Envelope,
  ) {}

  async open(purpose: SigningPurpose): Promise<SigningKey> {
    const name = metaName("signing-key", purpose);
    let text = await this.meta.getMeta(name);
    if (text === undefined) text = await retryUnderActiveKek(this.envelope, async () => this.meta.initMeta(name, await this.generate(purpose, name)));
    let stored: unknown;
    try {
      stored = JSON.parse(text);
    } catch {
      stored = null;
    }
    if (!isStoredSigningKey(stored)) throw new Error(`the stored ${purpose} signing key is not in a known format`);
    const der = await this.envelope.decrypt(Buffer.from(stored.privateKey, "base64"), SIGNING_KEY_PURPOSE, `${name}/${stored.kid}`);
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey({ key: der, format: "der", type: "pkcs8" });
    } finally {
      der.fill(0);
    }
    const publicKey = createPublicKey(stored.publicKey);
    if (privateKey.asymmetricKeyType !== "ed25519" || publicKey.asymmetricKeyType !== "ed25519") {
      throw new Error(`the stored ${purpose} signing key is not an Ed25519 key`);
    }
    return {
      purpose,
      provider: this.name,
      kid: stored.kid,
      algorithm: "ed25519",
      publicKey,
      sign: (data) => Promise.resolve(sign(null, data, privateKey)),
    };
  }

  private async generate(purpose: SigningPurpose, name: string): Promise<string> {
    const { publicKey, privateKey } = generateKeyPairSync("ed25519");
    const kid = `${purpose}:${randomBytes(9).toString("base64url")}`;
    const der = privateKey.export({ format: "der", type: "pkcs8" });
    try {
      const sealed = await this.envelope.encrypt(der, SIGNING_KEY_PURPOSE, `${name}/${kid}`);
      const stored: StoredSigningKey = {
        v: 1,
        alg: "ed25519",
        kid,
        publicKey: publicKey.export({ type: "spki", format: "pem" }).toString(),
        privateKey: sealed.toString("base64"),
      };
      return JSON.stringify(stored);
    } finally {
      der.fill(0);
    }
  }
}

/**
 * A 256-bit secret of Portcullis's own (e.g. the session-secret key), created on first use and
 * stored envelope-encrypted in the meta table; returned as a KeyObject, the plaintext wiped. Every
 * process of the deployment gets the same secret (creation is race-free: the first stored wins).
 */
export async function openStoredSecret(meta: MetaStore, envelope: Envelope, name: string): Promise<KeyObject> {
  const metaKey = metaName("secret", name);
  let text = await meta.getMeta(metaKey);
  if (text === undefined) {
    const fresh = randomBytes(32);
    try {
      text = await retryUnderActiveKek(envelope, async () => meta.initMeta(metaKey, (await envelope.encrypt(fresh, STORED_SECRET_PURPOSE, metaKey)).toString("base64")));
    } finally {
      fresh.fill(0);
    }
  }
  const plaintext = await envelope.decrypt(Buffer.from(text, "base64"), STORED_SECRET_PURPOSE, metaKey);
  try {
    if (plaintext.length !== 32) throw new Error(`the stored secret ${name} is not 256 bits`);
    return createSecretKey(plaintext);
  } finally {
    plaintext.fill(0);
  }
}

/**
 * Where this module's envelopes live in the meta table, for a KEK rotation's rewrap and for
 * `custody status`: a stored secret's value is the envelope (base64); a signing key's value is
 * JSON whose `privateKey` is the envelope. `read` returns null for a value not in that format.
 */
export interface MetaEnvelopeCodec {
  readonly prefix: string;
  readonly purpose: string;
  read(key: string, value: string): { readonly envelope: Buffer; readonly rowId: string } | null;
  write(value: string, envelope: Buffer): string;
}

export const META_ENVELOPES: readonly MetaEnvelopeCodec[] = [
  {
    prefix: "secret:",
    purpose: STORED_SECRET_PURPOSE,
    read: (key, value) => ({ envelope: Buffer.from(value, "base64"), rowId: key }),
    write: (_value, envelope) => envelope.toString("base64"),
  },
  {
    prefix: "signing-key:",
    purpose: SIGNING_KEY_PURPOSE,
    read(key, value) {
      let stored: unknown;
      try {
        stored = JSON.parse(value);
      } catch {
        return null;
      }
      return isStoredSigningKey(stored) ? { envelope: Buffer.from(stored.privateKey, "base64"), rowId: `${key}/${stored.kid}` } : null;
    },
    write(value, envelope) {
      const stored = JSON.parse(value) as StoredSigningKey;
      return JSON.stringify({ ...stored, privateKey: envelope.toString("base64") });
    },
  },
];
