import type { AuthScheme, SchemeOptions } from "../scheme.js";

/** The Coinbase dialect. Not implemented yet: the registry skips it. */
export function createCoinbaseScheme(_options: SchemeOptions): AuthScheme | null {
  return null;
}
