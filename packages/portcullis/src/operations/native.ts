import { OPERATION_KINDS, type Operation, type OperationKind } from "../contract/operations.js";
import type { OperationDecoder, RequestContext } from "../contract/request.js";
import { type Denial, deny } from "../errors/catalogue.js";
import { FieldReader, type Lookup, address, memo, orderCancel, orderPlace, sides, transfer, withdraw } from "./fields.js";
import { formLookup, formParams, isJsonType, messageLookup, readJsonObject } from "./params.js";

/**
 * The native operation shape (docs/operations.md), for routes without a venue dialect: a JSON
 * object body (Content-Type application/json), or — for a request without a body — the query
 * string's parameters, with the same names:
 *
 *   order.place   symbol, side (buy | sell), type (lower case: limit, market, …), quantity,
 *                 quoteQuantity, price
 *   order.cancel  symbol (optional), orderId or clientOrderId
 *   withdraw      asset, amount, address, network (optional), tag (optional)
 *   transfer      asset, amount, from, to
 *   key.*         keyId (optional)
 *
 * Amounts are decimal strings. Other members are the upstream's business and are not read; a
 * member sent twice is refused.
 */

const SIDES = sides("buy", "sell");
const TYPE_RE = /^[a-z][a-z0-9_]{0,31}$/;

/** The request's parameters in the native shape: a JSON body, or the query of a request without one. */
export function nativeParams(ctx: RequestContext): Lookup | Denial {
  if (ctx.body.length > 0) {
    if (!isJsonType(ctx.headers["content-type"])) return deny("OPERATION_MALFORMED", "a body must be application/json");
    return readJsonObject(ctx.body);
  }
  const params = formParams(ctx.query, null);
  return params instanceof Map ? formLookup(params) : params;
}

/** Reads `kind` in the native shape from `params`. */
export function decodeNative(params: Lookup, kind: OperationKind): Operation | Denial {
  const r = new FieldReader(params);
  let op: Operation | null = null;
  switch (kind) {
    case "order.place": {
      const symbol = r.symbol("symbol");
      const side = r.oneOf("side", SIDES);
      const type = r.text("type", true, 32);
      if (type !== null && !TYPE_RE.test(type)) r.invalid("type", "must be a lower-case order type (limit, market, …)");
      r.exclusive("quantity", "quoteQuantity");
      const quantity = r.amount("quantity", false);
      const quoteQuantity = r.amount("quoteQuantity", false);
      if (!r.has("quantity") && !r.has("quoteQuantity")) r.missing("quantity");
      if (type === "market" && r.has("price")) r.invalid("price", "is not sent with a market order");
      const price = r.amount("price", type === "limit");
      if (symbol !== null && side !== null && type !== null) op = orderPlace(symbol, side, type, quantity, price, quoteQuantity);
      break;
    }
    case "order.cancel": {
      const symbol = r.symbol("symbol", false);
      const orderId = r.text("orderId", false);
      const clientOrderId = r.text("clientOrderId", false);
      op = orderCancel(r, symbol, orderId === null ? [] : [orderId], clientOrderId, "orderId, clientOrderId");
      break;
    }
    case "withdraw": {
      const asset = r.asset("asset");
      const amount = r.amount("amount", true);
      const to = address(r, "address");
      const network = r.text("network", false, 64);
      const tag = memo(r, "tag");
      if (asset !== null && amount !== null && to !== null) op = withdraw(asset, amount, to, null, network, tag);
      break;
    }
    case "transfer": {
      const asset = r.asset("asset");
      const amount = r.amount("amount", true);
      const from = r.text("from", true, 64);
      const to = r.text("to", true, 64);
      if (asset !== null && amount !== null && from !== null && to !== null) op = transfer(asset, amount, from, to);
      break;
    }
    case "key.create":
    case "key.update":
    case "key.revoke": {
      const keyId = r.text("keyId", false);
      op = Object.freeze({ kind, keyId });
      break;
    }
    default:
      return deny("INTERNAL", `no native decoding of ${kind}`);
  }
  if (r.denial !== null) return r.denial;
  return op ?? deny("INTERNAL", `native ${kind} decoded nothing`);
}

export const nativeOperations: OperationDecoder = {
  kinds: new Set(OPERATION_KINDS),
  decode(ctx, kind) {
    const params = nativeParams(ctx);
    return typeof params === "function" ? decodeNative(params, kind) : params;
  },
  decodeMessage: (params, kind) => decodeNative(messageLookup(params), kind),
};
