/**
 * End to end: the whole demo (the demo exchange, a real gateway in front of it, the admin API) with
 * a small policy that holds every withdrawal for 2 approvals of "treasury". ccxt's `withdraw`, signed
 * in the Binance dialect, gets the operation id as its withdrawal id; two approvers approve with the
 * real `portcullis` command on the gateway's data directory; the gateway's release loop forwards the
 * held request once (the demo exchange's withdrawal log shows it once); the initiator reads the state
 * and the upstream's answer at GET /portcullis/v1/operations/{id}, signed natively by the same key.
 */
import { PortcullisApiError, createClient } from "@portcullis/client";
import ccxt from "ccxt";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type DemoStack, startDemoStack } from "@portcullis/demo-exchange";
import { silentLogger } from "../../src/log/logger.js";
import { runCli } from "../support/cli.js";
import { HoldWithdrawals, approver } from "./support.js";

let stack: DemoStack;
let files: string;
const policy = new HoldWithdrawals([{ group: "treasury", count: 2 }]);
const alice = approver("alice");
const bob = approver("bob");
let key: { id: string; secret: string };

beforeAll(async () => {
  stack = await startDemoStack({ port: 0, adminPort: 0, upstreamPort: 0, logger: silentLogger(), serverTiming: false, start: { policy, holds: { pollMs: 100 } } });
  files = mkdtempSync(join(tmpdir(), "portcullis-approvers-"));
  for (const a of [alice, bob]) {
    writeFileSync(join(files, `${a.name}.pub`), a.publicPem);
    writeFileSync(join(files, `${a.name}.pem`), a.privatePem, { mode: 0o600 });
    const added = await runCli(["approvers", "add", "--name", a.name, "--group", "treasury", "--public-key", join(files, `${a.name}.pub`), "--data", stack.dataDir, "--json"]);
    expect(added.stderr).toBe("");
    expect(JSON.parse(added.stdout)).toMatchObject({ name: a.name, groups: ["treasury"] });
  }
  const created = await stack.createKey({ account: "e2e-bot", scopes: ["read", "withdraw"], dialects: ["binance", "native"], owner: "mallory" });
  key = { id: created.key.id, secret: created.secret ?? "" };
}, 60_000);

afterAll(async () => {
  await stack.close();
  rmSync(files, { recursive: true, force: true });
});

function binance(): InstanceType<typeof ccxt.binance> {
  const exchange = new ccxt.binance({
    apiKey: key.id,
    secret: key.secret,
    enableRateLimit: false,
    timeout: 10_000,
    options: { fetchMarkets: { types: ["spot"] }, fetchMargins: false, fetchCurrencies: false },
  });
  const api: Record<string, string> = {};
  for (const [name, url] of Object.entries(exchange.urls.api)) if (typeof url === "string") api[name] = url.replace(/^https:\/\/[^/]+/, stack.gateway);
  exchange.urls.api = api;
  return exchange;
}

interface OperationAnswer {
  operationId: string;
  state: string;
  required: { approvals: { group: string; count: number; have: number }[] };
  outcome: { status: number; body: string } | null;
}

function operation(id: string, credentials = key): Promise<OperationAnswer> {
  return createClient({ baseUrl: stack.gateway, keyId: credentials.id, secret: credentials.secret }).json<OperationAnswer>("GET", `/portcullis/v1/operations/${id}`);
}

