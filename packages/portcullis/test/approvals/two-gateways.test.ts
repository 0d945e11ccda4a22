/**
 * Two gateway runtimes on one data directory, in front of one demo exchange: withdrawals held
 * through the first, approved on the data directory (as the CLI does), and released by whichever
 * runtime's loop claims each first. Each withdrawal reaches the exchange exactly once.
 */
import ccxt from "ccxt";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { DEMO_EXCHANGE_ROUTES, type DemoStack, startDemoStack } from "@portcullis/demo-exchange";
import { parseConfig } from "../../src/config/config.js";
import { openDataDir } from "../../src/core/data-dir.js";
import { HoldService } from "../../src/holds/service.js";
import { silentLogger } from "../../src/log/logger.js";
import { type RunningPortcullis, startPortcullis, urlOf } from "../../src/runtime/runtime.js";
import { DEFAULT_LIMITS } from "../../src/config/config.js";
import { HoldWithdrawals, approver } from "./support.js";

const policy = new HoldWithdrawals([{ group: "treasury", count: 2 }]);
let stack: DemoStack;
let second: RunningPortcullis;
const alice = approver("alice");
const bob = approver("bob");

beforeAll(async () => {
  stack = await startDemoStack({ port: 0, adminPort: 0, upstreamPort: 0, logger: silentLogger(), serverTiming: false, start: { policy, holds: { pollMs: 50 } } });
  const config = parseConfig(
    {
      dataDir: stack.dataDir,
      environment: "test",
      gateway: { host: "127.0.0.1", port: 0, upstream: stack.upstream, serverTiming: false },
      admin: { enabled: false },
      routes: DEMO_EXCHANGE_ROUTES,
      limits: DEFAULT_LIMITS,
    },
    stack.dataDir,
  );
  second = await startPortcullis(config, silentLogger(), { policy, holds: { pollMs: 50 } });
}, 60_000);

afterAll(async () => {
  await second.close(1_000);
  await stack.close();
});

describe("two gateway runtimes on one data directory", () => {
  it("release every approved withdrawal exactly once between them", async () => {
    const created = await stack.createKey({ account: "two-gw", scopes: ["withdraw"], dialects: ["binance"] });
    const exchange = new ccxt.binance({ apiKey: created.key.id, secret: created.secret ?? "", enableRateLimit: false, options: { fetchMarkets: { types: ["spot"] }, fetchMargins: false, fetchCurrencies: false } });
    const api: Record<string, string> = {};
    for (const [name, url] of Object.entries(exchange.urls.api)) if (typeof url === "string") api[name] = url.replace(/^https:\/\/[^/]+/, urlOf(second.gatewayAddress));
    exchange.urls.api = api;
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) ids.push((await exchange.withdraw("USDT", 1 + i, `0x${String(i).padStart(40, "0")}`, undefined, { network: "ETH" })).id ?? "");
    // The approvers approve on the data directory, as `portcullis approvals approve --data` does.
    const data = await openDataDir(stack.dataDir);
    const holds = new HoldService({ store: data.store.holds, envelope: data.envelope });
    try {
      await holds.addApprover("alice", ["treasury"], alice.publicPem, "test");
      await holds.addApprover("bob", ["treasury"], bob.publicPem, "test");
      for (const id of ids) {
        const digest = (await holds.view(id)).digest;
        await holds.decide(id, "alice", "approve", digest, alice.sign("approve", digest));
        await holds.decide(id, "bob", "approve", digest, bob.sign("approve", digest));
      }
      await vi.waitFor(
        async () => {
          for (const id of ids) expect((await holds.view(id)).state).toBe("released");
        },
        { timeout: 15_000, interval: 100 },
      );
    } finally {
      await holds.stop();
      await data.close();
    }
    const sent = stack.exchange.withdrawals().filter((w) => w.account === "two-gw");
    expect(sent).toHaveLength(ids.length);
    expect(new Set(sent.map((w) => w.address)).size).toBe(ids.length);
    // More passes of both loops send nothing more.
    await Promise.all([stack.running.holds.tick(), second.holds.tick(), stack.running.holds.tick(), second.holds.tick()]);
    expect(stack.exchange.withdrawals().filter((w) => w.account === "two-gw")).toHaveLength(ids.length);
  }, 60_000);
});
