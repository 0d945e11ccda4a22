/**
 * The audit log over the admin API (admin/audit.ts; docs/audit.md, "Over the admin API"), on both
 * stores: a real data directory (SQLite file, or a private schema on the shared PostgreSQL), a real
 * AdminApi on a socket, requests signed by the client SDK. Entries are what `audit query --json`
 * prints, the JSON Lines export is byte for byte what `audit export` writes, the CSV parses back and
 * neutralises formulas, verification finds what `audit verify` finds without holding the event
 * loop, and an account admin reads only its own account. Without a reachable PostgreSQL its half is
 * skipped loudly, except under CI=true, where it fails.
 */
import { PortcullisApiError, createClient, createSigner, type PortcullisClient } from "@portcullis/client";
import Database from "better-sqlite3";
import { request as httpRequest } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditAdmin, readableAudit, type ReadableAudit } from "../../src/admin/audit.js";
import { AdminApi } from "../../src/admin/server.js";
import type { AuditFields } from "../../src/audit/events.js";
import { exportedEntry } from "../../src/audit/reading.js";
import { Portcullis } from "../../src/core/core.js";
import { initDataDir, openDataDir } from "../../src/core/data-dir.js";
import { parseCreateKeyInput } from "../../src/keys/input.js";
import { valueOrThrow } from "../../src/errors/result.js";
import { silentLogger } from "../../src/log/logger.js";
import { runCli } from "../support/cli.js";
import { TEST_ROUTES } from "../support/harness.js";
import { SHARED_POSTGRES_URL, adminQuery, dropSchema, postgresReachable, uniqueSchema } from "../support/postgres.js";
import { IN_CI, loudSkip } from "../support/redis.js";

const pgUp = await postgresReachable(SHARED_POSTGRES_URL);
const runPg = pgUp || IN_CI;
if (!runPg) loudSkip("the admin API's audit routes on PostgreSQL", `no PostgreSQL answers at ${SHARED_POSTGRES_URL}`);

const BACKENDS = [
  ["sqlite", true],
  ["postgres", runPg],
] as const;

/** The entries' times: an hour ago onwards, one a second, so `since=30m` cuts the list in two. */
const T0 = Date.now() - 3_600_000;
const KA = `pck_test_v1_${"a".repeat(28)}`;
const KB = `pck_test_v1_${"b".repeat(28)}`;

/** Decision i: acct-a (KA) for even i, acct-b (KB) for odd; every third a refusal. */
function decision(i: number): AuditFields {
  const key = i % 2 === 0 ? KA : KB;
  return {
    event: i % 3 === 0 ? "request.deny" : "request.allow",
    at: T0 + i * 1000,
    actor: i % 3 === 0 ? "anonymous" : `key:${key}`,
    key,
    account: i % 2 === 0 ? "acct-a" : "acct-b",
    client: `203.0.113.${i % 250}`,
    surface: "gateway",
    requestId: `req-${i}`,
    method: "GET",
    path: "/api/v3/account",
    route: "GET /api/v3/account",
    scheme: "native",
    ...(i % 3 === 0 ? { code: "SIGNATURE_INVALID", status: 401 } : {}),
  };
}

/** An entry whose texts a spreadsheet would run (CSV injection), and that CSV must quote. */
const HOSTILE: AuditFields = {
  event: "request.deny",
  at: T0 + 200_000,
  actor: "=HYPERLINK(\"http://evil.example\",\"x\")",
  key: KA,
  account: "acct-a",
  client: "+1-555-0100",
  surface: "gateway",
  requestId: "@SUM(A1:A9)",
  method: "GET",
  path: "-2+3,\"quoted\"\r\nnext line",
  code: "SIGNATURE_INVALID",
  status: 401,
  detail: { reason: "\tTAB", note: "a, b" },
};

