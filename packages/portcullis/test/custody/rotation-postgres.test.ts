/**
 * KEK rotation on a PostgreSQL store that two "hosts" share: two data directories (each with its own
 * custody.lock file and keyring file) naming one schema, each opened with its own pool. The file
 * lock cannot see across them; the store's custody lock (a session advisory lock on a connection
 * of its own) must: a rotation on one host refuses the other's with CUSTODY_ROTATION_IN_PROGRESS,
 * is held by a visible session for the whole rotation, and a rotation whose lock connection was
 * lost retires nothing. Then what a host's `custody status` says when another host rotated and its
 * keyring was not brought along. No sleeping: the first rotation is held at a gate (its KEK
 * provider's addVersion, which runs once both locks are taken).
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Envelope } from "../../src/custody/envelope.js";
import type { KekProvider } from "../../src/custody/keyring.js";
import { custodyStatus, rotateKek } from "../../src/custody/rotation.js";
import { initDataDir, openDataDir, type OpenDataDir } from "../../src/core/data-dir.js";
import { OperatorError } from "../../src/errors/catalogue.js";
import { valueOrThrow } from "../../src/errors/result.js";
import { parseCreateKeyInput } from "../../src/keys/input.js";
import { KeyService } from "../../src/keys/service.js";
import { LOCK_CUSTODY } from "../../src/storage/postgres/locks.js";
import { runCli } from "../support/cli.js";
import { SHARED_POSTGRES_URL, adminQuery, dropSchema, postgresReachable, uniqueSchema } from "../support/postgres.js";
import { IN_CI, loudSkip } from "../support/redis.js";
import { itLeaksNoSecret, recordError, recordSecrets, recordText } from "./secrets.js";

const pgUp = await postgresReachable(SHARED_POSTGRES_URL);
const runPg = pgUp || IN_CI;
if (!runPg) loudSkip("the PostgreSQL rotation-lock tests", `no PostgreSQL answers at ${SHARED_POSTGRES_URL}`);

const dirs: string[] = [];
const schemas: string[] = [];
const opened: OpenDataDir[] = [];

afterEach(async () => {
  for (const d of opened.splice(0)) await d.close();
  for (const s of schemas.splice(0)) await dropSchema(SHARED_POSTGRES_URL, s);
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Two hosts' data directories on one schema, the second with the first's keyring (as deployed), and a key. */
async function twoHosts(): Promise<{ a: string; b: string; schema: string; keyId: string; secret: string }> {
  const schema = uniqueSchema("rot");
  schemas.push(schema);
  const settings = { backend: "postgres", url: SHARED_POSTGRES_URL, schema, poolSize: 2 } as const;
  const [a, b] = ["a", "b"].map((h) => {
    const root = mkdtempSync(join(tmpdir(), `portcullis-host-${h}-`));
    dirs.push(root);
    return join(root, "data");
  }) as [string, string];
  await initDataDir(a, "test", settings);
  // The second host joins with the first's keyring and identity secret (docs/production.md).
  mkdirSync(b, { mode: 0o700 });
  for (const file of ["keyring.json", "identity.secret"]) copyFileSync(join(a, file), join(b, file));
  await initDataDir(b, "test", settings);
  recordSecrets(...Object.values((JSON.parse(readFileSync(join(a, "keyring.json"), "utf8")) as { keks: Record<string, string> }).keks));
  const data = await open(a);
  const created = await new KeyService({ store: data.store, envelope: data.envelope, environment: "test" }).create(valueOrThrow(parseCreateKeyInput({ account: "acct", scopes: ["read"] }, Date.now())), "test");
  if (created.secret === null) throw new Error("no secret");
  recordSecrets(created.secret);
  return { a, b, schema, keyId: created.key.id, secret: created.secret };
}

async function open(dir: string): Promise<OpenDataDir> {
  const d = await openDataDir(dir);
  opened.push(d);
  return d;
}

