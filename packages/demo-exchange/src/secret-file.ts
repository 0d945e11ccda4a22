import { rmSync, writeFileSync } from "node:fs";

/**
 * Writes a private key to `file` as a new file of mode 0600. A data directory given with --data
 * may hold an older file (or a symbolic link) by that name: it is removed first, and the file is
 * created exclusively, so the key is never written into a file that others may read (writing over
 * an existing file keeps its mode, 0644 say, and a link would be followed to its target); a file
 * that appears meanwhile fails the write (EEXIST) rather than receiving the key.
 */
export function writeSecretFile(file: string, text: string): void {
  rmSync(file, { force: true });
  writeFileSync(file, text, { mode: 0o600, flag: "wx" });
}
