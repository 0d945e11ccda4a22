/**
 * ccxt's `coinbase` exchange, unmodified, against the whole demo (exchange, gateway, admin) with
 * CDP keys registered for the Coinbase dialect: ccxt signs its own ES256 (and EdDSA) JWTs with
 * the private key it is given, loads the markets, reads balances and places orders through the
 * gateway as it would against api.coinbase.com, and every refusal reaches it as the ccxt error
 * type Coinbase's answer maps to.
 */
import { generateKeyPairSync } from "node:crypto";
import ccxt from "ccxt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DemoStack } from "@portcullis/demo-exchange";
import { startCompatStack } from "./support.js";

interface CdpKey {
  /** The key name ccxt sends as kid/sub. */
  readonly name: string;
  /** What ccxt takes as `secret`. */
  readonly secret: string;
}

let stack: DemoStack;
let trader: CdpKey;

/** An ECDSA P-256 CDP key: the public half registered, the private half as the SEC1 PEM ccxt reads. */
async function ecKey(account: string, scopes: string[], cdpName = true): Promise<CdpKey> {
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const created = await stack.createKey({
    account,
    scopes,
    dialects: ["coinbase"],
    publicKey: publicKey.export({ type: "spki", format: "pem" }),
  });
  const id = created.key.id;
  return {
    name: cdpName ? `organizations/demo-org/apiKeys/${id}` : id,
    secret: privateKey.export({ type: "sec1", format: "pem" }).toString(),
  };
}

/** An Ed25519 CDP key: ccxt takes the base64 of seed || public key (88 characters). */
async function edKey(account: string, scopes: string[]): Promise<CdpKey> {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const created = await stack.createKey({ account, scopes, dialects: ["coinbase"], publicKey: publicKey.export({ type: "spki", format: "pem" }) });
  const jwk = privateKey.export({ format: "jwk" });
  const seed = Buffer.from(jwk.d ?? "", "base64url");
  const pub = Buffer.from(jwk.x ?? "", "base64url");
  return { name: created.key.id, secret: Buffer.concat([seed, pub]).toString("base64") };
}

/**
 * ccxt's coinbase pointed at the gateway. The only options changed make ccxt read balances from
 * the v3 accounts endpoint (its default is the v2 one, which the demo does not serve).
 */
function client(key: CdpKey): InstanceType<typeof ccxt.coinbase> {
  const exchange = new ccxt.coinbase({ apiKey: key.name, secret: key.secret, enableRateLimit: false, timeout: 10_000 });
  exchange.urls.api = { rest: stack.gateway };
  exchange.options.fetchBalance = "v3PrivateGetBrokerageAccounts";
  exchange.options.fetchTime = "v3PublicGetBrokerageTime";
  return exchange;
}

beforeAll(async () => {
  stack = await startCompatStack();
  trader = await ecKey("coinbase-trader", ["read", "trade"]);
});
afterAll(async () => {
  await stack.close();
});

