/**
 * `portcullis start` with `gateway.tls` (docs/tls.md), as a process: it prints https URLs, a
 * SIGHUP makes it serve the certificate now in the files (it does not stop), and a start with a
 * bad key exits 1 with TLS_MATERIAL_INVALID.
 */
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { initDataDir } from "../../src/core/data-dir.js";
import { runCli, startCli } from "../support/cli.js";
import { TEST_ROUTES } from "../support/harness.js";
import { type TestPki, makePki, servedFingerprint } from "../support/tls.js";

let pki: TestPki;
let dir: string;

beforeAll(async () => {
  pki = makePki();
  dir = mkdtempSync(join(tmpdir(), "portcullis-tls-start-"));
  await initDataDir(dir, "test");
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  pki.cleanup();
});

function writeConfig(name: string, key: string): string {
  const file = join(dir, name);
  writeFileSync(
    file,
    JSON.stringify({
      dataDir: dir,
      environment: "test",
      gateway: { host: "127.0.0.1", port: 0, upstream: "http://127.0.0.1:9", tls: { cert: "gateway.crt", key, reloadInterval: "off" } },
      admin: { enabled: false },
      routes: TEST_ROUTES,
    }),
  );
  return file;
}


describe("portcullis start with TLS", () => {
  it("prints https URLs and reloads the certificate on SIGHUP", async () => {
    copyFileSync(pki.server.cert, join(dir, "gateway.crt"));
    copyFileSync(pki.server.key, join(dir, "gateway.key"));
    const gateway = await startCli(["start", "--config", writeConfig("good.json", "gateway.key")], (line) => line.includes("portcullis started"));
    try {
      const started = JSON.parse(gateway.line) as { gateway: string };
      expect(started.gateway).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const port = Number(new URL(started.gateway).port);
      expect(await servedFingerprint(port, pki.ca)).toBe(pki.server.fingerprint256);
      copyFileSync(pki.server2.cert, join(dir, "gateway.crt"));
      copyFileSync(pki.server2.key, join(dir, "gateway.key"));
      const reloaded = new Promise<void>((resolve) => {
        gateway.child.stdout.on("data", (d: Buffer) => {
          if (d.toString().includes("TLS certificate reloaded")) resolve();
        });
      });
      gateway.child.kill("SIGHUP");
      await reloaded;
      expect(await servedFingerprint(port, pki.ca)).toBe(pki.server2.fingerprint256);
    } finally {
      expect(await gateway.stop()).toBe(0);
    }
  });

  it("exits 1 with TLS_MATERIAL_INVALID when the key is not the certificate's", async () => {
    copyFileSync(pki.server.cert, join(dir, "gateway.crt"));
    copyFileSync(pki.client1.key, join(dir, "wrong.key"));
    const result = await runCli(["start", "--config", writeConfig("bad.json", "wrong.key")]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("TLS_MATERIAL_INVALID");
    expect(result.stderr).toContain("does not match the certificate");
  });
});
