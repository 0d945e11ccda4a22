/**
 * The benchmarks (bench/*.js) are plain JavaScript over the built package, so no typecheck sees
 * their imports: this test does. Every relative import of a benchmark names a module that exists
 * (a `dist/` one by its source file), so a moved module cannot break `npm run bench` unseen.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../../..");
const BENCH = join(ROOT, "bench");

/** The source file a specifier names: `packages/x/dist/a/b.js` is `packages/x/src/a/b.ts`. */
function sourceOf(from: string, specifier: string): string {
  const target = resolve(dirname(from), specifier);
  const dist = target.match(/^(.*\/packages\/[^/]+)\/dist\/(.*)\.js$/);
  return dist === null ? target : `${dist[1] ?? ""}/src/${dist[2] ?? ""}.ts`;
}

describe("the benchmarks' imports", () => {
  it("every relative import of bench/*.js names a module that exists", () => {
    const missing: string[] = [];
    let seen = 0;
    for (const name of readdirSync(BENCH).filter((n) => n.endsWith(".js"))) {
      const file = join(BENCH, name);
      for (const m of readFileSync(file, "utf8").matchAll(/\bfrom\s+"(\.[^"]+)"/g)) {
        seen++;
        const source = sourceOf(file, m[1] ?? "");
        if (!existsSync(source)) missing.push(`bench/${name}: ${m[1] ?? ""}`);
      }
    }
    expect(seen).toBeGreaterThan(20);
    expect(missing).toEqual([]);
  });
});
