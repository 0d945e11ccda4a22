import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { closeSync, constants, fstatSync, openSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { CustodyError } from "./errors.js";
import { removeTemporaries, replaceFileAtomic, temporariesOf, withFileLock } from "./lock.js";

/**
 * The key-encryption-key (KEK) provider contract. Every secret Portcullis stores is encrypted
 * under a fresh data key, and the data key is wrapped by a KEK that never leaves its provider.
 * Implemented by the keyring file (embedded default, below) and PKCS#11 (`pkcs11-kek.ts`); a cloud
 * KMS fits the same contract (wrap = KMS Encrypt with the AAD as encryption context, versions =
 * the key's versions):
 *
 * - `wrap` encrypts a 32-byte data key under the **active** KEK version, binding `aad` (associated
 *   data that names what the key protects), and returns the version used. Another process may have
 *   rotated: a provider learns the current active version before it wraps (a stat of the keyring
 *   file, a find in the token), so nothing new is wrapped under a version being retired.
 * - `unwrap` reverses it with the version named; it must fail (reject) when `aad` or the wrapped
 *   bytes differ by one bit, and when the version is not held (after looking again: a version
 *   created by another process is found).
 * - Both may be slow (an HSM round trip): callers cache the secrets they unwrap, never the KEK,
 *   and nothing calls the provider per request.
 * - `versions`, `addVersion` and `retire` are the rotation primitives: a new version becomes active
 *   at once; a version is retired (destroyed) only by a rotation that rewrapped everything under it
 *   (`rotation.ts`), never the active one. Callers of these two hold the data directory's custody
 *   lock.
 * - Rejections are `CustodyError`s with a stable code; no message carries key material.
 */
export interface KekProvider {
  /** "keyring-file", "pkcs11"…: recorded in the data directory and in backups. */
  readonly name: string;
  /** The version `wrap` used last (call `versions()` for a fresh view). */
  readonly activeVersion: number;
  wrap(dataKey: Buffer, aad: Buffer): Promise<{ kekVersion: number; wrapped: Buffer }>;
  unwrap(kekVersion: number, wrapped: Buffer, aad: Buffer): Promise<Buffer>;
  /** The versions held now, ascending, and the active one. */
  versions(): Promise<{ active: number; held: readonly number[] }>;
  /** Creates a new version and makes it active; resolves to its number. */
  addVersion(): Promise<number>;
  /** Destroys `version` (never the active one). */
  retire(version: number): Promise<void>;
  /** Non-secret facts for `custody status` and backup headers (path, token label…). */
  describe(): Readonly<Record<string, string>>;
  /** Releases what the provider holds open (an HSM session). */
  close(): Promise<void>;
}

/** A keyring-file refusal (missing, readable by others, malformed). */
export class KeyringError extends CustodyError {
  override name = "KeyringError";
}

interface KeyringFile {
  format: "portcullis-keyring";
  version: 1;
  active: number;
  keks: Record<string, string>;
  createdAt: string;
  rotatedAt?: string;
}

const IV_LEN = 12;
const TAG_LEN = 16;

/** AES-256-GCM seal: iv || ciphertext || tag. */
export function seal(key: Buffer, plaintext: Buffer, aad: Buffer): Buffer {
  const iv = randomBytes(IV_LEN);
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  cipher.setAAD(aad);
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([iv, body, cipher.getAuthTag()]);
}

/** AES-256-GCM open; throws CUSTODY_DECRYPT_FAILED when the bytes or the associated data were changed. */
export function open(key: Buffer, sealed: Buffer, aad: Buffer): Buffer {
  if (sealed.length < IV_LEN + TAG_LEN) throw new CustodyError("CUSTODY_ENVELOPE_MALFORMED", "ciphertext too short");
  const iv = sealed.subarray(0, IV_LEN);
  const tag = sealed.subarray(sealed.length - TAG_LEN);
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, iv);
    decipher.setAAD(aad);
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(sealed.subarray(IV_LEN, sealed.length - TAG_LEN)), decipher.final()]);
  } catch {
    throw new CustodyError("CUSTODY_DECRYPT_FAILED", "the ciphertext does not authenticate (tampered, moved to another row, or under another KEK)");
  }
}

