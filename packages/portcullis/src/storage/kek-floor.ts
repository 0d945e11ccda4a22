/**
 * The durable KEK floor: the lowest KEK version an envelope may be written under. A KEK rotation
 * raises it (to the version it rewrapped everything under) in the same transaction that finds no
 * envelope left under an older version, and only then destroys the older versions; every envelope
 * write checks it in its own transaction and is refused (CUSTODY_KEK_RETIRED) when its envelope is
 * under a version below it. So a secret wrapped under an old version by another process (a token's
 * view of the active version can be 250 ms old; a row can land after the rotation's last pass) is
 * never stored once that version may be destroyed: the writer wraps it again under the active one.
 *
 * This module reads only the envelope's header (custody/envelope.ts writes it): format byte 0x01,
 * then the KEK version as a big-endian u32. It decrypts nothing.
 */

/** The meta entry holding the floor (a decimal integer; absent: 0). */
export const KEK_FLOOR_META = "custody:kek-floor";

/** The envelope format byte and header length (custody/envelope.ts: 0x01 | kekVersion u32be | …). */
export const ENVELOPE_FORMAT = 1;
export const ENVELOPE_HEADER_LEN = 7;

/** The KEK version named by an envelope's header, or null when it is not an envelope. */
export function envelopeKekVersion(envelope: Buffer): number | null {
  if (envelope.length < ENVELOPE_HEADER_LEN || envelope.readUInt8(0) !== ENVELOPE_FORMAT) return null;
  return envelope.readUInt32BE(1);
}

/** Meta entries that hold envelopes (custody/signing.ts: stored secrets, envelope signing keys). */
export const ENVELOPE_META_PREFIXES = ["secret:", "signing-key:"] as const;

/**
 * The KEK version of the envelope a meta value holds: a stored secret's value is the envelope
 * (base64); an envelope signing key's is JSON whose `privateKey` is the envelope. Null for any
 * other entry, or a value not in that format.
 */
export function metaEnvelopeKekVersion(key: string, value: string): number | null {
  if (key.startsWith("secret:")) return envelopeKekVersion(Buffer.from(value, "base64"));
  if (key.startsWith("signing-key:")) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(value);
    } catch {
      return null;
    }
    if (parsed === null || typeof parsed !== "object") return null;
    const privateKey = (parsed as Record<string, unknown>).privateKey;
    return typeof privateKey === "string" ? envelopeKekVersion(Buffer.from(privateKey, "base64")) : null;
  }
  return null;
}

/** The floor as stored (absent or unreadable: 0, no floor). */
export function parseKekFloor(text: string | undefined): number {
  if (text === undefined) return 0;
  const n = Number(text);
  return Number.isSafeInteger(n) && n > 0 ? n : 0;
}
