/**
 * The demo exchange's Kraken-shaped API (venues/kraken.ts), called directly with gateway
 * identity headers: Kraken's answer shapes, its error strings, and the same engine and ledger
 * as the Binance shape.
 */
import { beforeEach, describe, expect, it } from "vitest";
import { DEMO_EXCHANGE_ROUTES } from "../../src/exchange/index.js";
import { krakenVenue } from "../../src/exchange/venues/kraken.js";
import { Harness, type Reply, T0 } from "../harness.js";

interface KrakenReply<T> {
  error: string[];
  result?: T;
}

interface AddOrderResult {
  descr: { order: string };
  txid?: string[];
}

let h: Harness;
beforeEach(() => {
  h = new Harness();
});

function body<T = Record<string, unknown>>(reply: Reply): KrakenReply<T> {
  return reply.json<KrakenReply<T>>();
}

/** A Kraken error answer: HTTP 200, `{"error":[error]}`, no result. */
function expectError(reply: Reply, error: string, status = 200): void {
  expect({ status: reply.status, body: reply.json<unknown>() }).toEqual({ status, body: { error: [error] } });
}

function addOrder(form: Record<string, string>, account = "alice", scopes = "read,trade"): Promise<Reply> {
  return h.call({ method: "POST", url: "/0/private/AddOrder", account, scopes, form: { nonce: "1", ...form } });
}

async function placed(form: Record<string, string>, account = "alice"): Promise<AddOrderResult> {
  const reply = await addOrder(form, account);
  const answer = body<AddOrderResult>(reply);
  if (reply.status !== 200 || answer.error.length > 0 || answer.result === undefined) throw new Error(`AddOrder failed: ${reply.body}`);
  return answer.result;
}

async function balances(account = "alice"): Promise<Record<string, { balance: string; hold_trade: string }>> {
  const reply = await h.call({ method: "POST", url: "/0/private/BalanceEx", account, scopes: "read", form: { nonce: "1" } });
  return body<Record<string, { balance: string; hold_trade: string }>>(reply).result ?? {};
}

describe("routes", () => {
  it("every Kraken route carries the kraken dialect and its permission, and is in the exchange's table", () => {
    expect(krakenVenue.routes.map((r) => [r.method, r.path, r.permission, r.dialect])).toEqual([
      ["GET", "/0/public/Time", "public", "kraken"],
      ["GET", "/0/public/Assets", "public", "kraken"],
      ["GET", "/0/public/AssetPairs", "public", "kraken"],
      ["POST", "/0/private/Balance", "read", "kraken"],
      ["POST", "/0/private/BalanceEx", "read", "kraken"],
      ["POST", "/0/private/AddOrder", "trade", "kraken"],
    ]);
    for (const route of krakenVenue.routes) expect(DEMO_EXCHANGE_ROUTES).toContain(route);
  });
});

describe("public endpoints", () => {
  it("Time: unixtime and Kraken's rfc1123 text", async () => {
    const reply = await h.get("/0/public/Time");
    expect(reply.status).toBe(200);
    expect(reply.json<unknown>()).toEqual({ error: [], result: { unixtime: T0 / 1000, rfc1123: "Tue, 14 Nov 23 22:13:20 +0000" } });
  });

  it("Assets: XXBT, XETH and USDT, with their altnames; filtered by id or altname", async () => {
    const all = body(await h.get("/0/public/Assets")).result ?? {};
    expect(Object.keys(all)).toEqual(["XXBT", "XETH", "USDT"]);
    expect(all.XXBT).toEqual({ aclass: "currency", altname: "XBT", decimals: 8, display_decimals: 5, status: "enabled" });
    expect(Object.keys(body(await h.get("/0/public/Assets?asset=XBT,XETH")).result ?? {})).toEqual(["XXBT", "XETH"]);
    expectError(await h.get("/0/public/Assets?asset=DOGE"), "EQuery:Unknown asset");
  });

  it("AssetPairs: XBTUSDT and ETHUSDT with the engine's tick, step and minimums", async () => {
    const all = body(await h.get("/0/public/AssetPairs")).result ?? {};
    expect(Object.keys(all)).toEqual(["XBTUSDT", "ETHUSDT"]);
    expect(all.XBTUSDT).toMatchObject({
      altname: "XBTUSDT",
      wsname: "XBT/USDT",
      base: "XXBT",
      quote: "USDT",
      pair_decimals: 2,
      lot_decimals: 5,
      ordermin: "0.00001000",
      costmin: "5.00000000",
      tick_size: "0.01000000",
      status: "online",
    });
    expect(all.ETHUSDT).toMatchObject({ base: "XETH", quote: "USDT", pair_decimals: 2, lot_decimals: 4, ordermin: "0.00010000" });
    expect(Object.keys(body(await h.get("/0/public/AssetPairs?pair=ETHUSDT")).result ?? {})).toEqual(["ETHUSDT"]);
    expectError(await h.get("/0/public/AssetPairs?pair=XBTEUR"), "EQuery:Unknown asset pair");
    expectError(await h.get("/0/public/AssetPairs?pair=XBTUSDT&pair=ETHUSDT"), "EGeneral:Invalid arguments:pair");
  });
});

