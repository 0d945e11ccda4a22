import type { BehaviourEvent } from "../contract/behaviour.js";
import type { Decimal } from "../contract/operations.js";
import type { ReferencePrices } from "../contract/prices.js";
import type { RequestContext } from "../contract/request.js";
import { AUTH_FAILURES } from "../errors/catalogue.js";
import type { ParsedIp } from "../net/ip.js";
import { addressGroup, formatIp } from "../net/ip.js";


/** A decimal as a float: statistics, not accounting. */
function float(value: Decimal): number {
  return Number(value.coefficient) / 10 ** value.scale;
}

/** `amount` × a reference price, or null when either is unknown or the product is not finite. */
function valued(amount: number | null, price: Decimal | undefined): number | null {
  if (amount === null || price === undefined) return null;
  const value = amount * float(price);
  return Number.isFinite(value) ? value : null;
}

/** The network prefix of an address: IPv4 /24, IPv6 /48. */
export function networkOf(ip: ParsedIp): string {
  if (ip.v === 4) return `${formatIp({ v: 4, n: (ip.n & 0xffffff00) >>> 0 })}/24`;
  return addressGroup(ip, 48);
}

/**
 * The behaviour event of a decided request (contract/behaviour.ts), or null when no key was found
 * (nothing to attribute it to). Called off the request path. `outcome` as the lifecycle ended it.
 * `prices`: to value orders (symbol price) and withdrawals (asset value); may be null.
 *
 * A session-signed request is attributed to its API key (`ctx.key.record` is the API key's record).
 */
export function behaviourEvent(ctx: RequestContext, outcome: BehaviourEvent["outcome"], prices: ReferencePrices | null): BehaviourEvent | null {
  const key = ctx.key;
  if (key === null) return null;
  const record = key.record;
  const op = ctx.operation;
  let symbol: string | null = null;
  let side: BehaviourEvent["side"] = null;
  let quantity: number | null = null;
  let notional: number | null = null;
  let asset: string | null = null;
  let amount: number | null = null;
  let value: number | null = null;
  let destination: string | null = null;
  if (op !== null) {
    switch (op.kind) {
      case "order.place":
        symbol = op.symbol;
        side = op.side;
        quantity = op.quantity === null ? null : float(op.quantity);
        notional = op.notional === null ? valued(quantity, prices?.symbol(op.symbol)) : float(op.notional);
        break;
      case "order.cancel":
        symbol = op.symbol;
        break;
      case "withdraw":
        asset = op.asset;
        amount = float(op.amount);
        value = valued(amount, prices?.asset(op.asset));
        destination = op.address ?? (op.addressName === null ? null : `name:${op.addressName}`);
        break;
      case "transfer":
        asset = op.asset;
        amount = float(op.amount);
        value = valued(amount, prices?.asset(op.asset));
        break;
      default:
        break;
    }
  }
  const code: string | null = outcome === "refused" ? (ctx.denial?.code ?? null) : outcome === "failed" ? ctx.outcome : null;
  const denial = ctx.denial;
  const client = ctx.client;
  return {
    keyId: record.id,
    account: record.account,
    at: ctx.now,
    keyCreatedAt: record.createdAt,
    keyLastUsedAt: record.lastUsedAt,
    route: ctx.route?.id ?? "",
    operation: op === null ? null : op.kind,
    symbol,
    side,
    quantity: quantity !== null && Number.isFinite(quantity) ? quantity : null,
    notional: notional !== null && Number.isFinite(notional) ? notional : null,
    asset,
    amount: amount !== null && Number.isFinite(amount) ? amount : null,
    value,
    destination,
    client: client === null ? null : client.group,
    network: client === null ? null : networkOf(client.ip),
    outcome,
    code,
    // Of the authentication failures, those on a key that was found (the event exists only for one).
    authFailure: outcome === "refused" && denial !== null && AUTH_FAILURES.has(denial.code),
    verified: ctx.verified,
  };
}
