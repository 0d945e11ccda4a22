/**
 * Each venue's operation decoder (dialects/<venue>/operation.ts) and the native shape
 * (operations/native.ts), called directly on a request context: the venues' documented request
 * bodies decode to the expected operation, and every malformed request is refused with its code.
 */
import { describe, expect, it } from "vitest";
import { type Operation, type OperationKind, operationSummary } from "../../src/contract/operations.js";
import { RequestContext } from "../../src/contract/request.js";
import type { Dialect } from "../../src/contract/keys.js";
import { OPERATION_DECODERS } from "../../src/dialects/operations.js";
import type { Denial } from "../../src/errors/catalogue.js";
import { REST_PAYLOAD, MIXED_BODY, MIXED_QUERY } from "../support/binance-vectors.js";

const FORM = "application/x-www-form-urlencoded";
const JSON_TYPE = "application/json";

function decode(dialect: Dialect, kind: OperationKind, req: { query?: string; body?: string | Buffer; type?: string }): Operation | Denial {
  const path = "/x";
  const url = req.query === undefined ? path : `${path}?${req.query}`;
  const headers = req.type === undefined ? {} : { "content-type": req.type };
  const body = typeof req.body === "string" ? Buffer.from(req.body, "utf8") : (req.body ?? Buffer.alloc(0));
  const ctx = new RequestContext({ method: "POST", url, headers, body, socketAddress: "127.0.0.1" }, "t", 0);
  ctx.path = path;
  ctx.query = req.query ?? null;
  return OPERATION_DECODERS[dialect].decode(ctx, kind);
}

/** The decoded operation as data (decimals as their text), or the refusal's code. */
function summary(result: Operation | Denial): Record<string, unknown> {
  return "ok" in result ? { code: result.code, detail: result.detail } : operationSummary(result);
}

function code(result: Operation | Denial): string {
  return "ok" in result ? result.code : `decoded ${result.kind}`;
}

