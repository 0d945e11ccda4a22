import type { Venue } from "../venue.js";

/** The Okx-shaped API of the demo exchange. Not built yet: it serves no routes. */
export const okxVenue: Venue = {
  name: "okx",
  routes: [],
  handle: () => Promise.reject(new Error("okx venue has no routes")),
};
