import { performance } from "node:perf_hooks";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CodedError } from "../../src/errors/catalogue.js";
import { PostgresStore, type PostgresStoreOptions } from "../../src/storage/postgres/store.js";
import type { KeyChange, KeyRow } from "../../src/storage/types.js";
import { keyRecord } from "../support/keys.js";
import { PrivatePostgres } from "../support/private-postgres.js";
import { IN_CI, loudSkip } from "../support/redis.js";
import { uniqueSchema } from "../support/postgres.js";

/**
 * PostgresStore's outage tracking (docs/failures.md) against a private PostgreSQL that the tests
 * stop, kill, freeze and start: `availability.outageSince` is set when the change feed's
 * connection is lost (or a statement's connection error is confirmed) and cleared only once the
 * feed is back and caught up; statements fail fast with DURABLE_STORE_UNAVAILABLE meanwhile.
 */

const installed = PrivatePostgres.available();
const run = installed || IN_CI;
if (!run) loudSkip("the PostgreSQL outage tests", "no initdb / pg_ctl on PATH or in /usr/lib/postgresql/*/bin");

const T0 = 1_700_000_000_000;
const FAST: Partial<PostgresStoreOptions> = { reconnectDelayMs: 100, heartbeatMs: 200, heartbeatTimeoutMs: 300, connectTimeoutMs: 500, keyReadTimeoutMs: 500, queryTimeoutMs: 2_000 };

let n = 0;
function row(): KeyRow {
  n++;
  // An envelope's header as custody writes it (format 0x01, KEK version 1) and a body.
  const envelope = Buffer.alloc(23, 0xab);
  envelope.writeUInt8(1, 0);
  envelope.writeUInt32BE(1, 1);
  return { ...keyRecord({ id: `pck_test_v1_${String(n).padStart(28, "0")}`, createdAt: T0, updatedAt: T0 }), secretEnvelope: envelope, passphraseHash: null, passphraseEnvelope: null };
}

function change(action: KeyChange["action"]): KeyChange {
  return { action, actor: "cli:test", at: T0 + 1_000, detail: {} };
}

function codeOf(err: unknown): string | undefined {
  return err instanceof CodedError ? String((err as { code: unknown }).code) : undefined;
}

