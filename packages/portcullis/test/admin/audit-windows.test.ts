/**
 * The audit routes read the log in bounded windows (admin/audit.ts QUERY_STEP): a filter that
 * matches little must not make one synchronous SQLite statement scan the whole log while the
 * gateway sharing the thread waits. (Security review of issue 18: `event=nothing.x` or
 * `until=0` on a log of 10 million entries held the event loop about a second per request, and
 * an account admin with admin:audit could send them.)
 */
import { createClient, type PortcullisClient } from "@portcullis/client";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditAdmin, QUERY_STEP, readableAudit, type ReadableAudit } from "../../src/admin/audit.js";
import { AdminApi } from "../../src/admin/server.js";
import type { AuditFields } from "../../src/audit/events.js";
import type { EntryQuery } from "../../src/audit/store.js";
import { Portcullis } from "../../src/core/core.js";
import { initDataDir, openDataDir } from "../../src/core/data-dir.js";
import { valueOrThrow } from "../../src/errors/result.js";
import { parseCreateKeyInput } from "../../src/keys/input.js";
import { silentLogger } from "../../src/log/logger.js";
import { TEST_ROUTES } from "../support/harness.js";
import { SHARED_POSTGRES_URL, dropSchema, postgresReachable, uniqueSchema } from "../support/postgres.js";
import { IN_CI, loudSkip } from "../support/redis.js";

const pgUp = await postgresReachable(SHARED_POSTGRES_URL);
const runPg = pgUp || IN_CI;
if (!runPg) loudSkip("the audit routes' windows on PostgreSQL", `no PostgreSQL answers at ${SHARED_POSTGRES_URL}`);

const KA = `pck_test_v1_${"a".repeat(28)}`;
const KB = `pck_test_v1_${"b".repeat(28)}`;
const N = 1000;
const STEP = 100;
const T0 = Date.now() - 3_600_000;

/** Entry i: acct-a's KA, except every 250th, acct-b's KB with event key.revoke. */
function entry(i: number): AuditFields {
  const rare = i % 250 === 0;
  return { event: rare ? "key.revoke" : "request.allow", at: T0 + i, actor: "x", key: rare ? KB : KA, account: rare ? "acct-b" : "acct-a", surface: "gateway", requestId: `r-${i}` };
}

interface Page {
  entries: { seq: number; event: string; account?: string }[];
  next: number | null;
}

