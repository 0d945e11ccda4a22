/**
 * Two processes on one data directory cannot both pass a velocity cap only one fits under: each
 * process opens its own store on the same SQLite file and decides withdrawals as fast as it can,
 * at the same time; the decision and its ledger write are one immediate transaction, so exactly
 * what fits under the cap is allowed, whichever process asked. (Runs the built package: `npm run
 * build` first, as the CLI tests do.)
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService } from "../../src/governance/policy-service.js";
import { SqliteStore } from "../../src/storage/sqlite/store.js";

const DIST = fileURLToPath(new URL("../../dist/", import.meta.url));

/** A child process: decides `n` withdrawals of 1000 USDT by key k1 and prints how many were allowed. */
const CHILD = `
import { PolicyService } from "${DIST}governance/policy-service.js";
import { SqliteStore } from "${DIST}storage/sqlite/store.js";
import { StaticPrices } from "${DIST}operations/prices.js";
const [db, n, tag, at] = process.argv.slice(1);
const store = new SqliteStore(db);
const policy = await PolicyService.open({ store, prices: new StaticPrices({ assets: { USDT: "1" } }), pollIntervalMs: 0 });
let allowed = 0;
for (let i = 0; i < Number(n); i++) {
  const subject = { operation: { kind: "withdraw", asset: "USDT", amount: { coefficient: 1000n, scale: 0 }, address: "T1", addressName: null, network: null, tag: null }, account: "acme", keyId: "k1", client: null, at: Number(at) };
  const d = await policy.decide(subject, tag + "-" + i);
  if (d.rule === "rest") allowed++;
}
policy.close();
await store.close();
process.stdout.write(String(allowed));
`;

function child(db: string, n: number, tag: string, at: number): Promise<number> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ["--input-type=module", "-e", CHILD, db, String(n), tag, String(at)], { timeout: 60_000 }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`${err.message}\n${stderr}`));
      else resolve(Number(stdout));
    });
  });
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "portcullis-policy-procs-"));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("velocity across processes", () => {
  it("three processes deciding at once allow exactly what fits under the cap", async () => {
    const db = join(dir, "portcullis.db");
    const store = new SqliteStore(db);
    const policy = await PolicyService.open({ store, pollIntervalMs: 0 });
    await policy.apply({ rules: [{ name: "cap", match: { kind: ["withdraw"], velocity: { window: "24h", per: "key", over: "25000" } }, action: { type: "block" } }, { name: "rest", action: { type: "allow" } }] }, { actor: "cli:test", account: null, keyId: null, client: null, owner: null });
    policy.close();
    const at = Date.now();
    const allowed = await Promise.all([child(db, 20, "a", at), child(db, 20, "b", at), child(db, 20, "c", at)]);
    expect(allowed.reduce((x, y) => x + y, 0)).toBe(25);
    const again = await PolicyService.open({ store, pollIntervalMs: 0 });
    const sums = await store.spend.sums({ kind: "withdraw", keyId: "k1", account: "acme", at, windows: [{ per: "key", windowMs: 86_400_000 }] });
    expect(sums).toEqual([{ coefficient: 25000n, scale: 0 }]);
    again.close();
    await store.close();
  });
});
