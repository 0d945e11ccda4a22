import type { Venue } from "../venue.js";

/** The Coinbase-shaped API of the demo exchange. Not built yet: it serves no routes. */
export const coinbaseVenue: Venue = {
  name: "coinbase",
  routes: [],
  handle: () => Promise.reject(new Error("coinbase venue has no routes")),
};