interface Env {
  readonly backend: "sqlite" | "postgres";
  readonly dir: string;
  readonly schema: string;
  readonly core: Portcullis;
  readonly store: ReadableAudit;
  readonly audit: AuditAdmin;
  readonly api: AdminApi;
  readonly base: string;
  readonly operator: PortcullisClient;
  readonly operatorKey: { id: string; secret: string };
  /** Account admin of acct-a with admin:audit. */
  readonly accountAdmin: PortcullisClient;
  /** Operator key without admin:audit. */
  readonly noScope: PortcullisClient;
  /** Runs SQL on the store behind its back (an intruder with database access). */
  tamper(sql: string): Promise<void>;
  close(): Promise<void>;
}

async function openEnv(backend: "sqlite" | "postgres", options: { exportMaxRows?: number } = {}): Promise<Env> {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-admin-audit-"));
  const schema = uniqueSchema("adaudit");
  await initDataDir(dir, "test", backend === "postgres" ? { backend: "postgres", url: SHARED_POSTGRES_URL, schema, poolSize: 4 } : undefined);
  const data = await openDataDir(dir, { pollIntervalMs: 50 });
  // Requests are not recorded: every entry of these tests is one the test wrote.
  const core = new Portcullis({ routes: TEST_ROUTES, now: Date.now, store: data.store, envelope: data.envelope, environment: "test", audit: { requests: "none" } });
  const store = readableAudit(data.store.audit);
  if (store === null) throw new Error("the store's audit log has no reading side");
  const audit = new AuditAdmin({ log: core.audit, store, signer: data.signingKeys, ...options });
  const api = new AdminApi({ core, logger: silentLogger(), audit });
  const base = `http://127.0.0.1:${(await api.listen(0, "127.0.0.1")).port}`;
  const create = async (input: Record<string, unknown>): Promise<{ id: string; secret: string }> => {
    const created = await core.keys.create(valueOrThrow(parseCreateKeyInput(input, Date.now())), "test");
    return { id: created.key.id, secret: created.secret ?? "" };
  };
  const operatorKey = await create({ account: "ops", scopes: ["admin:*"], operator: true });
  const admin = await create({ account: "acct-a", scopes: ["admin:audit", "read"] });
  const plain = await create({ account: "ops", scopes: ["admin:keys"], operator: true });
  const client = (k: { id: string; secret: string }): PortcullisClient => createClient({ baseUrl: base, keyId: k.id, secret: k.secret });
  return {
    backend,
    dir,
    schema,
    core,
    store,
    audit,
    api,
    base,
    operator: client(operatorKey),
    operatorKey,
    accountAdmin: client(admin),
    noScope: client(plain),
    async tamper(sql) {
      if (backend === "postgres") {
        await adminQuery(SHARED_POSTGRES_URL, `SET search_path TO ${schema}; ${sql}`);
        return;
      }
      const db = new Database(join(dir, "portcullis.db"));
      try {
        db.exec(sql);
      } finally {
        db.close();
      }
    },
    async close() {
      await api.close(500);
      await core.close();
      rmSync(dir, { recursive: true, force: true });
      if (backend === "postgres") await dropSchema(SHARED_POSTGRES_URL, schema);
    },
  };
}

async function refusal(p: Promise<unknown>): Promise<{ status: number; code: string; body: { fields?: Record<string, string> } }> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PortcullisApiError);
  const e = err as PortcullisApiError;
  return { status: e.status, code: String(e.code), body: e.body as { fields?: Record<string, string> } };
}

interface EntriesPage {
  entries: { seq: number; event: string; key?: string; account?: string; at: number; hash: string }[];
  next: number | null;
}

/** A signed GET over node:http, for what fetch does not show (trailers). */
async function rawGet(env: Env, path: string): Promise<{ status: number; headers: Record<string, unknown>; body: string; trailers: Record<string, unknown> }> {
  const url = `${env.base}${path}`;
  const headers = await createSigner({ keyId: env.operatorKey.id, secret: env.operatorKey.secret }).sign({ method: "GET", url });
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: "GET", headers: { ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8"), trailers: res.trailers });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

/** RFC 4180 records, quotes and doubled quotes honoured. */
function parseCsv(text: string): string[][] {
  const records: string[][] = [];
  let record: string[] = [];
  let cell = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") {
      record.push(cell);
      cell = "";
    } else if (c === "\r" && text[i + 1] === "\n") {
      record.push(cell);
      records.push(record);
      record = [];
      cell = "";
      i++;
    } else cell += c;
  }
  if (cell !== "" || record.length > 0) throw new Error("the CSV does not end with CRLF");
  return records;
}

