import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { closeSync, constants, createReadStream, fstatSync, fsyncSync, openSync, readSync, rmSync, writeSync } from "node:fs";
import { CustodyError } from "./errors.js";
import type { KekProvider } from "./keyring.js";

/**
 * The encrypted container every Portcullis backup is written in, whatever the store (custody/backup.ts
 * puts a SQLite copy in it, custody/backup-postgres.ts a pg_dump archive):
 *
 *   "PCBACKUP" | headerLength u32be | header (JSON) | wrappedLength u16be | wrapped data key |
 *   iv (12) | ciphertext of the body | tag (16)
 *
 * The header names the format, the store, the provider and KEK version, the environment and when;
 * it holds nothing secret. The data key's wrap binds the backup's id (AAD), and the body's GCM binds
 * everything before the iv, so no header field can be altered unnoticed.
 */
const MAGIC = Buffer.from("PCBACKUP", "ascii");
const MAX_HEADER = 64 * 1024;
const IV_LEN = 12;
const TAG_LEN = 16;
/** A schema name as storage/location.ts accepts it (checked again here: a header is input). */
const SCHEMA_RE = /^(?!pg_)[a-z_][a-z0-9_]{0,47}$/;

interface BackupHeaderBase {
  readonly format: "portcullis-backup";
  readonly version: 1;
  /** Random; bound into the data key's wrap. */
  readonly id: string;
  readonly createdAt: string;
  /** The KEK provider's name ("keyring-file", "pkcs11"). */
  readonly provider: string;
  readonly kekVersion: number;
  /** Non-secret facts about the KEK (keyring path, token label…). */
  readonly kek: Readonly<Record<string, string>>;
  readonly environment: string;
}

/** A SQLite store's backup. Backups written before PostgreSQL existed have no `store`: SQLite's. */
export interface SqliteBackupHeader extends BackupHeaderBase {
  readonly store?: "sqlite";
  /** Size of the plaintext database (bytes). */
  readonly bytes: number;
}

/** A PostgreSQL store's backup: its body is `pg_dump --format=custom` of the store's schema. */
export interface PostgresBackupHeader extends BackupHeaderBase {
  readonly store: "postgres";
  /** The schema the dump holds (every object in it is named with it). */
  readonly schema: string;
  /** Where it was taken: user@host:port/database (never a password). */
  readonly server: string;
  /** The pg_dump that wrote it ("15.20"); pg_restore must be as new. */
  readonly pgDump: string;
}

export type BackupHeader = SqliteBackupHeader | PostgresBackupHeader;

/** Which store a backup holds. */
export function backupStore(header: BackupHeader): "sqlite" | "postgres" {
  return header.store === "postgres" ? "postgres" : "sqlite";
}

export function dekAad(id: string): Buffer {
  return Buffer.from(`portcullis/backup/v1\u0000${id}`, "utf8");
}

export function malformed(detail: string): CustodyError {
  return new CustodyError("BACKUP_MALFORMED", `not a Portcullis backup, or a damaged one: ${detail}`);
}

type HeaderFields<H extends BackupHeader> = H extends unknown ? Omit<H, "format" | "version" | "id" | "kekVersion" | "createdAt" | "provider" | "kek"> : never;

/**
 * Writes a container to `out` (created with mode 0600; an existing file is never overwritten):
 * a fresh data key wrapped by `kek`, then `body` encrypted chunk by chunk as it arrives (nothing of
 * it is kept). A body that fails (its producer exits with an error) leaves no file behind.
 */
