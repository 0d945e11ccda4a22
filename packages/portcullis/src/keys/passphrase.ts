import { createHmac, randomBytes, scrypt, timingSafeEqual, type KeyObject, createSecretKey } from "node:crypto";
import type { PassphraseVerifier } from "../contract/verification-key.js";

/**
 * Passphrases (OKX keys carry one besides the secret). Stored only as a salted scrypt hash
 * (`scrypt$<log2 N>$<r>$<p>$<salt>$<hash>`, base64url), and checked on the request path without
 * paying scrypt per request: the first successful check of a loaded key remembers an HMAC of the
 * passphrase under a per-process random key, and later requests compare against that in
 * constant time. A failed check is never remembered.
 */
const LOG_N = 15;
const R = 8;
const P = 1;
const KEY_LEN = 32;
const MAXMEM = 128 * 1024 * 1024;

function scryptAsync(passphrase: string, salt: Buffer, logN: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(passphrase, salt, KEY_LEN, { N: 2 ** logN, r, p, maxmem: MAXMEM }, (err, derived) => {
      if (err === null) resolve(derived);
      else reject(err);
    });
  });
}

export async function hashPassphrase(passphrase: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scryptAsync(passphrase, salt, LOG_N, R, P);
  return `scrypt$${LOG_N}$${R}$${P}$${salt.toString("base64url")}$${hash.toString("base64url")}`;
}

/** Verifies a candidate against a stored hash (slow, asynchronous). */
export async function verifyPassphraseHash(stored: string, candidate: string): Promise<boolean> {
  const parts = stored.split("$");
  if (parts.length !== 6 || parts[0] !== "scrypt") return false;
  const logN = Number(parts[1]);
  const r = Number(parts[2]);
  const p = Number(parts[3]);
  if (!Number.isInteger(logN) || logN < 10 || logN > 20 || !Number.isInteger(r) || !Number.isInteger(p)) return false;
  const salt = Buffer.from(parts[4] ?? "", "base64url");
  const expected = Buffer.from(parts[5] ?? "", "base64url");
  const actual = await scryptAsync(candidate, salt, logN, r, p);
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

const processKey: KeyObject = createSecretKey(randomBytes(32));

function fastDigest(candidate: string): Buffer {
  return createHmac("sha256", processKey).update(candidate, "utf8").digest();
}

const checks = new Map<string, PassphraseCheck>();
const CHECKS_MAX = 10_000;

/**
 * The check for a stored hash, shared across reloads of the same key (a reload after a cache
 * refresh then does not pay scrypt again). A changed passphrase has a new salt, so a new hash.
 */
export function passphraseCheckFor(stored: string): PassphraseCheck {
  let check = checks.get(stored);
  if (check === undefined) {
    if (checks.size >= CHECKS_MAX) {
      const oldest = checks.keys().next();
      if (oldest.done !== true) checks.delete(oldest.value);
    }
    check = new PassphraseCheck(stored);
    checks.set(stored, check);
  }
  return check;
}

/** The per-loaded-key check: slow the first time, a constant-time HMAC compare afterwards. */
export class PassphraseCheck implements PassphraseVerifier {
  private remembered: Buffer | null = null;
  /** Slow checks under way, by candidate digest: concurrent first requests share one scrypt. */
  private readonly pending = new Map<string, Promise<boolean>>();

  constructor(private readonly stored: string) {}

  check(candidate: string): boolean | Promise<boolean> {
    const digest = fastDigest(candidate);
    if (this.remembered !== null) return timingSafeEqual(digest, this.remembered);
    const id = digest.toString("base64");
    let slow = this.pending.get(id);
    if (slow === undefined) {
      slow = verifyPassphraseHash(this.stored, candidate)
        .then((ok) => {
          if (ok) this.remembered = digest;
          return ok;
        })
        .finally(() => {
          this.pending.delete(id);
        });
      this.pending.set(id, slow);
    }
    return slow;
  }
}
