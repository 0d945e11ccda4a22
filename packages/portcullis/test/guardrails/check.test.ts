/**
 * The guardrail checks (operations/guardrails.ts) on decoded operations, one check at a time,
 * with their edges: exactly at a cap passes and one unit over refuses; the price band's edges are
 * inside; a check that needs a reference price refuses without one (fail closed). Reference
 * prices are the real implementations (StaticPrices, LivePrices with a frozen clock).
 */
import { describe, expect, it } from "vitest";
import type { KeyGuardrails } from "../../src/contract/keys.js";
import type { Operation } from "../../src/contract/operations.js";
import type { ReferencePrices } from "../../src/contract/prices.js";
import { parseDecimal } from "../../src/operations/decimal.js";
import { orderPlace, transfer, withdraw } from "../../src/operations/fields.js";
import { checkGuardrails, compactSymbol, compileGuardrails } from "../../src/operations/guardrails.js";
import { StaticPrices } from "../../src/operations/prices.js";
import { OTHER_OPERATION } from "../../src/contract/operations.js";
import { AUTH_FAILURES, NOT_CHARGED } from "../../src/pipeline/stages/failures.js";

const NONE: KeyGuardrails = { symbols: null, maxQuantity: null, maxNotional: null, priceBandPct: null, withdrawAssets: null, transferAssets: null, maxOpenNotional: null };
const PRICES = new StaticPrices({ symbols: { BTCUSDT: "60000", ETHUSDT: "3000" } });

function d(text: string) {
  const value = parseDecimal(text);
  if (value === null) throw new Error(text);
  return value;
}

function order(symbol: string, quantity: string | null, price: string | null, quote: string | null = null, type = price === null ? "market" : "limit"): Operation {
  return orderPlace(symbol, "buy", type, quantity === null ? null : d(quantity), price === null ? null : d(price), quote === null ? null : d(quote));
}

/** The refusal's code, or "ok". */
function check(g: Partial<KeyGuardrails>, op: Operation, prices: ReferencePrices | null = PRICES): string {
  const compiled = compileGuardrails({ ...NONE, ...g });
  if (compiled === null) throw new Error("no guardrails");
  return checkGuardrails(compiled, op, prices)?.code ?? "ok";
}

describe("the symbol allowlist", () => {
  it("passes listed symbols and refuses others (GUARDRAIL_SYMBOL)", () => {
    expect(check({ symbols: ["BTCUSDT"] }, order("BTCUSDT", "1", "60000"))).toBe("ok");
    expect(check({ symbols: ["BTCUSDT"] }, order("ETHUSDT", "1", "3000"))).toBe("GUARDRAIL_SYMBOL");
  });

  it("ignores separators, so one list serves every dialect's spelling", () => {
    expect(compactSymbol("BTC-USDT")).toBe("BTCUSDT");
    expect(compactSymbol("BTC/USDT")).toBe("BTCUSDT");
    expect(compactSymbol("BTCUSDT")).toBe("BTCUSDT");
    expect(check({ symbols: ["BTCUSDT"] }, order("BTC-USDT", "1", "60000"))).toBe("ok");
    expect(check({ symbols: ["ETH-USDT"] }, order("ETHUSDT", "1", "3000"))).toBe("ok");
    expect(check({ symbols: ["BTCUSDT"] }, order("XBTUSDT", "1", "60000"))).toBe("GUARDRAIL_SYMBOL");
  });
});

