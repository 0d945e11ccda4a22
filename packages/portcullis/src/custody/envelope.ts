import { randomBytes } from "node:crypto";
import { type KekProvider, KeyringError, open, seal } from "./keyring.js";

/**
 * Envelope encryption for stored secrets. Each secret gets a fresh 256-bit data key; the secret
 * is sealed with AES-256-GCM under the data key, and the data key is wrapped by the KEK provider.
 * Both layers bind the secret's purpose and its row id as associated data, so a ciphertext copied
 * into another key's row does not decrypt.
 *
 * Layout (version 1): 0x01 | kekVersion u32be | wrappedLength u16be | wrapped data key | sealed secret
 */
const ENVELOPE_VERSION = 1;
const HEADER_LEN = 7;

function aad(layer: "dek" | "data", purpose: string, rowId: string): Buffer {
  return Buffer.from(`portcullis/${layer}/v1\u0000${purpose}\u0000${rowId}`, "utf8");
}

export class Envelope {
  constructor(private readonly kek: KekProvider) {}

  async encrypt(plaintext: Buffer, purpose: string, rowId: string): Promise<Buffer> {
    const dataKey = randomBytes(32);
    try {
      const { kekVersion, wrapped } = await this.kek.wrap(dataKey, aad("dek", purpose, rowId));
      const header = Buffer.alloc(HEADER_LEN);
      header.writeUInt8(ENVELOPE_VERSION, 0);
      header.writeUInt32BE(kekVersion, 1);
      header.writeUInt16BE(wrapped.length, 5);
      return Buffer.concat([header, wrapped, seal(dataKey, plaintext, aad("data", purpose, rowId))]);
    } finally {
      dataKey.fill(0);
    }
  }

  async decrypt(envelope: Buffer, purpose: string, rowId: string): Promise<Buffer> {
    if (envelope.length < HEADER_LEN || envelope.readUInt8(0) !== ENVELOPE_VERSION) {
      throw new KeyringError("unknown envelope format");
    }
    const kekVersion = envelope.readUInt32BE(1);
    const wrappedLen = envelope.readUInt16BE(5);
    if (envelope.length < HEADER_LEN + wrappedLen) throw new KeyringError("truncated envelope");
    const wrapped = envelope.subarray(HEADER_LEN, HEADER_LEN + wrappedLen);
    const dataKey = await this.kek.unwrap(kekVersion, wrapped, aad("dek", purpose, rowId));
    try {
      return open(dataKey, envelope.subarray(HEADER_LEN + wrappedLen), aad("data", purpose, rowId));
    } finally {
      dataKey.fill(0);
    }
  }
}