describe("Binance (query string and form body, as signed)", () => {
  it("the signed-endpoint example of Binance's documentation (LTCBTC limit buy) is an order.place", () => {
    expect(summary(decode("binance", "order.place", { body: `${REST_PAYLOAD}&signature=c8db`, type: FORM }))).toEqual({
      kind: "order.place",
      symbol: "LTCBTC",
      side: "buy",
      type: "limit",
      quantity: "1",
      price: "0.1",
      quoteQuantity: null,
      notional: "0.1",
    });
  });

  it("the same order split between query string and body (Binance's mixed example)", () => {
    expect(summary(decode("binance", "order.place", { query: MIXED_QUERY, body: MIXED_BODY, type: FORM }))).toMatchObject({
      symbol: "LTCBTC",
      quantity: "1",
      price: "0.1",
    });
  });

  it("a market order by quote amount, and by base quantity (no price, no notional)", () => {
    expect(summary(decode("binance", "order.place", { query: "symbol=BTCUSDT&side=BUY&type=MARKET&quoteOrderQty=100.50&timestamp=1" }))).toEqual({
      kind: "order.place",
      symbol: "BTCUSDT",
      side: "buy",
      type: "market",
      quantity: null,
      price: null,
      quoteQuantity: "100.50",
      notional: "100.50",
    });
    expect(summary(decode("binance", "order.place", { query: "symbol=btcusdt&side=SELL&type=MARKET&quantity=0.002&price=1" }))).toMatchObject({
      symbol: "BTCUSDT",
      side: "sell",
      quantity: "0.002",
      price: null,
      notional: null,
    });
  });

  it("stop and maker types", () => {
    expect(summary(decode("binance", "order.place", { query: "symbol=BTCUSDT&side=SELL&type=STOP_LOSS_LIMIT&quantity=2&price=30000.5&stopPrice=30010&timeInForce=GTC" }))).toMatchObject({
      type: "stop_loss_limit",
      notional: "60001.0",
    });
    expect(summary(decode("binance", "order.place", { query: "symbol=BTCUSDT&side=SELL&type=STOP_LOSS&quantity=2&stopPrice=30010" }))).toMatchObject({ type: "stop_loss", price: null });
    expect(code(decode("binance", "order.place", { query: "symbol=BTCUSDT&side=SELL&type=LIMIT_MAKER&quantity=2" }))).toBe("OPERATION_PARAM_MISSING");
  });

  it("a JSON object body (Binance-compatible upstreams take one), with the query string", () => {
    expect(summary(decode("binance", "order.place", { query: "timestamp=1", body: '{"symbol":"ETHUSDT","side":"BUY","type":"MARKET","quantity":"0.1"}', type: JSON_TYPE }))).toMatchObject({
      symbol: "ETHUSDT",
      type: "market",
      quantity: "0.1",
    });
  });

  it("percent-encoded names and values are read as the venue reads them", () => {
    expect(summary(decode("binance", "order.place", { query: "%73ymbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=2%2E5" }))).toMatchObject({ symbol: "BTCUSDT", price: "2.5" });
  });

  it("cancel by orderId or origClientOrderId", () => {
    expect(summary(decode("binance", "order.cancel", { query: "symbol=BTCUSDT&orderId=28&timestamp=1" }))).toEqual({ kind: "order.cancel", symbol: "BTCUSDT", orderIds: ["28"], clientOrderId: null });
    expect(summary(decode("binance", "order.cancel", { query: "symbol=BTCUSDT&origClientOrderId=myOrder1" }))).toEqual({ kind: "order.cancel", symbol: "BTCUSDT", orderIds: [], clientOrderId: "myOrder1" });
    expect(code(decode("binance", "order.cancel", { query: "symbol=BTCUSDT" }))).toBe("OPERATION_PARAM_MISSING");
    expect(code(decode("binance", "order.cancel", { query: "symbol=BTCUSDT&orderId=abc" }))).toBe("OPERATION_PARAM_INVALID");
  });

  it("withdraw/apply: coin, network, address, addressTag, amount", () => {
    expect(summary(decode("binance", "withdraw", { body: "coin=XRP&network=XRP&address=rEb8TK3gBgk5auZkwc6sHnwrGVJH8DuaLh&addressTag=123456&amount=25.5&timestamp=1", type: FORM }))).toEqual({
      kind: "withdraw",
      asset: "XRP",
      amount: "25.5",
      address: "rEb8TK3gBgk5auZkwc6sHnwrGVJH8DuaLh",
      addressName: null,
      network: "XRP",
      tag: "123456",
    });
    expect(summary(decode("binance", "withdraw", { query: "coin=usdt&address=0xabc&amount=1&addressTag=" }))).toMatchObject({ asset: "USDT", network: null, tag: null });
  });

  it("universal transfer: FROM_TO types split on the wallet names", () => {
    expect(summary(decode("binance", "transfer", { query: "type=MAIN_UMFUTURE&asset=USDT&amount=10" }))).toEqual({ kind: "transfer", asset: "USDT", amount: "10", from: "MAIN", to: "UMFUTURE" });
    expect(summary(decode("binance", "transfer", { query: "type=PORTFOLIO_MARGIN_MAIN&asset=USDT&amount=10" }))).toMatchObject({ from: "PORTFOLIO_MARGIN", to: "MAIN" });
    expect(code(decode("binance", "transfer", { query: "type=MAIN&asset=USDT&amount=10" }))).toBe("OPERATION_PARAM_INVALID");
  });

  it.each([
    ["a parameter twice in the query", { query: "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=1&quantity=100" }, "OPERATION_PARAM_DUPLICATED"],
    ["a parameter in both query and body", { query: "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1", body: "price=1&quantity=100", type: FORM }, "OPERATION_PARAM_DUPLICATED"],
    ["a duplicate spelled with percent-encoding", { query: "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=1&%71uantity=100" }, "OPERATION_PARAM_DUPLICATED"],
    ["no symbol", { query: "side=BUY&type=LIMIT&quantity=1&price=1" }, "OPERATION_PARAM_MISSING"],
    ["an empty quantity", { query: "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=&price=1" }, "OPERATION_PARAM_MISSING"],
    ["a limit order without a price", { query: "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1" }, "OPERATION_PARAM_MISSING"],
    ["a market order with both sizes", { query: "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=1&quoteOrderQty=1" }, "OPERATION_PARAM_INVALID"],
    ["a market order with no size", { query: "symbol=BTCUSDT&side=BUY&type=MARKET" }, "OPERATION_PARAM_MISSING"],
    ["a lower-case side", { query: "symbol=BTCUSDT&side=buy&type=LIMIT&quantity=1&price=1" }, "OPERATION_PARAM_INVALID"],
    ["an unknown side", { query: "symbol=BTCUSDT&side=SHORT&type=LIMIT&quantity=1&price=1" }, "OPERATION_PARAM_INVALID"],
    ["an unknown type", { query: "symbol=BTCUSDT&side=BUY&type=ICEBERG&quantity=1&price=1" }, "OPERATION_PARAM_INVALID"],
    ["an exponent", { query: "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1e5&price=1" }, "OPERATION_PARAM_INVALID"],
    ["hex", { query: "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=0x10&price=1" }, "OPERATION_PARAM_INVALID"],
    ["leading spaces", { query: "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=%20%201&price=1" }, "OPERATION_PARAM_INVALID"],
    ["a negative quantity", { query: "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=-1&price=1" }, "OPERATION_PARAM_INVALID"],
    ["a zero quantity", { query: "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=0.000&price=1" }, "OPERATION_PARAM_INVALID"],
    ["a zero price", { query: "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=0" }, "OPERATION_PARAM_INVALID"],
    ["an over-long quantity", { query: `symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=${"1".repeat(21)}&price=1` }, "OPERATION_PARAM_INVALID"],
    ["too many decimals", { query: `symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=0.${"1".repeat(21)}&price=1` }, "OPERATION_PARAM_INVALID"],
    ["a symbol with spaces", { query: "symbol=BTC%20USDT&side=BUY&type=LIMIT&quantity=1&price=1" }, "OPERATION_PARAM_INVALID"],
    ["a symbol with a non-ASCII letter", { query: "symbol=BTC%C3%9CSDT&side=BUY&type=LIMIT&quantity=1&price=1" }, "OPERATION_PARAM_INVALID"],
    ["an over-long symbol", { query: `symbol=${"A".repeat(65)}&side=BUY&type=LIMIT&quantity=1&price=1` }, "OPERATION_PARAM_INVALID"],
    ["a text body", { body: "symbol=BTCUSDT", type: "text/plain" }, "OPERATION_MALFORMED"],
    ["a JSON body that is not an object", { body: '["BTCUSDT"]', type: JSON_TYPE }, "OPERATION_MALFORMED"],
    ["a JSON member also in the query", { query: "quantity=1", body: '{"symbol":"BTCUSDT","side":"BUY","type":"LIMIT","quantity":"100","price":"1"}', type: JSON_TYPE }, "OPERATION_PARAM_DUPLICATED"],
    ["a JSON number as the quantity", { body: '{"symbol":"BTCUSDT","side":"BUY","type":"LIMIT","quantity":0.1,"price":"1"}', type: JSON_TYPE }, "OPERATION_PARAM_INVALID"],
  ])("refuses %s", (_name, req, expected) => {
    expect(code(decode("binance", "order.place", req))).toBe(expected);
  });

  it.each([
    ["no address", "coin=BTC&amount=1", "OPERATION_PARAM_MISSING"],
    ["no amount", "coin=BTC&address=bc1q", "OPERATION_PARAM_MISSING"],
    ["a negative amount", "coin=BTC&address=bc1q&amount=-0.5", "OPERATION_PARAM_INVALID"],
    ["an address with a space", "coin=BTC&address=bc1q%20x&amount=1", "OPERATION_PARAM_INVALID"],
    ["an address twice", "coin=BTC&address=bc1qA&amount=1&address=bc1qB", "OPERATION_PARAM_DUPLICATED"],
    ["an over-long address", `coin=BTC&address=${"a".repeat(257)}&amount=1`, "OPERATION_PARAM_INVALID"],
    ["an asset with a slash", "coin=BTC/X&address=bc1q&amount=1", "OPERATION_PARAM_INVALID"],
  ])("refuses a withdrawal with %s", (_name, body, expected) => {
    expect(code(decode("binance", "withdraw", { body, type: FORM }))).toBe(expected);
  });
});

