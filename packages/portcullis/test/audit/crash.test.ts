/**
 * A real `portcullis start` process, killed with SIGKILL in the middle of heavy traffic (and once
 * while its store is unavailable and batches are spilling): after a restart, everything that was
 * acknowledged is in the log exactly once and the chain verifies.
 *
 * Acknowledged means: a key change whose admin API answer (2xx) the client received; a decision
 * whose entry was visible in the database (committed), or in a complete spill file, before the
 * kill. Decisions still waiting in the gateway's memory (at most one batch window) may be lost.
 */
import Database from "better-sqlite3";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseSpill } from "../../src/audit/spill.js";
import { runCli, startCli } from "../support/cli.js";
import { startEchoUpstream } from "../support/gateway.js";
import { TEST_ROUTES, signRequest } from "../support/harness.js";
import { readEntries } from "./support.js";

let dir: string;
let data: string;
let config: string;
let upstream: Awaited<ReturnType<typeof startEchoUpstream>>;
let trader: { id: string; secret: string };
let admin: { id: string; secret: string };

interface Running {
  readonly gateway: string;
  readonly admin: string;
  readonly child: Awaited<ReturnType<typeof startCli>>["child"];
  stop(): Promise<number | null>;
}

async function start(): Promise<Running> {
  const started = await startCli(["start", "--config", config], (line) => line.includes('"portcullis started"'));
  const info = JSON.parse(started.line) as { gateway: string; admin: string };
  return { gateway: info.gateway, admin: info.admin, child: started.child, stop: () => started.stop() };
}

async function kill(r: Running): Promise<void> {
  const exited = new Promise((resolve) => r.child.once("exit", resolve));
  r.child.kill("SIGKILL");
  await exited;
}

/** Signed GETs from `workers` clients until `until`; resolves with the request ids answered. */
async function traffic(gateway: string, until: () => boolean, workers = 12): Promise<string[]> {
  const host = gateway.replace("http://", "");
  const answered: string[] = [];
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (!until()) {
        const headers = signRequest({ method: "GET", url: "/api/v3/account", host, keyId: trader.id, key: trader.secret, created: Math.floor(Date.now() / 1000) });
        try {
          const res = await request(`${gateway}/api/v3/account`, { headers });
          await res.body.text();
          if (res.statusCode === 200) answered.push(String(res.headers["portcullis-request-id"]));
        } catch {
          return; // the gateway was killed
        }
      }
    }),
  );
  return answered;
}

/** Admin API changes until `until`; resolves with the ones acknowledged (2xx received). */
async function changes(adminUrl: string, until: () => boolean): Promise<{ event: string; key: string }[]> {
  const host = adminUrl.replace("http://", "");
  const acked: { event: string; key: string }[] = [];
  const call = async (method: string, path: string, json: unknown): Promise<{ status: number; body: { id?: string } }> => {
    const body = JSON.stringify(json);
    const headers = signRequest({ method, url: path, host, keyId: admin.id, key: admin.secret, created: Math.floor(Date.now() / 1000), body });
    const res = await request(`${adminUrl}${path}`, { method: method as "POST", headers: { ...headers, "content-type": "application/json" }, body });
    return { status: res.statusCode, body: (await res.body.json()) as { id?: string } };
  };
  try {
    while (!until()) {
      const created = await call("POST", "/portcullis/v1/keys", { account: "acct-crash", scopes: ["read"] });
      if (created.status !== 201 || created.body.id === undefined) continue;
      const id = created.body.id;
      acked.push({ event: "key.create", key: id });
      if ((await call("POST", `/portcullis/v1/keys/${id}/suspend`, { reason: "crash test" })).status === 200) acked.push({ event: "key.suspend", key: id });
    }
  } catch {
    // the gateway was killed mid-call: that change was not acknowledged
  }
  return acked;
}

/** seq -> hash of every committed entry, read as another process would. */
function snapshot(): Map<number, string> {
  const db = new Database(join(data, "portcullis.db"), { readonly: true });
  try {
    return new Map(db.prepare<[], { seq: number; hash: Buffer }>("SELECT seq, hash FROM audit_log").all().map((r) => [r.seq, r.hash.toString("hex")]));
  } finally {
    db.close();
  }
}

