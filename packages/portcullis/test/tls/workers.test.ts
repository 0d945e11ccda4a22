/**
 * `portcullis start --workers 2` with `gateway.tls` (docs/tls.md, docs/processes.md): SIGHUP to
 * the primary reaches every worker, so every new connection, whichever worker takes it, is served
 * the certificate now in the files. Hot state in the real Redis under a prefix of its own.
 */
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { initDataDir } from "../../src/core/data-dir.js";
import { startCli } from "../support/cli.js";
import { TEST_ROUTES } from "../support/harness.js";
import { IN_CI, SHARED_REDIS_URL, deleteKeys, loudSkip, redisReachable, uniquePrefix } from "../support/redis.js";
import { type TestPki, makePki, servedFingerprint } from "../support/tls.js";

const REDIS = await redisReachable(SHARED_REDIS_URL);
if (!REDIS && !IN_CI) loudSkip("portcullis start --workers with TLS (test/tls/workers)", `no Redis at ${SHARED_REDIS_URL}`);
const withRedis = REDIS || IN_CI ? describe : describe.skip;

let pki: TestPki;
let dir: string;
const prefix = uniquePrefix("tlsw");

beforeAll(async () => {
  pki = makePki();
  dir = mkdtempSync(join(tmpdir(), "portcullis-tls-workers-"));
  await initDataDir(dir, "test");
});
afterAll(async () => {
  if (REDIS) {
    const redis = new Redis(SHARED_REDIS_URL);
    await deleteKeys(redis, prefix);
    redis.disconnect();
  }
  rmSync(dir, { recursive: true, force: true });
  pki.cleanup();
});


withRedis("portcullis start --workers 2 with TLS", () => {
  it("SIGHUP to the primary reloads the certificate in every worker", async () => {
    copyFileSync(pki.server.cert, join(dir, "gateway.crt"));
    copyFileSync(pki.server.key, join(dir, "gateway.key"));
    const config = join(dir, "portcullis.json");
    writeFileSync(
      config,
      JSON.stringify({
        dataDir: dir,
        environment: "test",
        gateway: { host: "127.0.0.1", port: 0, upstream: "http://127.0.0.1:9", tls: { cert: "gateway.crt", key: "gateway.key", reloadInterval: "off" } },
        admin: { enabled: false },
        hot: { backend: "redis", url: SHARED_REDIS_URL, prefix },
        routes: TEST_ROUTES,
      }),
    );
    const primary = await startCli(["start", "--config", config, "--workers", "2"], (line) => line.includes("portcullis started"));
    try {
      const started = JSON.parse(primary.line) as { gateway: string };
      expect(started.gateway).toMatch(/^https:/);
      const port = Number(new URL(started.gateway).port);
      for (let i = 0; i < 4; i++) expect(await servedFingerprint(port, pki.ca)).toBe(pki.server.fingerprint256);
      copyFileSync(pki.server2.cert, join(dir, "gateway.crt"));
      copyFileSync(pki.server2.key, join(dir, "gateway.key"));
      let reloads = 0;
      const bothReloaded = new Promise<void>((resolve) => {
        primary.child.stdout.on("data", (d: Buffer) => {
          reloads += d.toString().split("TLS certificate reloaded").length - 1;
          if (reloads >= 2) resolve();
        });
      });
      primary.child.kill("SIGHUP");
      await bothReloaded;
      // Connections are handed to the workers in turn: each of them serves the new certificate.
      for (let i = 0; i < 4; i++) expect(await servedFingerprint(port, pki.ca)).toBe(pki.server2.fingerprint256);
    } finally {
      expect(await primary.stop()).toBe(0);
    }
  });
});
