import type { AuthScheme, SchemeOptions } from "../scheme.js";

/** The Kraken dialect. Not implemented yet: the registry skips it. */
export function createKrakenScheme(_options: SchemeOptions): AuthScheme | null {
  return null;
}
