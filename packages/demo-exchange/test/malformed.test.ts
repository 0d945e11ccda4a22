/**
 * Malformed and hostile requests: oversized, undecodable or random bodies and query strings are
 * answered with a JSON 4xx in Binance's shape, never a 5xx, HTML or a stack trace.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Harness, errorOf } from "./harness.js";

function isBinanceError(body: string): boolean {
  const parsed: unknown = JSON.parse(body);
  if (typeof parsed !== "object" || parsed === null) return false;
  const { code, msg } = parsed as { code?: unknown; msg?: unknown };
  return typeof code === "number" && typeof msg === "string" && !msg.includes("    at ");
}

describe("malformed bodies", () => {
  it("bad JSON is -1135 with HTTP 400", async () => {
    const h = new Harness();
    for (const body of ["{", "{'a':1}", "[1,2]", "null", "42", '"text"', "{}}", "\u0000"]) {
      const reply = await h.call({ method: "POST", url: "/api/v3/order", account: "alice", body, contentType: "application/json" });
      expect(errorOf(reply), body).toEqual({ status: 400, code: -1135, msg: "Invalid JSON Request" });
    }
  });

  it("invalid UTF-8 is a 400", async () => {
    const h = new Harness();
    const body = Buffer.from([0x73, 0x79, 0x6d, 0xff, 0xfe]);
    for (const contentType of ["application/json", "application/x-www-form-urlencoded"]) {
      const reply = await h.call({ method: "POST", url: "/api/v3/order", account: "alice", body, contentType });
      expect(reply.status, contentType).toBe(400);
    }
  });

  it("an unsupported content type is 415", async () => {
    const h = new Harness();
    const reply = await h.call({ method: "POST", url: "/api/v3/order", account: "alice", body: "<order/>", contentType: "application/xml" });
    expect(errorOf(reply)).toMatchObject({ status: 415, code: -1130 });
  });

  it("a body over 64 KiB is 413, whether declared or streamed", async () => {
    const h = new Harness();
    const big = `symbol=${"A".repeat(70 * 1024)}`;
    const reply = await h.call({ method: "POST", url: "/api/v3/order", account: "alice", body: big, contentType: "application/x-www-form-urlencoded" });
    expect(reply.status).toBe(413);
    expect(reply.json<{ code: number }>().code).toBe(-1101);
    const lying = await h.call({
      method: "POST",
      url: "/api/v3/order",
      account: "alice",
      body: "x",
      headers: { "content-length": String(1024 * 1024) },
    });
    expect(lying.status).toBeLessThan(500);
  });

  it("a body of exactly the limit is read", async () => {
    const h = new Harness();
    const base = "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.1&price=50000&newClientOrderId=";
    const body = base + "a".repeat(64 * 1024 - base.length);
    const reply = await h.call({ method: "POST", url: "/api/v3/order", account: "alice", body, contentType: "application/x-www-form-urlencoded" });
    expect(errorOf(reply)).toMatchObject({ status: 400, code: -1100 });
  });

  it("random bodies never produce a 5xx", async () => {
    const h = new Harness();
    const contentTypes = fc.constantFrom(
      "application/json",
      "application/x-www-form-urlencoded",
      "application/json; charset=utf-8",
      "text/plain",
      "",
    );
    const bodies = fc.oneof(
      fc.string({ maxLength: 300 }),
      fc.json({ maxDepth: 3 }),
      fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
      fc.dictionary(
        fc.constantFrom("symbol", "side", "type", "timeInForce", "quantity", "quoteOrderQty", "price", "newClientOrderId", "newOrderRespType", "coin", "address", "amount", "network", "x"),
        fc.oneof(fc.string({ maxLength: 30 }), fc.constantFrom("BTCUSDT", "BUY", "SELL", "LIMIT", "MARKET", "GTC", "IOC", "FOK", "0.1", "60010", "1e9", "")),
      ).map((d) => new URLSearchParams(d).toString()),
    );
    const targets = fc.constantFrom("/api/v3/order", "/sapi/v1/capital/withdraw/apply", "/api/v3/depth");
    await fc.assert(
      fc.asyncProperty(targets, contentTypes, bodies, async (url, contentType, body) => {
        const method = url === "/api/v3/depth" ? "GET" : "POST";
        const reply = await h.call({ method, url, account: "fuzz", body, contentType });
        expect(reply.status).toBeLessThan(500);
        if (reply.status !== 200) expect(isBinanceError(reply.body)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it("random query strings never produce a 5xx", async () => {
    const h = new Harness();
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("/api/v3/order", "/api/v3/openOrders", "/api/v3/depth", "/api/v3/ticker/price", "/api/v3/exchangeInfo"),
        fc.string({ maxLength: 200 }),
        async (path, query) => {
          const url = `${path}?${encodeURI(query).replaceAll("#", "%23")}`;
          const reply = await h.call({ method: "GET", url, account: "fuzz" });
          expect(reply.status).toBeLessThan(500);
          if (reply.status !== 200) expect(isBinanceError(reply.body)).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });
});