describe("the maximum quantity", () => {
  it("exactly at the cap passes; one unit over refuses (GUARDRAIL_QUANTITY)", () => {
    expect(check({ maxQuantity: "2" }, order("BTCUSDT", "2", "60000"))).toBe("ok");
    expect(check({ maxQuantity: "2" }, order("BTCUSDT", "2.00000000", "60000"))).toBe("ok");
    expect(check({ maxQuantity: "2" }, order("BTCUSDT", "2.00000001", "60000"))).toBe("GUARDRAIL_QUANTITY");
    expect(check({ maxQuantity: "0.5" }, order("BTCUSDT", "0.51", null))).toBe("GUARDRAIL_QUANTITY");
  });

  it("measures an order sized by quote amount against cap × reference price", () => {
    // 2 BTC at 60000 = 120000 USDT.
    expect(check({ maxQuantity: "2" }, order("BTCUSDT", null, null, "120000"))).toBe("ok");
    expect(check({ maxQuantity: "2" }, order("BTCUSDT", null, null, "120000.01"))).toBe("GUARDRAIL_QUANTITY");
    expect(check({ maxQuantity: "2" }, order("SOLUSDT", null, null, "10"))).toBe("GUARDRAIL_NO_REFERENCE_PRICE");
  });
});

describe("the maximum notional", () => {
  it("checks the order's own notional: at the cap passes, one unit over refuses (GUARDRAIL_NOTIONAL)", () => {
    expect(check({ maxNotional: "50000" }, order("BTCUSDT", "0.5", "100000"))).toBe("ok");
    expect(check({ maxNotional: "50000" }, order("BTCUSDT", "0.5", "100000.01"))).toBe("GUARDRAIL_NOTIONAL");
    expect(check({ maxNotional: "50000" }, order("BTCUSDT", null, null, "50000.000001"))).toBe("GUARDRAIL_NOTIONAL");
  });

  it("values a market order by base quantity at the reference price", () => {
    expect(check({ maxNotional: "60000" }, order("BTCUSDT", "1", null))).toBe("ok");
    expect(check({ maxNotional: "60000" }, order("BTCUSDT", "1.00001", null))).toBe("GUARDRAIL_NOTIONAL");
  });

  it("refuses a market order without a reference price (fail closed)", () => {
    expect(check({ maxNotional: "60000" }, order("SOLUSDT", "1", null))).toBe("GUARDRAIL_NO_REFERENCE_PRICE");
    expect(check({ maxNotional: "60000" }, order("BTCUSDT", "1", null), null)).toBe("GUARDRAIL_NO_REFERENCE_PRICE");
  });

  it("needs no reference price when the order states its notional", () => {
    expect(check({ maxNotional: "60000" }, order("SOLUSDT", "1", "100"), null)).toBe("ok");
  });
});

describe("the price band", () => {
  it("passes a limit price on either edge of ±band % and refuses one unit outside (GUARDRAIL_PRICE_BAND)", () => {
    // 5 % of 60000: 57000 .. 63000, edges included.
    expect(check({ priceBandPct: "5" }, order("BTCUSDT", "1", "63000"))).toBe("ok");
    expect(check({ priceBandPct: "5" }, order("BTCUSDT", "1", "57000"))).toBe("ok");
    expect(check({ priceBandPct: "5" }, order("BTCUSDT", "1", "63000.01"))).toBe("GUARDRAIL_PRICE_BAND");
    expect(check({ priceBandPct: "5" }, order("BTCUSDT", "1", "56999.99"))).toBe("GUARDRAIL_PRICE_BAND");
  });

  it("takes fractional bands exactly", () => {
    // 0.5 % of 3000: 2985 .. 3015.
    expect(check({ priceBandPct: "0.5" }, order("ETHUSDT", "1", "3015"))).toBe("ok");
    expect(check({ priceBandPct: "0.5" }, order("ETHUSDT", "1", "3015.0001"))).toBe("GUARDRAIL_PRICE_BAND");
    expect(check({ priceBandPct: "0.5" }, order("ETH-USDT", "1", "2984.9999"))).toBe("GUARDRAIL_PRICE_BAND");
  });

  it("refuses a limit price without a reference price, and leaves market orders (no limit price) alone", () => {
    expect(check({ priceBandPct: "5" }, order("SOLUSDT", "1", "100"))).toBe("GUARDRAIL_NO_REFERENCE_PRICE");
    expect(check({ priceBandPct: "5" }, order("SOLUSDT", "1", null))).toBe("ok");
  });
});