async function verify(): Promise<{ ok: boolean; problem: unknown; last: number; verified: number }> {
  const res = await runCli(["audit", "verify", "--data", data, "--json"]);
  return JSON.parse(res.stdout) as { ok: boolean; problem: unknown; last: number; verified: number };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "portcullis-audit-crash-"));
  data = join(dir, "data");
  upstream = await startEchoUpstream();
  expect((await runCli(["init", "--data", data, "--environment", "test"])).code).toBe(0);
  const key = async (scopes: string, ...flags: string[]): Promise<{ id: string; secret: string }> =>
    JSON.parse((await runCli(["keys", "create", "--data", data, "--account", "acct-crash", "--scopes", scopes, ...flags, "--json"])).stdout) as { id: string; secret: string };
  trader = await key("read,trade");
  admin = await key("admin:keys", "--operator");
  config = join(dir, "portcullis.json");
  writeFileSync(
    config,
    JSON.stringify({
      dataDir: data,
      environment: "test",
      gateway: { host: "127.0.0.1", port: 0, upstream: upstream.url },
      admin: { enabled: true, host: "127.0.0.1", port: 0 },
      routes: TEST_ROUTES,
      limits: {},
      audit: { batchWindowMs: 20, checkpointIntervalMs: 250, lockTimeoutMs: 100 },
      log: { level: "info" },
    }),
  );
});
afterAll(async () => {
  await upstream.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("SIGKILL under load", () => {
  it("every acknowledged change and every committed decision survives, and the chain verifies", async () => {
    const gw = await start();
    let killed = false;
    const until = (): boolean => killed;
    let seen = new Map<number, string>();
    const load = Promise.all([traffic(gw.gateway, until), changes(gw.admin, until)]);
    // Watch the log grow as another process would, then kill in the middle of the traffic.
    for (let i = 0; i < 15; i++) {
      await new Promise((r) => setTimeout(r, 100));
      seen = snapshot();
    }
    const before = snapshot();
    await kill(gw);
    killed = true;
    const [answered, acked] = await load;
    expect(answered.length).toBeGreaterThan(100);
    expect(acked.length).toBeGreaterThan(2);
    expect(seen.size).toBeGreaterThan(0);

    // After the crash: every entry committed before it is there, unchanged; the chain verifies.
    const after = snapshot();
    for (const [seq, hash] of before) expect(after.get(seq)).toBe(hash);
    const report = await verify();
    expect(report).toMatchObject({ ok: true, problem: null });
    const log = readEntries(data);
    for (const c of acked) expect(log.some((e) => e.event === c.event && e.key === c.key)).toBe(true);
    const ids = log.filter((e) => e.event === "request.allow" && e.surface === "gateway").map((e) => e.requestId);
    expect(new Set(ids).size).toBe(ids.length);
    const logged = new Set(ids);
    // Only the last window's decisions may be missing.
    expect(answered.filter((id) => logged.has(id)).length).toBeGreaterThan(answered.length / 2);

    // A restart continues the same chain; a graceful stop flushes and signs.
    const again = await start();
    const more = await traffic(again.gateway, ((n) => () => n++ >= 20)(0), 1);
    expect(await again.stop()).toBe(0);
    const final = await verify();
    expect(final).toMatchObject({ ok: true, problem: null });
    const all = readEntries(data);
    for (const id of more) expect(all.some((e) => e.requestId === id)).toBe(true);
  }, 60_000);

  it("batches spilled while the store was unavailable are replayed exactly once after a SIGKILL", async () => {
    const gw = await start();
    // Another process holds the database's write lock: the gateway's group commits spill.
    const blocker = new Database(join(data, "portcullis.db"));
    blocker.pragma("busy_timeout = 5000");
    blocker.exec("BEGIN IMMEDIATE");
    const spillDir = join(data, "audit-spill");
    const files = (): string[] => (existsSync(spillDir) ? readdirSync(spillDir).filter((n) => n.endsWith(".jsonl")) : []);
    let stop = false;
    const sent = traffic(gw.gateway, () => stop, 6);
    // Bounded polling of a real process (up to 20 s): a write of the gateway's own connection may
    // first wait out its 5 s busy timeout behind the blocker before its traffic flows.
    for (let i = 0; i < 400 && files().length < 2; i++) await new Promise((r) => setTimeout(r, 50));
    stop = true;
    await sent;
    // Acknowledged: the request ids in complete spill files, read before the kill.
    const spilled = files().flatMap((name) => parseSpill(readFileSync(join(spillDir, name), "utf8"))?.entries.map((e) => e.requestId) ?? []);
    for (const name of files()) expect(readFileSync(join(spillDir, name), "utf8")).not.toContain(trader.secret);
    await kill(gw);
    blocker.exec("COMMIT");
    blocker.close();
    expect(spilled.length).toBeGreaterThan(0);

    // The next process replays them at start; a graceful stop leaves nothing behind.
    const again = await start();
    expect(await again.stop()).toBe(0);
    expect(files()).toEqual([]);
    const log = readEntries(data);
    for (const id of spilled) expect(log.filter((e) => e.requestId === id)).toHaveLength(1);
    expect(await verify()).toMatchObject({ ok: true, problem: null });
  }, 60_000);
});
