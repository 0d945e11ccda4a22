import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request } from "undici";
import { expect } from "vitest";
import type { RouteSpec } from "../../src/authz/routes.js";
import { runCli } from "../support/cli.js";

export const ROUTES: RouteSpec[] = [
  { method: "GET", path: "/api/v3/account", permission: "read", weight: 1 },
  { method: "POST", path: "/api/v3/order", permission: "trade", weight: 1 },
];

/** A fresh, initialised data directory in a temporary folder; `cleanup` removes it. */
export async function dataDir(tag: string): Promise<{ dir: string; data: string; cleanup(): void }> {
  const dir = mkdtempSync(join(tmpdir(), `portcullis-ops-${tag}-`));
  const data = join(dir, "data");
  const init = await runCli(["init", "--data", data, "--environment", "test", "--json"]);
  expect(init.code).toBe(0);
  return {
    dir,
    data,
    cleanup: () => {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The starter config `init` wrote. */
export function starterConfig(data: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(data, "portcullis.json"), "utf8")) as Record<string, unknown>;
}

export interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
  readonly json: Record<string, unknown> | null;
}

export async function call(url: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
  const res = await request(url, { method: (init.method ?? "GET") as "GET", headers: init.headers ?? {}, ...(init.body === undefined ? {} : { body: init.body }) });
  const text = await res.body.text();
  let json: Record<string, unknown> | null;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = null;
  }
  return { status: res.statusCode, headers: res.headers, text, json };
}

/**
 * The Prometheus text exposition parsed into samples: `value(name, labels)` is the sample whose
 * labels include `labels` exactly (undefined when there is none).
 */
export function parseExposition(text: string): { samples: { name: string; labels: Record<string, string>; value: number }[]; value(name: string, labels?: Record<string, string>): number | undefined; types: Map<string, string> } {
  const samples: { name: string; labels: Record<string, string>; value: number }[] = [];
  const types = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    if (line.startsWith("# TYPE ")) {
      const [, , name, type] = line.split(" ");
      types.set(name ?? "", type ?? "");
      continue;
    }
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line);
    if (m === null) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1] ?? ""] = pair[2] ?? "";
    const raw = m[3] ?? "";
    samples.push({ name: m[1] ?? "", labels, value: raw === "+Inf" ? Number.POSITIVE_INFINITY : raw === "-Inf" ? Number.NEGATIVE_INFINITY : Number(raw) });
  }
  return {
    samples,
    types,
    value(name, labels = {}) {
      const found = samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v) && Object.keys(s.labels).length === Object.keys(labels).length);
      return found?.value;
    },
  };
}

/** Polls `probe` (real time: another process's state) until `done`, for at most `ms`. */
export async function until<T>(probe: () => Promise<T>, done: (t: T) => boolean, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last = await probe();
  while (!done(last) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    last = await probe();
  }
  return last;
}
