/**
 * Crash loops (issue 13): real `portcullis` processes killed with SIGKILL at a random moment in
 * the middle of key creation, key rotation and KEK rewrap, restarted, and checked.
 *
 * - How many iterations: `PORTCULLIS_CRASH_LOOPS` (default `CI_LOOPS`), the same for every loop.
 * - When to kill: a PRNG seeded by `PORTCULLIS_CRASH_SEED` (default: random). The seed is printed
 *   at the start of every loop and in every failure message, so a failing run is replayed with
 *   `PORTCULLIS_CRASH_SEED=<seed> npx vitest run packages/portcullis/test/crash`. (The kill lands at
 *   the same offset; what the process did by then still depends on the machine.)
 * - Each loop prints one summary line (`crash loop <name>: …`) with its counts.
 *
 * The checks after a restart are the same for every loop (`checkStore`): every key row holds a
 * credential that opens (an HMAC secret's envelope decrypts under a KEK the provider holds, a
 * public key parses), every key has exactly one `key.create` change and one `key.create` audit
 * entry and no entry names a key that is not there, every rotation link is mutual, and
 * `portcullis audit verify` passes.
 */
import Database from "better-sqlite3";
import { randomInt } from "node:crypto";
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { request } from "undici";
import type { CustodyConfig } from "../../src/custody/config.js";
import { custodyStatus, type CustodyStatus } from "../../src/custody/rotation.js";
import { openDataDir } from "../../src/core/data-dir.js";
import { KeyService } from "../../src/keys/service.js";
import { readEntries } from "../audit/support.js";
import { CLI, type CliResult, runCli, startCli } from "../support/cli.js";
import { TEST_ROUTES, signRequest } from "../support/harness.js";

/** Iterations per loop in CI (and by default): enough kills to mean something, inside CI's budget. */
export const CI_LOOPS = 6;

function loopsFromEnv(): number {
  const text = process.env.PORTCULLIS_CRASH_LOOPS;
  if (text === undefined || text === "") return CI_LOOPS;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 10_000) throw new TypeError(`PORTCULLIS_CRASH_LOOPS must be an integer 1-10000, not ${text}`);
  return n;
}

function seedFromEnv(): number {
  const text = process.env.PORTCULLIS_CRASH_SEED;
  if (text === undefined || text === "") return randomInt(1, 2 ** 31);
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || n >= 2 ** 32) throw new TypeError(`PORTCULLIS_CRASH_SEED must be an integer 0-4294967295, not ${text}`);
  return n;
}

export const LOOPS = loopsFromEnv();
export const SEED = seedFromEnv();
/** A loop's test timeout: room for every iteration (a loop may run up to twice LOOPS) on a slow, shared machine. */
export const LOOP_TIMEOUT_MS = 60_000 + 2 * LOOPS * 20_000;

/** mulberry32: a small seeded PRNG (uniform in [0, 1)). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A loop's random source: the run's seed mixed with the loop's name, so loops do not share draws. */
export function loopRandom(name: string): { seed: number; next(): number; between(lo: number, hi: number): number } {
  let h = SEED;
  for (const c of name) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193) >>> 0;
  const next = prng(h);
  console.log(`crash loop ${name}: seed ${SEED} (PORTCULLIS_CRASH_SEED), ${LOOPS} iteration(s) (PORTCULLIS_CRASH_LOOPS)`);
  return { seed: SEED, next, between: (lo, hi) => Math.floor(lo + next() * (hi - lo)) };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** SIGKILLs a child (if it still runs) and waits until it is gone. */
export async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGKILL");
  await exited;
}

