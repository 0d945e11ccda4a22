/**
 * Accounts and trading: demo balances, resting orders and their locks, matching at the maker's
 * price in price-time priority, MARKET orders by quantity and by quoteOrderQty, IOC/FOK, balance
 * checks and unknown orders. The seeded BTCUSDT book is asks 60010 (0.1), 60020 (0.2), 60030
 * (0.3)... and bids 59990 (0.1), 59980 (0.2)...; ETHUSDT asks 3001 (1), 3002 (2)... and bids
 * 2999 (1), 2998 (2)....
 */
import { describe, expect, it } from "vitest";
import { Harness, errorOf, type OrderBody } from "./harness.js";

const START = { BTC: ["2.00000000", "0.00000000"], ETH: ["20.00000000", "0.00000000"], USDT: ["100000.00000000", "0.00000000"] };

function limit(side: string, quantity: string, price: string, extra: Record<string, string> = {}): Record<string, string> {
  return { symbol: "BTCUSDT", side, type: "LIMIT", timeInForce: "GTC", quantity, price, ...extra };
}

describe("accounts", () => {
  it("a new account starts with the demo balances in Binance's account shape", async () => {
    const h = new Harness();
    const reply = await h.get("/api/v3/account", "alice");
    expect(reply.status).toBe(200);
    const body = reply.json();
    expect(body).toMatchObject({
      makerCommission: 0,
      takerCommission: 0,
      canTrade: true,
      canWithdraw: true,
      canDeposit: true,
      accountType: "SPOT",
      permissions: ["SPOT"],
      balances: [
        { asset: "BTC", free: "2.00000000", locked: "0.00000000" },
        { asset: "ETH", free: "20.00000000", locked: "0.00000000" },
        { asset: "USDT", free: "100000.00000000", locked: "0.00000000" },
      ],
    });
    expect(typeof body.uid).toBe("number");
    const bob = (await h.get("/api/v3/account", "bob")).json();
    expect(bob.uid).not.toBe(body.uid);
    expect(h.exchange.accounts()).toEqual([h.exchange.marketMakerAccount, "alice", "bob"]);
  });

  it("balances persist across requests and omitZeroBalances hides empty assets", async () => {
    const h = new Harness();
    await h.call({ method: "POST", url: "/sapi/v1/capital/withdraw/apply", account: "alice", form: { coin: "ETH", address: "0xabc", amount: "20" } });
    const reply = await h.get("/api/v3/account?omitZeroBalances=true", "alice");
    expect(reply.json<{ balances: { asset: string }[] }>().balances.map((b) => b.asset)).toEqual(["BTC", "USDT"]);
    expect(errorOf(await h.get("/api/v3/account?omitZeroBalances=yes", "alice"))).toMatchObject({ code: -1130 });
  });
});

