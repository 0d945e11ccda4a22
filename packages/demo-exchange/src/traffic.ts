import { createHmac } from "node:crypto";
import { Agent, request } from "node:http";

/**
 * The demo's background traffic (issue 18): a small bot that keeps the console's live charts
 * moving. It signs Binance-style, as most bots do, with two keys of its own account
 * (`demo-traffic`), so the keys printed for the user, their account's limits and balances, and
 * the order book are never touched: it only reads.
 *
 * About three requests a second, mostly allowed (open orders, the account, a public ticker), and
 * some refused, each kind on its own beat: a wrong signature every 10 s (SIGNATURE_INVALID), a
 * withdrawal its read-only key may not make every 15 s (SCOPE_MISSING), and every 30 s a burst on
 * a key with a small weight limit (RATE_LIMITED). That stays far below the address's shield
 * (30 authentication failures, 20 refusals a minute), and on Linux the bot sends from 127.0.0.2,
 * so whatever it costs an address is not the user's 127.0.0.1.
 */

/** Milliseconds between two requests of the steady traffic. */
const STEP_MS = 400;
/** Steps between two wrong signatures, withdrawals, bursts. */
const BAD_SIGNATURE_EVERY = 25;
const WITHDRAW_EVERY = 38;
const BURST_EVERY = 75;
const BURST_SIZE = 5;

export interface TrafficKey {
  readonly id: string;
  readonly secret: string;
}

export interface TrafficOptions {
  readonly gateway: string;
  /** The steady key (read only). */
  readonly key: TrafficKey;
  /** The burst key: read only, with a small weight limit, so a burst goes over it. */
  readonly burst: TrafficKey;
  /** Send from this local address when possible (default 127.0.0.2 on Linux, else none). */
  readonly localAddress?: string | null;
  /** Milliseconds between two steps (default 400; tests go faster). */
  readonly stepMs?: number;
}

export interface DemoTraffic {
  /** Stops sending; resolves once no request is in flight. */
  stop(): Promise<void>;
  /** Requests sent so far. */
  readonly sent: number;
}

const SYMBOLS = ["BTCUSDT", "ETHUSDT", "ETHBTC"] as const;

function signed(key: TrafficKey, params: Record<string, string>, secret = key.secret): string {
  const query = new URLSearchParams({ ...params, timestamp: String(Date.now()) }).toString();
  return `${query}&signature=${createHmac("sha256", secret).update(query).digest("hex")}`;
}

/** Starts the bot; it runs until `stop()`. */
export function startDemoTraffic(options: TrafficOptions): DemoTraffic {
  const url = new URL(options.gateway);
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  let localAddress: string | null = options.localAddress === undefined ? (process.platform === "linux" ? "127.0.0.2" : null) : options.localAddress;
  let step = 0;
  let sent = 0;
  let stopped = false;
  const inFlight = new Set<Promise<void>>();

  const send = (method: string, path: string, apiKey: string | null): void => {
    if (stopped) return;
    const done = new Promise<void>((resolve) => {
      const req = request(
        {
          host: url.hostname,
          port: url.port,
          method,
          path,
          agent,
          headers: apiKey === null ? {} : { "x-mbx-apikey": apiKey },
          ...(localAddress === null ? {} : { localAddress }),
        },
        (res) => {
          res.resume();
          res.once("end", resolve);
          res.once("error", () => {
            resolve();
          });
        },
      );
      // The gateway answers at once; a request that does not is given up, so stop() never waits long.
      req.setTimeout(5_000, () => {
        req.destroy();
      });
      req.once("error", (err: NodeJS.ErrnoException) => {
        // No such local address here (another system's loopback): send from the default one.
        if (err.code === "EADDRNOTAVAIL" || err.code === "EINVAL") localAddress = null;
        resolve();
      });
      req.end();
    });
    sent++;
    inFlight.add(done);
    void done.then(() => inFlight.delete(done));
  };

  const tick = (): void => {
    step++;
    const symbol = SYMBOLS[step % SYMBOLS.length] ?? "BTCUSDT";
    // The steady traffic: open orders, the public ticker, now and then the account.
    if (step % 10 === 0) send("GET", `/api/v3/account?${signed(options.key, {})}`, options.key.id);
    else if (step % 2 === 0) send("GET", `/api/v3/openOrders?${signed(options.key, { symbol })}`, options.key.id);
    else send("GET", `/api/v3/ticker/price?symbol=${symbol}`, null);
    if (step % BAD_SIGNATURE_EVERY === 0) send("GET", `/api/v3/account?${signed(options.key, {}, "not-the-secret")}`, options.key.id);
    if (step % WITHDRAW_EVERY === 0) {
      send("POST", `/sapi/v1/capital/withdraw/apply?${signed(options.key, { coin: "USDT", network: "TRX", address: "TDemoTrafficBot11111111111111111111", amount: "10" })}`, options.key.id);
    }
    // A burst's requests are signed in the same millisecond: each its own recvWindow, or they would be one request replayed.
    if (step % BURST_EVERY === 0) for (let i = 0; i < BURST_SIZE; i++) send("GET", `/api/v3/account?${signed(options.burst, { recvWindow: String(5000 + i) })}`, options.burst.id);
  };
  const timer = setInterval(tick, options.stepMs ?? STEP_MS);

  return {
    get sent() {
      return sent;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      await Promise.all([...inFlight]);
      agent.destroy();
    },
  };
}