describe("Kraken (POST data, form or JSON)", () => {
  it("the AddOrder example of Kraken's authentication documentation", () => {
    expect(summary(decode("kraken", "order.place", { body: "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25", type: FORM }))).toEqual({
      kind: "order.place",
      symbol: "XBTUSD",
      side: "buy",
      type: "limit",
      quantity: "1.25",
      price: "37500",
      quoteQuantity: null,
      notional: "46875.00",
    });
  });

  it("the same order as JSON (Kraken takes both)", () => {
    expect(summary(decode("kraken", "order.place", { body: '{"nonce":1616492376594,"ordertype":"limit","pair":"XBTUSD","price":"37500","type":"buy","volume":"1.25"}', type: JSON_TYPE }))).toMatchObject({
      quantity: "1.25",
      notional: "46875.00",
    });
  });

  it("market orders, viqc (volume in quote), and stop-loss-limit's limit price in price2", () => {
    expect(summary(decode("kraken", "order.place", { body: "nonce=1&ordertype=market&pair=XBTUSD&type=sell&volume=0.5&price=1", type: FORM }))).toMatchObject({ type: "market", price: null, notional: null });
    expect(summary(decode("kraken", "order.place", { body: "nonce=1&ordertype=market&pair=XBTUSD&type=buy&volume=100&oflags=post,viqc", type: FORM }))).toMatchObject({
      quantity: null,
      quoteQuantity: "100",
      notional: "100",
    });
    expect(summary(decode("kraken", "order.place", { body: "nonce=1&ordertype=stop-loss-limit&pair=XBTUSD&type=sell&volume=2&price=30000&price2=29900", type: FORM }))).toMatchObject({
      type: "stop-loss-limit",
      price: "29900",
      notional: "59800",
    });
  });

  it("CancelOrder, Withdraw (by saved key name) and WalletTransfer", () => {
    expect(summary(decode("kraken", "order.cancel", { body: "nonce=1&txid=OYVGEW-VYV5B-UUEXSK", type: FORM }))).toEqual({ kind: "order.cancel", symbol: null, orderIds: ["OYVGEW-VYV5B-UUEXSK"], clientOrderId: null });
    expect(summary(decode("kraken", "withdraw", { body: "nonce=1&asset=XBT&key=btc_testnet_with1&amount=0.725", type: FORM }))).toEqual({
      kind: "withdraw",
      asset: "XBT",
      amount: "0.725",
      address: null,
      addressName: "btc_testnet_with1",
      network: null,
      tag: null,
    });
    expect(summary(decode("kraken", "withdraw", { body: "nonce=1&asset=XBT&key=my+key&amount=0.725&address=bc1qxyz", type: FORM }))).toMatchObject({ address: "bc1qxyz", addressName: "my key" });
    expect(summary(decode("kraken", "transfer", { body: "nonce=1&asset=XBT&from=Spot+Wallet&to=Futures+Wallet&amount=0.5", type: FORM }))).toEqual({
      kind: "transfer",
      asset: "XBT",
      amount: "0.5",
      from: "Spot Wallet",
      to: "Futures Wallet",
    });
  });

  it.each([
    ["volume twice", { body: "nonce=1&ordertype=limit&pair=XBTUSD&price=1&type=buy&volume=1&volume=9", type: FORM }, "OPERATION_PARAM_DUPLICATED"],
    ["a JSON member twice", { body: '{"nonce":1,"ordertype":"limit","pair":"XBTUSD","price":"1","type":"buy","volume":"1","volume":"9"}', type: JSON_TYPE }, "OPERATION_PARAM_DUPLICATED"],
    ["a JSON number as volume", { body: '{"nonce":1,"ordertype":"limit","pair":"XBTUSD","price":"1","type":"buy","volume":1.25}', type: JSON_TYPE }, "OPERATION_PARAM_INVALID"],
    ["an upper-case side", { body: "nonce=1&ordertype=limit&pair=XBTUSD&price=1&type=BUY&volume=1", type: FORM }, "OPERATION_PARAM_INVALID"],
    ["a limit order without a price", { body: "nonce=1&ordertype=limit&pair=XBTUSD&type=buy&volume=1", type: FORM }, "OPERATION_PARAM_MISSING"],
    ["no body", { body: "", type: FORM }, "OPERATION_MALFORMED"],
    ["a text body", { body: "hello", type: "text/plain" }, "OPERATION_MALFORMED"],
  ])("refuses %s", (_name, req, expected) => {
    expect(code(decode("kraken", "order.place", req))).toBe(expected);
  });

  it("refuses a withdrawal without its key name", () => {
    expect(code(decode("kraken", "withdraw", { body: "nonce=1&asset=XBT&amount=1&address=bc1q", type: FORM }))).toBe("OPERATION_PARAM_MISSING");
  });
});

