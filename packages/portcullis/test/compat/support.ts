/**
 * Support for the client-compatibility tests: the whole demo (exchange, gateway, admin API) on
 * loopback ports in this process, and keys created for it. Real third-party clients from npm then
 * talk to `stack.gateway` as they would to the venue.
 */
import ccxt from "ccxt";
import { type DemoStack, startDemoStack } from "@portcullis/demo-exchange";
import { silentLogger } from "../../src/log/logger.js";

export async function startCompatStack(): Promise<DemoStack> {
  return startDemoStack({ port: 0, adminPort: 0, upstreamPort: 0, logger: silentLogger(), serverTiming: false });
}

/** host:port of a stack URL (what a client library puts in its URLs). */
export function hostOf(url: string): string {
  return new URL(url).host;
}

/**
 * ccxt's binance with every REST base URL it knows replaced by `base` (the gateway, or nginx in
 * front of the authorizer); it loads only spot markets (exchangeInfo) without the private currency
 * list.
 */
export function binanceClient(base: string, apiKey: string, secret: string): InstanceType<typeof ccxt.binance> {
  const exchange = new ccxt.binance({
    apiKey,
    secret,
    enableRateLimit: false,
    timeout: 10_000,
    options: { fetchMarkets: { types: ["spot"] }, fetchMargins: false, fetchCurrencies: false },
  });
  const api: Record<string, string> = {};
  for (const [name, url] of Object.entries(exchange.urls.api)) {
    // https://api.binance.com/api/v3 -> <base>/api/v3, https://api.binance.com/sapi/v1 -> <base>/sapi/v1, ...
    if (typeof url === "string") api[name] = url.replace(/^https:\/\/[^/]+/, base);
  }
  exchange.urls.api = api;
  return exchange;
}

/** A Binance-dialect HMAC key of the demo stack: its id and secret. */
export async function binanceHmacKey(stack: DemoStack, account: string, scopes: string[]): Promise<{ id: string; secret: string }> {
  const created = await stack.createKey({ account, scopes, dialects: ["binance"] });
  return { id: created.key.id, secret: created.secret ?? "" };
}

/** The error a promise rejects with (it must reject, with an Error). */
export async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof Error) return err;
    throw new Error(`not an Error: ${String(err)}`, { cause: err });
  }
  throw new Error("expected a rejection");
}