interface KeyringState {
  readonly active: number;
  readonly keks: ReadonlyMap<number, Buffer>;
  /** inode, size, times and mode when read: a change means another process rewrote (or chmod-ed) the file. */
  readonly stamp: string;
}

function stampOf(st: { ino: number; size: number; mtimeMs: number; ctimeMs: number; mode: number }): string {
  return `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}:${st.mode}`;
}

function readKeyring(path: string): KeyringState & { file: KeyringFile } {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      throw new KeyringError("KEYRING_MISSING", `no keyring at ${path}: run \`portcullis init\` for this data directory`);
    }
    throw err;
  }
  let text: string;
  let stamp: string;
  try {
    const st = fstatSync(fd);
    const mode = st.mode & 0o777;
    if ((mode & 0o077) !== 0) {
      throw new KeyringError(
        "KEYRING_INSECURE",
        `keyring ${path} has mode 0${mode.toString(8)}; it must not be readable by group or others (chmod 600)`,
      );
    }
    stamp = stampOf(st);
    text = readFileSync(fd, "utf8");
  } finally {
    closeSync(fd);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new KeyringError("KEYRING_INVALID", `keyring ${path} is not valid JSON`);
  }
  const file = parsed as Partial<KeyringFile> | null;
  if (
    file === null ||
    typeof file !== "object" ||
    file.format !== "portcullis-keyring" ||
    file.version !== 1 ||
    typeof file.active !== "number" ||
    typeof file.keks !== "object" ||
    (file.keks as unknown) === null
  ) {
    throw new KeyringError("KEYRING_INVALID", `keyring ${path} is not a Portcullis keyring`);
  }
  const keks = new Map<number, Buffer>();
  for (const [version, b64] of Object.entries(file.keks)) {
    const n = Number(version);
    const key = typeof b64 === "string" ? Buffer.from(b64, "base64") : Buffer.alloc(0);
    if (!Number.isInteger(n) || n < 1 || key.length !== 32) {
      throw new KeyringError("KEYRING_INVALID", `keyring ${path}: KEK version ${version} is not a 256-bit key`);
    }
    keks.set(n, key);
  }
  if (!keks.has(file.active)) throw new KeyringError("KEYRING_INVALID", `keyring ${path}: active KEK version ${file.active} is missing`);
  return { active: file.active, keks, stamp, file: file as KeyringFile };
}

/**
 * The keyring file: KEK versions as random 256-bit keys and which one is active, created by
 * `portcullis init` with mode 0600. Loading refuses a file that group or others can read. Every
 * process on the data directory reads the same file: a rotation by one (`addVersion`, `retire`:
 * an atomic replace under a lock file) is seen by the others before their next wrap (a stat per
 * wrap) and at their first unwrap of a version they do not know.
 */
export class KeyringFileProvider implements KekProvider {
  readonly name = "keyring-file";
  private state: KeyringState;

  private constructor(
    private readonly path: string,
    state: KeyringState,
  ) {
    this.state = state;
  }

  get activeVersion(): number {
    return this.state.active;
  }

  /** Creates a new keyring file; fails if one exists (never overwrites a KEK). */
  static create(path: string): KeyringFileProvider {
    const kek = randomBytes(32);
    const file: KeyringFile = {
      format: "portcullis-keyring",
      version: 1,
      active: 1,
      keks: { "1": kek.toString("base64") },
      createdAt: new Date().toISOString(),
    };
    let fd: number;
    try {
      fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") throw new KeyringError("KEYRING_EXISTS", `keyring ${path} already exists`);
      throw err;
    }
    try {
      writeFileSync(fd, `${JSON.stringify(file, null, 2)}\n`);
    } finally {
      closeSync(fd);
    }
    return KeyringFileProvider.load(path);
  }

