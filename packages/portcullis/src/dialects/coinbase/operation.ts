import type { Operation, OperationKind } from "../../contract/operations.js";
import type { OperationDecoder, RequestContext } from "../../contract/request.js";
import { type Denial, deny } from "../../errors/catalogue.js";
import { FieldReader, address, isToken, memo, orderCancel, orderPlace, sides, transfer, withdraw } from "../../operations/fields.js";
import { jsonBodyParams } from "../../operations/params.js";

/**
 * Coinbase requests as operations (docs/operations.md), read from the JSON body. (Coinbase's JWT
 * covers the method, host and path, not the body: the body a Coinbase-signed request carries is
 * authenticated only by the connection it came on. A native RFC 9421 signature covers it through
 * Content-Digest.) A member sent twice is refused; amounts are Coinbase's decimal strings.
 *
 * - `POST /api/v3/brokerage/orders` (order.place): product_id, side (BUY | SELL),
 *   order_configuration with exactly one of market_market_ioc, market_market_fok (quote_size or
 *   base_size), limit_limit_gtc, limit_limit_gtd, limit_limit_fok, sor_limit_ioc,
 *   stop_limit_stop_limit_gtc, stop_limit_stop_limit_gtd, trigger_bracket_gtc,
 *   trigger_bracket_gtd (base_size or quote_size, and limit_price). The type is the
 *   configuration's name.
 * - `POST /api/v3/brokerage/orders/batch_cancel` (order.cancel): order_ids (1 to 100 ids).
 * - `POST /v2/accounts/:account_id/transactions` with type `send` (withdraw): to, amount,
 *   currency, network, destination_tag.
 * - `POST /api/v3/brokerage/portfolios/move_funds` (transfer): funds {value, currency},
 *   source_portfolio_uuid, target_portfolio_uuid.
 */

const SIDES = sides("BUY", "SELL");
/** Order configurations, and whether each has a limit price. */
const CONFIGURATIONS: ReadonlyMap<string, boolean> = new Map([
  ["market_market_ioc", false],
  ["market_market_fok", false],
  ["limit_limit_gtc", true],
  ["limit_limit_gtd", true],
  ["limit_limit_fok", true],
  ["sor_limit_ioc", true],
  ["stop_limit_stop_limit_gtc", true],
  ["stop_limit_stop_limit_gtd", true],
  ["trigger_bracket_gtc", true],
  ["trigger_bracket_gtd", true],
]);
const SEND = new Map([["send", "send"]]);
const MAX_CANCEL_IDS = 100;

function orderConfiguration(r: FieldReader): { type: string; sizes: FieldReader } | null {
  const value = r.raw("order_configuration");
  if (value === undefined) {
    r.missing("order_configuration");
    return null;
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    r.invalid("order_configuration", "must be an object");
    return null;
  }
  const names = Object.keys(value);
  const type = names[0];
  if (names.length !== 1 || type === undefined || !CONFIGURATIONS.has(type)) {
    r.invalid("order_configuration", `must hold exactly one of ${[...CONFIGURATIONS.keys()].join(", ")}`);
    return null;
  }
  const sizes = r.object("order_configuration")?.object(type) ?? null;
  return sizes === null ? null : { type, sizes };
}

function decode(ctx: RequestContext, kind: OperationKind): Operation | Denial {
  const lookup = jsonBodyParams(ctx.body, ctx.headers["content-type"]);
  if (typeof lookup !== "function") return lookup;
  const r = new FieldReader(lookup);
  let op: Operation | null = null;
  switch (kind) {
    case "order.place": {
      const product = r.symbol("product_id");
      const side = r.oneOf("side", SIDES);
      const config = orderConfiguration(r);
      if (config !== null) {
        const { type, sizes } = config;
        sizes.exclusive("base_size", "quote_size");
        if (!sizes.has("base_size") && !sizes.has("quote_size")) sizes.missing("base_size");
        const base = sizes.amount("base_size", false);
        const quote = sizes.amount("quote_size", false);
        const price = CONFIGURATIONS.get(type) === true ? sizes.amount("limit_price", true) : null;
        if (product !== null && side !== null) op = orderPlace(product, side, type, base, price, quote);
      }
      break;
    }
    case "order.cancel": {
      const ids = r.raw("order_ids");
      if (ids === undefined) r.missing("order_ids");
      else if (!Array.isArray(ids) || ids.length === 0 || ids.length > MAX_CANCEL_IDS) {
        r.invalid("order_ids", `must be a list of 1 to ${MAX_CANCEL_IDS} order ids`);
      } else {
        const bad = ids.findIndex((id) => !isToken(id, 64));
        if (bad >= 0) r.invalid(`order_ids[${bad}]`, "must be an order id (a string of printable ASCII)");
        else op = orderCancel(r, null, ids as string[], null, "order_ids");
      }
      break;
    }
    case "withdraw": {
      r.oneOf("type", SEND);
      const to = address(r, "to");
      const amount = r.amount("amount", true);
      const currency = r.asset("currency");
      const network = r.text("network", false, 64);
      const tag = memo(r, "destination_tag");
      if (to !== null && amount !== null && currency !== null) op = withdraw(currency, amount, to, null, network, tag);
      break;
    }
    case "transfer": {
      const funds = r.object("funds");
      const value = funds?.amount("value", true) ?? null;
      const currency = funds?.asset("currency") ?? null;
      const from = r.text("source_portfolio_uuid", true, 64);
      const to = r.text("target_portfolio_uuid", true, 64);
      if (value !== null && currency !== null && from !== null && to !== null) op = transfer(currency, value, from, to);
      break;
    }
    default:
      return deny("INTERNAL", `no Coinbase decoding of ${kind}`);
  }
  if (r.denial !== null) return r.denial;
  return op ?? deny("INTERNAL", `Coinbase ${kind} decoded nothing`);
}

export const coinbaseOperations: OperationDecoder = {
  kinds: new Set<OperationKind>(["order.place", "order.cancel", "withdraw", "transfer", "other"]),
  decode,
};
