/**
 * The demo exchange's OKX-shaped API (venues/okx.ts), called directly with gateway identity
 * headers: OKX's shapes and codes, the shared order book and ledger underneath, and no private
 * answer without a valid identity that grants the route's permission.
 */
import { describe, expect, it } from "vitest";
import { okxVenue } from "../../src/exchange/venues/okx.js";
import { Harness } from "../harness.js";

interface OkxBody<T = Record<string, unknown>> {
  code: string;
  msg: string;
  data: T[];
}

const LIMIT_BUY = { instId: "BTC-USDT", tdMode: "cash", side: "buy", ordType: "limit", px: "59000", sz: "0.01" };

async function okx<T = Record<string, unknown>>(h: Harness, call: Parameters<Harness["call"]>[0]): Promise<{ status: number; body: OkxBody<T> }> {
  const reply = await h.call(call);
  return { status: reply.status, body: reply.json<OkxBody<T>>() };
}

function order(h: Harness, json: unknown, account = "alice", scopes?: string): Promise<{ status: number; body: OkxBody }> {
  return okx(h, { method: "POST", url: "/api/v5/trade/order", account, json, ...(scopes === undefined ? {} : { scopes }) });
}

describe("the OKX venue's routes", () => {
  it("every route is an OKX route with a permission", () => {
    expect(okxVenue.routes.map((r) => [r.method, r.path, r.permission, r.dialect])).toEqual([
      ["GET", "/api/v5/public/time", "public", "okx"],
      ["GET", "/api/v5/public/instruments", "public", "okx"],
      ["GET", "/api/v5/asset/currencies", "read", "okx"],
      ["GET", "/api/v5/account/balance", "read", "okx"],
      ["POST", "/api/v5/trade/order", "trade", "okx"],
    ]);
  });

  it("every private route refuses a request without a gateway identity: 50111", async () => {
    const h = new Harness();
    for (const [method, url] of [
      ["GET", "/api/v5/asset/currencies"],
      ["GET", "/api/v5/account/balance"],
      ["POST", "/api/v5/trade/order"],
    ] as const) {
      expect(await okx(h, { method, url, ...(method === "POST" ? { json: LIMIT_BUY } : {}) }), `${method} ${url}`).toEqual({
        status: 401,
        body: { code: "50111", msg: "Invalid OK-ACCESS-KEY.", data: [] },
      });
    }
    expect(h.exchange.accounts()).toEqual([h.exchange.marketMakerAccount]);
  });

  it("an identity signed with another secret is no identity", async () => {
    const h = new Harness();
    const reply = await okx(h, { url: "/api/v5/account/balance", account: "alice", secret: "another-secret-that-is-32-bytes-long!!" });
    expect(reply).toMatchObject({ status: 401, body: { code: "50111" } });
  });

  it("an identity without the route's permission: 50120", async () => {
    const h = new Harness();
    expect(await order(h, LIMIT_BUY, "alice", "read")).toEqual({ status: 403, body: { code: "50120", msg: "API key doesn't have permission.", data: [] } });
    expect(h.exchange.openOrders("alice")).toEqual([]);
  });
});

describe("public endpoints", () => {
  it("server time", async () => {
    const h = new Harness();
    expect(await okx(h, { url: "/api/v5/public/time" })).toEqual({ status: 200, body: { code: "0", msg: "", data: [{ ts: String(h.time) }], inTime: expect.any(String) as string, outTime: expect.any(String) as string } });
  });

  it("spot instruments, by OKX instrument id", async () => {
    const h = new Harness();
    const { status, body } = await okx(h, { url: "/api/v5/public/instruments?instType=SPOT" });
    expect(status).toBe(200);
    expect(body.data.map((i) => i.instId)).toEqual(["BTC-USDT", "ETH-USDT"]);
    expect(body.data[0]).toMatchObject({ instType: "SPOT", baseCcy: "BTC", quoteCcy: "USDT", tickSz: "0.01", lotSz: "0.00001", minSz: "0.00001", state: "live" });
    expect((await okx(h, { url: "/api/v5/public/instruments?instType=SPOT&instId=ETH-USDT" })).body.data).toHaveLength(1);
    expect((await okx(h, { url: "/api/v5/public/instruments?instType=SWAP" })).body).toMatchObject({ code: "0", data: [] });
  });

  it("instrument errors: 50014 without instType, 51000 for an unknown one, 51001 for an unknown instId", async () => {
    const h = new Harness();
    expect(await okx(h, { url: "/api/v5/public/instruments" })).toEqual({ status: 400, body: { code: "50014", msg: "Parameter instType cannot be empty.", data: [] } });
    expect(await okx(h, { url: "/api/v5/public/instruments?instType=spot" })).toMatchObject({ status: 400, body: { code: "51000" } });
    expect(await okx(h, { url: "/api/v5/public/instruments?instType=SPOT&instId=BTC-EUR" })).toMatchObject({ status: 200, body: { code: "51001" } });
  });
});

