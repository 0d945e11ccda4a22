/**
 * The matching engine: one order book per market, accounts and their balances, and the
 * operations the REST endpoints call. Requests reaching it are already validated (syntax and
 * filters); the engine checks what depends on state (balances, open orders) and applies the
 * change.
 *
 * Matching is price-time priority and every trade executes at the resting (maker) order's price.
 * Each order is first planned against the book without changing anything, so a rejected order
 * (insufficient balance, FOK that cannot fill) leaves no trace but its ExchangeError or its
 * EXPIRED record. Resting orders lock their funds: a BUY locks price × remaining quote, a SELL
 * locks the remaining base; fills spend the maker's locked funds and the taker's free funds.
 * There are no commissions, so value is conserved exactly (see Ledger).
 */
import { OrderBook } from "./book.js";
import { div, floorToStep, min } from "./decimal.js";
import { errors } from "./errors.js";
import { Ledger, type AccountRecord } from "./ledger.js";
import {
  DEMO_BALANCES,
  MARKETS,
  MARKET_MAKER_BALANCES,
  findMarket,
  notionalOf,
  type Asset,
  type Market,
} from "./markets.js";
import { isOpen, remaining, type Fill, type Order, type OrderType, type Side, type TimeInForce } from "./orders.js";

/**
 * The internal market maker's account. It contains a NUL character, which no identity header can
 * carry, so no caller can ever act as it.
 */
export const MARKET_MAKER_ACCOUNT = "\u0000market-maker";

/** A validated new order. */
export interface OrderRequest {
  readonly market: Market;
  readonly side: Side;
  readonly type: OrderType;
  /** GTC for MARKET orders. */
  readonly timeInForce: TimeInForce;
  /** The limit price (LIMIT only). */
  readonly price: bigint | null;
  /** Base quantity: always for LIMIT; for MARKET, this or quoteOrderQty. */
  readonly quantity: bigint | null;
  /** Quote amount to spend (BUY) or receive (SELL), MARKET only. */
  readonly quoteOrderQty: bigint | null;
  readonly clientOrderId: string;
}

/** How a caller names an existing order: by id, by client id, or both (which must agree). */
export interface OrderLookup {
  readonly orderId: number | null;
  readonly clientOrderId: string | null;
}

export interface Withdrawal {
  readonly id: string;
  readonly account: string;
  readonly coin: Asset;
  readonly network: string;
  readonly address: string;
  readonly addressTag: string | null;
  readonly amount: bigint;
  readonly withdrawOrderId: string | null;
  readonly time: number;
}

export interface EngineOrder extends Order {
  /** Funds still locked for this order while it rests. */
  locked: bigint;
}

interface PlannedFill {
  readonly maker: EngineOrder;
  readonly price: bigint;
  readonly qty: bigint;
  readonly notional: bigint;
}

interface Plan {
  readonly fills: readonly PlannedFill[];
  readonly qty: bigint;
  readonly notional: bigint;
  /** The book ran out of matchable liquidity before the order's target was reached. */
  readonly exhausted: boolean;
}

export class Engine {
  readonly ledger = new Ledger();
  private readonly books = new Map<string, OrderBook<EngineOrder>>();
  private readonly lastPrices = new Map<string, bigint>();
  private readonly orders = new Map<number, EngineOrder>();
  private readonly ordersByAccount = new Map<string, EngineOrder[]>();
  private readonly withdrawals: Withdrawal[] = [];
  private nextOrderId = 1;
  private nextTradeId = 1;

  constructor(
    private readonly now: () => number,
    private readonly newWithdrawalId: () => string,
  ) {
    for (const m of MARKETS) {
      this.books.set(m.symbol, new OrderBook<EngineOrder>());
      this.lastPrices.set(m.symbol, m.referencePrice);
    }
    this.seed();
  }

  /** The account's record, opening it with the demo balances the first time it is seen. */
  openAccount(account: string): AccountRecord {
    return this.ledger.open(account, DEMO_BALANCES, this.now());
  }

  /** Last trade price, or the reference price before the first trade. */
  lastPrice(m: Market): bigint {
    return this.lastPrices.get(m.symbol) ?? m.referencePrice;
  }

  book(m: Market): OrderBook<EngineOrder> {
    const book = this.books.get(m.symbol);
    if (book === undefined) throw new Error(`no book for ${m.symbol}`);
    return book;
  }

