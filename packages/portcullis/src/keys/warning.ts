import type { VerificationKey } from "../contract/verification-key.js";

/**
 * The expiry warning on answers to an authenticated request, so a bot learns in time that its key
 * is about to stop working:
 *
 *   Portcullis-Key-Expires: 2026-12-09T12:00:00.000Z
 *   Portcullis-Key-Rotation: rotated        (the key has a successor and is in its grace period)
 *   Portcullis-Key-Rotation: due            (the key's rotation policy says: rotate it now)
 *
 * `Portcullis-Key-Expires` is sent within the warning window before a key's expiry: 7 days, or for
 * a key with a maximum age a quarter of it when that is shorter; always during a rotation grace
 * period. Nothing is sent for keys that do not expire.
 *
 *   Portcullis-Key-Idle-Expires: 2027-03-06T12:00:00.000Z
 *
 * is sent on every answer to a key that may trade or withdraw from any address (no IP allowlist):
 * such a key stops working after the deployment's idle expiry without use (contract/keys.ts
 * `idleExpiresAt`), and the header says when that would be if this were its last request. It
 * disappears once the key has an IP allowlist.
 */
export const EXPIRY_WARNING_MS = 7 * 86_400_000;

export const KEY_WARNING_HEADERS = { expires: "portcullis-key-expires", rotation: "portcullis-key-rotation", idle: "portcullis-key-idle-expires" } as const;

/** The second `isoTime` formatted last (its epoch ms at the second's start), and its text up to the ms. */
let cachedSecond = Number.NaN;
let cachedPrefix = "";

/**
 * `new Date(ms).toISOString()`, exactly, without a Date per call: the text up to the second
 * ("2027-03-06T12:00:00.") is formatted once per second and the milliseconds appended. Every
 * answer to a key that may trade from any address carries one (the idle expiry), so this is on
 * the request path. A fraction of a millisecond, or a time outside
 * years 1000–9999, takes the plain path.
 */
export function isoTime(ms: number): string {
  if (!Number.isSafeInteger(ms) || ms < -30_610_224_000_000 || ms >= 253_402_300_800_000) return new Date(ms).toISOString();
  const second = ms - (((ms % 1000) + 1000) % 1000);
  if (second !== cachedSecond) {
    cachedPrefix = new Date(second).toISOString().slice(0, 20);
    cachedSecond = second;
  }
  const milli = ms - second;
  return `${cachedPrefix}${milli < 10 ? "00" : milli < 100 ? "0" : ""}${milli}Z`;
}

export function addKeyWarning(out: Record<string, string>, key: VerificationKey, now: number): void {
  if (key.idle !== null) out[KEY_WARNING_HEADERS.idle] = isoTime(now + key.idle.afterMs);
  const record = key.record;
  const expiresAt = record.expiresAt;
  if (expiresAt === null) return;
  const window = record.maxAgeMs === null ? EXPIRY_WARNING_MS : Math.min(EXPIRY_WARNING_MS, Math.floor(record.maxAgeMs / 4));
  if (record.rotatedTo === null && expiresAt - now > window) return;
  out[KEY_WARNING_HEADERS.expires] = new Date(expiresAt).toISOString();
  if (record.rotatedTo !== null) out[KEY_WARNING_HEADERS.rotation] = "rotated";
  else if (record.maxAgeMs !== null) out[KEY_WARNING_HEADERS.rotation] = "due";
}
