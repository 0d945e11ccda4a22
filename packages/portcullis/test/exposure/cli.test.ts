/**
 * `portcullis keys risk`, the real command in its own processes: on the data directory (`--data`:
 * the limits, routes and prices of the directory's own portcullis.json, the policy version in
 * force) and through a running gateway's admin API (`--admin`), with `--json` and without;
 * failures as one line with their code.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RiskProfile } from "../../src/exposure/profile.js";
import { runCli, startCli } from "../support/cli.js";
import { startEchoUpstream } from "../support/gateway.js";
import { CAPPED, PRICE_TABLE, ROUTES } from "./support.js";

let dir: string;
let data: string;
let upstream: Awaited<ReturnType<typeof startEchoUpstream>>;
let gateway: Awaited<ReturnType<typeof startCli>> | null = null;
let wide: string;
let narrow: string;

// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- a typed reading of JSON output
const json = <T>(stdout: string): T => JSON.parse(stdout) as T;
const errorCode = (stderr: string): string => (JSON.parse(stderr) as { error: { code: string } }).error.code;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "portcullis-risk-cli-"));
  data = join(dir, "data");
  expect((await runCli(["init", "--data", data, "--environment", "test", "--json"])).code).toBe(0);
  upstream = await startEchoUpstream();
  const configPath = join(data, "portcullis.json");
  const config = JSON.parse(readFileSync(configPath, "utf8")) as Record<string, Record<string, unknown>>;
  config.gateway = { ...config.gateway, host: "127.0.0.1", port: 0, upstream: upstream.url };
  config.admin = { ...config.admin, port: 0 };
  writeFileSync(configPath, JSON.stringify({ ...config, routes: ROUTES, prices: PRICE_TABLE }));
  writeFileSync(join(dir, "policy.json"), JSON.stringify(CAPPED));
  expect((await runCli(["policy", "apply", join(dir, "policy.json"), "--data", data, "--json"])).code).toBe(0);
  wide = json<{ id: string }>((await runCli(["keys", "create", "--data", data, "--account", "acme", "--scopes", "read,trade,withdraw", "--json"])).stdout).id;
  narrow = json<{ id: string }>((await runCli(["keys", "create", "--data", data, "--account", "acme", "--scopes", "read", "--ip", "192.0.2.7", "--json"])).stdout).id;
});
afterAll(async () => {
  await gateway?.stop();
  await upstream.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("on the data directory (--data)", () => {
  it("one key as JSON: the configured limits and routes, the policy in force", async () => {
    const res = await runCli(["keys", "risk", wide, "--data", data, "--json"]);
    expect(res.code).toBe(0);
    const p = json<RiskProfile>(res.stdout);
    expect(p).toMatchObject({ keyId: wide, account: "acme", policyVersion: 1, usable: true });
    // The init limits: orders-10s 100 is the tightest for orders; key-weight-1m 1200 for the withdraw route (weight 10).
    expect(p.exposure).toMatchObject({ maxOrdersPerHour: 36_100, maxWithdrawalsPerHour: 7320, maxWithdrawalPerHour: 5000, maxOrderNotional: null });
    expect(p.exposure.reachableFrom.from).toBe("anywhere");
    expect(p.sensitivities.find((s) => s.control === "scope withdraw")?.moves).toEqual([{ field: "maxWithdrawalPerHour", from: 5000, to: 0 }]);
  });

  it("one key for people: the numbers and the sensitivities", async () => {
    const res = await runCli(["keys", "risk", wide, "--data", data]);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/^risk score {4}\d+(\.\d)? \/ 100 \(withdrawal /m);
    expect(res.stdout).toMatch(/^withdrawals {3}5,000\/h to a new address, 5,000\/h to a known one \(7,320 requests\/h; policy version 1\)$/m);
    expect(res.stdout).toMatch(/^ {2}USDT {8}one up to 1000, 5000\/h to a new address$/m);
    expect(res.stdout).toMatch(/^reachable {5}anywhere \(no IP allowlist\)$/m);
    expect(res.stdout).toMatch(/^sensitivities \(largest reduction first\)$/m);
    expect(res.stdout).toMatch(/^ +-\d+(\.\d)? {2}remove the withdraw scope: maxWithdrawalPerHour 5,000 → 0$/m);
    expect(res.stdout).toMatch(/^ +-20 {2}add an IP allowlist of one address \(e\.g\. 192\.0\.2\.1\/32\): reachableFrom anywhere → 1 network$/m);
    expect(res.stdout).toMatch(/^ +\+\d+(\.\d)? {2}remove the policy rule "daily cap": maxWithdrawalPerHour 5,000 → 7,320,000$/m);
  });

  it("--top N: riskiest first, as JSON and as a table", async () => {
    const top = json<RiskProfile[]>((await runCli(["keys", "risk", "--top", "5", "--data", data, "--json"])).stdout);
    expect(top.map((p) => p.keyId)).toEqual([wide, narrow]);
    expect(top[0]?.riskScore).toBeGreaterThan(top[1]?.riskScore ?? 100);
    const table = await runCli(["keys", "risk", "--top", "1", "--data", data]);
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split("\n");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^score +key +account +withdraw\/h +orders\/h +reach$/);
    expect(lines[1]).toContain(wide);
    expect(lines[1]).toMatch(/5,000 +36,100 +anywhere$/);
  });

  it("refusals with their codes: no id and no --top, both, a bad N, --account without --top, an unknown key, no configuration", async () => {
    expect(errorCode((await runCli(["keys", "risk", "--data", data, "--json"])).stderr)).toBe("VALIDATION_FAILED");
    expect(errorCode((await runCli(["keys", "risk", wide, "--top", "3", "--data", data, "--json"])).stderr)).toBe("VALIDATION_FAILED");
    expect(errorCode((await runCli(["keys", "risk", "--top", "0", "--data", data, "--json"])).stderr)).toBe("VALIDATION_FAILED");
    expect(errorCode((await runCli(["keys", "risk", wide, "--account", "acme", "--data", data, "--json"])).stderr)).toBe("VALIDATION_FAILED");
    const unknown = await runCli(["keys", "risk", "pk_test_00000000000000000000000000000000", "--data", data]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^KEY_NOT_FOUND: /);
    expect(errorCode((await runCli(["keys", "risk", wide, "--data", join(dir, "nowhere"), "--json"])).stderr)).toBe("CONFIG_UNREADABLE");
  });
});

describe("through a running gateway's admin API (--admin)", () => {
  let adminUrl: string;
  let env: Record<string, string>;
  beforeAll(async () => {
    gateway = await startCli(["start", "--config", join(data, "portcullis.json")], (line) => line.includes("portcullis started"));
    adminUrl = (JSON.parse(gateway.line) as { admin: string }).admin;
    const key = json<{ id: string; secret: string }>((await runCli(["keys", "create", "--data", data, "--account", "ops", "--scopes", "admin:*", "--operator", "--ip", "127.0.0.1", "--json"])).stdout);
    env = { PORTCULLIS_ADMIN_KEY_ID: key.id, PORTCULLIS_ADMIN_SECRET: key.secret };
  });

  it("the same numbers as on the data directory, and the ranking", async () => {
    const p = json<RiskProfile>((await runCli(["keys", "risk", wide, "--admin", adminUrl, "--json"], env)).stdout);
    expect(p.exposure).toMatchObject({ maxOrdersPerHour: 36_100, maxWithdrawalPerHour: 5000 });
    const top = json<RiskProfile[]>((await runCli(["keys", "risk", "--top", "1", "--admin", adminUrl, "--json"], env)).stdout);
    expect(top.map((k) => k.keyId)).toEqual([wide]);
    const people = await runCli(["keys", "risk", wide, "--admin", adminUrl], env);
    expect(people.stdout).toMatch(/^withdrawals {3}5,000\/h to a new address/m);
  });

  it("an account admin key of another account does not find the key", async () => {
    const other = json<{ id: string; secret: string }>((await runCli(["keys", "create", "--data", data, "--account", "other", "--scopes", "admin:keys", "--json"])).stdout);
    const res = await runCli(["keys", "risk", wide, "--admin", adminUrl, "--json"], { PORTCULLIS_ADMIN_KEY_ID: other.id, PORTCULLIS_ADMIN_SECRET: other.secret });
    expect(errorCode(res.stderr)).toBe("KEY_NOT_FOUND");
  });
});
