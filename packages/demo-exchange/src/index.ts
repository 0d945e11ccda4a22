/**
 * `@portcullis/demo-exchange`: the demo exchange and the demo that runs it behind Portcullis.
 * A workspace package of the repository, not published: `portcullis demo` (and so `npm start`)
 * loads it when it is installed beside `portcullis`. It uses only Portcullis's public entry
 * points (`portcullis`, `portcullis/upstream`), as any service behind the gateway would.
 */

/** The exchange: Binance-, Kraken-, Coinbase-, OKX- and Bybit-shaped APIs over one order book. */
export {
  createDemoExchange,
  type DemoExchange,
  type DemoExchangeOptions,
  type BalanceView,
  type SupplyView,
  type WithdrawalView,
  DEMO_EXCHANGE_ROUTES,
  DEMO_WEBSOCKET_ROUTES,
  WS_API_PATH,
  MARKET_MAKER_ACCOUNT,
  ASSETS,
  DEMO_BALANCES,
  MARKETS,
  type Asset,
  type Market,
  type OrderView,
} from "./exchange/index.js";

/** The exchange, the gateway in front of it and the admin API, in this process (tests use it). */
export { startDemoStack, DemoPortInUseError, type DemoStack, type DemoStackOptions } from "./stack.js";

/** `portcullis demo`: the stack, demo keys, and what to try, printed. */
export { runDemo, writeSecretFile, CONSOLE_CREDENTIAL_FILE, type DemoOptions, type DemoKey } from "./run.js";
export { startDemoTraffic, type DemoTraffic, type TrafficOptions } from "./traffic.js";
