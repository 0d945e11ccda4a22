import type { Dialect } from "../contract/keys.js";
import { createBinanceScheme } from "./binance/index.js";
import { createBybitScheme } from "./bybit/index.js";
import { createCoinbaseScheme } from "./coinbase/index.js";
import { createKrakenScheme } from "./kraken/index.js";
import { createNativeScheme } from "./native.js";
import { createOkxScheme } from "./okx/index.js";
import type { AuthScheme, SchemeOptions } from "../contract/request.js";

/**
 * Every signing scheme this build speaks, in detection order. Detection looks only at header
 * presence, so the order matters only for reporting a request that carries two schemes at once
 * (refused as ambiguous).
 */
export function createSchemes(options: SchemeOptions): ReadonlyMap<Dialect, AuthScheme> {
  const schemes = new Map<Dialect, AuthScheme>();
  for (const scheme of [
    createNativeScheme(options),
    createBinanceScheme(options),
    createKrakenScheme(options),
    createCoinbaseScheme(options),
    createOkxScheme(options),
    createBybitScheme(options),
  ]) {
    if (scheme !== null) schemes.set(scheme.name, scheme);
  }
  return schemes;
}
