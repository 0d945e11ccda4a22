import type { Venue } from "../venue.js";

/** The Kraken-shaped API of the demo exchange. Not built yet: it serves no routes. */
export const krakenVenue: Venue = {
  name: "kraken",
  routes: [],
  handle: () => Promise.reject(new Error("kraken venue has no routes")),
};
