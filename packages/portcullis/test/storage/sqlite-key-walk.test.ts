/**
 * SQLite's key list walks the keys in steps whenever a filter no index answers is given (a search,
 * a status, the operator flag), within one account as across accounts (storage/sqlite/store.ts
 * walk). Security review of issue 18: a search within one large account (every account admin's
 * list is one), or a status nobody has across the table, was one synchronous statement reading
 * every key while the gateway sharing the thread waited. Here one account holds 10,000 keys.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KeyListFilter } from "../../src/storage/types.js";
import { type FilledStore, type KeyShape, filledSqliteStore } from "./sqlite-keys-fixture.js";

const N = 10_000;
let keys: FilledStore;

/** Key i: nine in ten in the account "big", a rare "needle" label, every seventh suspended. */
function shape(i: number): KeyShape {
  return {
    id: `pck_test_v1_k${String((i * 7919) % N).padStart(27, "0")}`,
    account: i % 10 === 0 ? `small-${i % 3}` : "big",
    label: i % 1000 === 3 ? `Needle ${i}` : `bot ${i}`,
    status: i % 7 === 0 ? "suspended" : "active",
    operator: i % 11 === 0,
  };
}

beforeAll(async () => {
  keys = await filledSqliteStore(N, shape);
});
afterAll(async () => {
  await keys.close();
});

const ids = (filter: KeyListFilter): Promise<string[]> => keys.ids(filter);
const expected = (filter: Omit<KeyListFilter, "limit">, limit: number): string[] => keys.expected(filter, limit);

const turnsDuring = (filter: KeyListFilter): Promise<{ turns: number; found: string[] }> => keys.turnsDuring(filter);

describe("SQLite key list in steps: within one account, and for unindexed filters", () => {
  it.each([
    ["a search within the big account", { account: "big", search: "needle" }],
    ["a search within the big account, an account admin's (operator: false)", { account: "big", operator: false, search: "needle" }],
    ["a status within the big account", { account: "big", status: "suspended" as const }],
    ["an account admin's plain list", { account: "big", operator: false }],
    ["a status across accounts", { status: "suspended" as const }],
    ["operator keys across accounts", { operator: true }],
    ["a small account's search", { account: "small-1", search: "bot" }],
    ["after a cursor, within the account", { account: "big", status: "active" as const, after: "pck_test_v1_k00000000000000000000005000" }],
  ])("%s: the same keys as a filter of all of them", async (_name, filter) => {
    expect(await ids({ ...filter, limit: 1000 })).toEqual(expected(filter, 1000));
    expect(await ids({ ...filter, limit: 3 })).toEqual(expected(filter, 3));
  });

  it.each([
    ["a search within one account that matches nothing", { account: "big", search: "no such key" }],
    ["an account admin's search that matches nothing", { account: "big", operator: false, search: "no such key" }],
    ["a status nobody has, across accounts", { status: "revoked" as const }],
    ["a status nobody has, within one account", { account: "big", status: "revoked" as const }],
  ])("gives the event loop turns: %s", async (_name, filter) => {
    const { turns, found } = await turnsDuring({ ...filter, limit: 50 });
    expect(found).toEqual([]);
    // 9,000 keys of the account (10,000 of the table) are at least three steps of 4,096.
    expect(turns).toBeGreaterThanOrEqual(2);
  });
});