describe("resting LIMIT orders", () => {
  it("a BUY locks price × quantity, shows in openOrders and depth, and cancel unlocks it", async () => {
    const h = new Harness();
    const order = await h.placed("alice", limit("BUY", "0.5", "59000", { newClientOrderId: "my-bid-1" }));
    expect(order).toMatchObject({
      symbol: "BTCUSDT",
      orderListId: -1,
      clientOrderId: "my-bid-1",
      price: "59000.00000000",
      origQty: "0.50000000",
      executedQty: "0.00000000",
      cummulativeQuoteQty: "0.00000000",
      status: "NEW",
      timeInForce: "GTC",
      type: "LIMIT",
      side: "BUY",
      fills: [],
    });
    expect(await h.balances("alice")).toEqual({ ...START, USDT: ["70500.00000000", "29500.00000000"] });

    const open = (await h.get("/api/v3/openOrders?symbol=BTCUSDT", "alice")).json<OrderBody[]>();
    expect(open.map((o) => o.orderId)).toEqual([order.orderId]);
    expect(open[0]).toMatchObject({ status: "NEW", price: "59000.00000000", origQty: "0.50000000" });
    expect((await h.get("/api/v3/openOrders", "alice")).json<OrderBody[]>()).toHaveLength(1);
    expect((await h.get("/api/v3/openOrders?symbol=ETHUSDT", "alice")).json<OrderBody[]>()).toHaveLength(0);
    expect((await h.depth("BTCUSDT")).bids).toContainEqual(["59000.00000000", "0.50000000"]);

    const byId = (await h.get(`/api/v3/order?symbol=BTCUSDT&orderId=${order.orderId}`, "alice")).json<OrderBody>();
    expect(byId).toMatchObject({ orderId: order.orderId, clientOrderId: "my-bid-1", status: "NEW" });
    const byClientId = (await h.get("/api/v3/order?symbol=BTCUSDT&origClientOrderId=my-bid-1", "alice")).json<OrderBody>();
    expect(byClientId.orderId).toBe(order.orderId);

    const cancelled = await h.cancel("alice", `symbol=BTCUSDT&orderId=${order.orderId}&newClientOrderId=cancel-1`);
    expect(cancelled.status).toBe(200);
    expect(cancelled.json()).toMatchObject({
      symbol: "BTCUSDT",
      origClientOrderId: "my-bid-1",
      orderId: order.orderId,
      clientOrderId: "cancel-1",
      status: "CANCELED",
      executedQty: "0.00000000",
    });
    expect(await h.balances("alice")).toEqual(START);
    expect((await h.get("/api/v3/openOrders", "alice")).json<OrderBody[]>()).toEqual([]);
    expect((await h.depth("BTCUSDT")).bids).not.toContainEqual(["59000.00000000", "0.50000000"]);
    expect((await h.get(`/api/v3/order?symbol=BTCUSDT&orderId=${order.orderId}`, "alice")).json()).toMatchObject({
      status: "CANCELED",
    });
  });

  it("a SELL locks the base quantity; cancel by client order id unlocks it", async () => {
    const h = new Harness();
    await h.placed("alice", limit("SELL", "1.25", "61000", { newClientOrderId: "ask" }));
    expect(await h.balances("alice")).toEqual({ ...START, BTC: ["0.75000000", "1.25000000"] });
    expect((await h.depth("BTCUSDT", 20)).asks).toContainEqual(["61000.00000000", "1.25000000"]);
    expect((await h.cancel("alice", "symbol=BTCUSDT&origClientOrderId=ask")).status).toBe(200);
    expect(await h.balances("alice")).toEqual(START);
  });

  it("an open order's client id cannot be reused (-2010)", async () => {
    const h = new Harness();
    await h.placed("alice", limit("BUY", "0.1", "50000", { newClientOrderId: "dup" }));
    expect(errorOf(await h.order("alice", limit("BUY", "0.1", "50000", { newClientOrderId: "dup" })))).toEqual({
      status: 400,
      code: -2010,
      msg: "Duplicate order sent.",
    });
  });

  it("without newClientOrderId the exchange assigns one", async () => {
    const h = new Harness();
    const order = await h.placed("alice", limit("BUY", "0.1", "50000"));
    expect(order.clientOrderId).toMatch(/^[A-Za-z0-9_-]{22}$/);
  });
});