describe.each(BACKENDS)("audit routes on %s", (backend, enabled) => {
  let env: Env;
  /** Seqs of the 60 decisions (1…60) and of HOSTILE. */
  let seqs: number[];
  let hostileSeq: number;

  beforeAll(async () => {
    if (!enabled) return;
    env = await openEnv(backend);
    const appended = await env.store.append(Array.from({ length: 60 }, (_, i) => decision(i + 1)));
    seqs = Array.from({ length: 60 }, (_, i) => appended.first + i);
    hostileSeq = (await env.store.append([HOSTILE])).first;
  });
  afterAll(async () => {
    if (enabled) await env.close();
  });

  it.runIf(enabled)("entries: oldest first, as `audit query --json` prints them, paged by `after`", async () => {
    const all = await env.operator.json<EntriesPage>("GET", "/portcullis/v1/audit/entries?limit=1000");
    const rows = await env.store.query({ limit: 1000 });
    expect(all).toEqual({ entries: rows.map(exportedEntry), next: null });
    expect(all.entries.map((e) => e.seq)).toEqual([...all.entries.map((e) => e.seq)].sort((a, b) => a - b));
    // Paging: 25 at a time, `next` until the end.
    const paged: number[] = [];
    let after: number | null = 0;
    let pages = 0;
    while (after !== null) {
      const page: EntriesPage = await env.operator.json<EntriesPage>("GET", `/portcullis/v1/audit/entries?event=request.*&limit=25&after=${String(after)}`);
      paged.push(...page.entries.map((e) => e.seq));
      after = page.next;
      pages++;
    }
    expect(paged).toEqual([...seqs, hostileSeq]);
    expect(pages).toBe(3);
    // The default limit is 100.
    const first = await env.operator.json<EntriesPage>("GET", "/portcullis/v1/audit/entries");
    expect(first.entries.length).toBe(Math.min(100, rows.length));
  });

  it.runIf(enabled)("entries: key, account, event (repeatable, resource.*), since and until as `audit query` takes them", async () => {
    const get = async (q: string): Promise<number[]> => (await env.operator.json<EntriesPage>("GET", `/portcullis/v1/audit/entries?limit=1000&${q}`)).entries.map((e) => e.seq);
    const decisions = seqs.map((seq, i) => ({ seq, f: decision(i + 1) }));
    expect(await get(`key=${KB}`)).toEqual(decisions.filter((d) => d.f.key === KB).map((d) => d.seq));
    expect(await get("account=acct-a&event=request.allow")).toEqual(decisions.filter((d) => d.f.account === "acct-a" && d.f.event === "request.allow").map((d) => d.seq));
    expect(await get("event=request.deny")).toEqual([...decisions.filter((d) => d.f.event === "request.deny").map((d) => d.seq), hostileSeq]);
    // Two events, and a resource: the three keys' creation is key.*.
    const keyCreates = await get("event=key.*");
    expect(keyCreates.length).toBe(3);
    expect(await get("event=key.*&event=request.allow")).toEqual([...keyCreates, ...decisions.filter((d) => d.f.event === "request.allow").map((d) => d.seq)].sort((a, b) => a - b));
    // Epoch ms, ISO-8601, and a duration ago.
    expect(await get(`event=request.*&since=${String(T0 + 10_000)}&until=${new Date(T0 + 20_000).toISOString()}`)).toEqual(decisions.slice(9, 19).map((d) => d.seq));
    const recent = await get("event=request.*&since=58m");
    expect(recent).toEqual([...decisions.filter((d) => (d.f.at) >= Date.now() - 58 * 60_000).map((d) => d.seq), hostileSeq]);
    expect(recent.length).toBeLessThan(61);
  });

  it.runIf(enabled)("export as JSON Lines: byte for byte what `portcullis audit export` writes, as an attachment", async () => {
    const res = await env.operator.request("GET", "/portcullis/v1/audit/export?format=jsonl&account=acct-b");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/x-ndjson; charset=utf-8");
    expect(res.headers.get("content-disposition")).toMatch(/^attachment; filename="portcullis-audit-[0-9TZ-]+\.jsonl"$/);
    const text = await res.text();
    const cli = await runCli(["audit", "export", "--account", "acct-b", "--data", env.dir]);
    expect(cli.code).toBe(0);
    expect(text).toBe(cli.stdout);
    expect(text.trim().split("\n").length).toBe(30);
    // The default format is JSON Lines; no match is an empty file.
    expect(await (await env.operator.request("GET", "/portcullis/v1/audit/export?account=acct-b")).text()).toBe(text);
    expect(await (await env.operator.request("GET", "/portcullis/v1/audit/export?account=nobody")).text()).toBe("");
  });

  it.runIf(enabled)("export as CSV: a fixed header, quoting that parses back, formulas neutralised", async () => {
    const res = await env.operator.request("GET", "/portcullis/v1/audit/export?format=csv&event=request.*");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/csv; charset=utf-8");
    expect(res.headers.get("content-disposition")).toMatch(/^attachment; filename="portcullis-audit-[0-9TZ-]+\.csv"$/);
    const records = parseCsv(await res.text());
    expect(records[0]).toEqual(["seq", "at", "event", "actor", "key", "account", "subAccount", "client", "surface", "requestId", "method", "path", "route", "scheme", "code", "status", "timings", "detail", "hash"]);
    expect(records.length).toBe(1 + 61);
    const bySeq = new Map(records.slice(1).map((r) => [Number(r[0]), r]));
    const rows = await env.store.query({ limit: 1000, events: ["request.*"] });
    const third = bySeq.get(seqs[2] as number);
    expect(third).toEqual([String(seqs[2]), new Date(T0 + 3000).toISOString(), "request.deny", "anonymous", KB, "acct-b", "", "203.0.113.3", "gateway", "req-3", "GET", "/api/v3/account", "GET /api/v3/account", "native", "SIGNATURE_INVALID", "401", "", "", rows[2]?.hash]);
    // Every cell a spreadsheet would take for a formula starts with a quote; the text survives.
    const hostile = bySeq.get(hostileSeq);
    expect(hostile?.[3]).toBe(`'${HOSTILE.actor}`);
    expect(hostile?.[7]).toBe("'+1-555-0100");
    expect(hostile?.[9]).toBe("'@SUM(A1:A9)");
    expect(hostile?.[11]).toBe(`'${HOSTILE.path ?? ""}`);
    expect(JSON.parse(hostile?.[17] ?? "")).toEqual(HOSTILE.detail);
    for (const record of records) for (const cell of record) expect(cell).not.toMatch(/^[=+\-@\t\r]/);
  });

  it.runIf(enabled)("export is bounded: past the bound it stops and its trailer names the last seq sent", async () => {
    const bounded = await openEnv(backend, { exportMaxRows: 7 });
    try {
      await bounded.store.append(Array.from({ length: 20 }, (_, i) => decision(i + 1)));
      const res = await rawGet(bounded, "/portcullis/v1/audit/export?event=request.*");
      expect(res.status).toBe(200);
      const lines = res.body.trim().split("\n").map((l) => JSON.parse(l) as { seq: number });
      expect(lines.length).toBe(7);
      expect(res.trailers["portcullis-export-next"]).toBe(String(lines[6]?.seq));
      // Continued from there, the rest; the last part has no trailer.
      const more = await rawGet(bounded, `/portcullis/v1/audit/export?event=request.*&after=${String(lines[6]?.seq)}`);
      expect(more.body.trim().split("\n").length).toBe(7);
      expect(more.trailers["portcullis-export-next"]).toBe(String((JSON.parse(more.body.trim().split("\n")[6] ?? "") as { seq: number }).seq));
      const tail = JSON.parse(more.body.trim().split("\n")[6] ?? "") as { seq: number };
      const end = await rawGet(bounded, `/portcullis/v1/audit/export?event=request.*&after=${String(tail.seq)}`);
      expect(end.body.trim().split("\n").length).toBe(6);
      expect(end.trailers["portcullis-export-next"]).toBeUndefined();
    } finally {
      await bounded.close();
    }
  });

  it.runIf(enabled)("status: entries, head, last checkpoint, archived range", async () => {
    const status = await env.operator.json<{ entries: number; head: { seq: number; hash: string; at: number } | null; lastCheckpoint: unknown; archivedThrough: number | null }>("GET", "/portcullis/v1/audit/status");
    const [head] = await env.store.query({ limit: 1, descending: true });
    const bounds = await env.store.bounds();
    expect(status).toEqual({
      entries: (bounds?.last ?? 0) - (bounds?.first ?? 1) + 1,
      head: { seq: head?.seq, hash: head?.hash, at: head?.at },
      lastCheckpoint: status.lastCheckpoint,
      archivedThrough: null,
    });
    const latest = await env.store.latestCheckpoint();
    expect(status.lastCheckpoint).toEqual(latest === undefined ? null : { seq: latest.seq, at: latest.at });
  });

  it.runIf(enabled)("checkpoint signs the head now, as `audit checkpoint --json` prints it; public-key as `audit public-key --json`", async () => {
    const checkpoint = await env.operator.json<{ seq: number; hash: string; at: number; kid: string; signature: string; fingerprint: string }>("POST", "/portcullis/v1/audit/checkpoint", { json: {} });
    const [head] = await env.store.query({ limit: 1, descending: true });
    expect(checkpoint).toMatchObject({ seq: head?.seq, hash: head?.hash });
    expect(Buffer.from(checkpoint.signature, "base64").length).toBe(64);
    const status = await env.operator.json<{ lastCheckpoint: { seq: number; at: number } }>("GET", "/portcullis/v1/audit/status");
    expect(status.lastCheckpoint).toEqual({ seq: checkpoint.seq, at: checkpoint.at });
    // Again without a new entry: the same checkpoint.
    expect(await env.operator.json("POST", "/portcullis/v1/audit/checkpoint")).toEqual(checkpoint);
    const key = await env.operator.json<{ kid: string; fingerprint: string; publicKey: string }>("GET", "/portcullis/v1/audit/public-key");
    expect(key.fingerprint).toBe(checkpoint.fingerprint);
    expect(key.publicKey).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
    const cli = await runCli(["audit", "public-key", "--json", "--data", env.dir]);
    expect(JSON.parse(cli.stdout)).toEqual(key);
    // An account admin may read the public key (it proves nothing about what it may read).
    expect(await env.accountAdmin.json("GET", "/portcullis/v1/audit/public-key")).toEqual(key);
  });

  it.runIf(enabled)("an account admin reads its own account's entries only; status, verify and checkpoint are refused it", async () => {
    const own = await env.accountAdmin.json<EntriesPage>("GET", "/portcullis/v1/audit/entries?limit=1000");
    expect(own.entries.length).toBeGreaterThan(0);
    expect(own.entries.every((e) => e.account === "acct-a")).toBe(true);
    expect(await env.accountAdmin.json("GET", "/portcullis/v1/audit/entries?account=acct-a&limit=1000")).toEqual(own);
    expect(await env.accountAdmin.json("GET", "/portcullis/v1/audit/entries?account=acct-b")).toEqual({ entries: [], next: null });
    expect(await env.accountAdmin.json("GET", "/portcullis/v1/audit/entries?account=ops")).toEqual({ entries: [], next: null });
    // Another account's key: nothing, as for a key without entries.
    expect(await env.accountAdmin.json("GET", `/portcullis/v1/audit/entries?key=${KB}`)).toEqual({ entries: [], next: null });
    const exported = await (await env.accountAdmin.request("GET", "/portcullis/v1/audit/export")).text();
    expect(exported.trim().split("\n").map((l) => (JSON.parse(l) as { account: string }).account).every((a) => a === "acct-a")).toBe(true);
    expect(await (await env.accountAdmin.request("GET", "/portcullis/v1/audit/export?format=csv&account=acct-b")).text()).toBe(
      "seq,at,event,actor,key,account,subAccount,client,surface,requestId,method,path,route,scheme,code,status,timings,detail,hash\r\n",
    );
    for (const [method, path] of [
      ["GET", "/portcullis/v1/audit/status"],
      ["POST", "/portcullis/v1/audit/verify"],
      ["POST", "/portcullis/v1/audit/checkpoint"],
    ] as const) {
      expect(await refusal(env.accountAdmin.json(method, path, method === "POST" ? { json: {} } : {}))).toMatchObject({ status: 403, code: "ADMIN_GRANT_EXCEEDED" });
    }
  });

  it.runIf(enabled)("every refusal has its code", async () => {
    const bad = async (path: string): Promise<{ status: number; code: string; fields: string[] }> => {
      const r = await refusal(env.operator.json("GET", path));
      return { status: r.status, code: r.code, fields: Object.keys(r.body.fields ?? {}) };
    };
    const invalid = (fields: string[]): { status: number; code: string; fields: string[] } => ({ status: 400, code: "VALIDATION_FAILED", fields });
    const E = "/portcullis/v1/audit/entries";
    expect(await bad(`${E}?color=red`)).toEqual(invalid(["color"]));
    expect(await bad(`${E}?format=csv`)).toEqual(invalid(["format"]));
    for (const limit of ["0", "1001", "abc", "1.5", "-1", ""]) expect(await bad(`${E}?limit=${limit}`)).toEqual(invalid(["limit"]));
    expect(await bad(`${E}?limit=5&limit=6`)).toEqual(invalid(["limit"]));
    for (const after of ["-1", "x", "1e3", "99999999999999999"]) expect(await bad(`${E}?after=${after}`)).toEqual(invalid(["after"]));
    expect(await bad(`${E}?key=`)).toEqual(invalid(["key"]));
    expect(await bad(`${E}?account=${"x".repeat(129)}`)).toEqual(invalid(["account"]));
    expect(await bad(`${E}?since=yesterday`)).toEqual(invalid(["since"]));
    expect(await bad(`${E}?until=2026-13-45`)).toEqual(invalid(["until"]));
    expect(await bad(`${E}?since=2h&until=3h`)).toEqual(invalid(["since"]));
    expect(await bad(`${E}?event=Bad Event`)).toEqual(invalid(["event"]));
    expect(await bad(`${E}?${Array.from({ length: 33 }, () => "event=key.*").join("&")}`)).toEqual(invalid(["event"]));
    expect(await bad("/portcullis/v1/audit/export?format=xml")).toEqual(invalid(["format"]));
    expect(await bad("/portcullis/v1/audit/export?limit=5")).toEqual(invalid(["limit"]));
    expect(await bad("/portcullis/v1/audit/status?verbose=1")).toEqual(invalid(["verbose"]));
    expect(await bad("/portcullis/v1/audit/public-key?format=pem")).toEqual(invalid(["format"]));
    const post = async (path: string, body: unknown): Promise<{ status: number; code: string }> => {
      const url = `${env.base}${path}`;
      const text = typeof body === "string" ? body : JSON.stringify(body);
      const headers = await createSigner({ keyId: env.operatorKey.id, secret: env.operatorKey.secret }).sign({ method: "POST", url, body: text });
      const res = await fetch(url, { method: "POST", headers: { ...headers, "content-type": "application/json" }, body: text });
      return { status: res.status, code: ((await res.json()) as { code: string }).code };
    };
    for (const path of ["/portcullis/v1/audit/verify", "/portcullis/v1/audit/checkpoint"]) {
      expect(await post(path, { trusted: [] })).toEqual({ status: 400, code: "VALIDATION_FAILED" });
      expect(await post(path, [])).toEqual({ status: 400, code: "VALIDATION_FAILED" });
      expect(await post(path, "{")).toEqual({ status: 400, code: "JSON_MALFORMED" });
    }
    // A key without admin:audit.
    expect((await refusal(env.noScope.json("GET", E))).code).toBe("SCOPE_MISSING");
    expect((await refusal(env.noScope.json("POST", "/portcullis/v1/audit/verify", { json: {} }))).code).toBe("SCOPE_MISSING");
  });

  it.runIf(enabled)("verify: an intact log is ok; a tampered one names the problem `audit verify` names", async () => {
    const ok = await env.operator.json<{ ok: boolean; entries: number; checkpoints: number; problems: unknown[] }>("POST", "/portcullis/v1/audit/verify", { json: {} });
    const bounds = await env.store.bounds();
    expect(ok).toEqual({ ok: true, entries: bounds?.last, checkpoints: (await env.store.checkpoints()).length, problems: [] });
    // An entry's content changed behind the store's back (its hash and columns left as they were).
    const target = seqs[9] as number;
    await env.tamper(`UPDATE audit_log SET entry = replace(entry, '"req-10"', '"req-99"') WHERE seq = ${String(target)}`);
    const altered = await env.operator.json<{ ok: boolean; problems: { code: string; seq?: number; message: string }[] }>("POST", "/portcullis/v1/audit/verify");
    const cli = await runCli(["audit", "verify", "--json", "--data", env.dir]);
    const cliReport = JSON.parse(cli.stdout) as { problem: { code: string; seq: number; message: string } };
    expect(altered).toMatchObject({ ok: false, problems: [{ code: "ENTRY_ALTERED", seq: target }] });
    expect(altered.problems[0]).toEqual(cliReport.problem);
    // An entry deleted.
    await env.tamper(`DELETE FROM audit_log WHERE seq = ${String(target + 5)}`);
    await env.tamper(`UPDATE audit_log SET entry = replace(entry, '"req-99"', '"req-10"') WHERE seq = ${String(target)}`);
    const missing = await env.operator.json<{ ok: boolean; problems: { code: string; seq?: number }[] }>("POST", "/portcullis/v1/audit/verify", { json: {} });
    const cli2 = JSON.parse((await runCli(["audit", "verify", "--json", "--data", env.dir])).stdout) as { problem: unknown };
    expect(missing).toMatchObject({ ok: false, problems: [{ code: "ENTRY_MISSING", seq: target + 5 }] });
    expect(missing.problems[0]).toEqual(cli2.problem);
  });
});

