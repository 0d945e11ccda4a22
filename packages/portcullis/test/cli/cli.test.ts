/**
 * The `portcullis` command as a user runs it: separate processes sharing one data directory.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TEST_ROUTES, signRequest } from "../support/harness.js";
import { CLI, runCli, startCli } from "../support/cli.js";
import { startEchoUpstream } from "../support/gateway.js";
import { DEFAULT_LIMITS } from "../../src/config/config.js";

interface KeyJson {
  id: string;
  secret?: string;
  privateKey?: string;
  status: string;
  effectiveStatus: string;
  algorithm: string;
  scopes: string[];
  ipAllowlist: string[];
  limits: Record<string, number>;
  label: string;
  expiresAt: number | null;
  sessionEpoch: number;
  sessionTtlMs: number | null;
  sessionBindAddress: boolean;
  maxAgeMs: number | null;
  rotatedFrom: string | null;
  rotatedTo: string | null;
  predecessor?: KeyJson;
}

let dir: string;
let data: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "portcullis-cli-"));
  data = join(dir, "data");
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

interface InitJson {
  environment: string;
  config: string;
  created: string[];
}

// The command's JSON output, read as the shape the test expects (a wrong shape fails the asserts).
const asKey = (stdout: string): KeyJson & { publicKey?: string } => JSON.parse(stdout) as KeyJson & { publicKey?: string };
const asKeys = (stdout: string): KeyJson[] => JSON.parse(stdout) as KeyJson[];
const asInit = (stdout: string): InitJson => JSON.parse(stdout) as InitJson;
const asError = (stderr: string): { error: { code: string } } => JSON.parse(stderr) as { error: { code: string } };

describe("portcullis init and keys", () => {
  it("init creates the data directory, its secrets with mode 0600, and a starter config", async () => {
    const res = await runCli(["init", "--data", data, "--environment", "test", "--json"]);
    expect(res.code).toBe(0);
    const out = asInit(res.stdout);
    expect(out.environment).toBe("test");
    expect(statSync(join(data, "keyring.json")).mode & 0o777).toBe(0o600);
    expect(statSync(join(data, "identity.secret")).mode & 0o777).toBe(0o600);
    const starter = JSON.parse(readFileSync(out.config, "utf8")) as { routes: unknown; limits: { account: unknown } };
    expect(starter).toHaveProperty("routes");
    // The limits are written out, the account's weight budget (shared by its keys) included.
    expect(starter.limits).toEqual(JSON.parse(JSON.stringify(DEFAULT_LIMITS)));
    expect(starter.limits.account).toEqual([{ name: "account-weight-1m", limit: 2400, window: "1m" }]);
  });

  it("keys create --json prints the id and, for an HMAC key, the secret", async () => {
    const res = await runCli(["keys", "create", "--data", data, "--account", "acct-1", "--scopes", "read,trade", "--ip", "10.0.0.0/8", "--json"]);
    expect(res.code).toBe(0);
    const key = asKey(res.stdout);
    expect(key.id).toMatch(/^pck_test_v1_/);
    expect(key.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(key.ipAllowlist).toEqual(["10.0.0.0/8"]);
  });

  it("keys create --algorithm ed25519 generates the pair locally and prints only the private key", async () => {
    const res = await runCli(["keys", "create", "--data", data, "--account", "acct-1", "--scopes", "read", "--algorithm", "ed25519", "--json"]);
    const key = asKey(res.stdout);
    expect(key.algorithm).toBe("ed25519");
    expect(key.secret).toBeUndefined();
    expect(key.privateKey).toMatch(/BEGIN PRIVATE KEY/);
    const show = asKey((await runCli(["keys", "show", key.id, "--data", data, "--json"])).stdout);
    expect(show.publicKey).toMatch(/BEGIN PUBLIC KEY/);
    expect(JSON.stringify(show)).not.toContain("PRIVATE");
  });

  it("keys create --algorithm secp256k1: a generated pair (the private key in hex), or a public key file in hex; an invalid point is refused", async () => {
    const generated = asKey((await runCli(["keys", "create", "--data", data, "--account", "acct-1", "--scopes", "read", "--algorithm", "secp256k1", "--json"])).stdout);
    expect(generated).toMatchObject({ algorithm: "secp256k1", publicKey: expect.stringMatching(/BEGIN PUBLIC KEY/) as unknown });
    expect(generated.privateKey).toMatch(/^0x[0-9a-f]{64}\n$/);
    const pub = generateKeyPairSync("ec", { namedCurve: "secp256k1" }).publicKey;
    const jwk = pub.export({ format: "jwk" });
    const file = join(dir, "agent.pub");
    writeFileSync(file, `0x04${Buffer.from(jwk.x ?? "", "base64url").toString("hex")}${Buffer.from(jwk.y ?? "", "base64url").toString("hex")}\n`);
    const fromHex = asKey((await runCli(["keys", "create", "--data", data, "--account", "acct-1", "--scopes", "read", "--algorithm", "secp256k1", "--public-key", file, "--json"])).stdout);
    expect(fromHex).toMatchObject({ algorithm: "secp256k1", publicKey: pub.export({ type: "spki", format: "pem" }).toString() });
    expect(fromHex.privateKey).toBeUndefined();
    writeFileSync(file, `0x02${"00".repeat(32)}\n`);
    const refused = await runCli(["keys", "create", "--data", data, "--account", "acct-1", "--scopes", "read", "--algorithm", "secp256k1", "--public-key", file, "--json"]);
    expect(refused.code).toBe(1);
    expect(asError(refused.stderr).error.code).toBe("VALIDATION_FAILED");
    expect(refused.stderr).toMatch(/not a point on the secp256k1 curve/);
  });

  it("keys list / show / suspend / resume / revoke", async () => {
    const key = asKey((await runCli(["keys", "create", "--data", data, "--account", "acct-2", "--scopes", "read", "--json"])).stdout);
    const list = asKeys((await runCli(["keys", "list", "--data", data, "--account", "acct-2", "--json"])).stdout);
    expect(list.map((k) => k.id)).toEqual([key.id]);
    expect(asKey((await runCli(["keys", "suspend", key.id, "--data", data, "--reason", "test", "--json"])).stdout).status).toBe("suspended");
    expect(asKey((await runCli(["keys", "resume", key.id, "--data", data, "--json"])).stdout).status).toBe("active");
    expect(asKey((await runCli(["keys", "revoke", key.id, "--data", data, "--json"])).stdout).status).toBe("revoked");
    const human = await runCli(["keys", "show", key.id, "--data", data]);
    expect(human.stdout).toMatch(/status\s+revoked/);
  });

  it("keys list --search: an id or account prefix, or a part of the label, in any case, with the other filters", async () => {
    const create = async (account: string, label: string): Promise<{ id: string }> =>
      asKey((await runCli(["keys", "create", "--data", data, "--account", account, "--scopes", "read", "--label", label, "--json"])).stdout);
    const desk = await create("Search-Desk", "Hedging Bot 50%");
    const other = await create("search-other", "treasury");
    const found = async (...args: string[]): Promise<string[]> => asKeys((await runCli(["keys", "list", "--data", data, "--json", ...args])).stdout).map((k) => k.id);
    expect(await found("--search", "SEARCH-D")).toEqual([desk.id]);
    expect(await found("--search", "search-")).toEqual([desk.id, other.id].sort());
    expect(await found("--search", "search-", "--account", "search-other")).toEqual([other.id]);
    expect(await found("--search", "hedging bot")).toEqual([desk.id]);
    expect(await found("--search", desk.id.slice(0, 24).toUpperCase())).toContain(desk.id);
    // Taken literally: % and _ are not wildcards.
    expect(await found("--search", "bot 50%")).toEqual([desk.id]);
    expect(await found("--search", "bot _0")).toEqual([]);
    const human = await runCli(["keys", "list", "--data", data, "--search", "treasury"]);
    expect(human.stdout.trim().split("\n")).toHaveLength(1);
    expect(human.stdout).toContain(other.id);
  });

  it("keys create --limit and keys limits --set / --clear manage a key's overrides", async () => {
    const created = asKey((await runCli(["keys", "create", "--data", data, "--account", "mm", "--scopes", "read,trade", "--limit", "orders-10s=500", "--json"])).stdout);
    expect(created.limits).toEqual({ "orders-10s": 500 });
    const set = await runCli(["keys", "limits", created.id, "--data", data, "--set", "key-weight-1m=12000", "--set", "orders-1d=400000"]);
    expect(set.stdout.trim()).toBe(`${created.id} limits: key-weight-1m=12000, orders-1d=400000`);
    const shown = await runCli(["keys", "show", created.id, "--data", data]);
    expect(shown.stdout).toMatch(/limits\s+key-weight-1m=12000, orders-1d=400000/);
    expect(asKey((await runCli(["keys", "limits", created.id, "--data", data, "--clear", "--json"])).stdout).limits).toEqual({});
  });

  it("keys update changes scopes, allowlist and policies; scope changes end the key's sessions", async () => {
    const key = asKey((await runCli(["keys", "create", "--data", data, "--account", "acct-5", "--scopes", "read,trade", "--session-ttl", "1h", "--max-age", "90d", "--json"])).stdout);
    expect(key).toMatchObject({ sessionTtlMs: 3_600_000, maxAgeMs: 90 * 86_400_000, sessionEpoch: 0 });
    const updated = asKey((await runCli(["keys", "update", key.id, "--data", data, "--scopes", "read", "--ip", "10.1.0.0/16", "--label", "reader", "--session-bind-address", "--json"])).stdout);
    expect(updated).toMatchObject({ scopes: ["read"], ipAllowlist: ["10.1.0.0/16"], label: "reader", sessionBindAddress: true, sessionEpoch: 1 });
    const back = asKey((await runCli(["keys", "update", key.id, "--data", data, "--any-ip", "--no-session-bind-address", "--session-ttl", "default", "--max-age", "none", "--json"])).stdout);
    expect(back).toMatchObject({ ipAllowlist: [], sessionBindAddress: false, sessionTtlMs: null, maxAgeMs: null, sessionEpoch: 2 });
    const ended = await runCli(["keys", "end-sessions", key.id, "--data", data, "--reason", "lost laptop"]);
    expect(ended.stdout.trim()).toBe(`every session of ${key.id} has ended (epoch 3)`);
  });

  it("keys rotate prints the successor's secret once and links both keys", async () => {
    const old = asKey((await runCli(["keys", "create", "--data", data, "--account", "acct-6", "--scopes", "read", "--json"])).stdout);
    const res = await runCli(["keys", "rotate", old.id, "--data", data, "--grace", "1h", "--json"]);
    expect(res.code).toBe(0);
    const successor = asKey(res.stdout);
    expect(successor.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(successor).toMatchObject({ rotatedFrom: old.id, account: "acct-6", scopes: ["read"] });
    expect(successor.predecessor).toMatchObject({ id: old.id, rotatedTo: successor.id });
    const human = await runCli(["keys", "show", old.id, "--data", data]);
    expect(human.stdout).toMatch(new RegExp(`rotated to\\s+${successor.id}`));
    const shownNew = await runCli(["keys", "show", successor.id, "--data", data]);
    expect(shownNew.stdout).toMatch(new RegExp(`rotated from ${old.id}`));
    expect(shownNew.stdout).not.toContain(successor.secret ?? "-");
    // An Ed25519 key: the successor's pair is generated here; only the private key is printed.
    const ed = asKey((await runCli(["keys", "create", "--data", data, "--account", "acct-6", "--scopes", "read", "--algorithm", "ed25519", "--json"])).stdout);
    const edNext = asKey((await runCli(["keys", "rotate", ed.id, "--data", data, "--grace", "0", "--json"])).stdout);
    expect(edNext).toMatchObject({ algorithm: "ed25519", rotatedFrom: ed.id });
    expect(edNext.privateKey).toMatch(/BEGIN PRIVATE KEY/);
    expect(edNext.privateKey).not.toBe(ed.privateKey);
    expect(edNext.predecessor?.effectiveStatus).toBe("expired");
  });

  it.each([
    [["keys", "create", "--account", "a", "--scopes", "root"], /unknown scope/, "VALIDATION_FAILED"],
    [["keys", "update", "pck_test_v1_000000000000000000000000000000"], /nothing to change/, "VALIDATION_FAILED"],
    [["keys", "update", "pck_test_v1_000000000000000000000000000000", "--ip", "10.0.0.1", "--any-ip"], /--ip or --any-ip/, "VALIDATION_FAILED"],
    [["keys", "update", "pck_test_v1_000000000000000000000000000000", "--label", "x"], /No such API key/, "KEY_NOT_FOUND"],
    [["keys", "rotate", "pck_test_v1_000000000000000000000000000000"], /No such API key/, "KEY_NOT_FOUND"],
    [["keys", "rotate", "pck_test_v1_000000000000000000000000000000", "--grace", "90d"], /grace/, "VALIDATION_FAILED"],
    [["keys", "end-sessions", "pck_test_v1_000000000000000000000000000000"], /No such API key/, "KEY_NOT_FOUND"],
    [["keys", "create", "--account", "a", "--scopes", "read", "--limit", "key-weight-1m"], /name=n/, "VALIDATION_FAILED"],
    [["keys", "limits", "pck_test_v1_000000000000000000000000000000", "--set", "key-weight-1m=-5"], /positive integer/, "VALIDATION_FAILED"],
    [["keys", "limits", "pck_test_v1_000000000000000000000000000000"], /--set name=n .* or --clear/, "VALIDATION_FAILED"],
    [["keys", "limits", "pck_test_v1_000000000000000000000000000000", "--clear"], /No such API key/, "KEY_NOT_FOUND"],
    [["keys", "create", "--account", "a", "--scopes", "read", "--expires", "soon"], /expires/, "VALIDATION_FAILED"],
    [["keys", "revoke", "pck_test_v1_000000000000000000000000000000"], /No such API key/, "KEY_NOT_FOUND"],
    [["keys", "list", "--search", ""], /--search must be 1-100 characters/, "VALIDATION_FAILED"],
    [["keys", "list", "--search", "x".repeat(101)], /--search must be 1-100 characters/, "VALIDATION_FAILED"],
  ])("refuses bad input with a clear error and exit status 1: %j", async (args, message, code) => {
    const human = await runCli([...args, "--data", data]);
    expect(human.code).toBe(1);
    expect(human.stderr).toMatch(message);
    expect(human.stderr).not.toMatch(/\n\s+at /);
    const json = await runCli([...args, "--data", data, "--json"]);
    expect(asError(json.stderr).error.code).toBe(code);
  });

  it("refuses a data directory that does not exist", async () => {
    const res = await runCli(["keys", "list", "--data", join(dir, "missing")]);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/portcullis init/);
  });
});

describe("a running gateway and a separate CLI process", () => {
  let upstream: Awaited<ReturnType<typeof startEchoUpstream>>;
  let gateway: Awaited<ReturnType<typeof startCli>>;
  let gatewayUrl: string;
  let adminUrl: string;
  beforeAll(async () => {
    upstream = await startEchoUpstream();
    const configPath = join(data, "portcullis.json");
    const config = JSON.parse(readFileSync(configPath, "utf8")) as Record<string, Record<string, unknown>>;
    config.gateway = { ...config.gateway, host: "127.0.0.1", port: 0, upstream: upstream.url };
    config.admin = { ...config.admin, port: 0 };
    writeFileSync(configPath, JSON.stringify({ ...config, routes: TEST_ROUTES }));
    gateway = await startCli(["start", "--config", configPath], (line) => line.includes("portcullis started"));
    const started = JSON.parse(gateway.line) as { gateway: string; admin: string };
    gatewayUrl = started.gateway;
    adminUrl = started.admin;
  });
  afterAll(async () => {
    expect(await gateway.stop()).toBe(0);
    await upstream.close();
  });

  async function call(keyId: string, secret: string): Promise<{ status: number; code: string | undefined }> {
    const headers = signRequest({ method: "GET", url: "/api/v3/account", keyId, key: secret, created: Math.floor(Date.now() / 1000), host: new URL(gatewayUrl).host });
    const res = await request(`${gatewayUrl}/api/v3/account`, { headers });
    const text = await res.body.text();
    return { status: res.statusCode, code: res.statusCode === 200 ? undefined : (JSON.parse(text) as { code: string }).code };
  }

  async function refusedWithin(keyId: string, secret: string, code: string, ms: number): Promise<number> {
    const start = Date.now();
    for (;;) {
      const r = await call(keyId, secret);
      const elapsed = Date.now() - start;
      if (r.code === code) return elapsed;
      if (elapsed > ms) throw new Error(`still ${String(r.status)} after ${elapsed} ms`);
      await new Promise((res) => setTimeout(res, 20));
    }
  }

  it("keys show says that last-use times are written in batches, before and after a use", async () => {
    const key = asKey((await runCli(["keys", "create", "--data", data, "--account", "acct-9", "--scopes", "read", "--json"])).stdout);
    const before = await runCli(["keys", "show", key.id, "--data", data]);
    expect(before.stdout).toMatch(/^last used {3}never \(written in batches: up to 5 s late\)$/m);
    expect((await call(key.id, key.secret ?? "")).status).toBe(200);
    // Right after the use the batch may not be written yet: the line says so either way.
    const after = await runCli(["keys", "show", key.id, "--data", data]);
    expect(after.stdout).toMatch(/^last used {3}(never|\d{4}-\d\d-\d\dT[\d:.]+Z) \(written in batches: up to 5 s late\)$/m);
  });

  for (const [action, done, code] of [
    ["revoke", "revoked", "KEY_REVOKED"],
    ["suspend", "suspended", "KEY_SUSPENDED"],
  ] as const) {
    it(`a key ${done} by the CLI is refused by the running gateway within one second`, async () => {
      const key = asKey((await runCli(["keys", "create", "--data", data, "--account", "acct-3", "--scopes", "read", "--json"])).stdout);
      // A key created by another process is usable at once (its negative cache entry, if any, is evicted).
      expect((await call(key.id, key.secret ?? "")).status).toBe(200);
      const result = await runCli(["keys", action, key.id, "--data", data]);
      expect(result.code).toBe(0);
      expect(await refusedWithin(key.id, key.secret ?? "", code, 1000)).toBeLessThan(1000);
    });
  }

  it("portcullis request signs with a secp256k1 private key file (hex, or PKCS#8 PEM); keys rotate generates the successor's pair", async () => {
    const keyFile = join(dir, "agent.key");
    const key = asKey((await runCli(["keys", "create", "--data", data, "--account", "acct-7", "--scopes", "read", "--algorithm", "secp256k1", "--private-key-out", keyFile, "--json"])).stdout);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    const url = `${gatewayUrl}/api/v3/account`;
    const sent = await runCli(["request", "GET", url, "--key-id", key.id, "--private-key", keyFile]);
    expect(sent.stdout).toMatch(/^HTTP 200 /);
    const pemFile = join(dir, "agent-pkcs8.pem");
    const d = Buffer.from(readFileSync(keyFile, "utf8").trim().slice(2), "hex").toString("base64url");
    const jwk = createPublicKey(key.publicKey ?? "").export({ format: "jwk" });
    writeFileSync(pemFile, createPrivateKey({ key: { ...jwk, d }, format: "jwk" }).export({ type: "pkcs8", format: "pem" }));
    expect((await runCli(["request", "GET", url, "--key-id", key.id, "--private-key", pemFile])).stdout).toMatch(/^HTTP 200 /);
    const next = asKey((await runCli(["keys", "rotate", key.id, "--data", data, "--grace", "0", "--json"])).stdout);
    expect(next).toMatchObject({ algorithm: "secp256k1", privateKey: expect.stringMatching(/^0x[0-9a-f]{64}\n$/) as unknown });
    writeFileSync(keyFile, next.privateKey ?? "");
    expect((await runCli(["request", "GET", url, "--key-id", next.id, "--private-key", keyFile])).stdout).toMatch(/^HTTP 200 /);
  }, 60_000);

  it("keys --admin URL manages keys through the admin API with an admin key", async () => {
    const adminKey = asKey((await runCli(["keys", "create", "--data", data, "--account", "ops", "--scopes", "admin:keys", "--operator", "--json"])).stdout);
    const env = { PORTCULLIS_ADMIN_KEY_ID: adminKey.id, PORTCULLIS_ADMIN_SECRET: adminKey.secret ?? "" };
    const created = await runCli(["keys", "create", "--admin", adminUrl, "--account", "acct-4", "--scopes", "read", "--json"], env);
    expect(created.code).toBe(0);
    const key = asKey(created.stdout);
    expect((await call(key.id, key.secret ?? "")).status).toBe(200);
    expect((await runCli(["keys", "revoke", key.id, "--admin", adminUrl, "--json"], env)).code).toBe(0);
    expect((await call(key.id, key.secret ?? "")).code).toBe("KEY_REVOKED");
    const refused = await runCli(["keys", "list", "--admin", adminUrl, "--json"], { PORTCULLIS_ADMIN_KEY_ID: key.id, PORTCULLIS_ADMIN_SECRET: key.secret ?? "" });
    expect(refused.code).toBe(1);
    expect(asError(refused.stderr).error.code).toBe("KEY_REVOKED");
    // Update, rotate and end-sessions through the admin API too.
    const other = asKey((await runCli(["keys", "create", "--admin", adminUrl, "--account", "acct-4", "--scopes", "read,trade", "--json"], env)).stdout);
    expect(asKey((await runCli(["keys", "update", other.id, "--admin", adminUrl, "--scopes", "read", "--json"], env)).stdout)).toMatchObject({ scopes: ["read"], sessionEpoch: 1 });
    expect(asKey((await runCli(["keys", "end-sessions", other.id, "--admin", adminUrl, "--json"], env)).stdout).sessionEpoch).toBe(2);
    const next = asKey((await runCli(["keys", "rotate", other.id, "--admin", adminUrl, "--grace", "0", "--json"], env)).stdout);
    expect(next.predecessor?.rotatedTo).toBe(next.id);
    expect((await call(next.id, next.secret ?? "")).status).toBe(200);
    expect((await call(other.id, other.secret ?? "")).code).toBe("KEY_EXPIRED");
    const noCreds = await runCli(["keys", "list", "--admin", adminUrl]);
    expect(noCreds.stderr).toMatch(/PORTCULLIS_ADMIN_KEY_ID/);
  });
});

/** A local port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => { resolve(); }));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

/** Runs the CLI with its stdout closed at once, as `portcullis … | head -c 0` does. */
function runWithClosedStdout(args: readonly string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  child.stdout.destroy();
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => {
    child.once("close", (code) => {
      resolve({ code, stderr });
    });
  });
}

