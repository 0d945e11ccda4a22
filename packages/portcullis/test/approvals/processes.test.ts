/**
 * Issue 14, end to end with the real pieces and nothing in one process: two `portcullis start`
 * gateway processes on one data directory, in front of one demo exchange; the policy, the
 * approvers and the withdrawal key set up by the `portcullis` CLI on the data directory; Binance-
 * signed withdrawals sent to both gateways and held by the policy in force; each approved by two
 * people with `portcullis approvals approve` (a third process each time). Every withdrawal reaches
 * the exchange exactly once, whichever gateway's release loop claims it, and the audit chain that
 * three kinds of process wrote verifies.
 */
import { createHmac, generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEMO_EXCHANGE_ROUTES, type DemoExchange, createDemoExchange } from "@portcullis/demo-exchange";
import { runCli } from "../support/cli.js";
import { type Gateway, auditVerify, kill, sleep, startGateway } from "../crash/support.js";

const WITHDRAWALS = 6;
const APPROVERS = ["alice", "bob"] as const;
const POLICY = {
  rules: [
    { name: "withdrawals need two", match: { kind: ["withdraw"] }, action: { type: "hold", approvals: [{ group: "treasury", count: 2 }] } },
    { name: "rest", action: { type: "allow" } },
  ],
};

let dir: string;
let data: string;
let exchange: DemoExchange;
let upstream: Server;
const gateways: Gateway[] = [];
const keyFiles: Record<string, string> = {};
let key: { id: string; secret: string };

async function cli(args: readonly string[]): Promise<string> {
  const res = await runCli(args);
  if (res.code !== 0) throw new Error(`portcullis ${args.join(" ")}: ${res.stderr}`);
  return res.stdout;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "portcullis-holds-processes-"));
  data = join(dir, "data");
  await cli(["init", "--data", data, "--environment", "test", "--json"]);
  const identitySecret = readFileSync(join(data, "identity.secret"), "utf8").trim();
  exchange = createDemoExchange({ identitySecret });
  upstream = createServer((req, res) => {
    exchange.handler(req, res);
  });
  await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
  const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;

  for (const name of APPROVERS) {
    const pair = generateKeyPairSync("ed25519");
    const pub = join(dir, `${name}.pub`);
    keyFiles[name] = join(dir, `${name}.pem`);
    writeFileSync(pub, pair.publicKey.export({ type: "spki", format: "pem" }));
    writeFileSync(keyFiles[name], pair.privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
    await cli(["approvers", "add", "--name", name, "--group", "treasury", "--public-key", pub, "--data", data, "--json"]);
  }
  writeFileSync(join(dir, "policy.json"), JSON.stringify(POLICY));
  expect(JSON.parse(await cli(["policy", "apply", join(dir, "policy.json"), "--data", data, "--json"]))).toMatchObject({ state: "applied", version: 1 });
  key = JSON.parse(
    await cli(["keys", "create", "--data", data, "--account", "acme", "--scopes", "read,withdraw", "--dialect", "binance", "--dialect", "native", "--owner", "dave", "--json"]),
  ) as { id: string; secret: string };

  const config = join(dir, "portcullis.json");
  writeFileSync(
    config,
    JSON.stringify({
      dataDir: data,
      environment: "test",
      gateway: { host: "127.0.0.1", port: 0, upstream: upstreamUrl },
      admin: { enabled: false },
      routes: DEMO_EXCHANGE_ROUTES,
      limits: {},
      audit: { batchWindowMs: 20, checkpointIntervalMs: 250 },
      log: { level: "info" },
    }),
  );
  gateways.push(await startGateway(config), await startGateway(config));
}, 120_000);

afterAll(async () => {
  for (const g of gateways) await kill(g.child);
  await new Promise<void>((resolve) => upstream.close(() => { resolve(); }));
  rmSync(dir, { recursive: true, force: true });
});

/** A Binance-signed withdrawal through `gateway`, as a bot sends one. */
async function withdraw(gateway: string, amount: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const params = new URLSearchParams({ coin: "USDT", network: "TRX", address: "TProcessTest111111111111111111111", amount, timestamp: String(Date.now()) });
  params.set("signature", createHmac("sha256", key.secret).update(params.toString()).digest("hex"));
  const res = await fetch(`${gateway}/sapi/v1/capital/withdraw/apply?${params.toString()}`, { method: "POST", headers: { "x-mbx-apikey": key.id } });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe("two gateway processes on one data directory, the CLI approving", () => {
  it("holds every withdrawal by the policy in force and releases each exactly once", async () => {
    const ids: string[] = [];
    for (let i = 0; i < WITHDRAWALS; i++) {
      const gateway = gateways[i % 2]?.gateway ?? "";
      const answer = await withdraw(gateway, String(100 + i));
      // Binance's own success shape: the operation id stands in for the withdrawal id.
      expect(answer).toMatchObject({ status: 200, body: { id: expect.stringMatching(/^op_[0-9a-f]{32}$/) as unknown } });
      ids.push(answer.body.id as string);
    }
    expect(exchange.withdrawals()).toHaveLength(0);

    // Two approvers, each signing locally with their own key file.
    for (const id of ids) {
      for (const name of APPROVERS) expect(JSON.parse(await cli(["approvals", "approve", id, "--key", keyFiles[name] ?? "", "--data", data, "--json"]))).toMatchObject({ operationId: id });
    }

    // Released by whichever gateway claims first (each polls the data directory).
    for (let i = 0; i < 200 && exchange.withdrawals().length < WITHDRAWALS; i++) await sleep(50);
    // Several more polling rounds of both gateways: nothing is sent again.
    await sleep(1_500);
    const amounts = exchange.withdrawals().map((w) => w.amount).sort();
    expect(amounts).toEqual(Array.from({ length: WITHDRAWALS }, (_, i) => `${100 + i}.00000000`).sort());
    const listed = JSON.parse(await cli(["approvals", "list", "--state", "released", "--data", data, "--json"])) as { operations: { operationId: string }[] };
    expect(listed.operations.map((o) => o.operationId).sort()).toEqual([...ids].sort());
  }, 120_000);

  it("the audit chain both gateways and the CLI wrote verifies", async () => {
    for (const g of gateways) {
      const exited = new Promise((resolve) => g.child.once("exit", resolve));
      g.child.kill("SIGTERM");
      await exited;
    }
    const verified = await auditVerify(data);
    expect(verified).toMatchObject({ code: 0, ok: true });
  }, 60_000);
});
