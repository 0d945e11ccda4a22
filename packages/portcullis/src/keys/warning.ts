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

export function addKeyWarning(out: Record<string, string>, key: VerificationKey, now: number): void {
  if (key.idle !== null) out[KEY_WARNING_HEADERS.idle] = new Date(now + key.idle.afterMs).toISOString();
  const record = key.record;
  const expiresAt = record.expiresAt;
  if (expiresAt === null) return;
  const window = record.maxAgeMs === null ? EXPIRY_WARNING_MS : Math.min(EXPIRY_WARNING_MS, Math.floor(record.maxAgeMs / 4));
  if (record.rotatedTo === null && expiresAt - now > window) return;
  out[KEY_WARNING_HEADERS.expires] = new Date(expiresAt).toISOString();
  if (record.rotatedTo !== null) out[KEY_WARNING_HEADERS.rotation] = "rotated";
  else if (record.maxAgeMs !== null) out[KEY_WARNING_HEADERS.rotation] = "due";
}
