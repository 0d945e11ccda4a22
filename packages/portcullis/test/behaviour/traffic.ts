/**
 * Seeded synthetic traffic for the behaviour model's calibration: honest bots and attacks, as
 * `BehaviourEvent`s with times from a simulated clock (no real time anywhere).
 */
import type { BehaviourEvent } from "../../src/contract/behaviour.js";
import type { OperationKind } from "../../src/contract/operations.js";

/** mulberry32: a small seeded PRNG. */
export class Rng {
  private a: number;
  constructor(seed: number) {
    this.a = seed >>> 0;
  }
  next(): number {
    this.a = (this.a + 0x6d2b79f5) >>> 0;
    let t = this.a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Exponential with this mean. */
  exp(mean: number): number {
    return -Math.log(1 - this.next()) * mean;
  }
  /** Standard normal (Box–Muller). */
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(list: readonly T[]): T {
    const x = list[this.int(list.length)];
    if (x === undefined) throw new Error("empty list");
    return x;
  }
}

export const MINUTE = 60_000;
export const HOUR = 3_600_000;
export const DAY = 86_400_000;
/** Where every simulation starts (a frozen epoch; all time comes from the events). */
export const T0 = Date.UTC(2026, 10, 1);

export const ROUTES = {
  order: "POST /api/v3/order",
  cancel: "DELETE /api/v3/order",
  account: "GET /api/v3/account",
  openOrders: "GET /api/v3/openOrders",
  myTrades: "GET /api/v3/myTrades",
  withdraw: "POST /sapi/v1/capital/withdraw/apply",
} as const;

export const PRICES: Readonly<Record<string, number>> = { BTCUSDT: 60_000, ETHUSDT: 3_000, SOLUSDT: 150, DOGEUSDT: 0.2, ADAUSDT: 0.5, XYZBTC: 0.5, PUMPUSDT: 0.01 };
/** 24 h traded value per symbol (quote asset). */
export const LIQUIDITY: Readonly<Record<string, number>> = { BTCUSDT: 2e9, ETHUSDT: 1e9, SOLUSDT: 3e8, DOGEUSDT: 2e8, ADAUSDT: 1e8, XYZBTC: 20_000, PUMPUSDT: 50_000 };

export interface Who {
  readonly keyId: string;
  readonly account: string;
  readonly keyCreatedAt: number;
  client: string;
  network: string;
}

export function who(keyId: string, account: string, createdAt: number, client = "203.0.113.10"): Who {
  return { keyId, account, keyCreatedAt: createdAt, client, network: networkOf(client) };
}

export function networkOf(client: string): string {
  const parts = client.split(".");
  return `${parts[0]}.${parts[1]}.${parts[2]}.0/24`;
}

interface Extra {
  readonly operation?: OperationKind | null;
  readonly symbol?: string | null;
  readonly side?: "buy" | "sell" | null;
  readonly quantity?: number | null;
  readonly notional?: number | null;
  readonly asset?: string | null;
  readonly amount?: number | null;
  readonly value?: number | null;
  readonly destination?: string | null;
  readonly outcome?: BehaviourEvent["outcome"];
  readonly code?: string | null;
  readonly authFailure?: boolean;
}

export function ev(w: Who, at: number, route: string, x: Extra = {}): BehaviourEvent {
  return {
    keyId: w.keyId,
    account: w.account,
    at: Math.round(at),
    keyCreatedAt: w.keyCreatedAt,
    route,
    operation: x.operation ?? null,
    symbol: x.symbol ?? null,
    side: x.side ?? null,
    quantity: x.quantity ?? null,
    notional: x.notional ?? null,
    asset: x.asset ?? null,
    amount: x.amount ?? null,
    value: x.value ?? null,
    destination: x.destination ?? null,
    client: w.client,
    network: w.network,
    outcome: x.outcome ?? "allowed",
    code: x.code ?? null,
    authFailure: x.authFailure ?? false,
  };
}

export function order(w: Who, at: number, symbol: string, quantity: number, side: "buy" | "sell" = "buy"): BehaviourEvent {
  const price = PRICES[symbol] ?? 1;
  return ev(w, at, ROUTES.order, { operation: "order.place", symbol, side, quantity, notional: quantity * price });
}

export function cancel(w: Who, at: number, symbol: string): BehaviourEvent {
  return ev(w, at, ROUTES.cancel, { operation: "order.cancel", symbol });
}

export function read(w: Who, at: number, route: string = ROUTES.account): BehaviourEvent {
  return ev(w, at, route);
}

export function withdrawal(w: Who, at: number, destination: string, value: number): BehaviourEvent {
  return ev(w, at, ROUTES.withdraw, { operation: "withdraw", asset: "USDT", amount: value, value, destination });
}

/** An honest pattern: events from `start` for `durationMs`, in time order. */
export type Pattern = (w: Who, rng: Rng, start: number, durationMs: number) => BehaviourEvent[];

/** Market maker: a quote refresh every ~2 s (place + cancel), 1–3 symbols, stable sizes, reads now and then. */
export const marketMaker: Pattern = (w, rng, start, durationMs) => {
  const out: BehaviourEvent[] = [];
  const symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT"].slice(0, 1 + rng.int(3));
  const size: Record<string, number> = { BTCUSDT: 0.05, ETHUSDT: 1, SOLUSDT: 20 };
  for (let t = start; t < start + durationMs; t += rng.exp(2_000)) {
    const s = rng.pick(symbols);
    const q = (size[s] ?? 1) * Math.exp(0.1 * rng.normal());
    out.push(cancel(w, t, s));
    out.push(order(w, t + 5 + rng.int(20), s, q, rng.next() < 0.5 ? "buy" : "sell"));
    if (rng.next() < 0.03) out.push(read(w, t + 30, rng.next() < 0.5 ? ROUTES.account : ROUTES.openOrders));
  }
  return out;
};

/** Periodic buyer: checks its account and buys one fixed amount every hour (± a few minutes). */
export const periodicBuyer: Pattern = (w, rng, start, durationMs) => {
  const out: BehaviourEvent[] = [];
  for (let t = start; t < start + durationMs; t += HOUR + (rng.next() - 0.5) * 6 * MINUTE) {
    out.push(read(w, t));
    out.push(order(w, t + 800 + rng.int(400), "BTCUSDT", (100 / 60_000) * Math.exp(0.05 * rng.normal())));
  }
  return out;
};

/** Portfolio reader: reads its account, open orders and trades every ~30 s. */
export const portfolioReader: Pattern = (w, rng, start, durationMs) => {
  const out: BehaviourEvent[] = [];
  const routes = [ROUTES.account, ROUTES.openOrders, ROUTES.myTrades];
  for (let t = start; t < start + durationMs; t += 30_000 + (rng.next() - 0.5) * 10_000) out.push(read(w, t, rng.pick(routes)));
  return out;
};

/** Arbitrageur: quiet, then a burst of 5–30 orders within seconds on a few symbols (sizes vary), some cancelled. */
export const arbitrageur: Pattern = (w, rng, start, durationMs) => {
  const out: BehaviourEvent[] = [];
  const size: Record<string, number> = { BTCUSDT: 0.2, ETHUSDT: 4 };
  for (let t = start + rng.exp(10 * MINUTE); t < start + durationMs; t += rng.exp(10 * MINUTE)) {
    const n = 5 + rng.int(26);
    let u = t;
    for (let i = 0; i < n; i++) {
      const s = rng.pick(["BTCUSDT", "ETHUSDT"]);
      out.push(order(w, u, s, (size[s] ?? 1) * Math.exp(0.3 * rng.normal()), rng.next() < 0.5 ? "buy" : "sell"));
      if (rng.next() < 0.3) out.push(cancel(w, u + 50, s));
      u += rng.exp(300);
    }
    if (rng.next() < 0.2) out.push(read(w, u + 500));
  }
  return out.sort((a, b) => a.at - b.at);
};
