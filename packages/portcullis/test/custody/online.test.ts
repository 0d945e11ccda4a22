/**
 * Rotation without downtime, across processes: a gateway (started as `portcullis start` starts
 * one, real sockets) serves signed requests while `portcullis custody rotate` runs in another
 * process and retires the old KEK version. No request fails, including those whose key the gateway
 * loads only after the rotation (under a version it learns of by itself). Once with the keyring
 * file, once with a SoftHSM2 token.
 */
import { valueOrThrow } from "../../src/errors/result.js";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/config.js";
import { parseCreateKeyInput } from "../../src/keys/input.js";
import { startPortcullis, urlOf } from "../../src/runtime/runtime.js";
import { initDataDir } from "../../src/core/data-dir.js";
import { runCli } from "../support/cli.js";
import { captureLogger, startEchoUpstream } from "../support/gateway.js";
import { TEST_ROUTES, signRequest } from "../support/harness.js";
import { SoftHsm, softhsmOrSkip } from "../support/softhsm.js";
import { itLeaksNoSecret, recordSecrets, recordText } from "./secrets.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function rotateWhileServing(custody: Record<string, unknown> | undefined, env: Record<string, string>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-online-"));
  dirs.push(dir);
  await initDataDir(dir, "test");
  const upstream = await startEchoUpstream();
  const configFile = join(dir, "portcullis.json");
  writeFileSync(
    configFile,
    JSON.stringify({
      dataDir: dir,
      gateway: { host: "127.0.0.1", port: 0, upstream: upstream.url },
      admin: { enabled: false },
      routes: TEST_ROUTES,
      limits: {},
      ...(custody === undefined ? {} : { custody }),
    }),
  );
  const { logger, lines } = captureLogger();
  const running = await startPortcullis(loadConfig(configFile), logger);
  try {
    const base = urlOf(running.gatewayAddress);
    const authority = base.replace("http://", "");
    const keys: { id: string; secret: string }[] = [];
    for (let i = 0; i < 40; i++) {
      const { key, secret } = await running.core.keys.create(valueOrThrow(parseCreateKeyInput({ account: `acct-${i % 4}`, scopes: ["read"] }, Date.now())), "test");
      if (secret !== null) keys.push({ id: key.id, secret });
    }
    recordSecrets(...keys.map((k) => k.secret));
    // The first 30 keys serve during the rotation; the last 10 only after it, so the gateway
    // loads them under the new KEK version, which only the other process created.
    const during = keys.slice(0, 30);
    const after = keys.slice(30);
    const failures: string[] = [];
    let served = 0;
    const send = async (k: { id: string; secret: string }): Promise<void> => {
      const headers = signRequest({ method: "GET", url: "/api/v3/account", host: authority, keyId: k.id, key: k.secret, created: Math.floor(Date.now() / 1000) });
      const { host: _host, ...rest } = headers;
      const res = await fetch(`${base}/api/v3/account`, { headers: rest });
      served++;
      if (res.status !== 200) failures.push(`${res.status} ${await res.text()}`);
      else await res.arrayBuffer();
    };
    let rotating = true;
    const rotation = runCli(["custody", "rotate", "--config", configFile, "--settle", "300", "--json"], env).finally(() => {
      rotating = false;
    });
    const client = async (offset: number): Promise<void> => {
      for (let i = offset; rotating; i++) {
        const k = during[i % during.length];
        if (k !== undefined) await send(k);
        await sleep(2);
      }
    };
    await Promise.all([rotation, client(0), client(7), client(13)]);
    const result = await rotation;
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    // The 40 keys' secrets, and the gateway's own: its session-secret key, its HPKE key for sealed
    // orders (docs/sealed-orders.md) and, unless the HSM holds them, its session-token and
    // audit-checkpoint signing keys (created when it started).
    const own = custody === undefined ? 4 : 2;
    expect(JSON.parse(result.stdout)).toMatchObject({ active: 2, rewrapped: 40 + own, retired: [1], failures: [] });
    for (const k of [...after, ...during]) await send(k);
    expect(failures).toEqual([]);
    expect(served).toBeGreaterThan(40);
    recordText(result.stdout, ...lines);
  } finally {
    await running.close(1_000);
    await upstream.close();
  }
}

describe("rotation beside a running gateway (another process)", () => {
  it("with the keyring file: no request fails, and the gateway follows the new version", async () => {
    await rotateWhileServing(undefined, {});
  });

  const hsmRun = softhsmOrSkip("PKCS#11 online rotation test (test/custody/online.test.ts)");
  describe.runIf(hsmRun)("with a SoftHSM2 token", () => {
    let hsm: SoftHsm;
    beforeAll(() => {
      hsm = new SoftHsm();
    });
    afterAll(() => {
      hsm.cleanup();
    });

    it("no request fails, and the gateway finds the KEK version the CLI created in the token", async () => {
      const token = hsm.initToken();
      recordSecrets(token.pin, token.soPin);
      await rotateWhileServing(hsm.custody(token), hsm.env);
    });
  });
});

itLeaksNoSecret();
