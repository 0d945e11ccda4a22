/**
 * ccxt's okx, unchanged, against the whole demo (gateway in front of the demo exchange): the
 * gateway verifies OKX's signing and passphrase, the exchange answers in OKX's shapes, and every
 * refusal reaches the bot as the ccxt error type OKX's own answer would give.
 *
 * What ccxt needs pointed elsewhere: `urls.api.rest` (the gateway), `options.fetchMarkets.types`
 * (the demo lists spot instruments only, so ccxt need not ask for swaps, futures and options) and
 * `options.createOrder` (ccxt's default submits through /api/v5/trade/batch-orders, which the demo
 * does not serve).
 */
import ccxt from "ccxt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DemoStack } from "@portcullis/demo-exchange";
import { startCompatStack } from "./support.js";

const PASSPHRASE = "Okx-Passphrase-1";

let stack: DemoStack;
let trader: { id: string; secret: string };
let reader: { id: string; secret: string };

async function okxKey(scopes: string[]): Promise<{ id: string; secret: string }> {
  const created = await stack.createKey({ account: `okx-${scopes.join("-")}`, scopes, dialects: ["okx"], passphrase: PASSPHRASE });
  return { id: created.key.id, secret: created.secret ?? "" };
}

beforeAll(async () => {
  stack = await startCompatStack();
  trader = await okxKey(["read", "trade"]);
  reader = await okxKey(["read"]);
});
afterAll(async () => {
  await stack.close();
});

function okx(key: { id: string; secret: string }, overrides: { secret?: string; password?: string; timeDifference?: number } = {}): InstanceType<typeof ccxt.okx> {
  const exchange = new ccxt.okx({
    apiKey: key.id,
    secret: overrides.secret ?? key.secret,
    password: overrides.password ?? PASSPHRASE,
    options: {
      fetchMarkets: { types: ["spot"] },
      createOrder: "privatePostTradeOrder",
      ...(overrides.timeDifference === undefined ? {} : { timeDifference: overrides.timeDifference }),
    },
  });
  exchange.urls.api = { rest: stack.gateway };
  return exchange;
}

/** The error a promise rejects with. */
async function failure(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

describe("ccxt okx through the gateway", () => {
  it("loads the markets and fetches the balance", async () => {
    const exchange = okx(trader);
    const markets = await exchange.loadMarkets();
    expect(Object.keys(markets).sort()).toEqual(["BTC/USDT", "ETH/USDT"]);
    expect(markets["BTC/USDT"]).toMatchObject({ id: "BTC-USDT", spot: true, precision: { amount: 0.00001, price: 0.01 } });
    const balance = await exchange.fetchBalance();
    expect(balance.BTC).toMatchObject({ free: 2, used: 0, total: 2 });
    expect(balance.USDT).toMatchObject({ free: 100000, used: 0, total: 100000 });
  });

  it("places a limit order, which locks its funds", async () => {
    const exchange = okx(trader);
    const order = await exchange.createOrder("BTC/USDT", "limit", "buy", 0.01, 59_000);
    expect(order.id).toMatch(/^[0-9]+$/);
    const balance = await exchange.fetchBalance();
    expect(balance.USDT).toMatchObject({ free: 100000 - 590, total: 100000 });
  });

  it("a refused order comes back as ccxt's error for OKX's code", async () => {
    const exchange = okx(trader);
    const err = await failure(exchange.createOrder("BTC/USDT", "limit", "buy", 10, 59_000));
    expect(err).toBeInstanceOf(ccxt.InsufficientFunds);
    expect(String(err)).toContain("51008");
  });
});

describe("refusals, as ccxt reports them", () => {
  it("a wrong secret: 50113, AuthenticationError", async () => {
    const err = await failure(okx(trader, { secret: "not-the-secret" }).fetchBalance());
    expect(err).toBeInstanceOf(ccxt.AuthenticationError);
    expect(String(err)).toContain('"code":"50113"');
  });

  it("a stale timestamp: 50102, InvalidNonce", async () => {
    const err = await failure(okx(trader, { timeDifference: 31_000 }).fetchBalance());
    expect(err).toBeInstanceOf(ccxt.InvalidNonce);
    expect(String(err)).toContain('"code":"50102"');
  });

  it("a wrong passphrase: 50105, AuthenticationError", async () => {
    const err = await failure(okx(trader, { password: "Wrong-Passphrase" }).fetchBalance());
    expect(err).toBeInstanceOf(ccxt.AuthenticationError);
    expect(String(err)).toContain('"code":"50105"');
  });

  it("an unknown key: 50111, AuthenticationError", async () => {
    const err = await failure(okx({ id: "pk_test_nosuchkeyatall", secret: "x" }).fetchBalance());
    expect(err).toBeInstanceOf(ccxt.AuthenticationError);
    expect(String(err)).toContain('"code":"50111"');
  });

  it("a key without the trade permission: 50120, which ccxt's okx leaves as a plain ExchangeError", async () => {
    const exchange = okx(reader);
    await exchange.fetchBalance();
    const err = await failure(exchange.createOrder("BTC/USDT", "limit", "buy", 0.01, 59_000));
    // OKX answers a key without the permission with 50120, which ccxt 4.5 does not map to a
    // subclass: the bot sees what it would see from OKX itself.
    expect(err).toBeInstanceOf(ccxt.ExchangeError);
    expect(err).not.toBeInstanceOf(ccxt.AuthenticationError);
    expect(String(err)).toContain('"code":"50120"');
    expect(stack.exchange.openOrders(`okx-read`)).toEqual([]);
  });
});