describe("failures a new user meets: one line, a code, no stack trace", () => {
  it.each([
    [["keys", "list"]],
    [["keys", "list", "--json"]],
    [["audit", "tail"]],
    [["--help"]],
  ])("a closed stdout ends %j quietly with status 0", async (args) => {
    const res = await runWithClosedStdout([...args, "--data", data]);
    expect(res.stderr).toBe("");
    expect(res.code).toBe(0);
  });

  it("an admin API that is down is ADMIN_UNREACHABLE, naming the URL and why", async () => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    const env = { PORTCULLIS_ADMIN_KEY_ID: "pck_test_v1_000000000000000000000000000000", PORTCULLIS_ADMIN_SECRET: "x" };
    const human = await runCli(["keys", "list", "--admin", url], env);
    expect(human.code).toBe(1);
    expect(human.stderr).toBe(`ADMIN_UNREACHABLE: cannot reach the admin API at ${url} (connection refused); is the gateway running, and is that its admin address (--admin URL)?\n`);
    const json = await runCli(["keys", "show", "pck_test_v1_000000000000000000000000000000", "--admin", url, "--json"], env);
    expect(json.code).toBe(1);
    expect(asError(json.stderr).error.code).toBe("ADMIN_UNREACHABLE");
  });

  it("a gateway that is down is GATEWAY_UNREACHABLE for portcullis request", async () => {
    const port = await closedPort();
    const res = await runCli(["request", "GET", `http://127.0.0.1:${port}/api/v3/account`, "--key-id", "pck_test_v1_000000000000000000000000000000", "--secret", "x"]);
    expect(res.code).toBe(1);
    expect(res.stderr).toBe(`GATEWAY_UNREACHABLE: cannot reach the gateway at http://127.0.0.1:${port} (connection refused); is it running, and is that its address?\n`);
  });

  it("a file named on the command line that is missing is FILE_ACCESS_FAILED", async () => {
    const missing = join(dir, "no-such-key.pem");
    const res = await runCli(["keys", "create", "--data", data, "--account", "a", "--scopes", "read", "--algorithm", "ed25519", "--public-key", missing]);
    expect(res.code).toBe(1);
    expect(res.stderr).toBe(`FILE_ACCESS_FAILED: cannot use ${missing} (no such file)\n`);
  });

  it("a command line commander refuses is USAGE_INVALID, then the usage", async () => {
    const res = await runCli(["keys", "frobnicate"]);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/^USAGE_INVALID: unknown command 'frobnicate'\n[\s\S]*Usage: portcullis keys/);
    const json = await runCli(["keys", "create", "--json"]);
    expect(json.code).toBe(1);
    expect(asError(json.stderr.split("\n")[0] ?? "").error.code).toBe("USAGE_INVALID");
  });

  it("a file that is not a backup is BACKUP_MALFORMED", async () => {
    const garbage = join(dir, "not-a-backup.bin");
    writeFileSync(garbage, "hello");
    const res = await runCli(["restore", "--in", garbage, "--data", data, "--json"]);
    expect(res.code).toBe(1);
    expect(asError(res.stderr).error.code).toBe("BACKUP_MALFORMED");
  });

  it("a database written by a newer Portcullis is DATABASE_TOO_NEW", async () => {
    const newer = join(dir, "newer");
    expect((await runCli(["init", "--data", newer])).code).toBe(0);
    const db = new Database(join(newer, "portcullis.db"));
    db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'from the future', 0)").run();
    db.close();
    const res = await runCli(["keys", "list", "--data", newer]);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/^DATABASE_TOO_NEW: database schema version 9999 is newer than this Portcullis \(\d+\); upgrade Portcullis\n$/);
  });

  it("every failure line starts with its code", async () => {
    const res = await runCli(["keys", "list", "--data", join(dir, "missing")]);
    expect(res.stderr).toMatch(/^DATA_DIR_INVALID: .*portcullis init/);
    const config = await runCli(["start", "--config", join(dir, "missing.json")]);
    expect(config.code).toBe(1);
    expect(config.stderr).toMatch(/^CONFIG_UNREADABLE: cannot read config .*missing\.json: ENOENT\n$/);
  });
});
