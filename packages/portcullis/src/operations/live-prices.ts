import type { Decimal } from "../contract/operations.js";
import type { ReferencePrices } from "../contract/prices.js";
import type { Logger } from "../log/logger.js";
import { parseDecimal } from "./decimal.js";
import { type PriceTable, StaticPrices } from "./prices.js";

/**
 * Reference prices kept current off the request path (docs/guardrails.md): the configured table,
 * plus whatever a refresher (below) last read from a Binance-shaped public ticker. A price the
 * refresher has provided counts only while it is fresh: older than `maxAgeMs` it is unknown (the
 * guardrails then refuse: fail closed), and the configured value of that symbol does not come
 * back (an old price is not a reference). A symbol the refresher never provided keeps its
 * configured value.
 *
 * Lookups are two map reads and a clock read; nothing here waits.
 */
export class LivePrices implements ReferencePrices {
  private readonly configured: StaticPrices;
  private readonly symbols = new Map<string, { readonly value: Decimal; readonly at: number }>();
  private readonly assets = new Map<string, { readonly value: Decimal; readonly at: number }>();
  private readonly maxAgeMs: number;
  private readonly now: () => number;

  constructor(options: { readonly table?: PriceTable; readonly maxAgeMs: number; readonly now?: () => number }) {
    this.configured = new StaticPrices(options.table);
    this.maxAgeMs = options.maxAgeMs;
    this.now = options.now ?? Date.now;
  }

  symbol(symbol: string): Decimal | undefined {
    const live = this.symbols.get(symbol);
    if (live === undefined) return this.configured.symbol(symbol);
    return this.now() - live.at <= this.maxAgeMs ? live.value : undefined;
  }

  asset(asset: string): Decimal | undefined {
    const live = this.assets.get(asset);
    if (live === undefined) return this.configured.asset(asset);
    return this.now() - live.at <= this.maxAgeMs ? live.value : undefined;
  }

  /** Records prices read at `at` (upper-case names). */
  update(kind: "symbol" | "asset", name: string, value: Decimal, at: number): void {
    (kind === "symbol" ? this.symbols : this.assets).set(name.toUpperCase(), { value, at });
  }
}

/** The refresher's settings (configuration `prices.refresh`). */
export interface PriceRefreshSettings {
  /** A Binance-shaped ticker: GET answering `[{ "symbol": "BTCUSDT", "price": "60000.00" }, …]`. */
  readonly url: string;
  readonly intervalMs: number;
  /** A refreshed price older than this is unknown. */
  readonly maxAgeMs: number;
  /**
   * The reference currency: a symbol `<ASSET><referenceAsset>` also gives the asset's value, and
   * the reference asset itself is worth 1. Default "USDT".
   */
  readonly referenceAsset: string;
  /** One poll gives up after this long (default: the interval, at most 10 s). */
  readonly timeoutMs?: number;
}

const ONE: Decimal = Object.freeze({ coefficient: 1n, scale: 0 });
const SYMBOL_RE = /^[A-Z0-9][A-Z0-9._:/-]{0,39}$/;
const MAX_BODY = 4 * 1024 * 1024;

/**
 * Reads a ticker answer into (symbol, price) pairs: entries that are not `{symbol, price}` with a
 * plain positive decimal are skipped (a venue's odd entry must not stop the rest).
 */
export function readTicker(body: unknown): [string, Decimal][] {
  const list = Array.isArray(body) ? (body as unknown[]) : [body];
  const out: [string, Decimal][] = [];
  for (const entry of list) {
    if (entry === null || typeof entry !== "object") continue;
    const { symbol, price } = entry as { symbol?: unknown; price?: unknown };
    if (typeof symbol !== "string" || typeof price !== "string") continue;
    const name = symbol.toUpperCase();
    const value = parseDecimal(price);
    if (!SYMBOL_RE.test(name) || value === null || value.coefficient === 0n) continue;
    out.push([name, value]);
  }
  return out;
}

/**
 * Polls the ticker every `intervalMs` and updates `prices`. A failed poll (unreachable, a non-200
 * answer, a body that is not JSON) keeps the last prices, which age out by themselves, and is
 * logged once per failure. Never on the request path; the timer does not keep the process alive.
 */
export class PriceRefresher {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private readonly settings: PriceRefreshSettings;
  private readonly prices: LivePrices;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly fetcher: typeof fetch;

  constructor(options: { readonly prices: LivePrices; readonly settings: PriceRefreshSettings; readonly logger: Logger; readonly now?: () => number; readonly fetch?: typeof fetch }) {
    this.prices = options.prices;
    this.settings = options.settings;
    this.logger = options.logger;
    this.now = options.now ?? Date.now;
    this.fetcher = options.fetch ?? fetch;
  }

  /**
   * Polls once now, then every interval. Resolves when the first poll is over (true when it read
   * prices), so a gateway can start with its prices: bounded by the poll's timeout, and a failed
   * first poll only logs.
   */
  start(): Promise<boolean> {
    if (this.timer !== null) return Promise.resolve(false);
    const first = this.poll();
    this.timer = setInterval(() => void this.poll(), this.settings.intervalMs);
    this.timer.unref();
    return first;
  }

  /** One poll (the next one waits for it): true when prices were read. */
  async poll(): Promise<boolean> {
    if (this.running !== null) {
      await this.running;
      return false;
    }
    let ok = false;
    this.running = (async () => {
      try {
        ok = await this.read();
      } catch (err) {
        this.logger.warn({ err: err instanceof Error ? err.message : String(err), url: this.settings.url }, "reference prices: poll failed; keeping the last prices");
      }
    })();
    try {
      await this.running;
    } finally {
      this.running = null;
    }
    return ok;
  }

  private async read(): Promise<boolean> {
    const timeoutMs = this.settings.timeoutMs ?? Math.min(this.settings.intervalMs, 10_000);
    const res = await this.fetcher(this.settings.url, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: "application/json" } });
    if (res.status !== 200) {
      await res.body?.cancel();
      throw new Error(`the ticker answered HTTP ${res.status}`);
    }
    const text = await res.text();
    if (text.length > MAX_BODY) throw new Error("the ticker's answer is too large");
    const pairs = readTicker(JSON.parse(text) as unknown);
    const at = this.now();
    const reference = this.settings.referenceAsset;
    for (const [symbol, price] of pairs) {
      this.prices.update("symbol", symbol, price, at);
      if (symbol.length > reference.length && symbol.endsWith(reference)) this.prices.update("asset", symbol.slice(0, -reference.length), price, at);
    }
    this.prices.update("asset", reference, ONE, at);
    return true;
  }

  /** Stops polling (an in-flight poll finishes by itself). */
  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }
}
