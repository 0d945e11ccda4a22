import type { Decimal } from "../contract/operations.js";
import type { ReferencePrices } from "../contract/prices.js";
import { parseDecimal } from "./decimal.js";

/** The configured reference prices (`"prices"` in the configuration file), as decimal strings. */
export interface PriceTable {
  /** Symbol → price, e.g. { "BTCUSDT": "60000" }. */
  readonly symbols?: Readonly<Record<string, string>>;
  /** Asset → value of one unit in the reference currency, e.g. { "USDT": "1", "BTC": "60000" }. */
  readonly assets?: Readonly<Record<string, string>>;
}

function compile(table: Readonly<Record<string, string>> | undefined, what: string): Map<string, Decimal> {
  const out = new Map<string, Decimal>();
  for (const [name, text] of Object.entries(table ?? {})) {
    const value = typeof text === "string" ? parseDecimal(text) : null;
    if (value === null) throw new TypeError(`${what} ${name}: a plain decimal string such as "60000.5"`);
    out.set(name.toUpperCase(), value);
  }
  return out;
}

/**
 * Reference prices from a fixed table (contract/prices.ts). `set` replaces one price (a refresher
 * off the request path may keep the table current); lookups are one map read.
 */
export class StaticPrices implements ReferencePrices {
  private readonly symbols: Map<string, Decimal>;
  private readonly assets: Map<string, Decimal>;

  constructor(table: PriceTable = {}) {
    this.symbols = compile(table.symbols, "symbol");
    this.assets = compile(table.assets, "asset");
  }

  symbol(symbol: string): Decimal | undefined {
    return this.symbols.get(symbol);
  }

  asset(asset: string): Decimal | undefined {
    return this.assets.get(asset);
  }

  /** Sets the price of a symbol or the value of an asset (upper case). */
  set(kind: "symbol" | "asset", name: string, value: Decimal): void {
    (kind === "symbol" ? this.symbols : this.assets).set(name.toUpperCase(), value);
  }
}