describe.each(BACKENDS)("verify on a large log (%s)", (backend, enabled) => {
  let env: Env;
  const N = 50_000;

  beforeAll(async () => {
    if (!enabled) return;
    env = await openEnv(backend);
    for (let i = 0; i < N; i += 5000) await env.store.append(Array.from({ length: 5000 }, (_, j) => decision(i + j + 1)));
  }, 120_000);
  afterAll(async () => {
    if (enabled) await env.close();
  });

  it.runIf(enabled)(
    `does not hold the event loop: a timer keeps firing while ${String(N)} entries are verified; a second verification meanwhile is AUDIT_VERIFY_RUNNING`,
    async () => {
      const ticks: number[] = [];
      const timer = setInterval(() => ticks.push(performance.now()), 5);
      let report: { ok: boolean; entries: number };
      let second: { status: number; code: string };
      const started = performance.now();
      try {
        const state = { settled: false };
        const first = env.operator.json<{ ok: boolean; entries: number }>("POST", "/portcullis/v1/audit/verify", { json: {} }).finally(() => {
          state.settled = true;
        });
        // The second is sent once the first is running (a verification that held the loop would
        // have been over before this loop saw it running: the second would then succeed).
        while (!env.audit.verifying && !state.settled) await new Promise((r) => setImmediate(r));
        second = await refusal(env.operator.json("POST", "/portcullis/v1/audit/verify", { json: {} }));
        report = await first;
      } finally {
        clearInterval(timer);
      }
      const elapsed = performance.now() - started;
      expect(report).toMatchObject({ ok: true, entries: N + 3 });
      expect(second).toMatchObject({ status: 409, code: "AUDIT_VERIFY_RUNNING" });
      const gaps = ticks.slice(1).map((t, i) => t - (ticks[i] as number));
      // A blocking verification would leave one gap as long as the whole run.
      expect(ticks.length).toBeGreaterThan(5);
      expect(Math.max(...gaps)).toBeLessThan(Math.max(250, elapsed / 3));
      // Once it is over, the next one runs.
      expect(await env.operator.json("POST", "/portcullis/v1/audit/verify", { json: {} })).toMatchObject({ ok: true });
    },
    120_000,
  );
});
