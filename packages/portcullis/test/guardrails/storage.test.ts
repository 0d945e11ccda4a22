/**
 * Migration 10 (keys.guardrails) on a database an earlier Portcullis left at migration 9: its keys
 * come out with no guardrails, and guardrails written since round-trip through the store (insert,
 * patch, clear) as the JSON-safe value they are.
 */
import { rmSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { SqliteStore } from "../../src/storage/sqlite/store.js";
import { oldDatabase } from "../support/old-database.js";

const CHANGE = { action: "update" as const, actor: "test", at: 2, detail: {} };

describe("migration 10: key guardrails", () => {
  it("keys of an older database have none; guardrails set since are stored, patched and cleared", async () => {
    const { dir, path, db: old } = await oldDatabase("portcullis-guardrails-old-", 9);
    try {
      old.prepare(
        `INSERT INTO keys (id, environment, account, label, algorithm, public_key, scopes, ip_allowlist, dialects, status, created_at, updated_at)
         VALUES ('pck_test_v1_old', 'test', 'acct-old', '', 'ed25519', 'PEM', '["trade"]', '[]', '["native"]', 'active', 1, 1)`,
      ).run();
      old.close();
      const store = new SqliteStore(path);
      try {
        expect((await store.keys.get("pck_test_v1_old"))?.guardrails).toBeNull();
        const guardrails = { symbols: ["BTCUSDT"], maxQuantity: "2.5", maxNotional: null, priceBandPct: "0.5", withdrawAssets: null, transferAssets: ["USDT"], maxOpenNotional: null };
        const set = await store.keys.update("pck_test_v1_old", ["active"], { guardrails }, CHANGE);
        expect(set.ok && set.row.guardrails).toEqual(guardrails);
        expect((await store.keys.get("pck_test_v1_old"))?.guardrails).toEqual(guardrails);
        const cleared = await store.keys.update("pck_test_v1_old", ["active"], { guardrails: null }, CHANGE);
        expect(cleared.ok && cleared.row.guardrails).toBeNull();
      } finally {
        await store.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
