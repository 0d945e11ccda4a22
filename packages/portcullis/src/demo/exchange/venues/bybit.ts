import type { Venue } from "../venue.js";

/** The Bybit-shaped API of the demo exchange. Not built yet: it serves no routes. */
export const bybitVenue: Venue = {
  name: "bybit",
  routes: [],
  handle: () => Promise.reject(new Error("bybit venue has no routes")),
};