describe("matching", () => {
  it("a crossing order fills at the maker's price, best price first, and moves both sides' balances exactly", async () => {
    const h = new Harness();
    const ask = await h.placed("alice", limit("SELL", "0.1", "60005"));
    expect(ask.status).toBe("NEW");
    const bid = await h.placed("bob", limit("BUY", "0.15", "60010"));
    expect(bid).toMatchObject({
      status: "FILLED",
      origQty: "0.15000000",
      executedQty: "0.15000000",
      cummulativeQuoteQty: "9001.00000000",
    });
    expect(bid.fills).toEqual([
      { price: "60005.00000000", qty: "0.10000000", commission: "0.00000000", commissionAsset: "BTC", tradeId: 1 },
      { price: "60010.00000000", qty: "0.05000000", commission: "0.00000000", commissionAsset: "BTC", tradeId: 2 },
    ]);
    expect(await h.balances("bob")).toEqual({ ...START, BTC: ["2.15000000", "0.00000000"], USDT: ["90999.00000000", "0.00000000"] });
    expect(await h.balances("alice")).toEqual({
      ...START,
      BTC: ["1.90000000", "0.00000000"],
      USDT: ["106000.50000000", "0.00000000"],
    });
    expect((await h.get(`/api/v3/order?symbol=BTCUSDT&orderId=${ask.orderId}`, "alice")).json()).toMatchObject({
      status: "FILLED",
      executedQty: "0.10000000",
      cummulativeQuoteQty: "6000.50000000",
    });
    expect((await h.depth("BTCUSDT", 1)).asks).toEqual([["60010.00000000", "0.05000000"]]);
  });

  it("a taker SELL fills against bids at the bid's price", async () => {
    const h = new Harness();
    await h.placed("alice", limit("BUY", "0.2", "59995"));
    expect(await h.balances("alice")).toEqual({ ...START, USDT: ["88001.00000000", "11999.00000000"] });
    const sell = await h.placed("bob", limit("SELL", "0.3", "59980"));
    expect(sell.fills?.map((f) => [f.price, f.qty])).toEqual([
      ["59995.00000000", "0.20000000"],
      ["59990.00000000", "0.10000000"],
    ]);
    expect(sell.cummulativeQuoteQty).toBe("17998.00000000");
    expect(await h.balances("bob")).toEqual({ ...START, BTC: ["1.70000000", "0.00000000"], USDT: ["117998.00000000", "0.00000000"] });
    expect(await h.balances("alice")).toEqual({ ...START, BTC: ["2.20000000", "0.00000000"], USDT: ["88001.00000000", "0.00000000"] });
  });

  it("orders at one price fill oldest first", async () => {
    const h = new Harness();
    const first = await h.placed("carol", limit("SELL", "0.1", "60005"));
    const second = await h.placed("dave", limit("SELL", "0.1", "60005"));
    await h.placed("erin", limit("BUY", "0.1", "60005"));
    expect((await h.get(`/api/v3/order?symbol=BTCUSDT&orderId=${first.orderId}`, "carol")).json().status).toBe("FILLED");
    expect((await h.get(`/api/v3/order?symbol=BTCUSDT&orderId=${second.orderId}`, "dave")).json().status).toBe("NEW");
  });

  it("the unfilled rest of a GTC order rests, locked at its limit price", async () => {
    const h = new Harness();
    const order = await h.placed("bob", limit("BUY", "0.5", "60020"));
    expect(order).toMatchObject({ status: "PARTIALLY_FILLED", executedQty: "0.30000000", cummulativeQuoteQty: "18005.00000000" });
    // 100000 - 18005 paid - 0.2 × 60020 = 12004 locked.
    expect(await h.balances("bob")).toEqual({ ...START, BTC: ["2.30000000", "0.00000000"], USDT: ["69991.00000000", "12004.00000000"] });
    expect((await h.depth("BTCUSDT", 1)).bids).toEqual([["60020.00000000", "0.20000000"]]);
    const cancelled = (await h.cancel("bob", `symbol=BTCUSDT&orderId=${order.orderId}`)).json<OrderBody>();
    expect(cancelled).toMatchObject({ status: "CANCELED", executedQty: "0.30000000" });
    expect(await h.balances("bob")).toEqual({ ...START, BTC: ["2.30000000", "0.00000000"], USDT: ["81995.00000000", "0.00000000"] });
  });

  it("an account can trade with its own resting order", async () => {
    const h = new Harness();
    await h.placed("alice", limit("SELL", "0.1", "60005"));
    const buy = await h.placed("alice", limit("BUY", "0.1", "60005"));
    expect(buy.status).toBe("FILLED");
    expect(await h.balances("alice")).toEqual(START);
  });
});

