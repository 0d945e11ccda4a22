import Database from "better-sqlite3";
import { chmodSync, closeSync, constants, fsyncSync, openSync, readdirSync, renameSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { basename, dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { CustodyError } from "./errors.js";

/**
 * Small file-system helpers for custody state shared between processes on one host: an exclusive
 * lock (so two rotations never interleave, and two writers of the keyring never lose each other's
 * update) and an atomic replace of a mode-0600 file.
 */

/** SQLite's answer when the file is something else: a lock file as Portcullis wrote it before (a pid). */
function notADatabase(err: unknown): boolean {
  return (err as { code?: unknown }).code === "SQLITE_NOTADB";
}

function busy(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === "SQLITE_BUSY" || code === "SQLITE_LOCKED";
}

/**
 * Runs `fn` holding `lockPath`: an exclusive lock that the kernel holds for this process (SQLite's
 * POSIX advisory lock on an empty database file, `BEGIN EXCLUSIVE`), released when `fn` settles
 * and, whatever kills the process, when the process is gone. No pid is written or trusted: a pid
 * names a process only while it lives, and a restarted container's process often has the very
 * pid its killed predecessor wrote (1, in a container of its own), which made the predecessor's
 * lock look held for ever. The file stays (empty); it is never removed, so no process can delete
 * a lock another holds. A held lock is waited for up to `waitMs`, then refused with
 * CUSTODY_ROTATION_IN_PROGRESS. The event loop is never blocked while waiting.
 */
export async function withFileLock<T>(lockPath: string, what: string, fn: () => Promise<T>, waitMs = 5_000): Promise<T> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const db = new Database(lockPath, { timeout: 0 });
    try {
      if ((statSync(lockPath).mode & 0o077) !== 0) chmodSync(lockPath, 0o600);
      // Nothing is ever written: no rollback journal file either (it would outlive a kill).
      db.pragma("journal_mode = MEMORY");
      db.exec("BEGIN EXCLUSIVE");
    } catch (err) {
      db.close();
      if (notADatabase(err)) {
        // An older Portcullis's lock file (its pid, as text): emptied in place (never unlinked,
        // so a lock file someone holds is never replaced), it becomes an empty database.
        truncateSync(lockPath, 0);
        continue;
      }
      if (!busy(err)) throw err;
      if (Date.now() >= deadline) {
        throw new CustodyError("CUSTODY_ROTATION_IN_PROGRESS", `${what} is locked by another process (${lockPath}); retry when it is done`);
      }
      await sleep(50);
      continue;
    }
    try {
      return await fn();
    } finally {
      db.exec("ROLLBACK");
      db.close();
    }
  }
}

const TEMPORARY = /^[0-9a-f]{12}\.tmp$/;

/**
 * The temporary files `replaceFileAtomic(path)` leaves beside `path` when its process dies between
 * writing one and renaming it: for the keyring, a full copy of every KEK it held, including a
 * version a later rotation retires. Remove them (`removeTemporaries`) only holding the file's lock:
 * a replace under way holds it.
 */
export function temporariesOf(path: string): string[] {
  const prefix = `${basename(path)}.`;
  return readdirSync(dirname(path))
    .filter((name) => name.startsWith(prefix) && TEMPORARY.test(name.slice(prefix.length)))
    .map((name) => join(dirname(path), name));
}

export function removeTemporaries(path: string): void {
  for (const file of temporariesOf(path)) rmSync(file, { force: true });
}

/** Replaces `path` atomically with `content`, mode 0600 (write a temporary file, fsync, rename). */
export function replaceFileAtomic(path: string, content: string | Buffer): void {
  const tmp = `${path}.${randomBytes(6).toString("hex")}.tmp`;
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    writeFileSync(fd, content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  try {
    const dirFd = openSync(dirname(path), constants.O_RDONLY);
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
  } catch {
    // Some file systems refuse to fsync a directory; the rename itself is atomic.
  }
}