describe("ccxt coinbase through the gateway", () => {
  it("loads the Coinbase products as BTC/USDT and ETH/USDT, and the server time", async () => {
    const exchange = client(trader);
    const markets = await exchange.loadMarkets();
    expect(Object.keys(markets).sort()).toEqual(["BTC/USDT", "ETH/USDT"]);
    expect(markets["BTC/USDT"]).toMatchObject({ id: "BTC-USDT", base: "BTC", quote: "USDT", spot: true, active: true, taker: 0, maker: 0 });
    expect(markets["BTC/USDT"]?.precision).toMatchObject({ amount: 0.00001, price: 0.01 });
    expect(markets["ETH/USDT"]?.limits.amount?.min).toBe(0.0001);
    expect(Object.keys(exchange.currencies).sort()).toEqual(["BTC", "ETH", "USDT"]);
    const time = await exchange.fetchTime();
    expect(Math.abs((time ?? 0) - Date.now())).toBeLessThan(5_000);
  });

  it("fetchBalance (ES256, CDP key name) reads the account's demo balances", async () => {
    const balance = await client(trader).fetchBalance();
    expect(balance.BTC).toMatchObject({ total: 2, used: 0, free: 2 });
    expect(balance.ETH).toMatchObject({ total: 20, used: 0, free: 20 });
    expect(balance.USDT).toMatchObject({ total: 100_000, used: 0, free: 100_000 });
    expect(stack.exchange.balances("coinbase-trader")?.BTC).toEqual({ free: "2.00000000", locked: "0.00000000" });
  });

  it("accepts the bare Portcullis key id as the key name too", async () => {
    const balance = await client(await ecKey("coinbase-bare", ["read"], false)).fetchBalance();
    expect(balance.BTC?.total).toBe(2);
  });

  it("fetchBalance with an Ed25519 key (EdDSA, iss cdp, uris)", async () => {
    const balance = await client(await edKey("coinbase-ed", ["read"])).fetchBalance();
    expect(balance.ETH?.total).toBe(20);
  });

  it("createOrder places a resting limit order and a filled market order", async () => {
    const exchange = client(trader);
    const limit = await exchange.createOrder("BTC/USDT", "limit", "buy", 0.01, 50_000);
    expect(limit.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-a[0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(limit.clientOrderId).toMatch(/^ccxt-/);
    expect(stack.exchange.openOrders("coinbase-trader")).toEqual([
      expect.objectContaining({ symbol: "BTCUSDT", side: "BUY", type: "LIMIT", price: "50000.00000000", origQty: "0.01000000" }),
    ]);
    await exchange.createOrder("ETH/USDT", "market", "sell", 0.5);
    const balance = await exchange.fetchBalance();
    expect(balance.ETH?.total).toBe(19.5);
    expect(balance.USDT?.used).toBe(500); // 0.01 BTC at 50000 held by the open order
  });

  it("an order the venue declines is ccxt's InsufficientFunds", async () => {
    const error = await client(trader)
      .createOrder("BTC/USDT", "limit", "buy", 5, 59_000)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ccxt.InsufficientFunds);
  });
});

describe("refusals reach ccxt as the error types Coinbase's answers map to", () => {
  it("a token signed with the wrong private key is AuthenticationError", async () => {
    const wrong = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "sec1", format: "pem" }).toString();
    const error = await client({ name: trader.name, secret: wrong })
      .fetchBalance()
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ccxt.AuthenticationError);
    expect(error).not.toBeInstanceOf(ccxt.PermissionDenied);
    expect(String(error)).toContain("SIGNATURE_INVALID");
  });

  it("a stale token (ccxt's clock ten minutes behind) is AuthenticationError", async () => {
    const exchange = client(trader);
    await exchange.loadMarkets();
    exchange.seconds = () => Math.floor(Date.now() / 1000) - 600;
    const error = await exchange.fetchBalance().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ccxt.AuthenticationError);
    expect(String(error)).toContain("TOKEN_EXPIRED");
  });

  it("a token from the future (ccxt's clock ten minutes ahead) is AuthenticationError", async () => {
    const exchange = client(trader);
    await exchange.loadMarkets();
    exchange.seconds = () => Math.floor(Date.now() / 1000) + 600;
    const error = await exchange.fetchBalance().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ccxt.AuthenticationError);
    expect(String(error)).toContain("TOKEN_NOT_YET_VALID");
  });

  it("a key without read is PermissionDenied (even while loading markets)", async () => {
    const error = await client(await ecKey("coinbase-trade-only", ["trade"]))
      .fetchBalance()
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ccxt.PermissionDenied);
    expect(String(error)).toContain("SCOPE_MISSING");
  });

  it("a revoked key is AuthenticationError", async () => {
    const key = await ecKey("coinbase-revoked", ["read"]);
    const exchange = client(key);
    await exchange.fetchBalance();
    await stack.running.core.keys.revoke(key.name.slice(key.name.lastIndexOf("/") + 1), "test", "compat test");
    const error = await exchange.fetchBalance().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ccxt.AuthenticationError);
    expect(String(error)).toContain("KEY_REVOKED");
  });

  it("a key name that is not a Portcullis key is AuthenticationError", async () => {
    const error = await client({ name: "organizations/demo-org/apiKeys/0b6f0d47-1d0d-4c1f-9c41-0b7b0d8e2a11", secret: trader.secret })
      .fetchBalance()
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ccxt.AuthenticationError);
    expect(String(error)).toContain("KEY_ID_MALFORMED");
  });
});
