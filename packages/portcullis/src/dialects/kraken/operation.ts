import type { Operation, OperationKind } from "../../contract/operations.js";
import type { OperationDecoder, RequestContext } from "../../contract/request.js";
import { type Denial, deny } from "../../errors/catalogue.js";
import { FieldReader, type Lookup, address, orderCancel, orderPlace, orderTypes, sides, transfer, withdraw } from "../../operations/fields.js";
import { formDecode, formLookup, formParams, readJsonObject } from "../../operations/params.js";
import { bodyKind } from "./nonce.js";

/**
 * Kraken requests as operations (docs/operations.md), read from the POST data the signature
 * covers (API-Sign hashes nonce + POST data), form-encoded or JSON as the Content-Type says — the
 * same choice the dialect's nonce reading makes (nonce.ts). A parameter sent twice is refused.
 *
 * - `AddOrder` (order.place): pair, type (buy | sell), ordertype, volume, price, price2, oflags.
 *   The limit price is `price` for limit and iceberg orders and `price2` for stop-loss-limit and
 *   take-profit-limit (whose `price` is the trigger); other types have none. With `viqc` in
 *   `oflags` the volume is in the quote currency (quoteQuantity).
 * - `CancelOrder` (order.cancel): txid (an order id, or the client's userref / cl_ord_id), cl_ord_id.
 * - `Withdraw` (withdraw): asset, key (the saved withdrawal address's name), amount, address (optional).
 * - `WalletTransfer` (transfer): asset, from, to, amount.
 */

const SIDES = sides("buy", "sell");
const TYPES = orderTypes([
  "market",
  "limit",
  "iceberg",
  "stop-loss",
  "take-profit",
  "stop-loss-limit",
  "take-profit-limit",
  "trailing-stop",
  "trailing-stop-limit",
  "settle-position",
]);
/** Where each order type's limit price is, if it has one. */
const LIMIT_PRICE: ReadonlyMap<string, string> = new Map([
  ["limit", "price"],
  ["iceberg", "price"],
  ["stop-loss-limit", "price2"],
  ["take-profit-limit", "price2"],
]);
const OFLAGS_RE = /^[a-z]+(,[a-z]+)*$/;

function params(ctx: RequestContext): Lookup | Denial {
  if (ctx.body.length === 0) return deny("OPERATION_MALFORMED", "Kraken operations are in the POST data");
  const kind = bodyKind(ctx.headers["content-type"]);
  if (kind === "json") return readJsonObject(ctx.body);
  if (kind === null) return deny("OPERATION_MALFORMED", "Kraken reads form-encoded or JSON bodies");
  const form = formParams(null, ctx.body.toString("latin1"), formDecode);
  return form instanceof Map ? formLookup(form) : form;
}

function decode(ctx: RequestContext, kind: OperationKind): Operation | Denial {
  const lookup = params(ctx);
  if (typeof lookup !== "function") return lookup;
  const r = new FieldReader(lookup);
  let op: Operation | null = null;
  switch (kind) {
    case "order.place": {
      const pair = r.symbol("pair");
      const side = r.oneOf("type", SIDES);
      const type = r.oneOf("ordertype", TYPES);
      const volume = r.amount("volume", true);
      const oflags = r.text("oflags", false, 128);
      if (oflags !== null && !OFLAGS_RE.test(oflags)) r.invalid("oflags", "must be a comma-separated list of flags");
      const inQuote = oflags !== null && oflags.split(",").includes("viqc");
      const priceField = type === null ? undefined : LIMIT_PRICE.get(type);
      const price = priceField === undefined ? null : r.amount(priceField, true);
      if (pair !== null && side !== null && type !== null) {
        op = inQuote ? orderPlace(pair, side, type, null, price, volume) : orderPlace(pair, side, type, volume, price, null);
      }
      break;
    }
    case "order.cancel": {
      const txid = r.text("txid", false);
      const clientOrderId = r.text("cl_ord_id", false);
      op = orderCancel(r, null, txid === null ? [] : [txid], clientOrderId, "txid, cl_ord_id");
      break;
    }
    case "withdraw": {
      const asset = r.asset("asset");
      const key = r.text("key", true, 128, true);
      const amount = r.amount("amount", true);
      const to = address(r, "address", false);
      if (asset !== null && key !== null && amount !== null) op = withdraw(asset, amount, to, key, null, null);
      break;
    }
    case "transfer": {
      const asset = r.asset("asset");
      const from = r.text("from", true, 64, true);
      const to = r.text("to", true, 64, true);
      const amount = r.amount("amount", true);
      if (asset !== null && from !== null && to !== null && amount !== null) op = transfer(asset, amount, from, to);
      break;
    }
    default:
      return deny("INTERNAL", `no Kraken decoding of ${kind}`);
  }
  if (r.denial !== null) return r.denial;
  return op ?? deny("INTERNAL", `Kraken ${kind} decoded nothing`);
}

export const krakenOperations: OperationDecoder = {
  kinds: new Set<OperationKind>(["order.place", "order.cancel", "withdraw", "transfer", "other"]),
  decode,
};
