import { closeSync, constants, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { dirname } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { CustodyError } from "./errors.js";

/**
 * Small file-system helpers for custody state shared between processes on one host: an exclusive
 * lock file (so two rotations never interleave, and two writers of the keyring never lose each
 * other's update) and an atomic replace of a mode-0600 file.
 */

function holderAlive(lockPath: string): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(lockPath, "utf8").trim());
  } catch {
    return true; // being written right now, or just removed: treat as held and retry
  }
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Runs `fn` holding `lockPath` (created with O_EXCL, holding this process's pid). A lock whose
 * process is gone is taken over; a live one is waited for up to `waitMs`, then refused with
 * CUSTODY_ROTATION_IN_PROGRESS.
 */
export async function withFileLock<T>(lockPath: string, what: string, fn: () => Promise<T>, waitMs = 5_000): Promise<T> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    let fd: number | null = null;
    try {
      fd = openSync(lockPath, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
      writeFileSync(fd, `${process.pid}\n`);
    } catch (err) {
      if (fd !== null) closeSync(fd);
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      if (!holderAlive(lockPath)) {
        rmSync(lockPath, { force: true });
        continue;
      }
      if (Date.now() >= deadline) {
        throw new CustodyError("CUSTODY_ROTATION_IN_PROGRESS", `${what} is locked by another process (${lockPath}); retry when it is done`);
      }
      await sleep(50);
      continue;
    }
    closeSync(fd);
    try {
      return await fn();
    } finally {
      rmSync(lockPath, { force: true });
    }
  }
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
