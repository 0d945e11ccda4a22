/**
 * The demo exchange's route table, in the gateway's format: every endpoint the exchange serves,
 * with the permission a key needs to call it and a Binance-like request weight. The gateway denies
 * anything not listed here, and the exchange serves exactly these routes (index.ts checks that
 * every route has an endpoint). Weights follow Binance's spot API documentation; the withdraw
 * weight is Binance's per-IP weight (Binance also counts 900 against a separate per-UID budget).
 * Order, cancel and withdrawal routes declare their operation (docs/operations.md): the gateway
 * decodes them and records what each request does in its audit entry.
 */
import type { RouteSpec, WebSocketRouteSpec } from "portcullis";
import { VENUES } from "./venues/index.js";

/** The Binance-shaped surface (endpoints.ts). */
export const BINANCE_ROUTES: RouteSpec[] = [
  { method: "GET", path: "/api/v3/ping", permission: "public", weight: 1, dialect: "binance" },
  { method: "GET", path: "/api/v3/time", permission: "public", weight: 1, dialect: "binance" },
  { method: "GET", path: "/api/v3/exchangeInfo", permission: "public", weight: 20, dialect: "binance" },
  { method: "GET", path: "/api/v3/ticker/price", permission: "public", weight: 2, dialect: "binance" },
  { method: "GET", path: "/api/v3/depth", permission: "public", weight: 5, dialect: "binance" },
  { method: "GET", path: "/api/v3/account", permission: "read", weight: 20, dialect: "binance" },
  { method: "POST", path: "/api/v3/order", permission: "trade", weight: 1, tags: ["order"], dialect: "binance", operation: "order.place" },
  { method: "GET", path: "/api/v3/order", permission: "read", weight: 4, dialect: "binance" },
  { method: "DELETE", path: "/api/v3/order", permission: "trade", weight: 1, tags: ["cancel"], dialect: "binance", operation: "order.cancel" },
  { method: "GET", path: "/api/v3/openOrders", permission: "read", weight: 6, dialect: "binance" },
  { method: "POST", path: "/sapi/v1/capital/withdraw/apply", permission: "withdraw", weight: 1, dialect: "binance", operation: "withdraw" },
];

/** Every route of the demo exchange: the Binance shape and the other venues (venues/). */
export const DEMO_EXCHANGE_ROUTES: RouteSpec[] = [...BINANCE_ROUTES, ...VENUES.flatMap((v) => v.routes)];

/** The WebSocket API's path (Binance's: wss://ws-api.binance.com/ws-api/v3). */
export const WS_API_PATH = "/ws-api/v3";

/**
 * The WebSocket API's methods (websocket.ts), each the twin of a REST endpoint: the same
 * parameters, answers, permission and weight (Binance's WebSocket API weighs them as REST does).
 */
export const WS_API_METHODS: Readonly<Record<string, string>> = {
  ping: "GET /api/v3/ping",
  time: "GET /api/v3/time",
  "account.status": "GET /api/v3/account",
  "order.place": "POST /api/v3/order",
  "order.status": "GET /api/v3/order",
  "order.cancel": "DELETE /api/v3/order",
  "openOrders.status": "GET /api/v3/openOrders",
};

function restRoute(id: string): RouteSpec {
  const route = BINANCE_ROUTES.find((r) => `${typeof r.method === "string" ? r.method : r.method.join(",")} ${r.path}` === id);
  if (route === undefined) throw new Error(`demo exchange: no REST route ${id}`);
  return route;
}

/**
 * The gateway's WebSocket route for the demo: Binance-shaped, open to unsigned upgrades (a client
 * then logs on, or signs single requests, as on Binance) and to natively signed ones (an API key
 * or a session token); 2 units of weight per connection, as Binance charges.
 */
export const DEMO_WEBSOCKET_ROUTES: WebSocketRouteSpec[] = [
  {
    path: WS_API_PATH,
    dialect: "binance",
    anonymous: true,
    weight: 2,
    methods: Object.fromEntries(
      Object.entries(WS_API_METHODS).map(([name, id]) => {
        const route = restRoute(id);
        return [name, { permission: route.permission, weight: route.weight ?? 1, tags: route.tags ?? [] }];
      }),
    ),
  },
];
