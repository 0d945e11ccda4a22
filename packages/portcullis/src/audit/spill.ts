import { randomUUID } from "node:crypto";
import { closeSync, constants, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { join } from "node:path";
import { decodeEntry, encodeEntry, fieldsOf } from "./canonical.js";
import type { AuditFields } from "./events.js";

/**
 * Spill files: where a batch of decision entries goes when the store cannot take it, so that an
 * acknowledged entry is never lost. One file per batch, named so that names sort in spill order:
 *
 *   <dir>/<ms, 15 digits>-<counter, 6 digits>-<uuid>.jsonl
 *
 * The first line is `{"entries":N,"format":"portcullis-audit-spill","id":"<uuid>","v":1}`, then one
 * entry per line in the canonical encoding (seq 0: the chain position is given at replay). A file
 * is written as `.tmp`, fsynced, renamed and its directory fsynced: a `.jsonl` file exists only
 * complete, and a batch is acknowledged once its file does. Files hold entries only, never secrets.
 */
export const SPILL_FORMAT = "portcullis-audit-spill";

export interface SpillFile {
  readonly name: string;
  readonly id: string;
  readonly entries: readonly AuditFields[];
}

/** How old a leftover `.tmp` (a writer that died mid-write: never acknowledged) must be to go. */
const STALE_TMP_MS = 60_000;

let counter = 0;

/** Makes a directory's entries durable (a file created or renamed in it survives a crash). */
export function fsyncDir(dir: string): void {
  const fd = openSync(dir, constants.O_RDONLY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** A spill file's id and name (without `.jsonl`), chosen before it is written. */
export interface SpillName {
  readonly id: string;
  readonly base: string;
}

/** The next spill file's name: it sorts after every earlier one of this process. */
export function spillName(): SpillName {
  const id = randomUUID();
  counter = (counter + 1) % 1_000_000;
  return { id, base: `${String(Date.now()).padStart(15, "0")}-${String(counter).padStart(6, "0")}-${id}` };
}

/** True when the complete spill file `name` (from `spillName`) exists in `dir`. */
export function spillWritten(dir: string, name: SpillName): boolean {
  return existsSync(join(dir, `${name.base}.jsonl`));
}

export class SpillDir {
  constructor(readonly dir: string) {}

  /**
   * Writes one batch durably; returns its file name. Throws when it cannot (the disk is full…).
   * `name` (from `spillName`) chooses the file beforehand: a writer that loses the answer (its
   * worker died) then knows which file to look for.
   */
  write(entries: readonly AuditFields[], name: SpillName = spillName()): string {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const { id, base } = name;
    const tmp = join(this.dir, `${base}.tmp`);
    const lines = [JSON.stringify({ entries: entries.length, format: SPILL_FORMAT, id, v: 1 })];
    for (const f of entries) lines.push(encodeEntry(0, f));
    const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    try {
      writeSync(fd, `${lines.join("\n")}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, join(this.dir, `${base}.jsonl`));
    fsyncDir(this.dir);
    return `${base}.jsonl`;
  }

  /** Complete spill files, oldest first (and leftover `.tmp` files of dead writers removed). */
  list(now = Date.now()): string[] {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
    for (const name of names) {
      if (!name.endsWith(".tmp")) continue;
      try {
        if (now - statSync(join(this.dir, name)).mtimeMs > STALE_TMP_MS) rmSync(join(this.dir, name), { force: true });
      } catch {
        // Another process removed it first.
      }
    }
    return names.filter((n) => n.endsWith(".jsonl")).sort();
  }

  /**
   * Reads a spill file: "missing" when it is gone (another process replayed it meanwhile),
   * "corrupt" when it is not a spill file (it is then set aside as `.corrupt`, never deleted).
   */
  read(name: string): SpillFile | "missing" | "corrupt" {
    let text: string;
    try {
      text = readFileSync(join(this.dir, name), "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return "missing";
      throw err;
    }
    const parsed = parseSpill(text);
    if (parsed === null) {
      this.quarantine(name);
      return "corrupt";
    }
    return { name, ...parsed };
  }

  remove(name: string): void {
    rmSync(join(this.dir, name), { force: true });
  }

  private quarantine(name: string): void {
    try {
      renameSync(join(this.dir, name), join(this.dir, `${name}.corrupt`));
    } catch {
      // Gone already.
    }
  }
}

/** The id and entries of a spill file's text, or null when it is not a complete spill file. */
export function parseSpill(text: string): { id: string; entries: AuditFields[] } | null {
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  let header: unknown;
  try {
    header = JSON.parse(lines[0] ?? "");
  } catch {
    return null;
  }
  if (header === null || typeof header !== "object") return null;
  const h = header as Record<string, unknown>;
  if (h.format !== SPILL_FORMAT || h.v !== 1 || typeof h.id !== "string" || h.entries !== lines.length - 1) return null;
  const entries: AuditFields[] = [];
  for (const line of lines.slice(1)) {
    const entry = decodeEntry(line);
    if (entry === null) return null;
    entries.push(fieldsOf(entry));
  }
  return { id: h.id, entries };
}

/** Spill files waiting in `dir` and the entries they hold, read without changing anything. */
export function pendingSpill(dir: string): { files: number; entries: number } {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith(".jsonl"));
  } catch {
    return { files: 0, entries: 0 };
  }
  let entries = 0;
  for (const name of names) {
    try {
      entries += parseSpill(readFileSync(join(dir, name), "utf8"))?.entries.length ?? 0;
    } catch {
      // Replayed (and removed) meanwhile.
    }
  }
  return { files: names.length, entries };
}