describe("MARKET orders", () => {
  it("BUY by quantity walks the asks", async () => {
    const h = new Harness();
    const order = await h.placed("bob", { symbol: "BTCUSDT", side: "BUY", type: "MARKET", quantity: "0.25" });
    expect(order).toMatchObject({
      type: "MARKET",
      timeInForce: "GTC",
      price: "0.00000000",
      status: "FILLED",
      executedQty: "0.25000000",
      cummulativeQuoteQty: "15004.00000000",
    });
    expect(order.fills?.map((f) => [f.price, f.qty])).toEqual([
      ["60010.00000000", "0.10000000"],
      ["60020.00000000", "0.15000000"],
    ]);
    expect(await h.balances("bob")).toEqual({ ...START, BTC: ["2.25000000", "0.00000000"], USDT: ["84996.00000000", "0.00000000"] });
  });

  it("SELL by quantity walks the bids", async () => {
    const h = new Harness();
    const order = await h.placed("bob", { symbol: "BTCUSDT", side: "SELL", type: "MARKET", quantity: "0.3" });
    expect(order).toMatchObject({ status: "FILLED", executedQty: "0.30000000", cummulativeQuoteQty: "17995.00000000" });
    expect(await h.balances("bob")).toEqual({ ...START, BTC: ["1.70000000", "0.00000000"], USDT: ["117995.00000000", "0.00000000"] });
  });

  it("BUY by quoteOrderQty spends at most that much, in whole steps", async () => {
    const h = new Harness();
    const order = await h.placed("bob", { symbol: "BTCUSDT", side: "BUY", type: "MARKET", quoteOrderQty: "10000" });
    // 0.1 @ 60010 = 6001, then floor(3999 / 60020) to 0.00001 = 0.06662 @ 60020 = 3998.5324.
    expect(order).toMatchObject({
      status: "FILLED",
      origQty: "0.16662000",
      executedQty: "0.16662000",
      origQuoteOrderQty: "10000.00000000",
      cummulativeQuoteQty: "9999.53240000",
    });
    expect(order.fills?.map((f) => [f.price, f.qty])).toEqual([
      ["60010.00000000", "0.10000000"],
      ["60020.00000000", "0.06662000"],
    ]);
    expect(await h.balances("bob")).toEqual({ ...START, BTC: ["2.16662000", "0.00000000"], USDT: ["90000.46760000", "0.00000000"] });
  });

  it("SELL by quoteOrderQty sells just enough to receive at most that much", async () => {
    const h = new Harness();
    const order = await h.placed("bob", { symbol: "ETHUSDT", side: "SELL", type: "MARKET", quoteOrderQty: "5000" });
    // 1 @ 2999, then floor(2001 / 2998) to 0.0001 = 0.6674 @ 2998 = 2000.8652.
    expect(order).toMatchObject({ status: "FILLED", executedQty: "1.66740000", cummulativeQuoteQty: "4999.86520000" });
    expect(order.fills?.map((f) => [f.price, f.qty, f.commissionAsset])).toEqual([
      ["2999.00000000", "1.00000000", "USDT"],
      ["2998.00000000", "0.66740000", "USDT"],
    ]);
    expect(await h.balances("bob")).toEqual({ ...START, ETH: ["18.33260000", "0.00000000"], USDT: ["104999.86520000", "0.00000000"] });
  });

  it("a MARKET order larger than the book fills what there is and expires", async () => {
    const h = new Harness();
    // The bid side holds 5.5 BTC. m1 and m2 each buy 1.5 BTC first, so each holds 3.5.
    for (const who of ["m1", "m2"]) await h.placed(who, { symbol: "BTCUSDT", side: "BUY", type: "MARKET", quantity: "1.5" });
    expect(await h.placed("m1", { symbol: "BTCUSDT", side: "SELL", type: "MARKET", quantity: "3.5" })).toMatchObject({
      status: "FILLED",
      executedQty: "3.50000000",
    });
    const sweep = await h.placed("m2", { symbol: "BTCUSDT", side: "SELL", type: "MARKET", quantity: "3.5" });
    expect(sweep).toMatchObject({ status: "EXPIRED", origQty: "3.50000000", executedQty: "2.00000000" });
    expect(await h.balances("m2")).toMatchObject({ BTC: ["1.50000000", "0.00000000"] });
    const empty = await h.placed("m3", { symbol: "BTCUSDT", side: "SELL", type: "MARKET", quantity: "0.1" });
    expect(empty).toMatchObject({ status: "EXPIRED", executedQty: "0.00000000", fills: [] });
    expect((await h.depth("BTCUSDT")).bids).toEqual([]);
    expect(await h.balances("m3")).toEqual(START);
  });
});

describe("time in force", () => {
  it("FOK that cannot fill completely expires without trading", async () => {
    const h = new Harness();
    const before = await h.depth("BTCUSDT");
    const order = await h.placed("bob", limit("BUY", "0.5", "60020", { timeInForce: "FOK" }));
    expect(order).toMatchObject({ status: "EXPIRED", timeInForce: "FOK", executedQty: "0.00000000", fills: [] });
    expect(await h.balances("bob")).toEqual(START);
    expect((await h.depth("BTCUSDT")).asks).toEqual(before.asks);
  });

  it("FOK that can fill completely fills", async () => {
    const h = new Harness();
    const order = await h.placed("bob", limit("BUY", "0.3", "60020", { timeInForce: "FOK" }));
    expect(order).toMatchObject({ status: "FILLED", executedQty: "0.30000000", cummulativeQuoteQty: "18005.00000000" });
  });

  it("IOC fills what crosses and expires the rest without resting or locking", async () => {
    const h = new Harness();
    const order = await h.placed("bob", limit("BUY", "0.5", "60020", { timeInForce: "IOC" }));
    expect(order).toMatchObject({ status: "EXPIRED", timeInForce: "IOC", executedQty: "0.30000000" });
    expect(await h.balances("bob")).toEqual({ ...START, BTC: ["2.30000000", "0.00000000"], USDT: ["81995.00000000", "0.00000000"] });
    expect((await h.get("/api/v3/openOrders", "bob")).json<OrderBody[]>()).toEqual([]);
    const none = await h.placed("bob", limit("BUY", "0.1", "50000", { timeInForce: "IOC" }));
    expect(none).toMatchObject({ status: "EXPIRED", executedQty: "0.00000000" });
  });
});

