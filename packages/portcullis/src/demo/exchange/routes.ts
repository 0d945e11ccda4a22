/**
 * The demo exchange's route table, in the gateway's format: every endpoint the exchange serves,
 * with the permission a key needs to call it and a Binance-like request weight. The gateway denies
 * anything not listed here, and the exchange serves exactly these routes (index.ts checks that
 * every route has an endpoint). Weights follow Binance's spot API documentation; the withdraw
 * weight is Binance's per-IP weight (Binance also counts 900 against a separate per-UID budget).
 */
import type { RouteSpec } from "../../authz/routes.js";
import { VENUES } from "./venues/index.js";

/** The Binance-shaped surface (endpoints.ts). */
export const BINANCE_ROUTES: RouteSpec[] = [
  { method: "GET", path: "/api/v3/ping", permission: "public", weight: 1, dialect: "binance" },
  { method: "GET", path: "/api/v3/time", permission: "public", weight: 1, dialect: "binance" },
  { method: "GET", path: "/api/v3/exchangeInfo", permission: "public", weight: 20, dialect: "binance" },
  { method: "GET", path: "/api/v3/ticker/price", permission: "public", weight: 2, dialect: "binance" },
  { method: "GET", path: "/api/v3/depth", permission: "public", weight: 5, dialect: "binance" },
  { method: "GET", path: "/api/v3/account", permission: "read", weight: 20, dialect: "binance" },
  { method: "POST", path: "/api/v3/order", permission: "trade", weight: 1, tags: ["order"], dialect: "binance" },
  { method: "GET", path: "/api/v3/order", permission: "read", weight: 4, dialect: "binance" },
  { method: "DELETE", path: "/api/v3/order", permission: "trade", weight: 1, tags: ["cancel"], dialect: "binance" },
  { method: "GET", path: "/api/v3/openOrders", permission: "read", weight: 6, dialect: "binance" },
  { method: "POST", path: "/sapi/v1/capital/withdraw/apply", permission: "withdraw", weight: 1, dialect: "binance" },
];

/** Every route of the demo exchange: the Binance shape and the other venues (venues/). */
export const DEMO_EXCHANGE_ROUTES: RouteSpec[] = [...BINANCE_ROUTES, ...VENUES.flatMap((v) => v.routes)];
