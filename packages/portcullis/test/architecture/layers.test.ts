/**
 * Dependencies point down (docs/architecture.md, "Layers"). Every file under src/ is parsed with
 * the TypeScript compiler, and every module it names — `import`, `import type`, `export … from`,
 * `import()` and `import("…").T` alike — is an edge of the import graph. The test fails, with a
 * list, on:
 *
 * - an import cycle between files (type imports included);
 * - an import from a layer to a higher one, or between two units of the same layer;
 * - anything below the gateway importing a surface or an entry point (SURFACES);
 * - a folder or root file that is not in the table, or an import that does not resolve.
 */
import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";

/**
 * The layers, bottom to top. A unit is a folder of src/ (gateway/websocket belongs to gateway) or a
 * file at its root. A file may import its own unit and the units of lower layers; the units of one
 * layer do not import each other.
 */
const LAYERS: readonly (readonly string[])[] = [
  /* 0 */ ["errors"],
  /* 1 */ ["log", "net"],
  /* 2 */ ["contract"],
  /* 3 */ ["signatures", "authz", "limits", "replay", "audit", "operations"],
  /* 4 */ ["storage", "policy", "behaviour"],
  /* 5 */ ["custody"],
  /* 6 */ ["keys", "dialects", "governance"],
  /* 7 */ ["sessions", "holds", "anomaly", "exposure", "wallets"],
  /* 8 */ ["pipeline"],
  /* 9 */ ["core"],
  /* 10 */ ["gateway", "metrics"],
  /* 11 */ ["admin", "embedded"],
  /* 12 */ ["config"],
  /* 13 */ ["runtime"],
  /* 14 */ ["cli", "index.ts", "upstream.ts"],
];

/** The surfaces and entry points: nothing below the gateway imports them. */
const SURFACES: readonly string[] = ["gateway", "admin", "cli", "runtime", "index.ts"];

/**
 * Known exceptions, each an edge "from -> to" (paths under src/); none today. An entry that matches
 * no import fails the test, so the list can only shrink.
 */
const ALLOWED: readonly string[] = [];

type ImportGraph = ReadonlyMap<string, readonly string[]>;

/** The unit of a path under src/: its first folder, or the file itself at the root. */
function unitOf(path: string): string {
  const slash = path.indexOf("/");
  return slash === -1 ? path : path.slice(0, slash);
}

/** Every problem in the graph, one readable line each (empty when the layering holds). */
function layerViolations(graph: ImportGraph, layers: readonly (readonly string[])[], surfaces: readonly string[], allowed: readonly string[]): string[] {
  const problems: string[] = [];
  const rank = new Map<string, number>();
  layers.forEach((units, i) => {
    for (const u of units) rank.set(u, i);
  });
  const used = new Set<string>();
  const unranked = new Set<string>();
  for (const from of graph.keys()) if (!rank.has(unitOf(from))) unranked.add(unitOf(from));
  for (const u of [...unranked].sort()) problems.push(`unranked: ${u} is in no layer of the table`);

  const gatewayRank = rank.get("gateway") ?? Infinity;
  for (const [from, tos] of graph) {
    for (const to of tos) {
      if (!graph.has(to)) {
        problems.push(`unresolved: ${from} -> ${to}`);
        continue;
      }
      const a = unitOf(from);
      const b = unitOf(to);
      if (a === b) continue;
      const ra = rank.get(a);
      const rb = rank.get(b);
      if (ra === undefined || rb === undefined) continue;
      let problem: string | null = null;
      if (ra < gatewayRank && surfaces.includes(b)) problem = `surface: ${from} -> ${to} (below the gateway, ${b} is a surface or entry point)`;
      else if (ra < rb) problem = `upward: ${from} -> ${to} (${a}, layer ${ra}, imports ${b}, layer ${rb})`;
      else if (ra === rb) problem = `sideways: ${from} -> ${to} (${a} and ${b} share layer ${ra})`;
      if (problem === null) continue;
      const edge = `${from} -> ${to}`;
      if (allowed.includes(edge)) used.add(edge);
      else problems.push(problem);
    }
  }
  for (const edge of allowed) if (!used.has(edge)) problems.push(`stale allowlist entry: ${edge} (no such import breaks a rule any more: remove it)`);
  for (const cycle of importCycles(graph)) problems.push(`cycle: ${cycle.join(" -> ")}`);
  return problems;
}

/** One cycle (first file repeated at the end) per strongly connected component of files. */
function importCycles(graph: ImportGraph): string[][] {
  const next = (v: string): readonly string[] => (graph.get(v) ?? []).filter((w) => graph.has(w));
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, counter);
    low.set(v, counter);
    counter++;
    stack.push(v);
    onStack.add(v);
    for (const w of next(v)) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) ?? 0, low.get(w) ?? 0));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v) ?? 0, index.get(w) ?? 0));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string | undefined;
      do {
        w = stack.pop();
        if (w === undefined) break;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || next(v).includes(v)) components.push(component);
    }
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);

  // A concrete cycle through each component: breadth-first from its first file back to itself.
  return components.map((component) => {
    const members = new Set(component);
    const start = [...component].sort()[0] ?? "";
    const parent = new Map<string, string>();
    const queue = [start];
    while (queue.length > 0) {
      const v = queue.shift() ?? "";
      for (const w of next(v)) {
        if (!members.has(w)) continue;
        if (w === start) {
          const path = [start];
          for (let u: string | undefined = v; u !== undefined && u !== start; u = parent.get(u)) path.splice(1, 0, u);
          return [...path, start];
        }
        if (!parent.has(w)) {
          parent.set(w, v);
          queue.push(w);
        }
      }
    }
    return [...component, component[0] ?? ""];
  });
}

