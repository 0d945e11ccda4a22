/**
 * Guardrail input (keys/input.ts): what `keys create` / `keys update` and the admin API accept,
 * normalised (names upper case, sorted, decimals as plain strings), and every refusal named by its
 * field (`guardrails.<field>`) with VALIDATION_FAILED. Updates are merge patches.
 */
import { describe, expect, it } from "vitest";
import type { KeyGuardrails } from "../../src/contract/keys.js";
import { mergeGuardrails, parseCreateKeyInput, parseUpdateKeyInput } from "../../src/keys/input.js";
import { looserGuardrails } from "../../src/admin/reach.js";

const NOW = Date.UTC(2026, 10, 22);

function create(guardrails: unknown) {
  return parseCreateKeyInput({ account: "acct-1", scopes: ["trade"], guardrails }, NOW);
}

function fieldsOf(result: ReturnType<typeof create>): Record<string, string> {
  if (result.ok) throw new Error("expected a refusal");
  expect(result.code).toBe("VALIDATION_FAILED");
  return { ...result.fields };
}

describe("guardrails on create", () => {
  it("normalises names and decimals", () => {
    const result = create({ symbols: ["ethusdt", "BTC-USDT", "ETHUSDT"], maxQuantity: "02.50", maxNotional: "50000", priceBandPct: 5, withdrawAssets: ["usdt", "btc"] });
    expect(result.ok && result.value.guardrails).toEqual({
      symbols: ["BTC-USDT", "ETHUSDT"],
      maxQuantity: "2.50",
      maxNotional: "50000",
      priceBandPct: "5",
      withdrawAssets: ["BTC", "USDT"],
      transferAssets: null,
      maxOpenNotional: null,
    });
  });

  it("takes a fractional band given as a string or a number", () => {
    const a = create({ priceBandPct: "0.5" });
    const b = create({ priceBandPct: 0.5 });
    expect(a.ok && a.value.guardrails?.priceBandPct).toBe("0.5");
    expect(b.ok && b.value.guardrails?.priceBandPct).toBe("0.5");
  });

  it("no guardrails, null, or an object of nulls are all none", () => {
    for (const g of [undefined, null, {}, { symbols: null, maxQuantity: null }]) {
      const result = parseCreateKeyInput({ account: "acct-1", scopes: ["trade"], ...(g === undefined ? {} : { guardrails: g }) }, NOW);
      expect(result.ok && result.value.guardrails).toBeNull();
    }
  });

  it.each([
    ["not an object", "5", "guardrails"],
    ["a list", [], "guardrails"],
    ["an unknown field", { maxQty: "1" }, "guardrails.maxQty"],
    ["a prototype name", JSON.parse('{"__proto__": {"x": 1}}') as unknown, "guardrails.__proto__"],
    ["an empty symbol list", { symbols: [] }, "guardrails.symbols"],
    ["symbols not a list", { symbols: "BTCUSDT" }, "guardrails.symbols"],
    ["a symbol with a space", { symbols: ["BTC USDT"] }, "guardrails.symbols"],
    ["a symbol too long", { symbols: ["A".repeat(41)] }, "guardrails.symbols"],
    ["too many symbols", { symbols: Array.from({ length: 257 }, (_, i) => `S${String(i)}`) }, "guardrails.symbols"],
    ["a quantity as a JSON number", { maxQuantity: 2 }, "guardrails.maxQuantity"],
    ["a zero quantity", { maxQuantity: "0" }, "guardrails.maxQuantity"],
    ["a negative quantity", { maxQuantity: "-1" }, "guardrails.maxQuantity"],
    ["an exponent", { maxNotional: "1e5" }, "guardrails.maxNotional"],
    ["a notional with a comma", { maxNotional: "50,000" }, "guardrails.maxNotional"],
    ["a zero band", { priceBandPct: 0 }, "guardrails.priceBandPct"],
    ["a band of 100 %", { priceBandPct: "100" }, "guardrails.priceBandPct"],
    ["a negative band", { priceBandPct: -5 }, "guardrails.priceBandPct"],
    ["a band that is not a number", { priceBandPct: true }, "guardrails.priceBandPct"],
    ["an infinite band", { priceBandPct: Number.POSITIVE_INFINITY }, "guardrails.priceBandPct"],
    ["an asset with a dash", { withdrawAssets: ["US-DT"] }, "guardrails.withdrawAssets"],
    ["a transfer asset list of numbers", { transferAssets: [1] }, "guardrails.transferAssets"],
  ])("refuses %s, naming the field", (_name, guardrails, field) => {
    expect(Object.keys(fieldsOf(create(guardrails)))).toContain(field);
  });

  it("reports every problem at once", () => {
    expect(Object.keys(fieldsOf(create({ symbols: [], maxQuantity: "x", priceBandPct: 200 }))).sort()).toEqual([
      "guardrails.maxQuantity",
      "guardrails.priceBandPct",
      "guardrails.symbols",
    ]);
  });
});

