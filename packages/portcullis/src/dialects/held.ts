import type { Dialect } from "../contract/keys.js";
import { type Operation, decimalText } from "../contract/operations.js";
import type { HeldTicket } from "../contract/policy.js";
import type { RenderedError } from "../contract/request.js";

/**
 * The answer to a held operation (docs/approvals.md). Natively: `202 {"operationId","state",
 * "required"}`. In a venue dialect, a held withdrawal or transfer answers the venue's normal
 * success shape with the operation id where the venue puts its own id — venues' withdrawals are
 * asynchronous anyway, so a bot that withdraws keeps working, and can look the id up later at
 * `GET /portcullis/v1/operations/{id}`:
 *
 *   Binance  withdraw  200 {"id":"<op>"}                 transfer 200 {"tranId":"<op>"}
 *   Kraken   withdraw  200 {"error":[],"result":{"refid":"<op>"}}   (WalletTransfer too)
 *   OKX      withdraw  200 {"code":"0","msg":"","data":[{"amt","wdId":"<op>","ccy","clientId":"","chain"}]}
 *            transfer  200 {"code":"0","msg":"","data":[{"transId":"<op>","ccy","clientId":"","from","amt","to"}]}
 *   Bybit    withdraw  200 {"retCode":0,"retMsg":"success","result":{"id":"<op>"},"retExtInfo":{},"time":…}
 *            transfer  200 {"retCode":0,"retMsg":"success","result":{"transferId":"<op>","status":"PENDING"},…}
 *
 * Anything else held (an order, a Coinbase request, a native one) answers natively.
 */
export function renderHeld(dialect: Dialect | null, ticket: HeldTicket, operation: Operation | null, now: number): RenderedError {
  const id = ticket.operationId;
  const venue = operation === null ? null : venueAnswer(dialect, id, operation, now);
  if (venue !== null) return { status: 200, body: JSON.stringify(venue) };
  return { status: 202, body: JSON.stringify(ticket) };
}

function venueAnswer(dialect: Dialect | null, id: string, op: Operation, now: number): unknown {
  if (op.kind !== "withdraw" && op.kind !== "transfer") return null;
  const amount = decimalText(op.amount);
  switch (dialect) {
    case "binance":
      return op.kind === "withdraw" ? { id } : { tranId: id };
    case "kraken":
      return { error: [], result: { refid: id } };
    case "okx":
      return op.kind === "withdraw"
        ? { code: "0", msg: "", data: [{ amt: amount, wdId: id, ccy: op.asset, clientId: "", chain: op.network ?? "" }] }
        : { code: "0", msg: "", data: [{ transId: id, ccy: op.asset, clientId: "", from: op.from, amt: amount, to: op.to }] };
    case "bybit":
      return {
        retCode: 0,
        retMsg: "success",
        result: op.kind === "withdraw" ? { id } : { transferId: id, status: "PENDING" },
        retExtInfo: {},
        time: now,
      };
    default:
      return null;
  }
}
