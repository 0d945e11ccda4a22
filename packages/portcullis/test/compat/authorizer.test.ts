/**
 * ccxt, unmodified, against Debian's nginx running docs/deploy/nginx.conf, with Portcullis as the
 * authorizer (`gateway.mode: "authorizer"`) and the demo exchange as the venue behind nginx. nginx
 * asks Portcullis, then forwards the request itself; the demo exchange acts only on identity
 * headers that verify (test/identity.test.ts of the demo exchange), so an order that reaches its
 * book shows that what nginx forwarded carried Portcullis's identity. Refusals reach ccxt as
 * Binance's errors, through nginx, exactly as through the gateway.
 */
import ccxt from "ccxt";
import { type DemoStack, startDemoStack } from "@portcullis/demo-exchange";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readEntries } from "../audit/support.js";
import { silentLogger } from "../../src/log/logger.js";
import { type RunningNginx, nginxAvailable, startNginx } from "../authorizer/support.js";
import { binanceClient, binanceHmacKey, hostOf, rejection } from "./support.js";

type Binance = InstanceType<typeof ccxt.binance>;

const run = nginxAvailable();

let stack: DemoStack | undefined;
let nginx: RunningNginx | undefined;

/** ccxt's binance, through nginx. */
const ccxtClient = (apiKey: string, secret: string): Binance => binanceClient(`http://${nginx?.host ?? ""}`, apiKey, secret);
const hmacKey = (account: string, scopes: string[]): Promise<{ id: string; secret: string }> => binanceHmacKey(demo(), account, scopes);

function demo(): DemoStack {
  if (stack === undefined) throw new Error("the demo stack did not start");
  return stack;
}

describe.runIf(run)("ccxt through nginx with Portcullis as the authorizer, in front of the demo exchange", () => {
  beforeAll(async () => {
    stack = await startDemoStack({ port: 0, adminPort: 0, upstreamPort: 0, logger: silentLogger(), serverTiming: false, mode: "authorizer" });
    nginx = await startNginx(hostOf(stack.gateway), hostOf(stack.upstream));
  });
  afterAll(async () => {
    await nginx?.stop();
    await stack?.close();
  });

  it("loads the markets, reads the balance, places and cancels an order", async () => {
    const key = await hmacKey("authz-alice", ["read", "trade"]);
    const exchange = ccxtClient(key.id, key.secret);
    const balance = await exchange.fetchBalance();
    expect(balance.total).toMatchObject({ USDT: 100000 });

    const order = await exchange.createOrder("BTC/USDT", "limit", "buy", 0.001, 50000);
    expect(demo().exchange.openOrders("authz-alice").map((o) => String(o.orderId))).toEqual([order.id]);
    await exchange.cancelOrder(String(order.id), "BTC/USDT");
    expect(demo().exchange.openOrders("authz-alice")).toEqual([]);

    // Decided by the authorizer, audited as its surface.
    await demo().running.core.audit.flush();
    const entries = readEntries(demo().dataDir).filter((e) => e.event === "request.allow" && e.key === key.id);
    // The balance, the order and its cancel (the markets are public).
    expect(entries.length).toBeGreaterThanOrEqual(3);
    expect(new Set(entries.map((e) => e.surface))).toEqual(new Set(["authorizer"]));
  });

  it("a wrong secret: AuthenticationError (-1022), and nothing reaches the exchange", async () => {
    const key = await hmacKey("authz-erin", ["read", "trade"]);
    const exchange = ccxtClient(key.id, `${key.secret.slice(0, -1)}x`);
    const err = await rejection(exchange.createOrder("BTC/USDT", "limit", "buy", 0.001, 50000));
    expect(err).toBeInstanceOf(ccxt.AuthenticationError);
    expect(err.message).toContain('"code":-1022');
    expect(demo().exchange.openOrders("authz-erin")).toEqual([]);
  });

  it("a read-only key placing an order: AuthenticationError (-2015), the order never placed, reads still served", async () => {
    // As in binance.test.ts: the order goes first on a new instance (ccxt reads -2015 after an
    // authenticated call as a temporary ban).
    const key = await hmacKey("authz-frank", ["read"]);
    const exchange = ccxtClient(key.id, key.secret);
    await exchange.loadMarkets();
    const err = await rejection(exchange.createOrder("BTC/USDT", "limit", "buy", 0.001, 50000));
    expect(err).toBeInstanceOf(ccxt.AuthenticationError);
    expect(err.message).toContain('"code":-2015');
    expect(demo().exchange.openOrders("authz-frank")).toEqual([]);
    expect((await exchange.fetchBalance()).total).toMatchObject({ BTC: 2 });
  });
});
