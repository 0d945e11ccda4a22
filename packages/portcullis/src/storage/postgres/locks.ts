/** Advisory lock classes (the first int4 of a two-key advisory lock); the second is the schema's hash. */
export const LOCK_MIGRATIONS = 0x50430001;
export const LOCK_KEY_FEED = 0x50430002;
export const LOCK_KEK_FLOOR = 0x50430003;
/** The audit chain's append lock (storage/postgres/audit.ts). */
export const LOCK_AUDIT = 0x50430004;

/** A schema's 32-bit lock key (FNV-1a of its name, as a signed int4). */
export function schemaLockKey(schema: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < schema.length; i++) {
    h ^= schema.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h | 0;
}
