/**
 * Where the runtime finds the console (runtime/console-dir.ts) and the `admin.console` setting.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "../../src/config/config.js";
import { findConsoleDist } from "../../src/runtime/console-dir.js";

const base = { gateway: { upstream: "http://127.0.0.1:9000" }, routes: [{ method: "GET", path: "/a", permission: "read" }] };

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A monorepo-like tree: packages/portcullis/dist/runtime/console-dir.js, as the runtime's own file. */
function tree(): { root: string; from: string } {
  const root = mkdtempSync(join(tmpdir(), "console-find-"));
  dirs.push(root);
  const runtime = join(root, "packages", "portcullis", "dist", "runtime");
  mkdirSync(runtime, { recursive: true });
  const file = join(runtime, "console-dir.js");
  writeFileSync(file, "");
  return { root, from: pathToFileURL(file).href };
}

describe("admin.console", () => {
  it("defaults to true; false turns it off; anything else is refused", () => {
    expect(parseConfig(base, "/srv").admin.console).toBe(true);
    expect(parseConfig({ ...base, admin: { console: false } }, "/srv").admin.console).toBe(false);
    expect(() => parseConfig({ ...base, admin: { console: "yes" } }, "/srv")).toThrow(ConfigError);
    expect(() => parseConfig({ ...base, admin: { console: "yes" } }, "/srv")).toThrow("admin.console must be true or false");
  });
});

describe("findConsoleDist", () => {
  it("null when @portcullis/console is neither installed nor beside this package", () => {
    expect(findConsoleDist(tree().from)).toBeNull();
  });

  it("the installed package's dist (node_modules/@portcullis/console)", () => {
    const { root, from } = tree();
    const pkg = join(root, "node_modules", "@portcullis", "console");
    mkdirSync(pkg, { recursive: true });
    writeFileSync(join(pkg, "package.json"), JSON.stringify({ name: "@portcullis/console", private: true }));
    expect(findConsoleDist(from)).toBe(join(pkg, "dist"));
  });

  it("the monorepo's packages/console when the workspace link is missing", () => {
    const { root, from } = tree();
    const pkg = join(root, "packages", "console");
    mkdirSync(pkg, { recursive: true });
    writeFileSync(join(pkg, "package.json"), JSON.stringify({ name: "@portcullis/console", private: true }));
    expect(findConsoleDist(from)).toBe(join(pkg, "dist"));
  });
});