/** Polls `check` (real time: reconnection is real) until it holds, or fails after `ms`. */
async function until(check: () => boolean, ms: number, what: string): Promise<number> {
  const started = performance.now();
  while (!check()) {
    if (performance.now() - started > ms) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return performance.now() - started;
}

describe.runIf(run)("PostgresStore availability: outages and recovery", () => {
  let server: PrivatePostgres;
  const stores: PostgresStore[] = [];

  async function open(schema: string, extra: Partial<PostgresStoreOptions> = {}): Promise<PostgresStore> {
    const store = await PostgresStore.open({ url: server.url, schema, poolSize: 4, ...FAST, ...extra });
    stores.push(store);
    return store;
  }

  beforeAll(async () => {
    server = await PrivatePostgres.create();
  }, 120_000);

  afterAll(async () => {
    await Promise.all(stores.map((s) => s.close().catch(() => undefined)));
    await server.cleanup();
  });

  it("a stopped server is an outage at once; statements fail fast and coded; it ends once the feed is back and caught up", async () => {
    const store = await open(uniqueSchema("avail"));
    const changes: string[] = [];
    const events: string[] = [];
    store.subscribe((ids) => changes.push(...ids));
    store.availability.watch((since) => events.push(since === null ? "back" : "lost"));
    await until(() => store.availability.outageSince === null, 5_000, "the store starts available");
    const key = row();
    await store.insert(key, change("create"));

    await server.stop();
    await until(() => store.availability.outageSince !== null, 2_000, "the outage is noticed");
    const started = performance.now();
    const err = await store.get(key.id).then(() => null, (e: unknown) => e);
    expect(codeOf(err)).toBe("DURABLE_STORE_UNAVAILABLE");
    expect(performance.now() - started).toBeLessThan(1_000);
    const write = await store.transition(key.id, ["active"], "revoked", null, change("revoke")).then(() => null, (e: unknown) => e);
    expect(codeOf(write)).toBe("DURABLE_STORE_UNAVAILABLE");

    await server.start();
    await until(() => store.availability.outageSince === null, 5_000, "the outage ends");
    expect(events).toEqual(["lost", "back"]);
    // Nothing of the refused write was kept.
    expect((await store.get(key.id))?.status).toBe("active");
  }, 60_000);

  it("a change made by another process while this one had lost the feed is delivered before the store counts as back", async () => {
    const schema = uniqueSchema("catchup");
    // A slow reconnect, so that the other process's change certainly commits while this one is out.
    const store = await open(schema, { reconnectDelayMs: 800 });
    const other = await open(schema);
    const key = row();
    await other.insert(key, change("create"));
    const log: string[] = [];
    store.subscribe((ids, local) => {
      if (!local) log.push(`change ${ids.join(",")}`);
    });
    store.availability.watch((since) => log.push(since === null ? "back" : "lost"));
    await until(() => log.includes(`change ${key.id}`), 5_000, "the insert is delivered");
    log.length = 0;
    // Only this store's feed connection is cut (the server stays up): as a partition of one host.
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", [`portcullis-feed:${schema}`]);
    await until(() => log.includes("lost"), 2_000, "the lost feed is an outage");
    await other.transition(key.id, ["active"], "revoked", null, change("revoke"));
    await until(() => log.includes("back"), 5_000, "the outage ends");
    await admin.end();
    expect(log).toEqual(["lost", `change ${key.id}`, "back"]);
  }, 60_000);

  it("one killed connection is not an outage: the statement fails coded, the feed's connection vouches for the server", async () => {
    const schema = uniqueSchema("onekill");
    const store = await open(schema);
    const events: (number | null)[] = [];
    store.subscribe(() => undefined);
    store.availability.watch((since) => events.push(since));
    await new Promise((resolve) => setTimeout(resolve, 300));
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    // A statement that runs long enough to be killed: through the store's own pool (its outcome
    // taken at once, so the rejection is handled when it comes).
    const sleeping = (store as unknown as { pool: pg.Pool }).pool.query("SELECT pg_sleep(5)").then(
      () => null,
      (e: unknown) => e,
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(5)'");
    await admin.end();
    expect(codeOf(await sleeping)).toBe("DURABLE_STORE_UNAVAILABLE");
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(events).toEqual([]);
    expect(store.availability.outageSince).toBeNull();
  }, 60_000);

  it("a frozen server (connections open, nothing answers) is found by the feed's heartbeat; thawed, it is back", async () => {
    const store = await open(uniqueSchema("frozen"));
    store.subscribe(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 300));
    server.freeze();
    try {
      const ms = await until(() => store.availability.outageSince !== null, 3_000, "the heartbeat notices");
      // Heartbeat period + its timeout, and scheduling slack.
      expect(ms).toBeLessThan(200 + 300 + 1_500);
      const started = performance.now();
      const err = await store.get("pck_test_v1_0000000000000000000000000001").then(() => null, (e: unknown) => e);
      expect(codeOf(err)).toBe("DURABLE_STORE_UNAVAILABLE");
      // The key read's own bound, not the kernel's.
      expect(performance.now() - started).toBeLessThan(1_500);
    } finally {
      server.thaw();
    }
    await until(() => store.availability.outageSince === null, 5_000, "back after the thaw");
  }, 60_000);

  it("without subscribers a confirmed connection error is an outage, and a pooled probe ends it; kill -9 included", async () => {
    const store = await open(uniqueSchema("nosub"));
    await server.kill();
    const err = await store.getMeta("environment").then(() => null, (e: unknown) => e);
    expect(codeOf(err)).toBe("DURABLE_STORE_UNAVAILABLE");
    await until(() => store.availability.outageSince !== null, 2_000, "the check confirms the outage");
    await server.start();
    await until(() => store.availability.outageSince === null, 5_000, "the probe finds it back");
    expect(await store.getMeta("environment")).toBeUndefined();
  }, 60_000);
});
