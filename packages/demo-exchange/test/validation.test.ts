/**
 * Parameter validation: every Binance error code the exchange gives for a bad request, and
 * parameters merged from the query string and the body (form or JSON).
 */
import { describe, expect, it } from "vitest";
import { Harness, errorOf, type OrderBody } from "./harness.js";

const GOOD = { symbol: "BTCUSDT", side: "BUY", type: "LIMIT", timeInForce: "GTC", quantity: "0.1", price: "50000" };

function without(...names: (keyof typeof GOOD)[]): Record<string, string> {
  return Object.fromEntries(Object.entries(GOOD).filter(([name]) => !(names as string[]).includes(name)));
}

async function orderError(form: Record<string, string>): Promise<{ status: number; code: number; msg: string }> {
  return errorOf(await new Harness().order("alice", form));
}

describe("POST /api/v3/order validation", () => {
  it("the baseline order is accepted", async () => {
    expect((await new Harness().order("alice", GOOD)).status).toBe(200);
  });

  it("-1102: a mandatory parameter is missing or empty", async () => {
    for (const name of ["symbol", "side", "type", "timeInForce", "quantity", "price"] as const) {
      expect(await orderError(without(name)), name).toEqual({
        status: 400,
        code: -1102,
        msg: `Mandatory parameter '${name}' was not sent, was empty/null, or malformed.`,
      });
      expect((await orderError({ ...GOOD, [name]: "" })).code, `${name} empty`).toBe(-1102);
    }
    expect(await orderError({ symbol: "BTCUSDT", side: "BUY", type: "MARKET" })).toEqual({
      status: 400,
      code: -1102,
      msg: "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!",
    });
  });

  it("-1100: illegal characters", async () => {
    expect(await orderError({ ...GOOD, symbol: "btcusdt" })).toEqual({
      status: 400,
      code: -1100,
      msg: "Illegal characters found in parameter 'symbol'; legal range is '^[A-Z0-9-_.]{1,20}$'.",
    });
    expect((await orderError({ ...GOOD, symbol: "BTC USDT" })).code).toBe(-1100);
    expect((await orderError({ ...GOOD, symbol: "A".repeat(21) })).code).toBe(-1100);
    for (const bad of ["abc", "-1", "1e3", "1.", ".5", "0x10", "1,5", " 1", "１"]) {
      expect((await orderError({ ...GOOD, quantity: bad })).code, bad).toBe(-1100);
      expect((await orderError({ ...GOOD, price: bad })).code, bad).toBe(-1100);
    }
    expect((await orderError({ ...GOOD, newClientOrderId: "bad id!" })).code).toBe(-1100);
    expect((await orderError({ ...GOOD, newClientOrderId: "x".repeat(37) })).code).toBe(-1100);
  });

  it("-1101: a parameter sent twice, or too many parameters", async () => {
    const h = new Harness();
    const twiceInQuery = await h.call({ method: "POST", url: "/api/v3/order?symbol=BTCUSDT&symbol=ETHUSDT", account: "alice", form: without("symbol") });
    expect(errorOf(twiceInQuery)).toEqual({ status: 400, code: -1101, msg: "Duplicate values for a parameter detected." });
    const inBoth = await h.call({ method: "POST", url: "/api/v3/order?symbol=BTCUSDT", account: "alice", form: GOOD });
    expect(errorOf(inBoth).code).toBe(-1101);
    const many: Record<string, string> = { ...GOOD };
    for (let i = 0; i < 30; i++) many[`p${i}`] = "1";
    expect((await orderError(many)).code).toBe(-1101);
  });

  it("-1104: a parameter the endpoint does not read", async () => {
    expect(await orderError({ ...GOOD, stopPrice: "1" })).toEqual({
      status: 400,
      code: -1104,
      msg: "Not all sent parameters were read; read '6' parameter(s) but was sent '7'.",
    });
  });

  it("-1105: an optional parameter sent empty", async () => {
    expect((await orderError({ ...GOOD, newClientOrderId: "" })).code).toBe(-1105);
  });

  it("-1106: a parameter the order type does not take", async () => {
    const market = { symbol: "BTCUSDT", side: "BUY", type: "MARKET", quantity: "0.1" };
    expect(await orderError({ ...market, price: "60000" })).toEqual({
      status: 400,
      code: -1106,
      msg: "Parameter 'price' sent when not required.",
    });
    expect((await orderError({ ...market, timeInForce: "GTC" })).code).toBe(-1106);
    expect((await orderError({ ...GOOD, quoteOrderQty: "100" })).code).toBe(-1106);
  });

  it("-1111: more decimals than the asset has", async () => {
    expect(await orderError({ ...GOOD, quantity: "0.100000001" })).toEqual({
      status: 400,
      code: -1111,
      msg: "Parameter 'quantity' has too much precision.",
    });
    // Trailing zeros beyond the 8th decimal are fine.
    expect((await new Harness().order("alice", { ...GOOD, quantity: "0.1000000000" })).status).toBe(200);
  });

  it("-1013: PRICE_FILTER, LOT_SIZE and NOTIONAL", async () => {
    const priceFilter = { status: 400, code: -1013, msg: "Filter failure: PRICE_FILTER" };
    const lotSize = { status: 400, code: -1013, msg: "Filter failure: LOT_SIZE" };
    const notional = { status: 400, code: -1013, msg: "Filter failure: NOTIONAL" };
    expect(await orderError({ ...GOOD, price: "50000.001" })).toEqual(priceFilter);
    expect(await orderError({ ...GOOD, price: "0" })).toEqual(priceFilter);
    expect(await orderError({ ...GOOD, price: "1000000.01" })).toEqual(priceFilter);
    expect(await orderError({ ...GOOD, quantity: "0.000001" })).toEqual(lotSize);
    expect(await orderError({ ...GOOD, quantity: "0" })).toEqual(lotSize);
    expect(await orderError({ ...GOOD, quantity: "9000.00001" })).toEqual(lotSize);
    expect(await orderError({ ...GOOD, quantity: "0.00001", price: "60000" })).toEqual(notional);
    expect(await orderError({ ...GOOD, quantity: "200", price: "50000" })).toEqual(notional);
    expect(await orderError({ symbol: "BTCUSDT", side: "BUY", type: "MARKET", quoteOrderQty: "4.99" })).toEqual(notional);
    expect(await orderError({ symbol: "BTCUSDT", side: "SELL", type: "MARKET", quantity: "0.00008" })).toEqual(notional);
  });

  it("-1121: an unlisted symbol", async () => {
    expect(await orderError({ ...GOOD, symbol: "DOGEUSDT" })).toEqual({ status: 400, code: -1121, msg: "Invalid symbol." });
  });

  it("-1116 / -1117 / -1115: invalid order type, side, time in force", async () => {
    expect(await orderError({ ...GOOD, type: "STOP_LOSS" })).toEqual({ status: 400, code: -1116, msg: "Invalid orderType." });
    expect(await orderError({ ...GOOD, type: "limit" })).toMatchObject({ code: -1116 });
    expect(await orderError({ ...GOOD, side: "HOLD" })).toEqual({ status: 400, code: -1117, msg: "Invalid side." });
    expect(await orderError({ ...GOOD, timeInForce: "GTD" })).toEqual({ status: 400, code: -1115, msg: "Invalid timeInForce." });
  });

  it("-1128 / -1130: bad combinations and bad values", async () => {
    expect(await orderError({ symbol: "BTCUSDT", side: "BUY", type: "MARKET", quantity: "0.1", quoteOrderQty: "100" })).toEqual({
      status: 400,
      code: -1128,
      msg: "Combination of optional parameters invalid.",
    });
    expect(await orderError({ ...GOOD, newOrderRespType: "BOGUS" })).toEqual({
      status: 400,
      code: -1130,
      msg: "Data sent for parameter 'newOrderRespType' is not valid.",
    });
    const h = new Harness();
    expect(errorOf(await h.get(`/api/v3/ticker/price?symbol=BTCUSDT&symbols=${encodeURIComponent('["BTCUSDT"]')}`)).code).toBe(-1128);
    expect(errorOf(await h.get("/api/v3/ticker/price?symbols=BTCUSDT")).code).toBe(-1100);
    expect(errorOf(await h.get(`/api/v3/ticker/price?symbols=${encodeURIComponent('["BTCUSDT","BTCUSDT"]')}`)).code).toBe(-1151);
  });

  it("Binance signing parameters are ignored", async () => {
    const reply = await new Harness().order("alice", { ...GOOD, timestamp: "1700000000000", recvWindow: "5000", signature: "00ff" });
    expect(reply.status).toBe(200);
  });
});

