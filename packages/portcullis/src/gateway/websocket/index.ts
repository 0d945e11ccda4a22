import type { IncomingMessage, RequestListener } from "node:http";
import type { Duplex } from "node:stream";

/**
 * The gateway's WebSocket proxy (docs/websocket.md), an adapter over the request lifecycle
 * (pipeline/lifecycle.ts, surface "websocket"): routes and their message tables (config.ts); the
 * upgrade through the lifecycle, revocation bookkeeping and shutdown (proxy.ts); one connection's
 * messages through the lifecycle, Binance logon and expiry timers (connection.ts); the connection's
 * identity as a message's credential, and re-checking it between messages (identity.ts); Binance's
 * session methods (binance.ts; message signing is the Binance scheme's, dialects/binance/message.ts);
 * message parsing and error shapes (messages.ts); HTTP on an upgrade's socket
 * (http.ts); the gateway's connections to the upstream (upstream.ts); the close codes
 * (close-codes.ts).
 */
export { WebSocketProxy, type WebSocketProxyOptions } from "./proxy.js";
export { compileWebSocketSettings, WebSocketConfigError, type WebSocketRouteSpec, type WebSocketMethodSpec, type WebSocketSpec, type WebSocketSettings } from "./config.js";
export { WEBSOCKET_CLOSE_CODES, closeCodeFor } from "./close-codes.js";
export type { Timers } from "./connection.js";

/** What the HTTP gateway needs of a WebSocket proxy. */
export interface UpgradeHandler {
  /** node:http's 'upgrade' listener; never throws. Upgrades to anything but a WebSocket go to `http`. */
  readonly handleUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer, http: RequestListener) => void;
  /** Closes every connection (1001) within `graceMs`. */
  close(graceMs?: number): Promise<void>;
}