  /** Places an order: matches what it can, rests or expires the rest. */
  place(account: string, req: OrderRequest): { order: Order; fills: Fill[] } {
    const now = this.now();
    const m = req.market;
    this.openAccount(account);
    if (this.openOrders(account, null).some((o) => o.clientOrderId === req.clientOrderId)) throw errors.duplicateOrder();

    const plan = this.plan(req);
    const spend = req.side === "BUY" ? m.quoteAsset : m.baseAsset;
    if (this.ledger.free(account, spend) < this.required(req, plan)) throw errors.insufficientBalance();

    const order: EngineOrder = {
      orderId: this.nextOrderId++,
      account,
      symbol: m.symbol,
      clientOrderId: req.clientOrderId,
      side: req.side,
      type: req.type,
      timeInForce: req.timeInForce,
      price: req.price ?? 0n,
      origQty: req.quantity ?? 0n,
      origQuoteOrderQty: req.quoteOrderQty ?? 0n,
      executedQty: 0n,
      cummulativeQuoteQty: 0n,
      status: "NEW",
      time: now,
      updateTime: now,
      locked: 0n,
    };
    this.record(order);

    const fills: Fill[] = [];
    const fillOrKillFails = req.timeInForce === "FOK" && plan.qty !== order.origQty;
    if (!fillOrKillFails) for (const planned of plan.fills) fills.push(this.execute(order, planned, now));

    if (req.quoteOrderQty !== null) {
      order.origQty = order.executedQty;
      order.status = plan.exhausted || order.executedQty === 0n ? "EXPIRED" : "FILLED";
    } else if (remaining(order) === 0n) {
      order.status = "FILLED";
    } else if (req.type === "LIMIT" && req.timeInForce === "GTC") {
      this.rest(order, now);
    } else {
      order.status = "EXPIRED";
    }
    order.updateTime = now;
    return { order, fills };
  }

  /** Cancels an open order and unlocks its funds; -2011 if there is no such open order. */
  cancel(account: string, m: Market, lookup: OrderLookup): Order {
    const order = this.lookup(account, m, lookup);
    if (order === undefined || !isOpen(order)) throw errors.cancelRejected();
    const now = this.now();
    this.book(m).remove(order);
    this.release(order, now);
    order.status = "CANCELED";
    order.updateTime = now;
    return order;
  }

  /** One of the account's orders on `m`; -2013 if there is none. */
  find(account: string, m: Market, lookup: OrderLookup): Order {
    const order = this.lookup(account, m, lookup);
    if (order === undefined) throw errors.noSuchOrder();
    return order;
  }

  /** The account's open orders, on one market or all, oldest first. */
  openOrders(account: string, m: Market | null): Order[] {
    return (this.ordersByAccount.get(account) ?? []).filter((o) => isOpen(o) && (m === null || o.symbol === m.symbol));
  }

  /** Debits `amount` of `coin` from the account's free balance; -4026 if it has less. */
  withdraw(
    account: string,
    request: Omit<Withdrawal, "id" | "account" | "time">,
  ): Withdrawal {
    const now = this.now();
    this.openAccount(account);
    if (this.ledger.free(account, request.coin) < request.amount) throw errors.withdrawInsufficient();
    this.ledger.withdraw(account, request.coin, request.amount, now);
    const withdrawal: Withdrawal = { ...request, id: this.newWithdrawalId(), account, time: now };
    this.withdrawals.push(withdrawal);
    return withdrawal;
  }

  /** Every withdrawal so far, oldest first. */
  withdrawalLog(): readonly Withdrawal[] {
    return this.withdrawals;
  }

  /** Walks the book without changing it: which resting orders this order would trade with. */
  private plan(req: OrderRequest): Plan {
    const m = req.market;
    const opposite: Side = req.side === "BUY" ? "SELL" : "BUY";
    const fills: PlannedFill[] = [];
    let qty = 0n;
    let notional = 0n;
    for (const e of this.book(m).orders(opposite)) {
      if (req.price !== null && (req.side === "BUY" ? e.price > req.price : e.price < req.price)) break;
      let take = remaining(e);
      if (req.quantity !== null) take = min(take, req.quantity - qty);
      else if (req.quoteOrderQty !== null) take = min(take, floorToStep(div(req.quoteOrderQty - notional, e.price), m.stepSize));
      if (take <= 0n) return { fills, qty, notional, exhausted: false };
      const n = notionalOf(e.price, take);
      fills.push({ maker: e, price: e.price, qty: take, notional: n });
      qty += take;
      notional += n;
      if (req.quantity !== null && qty === req.quantity) return { fills, qty, notional, exhausted: false };
    }
    return { fills, qty, notional, exhausted: true };
  }

  /** The free balance an order needs up front, in the asset it spends. */
  private required(req: OrderRequest, plan: Plan): bigint {
    if (req.type === "LIMIT") {
      const qty = req.quantity ?? 0n;
      return req.side === "BUY" ? notionalOf(req.price ?? 0n, qty) : qty;
    }
    if (req.side === "BUY") return req.quoteOrderQty ?? plan.notional;
    return req.quantity ?? plan.qty;
  }

