import type { Operation, OperationKind } from "../../contract/operations.js";
import type { OperationDecoder, RequestContext } from "../../contract/request.js";
import { type Denial, deny } from "../../errors/catalogue.js";
import { FieldReader, type Lookup, address, memo, orderCancel, orderPlace, orderTypes, sides, transfer, withdraw } from "../../operations/fields.js";
import { formLookup, formParams, isJsonType, messageLookup, queryAndJson } from "../../operations/params.js";
import { formDecode, isFormBody } from "./params.js";

/**
 * Binance requests as operations (docs/operations.md), read from the same text the signature
 * covers — the query string and the form body — with the dialect's own form decoding (params.ts).
 * A JSON object body is read too (Binance itself takes forms only; Binance-compatible upstreams
 * such as the demo exchange take both, and a natively signed request may carry one), its amounts
 * as strings.
 * A parameter sent twice, in one part or across both, is refused (OPERATION_PARAM_DUPLICATED), as
 * the dialect refuses a second `timestamp` or `signature`: Binance itself answers -1101 for a
 * duplicate, and would take the query's value over the body's, so the gateway refuses rather than
 * read a request differently from the venue.
 *
 * - `POST /api/v3/order` (order.place): symbol, side (BUY | SELL), type, quantity, quoteOrderQty,
 *   price. LIMIT, STOP_LOSS_LIMIT, TAKE_PROFIT_LIMIT and LIMIT_MAKER need quantity and price;
 *   MARKET needs quantity or quoteOrderQty (not both); STOP_LOSS and TAKE_PROFIT need quantity.
 *   The price of an order type that has no limit price is not read (null).
 * - `DELETE /api/v3/order` (order.cancel): symbol, orderId or origClientOrderId.
 * - `POST /sapi/v1/capital/withdraw/apply` (withdraw): coin, network, address, addressTag, amount.
 * - `POST /sapi/v1/asset/transfer` (transfer): type (FROM_TO, e.g. MAIN_UMFUTURE), asset, amount.
 */

const SIDES = sides("BUY", "SELL");
const TYPES = orderTypes(["LIMIT", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT", "LIMIT_MAKER"]);
/** Order types with a limit price. */
const PRICED: ReadonlySet<string> = new Set(["limit", "stop_loss_limit", "take_profit_limit", "limit_maker"]);
const ORDER_ID_RE = /^[0-9]{1,20}$/;

/**
 * Binance's wallet names in universal transfer types (`MAIN_UMFUTURE`, `PORTFOLIO_MARGIN_MAIN`…):
 * a type is split where both halves are known names, else at its first underscore.
 */
const WALLETS: ReadonlySet<string> = new Set([
  "MAIN", "UMFUTURE", "CMFUTURE", "MARGIN", "ISOLATEDMARGIN", "FUNDING", "OPTION", "PORTFOLIO_MARGIN", "C2C", "MINING",
]);
const TRANSFER_TYPE_RE = /^[A-Z][A-Z_]{0,63}$/;

function splitTransferType(type: string): readonly [string, string] | null {
  let first = -1;
  for (let i = type.indexOf("_"); i > 0; i = type.indexOf("_", i + 1)) {
    if (first < 0) first = i;
    if (WALLETS.has(type.slice(0, i)) && WALLETS.has(type.slice(i + 1))) return [type.slice(0, i), type.slice(i + 1)];
  }
  if (first < 0 || first === type.length - 1) return null;
  return [type.slice(0, first), type.slice(first + 1)];
}

/** The query string and the body: form-encoded (Binance's), or a JSON object (Binance-compatible upstreams, the demo). */
function params(ctx: RequestContext): Lookup | Denial {
  const contentType = ctx.headers["content-type"];
  if (ctx.body.length > 0 && !isFormBody(contentType)) {
    if (!isJsonType(contentType)) return deny("OPERATION_MALFORMED", "Binance reads form-encoded (or JSON object) bodies");
    return queryAndJson(ctx.query, ctx.body, formDecode);
  }
  const form = formParams(ctx.query, ctx.body.length > 0 ? ctx.body.toString("latin1") : null, formDecode);
  return form instanceof Map ? formLookup(form) : form;
}

function decode(ctx: RequestContext, kind: OperationKind): Operation | Denial {
  const lookup = params(ctx);
  if (typeof lookup !== "function") return lookup;
  return decodeParams(lookup, kind);
}

/** Reads `kind` from Binance's parameters (REST: query and form body; WebSocket API: a message's params). */
function decodeParams(lookup: Lookup, kind: OperationKind): Operation | Denial {
  const r = new FieldReader(lookup);
  let op: Operation | null = null;
  switch (kind) {
    case "order.place": {
      const symbol = r.symbol("symbol");
      const side = r.oneOf("side", SIDES);
      const type = r.oneOf("type", TYPES);
      let quantity = null;
      let quoteQuantity = null;
      if (type === "market") {
        r.exclusive("quantity", "quoteOrderQty");
        if (!r.has("quantity") && !r.has("quoteOrderQty")) r.missing("quantity");
        quantity = r.amount("quantity", false);
        quoteQuantity = r.amount("quoteOrderQty", false);
      } else if (type !== null) {
        quantity = r.amount("quantity", true);
      }
      const priced = type !== null && PRICED.has(type);
      const price = priced ? r.amount("price", true) : null;
      if (symbol !== null && side !== null && type !== null) op = orderPlace(symbol, side, type, quantity, price, quoteQuantity);
      break;
    }
    case "order.cancel": {
      const symbol = r.symbol("symbol");
      const orderId = r.text("orderId", false, 20);
      if (orderId !== null && !ORDER_ID_RE.test(orderId)) r.invalid("orderId", "must be an integer");
      const clientOrderId = r.text("origClientOrderId", false, 36);
      op = orderCancel(r, symbol, orderId === null ? [] : [orderId], clientOrderId, "orderId, origClientOrderId");
      break;
    }
    case "withdraw": {
      const coin = r.asset("coin");
      const network = r.text("network", false, 64);
      const to = address(r, "address");
      const tag = memo(r, "addressTag");
      const amount = r.amount("amount", true);
      if (coin !== null && to !== null && amount !== null) op = withdraw(coin, amount, to, null, network, tag);
      break;
    }
    case "transfer": {
      const type = r.text("type", true, 64);
      const asset = r.asset("asset");
      const amount = r.amount("amount", true);
      const wallets = type !== null && TRANSFER_TYPE_RE.test(type) ? splitTransferType(type) : null;
      if (type !== null && wallets === null) r.invalid("type", "must be FROM_TO (e.g. MAIN_UMFUTURE)");
      if (wallets !== null && asset !== null && amount !== null) op = transfer(asset, amount, wallets[0], wallets[1]);
      break;
    }
    default:
      return deny("INTERNAL", `no Binance decoding of ${kind}`);
  }
  if (r.denial !== null) return r.denial;
  return op ?? deny("INTERNAL", `Binance ${kind} decoded nothing`);
}

export const binanceOperations: OperationDecoder = {
  kinds: new Set<OperationKind>(["order.place", "order.cancel", "withdraw", "transfer", "other"]),
  decode,
  // The WebSocket API's `order.place` / `order.cancel` take the REST twin's parameters.
  decodeMessage: (params, kind) => decodeParams(messageLookup(params), kind),
};
