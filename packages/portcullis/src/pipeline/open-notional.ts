import type { ReferencePrices } from "../contract/prices.js";
import type { RequestContext } from "../contract/request.js";
import { type Denial, deny } from "../errors/catalogue.js";
import type { Logger } from "../log/logger.js";
import { decimalText } from "../contract/operations.js";
import { ledgerSymbol, ledgerText, ledgerUnits, orderNotional, readCancelAnswer, readPlaceAnswer } from "../operations/open-orders.js";
import type { OpenOrderLedger } from "../storage/types.js";

/** Reservations age out after a day by default: the gateway does not see resting orders fill. */
export const DEFAULT_RESERVATION_TTL_MS = 86_400_000;
/** Reservations a key may hold at once by default (one more order is refused, nothing grows). */
export const DEFAULT_MAX_OPEN_ORDERS = 1000;

export interface OpenNotionalOptions {
  /** The hot store's ledger; null: the store keeps none, and a ledgered order fails closed. */
  readonly ledger: OpenOrderLedger | null;
  readonly prices: ReferencePrices | null;
  readonly ttlMs?: number;
  readonly maxOpenOrders?: number;
  readonly logger?: Logger | null;
}

/**
 * The maxOpenNotional guardrail's step of the lifecycle (docs/guardrails.md, "Open notional").
 *
 * `begin` runs after the pipeline allowed a request and before stage 10 may hold it: only a key
 * with the guardrail, on an `order.place` or `order.cancel`, pays anything (one field check for
 * every other request). A place reserves its notional in the key's ledger, or is refused
 * GUARDRAIL_OPEN_NOTIONAL; since every stage before it already allowed the request, no refusal
 * leaves a reservation behind, and a refusal after it (stage 10) releases it (`abandon`).
 *
 * `settle` reads what the upstream answered: a refusal, a failure to forward, or an order that is
 * already done releases the reservation; otherwise the venue's order ids are bound to it, so a
 * later cancel through the gateway (its `settle`) releases it. The gateway settles before it
 * writes the answer, so a client that saw its cancel answered finds the room already free.
 * A settlement that fails (the store down) is logged: the reservation then ages out (fail closed).
 */
export class OpenNotional {
  private readonly ledger: OpenOrderLedger | null;
  private readonly prices: ReferencePrices | null;
  readonly ttlMs: number;
  readonly maxOpenOrders: number;
  private readonly logger: Logger | null;

  constructor(options: OpenNotionalOptions) {
    this.ledger = options.ledger;
    this.prices = options.prices;
    this.ttlMs = options.ttlMs ?? DEFAULT_RESERVATION_TTL_MS;
    this.maxOpenOrders = options.maxOpenOrders ?? DEFAULT_MAX_OPEN_ORDERS;
    this.logger = options.logger ?? null;
    if (!Number.isSafeInteger(this.ttlMs) || this.ttlMs < 1000) throw new TypeError("the reservation TTL must be an integer of at least 1000 ms");
    if (!Number.isSafeInteger(this.maxOpenOrders) || this.maxOpenOrders < 1) throw new TypeError("maxOpenOrders must be a positive integer");
  }

  /** Reserves an allowed order's notional (undefined: go on), or refuses it. */
  begin(ctx: RequestContext): Denial | undefined | Promise<Denial | undefined> {
    const key = ctx.key;
    const op = ctx.operation;
    if (key === null || op === null) return undefined;
    const cap = key.guardrails?.maxOpenNotional ?? null;
    if (cap === null) return undefined;
    const keyId = key.record.id;
    if (op.kind === "order.cancel") {
      ctx.openOrder = { kind: "cancel", keyId, id: null, settled: false };
      return undefined;
    }
    if (op.kind !== "order.place") return undefined;
    const notional = orderNotional(op, this.prices);
    if ("code" in notional) return notional;
    const ledger = this.ledger;
    if (ledger === null) return deny("HOT_STORE_UNAVAILABLE", "the hot store keeps no open-notional ledger (maxOpenNotional)");
    const amount = ledgerUnits(notional, "up");
    const capUnits = ledgerUnits(cap, "down");
    const id = ctx.requestId;
    const reserving = (async (): Promise<Denial | undefined> => {
      let result;
      try {
        result = await ledger.reserve({ keyId, id, amount, cap: capUnits, symbol: ledgerSymbol(op.symbol), now: ctx.now, expiresAt: ctx.now + this.ttlMs, maxEntries: this.maxOpenOrders });
      } catch (err) {
        return deny("HOT_STORE_UNAVAILABLE", `open-notional ledger: ${err instanceof Error ? err.message : String(err)}`);
      }
      if (result.ok) {
        ctx.openOrder = { kind: "place", keyId, id, settled: false };
        return undefined;
      }
      if (result.reason === "full") {
        return deny("GUARDRAIL_OPEN_NOTIONAL", `the key already has ${this.maxOpenOrders} open orders in the ledger (the most it keeps); open notional ${ledgerText(result.open)}, maxOpenNotional ${decimalText(cap)}`);
      }
      return deny("GUARDRAIL_OPEN_NOTIONAL", `open notional ${ledgerText(result.open)} + order ${ledgerText(amount)} = ${ledgerText(result.open + amount)} above maxOpenNotional ${decimalText(cap)}`);
    })();
    return reserving;
  }

  /** A request refused after `begin` (by stage 10): its reservation goes. */
  async abandon(ctx: RequestContext): Promise<void> {
    const t = ctx.openOrder;
    if (t === null || t.settled) return;
    t.settled = true;
    if (t.kind === "place" && t.id !== null) await this.releaseQuietly(t.keyId, t.id, ctx, "refused after reservation");
  }

  /**
   * What the upstream answered (`status` and the body read, or null when the surface does not see
   * the answer), or `failed`: nothing was answered (the forward failed). Once per request.
   */
  async settle(ctx: RequestContext, answer: { readonly status: number; readonly body: Buffer | null } | null, failed: boolean): Promise<void> {
    const t = ctx.openOrder;
    if (t === null || t.settled) return;
    t.settled = true;
    const ledger = this.ledger;
    if (ledger === null) return;
    const op = ctx.operation;
    try {
      if (t.kind === "place") {
        if (t.id === null) return;
        if (failed) {
          await this.releaseQuietly(t.keyId, t.id, ctx, "the forward failed");
          return;
        }
        if (answer === null) return;
        const reading = readPlaceAnswer(answer.status, answer.body);
        if (reading.release) await this.releaseQuietly(t.keyId, t.id, ctx, reading.why);
        else if (reading.refs.length > 0) await ledger.bind(t.keyId, t.id, reading.refs);
        return;
      }
      if (failed || answer === null || op === null || op.kind !== "order.cancel") return;
      const refs = readCancelAnswer(op, answer.status, answer.body);
      if (refs.length > 0) await ledger.releaseOrders(t.keyId, op.symbol === null ? null : ledgerSymbol(op.symbol), refs, ctx.now);
    } catch (err) {
      this.logger?.warn({ requestId: ctx.requestId, keyId: t.keyId, err }, "open-notional ledger: settling failed (the reservation ages out)");
    }
  }

  private async releaseQuietly(keyId: string, id: string, ctx: RequestContext, why: string): Promise<void> {
    try {
      await this.ledger?.release(keyId, id);
    } catch (err) {
      this.logger?.warn({ requestId: ctx.requestId, keyId, why, err }, "open-notional ledger: release failed (the reservation ages out)");
    }
  }
}
