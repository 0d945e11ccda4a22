import type { IncomingHttpHeaders } from "node:http";
import type { Denial } from "../../errors/catalogue.js";
import type { RequestContext, AuthScheme, Credential, SchemeOptions } from "../../contract/request.js";
import { extractBybitCredential } from "./credential.js";
import { BYBIT_HEADERS, renderBybit } from "./errors.js";

export { BYBIT_DEFAULT_RECV_WINDOW_MS } from "./credential.js";
export { BYBIT_ERRORS, BYBIT_REFUSALS, bybitErrorOf } from "./errors.js";

const CREDENTIAL_HEADERS = Object.freeze([
  BYBIT_HEADERS.key,
  BYBIT_HEADERS.sign,
  BYBIT_HEADERS.timestamp,
  BYBIT_HEADERS.recvWindow,
  BYBIT_HEADERS.signType,
]);

/**
 * The Bybit (v5) dialect: X-BAPI-* headers, HMAC-SHA256 in hex (or RSA-SHA256 in base64 for RSA
 * keys) over timestamp + key + recv_window + query string or body, and Bybit's
 * `{retCode, retMsg, result, retExtInfo, time}` errors. A request is Bybit-signed when it carries
 * X-BAPI-API-KEY (whose value is the Portcullis key id). See credential.ts for the rules and
 * errors.ts for the error mapping. (The return type keeps the registry's contract, under which a
 * dialect not built yet answers null.)
 */
export function createBybitScheme(options: SchemeOptions): AuthScheme | null {
  return {
    name: "bybit",
    credentialHeaders: CREDENTIAL_HEADERS,
    detect: (headers: IncomingHttpHeaders) => headers[BYBIT_HEADERS.key] !== undefined,
    extract: (ctx: RequestContext): Credential | Denial => extractBybitCredential(ctx, options),
    render: (denial: Denial, requestId: string) => renderBybit(denial, requestId),
  };
}