  /** One trade between the taker and a resting order, at the maker's price. */
  private execute(taker: EngineOrder, planned: PlannedFill, now: number): Fill {
    const { maker, price, qty, notional } = planned;
    const market = this.market(taker.symbol);
    const base = market.baseAsset;
    const quote = market.quoteAsset;
    if (taker.side === "BUY") {
      this.ledger.debit(taker.account, quote, notional, now);
      this.ledger.credit(taker.account, base, qty, now);
      this.ledger.spendLocked(maker.account, base, qty, now);
      maker.locked -= qty;
      this.ledger.credit(maker.account, quote, notional, now);
    } else {
      this.ledger.debit(taker.account, base, qty, now);
      this.ledger.credit(taker.account, quote, notional, now);
      this.ledger.spendLocked(maker.account, quote, notional, now);
      maker.locked -= notional;
      this.ledger.credit(maker.account, base, qty, now);
    }
    for (const o of [taker, maker]) {
      o.executedQty += qty;
      o.cummulativeQuoteQty += notional;
      o.updateTime = now;
    }
    const book = this.book(market);
    if (remaining(maker) === 0n) {
      maker.status = "FILLED";
      book.remove(maker);
      this.release(maker, now);
    } else {
      maker.status = "PARTIALLY_FILLED";
      book.touch();
    }
    this.lastPrices.set(market.symbol, price);
    return {
      price,
      qty,
      commission: 0n,
      commissionAsset: taker.side === "BUY" ? base : quote,
      tradeId: this.nextTradeId++,
    };
  }

  /** Puts the unfilled rest of a GTC LIMIT order on the book, locking its funds. */
  private rest(order: EngineOrder, now: number): void {
    const m = this.market(order.symbol);
    const left = remaining(order);
    if (order.side === "BUY") {
      order.locked = notionalOf(order.price, left);
      this.ledger.lock(order.account, m.quoteAsset, order.locked, now);
    } else {
      order.locked = left;
      this.ledger.lock(order.account, m.baseAsset, order.locked, now);
    }
    order.status = order.executedQty > 0n ? "PARTIALLY_FILLED" : "NEW";
    this.book(m).rest(order);
  }

  /** Unlocks whatever an order still holds (on cancel, or rounding dust once filled). */
  private release(order: EngineOrder, now: number): void {
    if (order.locked === 0n) return;
    const m = this.market(order.symbol);
    this.ledger.unlock(order.account, order.side === "BUY" ? m.quoteAsset : m.baseAsset, order.locked, now);
    order.locked = 0n;
  }

  private lookup(account: string, m: Market, lookup: OrderLookup): EngineOrder | undefined {
    let order: EngineOrder | undefined;
    if (lookup.orderId !== null) {
      order = this.orders.get(lookup.orderId);
    } else if (lookup.clientOrderId !== null) {
      order = (this.ordersByAccount.get(account) ?? []).findLast(
        (o) => o.symbol === m.symbol && o.clientOrderId === lookup.clientOrderId,
      );
    }
    if (order === undefined || order.account !== account || order.symbol !== m.symbol) return undefined;
    if (lookup.clientOrderId !== null && order.clientOrderId !== lookup.clientOrderId) return undefined;
    return order;
  }

  private record(order: EngineOrder): void {
    this.orders.set(order.orderId, order);
    let list = this.ordersByAccount.get(order.account);
    if (list === undefined) {
      list = [];
      this.ordersByAccount.set(order.account, list);
    }
    list.push(order);
  }

  private market(symbol: string): Market {
    const m = findMarket(symbol);
    if (m === undefined) throw new Error(`unknown market ${symbol}`);
    return m;
  }

  /** The market maker's book: `levels` orders each side, level n at n spacings from the reference with n × levelQty. */
  private seed(): void {
    this.ledger.open(MARKET_MAKER_ACCOUNT, MARKET_MAKER_BALANCES, this.now());
    for (const m of MARKETS) {
      for (let n = 1; n <= m.levels; n++) {
        const offset = m.levelSpacing * BigInt(n);
        const quantity = m.levelQty * BigInt(n);
        for (const side of ["BUY", "SELL"] as const) {
          this.place(MARKET_MAKER_ACCOUNT, {
            market: m,
            side,
            type: "LIMIT",
            timeInForce: "GTC",
            price: side === "BUY" ? m.referencePrice - offset : m.referencePrice + offset,
            quantity,
            quoteOrderQty: null,
            clientOrderId: `mm-${m.symbol}-${side}-${n}`,
          });
        }
      }
    }
  }
}
