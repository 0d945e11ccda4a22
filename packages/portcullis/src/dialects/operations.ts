import type { Dialect } from "../contract/keys.js";
import type { OperationDecoder } from "../contract/request.js";
import type { Route } from "../contract/route.js";
import { RouteTableError } from "../authz/routes.js";
import { nativeOperations } from "../operations/native.js";
import { binanceOperations } from "./binance/operation.js";
import { bybitOperations } from "./bybit/operation.js";
import { coinbaseOperations } from "./coinbase/operation.js";
import { krakenOperations } from "./kraken/operation.js";
import { okxOperations } from "./okx/operation.js";

/**
 * The operation decoder of each venue shape (docs/operations.md), keyed by the route's dialect
 * (native for a route without one). A route's requests are decoded in its venue's shape whichever
 * scheme signed them: a native-signed request on a Binance route carries a Binance body, because
 * that is what the upstream reads.
 */
export const OPERATION_DECODERS: Readonly<Record<Dialect, OperationDecoder>> = Object.freeze({
  native: nativeOperations,
  binance: binanceOperations,
  kraken: krakenOperations,
  coinbase: coinbaseOperations,
  okx: okxOperations,
  bybit: bybitOperations,
});

/**
 * Refuses (ROUTE_TABLE_INVALID, naming the route) a route whose venue shape does not define the
 * operation it declares (a venue route declaring `key.create`). Run wherever a route table is
 * turned into a pipeline, and by the configuration check.
 */
export function checkOperationRoutes(routes: readonly Route[]): void {
  for (const route of routes) {
    if (route.operation === null) continue;
    const dialect = route.dialect ?? "native";
    if (!OPERATION_DECODERS[dialect].kinds.has(route.operation)) {
      throw new RouteTableError(`route ${route.id}: the ${dialect} shape has no ${route.operation} operation (one of ${[...OPERATION_DECODERS[dialect].kinds].join(", ")})`);
    }
  }
}
