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
/** The policy versions' insert lock: one new version at a time (storage/postgres/policy.ts). */
export const LOCK_POLICY = 0x50430005;
/**
 * The custody lock: one KEK rotation at a time on the store, whatever host runs it (a session lock
 * on a connection of its own, held for the whole rotation: PostgresStore.withCustodyLock).
 */
export const LOCK_CUSTODY = 0x50430006;

/**
 * A 64-bit advisory lock key (one-bigint form, a space apart from the two-int4 locks above) for
 * one thing of a schema: FNV-1a 64 of `schema`, `scope` and `name`, each ended by a NUL. Two names
 * that collide only wait for each other; they never share a result.
 */
export function nameLockKey(schema: string, scope: string, name: string): bigint {
  let h = 0xcbf29ce484222325n;
  const text = Buffer.from(`${schema}\u0000${scope}\u0000${name}\u0000`, "utf8");
  for (const byte of text) {
    h ^= BigInt(byte);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return BigInt.asIntN(64, h);
}
