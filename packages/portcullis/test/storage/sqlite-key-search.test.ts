/**
 * SQLite's key search across accounts (KeyListFilter.search without an account) walks the keys in
 * steps of 4,096, yielding to the event loop between steps (storage/sqlite/store.ts walk).
 * With 10,000 keys a search crosses steps: every answer, every page of it, must be what a plain
 * filter of all the keys gives, and the event loop must get turns while a search that matches
 * little looks at every key. (The search's meaning on both stores is durable-contract.test.ts's.)
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KeyListFilter } from "../../src/storage/types.js";
import { type FilledStore, type KeyShape, filledSqliteStore } from "./sqlite-keys-fixture.js";

const N = 10_000;
let keys: FilledStore;

/** Key i: ids of mixed case (their order is not i's), accounts of 97, a rare "needle" label. */
function shape(i: number): KeyShape {
  const tail = `${i % 2 === 0 ? "K" : "k"}${String((i * 7919) % N).padStart(27, "0")}`;
  return {
    id: `pck_test_v1_${tail}`,
    account: `Acct-${i % 97}`,
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

describe("SQLite key search across accounts, in steps", () => {
  it.each([
    ["a rare label part (one key in a thousand: every step looked at)", { search: "needle" }],
    ["a label part most keys hold", { search: "BOT 1" }],
    ["an account prefix", { search: "acct-9" }],
    ["an id prefix, the other case", { search: "PCK_TEST_V1_k00000000000000000000001" }],
    ["nothing", { search: "no such key" }],
    ["with status and operator filters", { search: "acct-1", status: "suspended" as const, operator: false }],
    ["after a cursor in the last step", { search: "needle", after: "pck_test_v1_k" }],
  ])("%s: the same keys as a filter of all of them", async (_name, filter) => {
    expect(await ids({ ...filter, limit: 1000 })).toEqual(expected(filter, 1000));
    expect(await ids({ ...filter, limit: 3 })).toEqual(expected(filter, 3));
  });

  it("pages through every match with after and limit, across steps, missing none and repeating none", async () => {
    const want = expected({ search: "needle" }, N);
    expect(want.length).toBe(10);
    const got: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await ids({ search: "needle", limit: 3, ...(after === undefined ? {} : { after }) });
      got.push(...page);
      if (page.length < 3) break;
      after = page[page.length - 1];
    }
    expect(got).toEqual(want);
  });

  it("gives the event loop turns while a search that matches nothing looks at every key", async () => {
    const { turns, found } = await keys.turnsDuring({ search: "no such key", limit: 50 });
    expect(found).toEqual([]);
    // 10,000 keys are three steps of 4,096: the loop ran between them.
    expect(turns).toBeGreaterThanOrEqual(2);
  });
});
