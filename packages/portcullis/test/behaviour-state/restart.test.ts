/**
 * A Redis that restarts without its data (a private redis-server, no persistence, killed with
 * SIGKILL and started again on its port): the snapshotting pair answers BEHAVIOUR_STATE_UNAVAILABLE
 * while it is down, then serves every state from its SQLite copy, losing only what changed after
 * the last snapshot, and writes them back to Redis as they change. Skipped loudly without
 * redis-server; never in CI.
 */
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { BehaviourStateError, SnapshottingBehaviourStore } from "../../src/storage/behaviour-state.js";
import { RedisBehaviourStore } from "../../src/storage/redis/behaviour.js";
import { hotRedisOptions } from "../../src/storage/redis/hot.js";
import { SqliteStore } from "../../src/storage/sqlite/store.js";
import { IN_CI, RedisServerProcess, freePort, loudSkip, redisServerInstalled } from "../support/redis.js";

const installed = redisServerInstalled();
if (!installed && !IN_CI) loudSkip("the behaviour-state Redis restart test", "redis-server is not installed");

const dir = mkdtempSync(join(tmpdir(), "portcullis-behaviour-restart-"));
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function increment(_id: string, current: Uint8Array | null): Uint8Array {
  return Uint8Array.of((current?.[0] ?? 0) + 1);
}

describe.runIf(installed || IN_CI)("behaviour states across a Redis restart", () => {
  it("serves the SQLite copy after Redis lost everything, and writes it back as states change", async () => {
    const port = await freePort();
    let server = await RedisServerProcess.start(port);
    const client = new Redis(`redis://127.0.0.1:${port}`, hotRedisOptions(500));
    client.on("error", () => undefined);
    const sqlite = new SqliteStore(join(dir, "portcullis.db"));
    const redis = new RedisBehaviourStore({ client, prefix: "pc:" });
    const store = new SnapshottingBehaviourStore(redis, sqlite.behaviour);
    try {
      for (let i = 0; i < 3; i++) await store.update(["pck_test_v1_k", "account:acme"], increment);
      await store.flush();
      // Changed after the last snapshot: lost with Redis.
      await store.update(["pck_test_v1_k"], increment);

      await server.kill("SIGKILL");
      const down = await store.update(["pck_test_v1_k"], increment).then(
        () => null,
        (err: unknown) => err,
      );
      expect(down).toBeInstanceOf(BehaviourStateError);
      expect((down as BehaviourStateError).code).toBe("BEHAVIOUR_STATE_UNAVAILABLE");

      server = await RedisServerProcess.start(port);
      if (client.status !== "ready") await once(client, "ready");
      expect(await client.dbsize()).toBe(0);

      const back = await store.load(["pck_test_v1_k", "account:acme"]);
      expect([back.get("pck_test_v1_k")?.[0], back.get("account:acme")?.[0]]).toEqual([3, 3]);
      expect(await store.ids(null, 10)).toEqual(["account:acme", "pck_test_v1_k"]);
      await store.update(["pck_test_v1_k"], increment);
      expect((await redis.load(["pck_test_v1_k"])).get("pck_test_v1_k")?.[0]).toBe(4);
      await store.flush();
      expect((await sqlite.behaviour.load(["pck_test_v1_k"])).get("pck_test_v1_k")?.[0]).toBe(4);
    } finally {
      await store.close().catch(() => undefined);
      await redis.close();
      client.disconnect();
      await sqlite.close();
      await server.kill();
    }
  });
});