describe("GET and DELETE /api/v3/order validation", () => {
  it("need a symbol and orderId or origClientOrderId", async () => {
    const h = new Harness();
    expect(errorOf(await h.get("/api/v3/order?orderId=1", "alice")).code).toBe(-1102);
    expect(errorOf(await h.get("/api/v3/order?symbol=BTCUSDT", "alice"))).toEqual({
      status: 400,
      code: -1102,
      msg: "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
    });
    expect(errorOf(await h.cancel("alice", "symbol=BTCUSDT")).code).toBe(-1102);
    expect(errorOf(await h.get("/api/v3/order?symbol=BTCUSDT&orderId=12a", "alice")).code).toBe(-1100);
    expect(errorOf(await h.get("/api/v3/order?symbol=BTCUSDT&orderId=-1", "alice")).code).toBe(-1100);
    expect(errorOf(await h.get("/api/v3/order?symbol=BTCUSDT&origClientOrderId=a%20b", "alice")).code).toBe(-1100);
    expect(errorOf(await h.cancel("alice", "symbol=XRPUSDT&orderId=1")).code).toBe(-1121);
    expect(errorOf(await h.get("/api/v3/openOrders?symbol=XRPUSDT", "alice")).code).toBe(-1121);
  });
});

describe("parameter sources", () => {
  it("query string and form body are merged", async () => {
    const h = new Harness();
    const reply = await h.call({ method: "POST", url: "/api/v3/order?symbol=BTCUSDT&side=BUY", account: "alice", form: without("symbol", "side") });
    expect(reply.status).toBe(200);
  });

  it("a JSON object body works, with numbers as numbers", async () => {
    const h = new Harness();
    const reply = await h.call({
      method: "POST",
      url: "/api/v3/order",
      account: "alice",
      json: { symbol: "BTCUSDT", side: "SELL", type: "LIMIT", timeInForce: "GTC", quantity: 0.25, price: 65000 },
    });
    expect(reply.status).toBe(200);
    expect(reply.json<OrderBody>()).toMatchObject({ origQty: "0.25000000", price: "65000.00000000", status: "NEW" });
    const nested = await h.call({ method: "POST", url: "/api/v3/order", account: "alice", json: { ...GOOD, quantity: { n: 1 } } });
    expect(errorOf(nested).code).toBe(-1100);
    const nullQty = await h.call({ method: "POST", url: "/api/v3/order", account: "alice", json: { ...GOOD, quantity: null } });
    expect(errorOf(nullQty).code).toBe(-1102);
  });

  it("the whole request can be in the query string, as Binance allows", async () => {
    const h = new Harness();
    const query = new URLSearchParams(GOOD).toString();
    expect((await h.call({ method: "POST", url: `/api/v3/order?${query}`, account: "alice" })).status).toBe(200);
  });
});
