/**
 * What releases a reservation (operations/open-orders.ts): the upstream's answer to an order or a
 * cancel, in the shapes of the venues the demo exchange speaks. Only evidence that the order is not
 * open releases; an answer the gateway cannot read keeps the reservation (fail closed).
 */
import { describe, expect, it } from "vitest";
import type { OrderCancel } from "../../src/contract/operations.js";
import { readCancelAnswer, readPlaceAnswer } from "../../src/operations/open-orders.js";

const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));

describe("an order's answer", () => {
  it.each([
    ["a non-2xx status (Binance -2010)", 400, json({ code: -2010, msg: "Account has insufficient balance" })],
    ["Binance FILLED", 200, json({ orderId: 7, clientOrderId: "x", status: "FILLED" })],
    ["Binance CANCELED (an IOC with nothing to take)", 200, json({ orderId: 7, status: "CANCELED" })],
    ["Binance EXPIRED", 200, json({ orderId: 7, status: "EXPIRED" })],
    ["Binance EXPIRED_IN_MATCH", 200, json({ orderId: 7, status: "EXPIRED_IN_MATCH" })],
    ["Binance REJECTED", 200, json({ orderId: 7, status: "REJECTED" })],
    ["OKX code 1 (all failed)", 200, json({ code: "1", msg: "All operations failed", data: [{ ordId: "", clOrdId: "", sCode: "51008", sMsg: "Insufficient balance" }] })],
    ["OKX code 0 with a failed item", 200, json({ code: "0", msg: "", data: [{ ordId: "", sCode: "51008" }] })],
    ["Bybit retCode ≠ 0", 200, json({ retCode: 170131, retMsg: "Insufficient balance.", result: {} })],
    ["Kraken error", 200, json({ error: ["EOrder:Insufficient funds"] })],
    ["Coinbase success false", 200, json({ success: false, failure_reason: "UNKNOWN_FAILURE_REASON", order_id: "" })],
  ])("releases on %s", (_name, status, body) => {
    expect(readPlaceAnswer(status, body).release).toBe(true);
  });

  it.each([
    ["Binance NEW", json({ symbol: "ETHUSDT", orderId: 12, clientOrderId: "abc", status: "NEW" }), ["o:12", "c:abc"]],
    ["Binance PARTIALLY_FILLED (over-counts the filled part)", json({ orderId: 12, clientOrderId: "abc", status: "PARTIALLY_FILLED" }), ["o:12", "c:abc"]],
    ["Binance ACK (no status)", json({ orderId: 12, clientOrderId: "abc" }), ["o:12", "c:abc"]],
    ["OKX", json({ code: "0", msg: "", data: [{ ordId: "900", clOrdId: "b1", sCode: "0", sMsg: "Order placed" }] }), ["o:900", "c:b1"]],
    ["Bybit", json({ retCode: 0, retMsg: "OK", result: { orderId: "77", orderLinkId: "l-1" } }), ["o:77", "c:l-1"]],
    ["Kraken", json({ error: [], result: { descr: { order: "buy" }, txid: ["OABC-DEF"] } }), ["o:OABC-DEF"]],
    ["Coinbase", json({ success: true, success_response: { order_id: "uuid-1", client_order_id: "cb-1" } }), ["o:uuid-1", "c:cb-1"]],
    ["an unreadable body", Buffer.from("<html>"), []],
    ["no body read (too large)", null, []],
  ])("keeps %s, bound to the order's references", (_name, body, refs) => {
    expect(readPlaceAnswer(200, body)).toEqual({ release: false, refs });
  });

  it("never binds a reference the ledger could not store (its separator, control characters, too long)", () => {
    expect(readPlaceAnswer(200, json({ orderId: 1.5, clientOrderId: "a|b", status: "NEW" }))).toEqual({ release: false, refs: [] });
    expect(readPlaceAnswer(200, json({ clientOrderId: "x".repeat(129) }))).toEqual({ release: false, refs: [] });
  });
});

describe("a cancel's answer", () => {
  const byId: OrderCancel = { kind: "order.cancel", symbol: "ETHUSDT", orderIds: ["12"], clientOrderId: null };
  const byClient: OrderCancel = { kind: "order.cancel", symbol: "ETHUSDT", orderIds: [], clientOrderId: "abc" };

  it("ends the orders the request and a successful answer name", () => {
    expect(readCancelAnswer(byId, 200, json({ orderId: 12, origClientOrderId: "abc", clientOrderId: "cancel-1", status: "CANCELED" }))).toEqual(["o:12", "c:abc"]);
    expect(readCancelAnswer(byClient, 200, json({ code: "0", data: [{ ordId: "900", clOrdId: "abc", sCode: "0" }] }))).toEqual(["c:abc", "o:900"]);
    expect(readCancelAnswer(byId, 200, json({ error: [], result: { count: 1 } }))).toEqual(["o:12"]);
    expect(readCancelAnswer({ ...byId, orderIds: ["u1", "u2"] }, 200, json({ results: [{ success: true, order_id: "u1" }, { success: false, order_id: "u2" }] }))).toEqual(["o:u1"]);
  });

  it("ends none when the venue refused it or it cannot be read", () => {
    expect(readCancelAnswer(byId, 400, json({ code: -2011, msg: "Unknown order sent." }))).toEqual([]);
    expect(readCancelAnswer(byId, 200, json({ code: "1", data: [{ sCode: "51400" }] }))).toEqual([]);
    expect(readCancelAnswer(byId, 200, json({ retCode: 110001, result: {} }))).toEqual([]);
    expect(readCancelAnswer(byId, 200, json({ error: [], result: { count: 0 } }))).toEqual([]);
    expect(readCancelAnswer(byId, 200, Buffer.from("not json"))).toEqual([]);
    expect(readCancelAnswer(byId, 200, null)).toEqual([]);
  });
});