/** Runs `portcullis …` in its own process, killable: `done` resolves when it ends, however it ends. */
export function spawnCli(args: readonly string[]): { child: ChildProcess; done: Promise<CliResult> } {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<CliResult>((resolve) => {
    child.once("close", (code) => {
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
  return { child, done };
}

export interface Credential {
  readonly id: string;
  readonly secret: string;
}

/** Writes a gateway config for `dataDir` (admin API on, any port, the echo upstream). */
export function writeConfig(path: string, dataDir: string, upstream: string, custody?: Record<string, unknown>): string {
  writeFileSync(
    path,
    JSON.stringify({
      dataDir,
      environment: "test",
      gateway: { host: "127.0.0.1", port: 0, upstream },
      admin: { enabled: true, host: "127.0.0.1", port: 0 },
      routes: TEST_ROUTES,
      limits: {},
      audit: { batchWindowMs: 20, checkpointIntervalMs: 250 },
      log: { level: "info" },
      ...(custody === undefined ? {} : { custody }),
    }),
  );
  return path;
}

export interface Gateway {
  readonly gateway: string;
  readonly admin: string;
  readonly child: ChildProcess;
}

/** `portcullis start`, resolved once it says it started (a start that fails rejects). */
export async function startGateway(config: string): Promise<Gateway> {
  const started = await startCli(["start", "--config", config], (line) => line.includes('"portcullis started"'));
  const info = JSON.parse(started.line) as { gateway: string; admin: string };
  // A restarted gateway fences requests that could predate its replay memory (docs/replay.md):
  // whose `created` (whole seconds), less the 1 s clock allowance, is before its start. Its start
  // precedes this line; the requests here are signed with the current second, so they are past
  // the fence from the second after next. Real processes, real clocks: the wait is real time.
  // A timer may fire a millisecond before Date.now() reaches its time (timers run on the monotonic
  // clock): a request signed then carries the second before `past` and is fenced. Hence the loop.
  const past = Math.ceil((Date.now() + 1_000) / 1_000) * 1_000;
  while (Date.now() < past) await sleep(Math.max(1, past - Date.now()));
  return { gateway: info.gateway, admin: info.admin, child: started.child };
}

/** One signed admin API call; rejects when the connection breaks (the gateway was killed). */
export async function adminCall(admin: string, key: Credential, method: "POST" | "GET", path: string, json?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const host = admin.replace("http://", "");
  const body = json === undefined ? undefined : JSON.stringify(json);
  const headers = signRequest({ method, url: path, host, keyId: key.id, key: key.secret, created: Math.floor(Date.now() / 1000), ...(body === undefined ? {} : { body }) });
  const res = await request(`${admin}${path}`, { method, headers: body === undefined ? headers : { ...headers, "content-type": "application/json" }, ...(body === undefined ? {} : { body }) });
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
}

/** A signed `GET /api/v3/account` through the gateway with `key`: its status and code. */
export async function signedGet(gateway: string, key: Credential): Promise<{ status: number; code: string | null }> {
  const host = gateway.replace("http://", "");
  const headers = signRequest({ method: "GET", url: "/api/v3/account", host, keyId: key.id, key: key.secret, created: Math.floor(Date.now() / 1000) });
  const res = await request(`${gateway}/api/v3/account`, { headers });
  const text = await res.body.text();
  let code: string | null = null;
  if (res.statusCode !== 200) {
    try {
      code = String((JSON.parse(text) as { code?: unknown }).code);
    } catch {
      code = text.slice(0, 80);
    }
  }
  return { status: res.statusCode, code };
}

/** Signs one request with each key, a few at a time; answers the keys the gateway did not accept. */
export async function refusedKeys(gateway: string, keys: readonly Credential[]): Promise<string[]> {
  const refused: string[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let k = keys[next++]; k !== undefined; k = keys[next++]) {
        const answer = await signedGet(gateway, k);
        if (answer.status !== 200) refused.push(`${k.id}: ${answer.status} ${answer.code ?? ""}`);
      }
    }),
  );
  return refused;
}

/** `portcullis audit verify --json` on the data directory. */
export async function auditVerify(dataDir: string): Promise<{ code: number; ok: boolean; problem: unknown; verified: number }> {
  const res = await runCli(["audit", "verify", "--data", dataDir, "--json"]);
  try {
    return { code: res.code, ...(JSON.parse(res.stdout) as { ok: boolean; problem: unknown; verified: number }) };
  } catch {
    return { code: res.code, ok: false, problem: res.stderr, verified: 0 };
  }
}

interface RawKey {
  id: string;
  algorithm: string;
  public_key: string | null;
  secret_envelope: Buffer | null;
  status: string;
  expires_at: number | null;
  rotated_from: string | null;
  rotated_to: string | null;
}

export interface StoreCheck {
  /** Everything inconsistent, one line each (empty when the store is consistent). */
  readonly problems: string[];
  readonly keys: ReadonlyMap<string, RawKey>;
  /** Each HMAC key's secret as it decrypts now (UTF-8). */
  readonly secrets: ReadonlyMap<string, string>;
  readonly custody: CustodyStatus;
}

/**
 * Checks a data directory after a crash (no process is using it): reads every key row raw, opens
 * every HMAC secret through the key service under the configured custody, and checks the change
 * feed and the audit log against the rows.
 */
export async function checkStore(dataDir: string, custody?: CustodyConfig): Promise<StoreCheck> {
  const problems: string[] = [];
  const db = new Database(join(dataDir, "portcullis.db"), { readonly: true });
  let rows: RawKey[];
  let creates: { key_id: string; n: number }[];
  try {
    rows = db.prepare<[], RawKey>("SELECT id, algorithm, public_key, secret_envelope, status, expires_at, rotated_from, rotated_to FROM keys").all();
    creates = db.prepare<[], { key_id: string; n: number }>("SELECT key_id, COUNT(*) AS n FROM key_changes WHERE action = 'create' GROUP BY key_id").all();
  } finally {
    db.close();
  }
  const keys = new Map(rows.map((r) => [r.id, r]));
  // The change feed: one create per key, none for a key that is not there.
  const created = new Map(creates.map((c) => [c.key_id, c.n]));
  for (const id of keys.keys()) if (created.get(id) !== 1) problems.push(`${id}: ${created.get(id) ?? 0} create change(s)`);
  for (const id of created.keys()) if (!keys.has(id)) problems.push(`change feed: create of ${id}, which is not in the store`);
  // The audit log: one key.create entry per key (written in the creating transaction), none for a missing key.
  const audited = new Map<string, number>();
  for (const e of readEntries(dataDir, { events: ["key.create"] })) if (e.key !== undefined) audited.set(e.key, (audited.get(e.key) ?? 0) + 1);
  for (const id of keys.keys()) if (audited.get(id) !== 1) problems.push(`${id}: ${audited.get(id) ?? 0} key.create audit entr(ies)`);
  for (const id of audited.keys()) if (!keys.has(id)) problems.push(`audit: key.create of ${id}, which is not in the store`);
  const rotations = new Set(readEntries(dataDir, { events: ["key.rotate"] }).map((e) => e.key));
  // Rotation links: mutual, the predecessor audited as rotated and given an expiry (its grace).
  for (const k of keys.values()) {
    if (k.rotated_to !== null) {
      const next = keys.get(k.rotated_to);
      if (next?.rotated_from !== k.id) problems.push(`${k.id}: rotated to ${k.rotated_to}, which does not name it as its predecessor`);
      if (k.expires_at === null) problems.push(`${k.id}: rotated without a grace expiry`);
      if (!rotations.has(k.id)) problems.push(`${k.id}: rotated, with no key.rotate audit entry`);
    }
    if (k.rotated_from !== null && keys.get(k.rotated_from)?.rotated_to !== k.id) problems.push(`${k.id}: rotated from ${k.rotated_from}, which does not name it as its successor`);
    if (k.algorithm === "hmac-sha256" ? k.secret_envelope === null : k.public_key === null) problems.push(`${k.id}: a ${k.algorithm} key without its credential`);
  }
  // Every credential opens.
  const secrets = new Map<string, string>();
  const data = await openDataDir(dataDir, custody === undefined ? {} : { custody });
  let status: CustodyStatus;
  try {
    const service = new KeyService({ store: data.store, envelope: data.envelope, environment: data.environment });
    for (const id of keys.keys()) {
      try {
        const material = await service.loadMaterial(id);
        if (material?.hmacKey) secrets.set(id, material.hmacKey.export().toString("utf8"));
        else if (material?.publicKey === null || material === null) problems.push(`${id}: no usable key material`);
      } catch (err) {
        problems.push(`${id}: its credential does not open (${err instanceof Error ? err.message : String(err)})`);
      }
    }
    status = await custodyStatus(data.store, data.envelope);
  } finally {
    await data.close();
  }
  if (status.envelopes.missingVersions.length > 0) problems.push(`custody: envelopes under KEK version(s) ${status.envelopes.missingVersions.join(", ")}, which the provider no longer holds`);
  if (status.envelopes.malformed > 0) problems.push(`custody: ${status.envelopes.malformed} malformed envelope(s)`);
  if (!status.versions.includes(status.activeVersion)) problems.push(`custody: active version ${status.activeVersion} is not held`);
  return { problems, keys, secrets, custody: status };
}

/**
 * Files in the data directory that no running Portcullis should leave behind after a restart:
 * temporary copies (a keyring being replaced holds every KEK), rollback journals of the lock files.
 */
export function strayFiles(dataDir: string): string[] {
  return readdirSync(dataDir).filter((name) => name.endsWith(".tmp") || name.includes(".tmp.") || name.endsWith("-journal"));
}
