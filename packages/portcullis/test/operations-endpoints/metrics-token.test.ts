/**
 * The metrics bearer token's file (`admin.metrics.tokenFile`, docs/operations-endpoints.md) is read
 * at startup like the identity secret: missing, unreadable, readable by group or others, or
 * shorter than 32 characters, the start fails with DATA_DIR_INVALID naming the file and the
 * setting (never its content), before anything listens.
 */
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/config.js";
import { readSecretFile } from "../../src/core/data-dir.js";
import { startPortcullis } from "../../src/runtime/runtime.js";
import { startWorkers } from "../../src/runtime/workers.js";
import cluster from "node:cluster";
import { captureLogger } from "../support/gateway.js";
import { ROUTES, dataDir } from "./support.js";

let d: Awaited<ReturnType<typeof dataDir>>;
beforeAll(async () => {
  d = await dataDir("token");
});
afterAll(() => {
  d.cleanup();
});

async function startError(tokenFile: string): Promise<{ code: unknown; message: string; logged: string }> {
  const { logger, lines } = captureLogger();
  const config = parseConfig(
    {
      dataDir: d.data,
      gateway: { host: "127.0.0.1", port: 0, upstream: "http://127.0.0.1:9" },
      admin: { enabled: true, host: "127.0.0.1", port: 0, metrics: { tokenFile } },
      routes: ROUTES,
    },
    d.dir,
  );
  try {
    const running = await startPortcullis(config, logger);
    await running.close(0);
  } catch (err) {
    return { code: (err as { code?: unknown }).code, message: (err as Error).message, logged: lines.join("") };
  }
  throw new Error("the start did not fail");
}

describe("admin.metrics.tokenFile at startup", () => {
  it("missing: DATA_DIR_INVALID naming the setting, not `portcullis init` (which does not write it)", async () => {
    const e = await startError("absent.token");
    expect(e.code).toBe("DATA_DIR_INVALID");
    expect(e.message).toContain("admin.metrics.tokenFile");
    expect(e.message).toContain(join(d.data, "absent.token"));
    expect(e.message).not.toContain("portcullis init");
  });

  it("readable by others, or too short: refused, without the token in the error or the log", async () => {
    const secret = "short-but-secret-token";
    writeFileSync(join(d.data, "short.token"), secret, { mode: 0o600 });
    const short = await startError("short.token");
    expect([short.code, short.message]).toEqual(["DATA_DIR_INVALID", `${join(d.data, "short.token")} (admin.metrics.tokenFile) must hold a secret of at least 32 characters`]);
    const long = "a-long-enough-metrics-token-0123456789";
    writeFileSync(join(d.data, "open.token"), long);
    chmodSync(join(d.data, "open.token"), 0o644);
    const open = await startError("open.token");
    expect(open.code).toBe("DATA_DIR_INVALID");
    expect(open.message).toContain("mode 0644");
    for (const e of [short, open]) {
      expect(e.message).not.toContain(secret);
      expect(e.message).not.toContain(long);
      expect(e.logged).not.toContain(secret);
      expect(e.logged).not.toContain(long);
    }
  });

  it("a directory: DATA_DIR_INVALID with the errno, not a raw error", async () => {
    mkdirSync(join(d.data, "dir.token"), { mode: 0o700 });
    const dir = await startError("dir.token");
    expect([dir.code, dir.message]).toEqual(["DATA_DIR_INVALID", `cannot read ${join(d.data, "dir.token")} (admin.metrics.tokenFile): EISDIR`]);
    expect(() => readSecretFile(join(d.data, "absent", "x"), "admin.metrics.tokenFile")).toThrow(/^missing .* \(admin\.metrics\.tokenFile\): write a secret/);
  });

  it("--workers: the primary refuses a missing token file before it forks a worker", async () => {
    const { logger } = captureLogger();
    const config = parseConfig(
      { dataDir: d.data, gateway: { host: "127.0.0.1", port: 0, upstream: "http://127.0.0.1:9" }, admin: { enabled: true, host: "127.0.0.1", port: 0, metrics: { tokenFile: "absent.token" } }, routes: ROUTES },
      d.dir,
    );
    let caught: unknown = null;
    try {
      const pool = await startWorkers({ config, source: { text: "{}", baseDir: d.dir, file: join(d.dir, "portcullis.json") }, workers: 1, logger });
      await pool.stop();
    } catch (err) {
      caught = err;
    }
    expect((caught as { code?: unknown } | null)?.code).toBe("DATA_DIR_INVALID");
    expect((caught as Error).message).toContain("admin.metrics.tokenFile");
    expect(Object.keys(cluster.workers ?? {})).toEqual([]);
  });
});
