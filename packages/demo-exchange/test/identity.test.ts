/**
 * Private endpoints trust only valid gateway identity headers: missing, tampered, replayed (onto
 * another request, another body, or as they were), stale, signed with another secret, or lacking
 * the route's permission is 401 -2015, and nothing happens.
 */
import { describe, expect, it } from "vitest";
import { IDENTITY_HEADERS } from "portcullis";
import { Harness, T0, errorOf } from "./harness.js";

const REJECTED = { status: 401, code: -2015, msg: "Invalid API-key, IP, or permissions for action." };
const ORDER = { symbol: "BTCUSDT", side: "BUY", type: "LIMIT", timeInForce: "GTC", quantity: "0.1", price: "50000" };

describe("identity", () => {
  it("every private endpoint refuses a request without identity headers", async () => {
    const h = new Harness();
    for (const [method, url] of [
      ["GET", "/api/v3/account"],
      ["POST", "/api/v3/order"],
      ["GET", "/api/v3/order?symbol=BTCUSDT&orderId=1"],
      ["DELETE", "/api/v3/order?symbol=BTCUSDT&orderId=1"],
      ["GET", "/api/v3/openOrders"],
      ["POST", "/sapi/v1/capital/withdraw/apply"],
    ] as const) {
      expect(errorOf(await h.call({ method, url })), `${method} ${url}`).toEqual(REJECTED);
    }
    expect(h.exchange.accounts()).toEqual([h.exchange.marketMakerAccount]);
  });

  it("a valid identity is accepted", async () => {
    const h = new Harness();
    expect((await h.get("/api/v3/account", "alice")).status).toBe(200);
  });

  it("an identity signed with another secret is refused", async () => {
    const h = new Harness();
    const reply = await h.call({ url: "/api/v3/account", account: "alice", secret: "some-other-secret-that-is-32-bytes-long!" });
    expect(errorOf(reply)).toEqual(REJECTED);
  });

  it("identity headers replayed onto another method or target are refused", async () => {
    const h = new Harness();
    const otherUrl = await h.call({ url: "/api/v3/account?omitZeroBalances=true", account: "alice", signedUrl: "/api/v3/account" });
    expect(errorOf(otherUrl)).toEqual(REJECTED);
    const otherMethod = await h.call({
      method: "DELETE",
      url: "/api/v3/order?symbol=BTCUSDT&orderId=1",
      signedMethod: "GET",
      account: "alice",
    });
    expect(errorOf(otherMethod)).toEqual(REJECTED);
  });

  it("a tampered account header is refused", async () => {
    const h = new Harness();
    const headers = h.identityHeaders("GET", "/api/v3/account", "alice");
    const reply = await h.call({ url: "/api/v3/account", headers: { ...headers, [IDENTITY_HEADERS.account]: "bob" } });
    expect(errorOf(reply)).toEqual(REJECTED);
    const noSignature = Object.fromEntries(Object.entries(headers).filter(([name]) => name !== IDENTITY_HEADERS.signature));
    expect(errorOf(await h.call({ url: "/api/v3/account", headers: noSignature }))).toEqual(REJECTED);
  });

  it("a stale (or future) identity is refused: the window is 5 s", async () => {
    const h = new Harness();
    expect(errorOf(await h.call({ url: "/api/v3/account", account: "alice", timestamp: T0 - 5_001 }))).toEqual(REJECTED);
    expect(errorOf(await h.call({ url: "/api/v3/account", account: "alice", timestamp: T0 + 5_001 }))).toEqual(REJECTED);
    expect((await h.call({ url: "/api/v3/account", account: "alice", timestamp: T0 - 5_000 })).status).toBe(200);
    // The exchange's own clock decides: the same headers go stale when time moves on.
    const headers = h.identityHeaders("GET", "/api/v3/account", "alice");
    h.time += 5_001;
    expect(errorOf(await h.call({ url: "/api/v3/account", headers }))).toEqual(REJECTED);
  });

  it("identity headers captured from a forwarded order are good once, and never for another body", async () => {
    const h = new Harness();
    const form = new URLSearchParams(ORDER).toString();
    const captured = h.identityHeaders("POST", "/api/v3/order", "alice", {}, form);
    const order = { method: "POST", url: "/api/v3/order", contentType: "application/x-www-form-urlencoded" } as const;
    expect((await h.call({ ...order, headers: captured, body: form })).status).toBe(200);
    expect(errorOf(await h.call({ ...order, headers: captured, body: form }))).toEqual(REJECTED);
    const marketBuy = "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=1";
    expect(errorOf(await h.call({ ...order, headers: captured, body: marketBuy }))).toEqual(REJECTED);
    // Fresh headers with another body than the one signed: refused before it is read as an order.
    expect(errorOf(await h.call({ ...order, account: "alice", body: marketBuy, signedBody: form }))).toEqual(REJECTED);
    expect((await h.balances("alice")).USDT).toEqual(["95000.00000000", "5000.00000000"]);
  });

  it("the key's scopes must grant the route's permission", async () => {
    const h = new Harness();
    expect(errorOf(await h.call({ method: "POST", url: "/api/v3/order", account: "alice", scopes: "read", form: ORDER }))).toEqual(REJECTED);
    expect(errorOf(await h.call({ url: "/api/v3/account", account: "alice", scopes: "trade" }))).toEqual(REJECTED);
    expect(errorOf(await h.call({ url: "/api/v3/account", account: "alice", scopes: "" }))).toEqual(REJECTED);
    const withdraw = { coin: "BTC", address: "bc1qdemo", amount: "0.1" };
    expect(
      errorOf(await h.call({ method: "POST", url: "/sapi/v1/capital/withdraw/apply", account: "alice", scopes: "read,trade", form: withdraw })),
    ).toEqual(REJECTED);
    expect((await h.call({ method: "POST", url: "/api/v3/order", account: "alice", scopes: "trade", form: ORDER })).status).toBe(200);
    expect((await h.balances("alice")).BTC).toEqual(["2.00000000", "0.00000000"]);
  });

  it("refuses an identity before reading parameters, and a rejected request changes nothing", async () => {
    const h = new Harness();
    const reply = await h.call({ method: "POST", url: "/api/v3/order", account: "alice", scopes: "read", form: { symbol: "nope" } });
    expect(errorOf(reply)).toEqual(REJECTED);
    expect(h.exchange.balances("alice")).toBeUndefined();
  });

  it("public endpoints ignore identity headers, valid or not", async () => {
    const h = new Harness();
    const headers = h.identityHeaders("GET", "/somewhere/else", "alice");
    expect((await h.call({ url: "/api/v3/time", headers })).status).toBe(200);
  });

  it("accounts are isolated: one account's balances and orders are its own", async () => {
    const h = new Harness();
    await h.placed("alice", ORDER);
    expect((await h.get("/api/v3/openOrders", "bob")).json<unknown[]>()).toEqual([]);
    expect((await h.balances("bob")).USDT).toEqual(["100000.00000000", "0.00000000"]);
    expect((await h.balances("alice")).USDT).toEqual(["95000.00000000", "5000.00000000"]);
  });
});