describe("guardrails on update: a merge patch", () => {
  const current: KeyGuardrails = { symbols: ["BTCUSDT"], maxQuantity: "2", maxNotional: null, priceBandPct: "5", withdrawAssets: null, transferAssets: null, maxOpenNotional: null };

  it("changes the fields given, removes those given as null, keeps the rest", () => {
    const result = parseUpdateKeyInput({ guardrails: { maxQuantity: "3", priceBandPct: null, maxNotional: "1000" } });
    if (!result.ok) throw new Error(result.message);
    expect(result.value.guardrails).toEqual({ maxQuantity: "3", priceBandPct: null, maxNotional: "1000" });
    expect(mergeGuardrails(current, result.value.guardrails ?? null)).toEqual({ ...current, maxQuantity: "3", priceBandPct: null, maxNotional: "1000" });
  });

  it("null removes them all; removing the last one leaves none", () => {
    const all = parseUpdateKeyInput({ guardrails: null });
    expect(all.ok && all.value.guardrails).toBeNull();
    expect(mergeGuardrails(current, null)).toBeNull();
    expect(mergeGuardrails({ ...current, symbols: null, priceBandPct: null }, { maxQuantity: null })).toBeNull();
    expect(mergeGuardrails(null, { maxQuantity: "1" })).toEqual({ symbols: null, maxQuantity: "1", maxNotional: null, priceBandPct: null, withdrawAssets: null, transferAssets: null, maxOpenNotional: null });
  });

  it("refuses bad fields with their names", () => {
    const result = parseUpdateKeyInput({ guardrails: { maxQuantity: "0", colour: "red" } });
    expect(Object.keys(fieldsOf(result as ReturnType<typeof create>)).sort()).toEqual(["guardrails.colour", "guardrails.maxQuantity"]);
  });
});

describe("narrowing (what an account admin may grant)", () => {
  const own: KeyGuardrails = { symbols: ["BTCUSDT", "ETHUSDT"], maxQuantity: "2", maxNotional: "50000", priceBandPct: "5", withdrawAssets: ["USDT"], transferAssets: null, maxOpenNotional: null };

  it("an admin without guardrails may grant any", () => {
    expect(looserGuardrails(null, null)).toEqual([]);
    expect(looserGuardrails({ ...own, maxQuantity: "1000" }, null)).toEqual([]);
  });

  it("equal or narrower passes, field by field", () => {
    expect(looserGuardrails(own, own)).toEqual([]);
    expect(looserGuardrails({ ...own, symbols: ["ETH-USDT"], maxQuantity: "1.5", priceBandPct: "1", transferAssets: ["USDT"], maxOpenNotional: null }, own)).toEqual([]);
  });

  it("each looser or missing field is named", () => {
    expect(looserGuardrails(null, own)).toEqual(["symbols", "maxQuantity", "maxNotional", "priceBandPct", "withdrawAssets"]);
    expect(looserGuardrails({ ...own, symbols: ["BTCUSDT", "SOLUSDT"], maxQuantity: "2.0001", maxNotional: null, priceBandPct: "5.5", withdrawAssets: ["USDT", "BTC"] }, own)).toEqual([
      "symbols",
      "maxQuantity",
      "maxNotional",
      "priceBandPct",
      "withdrawAssets",
    ]);
  });
});
