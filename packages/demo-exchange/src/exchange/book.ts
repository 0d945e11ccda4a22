/**
 * One symbol's order book: resting LIMIT orders in price-time priority. Bids are kept best
 * (highest) first, asks best (lowest) first; within a price level orders are first in, first out.
 * The book holds the engine's Order objects and reads their remaining quantity; it never touches
 * balances.
 */
import { formatDecimal } from "./decimal.js";
import { remaining, type Order, type Side } from "./orders.js";

interface Level<T extends Order> {
  readonly price: bigint;
  readonly orders: T[];
}

export class OrderBook<T extends Order = Order> {
  private readonly bids: Level<T>[] = [];
  private readonly asks: Level<T>[] = [];
  /** Binance's lastUpdateId: bumped on every change to the book. */
  private updateId = 1;

  get lastUpdateId(): number {
    return this.updateId;
  }

  /** Adds an order at the back of its price level. */
  rest(order: T): void {
    const levels = this.side(order.side);
    const better = order.side === "BUY" ? (a: bigint, b: bigint) => a > b : (a: bigint, b: bigint) => a < b;
    let i = 0;
    while (i < levels.length) {
      const level = levels[i];
      if (level === undefined || !better(level.price, order.price)) break;
      i++;
    }
    const at = levels[i];
    if (at?.price === order.price) at.orders.push(order);
    else levels.splice(i, 0, { price: order.price, orders: [order] });
    this.updateId++;
  }

  /** Removes an order; false if it was not on the book. */
  remove(order: T): boolean {
    const levels = this.side(order.side);
    const index = levels.findIndex((l) => l.price === order.price);
    const level = levels[index];
    if (level === undefined) return false;
    const at = level.orders.indexOf(order);
    if (at < 0) return false;
    level.orders.splice(at, 1);
    if (level.orders.length === 0) levels.splice(index, 1);
    this.updateId++;
    return true;
  }

  /** Records a change to a resting order's quantity (a partial fill). */
  touch(): void {
    this.updateId++;
  }

  /** Resting orders on one side, in priority order (best price first, then oldest first). */
  *orders(side: Side): Generator<T> {
    for (const level of this.side(side)) yield* level.orders;
  }

  /** Aggregated levels, best first: [[price, quantity], ...] as Binance text. */
  depth(limit: number): { lastUpdateId: number; bids: [string, string][]; asks: [string, string][] } {
    const view = (levels: readonly Level<T>[]): [string, string][] =>
      levels.slice(0, limit).map((l) => [formatDecimal(l.price), formatDecimal(l.orders.reduce((sum, o) => sum + remaining(o), 0n))]);
    return { lastUpdateId: this.updateId, bids: view(this.bids), asks: view(this.asks) };
  }

  private side(side: Side): Level<T>[] {
    return side === "BUY" ? this.bids : this.asks;
  }
}
