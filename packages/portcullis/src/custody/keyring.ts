import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { closeSync, constants, fstatSync, openSync, readFileSync, writeFileSync } from "node:fs";

/**
 * The key-encryption-key (KEK) provider contract. Every secret Portcullis stores is encrypted
 * under a fresh data key, and the data key is wrapped by a KEK that never leaves its provider.
 *
 * - `wrap` encrypts a 32-byte data key under the active KEK, binding `aad` (associated data that
 *   names what the key protects), and returns the KEK version used.
 * - `unwrap` reverses it; it must fail (throw) when `aad` or the wrapped bytes differ by one bit.
 * - Both may be slow (an HSM round trip); callers cache the secrets they unwrap, never the KEK.
 *
 * The keyring file is the embedded provider; an HSM (PKCS#11) or a cloud KMS implements the same
 * interface.
 */
export interface KekProvider {
  readonly name: string;
  readonly activeVersion: number;
  wrap(dataKey: Buffer, aad: Buffer): Promise<{ kekVersion: number; wrapped: Buffer }>;
  unwrap(kekVersion: number, wrapped: Buffer, aad: Buffer): Promise<Buffer>;
}

export class KeyringError extends Error {
  override name = "KeyringError";
}

interface KeyringFile {
  format: "portcullis-keyring";
  version: 1;
  active: number;
  keks: Record<string, string>;
  createdAt: string;
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

/** AES-256-GCM open; throws when the bytes or the associated data were changed. */
export function open(key: Buffer, sealed: Buffer, aad: Buffer): Buffer {
  if (sealed.length < IV_LEN + TAG_LEN) throw new KeyringError("ciphertext too short");
  const iv = sealed.subarray(0, IV_LEN);
  const tag = sealed.subarray(sealed.length - TAG_LEN);
  const decipher = createDecipheriv("aes-256-gcm", key, iv);
  decipher.setAAD(aad);
  decipher.setAuthTag(tag);
  return Buffer.concat([decipher.update(sealed.subarray(IV_LEN, sealed.length - TAG_LEN)), decipher.final()]);
}

/**
 * The keyring file: KEK versions as random 256-bit keys, created by `portcullis init` with mode
 * 0600. Loading refuses a file that group or others can read.
 */
export class KeyringFileProvider implements KekProvider {
  readonly name = "keyring-file";
  readonly activeVersion: number;
  private readonly keks: Map<number, Buffer>;

  private constructor(active: number, keks: Map<number, Buffer>) {
    this.activeVersion = active;
    this.keks = keks;
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
      if ((err as NodeJS.ErrnoException).code === "EEXIST") throw new KeyringError(`keyring ${path} already exists`);
      throw err;
    }
    try {
      writeFileSync(fd, `${JSON.stringify(file, null, 2)}\n`);
    } finally {
      closeSync(fd);
    }
    return new KeyringFileProvider(1, new Map([[1, kek]]));
  }

  static load(path: string): KeyringFileProvider {
    let fd: number;
    try {
      fd = openSync(path, constants.O_RDONLY);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        throw new KeyringError(`no keyring at ${path}: run \`portcullis init\` for this data directory`);
      }
      throw err;
    }
    let text: string;
    try {
      const mode = fstatSync(fd).mode & 0o777;
      if ((mode & 0o077) !== 0) {
        throw new KeyringError(
          `keyring ${path} has mode 0${mode.toString(8)}; it must not be readable by group or others (chmod 600)`,
        );
      }
      text = readFileSync(fd, "utf8");
    } finally {
      closeSync(fd);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new KeyringError(`keyring ${path} is not valid JSON`);
    }
    const file = parsed as Partial<KeyringFile>;
    if (file.format !== "portcullis-keyring" || file.version !== 1 || typeof file.active !== "number" || file.keks === undefined) {
      throw new KeyringError(`keyring ${path} is not a Portcullis keyring`);
    }
    const keks = new Map<number, Buffer>();
    for (const [version, b64] of Object.entries(file.keks)) {
      const key = Buffer.from(b64, "base64");
      if (key.length !== 32) throw new KeyringError(`keyring ${path}: KEK version ${version} is not 256 bits`);
      keks.set(Number(version), key);
    }
    if (!keks.has(file.active)) throw new KeyringError(`keyring ${path}: active KEK version ${file.active} is missing`);
    return new KeyringFileProvider(file.active, keks);
  }

  wrap(dataKey: Buffer, aad: Buffer): Promise<{ kekVersion: number; wrapped: Buffer }> {
    const kek = this.keks.get(this.activeVersion);
    if (kek === undefined) return Promise.reject(new KeyringError("active KEK missing"));
    return Promise.resolve({ kekVersion: this.activeVersion, wrapped: seal(kek, dataKey, aad) });
  }

  unwrap(kekVersion: number, wrapped: Buffer, aad: Buffer): Promise<Buffer> {
    const kek = this.keks.get(kekVersion);
    if (kek === undefined) return Promise.reject(new KeyringError(`KEK version ${kekVersion} is not in the keyring`));
    try {
      return Promise.resolve(open(kek, wrapped, aad));
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new KeyringError("unwrap failed"));
    }
  }
}