describe("OKX (JSON body)", () => {
  it("the place-order example of OKX's documentation", () => {
    expect(summary(decode("okx", "order.place", { body: '{"instId":"BTC-USDT","tdMode":"cash","clOrdId":"b15","side":"buy","ordType":"limit","px":"2.15","sz":"2"}', type: JSON_TYPE }))).toEqual({
      kind: "order.place",
      symbol: "BTC-USDT",
      side: "buy",
      type: "limit",
      quantity: "2",
      price: "2.15",
      quoteQuantity: null,
      notional: "4.30",
    });
  });

  it("a spot market buy sized in quote (tgtCcy quote_ccy)", () => {
    expect(summary(decode("okx", "order.place", { body: '{"instId":"BTC-USDT","tdMode":"cash","side":"buy","ordType":"market","sz":"100","tgtCcy":"quote_ccy"}', type: JSON_TYPE }))).toMatchObject({
      quantity: null,
      quoteQuantity: "100",
      price: null,
    });
  });

  it("the withdrawal example of OKX's documentation, a cancel and a transfer", () => {
    expect(summary(decode("okx", "withdraw", { body: '{"amt":"1","dest":"4","ccy":"BTC","chain":"BTC-Bitcoin","toAddr":"17DKe3kkkkiiiiTvAKKi2vMPbm1Bz3CMKw"}', type: JSON_TYPE }))).toEqual({
      kind: "withdraw",
      asset: "BTC",
      amount: "1",
      address: "17DKe3kkkkiiiiTvAKKi2vMPbm1Bz3CMKw",
      addressName: null,
      network: "BTC-Bitcoin",
      tag: null,
    });
    expect(summary(decode("okx", "order.cancel", { body: '{"ordId":"590908157585625111","instId":"BTC-USD-190927"}', type: JSON_TYPE }))).toEqual({
      kind: "order.cancel",
      symbol: "BTC-USD-190927",
      orderIds: ["590908157585625111"],
      clientOrderId: null,
    });
    expect(summary(decode("okx", "transfer", { body: '{"ccy":"USDT","amt":"1.5","from":"6","to":"18"}', type: JSON_TYPE }))).toEqual({ kind: "transfer", asset: "USDT", amount: "1.5", from: "6", to: "18" });
  });

  it.each([
    ["sz as a JSON number", '{"instId":"BTC-USDT","side":"buy","ordType":"limit","px":"2.15","sz":2}', "OPERATION_PARAM_INVALID"],
    ["a member twice", '{"instId":"BTC-USDT","side":"buy","ordType":"limit","px":"2.15","sz":"2","sz":"2000"}', "OPERATION_PARAM_DUPLICATED"],
    ["a member twice, spelled with an escape", '{"instId":"BTC-USDT","side":"buy","ordType":"limit","px":"2.15","sz":"2","s\\u007a":"2000"}', "OPERATION_PARAM_DUPLICATED"],
    ["a nested member twice", '{"instId":"BTC-USDT","side":"buy","ordType":"limit","px":"2.15","sz":"2","attachAlgoOrds":[{"tpTriggerPx":"1","tpTriggerPx":"2"}]}', "OPERATION_PARAM_DUPLICATED"],
    ["__proto__ instead of a field", '{"__proto__":{"sz":"2"},"instId":"BTC-USDT","side":"buy","ordType":"limit","px":"2.15"}', "OPERATION_PARAM_MISSING"],
    ["an unknown ordType", '{"instId":"BTC-USDT","side":"buy","ordType":"twap","px":"2.15","sz":"2"}', "OPERATION_PARAM_INVALID"],
    ["a limit without px", '{"instId":"BTC-USDT","side":"buy","ordType":"limit","sz":"2"}', "OPERATION_PARAM_MISSING"],
    ["invalid JSON", '{"instId":"BTC-USDT",', "OPERATION_MALFORMED"],
    ["a JSON array", "[1,2]", "OPERATION_MALFORMED"],
  ])("refuses %s", (_name, body, expected) => {
    expect(code(decode("okx", "order.place", { body, type: JSON_TYPE }))).toBe(expected);
  });

  it("refuses a form body and bytes that are not UTF-8", () => {
    expect(code(decode("okx", "order.place", { body: "instId=BTC-USDT", type: FORM }))).toBe("OPERATION_MALFORMED");
    expect(code(decode("okx", "order.place", { body: Buffer.from([0x7b, 0xff, 0x7d]), type: JSON_TYPE }))).toBe("OPERATION_MALFORMED");
  });

  it("refuses an OKX withdrawal with an unknown dest", () => {
    expect(code(decode("okx", "withdraw", { body: '{"amt":"1","dest":"9","ccy":"BTC","toAddr":"17DK"}', type: JSON_TYPE }))).toBe("OPERATION_PARAM_INVALID");
  });
});