/** Every module a file names, as written. */
function moduleSpecifiers(file: string, text: string): string[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier !== undefined && ts.isStringLiteral(node.moduleSpecifier)) {
      found.push(node.moduleSpecifier.text);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference) && ts.isStringLiteral(node.moduleReference.expression)) {
      found.push(node.moduleReference.expression.text);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const arg = node.arguments[0];
      if (arg !== undefined && ts.isStringLiteralLike(arg)) found.push(arg.text);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      found.push(node.argument.literal.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** The import graph of src/: files relative to it, edges to the src/ files they import. */
function sourceGraph(srcDir: string): Map<string, string[]> {
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith(".ts") && !name.endsWith(".d.ts")) files.push(path);
    }
  };
  walk(srcDir);
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const edges: string[] = [];
    for (const spec of moduleSpecifiers(file, readFileSync(file, "utf8"))) {
      if (!spec.startsWith(".")) continue;
      const target = resolve(dirname(file), spec).replace(/\.js$/, ".ts");
      edges.push(relative(srcDir, target));
    }
    graph.set(relative(srcDir, file), [...new Set(edges)]);
  }
  return graph;
}

const SRC = fileURLToPath(new URL("../../src/", import.meta.url));

describe("layers: dependencies point down", () => {
  it("src/ has no import cycle, no upward or sideways import, and nothing below the gateway imports a surface", () => {
    const graph = sourceGraph(SRC);
    expect(graph.size).toBeGreaterThan(100);
    expect(graph.get("core/core.ts")).toContain("pipeline/pipeline.ts");
    expect(layerViolations(graph, LAYERS, SURFACES, ALLOWED)).toEqual([]);
  });

  it("every unit of the table exists in src/", () => {
    const units = new Set([...sourceGraph(SRC).keys()].map(unitOf));
    expect(LAYERS.flat().filter((u) => !units.has(u))).toEqual([]);
    expect(SURFACES.filter((u) => !units.has(u))).toEqual([]);
  });

  it("docs/architecture.md's table is this one", () => {
    const doc = readFileSync(fileURLToPath(new URL("../../../../docs/architecture.md", import.meta.url)), "utf8");
    const rows = [...doc.matchAll(/^\| (\d+) \| ([^|]+) \|/gm)].map((m) => [...(m[2] ?? "").matchAll(/`([^`]+)`/g)].map((u) => (u[1] ?? "").replace(/\/$/, "")).filter((u) => !u.includes("/")));
    expect(rows).toEqual(LAYERS);
  });

  it("the parser sees type imports, re-exports, dynamic imports and import types", () => {
    const text = [
      'import type { A } from "./a.js";',
      'import { type B } from "./b.js";',
      'export { C } from "./c.js";',
      'export type { D } from "./d.js";',
      'export * from "./e.js";',
      'const f = await import("./f.js");',
      'let g: import("./g.js").G;',
      'import "./h.js";',
      'import { i } from "node:fs";',
    ].join("\n");
    expect(moduleSpecifiers("x.ts", text)).toEqual(["./a.js", "./b.js", "./c.js", "./d.js", "./e.js", "./f.js", "./g.js", "./h.js", "node:fs"]);
  });

  it("the checker reports a cycle, an upward, a sideways and a surface import, an unranked unit and a stale exception", () => {
    const graph: ImportGraph = new Map([
      ["low/a.ts", ["high/b.ts"]], // upward, and half of a cycle
      ["high/b.ts", ["low/a.ts", "peer/c.ts", "low/d.ts"]], // sideways to peer/
      ["peer/c.ts", []],
      ["low/d.ts", ["gateway/e.ts"]], // a surface, from below the gateway
      ["gateway/e.ts", ["stray/f.ts"]],
      ["stray/f.ts", []],
    ]);
    const layers = [["low"], ["high", "peer"], ["gateway"]];
    expect(layerViolations(graph, layers, ["gateway"], ["low/a.ts -> peer/c.ts"])).toEqual([
      "unranked: stray is in no layer of the table",
      "upward: low/a.ts -> high/b.ts (low, layer 0, imports high, layer 1)",
      "sideways: high/b.ts -> peer/c.ts (high and peer share layer 1)",
      "surface: low/d.ts -> gateway/e.ts (below the gateway, gateway is a surface or entry point)",
      "stale allowlist entry: low/a.ts -> peer/c.ts (no such import breaks a rule any more: remove it)",
      "cycle: high/b.ts -> low/a.ts -> high/b.ts",
    ]);
    // An allowed edge is not reported; a cycle is reported whatever the allowlist says.
    expect(layerViolations(graph, [["stray"], ["low"], ["high", "peer"], ["gateway"]], ["gateway"], ["low/a.ts -> high/b.ts", "high/b.ts -> peer/c.ts", "low/d.ts -> gateway/e.ts"])).toEqual([
      "cycle: high/b.ts -> low/a.ts -> high/b.ts",
    ]);
  });

  it("the checker finds a longer cycle and a file importing itself", () => {
    const graph: ImportGraph = new Map([
      ["x/1.ts", ["x/2.ts"]],
      ["x/2.ts", ["x/3.ts"]],
      ["x/3.ts", ["x/1.ts"]],
      ["y/self.ts", ["y/self.ts"]],
    ]);
    expect(importCycles(graph)).toEqual([["x/1.ts", "x/2.ts", "x/3.ts", "x/1.ts"], ["y/self.ts", "y/self.ts"]]);
    expect(importCycles(new Map([["x/1.ts", ["x/2.ts"]], ["x/2.ts", []]]))).toEqual([]);
  });
});