describe("checks together", () => {
  const all: Partial<KeyGuardrails> = { symbols: ["BTCUSDT"], maxQuantity: "2", maxNotional: "100000", priceBandPct: "5" };

  it("an order within every guardrail passes", () => {
    expect(check(all, order("BTCUSDT", "1.5", "61000"))).toBe("ok");
  });

  it("the first guardrail broken is the refusal, and its detail names the limit", () => {
    expect(check(all, order("ETHUSDT", "5", "1"))).toBe("GUARDRAIL_SYMBOL");
    expect(check(all, order("BTCUSDT", "3", "1"))).toBe("GUARDRAIL_QUANTITY");
    expect(check(all, order("BTCUSDT", "2", "62000"))).toBe("GUARDRAIL_NOTIONAL");
    const compiled = compileGuardrails({ ...NONE, ...all });
    if (compiled === null) throw new Error("no guardrails");
    expect(checkGuardrails(compiled, order("BTCUSDT", "1", "70000"), PRICES)?.detail).toBe("price 70000 outside ±5 % of the reference price 60000");
    expect(checkGuardrails(compiled, order("BTCUSDT", "3", "60000"), PRICES)?.detail).toBe("quantity 3 above maxQuantity 2");
  });
});

describe("withdrawals and transfers", () => {
  it("withdrawAssets refuses other assets (GUARDRAIL_ASSET) and leaves transfers to transferAssets", () => {
    const usdt = withdraw("USDT", d("100"), "TAddress", null, "TRX", null);
    const btc = withdraw("BTC", d("1"), "bc1q", null, null, null);
    expect(check({ withdrawAssets: ["USDT"] }, usdt)).toBe("ok");
    expect(check({ withdrawAssets: ["USDT"] }, btc)).toBe("GUARDRAIL_ASSET");
    expect(check({ withdrawAssets: ["USDT"] }, transfer("BTC", d("1"), "MAIN", "UMFUTURE"))).toBe("ok");
    expect(check({ transferAssets: ["USDT"] }, transfer("BTC", d("1"), "MAIN", "UMFUTURE"))).toBe("GUARDRAIL_ASSET");
    expect(check({ transferAssets: ["USDT"] }, transfer("USDT", d("1"), "MAIN", "UMFUTURE"))).toBe("ok");
  });

  it("order guardrails say nothing about withdrawals, nor any guardrail about other operations", () => {
    expect(check({ symbols: ["ETHUSDT"], maxQuantity: "1" }, withdraw("BTC", d("5"), "bc1q", null, null, null))).toBe("ok");
    expect(check({ symbols: ["ETHUSDT"] }, OTHER_OPERATION)).toBe("ok");
  });
});

describe("compiling", () => {
  it("no guardrails compile to null (the stage then does nothing)", () => {
    expect(compileGuardrails(null)).toBeNull();
  });

  it("a stored value that no longer parses is our fault, found when the key is loaded", () => {
    expect(() => compileGuardrails({ ...NONE, maxQuantity: "1e3" })).toThrow(TypeError);
  });
});

describe("strikes", () => {
  it("a guardrail refusal is a strike like a missing scope, except a missing reference price (the gateway's trouble, not the caller's)", () => {
    for (const code of ["GUARDRAIL_SYMBOL", "GUARDRAIL_QUANTITY", "GUARDRAIL_NOTIONAL", "GUARDRAIL_PRICE_BAND", "GUARDRAIL_ASSET"] as const) {
      expect(NOT_CHARGED.has(code), code).toBe(false);
      expect(AUTH_FAILURES.has(code), code).toBe(false);
    }
    expect(NOT_CHARGED.has("GUARDRAIL_NO_REFERENCE_PRICE")).toBe(true);
  });
});
