/**
 * The demo's console parts (issue 18): `portcullis demo --json` names the console URL and the
 * operator's credential file (mode 0600, the contract's format), with which the client SDK signs in
 * on the admin listener exactly as the browser does; and the background traffic bot, run in
 * process against a demo stack at a fast pace, moves the live statistics with allowed requests and
 * the three refusals it makes on purpose, from its own account, and stops cleanly.
 */
import { createClient } from "@portcullis/client";
import { type DemoStack, type DemoTraffic, startDemoStack, startDemoTraffic } from "@portcullis/demo-exchange";
import { existsSync, readFileSync, statSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/log/logger.js";
import type { StatsSnapshot } from "../../src/metrics/live-stats.js";
import { findConsoleDist } from "../../src/runtime/console-dir.js";
import { startCli } from "../support/cli.js";

interface Credential {
  keyId: string;
  algorithm: string;
  privateKey: string;
}

describe("portcullis demo --json --no-traffic", () => {
  let demo: Awaited<ReturnType<typeof startCli>>;
  let info: { admin: string; console: string; consoleCredential: string; dataDir: string; keys: Record<string, { id: string; account: string }> };

  beforeAll(async () => {
    demo = await startCli(["demo", "--json", "--no-traffic", "--port", "0", "--admin-port", "0", "--upstream-port", "0"]);
    info = JSON.parse(demo.line) as typeof info;
  });
  afterAll(async () => {
    if (demo.child.exitCode === null) await demo.stop();
  });

  it("names the console's URL and the operator's credential file (0600, keyId / algorithm / PKCS#8 PEM)", () => {
    expect(info.console).toBe(`${info.admin}/console/`);
    expect(info.consoleCredential).toBe(`${info.dataDir}/console-operator.json`);
    expect(statSync(info.consoleCredential).mode & 0o777).toBe(0o600);
    const credential = JSON.parse(readFileSync(info.consoleCredential, "utf8")) as Credential;
    expect(Object.keys(credential).sort()).toEqual(["algorithm", "keyId", "privateKey"]);
    expect(credential.algorithm).toBe("ed25519");
    expect(credential.keyId).toBe(info.keys.console?.id);
    expect(credential.privateKey).toMatch(/^-----BEGIN PRIVATE KEY-----\n[\s\S]+\n-----END PRIVATE KEY-----\n$/);
  });

  it("signs in on the admin listener with the credential file, as the console does, and reads the live statistics", async () => {
    const credential = JSON.parse(readFileSync(info.consoleCredential, "utf8")) as Credential;
    const client = createClient({ baseUrl: info.admin, keyId: credential.keyId, privateKey: credential.privateKey, algorithm: "ed25519" });
    const session = await client.logon({ ttl: "15m" });
    expect(session.session.apiKeyId).toBe(credential.keyId);
    expect(session.session.scopes).toEqual(["admin:*"]);
    const stats = await session.json<StatsSnapshot>("GET", "/portcullis/v1/stats");
    expect(stats.buckets).toHaveLength(360);
    expect(stats.totals.bySurface.admin?.allowed).toBeGreaterThanOrEqual(1);
    // No traffic: no decision was made for the traffic bot's keys.
    const traffic = [info.keys.traffic?.id, info.keys.trafficBurst?.id];
    expect(stats.topKeys.filter((k) => traffic.includes(k.keyId))).toEqual([]);
    await session.logout();
  });

  it("serves the console under /console/ when it is built, else CONSOLE_NOT_AVAILABLE", async () => {
    const res = await fetch(info.console);
    const dir = findConsoleDist();
    const built = dir !== null && existsSync(`${dir}/index.html`);
    if (built) {
      expect(res.status).toBe(200);
      expect(res.headers.get("content-security-policy")).toContain("default-src 'self'");
      await res.body?.cancel();
    } else {
      expect(res.status).toBe(404);
      expect(((await res.json()) as { code: string }).code).toBe("CONSOLE_NOT_AVAILABLE");
    }
  });
});

describe("the demo's background traffic", () => {
  let stack: DemoStack;
  let traffic: DemoTraffic;
  let operator: ReturnType<typeof createClient>;
  const ids: string[] = [];

  beforeAll(async () => {
    stack = await startDemoStack({ port: 0, adminPort: 0, upstreamPort: 0, logger: silentLogger(), serverTiming: false });
    const steady = await stack.createKey({ account: "demo-traffic", scopes: ["read"], dialects: ["binance"], label: "traffic" });
    const burst = await stack.createKey({ account: "demo-traffic", scopes: ["read"], dialects: ["binance"], label: "bursts", limits: { "key-weight-1m": 60 } });
    const admin = await stack.createKey({ account: "ops", scopes: ["admin:stats"], operator: true });
    ids.push(steady.key.id, burst.key.id);
    operator = createClient({ baseUrl: stack.admin ?? "", keyId: admin.key.id, secret: admin.secret ?? "" });
    // 75 steps (a burst) in 1.5 s instead of 30 s.
    traffic = startDemoTraffic({ gateway: stack.gateway, key: { id: steady.key.id, secret: steady.secret ?? "" }, burst: { id: burst.key.id, secret: burst.secret ?? "" }, stepMs: 20 });
  });
  afterAll(async () => {
    await traffic.stop();
    await stack.close();
  });

  it("moves the charts: mostly allowed, and refused SIGNATURE_INVALID, SCOPE_MISSING and RATE_LIMITED, on its own account", async () => {
    let stats: StatsSnapshot | null = null;
    const deadline = Date.now() + 20_000;
    // Waits for what the bot sends (a real server and a real pace: polled, not slept for a fixed time).
    while (Date.now() < deadline) {
      stats = await operator.json<StatsSnapshot>("GET", "/portcullis/v1/stats");
      const codes = stats.totals.byCode;
      if ((codes.SIGNATURE_INVALID ?? 0) > 0 && (codes.SCOPE_MISSING ?? 0) > 0 && (codes.RATE_LIMITED ?? 0) > 0) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    if (stats === null) throw new Error("no statistics");
    const gateway = stats.totals.bySurface.gateway;
    expect(gateway?.refused).toBeGreaterThan(0);
    expect(gateway?.allowed).toBeGreaterThan(3 * (gateway?.refused ?? 0));
    expect(Object.keys(stats.totals.byCode).sort()).toEqual(["RATE_LIMITED", "SCOPE_MISSING", "SIGNATURE_INVALID"]);
    for (const k of stats.topRefusedKeys) {
      expect(ids).toContain(k.keyId);
      expect(k.account).toBe("demo-traffic");
    }
    expect(stats.topKeys.filter((k) => ids.includes(k.keyId))).toHaveLength(2);
    expect(traffic.sent).toBeGreaterThan(75);
  });

  it("stops: nothing more is sent", async () => {
    await traffic.stop();
    const sent = traffic.sent;
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(traffic.sent).toBe(sent);
  });
});