describe("Bybit v5 (JSON body)", () => {
  it("the create-order example of Bybit's documentation (spot PostOnly limit)", () => {
    const body = '{"category": "spot","symbol": "BTCUSDT","side": "Buy","orderType": "Limit","qty": "0.1","price": "15600","timeInForce": "PostOnly","orderLinkId": "spot-test-postonly","isLeverage": 0,"orderFilter": "Order"}';
    expect(summary(decode("bybit", "order.place", { body, type: JSON_TYPE }))).toEqual({
      kind: "order.place",
      symbol: "BTCUSDT",
      side: "buy",
      type: "limit",
      quantity: "0.1",
      price: "15600",
      quoteQuantity: null,
      notional: "1560.0",
    });
  });

  it("a market buy in quote coin, a cancel, the withdrawal example and a transfer", () => {
    expect(summary(decode("bybit", "order.place", { body: '{"category":"spot","symbol":"BTCUSDT","side":"Buy","orderType":"Market","qty":"200","marketUnit":"quoteCoin"}', type: JSON_TYPE }))).toMatchObject({
      quantity: null,
      quoteQuantity: "200",
      notional: "200",
    });
    expect(summary(decode("bybit", "order.cancel", { body: '{"category":"linear","symbol":"BTCPERP","orderLinkId":null,"orderId":"c6f055d9-7f21-4079-913d-e6523a9cfffa"}', type: JSON_TYPE }))).toEqual({
      kind: "order.cancel",
      symbol: "BTCPERP",
      orderIds: ["c6f055d9-7f21-4079-913d-e6523a9cfffa"],
      clientOrderId: null,
    });
    const withdrawal = '{"coin": "USDT","chain": "ETH","address": "0x99ced129603abc771c0dabe935c326ff6c86645d","amount": "24","timestamp": 1672196561407,"forceChain": 0,"accountType": "FUND"}';
    expect(summary(decode("bybit", "withdraw", { body: withdrawal, type: JSON_TYPE }))).toEqual({
      kind: "withdraw",
      asset: "USDT",
      amount: "24",
      address: "0x99ced129603abc771c0dabe935c326ff6c86645d",
      addressName: null,
      network: "ETH",
      tag: null,
    });
    expect(summary(decode("bybit", "transfer", { body: '{"transferId":"42c0cfb0-6bca-c242-bc76-4e6df6cbbb16","coin":"BTC","amount":"0.05","fromAccountType":"UNIFIED","toAccountType":"CONTRACT"}', type: JSON_TYPE }))).toEqual({
      kind: "transfer",
      asset: "BTC",
      amount: "0.05",
      from: "UNIFIED",
      to: "CONTRACT",
    });
  });

  it.each([
    ["a lower-case side", '{"category":"spot","symbol":"BTCUSDT","side":"buy","orderType":"Limit","qty":"1","price":"1"}', "OPERATION_PARAM_INVALID"],
    ["no category", '{"symbol":"BTCUSDT","side":"Buy","orderType":"Limit","qty":"1","price":"1"}', "OPERATION_PARAM_MISSING"],
    ["an unknown category", '{"category":"margin","symbol":"BTCUSDT","side":"Buy","orderType":"Limit","qty":"1","price":"1"}', "OPERATION_PARAM_INVALID"],
    ["qty with an exponent", '{"category":"spot","symbol":"BTCUSDT","side":"Buy","orderType":"Limit","qty":"1E2","price":"1"}', "OPERATION_PARAM_INVALID"],
    ["qty twice", '{"category":"spot","symbol":"BTCUSDT","side":"Buy","orderType":"Limit","qty":"1","price":"1","qty":"100"}', "OPERATION_PARAM_DUPLICATED"],
    ["no content type", null, "OPERATION_MALFORMED"],
  ])("refuses %s", (_name, body, expected) => {
    const req = body === null ? { body: '{"category":"spot"}' } : { body, type: JSON_TYPE };
    expect(code(decode("bybit", "order.place", req))).toBe(expected);
  });
});