describe("response types", () => {
  it("ACK, RESULT and FULL", async () => {
    const h = new Harness();
    const ack = await h.placed("bob", limit("BUY", "0.1", "50000", { newOrderRespType: "ACK" }));
    expect(Object.keys(ack)).toEqual(["symbol", "orderId", "orderListId", "clientOrderId", "transactTime"]);
    const result = await h.placed("bob", limit("BUY", "0.1", "50000", { newOrderRespType: "RESULT" }));
    expect(result.status).toBe("NEW");
    expect(result.fills).toBeUndefined();
    const full = await h.placed("bob", limit("BUY", "0.1", "50000", { newOrderRespType: "FULL" }));
    expect(full.fills).toEqual([]);
  });
});

describe("balance checks", () => {
  it("orders beyond the free balance are -2010 and change nothing", async () => {
    const h = new Harness();
    const insufficient = { status: 400, code: -2010, msg: "Account has insufficient balance for requested action." };
    expect(errorOf(await h.order("alice", limit("BUY", "2", "59000")))).toEqual(insufficient);
    expect(errorOf(await h.order("alice", limit("SELL", "2.00001", "70000")))).toEqual(insufficient);
    expect(errorOf(await h.order("alice", { symbol: "BTCUSDT", side: "BUY", type: "MARKET", quantity: "1.7" }))).toEqual(
      insufficient,
    );
    expect(errorOf(await h.order("alice", { symbol: "BTCUSDT", side: "BUY", type: "MARKET", quoteOrderQty: "100000.01" }))).toEqual(
      insufficient,
    );
    expect(errorOf(await h.order("alice", { symbol: "ETHUSDT", side: "SELL", type: "MARKET", quantity: "20.0001" }))).toEqual(
      insufficient,
    );
    expect(await h.balances("alice")).toEqual(START);
    // Locked funds are not free: 1.5 × 59000 = 88500 locked leaves 11500.
    await h.placed("alice", limit("BUY", "1.5", "59000"));
    expect(errorOf(await h.order("alice", limit("BUY", "0.2", "59000")))).toMatchObject({ code: -2010 });
    expect((await h.get("/api/v3/openOrders", "alice")).json<OrderBody[]>()).toHaveLength(1);
  });
});

describe("unknown orders", () => {
  it("query is -2013 and cancel is -2011, including another account's orders", async () => {
    const h = new Harness();
    const order = await h.placed("alice", limit("BUY", "0.1", "50000", { newClientOrderId: "mine" }));
    const doesNotExist = { status: 400, code: -2013, msg: "Order does not exist." };
    const unknown = { status: 400, code: -2011, msg: "Unknown order sent." };
    expect(errorOf(await h.get("/api/v3/order?symbol=BTCUSDT&orderId=999999", "alice"))).toEqual(doesNotExist);
    expect(errorOf(await h.get("/api/v3/order?symbol=BTCUSDT&origClientOrderId=nope", "alice"))).toEqual(doesNotExist);
    expect(errorOf(await h.get("/api/v3/order?symbol=BTCUSDT&orderId=99999999999999999999", "alice"))).toEqual(doesNotExist);
    expect(errorOf(await h.cancel("alice", "symbol=BTCUSDT&orderId=999999"))).toEqual(unknown);
    // Another account cannot see or cancel it, by id or by client id.
    expect(errorOf(await h.get(`/api/v3/order?symbol=BTCUSDT&orderId=${order.orderId}`, "mallory"))).toEqual(doesNotExist);
    expect(errorOf(await h.get("/api/v3/order?symbol=BTCUSDT&origClientOrderId=mine", "mallory"))).toEqual(doesNotExist);
    expect(errorOf(await h.cancel("mallory", `symbol=BTCUSDT&orderId=${order.orderId}`))).toEqual(unknown);
    expect(errorOf(await h.cancel("mallory", "symbol=BTCUSDT&origClientOrderId=mine"))).toEqual(unknown);
    // The wrong symbol, or an id and client id that disagree, name no order.
    expect(errorOf(await h.get(`/api/v3/order?symbol=ETHUSDT&orderId=${order.orderId}`, "alice"))).toEqual(doesNotExist);
    expect(errorOf(await h.get(`/api/v3/order?symbol=BTCUSDT&orderId=${order.orderId}&origClientOrderId=other`, "alice"))).toEqual(
      doesNotExist,
    );
    // A cancelled (or filled) order cannot be cancelled again.
    expect((await h.cancel("alice", `symbol=BTCUSDT&orderId=${order.orderId}`)).status).toBe(200);
    expect(errorOf(await h.cancel("alice", `symbol=BTCUSDT&orderId=${order.orderId}`))).toEqual(unknown);
  });
});
