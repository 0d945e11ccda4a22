import type { Venue } from "../venue.js";
import { bybitVenue } from "./bybit.js";
import { coinbaseVenue } from "./coinbase.js";
import { krakenVenue } from "./kraken.js";
import { okxVenue } from "./okx.js";

/** The venues beside the Binance shape, over the same engine. */
export const VENUES: readonly Venue[] = [krakenVenue, coinbaseVenue, okxVenue, bybitVenue];
