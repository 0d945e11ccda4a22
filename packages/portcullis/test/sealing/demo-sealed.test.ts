/**
 * A sealed order end to end (docs/sealed-orders.md): the client SDK (`request(..., { sealed: true })`)
 * against the demo (the demo exchange, the gateway in front of it and its admin API, all real, on
 * loopback ports). What leaves the bot is ciphertext (what a CDN or a TLS-terminating proxy would
 * see); the exchange receives the plaintext order and fills it; the key's guardrails judge the
 * plaintext; a Binance-signed sealed request is refused in Binance's shape.
 */
import { createHmac } from "node:crypto";
import { PortcullisApiError, createClient } from "@portcullis/client";
import type { DemoStack } from "@portcullis/demo-exchange";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCompatStack } from "../compat/support.js";

let stack: DemoStack;
/** Every request the bot sent, as it left the bot. */
const sent: { url: string; headers: Headers; body: Uint8Array }[] = [];

const recordingFetch: typeof fetch = async (input, init) => {
  const body = init?.body;
  sent.push({ url: input instanceof Request ? input.url : input instanceof URL ? input.href : input, headers: new Headers(init?.headers), body: body instanceof Uint8Array ? body : new Uint8Array() });
  return fetch(input, init);
};

beforeAll(async () => {
  stack = await startCompatStack();
});
afterAll(async () => {
  await stack.close();
});

interface Order {
  readonly status: string;
  readonly clientOrderId: string;
  readonly executedQty: string;
}

describe("a sealed order through the demo", () => {
  it("leaves the bot as ciphertext, reaches the exchange as the plaintext order, and fills", async () => {
    const created = await stack.createKey({ account: "sealed-bot", scopes: ["read", "trade"], guardrails: { maxQuantity: "1" } });
    const client = createClient({ baseUrl: stack.gateway, keyId: created.key.id, secret: created.secret ?? "", fetch: recordingFetch });
    const order = await client.json<Order>("POST", "/api/v3/order", { form: { symbol: "BTCUSDT", side: "BUY", type: "MARKET", quantity: "0.01", newClientOrderId: "sealedMarker123" }, sealed: true });
    expect(order).toMatchObject({ status: "FILLED", executedQty: "0.01000000", clientOrderId: "sealedMarker123" });
    expect(stack.exchange.accounts()).toContain("sealed-bot");
    // What a CDN in front of the gateway would have seen: the sealed headers and ciphertext only.
    const wire = sent.find((r) => r.url.endsWith("/api/v3/order"));
    expect(wire?.headers.get("content-type")).toBe("application/portcullis-sealed");
    expect(wire?.headers.get("portcullis-sealed-type")).toBe("application/x-www-form-urlencoded");
    expect(wire?.headers.get("signature-input")).toContain('"portcullis-sealed" "portcullis-sealed-type"');
    expect(Buffer.from(wire?.body ?? []).includes("sealedMarker123")).toBe(false);
    expect(Buffer.from(wire?.body ?? []).includes("BTCUSDT")).toBe(false);
    // The key was fetched once from the gateway.
    expect(sent.filter((r) => r.url.endsWith("/portcullis/v1/hpke"))).toHaveLength(1);
  });

  it("is judged by the key's guardrails from its plaintext: too large a quantity is refused, nothing reaches the exchange", async () => {
    const created = await stack.createKey({ account: "sealed-bot-2", scopes: ["read", "trade"], guardrails: { maxQuantity: "1" } });
    const client = createClient({ baseUrl: stack.gateway, keyId: created.key.id, secret: created.secret ?? "" });
    const err = await client.json("POST", "/api/v3/order", { form: { symbol: "BTCUSDT", side: "BUY", type: "MARKET", quantity: "2" }, sealed: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PortcullisApiError);
    expect((err as PortcullisApiError).code).toBe("GUARDRAIL_QUANTITY");
    expect(stack.exchange.accounts()).not.toContain("sealed-bot-2");
  });

  it("a Binance-signed sealed request is refused SEALED_NOT_SUPPORTED, in Binance's shape", async () => {
    const created = await stack.createKey({ account: "sealed-binance", scopes: ["read", "trade"], dialects: ["binance"] });
    const params = `symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.01&timestamp=${String(Date.now())}`;
    const body = "x".repeat(64);
    // Binance signs the query string then the body (its totalParams).
    const signature = createHmac("sha256", created.secret ?? "").update(params + body).digest("hex");
    const res = await fetch(`${stack.gateway}/api/v3/order?${params}&signature=${signature}`, {
      method: "POST",
      headers: { "x-mbx-apikey": created.key.id, "content-type": "application/portcullis-sealed", "portcullis-sealed": "AAAAAAAAAAAAAAAA", "portcullis-sealed-type": "application/json" },
      body,
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ code: -1020, msg: "This operation is not supported." });
    expect(stack.exchange.accounts()).not.toContain("sealed-binance");
  });
});