/** `inner`, whose addVersion (the rotation's first step, once it holds its locks) waits for `gate`. */
function gated(inner: KekProvider, gate: Promise<void>, entered: () => void): KekProvider {
  return {
    name: inner.name,
    get activeVersion() {
      return inner.activeVersion;
    },
    wrap: (k, aad) => inner.wrap(k, aad),
    unwrap: (v, w, aad) => inner.unwrap(v, w, aad),
    versions: () => inner.versions(),
    addVersion: async () => {
      entered();
      await gate;
      return inner.addVersion();
    },
    retire: (v) => inner.retire(v),
    describe: () => inner.describe(),
    close: () => inner.close(),
  };
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve: () => void = () => undefined;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** The sessions holding the schema's custody lock (application_name portcullis-custody:<schema>). */
async function lockHolders(schema: string): Promise<string[]> {
  const rows = await adminQuery<{ app: string }>(
    SHARED_POSTGRES_URL,
    `SELECT a.application_name AS app FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
     WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1 AND a.application_name = $2`,
    [LOCK_CUSTODY, `portcullis-custody:${schema}`],
  );
  return rows.map((r) => r.app);
}

describe.runIf(runPg)("KEK rotation on a PostgreSQL store shared by two hosts", () => {
  it("a rotation on one host refuses the other host's (CUSTODY_ROTATION_IN_PROGRESS) for as long as it runs, then lets it run", async () => {
    const { a, b, schema } = await twoHosts();
    const hostA = await open(a);
    const hostB = await open(b);
    const gate = deferred();
    const entered = deferred();
    const first = rotateKek(a, hostA.store, new Envelope(gated(hostA.kek, gate.promise, entered.resolve)), { settleMs: 0 });
    await entered.promise;
    // A holds its file lock and the store's lock, on a session of its own.
    expect(await lockHolders(schema)).toEqual([`portcullis-custody:${schema}`]);
    // B's data directory is another directory: its file lock is free. The store's lock is not.
    const refused = await rotateKek(b, hostB.store, hostB.envelope, { settleMs: 0, lockWaitMs: 100 }).catch((e: unknown) => e);
    recordError(refused);
    expect(refused).toBeInstanceOf(OperatorError);
    expect(refused).toMatchObject({ code: "CUSTODY_ROTATION_IN_PROGRESS", message: expect.stringContaining(`sharing schema ${schema}`) as unknown });
    // B's keyring was not touched: its refused rotation added no version.
    expect((await hostB.kek.versions()).held).toEqual([1]);
    gate.resolve();
    expect(await first).toMatchObject({ active: 2, rewrapped: 1, retired: [1], failures: [] });
    expect(await lockHolders(schema)).toEqual([]);
    // Now B may rotate (its own keyring: version 2 of it; the store's envelopes under A's version 2
    // are not B's to open, which is the keyring problem the next test is about).
    copyFileSync(join(a, "keyring.json"), join(b, "keyring.json"));
    expect(await rotateKek(b, hostB.store, hostB.envelope, { settleMs: 0, lockWaitMs: 100 })).toMatchObject({ active: 3, rewrapped: 1, retired: [2], failures: [] });
  });

  it("a rotation whose lock connection is lost retires nothing, and the other host's rotation may start", async () => {
    const { a, b, schema } = await twoHosts();
    const hostA = await open(a);
    const hostB = await open(b);
    const gate = deferred();
    const entered = deferred();
    const first = rotateKek(a, hostA.store, new Envelope(gated(hostA.kek, gate.promise, entered.resolve)), { settleMs: 0 });
    await entered.promise;
    // The lock's session ends (a network cut, an administrator): PostgreSQL releases the lock.
    const ended = await adminQuery<{ ok: boolean }>(SHARED_POSTGRES_URL, "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1", [`portcullis-custody:${schema}`]);
    expect(ended).toEqual([{ ok: true }]);
    gate.resolve();
    const result = await first;
    expect(result).toMatchObject({ active: 2, retired: [], failures: [{ where: "custody lock", code: "CUSTODY_ROTATION_IN_PROGRESS" }] });
    // A kept version 1: nothing was destroyed under a lock it no longer held.
    expect((await hostA.kek.versions()).held).toEqual([1, 2]);
    copyFileSync(join(a, "keyring.json"), join(b, "keyring.json"));
    expect(await rotateKek(b, hostB.store, hostB.envelope, { settleMs: 0, lockWaitMs: 100 })).toMatchObject({ active: 3, failures: [] });
  });

  it("custody status on a host whose keyring lacks the version another host rotated to says so and exits 1; copying the keyring fixes it", async () => {
    const { a, b, keyId, secret } = await twoHosts();
    // Host A rotates and keeps the old version (the multi-host procedure's first step).
    const rotate = await runCli(["custody", "rotate", "--data", a, "--settle", "0", "--keep-old", "--json"]);
    expect([rotate.code, rotate.stderr]).toEqual([0, ""]);
    expect(JSON.parse(rotate.stdout)).toMatchObject({ active: 2, rewrapped: 1, retired: [] });
    // Host B's keyring still holds version 1 only.
    const behind = await runCli(["custody", "status", "--data", b]);
    expect(behind.code).toBe(1);
    expect(behind.stdout).toContain("MISSING         KEK version(s) 2: those envelopes cannot be opened here");
    expect(behind.stdout).toContain("1 envelope(s) are under KEK version 2, newer than this keyring-file's active version 1: another host sharing the store rotated the KEK");
    expect(behind.stdout).toContain("the store's KEK floor is 2, above this keyring-file's active version 1");
    const json = await runCli(["custody", "status", "--data", b, "--json"]);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ activeVersion: 1, kekFloor: 2, envelopes: { missingVersions: [2] }, warnings: [expect.stringContaining("another host") as unknown, expect.stringContaining("KEK floor is 2") as unknown] });
    // What that means on host B: the key does not open; a new one is refused below the floor.
    const hostB = await open(b);
    const keysB = new KeyService({ store: hostB.store, envelope: hostB.envelope, environment: "test" });
    const unopened = await keysB.loadMaterial(keyId).catch((e: unknown) => e);
    recordError(unopened);
    expect(unopened).toMatchObject({ code: "CUSTODY_KEK_VERSION_UNKNOWN" });
    const refused = await keysB.create(valueOrThrow(parseCreateKeyInput({ account: "acct", scopes: ["read"] }, Date.now())), "test").catch((e: unknown) => e);
    recordError(refused);
    expect(refused).toMatchObject({ code: "CUSTODY_KEK_RETIRED" });
    // The keyring brought along (the procedure's second step): the same process reads it at its next unwrap.
    copyFileSync(join(a, "keyring.json"), join(b, "keyring.json"));
    expect((await keysB.loadMaterial(keyId))?.hmacKey?.export().toString()).toBe(secret);
    const fixed = await runCli(["custody", "status", "--data", b, "--json"]);
    expect(fixed.code).toBe(0);
    expect(JSON.parse(fixed.stdout)).toMatchObject({ activeVersion: 2, versions: [1, 2], kekFloor: 2, warnings: [] });
    expect(await custodyStatus(hostB.store, hostB.envelope)).toMatchObject({ warnings: [] });
    recordText(rotate.stdout, behind.stdout, json.stdout, fixed.stdout);
  });
});

itLeaksNoSecret();
