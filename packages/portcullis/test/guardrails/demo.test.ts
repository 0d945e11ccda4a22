/**
 * The demo (`portcullis demo`: the demo exchange, the gateway in front of it, the admin API, all
 * real, on loopback ports) reads its reference prices from the exchange's own public ticker, so a
 * key's price band works there out of the box: an order near the exchange's price passes, a
 * fat-fingered one is refused in Binance's shape and never reaches the exchange.
 */
import { createHmac } from "node:crypto";
import type { DemoStack } from "@portcullis/demo-exchange";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCompatStack } from "../compat/support.js";

let stack: DemoStack;

beforeAll(async () => {
  stack = await startCompatStack();
});
afterAll(async () => {
  await stack.close();
});

async function order(key: { id: string; secret: string }, price: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const params = `symbol=ETHUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.1&price=${price}&timestamp=${String(Date.now())}`;
  const signature = createHmac("sha256", key.secret).update(params).digest("hex");
  const res = await fetch(`${stack.gateway}/api/v3/order`, { method: "POST", headers: { "x-mbx-apikey": key.id, "content-type": "application/x-www-form-urlencoded" }, body: `${params}&signature=${signature}` });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe("the demo's reference prices", () => {
  it("come from the exchange's ticker: a price band passes a price near it and refuses one far from it", async () => {
    const created = await stack.createKey({ account: "demo-guard", scopes: ["read", "trade"], dialects: ["binance"], guardrails: { priceBandPct: "5" } });
    const key = { id: created.key.id, secret: created.secret ?? "" };
    // The refresher's first poll runs as the gateway starts; wait for it without sleeping blindly.
    for (let i = 0; i < 100 && stack.running.core.prices?.symbol("ETHUSDT") === undefined; i++) await new Promise((r) => setTimeout(r, 20));
    const far = await order(key, "4000");
    expect(far).toEqual({ status: 400, body: { code: -2010, msg: "Order rejected: price is too far from the current price for this API key." } });
    expect(stack.exchange.accounts()).not.toContain("demo-guard");
    const near = await order(key, "2950");
    expect(near.status, JSON.stringify(near.body)).toBe(200);
  });
});