describe("a held withdrawal, end to end", () => {
  it("ccxt gets the operation id as its withdrawal id; two CLI approvals release it once; the initiator reads the answer", async () => {
    const address = "0x00000000000000000000000000000000000000e2";
    const result = await binance().withdraw("USDT", 25, address, undefined, { network: "ETH" });
    const id = result.id ?? "";
    expect(id).toMatch(/^op_[0-9a-f]{32}$/);
    // Held, not sent.
    expect(stack.exchange.withdrawals()).toEqual([]);
    const pending = await operation(id);
    expect(pending).toMatchObject({ operationId: id, state: "pending", required: { approvals: [{ group: "treasury", count: 2, have: 0 }] }, outcome: null });

    // Another key of the same account does not even see it.
    const other = await stack.createKey({ account: "e2e-bot", scopes: ["read"], dialects: ["native"] });
    const refused = await operation(id, { id: other.key.id, secret: other.secret ?? "" }).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(PortcullisApiError);
    expect((refused as PortcullisApiError).code).toBe("OPERATION_NOT_FOUND");

    // What an approver sees: the facts, and the digest recomputed from them.
    const shown = await runCli(["approvals", "show", id, "--data", stack.dataDir, "--json"]);
    expect(shown.stderr).toBe("");
    const view = JSON.parse(shown.stdout) as { digest: string; document: { operation: { amount: string; address: string } }; rendering: string };
    expect(view.document.operation).toMatchObject({ amount: "25", address });
    expect(view.rendering).toContain(view.digest);

    for (const a of [alice, bob]) {
      const approved = await runCli(["approvals", "approve", id, "--key", join(files, `${a.name}.pem`), "--data", stack.dataDir, "--json"]);
      expect(approved.stderr).toBe("");
      expect(approved.code).toBe(0);
    }
    // The gateway's loop finds it ready (the CLI made it so) and forwards it.
    await vi.waitFor(
      async () => {
        expect((await operation(id)).state).toBe("released");
      },
      { timeout: 10_000, interval: 100 },
    );
    const released = await operation(id);
    const withdrawals = stack.exchange.withdrawals();
    expect(withdrawals).toHaveLength(1);
    expect(withdrawals[0]).toMatchObject({ account: "e2e-bot", coin: "USDT", network: "ETH", address, amount: "25.00000000" });
    expect(released.outcome?.status).toBe(200);
    expect(JSON.parse(released.outcome?.body ?? "{}")).toEqual({ id: withdrawals[0]?.id });
    // Approving again changes nothing: released once.
    const again = await runCli(["approvals", "approve", id, "--key", join(files, "alice.pem"), "--data", stack.dataDir, "--json"]);
    expect(again.code).not.toBe(0);
    expect(JSON.parse(again.stderr)).toMatchObject({ error: { code: "OPERATION_STATE_CONFLICT" } });
    await stack.running.holds.tick();
    await stack.running.holds.tick();
    expect(stack.exchange.withdrawals()).toHaveLength(1);
  }, 60_000);

  it("the CLI through the admin API (--admin, an operator key): approvers and held operations, the digest recomputed from the facts sent", async () => {
    const op = await stack.createKey({ account: "ops", scopes: ["admin:*"], operator: true });
    const env = { PORTCULLIS_ADMIN_KEY_ID: op.key.id, PORTCULLIS_ADMIN_SECRET: op.secret ?? "" };
    const admin = stack.admin ?? "";
    const approvers = await runCli(["approvers", "list", "--admin", admin, "--json"], env);
    expect(approvers.stderr).toBe("");
    expect((JSON.parse(approvers.stdout) as { approvers: { name: string }[] }).approvers.map((a) => a.name)).toEqual(["alice", "bob"]);
    const result = await binance().withdraw("USDT", 1, "0x00000000000000000000000000000000000000e4", undefined, { network: "ETH" });
    const id = result.id ?? "";
    const listed = await runCli(["approvals", "list", "--state", "pending", "--admin", admin, "--json"], env);
    expect((JSON.parse(listed.stdout) as { operations: { operationId: string }[] }).operations.map((o) => o.operationId)).toContain(id);
    const shown = await runCli(["approvals", "show", id, "--admin", admin], env);
    expect(shown.stdout).toContain("0x00000000000000000000000000000000000000e4");
    const rejected = await runCli(["approvals", "reject", id, "--key", join(files, "bob.pem"), "--reason", "not ours", "--admin", admin, "--json"], env);
    expect(rejected.stderr).toBe("");
    expect(JSON.parse(rejected.stdout)).toMatchObject({ state: "rejected", reason: "rejected by bob: not ours" });
    // Bad input is one line with its code.
    const badState = await runCli(["approvals", "list", "--state", "nope", "--admin", admin, "--json"], env);
    expect(JSON.parse(badState.stderr)).toMatchObject({ error: { code: "VALIDATION_FAILED" } });
  }, 60_000);

  it("the initiator cancels a held withdrawal; an approval after that is refused, and nothing is sent", async () => {
    const result = await binance().withdraw("USDT", 5, "0x00000000000000000000000000000000000000e3", undefined, { network: "ETH" });
    const id = result.id ?? "";
    const client = createClient({ baseUrl: stack.gateway, keyId: key.id, secret: key.secret });
    const cancelled = await client.json<OperationAnswer>("DELETE", `/portcullis/v1/operations/${id}`);
    expect(cancelled.state).toBe("cancelled");
    const late = await runCli(["approvals", "approve", id, "--key", join(files, "alice.pem"), "--data", stack.dataDir, "--json"]);
    expect(JSON.parse(late.stderr)).toMatchObject({ error: { code: "OPERATION_STATE_CONFLICT" } });
    await vi.waitFor(() => {
      expect(policy.forgotten).toContain(id);
    });
    expect(stack.exchange.withdrawals().map((w) => w.address)).not.toContain("0x00000000000000000000000000000000000000e3");
  }, 60_000);
});
