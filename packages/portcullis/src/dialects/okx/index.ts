import type { AuthScheme, SchemeOptions } from "../scheme.js";

/** The Okx dialect. Not implemented yet: the registry skips it. */
export function createOkxScheme(_options: SchemeOptions): AuthScheme | null {
  return null;
}