describe.each([
  ["sqlite", true],
  ["postgres", runPg],
] as const)("audit reads in windows (%s)", (backend, enabled) => {
  let dir: string;
  let schema: string;
  let core: Portcullis;
  let api: AdminApi;
  let operator: PortcullisClient;
  let accountAdmin: PortcullisClient;
  /** Every query the routes made: how many seqs each one could look at. */
  const spans: number[] = [];

  beforeAll(async () => {
    if (!enabled) return;
    dir = mkdtempSync(join(tmpdir(), "portcullis-audit-windows-"));
    schema = uniqueSchema("audwin");
    await initDataDir(dir, "test", backend === "postgres" ? { backend: "postgres", url: SHARED_POSTGRES_URL, schema, poolSize: 2 } : undefined);
    const data = await openDataDir(dir, { pollIntervalMs: 50 });
    core = new Portcullis({ routes: TEST_ROUTES, now: Date.now, store: data.store, envelope: data.envelope, environment: "test", audit: { requests: "none" } });
    const readable = readableAudit(data.store.audit);
    if (readable === null) throw new Error("no reading side");
    for (let i = 1; i <= N; i += 500) await readable.append(Array.from({ length: 500 }, (_, j) => entry(i + j)));
    // The routes' store, with every query's window recorded.
    const spied = Object.create(readable) as ReadableAudit;
    Object.defineProperty(spied, "query", {
      value: (q: EntryQuery) => {
        spans.push((q.throughSeq ?? Number.POSITIVE_INFINITY) - (q.afterSeq ?? 0));
        return readable.query(q);
      },
    });
    const audit = new AuditAdmin({ log: core.audit, store: spied, signer: data.signingKeys, queryStep: STEP });
    api = new AdminApi({ core, logger: silentLogger(), audit });
    const base = `http://127.0.0.1:${String((await api.listen(0, "127.0.0.1")).port)}`;
    const create = async (input: Record<string, unknown>): Promise<PortcullisClient> => {
      const created = await core.keys.create(valueOrThrow(parseCreateKeyInput(input, Date.now())), "test");
      return createClient({ baseUrl: base, keyId: created.key.id, secret: created.secret ?? "" });
    };
    operator = await create({ account: "ops", scopes: ["admin:*"], operator: true });
    accountAdmin = await create({ account: "acct-b", scopes: ["admin:audit", "read"] });
  }, 60_000);

  afterAll(async () => {
    if (!enabled) return;
    await api.close(500);
    await core.close();
    rmSync(dir, { recursive: true, force: true });
    if (backend === "postgres") await dropSchema(SHARED_POSTGRES_URL, schema);
  });

  it("the default window is a bounded number of entries", () => {
    expect(QUERY_STEP).toBeGreaterThan(0);
    expect(QUERY_STEP).toBeLessThanOrEqual(100_000);
  });

  it.runIf(enabled)("a filter matching nothing reads the log window by window, never whole", async () => {
    spans.length = 0;
    const page = await operator.json<Page>("GET", "/portcullis/v1/audit/entries?event=nothing.here&limit=1000");
    expect(page).toEqual({ entries: [], next: null });
    expect(spans.length).toBeGreaterThanOrEqual(N / STEP);
    expect(Math.max(...spans)).toBeLessThanOrEqual(STEP);
    spans.length = 0;
    expect((await operator.json<Page>("GET", "/portcullis/v1/audit/entries?until=0")).entries).toEqual([]);
    expect(Math.max(...spans)).toBeLessThanOrEqual(STEP);
  });

  it.runIf(enabled)("rare matches across windows are all found, in order, and paged", async () => {
    spans.length = 0;
    const all = await operator.json<Page>("GET", "/portcullis/v1/audit/entries?event=key.revoke&limit=1000");
    expect(all.entries.map((e) => e.seq)).toEqual([250, 500, 750, 1000]);
    expect(Math.max(...spans)).toBeLessThanOrEqual(STEP);
    const first = await operator.json<Page>("GET", "/portcullis/v1/audit/entries?event=key.revoke&limit=2");
    expect(first.entries.map((e) => e.seq)).toEqual([250, 500]);
    expect(first.next).toBe(500);
    const second = await operator.json<Page>("GET", "/portcullis/v1/audit/entries?event=key.revoke&limit=2&after=500");
    expect(second.entries.map((e) => e.seq)).toEqual([750, 1000]);
    // An unfiltered page is one window's read.
    expect((await operator.json<Page>("GET", "/portcullis/v1/audit/entries?limit=10")).entries.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it.runIf(enabled)("an account admin's reads are windowed and stay in its account", async () => {
    spans.length = 0;
    const own = await accountAdmin.json<Page>("GET", "/portcullis/v1/audit/entries?limit=1000");
    expect(own.entries.map((e) => e.seq).slice(0, 4)).toEqual([250, 500, 750, 1000]);
    expect(own.entries.every((e) => e.account === "acct-b")).toBe(true);
    expect(Math.max(...spans)).toBeLessThanOrEqual(STEP);
  });

  it.runIf(enabled)("the export reads in windows too, and sends every match", async () => {
    spans.length = 0;
    const text = await (await operator.request("GET", "/portcullis/v1/audit/export?event=key.revoke")).text();
    const seqs = text
      .trim()
      .split("\n")
      .map((l) => (JSON.parse(l) as { seq: number }).seq);
    expect(seqs).toEqual([250, 500, 750, 1000]);
    expect(Math.max(...spans)).toBeLessThanOrEqual(STEP);
  });
});
