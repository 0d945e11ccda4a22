import type { IncomingMessage, RequestListener } from "node:http";
import type { Duplex } from "node:stream";

/**
 * The gateway's WebSocket proxy (docs/websocket.md): routes and their message tables
 * (config.ts), the upgrade through the pipeline (proxy.ts), per-message checks and revocation
 * (connection.ts), the upstream side (upstream.ts), and the close codes (close-codes.ts).
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
