import type { Decimal } from "./operations.js";

/**
 * Reference prices: what the guardrails measure a price band and a market order's notional
 * against, and what the policy values an amount in ("over 1,000 USDT-equivalent"). Configured
 * (`"prices"` in the configuration file) or refreshed off the request path; never fetched while a
 * request waits. An unknown price is `undefined`, and whoever needs one fails closed.
 */
export interface ReferencePrices {
  /** The reference price of a symbol (quote per unit of base, e.g. BTCUSDT → 60000), or undefined. */
  symbol(symbol: string): Decimal | undefined;
  /** The value of one unit of an asset in the reference currency (e.g. USDT → 1, BTC → 60000), or undefined. */
  asset(asset: string): Decimal | undefined;
}