  static load(path: string): KeyringFileProvider {
    return new KeyringFileProvider(path, readKeyring(path));
  }

  /** Re-reads the file when another process replaced it. `strict`: a vanished file is an error. */
  private refresh(strict: boolean): void {
    let stamp: string;
    try {
      const st = statSync(this.path);
      stamp = stampOf(st);
    } catch (err) {
      if (strict) throw new KeyringError("KEYRING_MISSING", `the keyring ${this.path} is gone (${(err as NodeJS.ErrnoException).code ?? "error"})`);
      return;
    }
    if (stamp !== this.state.stamp) this.state = readKeyring(this.path);
  }

  wrap(dataKey: Buffer, aad: Buffer): Promise<{ kekVersion: number; wrapped: Buffer }> {
    try {
      this.refresh(true);
      const kek = this.state.keks.get(this.state.active);
      if (kek === undefined) throw new KeyringError("KEYRING_INVALID", "the active KEK is missing");
      return Promise.resolve({ kekVersion: this.state.active, wrapped: seal(kek, dataKey, aad) });
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new CustodyError("CUSTODY_HSM_FAILED"));
    }
  }

  unwrap(kekVersion: number, wrapped: Buffer, aad: Buffer): Promise<Buffer> {
    try {
      if (!this.state.keks.has(kekVersion)) this.refresh(false);
      const kek = this.state.keks.get(kekVersion);
      if (kek === undefined) {
        throw new CustodyError("CUSTODY_KEK_VERSION_UNKNOWN", `KEK version ${kekVersion} is not in the keyring ${this.path} (retired, or another keyring)`);
      }
      return Promise.resolve(open(kek, wrapped, aad));
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new CustodyError("CUSTODY_DECRYPT_FAILED"));
    }
  }

  versions(): Promise<{ active: number; held: readonly number[] }> {
    try {
      this.refresh(true);
      return Promise.resolve({ active: this.state.active, held: [...this.state.keks.keys()].sort((a, b) => a - b) });
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new CustodyError("KEYRING_INVALID"));
    }
  }

  /**
   * Removes the copies of the keyring that a replace killed midway left beside it (each holds every
   * KEK of its time), holding the keyring's lock. Every open runs it; it costs a directory read.
   */
  async sweep(): Promise<void> {
    if (temporariesOf(this.path).length === 0) return;
    await withFileLock(`${this.path}.lock`, `the keyring ${this.path}`, () => {
      removeTemporaries(this.path);
      return Promise.resolve();
    });
  }

  private update(change: (file: KeyringFile, keks: ReadonlyMap<number, Buffer>) => KeyringFile): Promise<void> {
    return withFileLock(`${this.path}.lock`, `the keyring ${this.path}`, () => {
      removeTemporaries(this.path);
      const current = readKeyring(this.path);
      replaceFileAtomic(this.path, `${JSON.stringify(change(current.file, current.keks), null, 2)}\n`);
      this.state = readKeyring(this.path);
      return Promise.resolve();
    });
  }

  async addVersion(): Promise<number> {
    let added = 0;
    await this.update((file, keks) => {
      added = Math.max(...keks.keys()) + 1;
      return { ...file, active: added, keks: { ...file.keks, [String(added)]: randomBytes(32).toString("base64") }, rotatedAt: new Date().toISOString() };
    });
    return added;
  }

  async retire(version: number): Promise<void> {
    await this.update((file) => {
      if (version === file.active) throw new CustodyError("CUSTODY_KEK_VERSION_UNKNOWN", `KEK version ${version} is the active one and cannot be retired`);
      const keks = Object.fromEntries(Object.entries(file.keks).filter(([v]) => v !== String(version)));
      return { ...file, keks };
    });
  }

  describe(): Readonly<Record<string, string>> {
    return { provider: this.name, path: this.path };
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
