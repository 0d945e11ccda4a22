/**
 * The demo exchange: the upstream that `portcullis demo` puts behind the gateway. A small
 * Binance-shaped spot REST API over one in-memory matching engine (BTCUSDT and ETHUSDT), seeded
 * by an internal market maker so that the book has depth and market orders fill.
 *
 * Private endpoints trust only the gateway's signed identity headers (checked with `portcullis/upstream`
 * against the body received, each request id once):
 * the caller's account is `portcullis-account`, and the key's scopes must grant the route's
 * permission. Anything else is 401 -2015, Binance's answer for a bad key. Accounts are created on
 * first sight with demo balances. Errors use Binance's `{code, msg}` shape; internal faults are
 * -1000 with HTTP 500 and no detail.
 *
 *   const exchange = createDemoExchange({ identitySecret });
 *   http.createServer(exchange.handler).listen(9000);
 */
import { randomBytes, randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { RouteSpec } from "portcullis";
import { createIdentityVerifier, grantedPermissions, type IdentityVerifierOptions } from "portcullis/upstream";
import { formatDecimal } from "./decimal.js";
import { ENDPOINTS, type Endpoint } from "./endpoints.js";
import { MARKET_MAKER_ACCOUNT, Engine } from "./engine.js";
import { ExchangeError, errors } from "./errors.js";
import { DEFAULT_MAX_BODY_BYTES, RequestAbortedError, parseBody, parseForm, readBody, sendError, sendJson } from "./http.js";
import { perAsset, type Asset } from "./markets.js";
import { orderView, type OrderView } from "./orders.js";
import { Params } from "./params.js";
import { BINANCE_ROUTES, DEMO_EXCHANGE_ROUTES } from "./routes.js";
import type { Venue } from "./venue.js";
import { VENUES } from "./venues/index.js";
import { createWebSocketApi } from "./websocket.js";

export { DEMO_EXCHANGE_ROUTES, DEMO_WEBSOCKET_ROUTES, WS_API_PATH } from "./routes.js";
export { MARKET_MAKER_ACCOUNT } from "./engine.js";
export { ASSETS, DEMO_BALANCES, MARKETS, type Asset, type Market } from "./markets.js";
export type { OrderView } from "./orders.js";

export interface DemoExchangeOptions {
  /** The gateway-upstream identity secret (at least 32 bytes), shared with the gateway. */
  readonly identitySecret: string | Buffer;
  /** Clock in epoch ms; for tests. Default Date.now. */
  readonly now?: () => number;
  /** Largest request body accepted, in bytes. Default 64 KiB. */
  readonly maxBodyBytes?: number;
  /** How old (or how far ahead) the gateway's identity timestamp may be. Default 5 s. */
  readonly identityMaxAgeMs?: number;
  /** Called with every internal fault (answered as -1000), e.g. to log it. */
  readonly onError?: (error: unknown) => void;
}

export interface BalanceView {
  readonly free: string;
  readonly locked: string;
}

export interface SupplyView {
  /** Given to accounts as starting balances (including the market maker's). */
  readonly minted: string;
  /** Taken out by withdrawals. */
  readonly withdrawn: string;
  /** free + locked, summed over every account. Always minted - withdrawn. */
  readonly held: string;
}

export interface WithdrawalView {
  readonly id: string;
  readonly account: string;
  readonly coin: Asset;
  readonly network: string;
  readonly address: string;
  readonly amount: string;
  readonly time: number;
}

export interface DemoExchange {
  /** The request listener: `http.createServer(exchange.handler)`. */
  readonly handler: (req: IncomingMessage, res: ServerResponse) => void;
  /** The WebSocket API (websocket.ts): `server.on("upgrade", exchange.upgrade)`. */
  readonly upgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  /** Closes every WebSocket connection (before the server closes). */
  closeWebSockets(): void;
  /** The routes this exchange serves, for the gateway's route table. */
  readonly routes: readonly RouteSpec[];
  /** The internal market maker's account name (not reachable through any identity). */
  readonly marketMakerAccount: string;
  /** Every account seen so far, the market maker first. */
  accounts(): string[];
  /** An account's balances as Binance text, or undefined if it has never been seen. */
  balances(account: string): Record<Asset, BalanceView> | undefined;
  /** Per asset: what was minted, withdrawn and is held; held = minted - withdrawn at all times. */
  supply(): Record<Asset, SupplyView>;
  /** An account's open orders, in the GET /api/v3/openOrders shape. */
  openOrders(account: string): OrderView[];
  /** Every withdrawal so far, oldest first. */
  withdrawals(): WithdrawalView[];
}

/** Accounts the exchange accepts from the gateway: 1-256 printable ASCII, no edge spaces. */
const ACCOUNT_RE = /^[!-~](?:[ -~]{0,254}[!-~])?$/;

interface ServedRoute {
  readonly permission: string;
  readonly endpoint: Endpoint;
}

function compileRoutes(specs: readonly RouteSpec[]): { routes: Map<string, ServedRoute>; paths: Set<string> } {
  const routes = new Map<string, ServedRoute>();
  const paths = new Set<string>();
  for (const spec of specs) {
    for (const method of typeof spec.method === "string" ? [spec.method] : spec.method) {
      const id = `${method} ${spec.path}`;
      const endpoint = ENDPOINTS.get(id);
      if (endpoint === undefined) throw new Error(`demo exchange: route ${id} has no endpoint`);
      routes.set(id, { permission: spec.permission, endpoint });
      paths.add(spec.path);
    }
  }
  for (const id of ENDPOINTS.keys()) {
    if (!routes.has(id)) throw new Error(`demo exchange: endpoint ${id} is missing from BINANCE_ROUTES`);
  }
  return { routes, paths };
}

export function createDemoExchange(options: DemoExchangeOptions): DemoExchange {
  const clock = options.now ?? Date.now;
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const verifierOptions: IdentityVerifierOptions = {
    now: clock,
    ...(options.identityMaxAgeMs === undefined ? {} : { maxAgeMs: options.identityMaxAgeMs }),
  };
  const verify = createIdentityVerifier(options.identitySecret, verifierOptions);
  const engine = new Engine(clock, () => randomUUID().replaceAll("-", ""));
  const { routes, paths } = compileRoutes(BINANCE_ROUTES);
  const venueRoutes = new Map<string, { venue: Venue; route: RouteSpec }>();
  for (const venue of VENUES) {
    for (const route of venue.routes) {
      for (const method of typeof route.method === "string" ? [route.method] : route.method) {
        venueRoutes.set(`${method} ${route.path}`, { venue, route });
        paths.add(route.path);
      }
    }
  }
  const newClientOrderId = (): string => randomBytes(16).toString("base64url");

  /** The authenticated account for a private route (its identity checked against the body received), or 401 -2015. */
  function authenticate(req: IncomingMessage, body: Buffer, permission: string): string {
    const result = verify(req, body);
    if (!result.ok) throw errors.unauthorized();
    const { account, scopes } = result.identity;
    if (!ACCOUNT_RE.test(account) || !grantedPermissions(scopes).has(permission)) throw errors.unauthorized();
    return account;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? "";
    const target = req.url ?? "/";
    const q = target.indexOf("?");
    const path = q < 0 ? target : target.slice(0, q);
    const query = q < 0 ? "" : target.slice(q + 1);
    const served = venueRoutes.get(`${method} ${path}`);
    if (served !== undefined) {
      // The identity covers the body, so the body is read first. When it cannot be read (too
      // large, aborted), there is no identity to give: asking for it throws the body's error,
      // which the venue answers in its own shape.
      const reading = readBody(req, maxBodyBytes);
      let bodyError: unknown = null;
      const body = await reading.catch((error: unknown) => {
        bodyError = error;
        return null;
      });
      const verified = body === null ? null : verify(req, body);
      const identity = verified !== null && verified.ok ? verified.identity : null;
      await served.venue.handle({
        req,
        res,
        method,
        path,
        query,
        route: served.route,
        engine,
        now: clock(),
        get identity() {
          if (body === null) throw bodyError;
          return identity;
        },
        readBody: () => reading,
      });
      return;
    }
    const route = routes.get(`${method} ${path}`);
    if (route === undefined) throw paths.has(path) ? errors.methodNotAllowed() : errors.unknownEndpoint();

    const body = await readBody(req, maxBodyBytes);
    const account = route.permission === "public" ? null : authenticate(req, body, route.permission);
    if (account !== null) engine.openAccount(account);
    const params = Params.collect([parseForm(query), parseBody(req.headers["content-type"], body)]);
    params.expectOnly(route.endpoint.params);
    const result = route.endpoint.handle({ engine, params, account, now: clock(), newClientOrderId });
    sendJson(res, 200, result);
  }

  function fail(res: ServerResponse, error: unknown): void {
    if (error instanceof RequestAbortedError) {
      res.destroy();
      return;
    }
    if (error instanceof ExchangeError) {
      sendError(res, error, error.status === 413 ? { connection: "close" } : {});
      return;
    }
    try {
      options.onError?.(error);
    } catch {
      // A failing logger must not stop the answer.
    }
    sendError(res, errors.unknown());
  }

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    handle(req, res).catch((error: unknown) => {
      try {
        fail(res, error);
      } catch {
        res.destroy();
      }
    });
  };

  const webSocketApi = createWebSocketApi({ engine, verify, now: clock, newClientOrderId, maxMessageBytes: maxBodyBytes, onError: options.onError });

  return {
    handler,
    upgrade: webSocketApi.upgrade,
    closeWebSockets: () => {
      webSocketApi.close();
    },
    routes: DEMO_EXCHANGE_ROUTES,
    marketMakerAccount: MARKET_MAKER_ACCOUNT,
    accounts: () => engine.ledger.list().map((r) => r.account),
    balances: (account) => {
      const record = engine.ledger.get(account);
      if (record === undefined) return undefined;
      return perAsset((asset) => ({
        free: formatDecimal(record.balances[asset].free),
        locked: formatDecimal(record.balances[asset].locked),
      }));
    },
    supply: () => {
      const minted = engine.ledger.minted();
      const withdrawn = engine.ledger.withdrawn();
      const held = engine.ledger.totals();
      return perAsset((asset) => ({
        minted: formatDecimal(minted[asset]),
        withdrawn: formatDecimal(withdrawn[asset]),
        held: formatDecimal(held[asset]),
      }));
    },
    openOrders: (account) => engine.openOrders(account, null).map(orderView),
    withdrawals: () =>
      engine.withdrawalLog().map((w) => ({
        id: w.id,
        account: w.account,
        coin: w.coin,
        network: w.network,
        address: w.address,
        amount: formatDecimal(w.amount),
        time: w.time,
      })),
  };
}