export async function writeContainer<H extends BackupHeader>(
  out: string,
  kek: KekProvider,
  fields: HeaderFields<H>,
  body: () => AsyncIterable<Buffer>,
): Promise<{ header: H; size: number }> {
  const dataKey = randomBytes(32);
  let fd: number | null = null;
  try {
    const id = randomBytes(16).toString("hex");
    const { kekVersion, wrapped } = await kek.wrap(dataKey, dekAad(id));
    const header = { format: "portcullis-backup", version: 1, id, createdAt: new Date().toISOString(), provider: kek.name, kekVersion, kek: kek.describe(), ...fields } as unknown as H;
    const headerBytes = Buffer.from(JSON.stringify(header), "utf8");
    const lengths = Buffer.alloc(4);
    lengths.writeUInt32BE(headerBytes.length, 0);
    const wrappedLength = Buffer.alloc(2);
    wrappedLength.writeUInt16BE(wrapped.length, 0);
    const prefix = Buffer.concat([MAGIC, lengths, headerBytes, wrappedLength, wrapped]);
    const iv = randomBytes(IV_LEN);
    try {
      fd = openSync(out, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") throw new CustodyError("BACKUP_MALFORMED", `${out} already exists; a backup never overwrites a file`);
      throw err;
    }
    const target = fd;
    writeSync(target, prefix);
    writeSync(target, iv);
    const cipher = createCipheriv("aes-256-gcm", dataKey, iv);
    cipher.setAAD(prefix);
    for await (const chunk of body()) writeSync(target, cipher.update(chunk));
    writeSync(target, cipher.final());
    writeSync(target, cipher.getAuthTag());
    fsyncSync(target);
    return { header, size: fstatSync(target).size };
  } catch (err) {
    if (fd !== null) {
      closeSync(fd);
      fd = null;
      rmSync(out, { force: true });
    }
    throw err;
  } finally {
    dataKey.fill(0);
    if (fd !== null) closeSync(fd);
  }
}

function readExactly(fd: number, position: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  const n = readSync(fd, buf, 0, length, position);
  if (n !== length) throw malformed("truncated");
  return buf;
}

export interface ParsedBackup {
  readonly header: BackupHeader;
  readonly prefix: Buffer;
  readonly wrapped: Buffer;
  readonly iv: Buffer;
  readonly bodyStart: number;
  readonly size: number;
}

function checkHeader(value: unknown): value is BackupHeader {
  if (value === null || typeof value !== "object") return false;
  const h = value as Record<string, unknown>;
  if (
    h.format !== "portcullis-backup" ||
    h.version !== 1 ||
    typeof h.id !== "string" ||
    typeof h.provider !== "string" ||
    typeof h.kekVersion !== "number" ||
    typeof h.environment !== "string"
  ) {
    return false;
  }
  if (h.store === undefined || h.store === "sqlite") return true;
  return h.store === "postgres" && typeof h.schema === "string" && SCHEMA_RE.test(h.schema) && typeof h.pgDump === "string";
}

/** Reads and checks a backup's header (no key needed). */
export function readBackupHeader(file: string): ParsedBackup {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY);
  } catch (err) {
    throw new CustodyError("BACKUP_MALFORMED", `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
  try {
    const size = fstatSync(fd).size;
    const start = readExactly(fd, 0, MAGIC.length + 4);
    if (!start.subarray(0, MAGIC.length).equals(MAGIC)) throw malformed("no PCBACKUP signature");
    const headerLength = start.readUInt32BE(MAGIC.length);
    if (headerLength === 0 || headerLength > MAX_HEADER) throw malformed("bad header length");
    const headerBytes = readExactly(fd, start.length, headerLength);
    let header: unknown;
    try {
      header = JSON.parse(headerBytes.toString("utf8"));
    } catch {
      throw malformed("the header is not JSON");
    }
    if (!checkHeader(header)) throw malformed("unknown header");
    const wrappedAt = start.length + headerLength;
    const wrappedLength = readExactly(fd, wrappedAt, 2).readUInt16BE(0);
    const wrapped = readExactly(fd, wrappedAt + 2, wrappedLength);
    const bodyStart = wrappedAt + 2 + wrappedLength + IV_LEN;
    if (size < bodyStart + TAG_LEN) throw malformed("truncated");
    const iv = readExactly(fd, bodyStart - IV_LEN, IV_LEN);
    const prefix = Buffer.concat([start, headerBytes, readExactly(fd, wrappedAt, 2), wrapped]);
    return { header, prefix, wrapped, iv, bodyStart, size };
  } finally {
    closeSync(fd);
  }
}

/**
 * Unwraps a backup's data key with `kek`: BACKUP_PROVIDER_MISMATCH when it was made under another
 * provider, BACKUP_KEK_MISMATCH when this KEK (or this version of it) does not open it.
 */
export async function unwrapDataKey(parsed: ParsedBackup, kek: KekProvider, where: string): Promise<Buffer> {
  const { header, wrapped } = parsed;
  if (header.provider !== kek.name) {
    throw new CustodyError("BACKUP_PROVIDER_MISMATCH", `the backup was made under the ${header.provider} provider; ${where} uses ${kek.name}`);
  }
  try {
    return await kek.unwrap(header.kekVersion, wrapped, dekAad(header.id));
  } catch (err) {
    const why = err instanceof CustodyError && err.code === "CUSTODY_KEK_VERSION_UNKNOWN" ? `KEK version ${header.kekVersion} is not held here (retired, or another ${kek.name})` : "it was made under another KEK";
    throw new CustodyError("BACKUP_KEK_MISMATCH", `the backup cannot be opened with ${where}'s KEK: ${why}`);
  }
}

/**
 * Decrypts the body of `file` (parsed by readBackupHeader), handing each plaintext chunk to `sink`
 * as it is decrypted, then checks the tag: BACKUP_MALFORMED when the file was altered or truncated.
 * GCM authenticates only at the end: a sink must not act on what it was given until this resolves
 * (write it somewhere private, or only count it).
 */
export async function decryptBody(file: string, parsed: ParsedBackup, dataKey: Buffer, sink: (chunk: Buffer) => void | Promise<void>): Promise<void> {
  const { prefix, iv, bodyStart, size } = parsed;
  const decipher = createDecipheriv("aes-256-gcm", dataKey, iv);
  decipher.setAAD(prefix);
  const tag = Buffer.alloc(TAG_LEN);
  const tagFd = openSync(file, constants.O_RDONLY);
  try {
    if (readSync(tagFd, tag, 0, TAG_LEN, size - TAG_LEN) !== TAG_LEN) throw malformed("truncated");
  } finally {
    closeSync(tagFd);
  }
  decipher.setAuthTag(tag);
  if (size - TAG_LEN > bodyStart) {
    for await (const chunk of createReadStream(file, { start: bodyStart, end: size - TAG_LEN - 1 })) {
      const plain = decipher.update(chunk as Buffer);
      if (plain.length > 0) await sink(plain);
    }
  }
  let last: Buffer;
  try {
    last = decipher.final();
  } catch {
    throw malformed("the contents do not authenticate (altered or truncated)");
  }
  if (last.length > 0) await sink(last);
}
