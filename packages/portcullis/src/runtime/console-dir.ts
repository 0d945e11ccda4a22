import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Where the operator console's built files are (`@portcullis/console`'s `dist`), for the admin
 * listener (admin/console.ts, docs/console-backend.md): the package as Node resolves it from here
 * (an installed package, or the workspace's link), else the monorepo's `packages/console` beside
 * this package (a checkout whose `npm install` predates the console package). Null when neither
 * exists; whether the directory is built is the admin API's to find out (it says so in one line).
 */
export function findConsoleDist(from: string = import.meta.url): string | null {
  try {
    const pkg = createRequire(from).resolve("@portcullis/console/package.json");
    return join(dirname(pkg), "dist");
  } catch {
    // Not resolvable: try the monorepo layout below.
  }
  // This file is packages/portcullis/{src,dist}/runtime/console-dir.{ts,js}.
  const sibling = resolve(dirname(fileURLToPath(from)), "..", "..", "..", "console");
  return existsSync(join(sibling, "package.json")) ? join(sibling, "dist") : null;
}