describe("Coinbase Advanced Trade (JSON body)", () => {
  it("a market order by quote size and a GTC limit order by base size", () => {
    const market = '{"client_order_id":"0000-00000-000000","product_id":"BTC-USD","side":"BUY","order_configuration":{"market_market_ioc":{"quote_size":"10"}}}';
    expect(summary(decode("coinbase", "order.place", { body: market, type: JSON_TYPE }))).toEqual({
      kind: "order.place",
      symbol: "BTC-USD",
      side: "buy",
      type: "market_market_ioc",
      quantity: null,
      price: null,
      quoteQuantity: "10",
      notional: "10",
    });
    const limit = '{"client_order_id":"1","product_id":"ETH-USD","side":"SELL","order_configuration":{"limit_limit_gtc":{"base_size":"0.5","limit_price":"3000.10","post_only":false}}}';
    expect(summary(decode("coinbase", "order.place", { body: limit, type: JSON_TYPE }))).toMatchObject({ side: "sell", type: "limit_limit_gtc", quantity: "0.5", price: "3000.10", notional: "1500.050" });
  });

  it("batch cancel, a send (withdrawal) and a move between portfolios", () => {
    expect(summary(decode("coinbase", "order.cancel", { body: '{"order_ids":["a1","b2"]}', type: JSON_TYPE }))).toEqual({ kind: "order.cancel", symbol: null, orderIds: ["a1", "b2"], clientOrderId: null });
    expect(summary(decode("coinbase", "withdraw", { body: '{"type":"send","to":"0x5b8f0000000000000000000000000000000000aa","amount":"0.1","currency":"eth","network":"ethereum"}', type: JSON_TYPE }))).toEqual({
      kind: "withdraw",
      asset: "ETH",
      amount: "0.1",
      address: "0x5b8f0000000000000000000000000000000000aa",
      addressName: null,
      network: "ethereum",
      tag: null,
    });
    expect(summary(decode("coinbase", "transfer", { body: '{"funds":{"value":"25","currency":"USD"},"source_portfolio_uuid":"p-1","target_portfolio_uuid":"p-2"}', type: JSON_TYPE }))).toEqual({
      kind: "transfer",
      asset: "USD",
      amount: "25",
      from: "p-1",
      to: "p-2",
    });
  });

  it.each([
    ["two configurations", '{"product_id":"BTC-USD","side":"BUY","order_configuration":{"market_market_ioc":{"quote_size":"10"},"limit_limit_gtc":{"base_size":"1","limit_price":"1"}}}', "OPERATION_PARAM_INVALID"],
    ["an unknown configuration", '{"product_id":"BTC-USD","side":"BUY","order_configuration":{"twap":{"quote_size":"10"}}}', "OPERATION_PARAM_INVALID"],
    ["both sizes", '{"product_id":"BTC-USD","side":"BUY","order_configuration":{"market_market_ioc":{"quote_size":"10","base_size":"1"}}}', "OPERATION_PARAM_INVALID"],
    ["no size", '{"product_id":"BTC-USD","side":"BUY","order_configuration":{"market_market_ioc":{}}}', "OPERATION_PARAM_MISSING"],
    ["a limit without its price", '{"product_id":"BTC-USD","side":"BUY","order_configuration":{"limit_limit_gtc":{"base_size":"1"}}}', "OPERATION_PARAM_MISSING"],
    ["a nested size twice", '{"product_id":"BTC-USD","side":"BUY","order_configuration":{"market_market_ioc":{"quote_size":"10","quote_size":"100000"}}}', "OPERATION_PARAM_DUPLICATED"],
    ["a float size", '{"product_id":"BTC-USD","side":"BUY","order_configuration":{"market_market_ioc":{"quote_size":10.5}}}', "OPERATION_PARAM_INVALID"],
  ])("refuses %s", (_name, body, expected) => {
    expect(code(decode("coinbase", "order.place", { body, type: JSON_TYPE }))).toBe(expected);
  });

  it("refuses a transaction that is not a send, and an empty cancel list", () => {
    expect(code(decode("coinbase", "withdraw", { body: '{"type":"transfer","to":"x","amount":"1","currency":"BTC"}', type: JSON_TYPE }))).toBe("OPERATION_PARAM_INVALID");
    expect(code(decode("coinbase", "order.cancel", { body: '{"order_ids":[]}', type: JSON_TYPE }))).toBe("OPERATION_PARAM_INVALID");
    expect(code(decode("coinbase", "order.cancel", { body: '{"order_ids":["a",7]}', type: JSON_TYPE }))).toBe("OPERATION_PARAM_INVALID");
  });
});

