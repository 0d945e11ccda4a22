/**
 * The demo exchange's WebSocket API: a Binance WebSocket API-shaped subset at /ws-api/v3 over the
 * same engine (order book, balances) as the REST API. One JSON request per text frame,
 *
 *   {"id": "1", "method": "order.place", "params": {"symbol": "BTCUSDT", "side": "BUY", ...}}
 *
 * answered in Binance's shape, `{"id", "status": 200, "result"}` or `{"id", "status", "error":
 * {"code", "msg"}}`. Methods (routes.ts): ping, time, account.status, order.place, order.status,
 * order.cancel, openOrders.status — each the twin of a REST endpoint, with its parameters,
 * validation, answers and errors.
 *
 * Like the REST API, it trusts only the gateway: the identity of a connection is the one the
 * gateway signed into the headers of its upgrade (verified with the upstream helper,
 * createIdentityVerifier), and a private method needs that identity's scopes to grant its
 * permission (else -2015). A connection without a valid identity may call public methods only.
 */
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { type RawData, type WebSocket, WebSocketServer } from "ws";
import { grantedPermissions, type IdentityVerifier, type PortcullisIdentity } from "portcullis/upstream";
import { ENDPOINTS, type Endpoint } from "./endpoints.js";
import type { Engine } from "./engine.js";
import { ExchangeError, errors } from "./errors.js";
import { Params } from "./params.js";
import { BINANCE_ROUTES, WS_API_METHODS, WS_API_PATH } from "./routes.js";
import { ACCOUNT_RE } from "./venue.js";

export interface WebSocketApiOptions {
  readonly engine: Engine;
  readonly verify: IdentityVerifier;
  readonly now: () => number;
  readonly newClientOrderId: () => string;
  readonly maxMessageBytes: number;
  readonly onError?: ((error: unknown) => void) | undefined;
}

export interface WebSocketApi {
  /** node:http's 'upgrade' listener for the exchange's server. */
  readonly upgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  /** Closes every connection (1001). */
  close(): void;
}

interface Method {
  readonly endpoint: Endpoint;
  readonly permission: string;
}

type Id = string | number | null;

const METHODS: ReadonlyMap<string, Method> = new Map(
  Object.entries(WS_API_METHODS).map(([name, id]) => {
    const endpoint = ENDPOINTS.get(id);
    const route = BINANCE_ROUTES.find((r) => `${String(r.method)} ${r.path}` === id);
    if (endpoint === undefined || route === undefined) throw new Error(`demo exchange: websocket method ${name} has no endpoint ${id}`);
    return [name, { endpoint, permission: route.permission }];
  }),
);

/**
 * Credentials are the gateway's to check and never reach here: a message that still carries one is
 * refused as Binance refuses a parameter the method does not read (-1104), so a gateway that lets
 * one through fails loudly instead of being covered up.
 */
const CREDENTIALS: readonly string[] = ["apiKey", "signature"];

/**
 * Parameters of every WebSocket API request, beside the method's own (web-socket-api.md, "General
 * requests information"): `returnRateLimits` (a boolean, default true) asks for the `rateLimits`
 * of the answer. The demo keeps no per-connection limits (the gateway does) and never adds them.
 */
const GENERAL = "returnRateLimits";
const NO_BODY = new Uint8Array(0);

const unsupported = (): ExchangeError => new ExchangeError(400, -1020, "This operation is not supported.");

function bytesOf(data: RawData): Buffer {
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.isBuffer(data) ? data : Buffer.from(new Uint8Array(data));
}

function idOf(value: unknown): Id {
  return typeof value === "string" || typeof value === "number" ? value : null;
}

/** A JSON parameter value as the REST parameter text it stands for. */
function text(value: unknown): string {
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  throw errors.illegalBody();
}

export function createWebSocketApi(options: WebSocketApiOptions): WebSocketApi {
  const { engine, verify } = options;
  const sockets = new Set<WebSocket>();
  const wss = new WebSocketServer({ noServer: true, clientTracking: false, maxPayload: options.maxMessageBytes, perMessageDeflate: false });

  function answer(identity: PortcullisIdentity | null, data: RawData, isBinary: boolean): string {
    let id: Id = null;
    try {
      if (isBinary) throw errors.invalidJson();
      let request: unknown;
      try {
        request = JSON.parse(bytesOf(data).toString("utf8"));
      } catch {
        throw errors.invalidJson();
      }
      if (request === null || typeof request !== "object" || Array.isArray(request)) throw errors.invalidJson();
      const r = request as Record<string, unknown>;
      id = idOf(r.id);
      const method = typeof r.method === "string" ? METHODS.get(r.method) : undefined;
      if (method === undefined) throw unsupported();
      const raw: unknown = r.params ?? {};
      if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw errors.invalidJson();
      let account: string | null = null;
      if (method.permission !== "public") {
        if (identity === null || !ACCOUNT_RE.test(identity.account) || !grantedPermissions(identity.scopes).has(method.permission)) throw errors.unauthorized();
        account = identity.account;
        engine.openAccount(account);
      }
      const entries = Object.entries(raw);
      const credentials = entries.filter(([name]) => CREDENTIALS.includes(name)).length;
      if (credentials > 0) throw errors.unreadParameters(entries.length - credentials, entries.length);
      const general = (raw as Record<string, unknown>)[GENERAL];
      if (general !== undefined && general !== true && general !== false && general !== "true" && general !== "false") throw errors.invalidParameter(GENERAL);
      const params = Params.collect([entries.filter(([name]) => name !== GENERAL).map(([name, value]): [string, string] => [name, text(value)])]);
      params.expectOnly(method.endpoint.params);
      const result = method.endpoint.handle({ engine, params, account, now: options.now(), newClientOrderId: options.newClientOrderId });
      return JSON.stringify({ id, status: 200, result });
    } catch (error) {
      if (error instanceof ExchangeError) return JSON.stringify({ id, status: error.status, error: error.toJSON() });
      try {
        options.onError?.(error);
      } catch {
        // A failing logger must not stop the answer.
      }
      const unknown = errors.unknown();
      return JSON.stringify({ id, status: unknown.status, error: unknown.toJSON() });
    }
  }

  const upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on("error", () => undefined);
    const path = (req.url ?? "").split("?", 1)[0];
    if (path !== WS_API_PATH) {
      const body = JSON.stringify({ code: -1, msg: "Unknown endpoint" });
      socket.end(`HTTP/1.1 404 Not Found\r\ncontent-type: application/json;charset=UTF-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
      return;
    }
    // An upgrade has no body: the identity binds the digest of no bytes.
    const verified = verify(req, NO_BODY);
    const identity = verified.ok ? verified.identity : null;
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.add(ws);
      ws.on("message", (data, isBinary) => {
        ws.send(answer(identity, data, isBinary));
      });
      ws.on("error", () => undefined);
      ws.on("close", () => {
        sockets.delete(ws);
      });
    });
  };

  return {
    upgrade,
    close() {
      for (const ws of sockets) ws.close(1001, "going away");
      sockets.clear();
    },
  };
}