describe("identity", () => {
  it("a private request without a valid gateway identity: EAPI:Invalid key", async () => {
    expectError(await h.call({ method: "POST", url: "/0/private/Balance", form: { nonce: "1" } }), "EAPI:Invalid key");
    expectError(await h.call({ method: "POST", url: "/0/private/Balance", account: "alice", secret: "another-secret-0123456789abcdef0123", form: { nonce: "1" } }), "EAPI:Invalid key");
    expectError(await h.call({ method: "POST", url: "/0/private/Balance", account: "alice", signedUrl: "/0/private/AddOrder", form: { nonce: "1" } }), "EAPI:Invalid key");
    expectError(await h.call({ method: "POST", url: "/0/private/Balance", account: "alice", timestamp: T0 - 3_600_000, form: { nonce: "1" } }), "EAPI:Invalid key");
    expect(h.exchange.accounts()).toEqual([h.exchange.marketMakerAccount]);
  });

  it("an identity without the route's permission: EGeneral:Permission denied", async () => {
    expectError(await addOrder({ pair: "XBTUSDT", type: "buy", ordertype: "market", volume: "0.01" }, "alice", "read"), "EGeneral:Permission denied");
    expectError(await h.call({ method: "POST", url: "/0/private/Balance", account: "alice", scopes: "trade", form: { nonce: "1" } }), "EGeneral:Permission denied");
  });
});

describe("balances", () => {
  it("Balance (totals) and BalanceEx (totals and holds) under Kraken's asset names", async () => {
    const reply = await h.call({ method: "POST", url: "/0/private/Balance", account: "alice", scopes: "read", form: { nonce: "1" } });
    expect(reply.json<unknown>()).toEqual({ error: [], result: { XXBT: "2.00000000", XETH: "20.00000000", USDT: "100000.00000000" } });
    await placed({ pair: "XBTUSDT", type: "sell", ordertype: "limit", volume: "0.5", price: "70000" });
    expect(await balances()).toEqual({
      XXBT: { balance: "2.00000000", hold_trade: "0.50000000" },
      XETH: { balance: "20.00000000", hold_trade: "0.00000000" },
      USDT: { balance: "100000.00000000", hold_trade: "0.00000000" },
    });
  });

  it("reads JSON POST data too, and ignores parameters it does not read", async () => {
    const reply = await h.call({ method: "POST", url: "/0/private/Balance", account: "alice", scopes: "read", json: { nonce: 1, asset: "XBT" } });
    expect(body(reply).error).toEqual([]);
    expectError(await h.call({ method: "POST", url: "/0/private/Balance", account: "alice", body: "{", contentType: "application/json" }), "EGeneral:Invalid arguments");
    expectError(await h.call({ method: "POST", url: "/0/private/Balance", account: "alice", body: "nonce=1", contentType: "text/plain" }), "EGeneral:Invalid arguments");
  });
});