describe("the native shape (JSON body, or the query of a request without one)", () => {
  it("an order, a cancel, a withdrawal, a transfer and a key change", () => {
    expect(summary(decode("native", "order.place", { body: '{"symbol":"btcusdt","side":"buy","type":"limit","quantity":"0.5","price":"60000"}', type: JSON_TYPE }))).toEqual({
      kind: "order.place",
      symbol: "BTCUSDT",
      side: "buy",
      type: "limit",
      quantity: "0.5",
      price: "60000",
      quoteQuantity: null,
      notional: "30000.0",
    });
    expect(summary(decode("native", "order.cancel", { query: "symbol=BTCUSDT&orderId=42" }))).toEqual({ kind: "order.cancel", symbol: "BTCUSDT", orderIds: ["42"], clientOrderId: null });
    expect(summary(decode("native", "withdraw", { body: '{"asset":"usdt","amount":"1500","address":"TXYZ1234","network":"TRX","tag":"memo 1"}', type: JSON_TYPE }))).toEqual({
      kind: "withdraw",
      asset: "USDT",
      amount: "1500",
      address: "TXYZ1234",
      addressName: null,
      network: "TRX",
      tag: "memo 1",
    });
    expect(summary(decode("native", "transfer", { body: '{"asset":"BTC","amount":"0.1","from":"spot","to":"margin"}', type: JSON_TYPE }))).toMatchObject({ from: "spot", to: "margin" });
    expect(summary(decode("native", "key.revoke", { body: '{"keyId":"pk_test_abc"}', type: JSON_TYPE }))).toEqual({ kind: "key.revoke", keyId: "pk_test_abc" });
  });

  it.each([
    ["a market order with a price", '{"symbol":"BTCUSDT","side":"buy","type":"market","quantity":"1","price":"1"}', "OPERATION_PARAM_INVALID"],
    ["an upper-case type", '{"symbol":"BTCUSDT","side":"buy","type":"LIMIT","quantity":"1","price":"1"}', "OPERATION_PARAM_INVALID"],
    ["both sizes", '{"symbol":"BTCUSDT","side":"buy","type":"market","quantity":"1","quoteQuantity":"1"}', "OPERATION_PARAM_INVALID"],
    ["a side that is not buy or sell", '{"symbol":"BTCUSDT","side":"long","type":"limit","quantity":"1","price":"1"}', "OPERATION_PARAM_INVALID"],
    ["a quantity with spaces", '{"symbol":"BTCUSDT","side":"buy","type":"limit","quantity":"  1","price":"1"}', "OPERATION_PARAM_INVALID"],
    ["__proto__ carrying the quantity", '{"symbol":"BTCUSDT","side":"buy","type":"limit","price":"1","__proto__":{"quantity":"1"}}', "OPERATION_PARAM_MISSING"],
  ])("refuses %s", (_name, body, expected) => {
    expect(code(decode("native", "order.place", { body, type: JSON_TYPE }))).toBe(expected);
  });

  it("refuses a body that is not JSON, and duplicated query parameters", () => {
    expect(code(decode("native", "withdraw", { body: "asset=BTC", type: FORM }))).toBe("OPERATION_MALFORMED");
    expect(code(decode("native", "order.cancel", { query: "orderId=1&orderId=2" }))).toBe("OPERATION_PARAM_DUPLICATED");
  });
});

describe("the decoders' kinds", () => {
  it("venues define orders, cancels, withdrawals, transfers and other; key changes are native only", () => {
    for (const dialect of ["binance", "kraken", "okx", "bybit", "coinbase"] as const) {
      expect([...OPERATION_DECODERS[dialect].kinds].sort()).toEqual(["order.cancel", "order.place", "other", "transfer", "withdraw"]);
    }
    expect(OPERATION_DECODERS.native.kinds.has("key.create")).toBe(true);
  });
});
