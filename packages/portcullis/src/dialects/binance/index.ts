import type { AuthScheme, SchemeOptions } from "../scheme.js";

/** The Binance dialect. Not implemented yet: the registry skips it. */
export function createBinanceScheme(_options: SchemeOptions): AuthScheme | null {
  return null;
}
