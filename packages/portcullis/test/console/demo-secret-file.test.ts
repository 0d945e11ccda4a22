/**
 * The demo's private key files (console-operator.json, demo-<name>.pem) are written as new files
 * of mode 0600 (demo-exchange writeSecretFile). Security review of issue 18: with --data pointing
 * at an older data directory, writeFileSync's `mode` applies only to a file it creates, so a new
 * private key went into the old file with its old mode (0644: readable by every local user; the
 * .pem files were never chmod'ed), and a symbolic link by that name was followed to its target.
 */
import { writeSecretFile } from "@portcullis/demo-exchange";
import { lstatSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "pc-demo-secret-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("writeSecretFile", () => {
  it("the cause: writing over an existing file keeps its mode", () => {
    const file = join(dir, "old.pem");
    writeFileSync(file, "old", { mode: 0o644 });
    writeFileSync(file, "PRIVATE", { mode: 0o600 });
    expect(statSync(file).mode & 0o777).toBe(0o644);
  });

  it("a new file is 0600", () => {
    const file = join(dir, "console-operator.json");
    writeSecretFile(file, "PRIVATE");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, "utf8")).toBe("PRIVATE");
  });

  it("an older world-readable file by that name is replaced by a 0600 one", () => {
    const file = join(dir, "demo-trader.pem");
    writeFileSync(file, "old", { mode: 0o644 });
    writeSecretFile(file, "PRIVATE");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, "utf8")).toBe("PRIVATE");
  });

  it("a symbolic link by that name is replaced, its target left untouched", () => {
    const target = join(dir, "elsewhere.txt");
    writeFileSync(target, "theirs", { mode: 0o644 });
    const file = join(dir, "console-operator.json");
    symlinkSync(target, file);
    writeSecretFile(file, "PRIVATE");
    expect(lstatSync(file).isSymbolicLink()).toBe(false);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(target, "utf8")).toBe("theirs");
    expect(statSync(target).mode & 0o777).toBe(0o644);
  });
});
