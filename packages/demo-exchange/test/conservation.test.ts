/**
 * Property: whatever sequence of orders, cancels and withdrawals the callers send, the exchange
 * never answers 5xx, no balance goes negative, every account's locked funds are exactly what its
 * open orders hold, and per asset the total of free + locked over all accounts (the market maker
 * included) equals what was minted as starting balances minus what was withdrawn.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { dec } from "../src/exchange/decimal.js";
import { ASSETS, MARKETS, type Asset } from "../src/exchange/index.js";
import { Harness, type OrderBody } from "./harness.js";

const ACCOUNTS = ["alice", "bob", "carol"] as const;

type Op =
  | { kind: "limit"; who: number; symbol: number; side: "BUY" | "SELL"; tif: "GTC" | "IOC" | "FOK"; ticks: number; qty: number }
  | { kind: "market"; who: number; symbol: number; side: "BUY" | "SELL"; qty: number; byQuote: boolean }
  | { kind: "cancel"; who: number; pick: number }
  | { kind: "withdraw"; who: number; asset: number; amount: number };

const who = fc.nat({ max: ACCOUNTS.length - 1 });
const symbol = fc.nat({ max: MARKETS.length - 1 });
const side = fc.constantFrom("BUY" as const, "SELL" as const);
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant("limit" as const),
    who,
    symbol,
    side,
    tif: fc.constantFrom("GTC" as const, "IOC" as const, "FOK" as const),
    // Price offset from the reference, in tenths of the market maker's level spacing (-150..150).
    ticks: fc.integer({ min: -150, max: 150 }),
    // Quantity in tenths of the market maker's first level (1..60).
    qty: fc.integer({ min: 1, max: 60 }),
  }),
  fc.record({ kind: fc.constant("market" as const), who, symbol, side, qty: fc.integer({ min: 1, max: 60 }), byQuote: fc.boolean() }),
  fc.record({ kind: fc.constant("cancel" as const), who, pick: fc.nat() }),
  fc.record({ kind: fc.constant("withdraw" as const), who, asset: fc.nat({ max: ASSETS.length - 1 }), amount: fc.integer({ min: 1, max: 5000 }) }),
);

/** Text for a scaled bigint (8 decimals), trimmed the way a client might send it. */
function text(units: bigint): string {
  const whole = units / 100_000_000n;
  const fraction = (units % 100_000_000n).toString().padStart(8, "0").replace(/0+$/, "");
  return fraction === "" ? whole.toString() : `${whole.toString()}.${fraction}`;
}

function units(s: string): bigint {
  return dec(s);
}

interface Placed {
  readonly orderId: number;
  readonly symbol: string;
}

async function apply(h: Harness, o: Op, placed: Map<string, Placed[]>): Promise<number> {
  const account = ACCOUNTS[o.who] ?? "alice";
  if (o.kind === "cancel") {
    // Pick one of the account's orders (open or not), or an id that does not exist.
    const mine = placed.get(account) ?? [];
    const target = mine[o.pick % (mine.length + 1)] ?? { orderId: 999_999, symbol: "BTCUSDT" };
    return (await h.cancel(account, `symbol=${target.symbol}&orderId=${target.orderId}`)).status;
  }
  if (o.kind === "withdraw") {
    const asset = ASSETS[o.asset] ?? "BTC";
    const amount = asset === "USDT" ? BigInt(o.amount) * 100_000_000n : BigInt(o.amount) * 100_000n;
    const reply = await h.call({
      method: "POST",
      url: "/sapi/v1/capital/withdraw/apply",
      account,
      form: { coin: asset, address: "demoaddr", amount: text(amount) },
    });
    return reply.status;
  }
  const market = MARKETS[o.symbol] ?? MARKETS[0];
  if (market === undefined) throw new Error("no market");
  const qty = (market.levelQty * BigInt(o.qty)) / 10n;
  let form: Record<string, string>;
  if (o.kind === "limit") {
    const price = market.referencePrice + (market.levelSpacing * BigInt(o.ticks)) / 10n;
    form = { symbol: market.symbol, side: o.side, type: "LIMIT", timeInForce: o.tif, quantity: text(qty), price: text(price) };
  } else if (o.byQuote) {
    form = { symbol: market.symbol, side: o.side, type: "MARKET", quoteOrderQty: text((qty * market.referencePrice) / 100_000_000n) };
  } else {
    form = { symbol: market.symbol, side: o.side, type: "MARKET", quantity: text(qty) };
  }
  const reply = await h.order(account, form);
  if (reply.status === 200) {
    const list = placed.get(account) ?? [];
    list.push({ orderId: reply.json<OrderBody>().orderId, symbol: market.symbol });
    placed.set(account, list);
  }
  return reply.status;
}

function checkInvariants(h: Harness): void {
  const supply = h.exchange.supply();
  for (const asset of ASSETS) {
    const s = supply[asset];
    expect(units(s.held) + units(s.withdrawn), asset).toBe(units(s.minted));
  }
  for (const account of h.exchange.accounts()) {
    const balances = h.exchange.balances(account);
    if (balances === undefined) throw new Error(`no balances for ${account}`);
    const expectedLocks: Record<Asset, bigint> = { BTC: 0n, ETH: 0n, USDT: 0n };
    for (const o of h.exchange.openOrders(account)) {
      const market = MARKETS.find((m) => m.symbol === o.symbol);
      if (market === undefined) throw new Error(`unknown symbol ${o.symbol}`);
      const left = units(o.origQty) - units(o.executedQty);
      expect(left > 0n).toBe(true);
      if (o.side === "BUY") expectedLocks[market.quoteAsset] += (units(o.price) * left) / 100_000_000n;
      else expectedLocks[market.baseAsset] += left;
    }
    for (const asset of ASSETS) {
      const b = balances[asset];
      expect(b.free.startsWith("-") || b.locked.startsWith("-"), `${account} ${asset}`).toBe(false);
      expect(units(b.locked), `${account} ${asset} locked`).toBe(expectedLocks[asset]);
    }
  }
}

describe("conservation", () => {
  it("orders, cancels and withdrawals conserve every asset and never 5xx", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 40 }), async (ops) => {
        const h = new Harness();
        for (const account of ACCOUNTS) await h.balances(account);
        const placed = new Map<string, Placed[]>();
        for (const o of ops) {
          const status = await apply(h, o, placed);
          expect(status).toBeLessThan(500);
        }
        checkInvariants(h);
      }),
      { numRuns: 150 },
    );
  });

  it("the seeded book alone satisfies the invariants", () => {
    checkInvariants(new Harness());
  });
});
