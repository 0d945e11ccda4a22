import type { AuthScheme, SchemeOptions } from "../scheme.js";

/** The Bybit dialect. Not implemented yet: the registry skips it. */
export function createBybitScheme(_options: SchemeOptions): AuthScheme | null {
  return null;
}
