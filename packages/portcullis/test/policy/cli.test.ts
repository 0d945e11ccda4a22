/**
 * `portcullis policy …` and `portcullis addresses …`, the real command in its own processes: on the
 * data directory (`--data`, the cooldown read from the directory's own portcullis.json) and through
 * a running gateway's admin API (`--admin`), with `--json` and without; failures as one line with
 * their code.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TEST_ROUTES } from "../support/harness.js";
import { runCli, startCli } from "../support/cli.js";
import { startEchoUpstream } from "../support/gateway.js";

let dir: string;
let data: string;
let upstream: Awaited<ReturnType<typeof startEchoUpstream>>;
let gateway: Awaited<ReturnType<typeof startCli>> | null = null;

const H = 3_600_000;
const POLICY = {
  description: "treasury",
  rules: [
    { name: "new destinations", match: { kind: ["withdraw"], destination: "new" }, action: { type: "block", reason: "add it to the book first" } },
    { name: "big", match: { kind: ["withdraw"], amount: { over: "1000" } }, action: { type: "hold", approvals: [{ group: "treasury", count: 2 }], delay: "10m" } },
    { name: "rest", action: { type: "allow" } },
  ],
};

// The command's JSON output, read as the shape the test expects (a wrong shape fails the asserts).
// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- a typed reading of JSON output
const json = <T>(stdout: string): T => JSON.parse(stdout) as T;
const errorCode = (stderr: string): string => (JSON.parse(stderr) as { error: { code: string } }).error.code;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "portcullis-policy-cli-"));
  data = join(dir, "data");
  expect((await runCli(["init", "--data", data, "--environment", "test", "--json"])).code).toBe(0);
  upstream = await startEchoUpstream();
  const configPath = join(data, "portcullis.json");
  const config = JSON.parse(readFileSync(configPath, "utf8")) as Record<string, Record<string, unknown>>;
  config.gateway = { ...config.gateway, host: "127.0.0.1", port: 0, upstream: upstream.url };
  config.admin = { ...config.admin, port: 0 };
  writeFileSync(configPath, JSON.stringify({ ...config, routes: TEST_ROUTES, policy: { addressCooldown: "2h" } }));
  writeFileSync(join(dir, "policy.json"), JSON.stringify(POLICY));
  writeFileSync(join(dir, "bad.json"), JSON.stringify({ rules: [{ name: "only", match: { kind: ["withdraw"] }, action: { type: "allow" } }] }));
  writeFileSync(join(dir, "not-json.json"), "{ rules");
});
afterAll(async () => {
  await gateway?.stop();
  await upstream.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("on the data directory (--data)", () => {
  it("shows version 0, applies a document, lists versions", async () => {
    const shown = await runCli(["policy", "show", "--data", data]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/^version {5}0 \(built in: allow everything\)$/m);
    const applied = await runCli(["policy", "apply", join(dir, "policy.json"), "--data", data, "--json"]);
    expect(applied.code).toBe(0);
    expect(json<{ state: string; version: number; rules: number; createdBy: string }>(applied.stdout)).toMatchObject({ state: "applied", version: 1, rules: 3, createdBy: expect.stringMatching(/^cli:/) as unknown });
    const now = json<{ version: number; document: unknown }>((await runCli(["policy", "show", "--data", data, "--json"])).stdout);
    expect(now).toMatchObject({ version: 1, document: POLICY });
    expect(json<{ version: number }>((await runCli(["policy", "show", "--version", "0", "--data", data, "--json"])).stdout).version).toBe(0);
    expect(json<{ version: number }[]>((await runCli(["policy", "versions", "--data", data, "--json"])).stdout).map((v) => v.version)).toEqual([1, 0]);
  });

  it("refuses a bad document with its paths, a file that is not JSON, an unknown version", async () => {
    const bad = await runCli(["policy", "apply", join(dir, "bad.json"), "--data", data]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^VALIDATION_FAILED: the policy document is not valid: rules\[0\]\.match: the last rule must be a catch-all/);
    const notJson = await runCli(["policy", "apply", join(dir, "not-json.json"), "--data", data, "--json"]);
    expect(errorCode(notJson.stderr)).toBe("VALIDATION_FAILED");
    const missing = await runCli(["policy", "show", "--version", "7", "--data", data, "--json"]);
    expect(missing.code).toBe(1);
    expect(errorCode(missing.stderr)).toBe("POLICY_VERSION_NOT_FOUND");
    expect(errorCode((await runCli(["policy", "apply", join(dir, "nowhere.json"), "--data", data, "--json"])).stderr)).toBe("FILE_ACCESS_FAILED");
  });

  it("the dry run prints the trace, readable and as JSON", async () => {
    const op = JSON.stringify({ kind: "withdraw", asset: "USDT", amount: "1500", address: "TNOWHERE" });
    const human = await runCli(["policy", "test", "--operation", op, "--account", "acme", "--data", data]);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain('decision    block (add it to the book first), by rule "new destinations" of version 1');
    expect(human.stdout).toContain("- destination TNOWHERE is not in the account's USDT address book: it is new");
    const out = json<{ decision: { rule: string }; trace: unknown[] }>((await runCli(["policy", "test", "--operation", op, "--account", "acme", "--data", data, "--json"])).stdout);
    expect(out.decision.rule).toBe("new destinations");
    expect(out.trace).toHaveLength(1);
    const bad = await runCli(["policy", "test", "--operation", '{"kind":"withdraw"}', "--data", data, "--json"]);
    expect(errorCode(bad.stderr)).toBe("VALIDATION_FAILED");
    expect(errorCode((await runCli(["policy", "test", "--operation", "{}", "--source", "nope", "--data", data, "--json"])).stderr)).toBe("VALIDATION_FAILED");
  });

  it("adds an address with the configured cooldown, lists it, removes it at once", async () => {
    const added = await runCli(["addresses", "add", "--data", data, "--account", "acme", "--asset", "usdt", "--address", "TADDR1", "--network", "TRX", "--label", "cold", "--json"]);
    expect(added.code).toBe(0);
    const entry = json<{ id: string; asset: string; addedAt: number; usableFrom: number; state: string }>(added.stdout);
    expect(entry).toMatchObject({ asset: "USDT", state: "cooling" });
    expect(entry.usableFrom - entry.addedAt).toBe(2 * H);
    const listed = await runCli(["addresses", "list", "--data", data, "--account", "acme"]);
    expect(listed.stdout).toMatch(new RegExp(`^${entry.id}  acme  USDT   TADDR1 \\(network TRX\\)  cooling until .*  "cold"$`, "m"));
    expect(errorCode((await runCli(["addresses", "add", "--data", data, "--account", "acme", "--asset", "USDT", "--address", "TADDR1", "--network", "TRX", "--json"])).stderr)).toBe("ADDRESS_EXISTS");
    const removed = await runCli(["addresses", "remove", entry.id, "--data", data, "--json"]);
    expect(json<{ state: string }>(removed.stdout).state).toBe("removed");
    expect(json<unknown[]>((await runCli(["addresses", "list", "--data", data, "--json"])).stdout)).toEqual([]);
    expect(json<unknown[]>((await runCli(["addresses", "list", "--data", data, "--removed", "--json"])).stdout)).toHaveLength(1);
    const again = await runCli(["addresses", "remove", entry.id, "--data", data]);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe("ADDRESS_NOT_FOUND: No such address in the address book.\n");
  });
});

describe("through a running gateway's admin API (--admin)", () => {
  let adminUrl: string;
  let env: Record<string, string>;
  beforeAll(async () => {
    gateway = await startCli(["start", "--config", join(data, "portcullis.json")], (line) => line.includes("portcullis started"));
    adminUrl = (JSON.parse(gateway.line) as { admin: string }).admin;
    const key = JSON.parse((await runCli(["keys", "create", "--data", data, "--account", "ops", "--scopes", "admin:*", "--operator", "--json"])).stdout) as { id: string; secret: string };
    env = { PORTCULLIS_ADMIN_KEY_ID: key.id, PORTCULLIS_ADMIN_SECRET: key.secret };
  });

  it("shows, applies, dry-runs, and keeps the address book, as on the data directory", async () => {
    expect(json<{ version: number }>((await runCli(["policy", "show", "--admin", adminUrl, "--json"], env)).stdout).version).toBe(1);
    const applied = await runCli(["policy", "apply", join(dir, "policy.json"), "--admin", adminUrl], env);
    expect(applied.stdout).toMatch(/^policy version 2 is in force \(3 rules, digest [0-9a-f]{64}\)$/m);
    // The data directory sees the gateway's change.
    expect(json<{ version: number }>((await runCli(["policy", "show", "--data", data, "--json"])).stdout).version).toBe(2);
    const added = json<{ id: string; addedAt: number; usableFrom: number }>((await runCli(["addresses", "add", "--admin", adminUrl, "--account", "acme", "--asset", "BTC", "--address", "bc1qexample", "--json"], env)).stdout);
    expect(added.usableFrom - added.addedAt).toBe(2 * H);
    const op = JSON.stringify({ kind: "withdraw", asset: "BTC", amount: "1", address: "bc1qexample" });
    const cooling = json<{ decision: { rule: string } }>((await runCli(["policy", "test", "--operation", op, "--account", "acme", "--admin", adminUrl, "--json"], env)).stdout);
    expect(cooling.decision.rule).toBe("new destinations");
    const later = new Date(added.usableFrom).toISOString();
    const usable = json<{ decision: { rule: string } }>((await runCli(["policy", "test", "--operation", op, "--account", "acme", "--at", later, "--admin", adminUrl, "--json"], env)).stdout);
    // Known from its usable moment; then its value is unknown (no reference prices configured): over 1000, fail closed.
    expect(usable.decision.rule).toBe("big");
    expect(json<{ id: string }[]>((await runCli(["addresses", "list", "--admin", adminUrl, "--json"], env)).stdout).map((a) => a.id)).toEqual([added.id]);
    expect(json<{ state: string }>((await runCli(["addresses", "remove", added.id, "--admin", adminUrl, "--json"], env)).stdout).state).toBe("removed");
    expect(errorCode((await runCli(["addresses", "remove", added.id, "--admin", adminUrl, "--json"], env)).stderr)).toBe("ADDRESS_NOT_FOUND");
    expect(json<{ version: number }[]>((await runCli(["policy", "versions", "--admin", adminUrl, "--json"], env)).stdout).map((v) => v.version)).toEqual([2, 1, 0]);
  });

  it("a change the policy holds is held (on the data directory and through the admin API), changing nothing until approved", async () => {
    const holdChanges = { rules: [{ name: "two people", match: { kind: ["policy.change", "address.add"] }, action: { type: "hold", approvals: [{ group: "risk", count: 2 }] } }, { name: "rest", action: { type: "allow" } }] };
    writeFileSync(join(dir, "hold.json"), JSON.stringify(holdChanges));
    expect((await runCli(["policy", "apply", join(dir, "hold.json"), "--data", data, "--json"])).code).toBe(0);
    const viaData = await runCli(["policy", "apply", join(dir, "policy.json"), "--data", data, "--json"]);
    expect(viaData.code).toBe(0);
    expect(json<{ state: string; operationId: string; hold: string; required: { approvals: unknown[] } }>(viaData.stdout)).toMatchObject({
      state: "held",
      operationId: expect.stringMatching(/^op_/) as unknown,
      hold: "pending",
      required: { approvals: [{ group: "risk", count: 2, have: 0 }] },
    });
    const viaAdmin = await runCli(["addresses", "add", "--admin", adminUrl, "--account", "acme", "--asset", "USDT", "--address", "T9", "--json"], env);
    expect(viaAdmin.code).toBe(0);
    expect(json<{ state: string }>(viaAdmin.stdout).state).toBe("held");
    expect(json<unknown[]>((await runCli(["addresses", "list", "--data", data, "--account", "acme", "--json"])).stdout)).not.toContainEqual(expect.objectContaining({ address: "T9" }));
    expect(json<{ version: number }>((await runCli(["policy", "show", "--data", data, "--json"])).stdout).version).toBe(3);
  });

  it("needs an admin key with the scope", async () => {
    const reader = JSON.parse((await runCli(["keys", "create", "--data", data, "--account", "acme", "--scopes", "admin:keys", "--json"])).stdout) as { id: string; secret: string };
    const res = await runCli(["policy", "show", "--admin", adminUrl, "--json"], { PORTCULLIS_ADMIN_KEY_ID: reader.id, PORTCULLIS_ADMIN_SECRET: reader.secret });
    expect(errorCode(res.stderr)).toBe("SCOPE_MISSING");
    expect((await runCli(["addresses", "list", "--admin", adminUrl])).stderr).toMatch(/PORTCULLIS_ADMIN_KEY_ID/);
  });
});