describe("private endpoints", () => {
  it("currencies, with their chains", async () => {
    const h = new Harness();
    const { body } = await okx(h, { url: "/api/v5/asset/currencies?ccy=USDT", account: "alice" });
    expect(body.data.map((c) => c.chain)).toEqual(["USDT-ERC20", "USDT-TRC20", "USDT-BSC"]);
    expect(body.data[0]).toMatchObject({ ccy: "USDT", canDep: false, canWd: false });
  });

  it("the balance: the demo's starting balances, in OKX's shape", async () => {
    const h = new Harness();
    const { status, body } = await okx(h, { url: "/api/v5/account/balance", account: "alice" });
    expect(status).toBe(200);
    const details = body.data[0]?.details as Record<string, string>[];
    expect(details.map((d) => [d.ccy, d.eq, d.availBal, d.frozenBal])).toEqual([
      ["BTC", "2", "2", "0"],
      ["ETH", "20", "20", "0"],
      ["USDT", "100000", "100000", "0"],
    ]);
    // 2 BTC at 60000 + 20 ETH at 3000 + 100000 USDT.
    expect(body.data[0]?.totalEq).toBe("280000");
    const filtered = await okx(h, { url: "/api/v5/account/balance?ccy=BTC,USDT", account: "alice" });
    expect((filtered.body.data[0]?.details as { ccy: string }[]).map((d) => d.ccy)).toEqual(["BTC", "USDT"]);
    expect(await okx(h, { url: "/api/v5/account/balance?ccy=btc!", account: "alice" })).toMatchObject({ status: 400, body: { code: "51000" } });
  });

  it("a limit order rests and locks its funds; the balance shows it", async () => {
    const h = new Harness();
    const { status, body } = await order(h, { ...LIMIT_BUY, clOrdId: "mine1", tag: "bot" });
    expect(status).toBe(200);
    expect(body).toMatchObject({ code: "0", msg: "", data: [{ clOrdId: "mine1", tag: "bot", sCode: "0", sMsg: "Order placed" }] });
    expect(body.data[0]?.ordId).toMatch(/^[0-9]+$/);
    expect(h.exchange.openOrders("alice")).toMatchObject([{ symbol: "BTCUSDT", side: "BUY", price: "59000.00000000", origQty: "0.01000000" }]);
    expect(h.exchange.balances("alice")?.USDT).toEqual({ free: "99410.00000000", locked: "590.00000000" });
  });

  it("a market buy spends quote currency by default (tgtCcy quote_ccy), or buys base with base_ccy", async () => {
    const h = new Harness();
    // 6001 USDT buys the first ask level: 0.1 BTC at 60010.
    expect((await order(h, { instId: "BTC-USDT", tdMode: "cash", side: "buy", ordType: "market", sz: "6001" })).body.code).toBe("0");
    expect(h.exchange.balances("alice")?.BTC.free).toBe("2.10000000");
    expect((await order(h, { instId: "BTC-USDT", tdMode: "cash", side: "buy", ordType: "market", sz: "0.1", tgtCcy: "base_ccy" })).body.code).toBe("0");
    expect(h.exchange.balances("alice")?.BTC.free).toBe("2.20000000");
    expect((await order(h, { instId: "BTC-USDT", tdMode: "cash", side: "sell", ordType: "market", sz: "0.2" })).body.code).toBe("0");
    expect(h.exchange.balances("alice")?.BTC.free).toBe("2.00000000");
  });

  it("parameter errors are 50014 or 51000 (HTTP 400), before anything happens", async () => {
    const h = new Harness();
    const { instId: _i, ...noInst } = LIMIT_BUY;
    expect(await order(h, noInst)).toEqual({ status: 400, body: { code: "50014", msg: "Parameter instId cannot be empty.", data: [] } });
    const { px: _p, ...noPx } = LIMIT_BUY;
    expect(await order(h, noPx)).toMatchObject({ status: 400, body: { code: "50014", msg: "Parameter px cannot be empty." } });
    for (const [name, bad] of [
      ["tdMode", { tdMode: "isolated" }],
      ["side", { side: "BUY" }],
      ["ordType", { ordType: "post_only" }],
      ["sz", { sz: "-1" }],
      ["sz", { sz: "0.000000001" }],
      ["px", { px: "abc" }],
      ["clOrdId", { clOrdId: "not-alphanumeric" }],
      ["tgtCcy", { tgtCcy: "usd" }],
      ["sz", { sz: { value: 1 } }],
    ] as const) {
      expect(await order(h, { ...LIMIT_BUY, ...bad }), JSON.stringify(bad)).toEqual({ status: 400, body: { code: "51000", msg: `Parameter ${name} error.`, data: [] } });
    }
    expect(await order(h, { ...LIMIT_BUY, instId: "BTC-EUR" })).toMatchObject({ status: 200, body: { code: "51001" } });
    expect(h.exchange.openOrders("alice")).toEqual([]);
  });

  it("body errors: 50006 for another content type, 50002 for invalid JSON, 50000 for none", async () => {
    const h = new Harness();
    const post = { method: "POST", url: "/api/v5/trade/order", account: "alice" } as const;
    expect(await okx(h, { ...post, form: { instId: "BTC-USDT" } })).toMatchObject({ status: 400, body: { code: "50006" } });
    expect(await okx(h, { ...post, body: "{", contentType: "application/json" })).toMatchObject({ status: 400, body: { code: "50002" } });
    expect(await okx(h, { ...post, body: "[1]", contentType: "application/json" })).toMatchObject({ status: 400, body: { code: "50002" } });
    expect(await okx(h, { ...post, contentType: "application/json" })).toMatchObject({ status: 400, body: { code: "50000" } });
  });

  it("order failures are code 1 with OKX's sCode: balance, size, lot, duplicate client id", async () => {
    const h = new Harness();
    const failed = async (json: unknown): Promise<string | undefined> => {
      const { status, body } = await order(h, json);
      expect({ status, code: body.code, msg: body.msg }).toEqual({ status: 200, code: "1", msg: "All operations failed" });
      return body.data[0]?.sCode as string | undefined;
    };
    expect(await failed({ ...LIMIT_BUY, sz: "10" })).toBe("51008");
    expect(await failed({ ...LIMIT_BUY, sz: "0.000001" })).toBe("51020");
    expect(await failed({ ...LIMIT_BUY, px: "1", sz: "0.001" })).toBe("51020");
    expect(await failed({ ...LIMIT_BUY, sz: "9001" })).toBe("51005");
    expect(await failed({ ...LIMIT_BUY, px: "59000.001" })).toBe("51000");
    expect((await order(h, { ...LIMIT_BUY, clOrdId: "dup1" })).body.code).toBe("0");
    expect(await failed({ ...LIMIT_BUY, clOrdId: "dup1" })).toBe("51016");
    expect(h.exchange.openOrders("alice")).toHaveLength(1);
  });

  it("the venue shares the order book with the Binance shape", async () => {
    const h = new Harness();
    await order(h, { ...LIMIT_BUY, px: "59999.99", sz: "0.5" }, "alice");
    const depth = await h.depth("BTCUSDT", 1);
    expect(depth.bids[0]).toEqual(["59999.99000000", "0.50000000"]);
  });
});
