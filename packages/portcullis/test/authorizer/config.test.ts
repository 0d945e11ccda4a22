/**
 * `"gateway": { "mode": "authorizer" }`: what the configuration accepts and refuses, and
 * `startPortcullis` (what `portcullis start` runs) serving the authorizer on that config, with
 * the identity secret from the data directory the upstream verifies with.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request } from "undici";
import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "../../src/config/config.js";
import { initDataDir, readSecretFile } from "../../src/core/data-dir.js";
import { Authorizer, NGINX_ALLOW_STATUS, NGINX_PATH } from "../../src/gateway/authorizer.js";
import { Gateway } from "../../src/gateway/server.js";
import { parseCreateKeyInput } from "../../src/keys/input.js";
import { valueOrThrow } from "../../src/errors/result.js";
import { silentLogger } from "../../src/log/logger.js";
import { startPortcullis } from "../../src/runtime/runtime.js";
import { createIdentityVerifier } from "../../src/upstream.js";
import { signRequest } from "../support/harness.js";

const routes = [{ method: "GET", path: "/api/v3/account", permission: "read" }];

function refused(gateway: Record<string, unknown>, extra: Record<string, unknown> = {}): string {
  try {
    parseConfig({ gateway, routes, ...extra }, "/srv");
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error("expected a ConfigError");
}

describe("gateway.mode", () => {
  it("is proxy by default, where upstream is required", () => {
    expect(parseConfig({ gateway: { upstream: "http://127.0.0.1:9000" }, routes }, "/srv").gateway).toMatchObject({ mode: "proxy", upstream: "http://127.0.0.1:9000" });
    expect(refused({})).toMatch(/gateway.upstream is required/);
  });

  it("authorizer: upstream optional (null), trustedProxies required, no WebSocket routes", () => {
    expect(parseConfig({ gateway: { mode: "authorizer", trustedProxies: ["127.0.0.1/32"] }, routes }, "/srv").gateway).toMatchObject({ mode: "authorizer", upstream: null });
    expect(parseConfig({ gateway: { mode: "authorizer", trustedProxies: ["10.0.0.0/8"], upstream: "http://127.0.0.1:9000" }, routes }, "/srv").gateway.upstream).toBe("http://127.0.0.1:9000");
    expect(refused({ mode: "authorizer" })).toMatch(/trustedProxies is required in authorizer mode/);
    expect(refused({ mode: "auth", upstream: "http://127.0.0.1:9000" })).toMatch(/gateway.mode must be "proxy" or "authorizer"/);
    expect(refused({ mode: "authorizer", trustedProxies: ["127.0.0.1/32"] }, { websocket: { routes: [{ path: "/ws", permission: "read", methods: { ping: { permission: "public" } } }] } })).toMatch(/websocket routes need the proxy mode/);
  });
});

describe("startPortcullis in authorizer mode", () => {
  it("serves the authorizer (not the gateway) with the data directory's identity secret", async () => {
    const dir = mkdtempSync(join(tmpdir(), "portcullis-authorizer-runtime-"));
    try {
      await initDataDir(dir, "test");
      const config = parseConfig(
        { dataDir: dir, environment: "test", gateway: { mode: "authorizer", host: "127.0.0.1", port: 0, trustedProxies: ["127.0.0.1/32"] }, admin: { enabled: false }, routes },
        dir,
      );
      const running = await startPortcullis(config, silentLogger());
      try {
        expect(running.gateway).toBeInstanceOf(Authorizer);
        expect(running.gateway).not.toBeInstanceOf(Gateway);
        const created = await running.core.keys.create(valueOrThrow(parseCreateKeyInput({ account: "acct-9", scopes: ["read"] }, Date.now())), "test");
        const host = `127.0.0.1:${running.gatewayAddress.port}`;
        const headers = signRequest({ method: "GET", url: "/api/v3/account", host, keyId: created.key.id, key: created.secret ?? "", created: Math.floor(Date.now() / 1000) });
        const res = await request(`http://${host}${NGINX_PATH}`, { headers: { ...headers, "x-original-uri": "/api/v3/account" } });
        await res.body.dump();
        expect(res.statusCode).toBe(NGINX_ALLOW_STATUS);
        const verify = createIdentityVerifier(readSecretFile(join(dir, "identity.secret")));
        expect(verify({ method: "GET", url: "/api/v3/account", headers: res.headers }, Buffer.alloc(0))).toMatchObject({ ok: true, identity: { account: "acct-9" } });
      } finally {
        await running.close(500);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
