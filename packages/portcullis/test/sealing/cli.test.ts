/**
 * `portcullis sealing rotate|status --data DIR` (docs/sealed-orders.md): the built CLI on a
 * temporary data directory. Rotating makes the next generation (the previous stays listed until
 * it is retired); status lists the live keys, current first; the private halves are never printed.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { initDataDir } from "../../src/core/data-dir.js";
import { runCli } from "../support/cli.js";

let dir: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "portcullis-sealing-cli-"));
  await initDataDir(dir, "test");
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

interface Status {
  readonly rotateMs: number;
  readonly graceMs: number;
  readonly keys: { id: string; generation: number; publicKey: string; createdAt: number; notAfter: number }[];
}

describe("portcullis sealing", () => {
  it("status before any key, rotate twice, status lists both (current first), no private key printed", async () => {
    const empty = await runCli(["sealing", "status", "--data", dir, "--json"]);
    expect(empty.code, empty.stderr).toBe(0);
    expect(JSON.parse(empty.stdout)).toEqual({ rotateMs: 86_400_000, graceMs: 600_000, keys: [] });
    const first = await runCli(["sealing", "rotate", "--data", dir, "--json"]);
    expect(first.code, first.stderr).toBe(0);
    const second = await runCli(["sealing", "rotate", "--data", dir, "--json"]);
    const status = JSON.parse(second.stdout) as Status;
    expect(status.keys.map((k) => k.generation)).toEqual([2, 1]);
    expect(Object.keys(status.keys[0] ?? {}).sort()).toEqual(["createdAt", "generation", "id", "notAfter", "publicKey"]);
    const human = await runCli(["sealing", "status", "--data", dir]);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(`${status.keys[0]?.id ?? "?"}  generation 2  current`);
    expect(human.stdout).toContain(`${status.keys[1]?.id ?? "?"}  generation 1  previous`);
  });
});
