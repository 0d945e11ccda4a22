import type { Operation, OperationKind } from "../../contract/operations.js";
import type { OperationDecoder, RequestContext } from "../../contract/request.js";
import { type Denial, deny } from "../../errors/catalogue.js";
import { FieldReader, address, memo, orderCancel, orderPlace, orderTypes, sides, transfer, withdraw } from "../../operations/fields.js";
import { jsonBodyParams } from "../../operations/params.js";

/**
 * Bybit v5 requests as operations (docs/operations.md), read from the JSON body the signature
 * covers (X-BAPI-SIGN: timestamp + key + recv_window + body). A member sent twice is refused;
 * amounts are Bybit's decimal strings.
 *
 * - `POST /v5/order/create` (order.place): category (spot, linear, inverse, option), symbol, side
 *   (Buy | Sell), orderType (Market | Limit), qty, price, marketUnit. A Limit order needs price; a
 *   Market order has none. With marketUnit `quoteCoin` (spot market orders) qty is the quote
 *   amount (quoteQuantity).
 * - `POST /v5/order/cancel` (order.cancel): category, symbol, orderId or orderLinkId.
 * - `POST /v5/asset/withdraw/create` (withdraw): coin, chain, address, tag, amount.
 * - `POST /v5/asset/transfer/inter-transfer` (transfer): coin, amount, fromAccountType, toAccountType.
 */

const SIDES = sides("Buy", "Sell");
const TYPES = orderTypes(["Market", "Limit"]);
const CATEGORIES = new Map(["spot", "linear", "inverse", "option"].map((c) => [c, c]));
const UNITS = new Map([
  ["baseCoin", false],
  ["quoteCoin", true],
]);

function decode(ctx: RequestContext, kind: OperationKind): Operation | Denial {
  const lookup = jsonBodyParams(ctx.body, ctx.headers["content-type"]);
  if (typeof lookup !== "function") return lookup;
  const r = new FieldReader(lookup);
  let op: Operation | null = null;
  switch (kind) {
    case "order.place": {
      r.oneOf("category", CATEGORIES);
      const symbol = r.symbol("symbol");
      const side = r.oneOf("side", SIDES);
      const type = r.oneOf("orderType", TYPES);
      const qty = r.amount("qty", true);
      const inQuote = r.oneOf("marketUnit", UNITS, false) === true;
      const price = type === "limit" ? r.amount("price", true) : null;
      if (symbol !== null && side !== null && type !== null) {
        op = inQuote ? orderPlace(symbol, side, type, null, price, qty) : orderPlace(symbol, side, type, qty, price, null);
      }
      break;
    }
    case "order.cancel": {
      r.oneOf("category", CATEGORIES);
      const symbol = r.symbol("symbol");
      const orderId = r.text("orderId", false, 64);
      const orderLinkId = r.text("orderLinkId", false, 64);
      op = orderCancel(r, symbol, orderId === null ? [] : [orderId], orderLinkId, "orderId, orderLinkId");
      break;
    }
    case "withdraw": {
      const coin = r.asset("coin");
      const chain = r.text("chain", false, 64);
      const to = address(r, "address");
      const tag = memo(r, "tag");
      const amount = r.amount("amount", true);
      if (coin !== null && to !== null && amount !== null) op = withdraw(coin, amount, to, null, chain, tag);
      break;
    }
    case "transfer": {
      const coin = r.asset("coin");
      const amount = r.amount("amount", true);
      const from = r.text("fromAccountType", true, 32);
      const to = r.text("toAccountType", true, 32);
      if (coin !== null && amount !== null && from !== null && to !== null) op = transfer(coin, amount, from, to);
      break;
    }
    default:
      return deny("INTERNAL", `no Bybit decoding of ${kind}`);
  }
  if (r.denial !== null) return r.denial;
  return op ?? deny("INTERNAL", `Bybit ${kind} decoded nothing`);
}

export const bybitOperations: OperationDecoder = {
  kinds: new Set<OperationKind>(["order.place", "order.cancel", "withdraw", "transfer", "other"]),
  decode,
};