describe("AddOrder", () => {
  it("a limit order rests on the book and locks its funds", async () => {
    const result = await placed({ pair: "XBTUSDT", type: "buy", ordertype: "limit", volume: "1.25", price: "37500", cl_ord_id: "my-order-1" });
    expect(result.descr).toEqual({ order: "buy 1.25000000 XBTUSDT @ limit 37500.00" });
    expect(result.txid).toHaveLength(1);
    expect(result.txid?.[0]).toMatch(/^O[0-9A-Z]{5}-[0-9A-Z]{5}-[0-9A-Z]{6}$/);
    expect(h.exchange.openOrders("alice")).toEqual([
      expect.objectContaining({ symbol: "BTCUSDT", side: "BUY", type: "LIMIT", price: "37500.00000000", origQty: "1.25000000", clientOrderId: "my-order-1", status: "NEW" }),
    ]);
    expect((await balances()).USDT).toEqual({ balance: "100000.00000000", hold_trade: "46875.00000000" });
  });

  it("a market order fills against the book (by altname or pair id, by volume or by cost)", async () => {
    const bought = await placed({ pair: "ETHUSDT", type: "buy", ordertype: "market", volume: "2" });
    expect(bought.descr.order).toBe("buy 2.00000000 ETHUSDT @ market");
    expect((await balances()).XETH?.balance).toBe("22.00000000");
    await placed({ pair: "XBTUSDT", type: "buy", ordertype: "market", volume: "600", oflags: "viqc,fciq" });
    const after = await balances();
    expect(after.XXBT?.balance).toMatch(/^2\.00[0-9]{6}$/);
    expect(Number(after.XXBT?.balance)).toBeGreaterThan(2.0099);
    // Value is conserved across both shapes of the API.
    for (const s of Object.values(h.exchange.supply())) expect(s.held).toBe(s.minted);
  });

  it("an IOC limit order that cannot fill expires without holding funds", async () => {
    await placed({ pair: "XBTUSDT", type: "buy", ordertype: "limit", volume: "0.1", price: "50000", timeinforce: "IOC" });
    expect(h.exchange.openOrders("alice")).toEqual([]);
    expect((await balances()).USDT).toEqual({ balance: "100000.00000000", hold_trade: "0.00000000" });
  });

  it("validate=true checks the order without placing it", async () => {
    const result = await placed({ pair: "XBTUSDT", type: "sell", ordertype: "limit", volume: "0.1", price: "65000", validate: "true" });
    expect(result).toEqual({ descr: { order: "sell 0.10000000 XBTUSDT @ limit 65000.00" } });
    expect(h.exchange.openOrders("alice")).toEqual([]);
  });

  it("refuses bad arguments with Kraken's strings", async () => {
    const base = { pair: "XBTUSDT", type: "buy", ordertype: "limit", volume: "0.1", price: "50000" };
    const cases: [Record<string, string>, string][] = [
      [{ pair: "" }, "EGeneral:Invalid arguments:pair"],
      [{ pair: "XBTEUR" }, "EQuery:Unknown asset pair"],
      [{ type: "hold" }, "EGeneral:Invalid arguments:type"],
      [{ ordertype: "stop-loss" }, "EGeneral:Invalid arguments:ordertype"],
      [{ volume: "" }, "EGeneral:Invalid arguments:volume"],
      [{ volume: "-1" }, "EGeneral:Invalid arguments:volume"],
      [{ volume: "0.000000001" }, "EGeneral:Invalid arguments:volume"],
      [{ volume: "0.000001" }, "EOrder:Order minimum not met"],
      [{ volume: "0.100001" }, "EGeneral:Invalid arguments:volume"],
      [{ volume: "10000" }, "EGeneral:Invalid arguments:volume"],
      [{ price: "" }, "EGeneral:Invalid arguments:price"],
      [{ price: "50000.001" }, "EGeneral:Invalid arguments:price"],
      [{ price: "abc" }, "EGeneral:Invalid arguments:price"],
      [{ volume: "0.0001", price: "100" }, "EOrder:Cost minimum not met"],
      [{ timeinforce: "GTD" }, "EGeneral:Invalid arguments:timeinforce"],
      [{ oflags: "post" }, "EGeneral:Invalid arguments:oflags"],
      [{ oflags: "viqc" }, "EGeneral:Invalid arguments:oflags"],
      [{ cl_ord_id: "not valid!" }, "EGeneral:Invalid arguments:cl_ord_id"],
      [{ validate: "yes" }, "EGeneral:Invalid arguments:validate"],
      [{ volume: "5", price: "50000" }, "EOrder:Insufficient funds"],
    ];
    for (const [change, error] of cases) expectError(await addOrder({ ...base, ...change }), error);
    expectError(await addOrder({ pair: "XBTUSDT", type: "buy", ordertype: "market", volume: "4", oflags: "viqc" }), "EOrder:Cost minimum not met");
    expectError(await addOrder({ pair: "XBTUSDT", type: "sell", ordertype: "market", volume: "3" }), "EOrder:Insufficient funds");
    expectError(await h.call({ method: "POST", url: "/0/private/AddOrder", account: "alice", body: "nonce=1&pair=XBTUSDT&pair=ETHUSDT", contentType: "application/x-www-form-urlencoded" }), "EGeneral:Invalid arguments:pair");
    expect(h.exchange.openOrders("alice")).toEqual([]);
  });

  it("a client order id already open is refused", async () => {
    const order = { pair: "XBTUSDT", type: "buy", ordertype: "limit", volume: "0.1", price: "50000", cl_ord_id: "dup" };
    await placed(order);
    expectError(await addOrder(order), "EGeneral:Invalid arguments:cl_ord_id");
  });

  it("a body over the exchange's limit: 413 in Kraken's shape", async () => {
    const reply = await h.call({ method: "POST", url: "/0/private/AddOrder", account: "alice", body: `nonce=1&x=${"a".repeat(70_000)}`, contentType: "application/x-www-form-urlencoded" });
    expectError(reply, "EGeneral:Invalid arguments", 413);
  });
});
