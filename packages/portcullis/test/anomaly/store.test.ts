/** The SQLite anomaly action store (migration 14): filters, newest first, paging, the atomic state change, due revokes. */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { newActionId } from "../../src/anomaly/responder.js";
import type { AnomalyAction, AnomalyActionRecord } from "../../src/contract/behaviour.js";
import { openDataDir, type OpenDataDir } from "../../src/core/data-dir.js";
import { type AnomalyFixture, anomalyFixture, score } from "./support.js";

let f: AnomalyFixture;
let other: OpenDataDir | null = null;

beforeEach(async () => {
  f = await anomalyFixture();
});

afterEach(async () => {
  await other?.close();
  other = null;
  await f.cleanup();
});

function row(keyId: string, account: string, action: AnomalyAction, at: number, dueAt: number | null = null): AnomalyActionRecord {
  return { id: newActionId(), keyId, account, action, score: 80, explanation: score(keyId, 80, at, account), at, state: "active", dueAt, undoneAt: null, undoneBy: null };
}

describe("SqliteAnomalies", () => {
  it("inserts and reads back exactly; an id stored twice is refused", async () => {
    const r = row("k1", "a1", "throttle", 1000);
    await f.data.store.anomalies.insert(r);
    expect(await f.data.store.anomalies.get(r.id)).toEqual(r);
    expect(await f.data.store.anomalies.get("an_nope")).toBeUndefined();
    await expect(f.data.store.anomalies.insert(r)).rejects.toThrow(/UNIQUE/);
  });

  it("lists newest first with filters, paged by the last id seen", async () => {
    const store = f.data.store.anomalies;
    const rows = [row("k1", "a1", "alert", 1), row("k2", "a1", "throttle", 2), row("k1", "a1", "suspend", 3), row("k3", "a2", "alert", 4)];
    for (const r of rows) await store.insert(r);
    const ids = (list: AnomalyActionRecord[]): string[] => list.map((r) => r.id);
    expect(ids(await store.list())).toEqual([rows[3], rows[2], rows[1], rows[0]].map((r) => r?.id));
    expect(ids(await store.list({ keyId: "k1" }))).toEqual([rows[2]?.id, rows[0]?.id]);
    expect(ids(await store.list({ account: "a2" }))).toEqual([rows[3]?.id]);
    expect(ids(await store.list({ action: "alert" }))).toEqual([rows[3]?.id, rows[0]?.id]);
    expect(ids(await store.list({ account: "a1", action: "alert" }))).toEqual([rows[0]?.id]);
    const first = await store.list({ limit: 2 });
    expect(ids(first)).toEqual([rows[3]?.id, rows[2]?.id]);
    expect(ids(await store.list({ limit: 2, before: first[1]?.id ?? "" }))).toEqual([rows[1]?.id, rows[0]?.id]);
    expect(await store.list({ before: "an_unknown" })).toEqual([]);
    await store.transition(rows[1]?.id ?? "", "active", "undone", 9, "cli:x");
    expect(ids(await store.list({ state: "undone" }))).toEqual([rows[1]?.id]);
  });

  it("a state change is atomic across connections: of two undoing at once, one wins", async () => {
    other = await openDataDir(f.dir);
    const r = row("k1", "a1", "suspend", 5);
    await f.data.store.anomalies.insert(r);
    const [a, b] = await Promise.all([f.data.store.anomalies.transition(r.id, "active", "undone", 10, "cli:a"), other.store.anomalies.transition(r.id, "active", "undone", 11, "cli:b")]);
    expect([a, b].filter((x) => x !== undefined)).toHaveLength(1);
    expect(a).toMatchObject({ state: "undone", undoneAt: 10, undoneBy: "cli:a" });
    expect(await f.data.store.anomalies.transition(r.id, "active", "done", 12, null)).toBeUndefined();
    // done leaves undoneAt/undoneBy alone.
    const rev = row("k2", "a1", "revoke", 5, 100);
    await f.data.store.anomalies.insert(rev);
    expect(await f.data.store.anomalies.transition(rev.id, "active", "done", 100, null)).toMatchObject({ state: "done", undoneAt: null, undoneBy: null });
  });

  it("due: active revokes whose grace passed, oldest due first", async () => {
    const store = f.data.store.anomalies;
    const late = row("k1", "a1", "revoke", 1, 300);
    const early = row("k2", "a1", "revoke", 2, 200);
    const future = row("k3", "a1", "revoke", 3, 900);
    const undone = row("k4", "a1", "revoke", 4, 100);
    const suspend = row("k5", "a1", "suspend", 5);
    for (const r of [late, early, future, undone, suspend]) await store.insert(r);
    await store.transition(undone.id, "active", "undone", 6, "cli:x");
    expect((await store.due(300, 10)).map((r) => r.id)).toEqual([early.id, late.id]);
    expect((await store.due(300, 1)).map((r) => r.id)).toEqual([early.id]);
    expect(await store.due(199, 10)).toEqual([]);
  });
});
