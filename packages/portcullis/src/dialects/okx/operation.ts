import type { Operation, OperationKind } from "../../contract/operations.js";
import type { OperationDecoder, RequestContext } from "../../contract/request.js";
import { type Denial, deny } from "../../errors/catalogue.js";
import { FieldReader, address, orderCancel, orderPlace, orderTypes, sides, transfer, withdraw } from "../../operations/fields.js";
import { jsonBodyParams } from "../../operations/params.js";

/**
 * OKX requests as operations (docs/operations.md), read from the JSON body the signature covers
 * (OK-ACCESS-SIGN: timestamp + method + path + body). A member sent twice is refused; amounts are
 * OKX's decimal strings.
 *
 * - `POST /api/v5/trade/order` (order.place): instId, side (buy | sell), ordType, sz, px, tgtCcy.
 *   limit, post_only, fok, ioc, mmp, mmp_and_post_only and op_fok need px; market and
 *   optimal_limit_ioc have no price. With tgtCcy `quote_ccy` (spot market orders) sz is the quote
 *   amount (quoteQuantity). For derivatives sz counts contracts.
 * - `POST /api/v5/trade/cancel-order` (order.cancel): instId, ordId or clOrdId.
 * - `POST /api/v5/asset/withdrawal` (withdraw): ccy, amt, dest (3 internal, 4 on-chain), toAddr,
 *   chain. OKX writes a memo into toAddr (`address:memo`); it is kept there, and `tag` is null.
 * - `POST /api/v5/asset/transfer` (transfer): ccy, amt, from, to (6 funding, 18 trading).
 */

const SIDES = sides("buy", "sell");
const TYPES = orderTypes(["market", "limit", "post_only", "fok", "ioc", "optimal_limit_ioc", "mmp", "mmp_and_post_only", "op_fok"]);
const PRICED: ReadonlySet<string> = new Set(["limit", "post_only", "fok", "ioc", "mmp", "mmp_and_post_only", "op_fok"]);
const TARGET = new Map([
  ["base_ccy", false],
  ["quote_ccy", true],
]);
const DESTINATIONS = new Map([
  ["3", "3"],
  ["4", "4"],
]);

function decode(ctx: RequestContext, kind: OperationKind): Operation | Denial {
  const lookup = jsonBodyParams(ctx.body, ctx.headers["content-type"]);
  if (typeof lookup !== "function") return lookup;
  const r = new FieldReader(lookup);
  let op: Operation | null = null;
  switch (kind) {
    case "order.place": {
      const instId = r.symbol("instId");
      const side = r.oneOf("side", SIDES);
      const type = r.oneOf("ordType", TYPES);
      const sz = r.amount("sz", true);
      const inQuote = r.oneOf("tgtCcy", TARGET, false) === true;
      const price = type !== null && PRICED.has(type) ? r.amount("px", true) : null;
      if (instId !== null && side !== null && type !== null) {
        op = inQuote ? orderPlace(instId, side, type, null, price, sz) : orderPlace(instId, side, type, sz, price, null);
      }
      break;
    }
    case "order.cancel": {
      const instId = r.symbol("instId");
      const ordId = r.text("ordId", false, 64);
      const clOrdId = r.text("clOrdId", false, 64);
      op = orderCancel(r, instId, ordId === null ? [] : [ordId], clOrdId, "ordId, clOrdId");
      break;
    }
    case "withdraw": {
      const ccy = r.asset("ccy");
      const amt = r.amount("amt", true);
      r.oneOf("dest", DESTINATIONS);
      const toAddr = address(r, "toAddr");
      const chain = r.text("chain", false, 64);
      if (ccy !== null && amt !== null && toAddr !== null) op = withdraw(ccy, amt, toAddr, null, chain, null);
      break;
    }
    case "transfer": {
      const ccy = r.asset("ccy");
      const amt = r.amount("amt", true);
      const from = r.text("from", true, 32);
      const to = r.text("to", true, 32);
      if (ccy !== null && amt !== null && from !== null && to !== null) op = transfer(ccy, amt, from, to);
      break;
    }
    default:
      return deny("INTERNAL", `no OKX decoding of ${kind}`);
  }
  if (r.denial !== null) return r.denial;
  return op ?? deny("INTERNAL", `OKX ${kind} decoded nothing`);
}

export const okxOperations: OperationDecoder = {
  kinds: new Set<OperationKind>(["order.place", "order.cancel", "withdraw", "transfer", "other"]),
  decode,
};
