/**
 * ccxt's bybit, unchanged, against the whole demo (gateway in front of the demo exchange): the
 * gateway verifies Bybit's v5 signing (HMAC keys, and RSA keys whose private half only the bot
 * holds), the exchange answers in Bybit's shapes, and every refusal reaches the bot as the ccxt
 * error type Bybit's own answer would give.
 *
 * What ccxt needs pointed elsewhere: `urls.api.public` and `urls.api.private` (the gateway), and
 * `options.fetchMarkets.types` (the demo lists spot instruments only, so ccxt need not page
 * through linear, inverse and option instruments).
 */
import { generateKeyPairSync } from "node:crypto";
import ccxt from "ccxt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DemoStack } from "@portcullis/demo-exchange";
import { startCompatStack } from "./support.js";

interface Key {
  readonly id: string;
  /** The HMAC secret, or the RSA private key in PEM (ccxt tells them apart by "PRIVATE KEY"). */
  readonly secret: string;
}

let stack: DemoStack;
let trader: Key;
let reader: Key;
let rsaTrader: Key;

beforeAll(async () => {
  stack = await startCompatStack();
  const hmac = async (account: string, scopes: string[]): Promise<Key> => {
    const created = await stack.createKey({ account, scopes, dialects: ["bybit"] });
    return { id: created.key.id, secret: created.secret ?? "" };
  };
  trader = await hmac("bybit-trader", ["read", "trade"]);
  reader = await hmac("bybit-reader", ["read"]);
  const pair = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const created = await stack.createKey({
    account: "bybit-rsa",
    scopes: ["read", "trade"],
    dialects: ["bybit"],
    algorithm: "rsa",
    publicKey: pair.publicKey.export({ type: "spki", format: "pem" }).toString(),
  });
  rsaTrader = { id: created.key.id, secret: pair.privateKey.export({ type: "pkcs8", format: "pem" }).toString() };
});
afterAll(async () => {
  await stack.close();
});

function bybit(key: Key, overrides: { secret?: string; timeDifference?: number } = {}): InstanceType<typeof ccxt.bybit> {
  const exchange = new ccxt.bybit({
    apiKey: key.id,
    secret: overrides.secret ?? key.secret,
    options: {
      fetchMarkets: { types: ["spot"] },
      ...(overrides.timeDifference === undefined ? {} : { timeDifference: overrides.timeDifference }),
    },
  });
  exchange.urls.api = { public: stack.gateway, private: stack.gateway };
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

describe("ccxt bybit through the gateway", () => {
  it("loads the markets and fetches the balance", async () => {
    const exchange = bybit(trader);
    const markets = await exchange.loadMarkets();
    expect(Object.keys(markets).sort()).toEqual(["BTC/USDT", "ETH/USDT"]);
    expect(markets["BTC/USDT"]).toMatchObject({ id: "BTCUSDT", spot: true, precision: { amount: 0.00001, price: 0.01 } });
    const balance = await exchange.fetchBalance();
    expect(balance.BTC).toMatchObject({ free: 2, total: 2 });
    expect(balance.USDT).toMatchObject({ free: 100000, total: 100000 });
  });

  it("places a limit order, which locks its funds", async () => {
    const exchange = bybit(trader);
    const order = await exchange.createOrder("BTC/USDT", "limit", "buy", 0.01, 59_000);
    expect(order.id).toMatch(/^[0-9]+$/);
    const balance = await exchange.fetchBalance();
    expect(balance.USDT).toMatchObject({ free: 100000 - 590, total: 100000 });
  });

  it("an RSA key: ccxt signs with the private key, the gateway verifies with the public key", async () => {
    const exchange = bybit(rsaTrader);
    const balance = await exchange.fetchBalance();
    expect(balance.ETH).toMatchObject({ free: 20, total: 20 });
    const order = await exchange.createOrder("ETH/USDT", "limit", "sell", 1, 3_100);
    expect(order.id).toMatch(/^[0-9]+$/);
  });

  it("a refused order comes back as ccxt's error for Bybit's code", async () => {
    const err = await failure(bybit(trader).createOrder("BTC/USDT", "limit", "buy", 10, 59_000));
    expect(err).toBeInstanceOf(ccxt.InsufficientFunds);
    expect(String(err)).toContain('"retCode":170131');
  });
});

describe("refusals, as ccxt reports them", () => {
  it("a wrong secret: 10004, AuthenticationError", async () => {
    const err = await failure(bybit(trader, { secret: "not-the-secret" }).fetchBalance());
    expect(err).toBeInstanceOf(ccxt.AuthenticationError);
    expect(String(err)).toContain('"retCode":10004');
  });

  it("an RSA key signing with another private key: 10004, AuthenticationError", async () => {
    const other = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    const err = await failure(bybit(rsaTrader, { secret: other }).fetchBalance());
    expect(err).toBeInstanceOf(ccxt.AuthenticationError);
    expect(String(err)).toContain('"retCode":10004');
  });

  it("a stale timestamp: 10002, InvalidNonce", async () => {
    const err = await failure(bybit(trader, { timeDifference: 6_000 }).fetchBalance());
    expect(err).toBeInstanceOf(ccxt.InvalidNonce);
    expect(String(err)).toContain('"retCode":10002');
  });

  it("an unknown key: 10003, AuthenticationError", async () => {
    const err = await failure(bybit({ id: "pk_test_nosuchkeyatall", secret: "x" }).fetchBalance());
    expect(err).toBeInstanceOf(ccxt.AuthenticationError);
    expect(String(err)).toContain('"retCode":10003');
  });

  it("a key without the trade permission: 10005, PermissionDenied", async () => {
    const exchange = bybit(reader);
    await exchange.fetchBalance();
    const err = await failure(exchange.createOrder("BTC/USDT", "limit", "buy", 0.01, 59_000));
    expect(err).toBeInstanceOf(ccxt.PermissionDenied);
    expect(String(err)).toContain('"retCode":10005');
    expect(stack.exchange.openOrders("bybit-reader")).toEqual([]);
  });
});
