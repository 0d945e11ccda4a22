import { randomBytes } from "node:crypto";
import { CustodyError, isKekRetired } from "./errors.js";
import { type KekProvider, open, seal } from "./keyring.js";

/**
 * Envelope encryption for stored secrets. Each secret gets a fresh 256-bit data key; the secret
 * is sealed with AES-256-GCM under the data key, and the data key is wrapped by the KEK provider.
 * Both layers bind the secret's purpose and its row id as associated data, so a ciphertext copied
 * into another key's row does not decrypt.
 *
 * Layout (version 1): 0x01 | kekVersion u32be | wrappedLength u16be | wrapped data key | sealed secret
 *
 * A KEK rotation rewraps: the data key is unwrapped under the old KEK version and wrapped under
 * the new one; the sealed secret (and so the secret, and every cache of it) is unchanged.
 */
/** The purpose bound into every HMAC secret's envelope. */
export const SECRET_PURPOSE = "key-secret";
/** The purpose bound into every passphrase hash's envelope (OKX keys). */
export const PASSPHRASE_PURPOSE = "key-passphrase";
/**
 * The purposes bound, with the operation id, into a held operation's envelopes (holds/service.ts):
 * the exact held request (or a change's payload), and the upstream's answer. They live here, not
 * in holds/, because custody's KEK rotation rewraps them.
 */
export const HELD_REQUEST_PURPOSE = "held-request";
export const HELD_OUTCOME_PURPOSE = "held-outcome";
/** The purpose bound, with the key id, into an HPKE private key's envelope (custody/hpke.ts). */
export const HPKE_PRIVATE_PURPOSE = "hpke-private";
const ENVELOPE_VERSION = 1;
const HEADER_LEN = 7;

function aad(layer: "dek" | "data", purpose: string, rowId: string): Buffer {
  return Buffer.from(`portcullis/${layer}/v1\u0000${purpose}\u0000${rowId}`, "utf8");
}

interface Parsed {
  readonly kekVersion: number;
  readonly wrapped: Buffer;
  readonly sealed: Buffer;
}

function parse(envelope: Buffer): Parsed {
  if (envelope.length < HEADER_LEN || envelope.readUInt8(0) !== ENVELOPE_VERSION) {
    throw new CustodyError("CUSTODY_ENVELOPE_MALFORMED", "unknown envelope format");
  }
  const kekVersion = envelope.readUInt32BE(1);
  const wrappedLen = envelope.readUInt16BE(5);
  if (envelope.length < HEADER_LEN + wrappedLen) throw new CustodyError("CUSTODY_ENVELOPE_MALFORMED", "truncated envelope");
  return {
    kekVersion,
    wrapped: envelope.subarray(HEADER_LEN, HEADER_LEN + wrappedLen),
    sealed: envelope.subarray(HEADER_LEN + wrappedLen),
  };
}

function assemble(kekVersion: number, wrapped: Buffer, sealed: Buffer): Buffer {
  const header = Buffer.alloc(HEADER_LEN);
  header.writeUInt8(ENVELOPE_VERSION, 0);
  header.writeUInt32BE(kekVersion, 1);
  header.writeUInt16BE(wrapped.length, 5);
  return Buffer.concat([header, wrapped, sealed]);
}

export class Envelope {
  constructor(readonly kek: KekProvider) {}

  /** The KEK version an envelope's data key is wrapped under (no decryption). */
  static kekVersionOf(envelope: Buffer): number {
    return parse(envelope).kekVersion;
  }

  async encrypt(plaintext: Buffer, purpose: string, rowId: string): Promise<Buffer> {
    const dataKey = randomBytes(32);
    try {
      const { kekVersion, wrapped } = await this.kek.wrap(dataKey, aad("dek", purpose, rowId));
      return assemble(kekVersion, wrapped, seal(dataKey, plaintext, aad("data", purpose, rowId)));
    } finally {
      dataKey.fill(0);
    }
  }

  async decrypt(envelope: Buffer, purpose: string, rowId: string): Promise<Buffer> {
    const { kekVersion, wrapped, sealed } = parse(envelope);
    const dataKey = await this.kek.unwrap(kekVersion, wrapped, aad("dek", purpose, rowId));
    try {
      return open(dataKey, sealed, aad("data", purpose, rowId));
    } finally {
      dataKey.fill(0);
    }
  }

  /**
   * The same envelope with its data key rewrapped under the active KEK version, or null when it
   * already is. The data key is checked against the sealed secret's tag before rewrapping (so a
   * damaged envelope is refused rather than carried forward); the secret is never re-encrypted.
   */
  async rewrap(envelope: Buffer, purpose: string, rowId: string, activeVersion: number): Promise<Buffer | null> {
    const { kekVersion, wrapped, sealed } = parse(envelope);
    if (kekVersion === activeVersion) return null;
    const dataKey = await this.kek.unwrap(kekVersion, wrapped, aad("dek", purpose, rowId));
    try {
      open(dataKey, sealed, aad("data", purpose, rowId)).fill(0);
      const next = await this.kek.wrap(dataKey, aad("dek", purpose, rowId));
      return assemble(next.kekVersion, next.wrapped, sealed);
    } finally {
      dataKey.fill(0);
    }
  }
}

/**
 * Runs `write` (a wrap and the store write of its envelope); when the store refuses the envelope as
 * under a KEK version below the floor (CUSTODY_KEK_RETIRED: a rotation finished in between),
 * refreshes the provider's view of the active version and runs it once more.
 */
export async function retryUnderActiveKek<T>(envelope: Envelope, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (err) {
    if (!isKekRetired(err)) throw err;
    await envelope.kek.versions();
    return write();
  }
}
