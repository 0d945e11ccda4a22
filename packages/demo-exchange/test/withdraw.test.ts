/**
 * POST /sapi/v1/capital/withdraw/apply: debits the free balance, answers {id}, validates its
 * parameters, and refuses more than the free balance (locked funds included) with -4026.
 */
import { describe, expect, it } from "vitest";
import { Harness, errorOf } from "./harness.js";

const URL = "/sapi/v1/capital/withdraw/apply";

describe("withdraw", () => {
  it("debits the free balance and answers a Binance withdrawal id", async () => {
    const h = new Harness();
    const reply = await h.call({ method: "POST", url: URL, account: "alice", form: { coin: "BTC", address: "bc1qdemoaddress", amount: "0.5" } });
    expect(reply.status).toBe(200);
    const { id } = reply.json<{ id: string }>();
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    expect((await h.balances("alice")).BTC).toEqual(["1.50000000", "0.00000000"]);
    expect(h.exchange.withdrawals()).toEqual([
      { id, account: "alice", coin: "BTC", network: "BTC", address: "bc1qdemoaddress", amount: "0.50000000", time: h.time },
    ]);
    expect(h.exchange.supply().BTC.withdrawn).toBe("0.50000000");
  });

  it("accepts a JSON body and a network", async () => {
    const h = new Harness();
    const reply = await h.call({
      method: "POST",
      url: URL,
      account: "alice",
      json: { coin: "USDT", address: "TXyzDemo", amount: "1234.56", network: "TRX", withdrawOrderId: "w-1" },
    });
    expect(reply.status).toBe(200);
    expect((await h.balances("alice")).USDT).toEqual(["98765.44000000", "0.00000000"]);
    expect(h.exchange.withdrawals()[0]).toMatchObject({ coin: "USDT", network: "TRX", amount: "1234.56000000" });
  });

  it("refuses more than the free balance with -4026, counting locked funds as unavailable", async () => {
    const h = new Harness();
    const insufficient = { status: 400, code: -4026, msg: "User has insufficient balance" };
    expect(errorOf(await h.call({ method: "POST", url: URL, account: "alice", form: { coin: "BTC", address: "bc1q", amount: "2.00000001" } }))).toEqual(
      insufficient,
    );
    await h.placed("alice", { symbol: "BTCUSDT", side: "SELL", type: "LIMIT", timeInForce: "GTC", quantity: "1.5", price: "70000" });
    expect(errorOf(await h.call({ method: "POST", url: URL, account: "alice", form: { coin: "BTC", address: "bc1q", amount: "1" } }))).toEqual(
      insufficient,
    );
    expect((await h.balances("alice")).BTC).toEqual(["0.50000000", "1.50000000"]);
    expect(h.exchange.withdrawals()).toEqual([]);
  });

  it("validates every parameter", async () => {
    const h = new Harness();
    const go = async (form: Record<string, string>): Promise<number> =>
      errorOf(await h.call({ method: "POST", url: URL, account: "alice", form })).code;
    const ok = { coin: "ETH", address: "0xdemo", amount: "1" };
    expect(await go({ address: "0xdemo", amount: "1" })).toBe(-1102);
    expect(await go({ coin: "ETH", amount: "1" })).toBe(-1102);
    expect(await go({ coin: "ETH", address: "0xdemo" })).toBe(-1102);
    expect(await go({ ...ok, coin: "eth" })).toBe(-1100);
    expect(await go({ ...ok, coin: "DOGE" })).toBe(-1130);
    expect(await go({ ...ok, address: "0x demo" })).toBe(-1100);
    expect(await go({ ...ok, address: "x".repeat(129) })).toBe(-1100);
    expect(await go({ ...ok, amount: "0" })).toBe(-1130);
    expect(await go({ ...ok, amount: "-1" })).toBe(-1100);
    expect(await go({ ...ok, amount: "0.000000001" })).toBe(-1111);
    expect(await go({ ...ok, network: "TRX" })).toBe(-1130);
    expect(await go({ ...ok, network: "trx" })).toBe(-1100);
    expect(await go({ ...ok, addressTag: "bad tag" })).toBe(-1100);
    expect(await go({ ...ok, withdrawOrderId: "bad id" })).toBe(-1100);
    expect(await go({ ...ok, transactionFeeFlag: "maybe" })).toBe(-1130);
    expect(await go({ ...ok, walletType: "2" })).toBe(-1130);
    expect(await go({ ...ok, memo: "x" })).toBe(-1104);
    expect((await h.balances("alice")).ETH).toEqual(["20.00000000", "0.00000000"]);
    expect(
      (await h.call({ method: "POST", url: URL, account: "alice", form: { ...ok, addressTag: "123", transactionFeeFlag: "false", walletType: "0" } }))
        .status,
    ).toBe(200);
  });
});
