/**
 * The maxOpenNotional guardrail end to end (docs/guardrails.md, "Open notional"): the demo
 * exchange, the gateway in front of it and the key service, all real, on loopback ports. Orders
 * are Binance-signed (HMAC) as a bot would send them; the ledger is read back from the gateway's
 * hot store.
 */
import { createHmac } from "node:crypto";
import type { DemoStack } from "@portcullis/demo-exchange";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCompatStack } from "../compat/support.js";
import { ledgerText } from "../../src/operations/open-orders.js";

let stack: DemoStack;

beforeAll(async () => {
  stack = await startCompatStack();
  // The refresher's first poll runs as the gateway starts (a market order is measured at the reference price).
  for (let i = 0; i < 100 && stack.running.core.prices?.symbol("ETHUSDT") === undefined; i++) await new Promise((r) => setTimeout(r, 20));
});
afterAll(async () => {
  await stack.close();
});

interface Key {
  readonly id: string;
  readonly secret: string;
}

async function signed(key: Key, method: string, path: string, params: string, secret = key.secret): Promise<{ status: number; body: Record<string, unknown> }> {
  const query = `${params}&timestamp=${String(Date.now())}`;
  const signature = createHmac("sha256", secret).update(query).digest("hex");
  const res = await fetch(`${stack.gateway}${path}?${query}&signature=${signature}`, { method, headers: { "x-mbx-apikey": key.id } });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const limitBuy = (key: Key, price: string, quantity = "0.1", symbol = "ETHUSDT") =>
  signed(key, "POST", "/api/v3/order", `symbol=${symbol}&side=BUY&type=LIMIT&timeInForce=GTC&quantity=${quantity}&price=${price}`);

async function openTotal(key: Key): Promise<string> {
  const ledger = stack.running.core.hot.openOrders;
  if (ledger === undefined) throw new Error("no ledger");
  return ledgerText((await ledger.open(key.id, Date.now())).total);
}

async function keyWith(account: string, maxOpenNotional: string): Promise<Key> {
  const created = await stack.createKey({ account, scopes: ["read", "trade"], dialects: ["binance"], guardrails: { maxOpenNotional } });
  return { id: created.key.id, secret: created.secret ?? "" };
}

const REFUSED = { status: 400, body: { code: -2010, msg: "Order rejected: the value of this API key's open orders would be above its maximum." } };

describe("maxOpenNotional through the gateway and the demo exchange", () => {
  it("resting limit orders fill the cap, the next is refused GUARDRAIL_OPEN_NOTIONAL; a cancel frees its room", async () => {
    const key = await keyWith("open-1", "1000");
    const ids: unknown[] = [];
    // 5 × 0.1 × 2000 = 1000: exactly the cap. They rest (the book's bids start at 2999).
    for (let i = 0; i < 5; i++) {
      const placed = await limitBuy(key, "2000");
      expect(placed.status, JSON.stringify(placed.body)).toBe(200);
      expect(placed.body.status).toBe("NEW");
      ids.push(placed.body.orderId);
    }
    expect(await openTotal(key)).toBe("1000");
    const before = stack.exchange.accounts().length;
    expect(await limitBuy(key, "2000", "0.0001")).toEqual(REFUSED);
    expect(stack.exchange.accounts().length).toBe(before);
    expect(await openTotal(key)).toBe("1000");

    const cancelled = await signed(key, "DELETE", "/api/v3/order", `symbol=ETHUSDT&orderId=${String(ids[0])}`);
    expect(cancelled.status, JSON.stringify(cancelled.body)).toBe(200);
    expect(cancelled.body.status).toBe("CANCELED");
    // Settled before the cancel was answered: the room is free now.
    expect(await openTotal(key)).toBe("800");
    expect((await limitBuy(key, "2000")).status).toBe(200);
    expect(await limitBuy(key, "2000", "0.0001")).toEqual(REFUSED);

    // A cancel by the client's order id, through the client id the venue answered with.
    const open = await signed(key, "GET", "/api/v3/openOrders", "symbol=ETHUSDT");
    expect(open.status).toBe(200);
    const list = open.body as unknown as { clientOrderId: string }[];
    const first = list[0];
    if (first === undefined) throw new Error("no open order");
    const byClientId = await signed(key, "DELETE", "/api/v3/order", `symbol=ETHUSDT&origClientOrderId=${first.clientOrderId}`);
    expect(byClientId.status).toBe(200);
    expect(await openTotal(key)).toBe("800");
    // A cancel the venue refuses (an order that is not open) frees nothing.
    expect((await signed(key, "DELETE", "/api/v3/order", `symbol=ETHUSDT&orderId=${String(ids[0])}`)).status).toBe(400);
    expect(await openTotal(key)).toBe("800");
  });

  it("a market order that fills is not counted afterwards; an upstream refusal releases; other refusals reserve nothing", async () => {
    const key = await keyWith("open-2", "1000");
    expect((await limitBuy(key, "2000", "0.4")).status).toBe(200);
    expect(await openTotal(key)).toBe("800");
    // A market order is measured at quantity × the reference price (0.05 × ~3000 = ~150): it fits, fills, and is released.
    const market = await signed(key, "POST", "/api/v3/order", "symbol=ETHUSDT&side=BUY&type=MARKET&quantity=0.05");
    expect(market.status, JSON.stringify(market.body)).toBe(200);
    expect(market.body.status).toBe("FILLED");
    expect(await openTotal(key)).toBe("800");
    // The exchange refuses an order off its price grid (PRICE_FILTER): the reservation goes.
    const offGrid = await limitBuy(key, "1000.001");
    expect(offGrid.status).toBe(400);
    expect(await openTotal(key)).toBe("800");
    // A bad signature is refused before the ledger: nothing reserved.
    const forged = await signed(key, "POST", "/api/v3/order", "symbol=ETHUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.1&price=1000", "not-the-secret");
    expect(forged).toMatchObject({ status: 400, body: { code: -1022 } });
    expect(await openTotal(key)).toBe("800");
    // Too big for the room left: refused, with nothing reserved.
    expect(await limitBuy(key, "2001", "0.1")).toEqual(REFUSED);
    expect(await openTotal(key)).toBe("800");
    expect((await limitBuy(key, "2000", "0.1")).status).toBe(200);
    expect(await openTotal(key)).toBe("1000");
  });

  it("a key without the guardrail keeps no ledger", async () => {
    const created = await stack.createKey({ account: "open-3", scopes: ["read", "trade"], dialects: ["binance"] });
    const key = { id: created.key.id, secret: created.secret ?? "" };
    expect((await limitBuy(key, "2000")).status).toBe(200);
    expect(await openTotal(key)).toBe("0");
  });
});
