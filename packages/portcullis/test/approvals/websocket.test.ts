/**
 * Stage 10 applies to every surface: a Binance WebSocket API `order.place` carries its operation
 * (the REST twin's), and the policy in force judges it as it judges the REST request. A block is
 * Binance's error frame; a message the policy would hold is refused (a message cannot wait for
 * approvals: HOLD_NOT_SUPPORTED), and neither reaches the exchange. The real policy service, on
 * the stack's data directory.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyService } from "../../src/governance/policy-service.js";
import { StaticPrices } from "../../src/operations/prices.js";
import { type WsStack, WsClient, binanceSign, startWsStack } from "../support/websocket.js";

const POLICY = {
  rules: [
    { name: "too large", match: { kind: ["order.place"], amount: { over: "10000" } }, action: { type: "block", reason: "orders over 10,000 USDT" } },
    { name: "large", match: { kind: ["order.place"], amount: { over: "5000" } }, action: { type: "hold", approvals: [{ group: "desk", count: 1 }] } },
    { name: "rest", action: { type: "allow" } },
  ],
};

let stack: WsStack;
let policy: PolicyService | null = null;

beforeAll(async () => {
  stack = await startWsStack({
    policy: async (data) => {
      policy = await PolicyService.open({ store: data.store, pollIntervalMs: 0, prices: new StaticPrices({ assets: { USDT: "1" } }) });
      const applied = await policy.apply(POLICY, { actor: "test", account: null, keyId: null, client: null, owner: null });
      expect(applied.state).toBe("applied");
      return policy;
    },
  });
});
afterAll(async () => {
  policy?.close();
  await stack.close();
});

describe("the policy on WebSocket messages", () => {
  it("blocks and refuses to hold order.place messages as it would the REST request; allows the rest", async () => {
    const created = await stack.createKey({ account: "p-ws", scopes: ["read", "trade"], dialects: ["binance"] });
    const k = { id: created.key.id, secret: created.secret ?? "" };
    const client = await WsClient.connect(`${stack.wsUrl}/ws-api/v3`);
    try {
      const place = (quantity: string) =>
        client.request("order.place", binanceSign({ symbol: "ETHUSDT", side: "BUY", type: "LIMIT", timeInForce: "GTC", quantity, price: "3000", apiKey: k.id, timestamp: stack.clock.ms }, k.secret));
      // 4 × 3000 = 12,000 USDT: blocked, in Binance's shape.
      expect(await place("4")).toMatchObject({ status: 401, error: { code: -1002 } });
      // 2 × 3000 = 6,000 USDT: the policy would hold it; a message cannot be held.
      expect(await place("2")).toMatchObject({ status: 400, error: { code: -1020 } });
      expect(stack.exchange.accounts()).not.toContain("p-ws");
      // 0.5 × 3000: allowed, and the exchange sees it.
      const allowed = await place("0.5");
      expect(allowed.status, JSON.stringify(allowed)).toBe(200);
      expect(stack.exchange.accounts()).toContain("p-ws");
    } finally {
      await client.close();
    }
    const refusals = stack.logLines.filter((l) => l.includes('"request denied"')).map((l) => (JSON.parse(l) as { code?: string }).code);
    expect(refusals).toEqual(expect.arrayContaining(["POLICY_BLOCKED", "HOLD_NOT_SUPPORTED"]));
  });
});
