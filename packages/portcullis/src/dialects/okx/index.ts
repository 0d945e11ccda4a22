import type { IncomingHttpHeaders } from "node:http";
import type { Denial } from "../../errors/catalogue.js";
import type { RequestContext, AuthScheme, Credential, SchemeOptions } from "../../contract/request.js";
import { extractOkxCredential } from "./credential.js";
import { OKX_HEADERS, renderOkx } from "./errors.js";

export { OKX_WINDOW_MS } from "./credential.js";
export { OKX_ERRORS, OKX_REFUSALS, okxErrorOf } from "./errors.js";
export { parseOkxTimestamp } from "./timestamp.js";

const CREDENTIAL_HEADERS = Object.freeze([OKX_HEADERS.key, OKX_HEADERS.sign, OKX_HEADERS.timestamp, OKX_HEADERS.passphrase]);

/**
 * The OKX (API v5) dialect: OK-ACCESS-* headers, HMAC-SHA256 in base64 over timestamp + method +
 * request path + body, the key's passphrase, and OKX's `{code, msg, data}` errors. A request is
 * OKX-signed when it carries OK-ACCESS-KEY (whose value is the Portcullis key id). See
 * credential.ts for the rules and errors.ts for the error mapping. (The return type keeps the
 * registry's contract, under which a dialect not built yet answers null.)
 */
export function createOkxScheme(options: SchemeOptions): AuthScheme | null {
  return {
    name: "okx",
    credentialHeaders: CREDENTIAL_HEADERS,
    detect: (headers: IncomingHttpHeaders) => headers[OKX_HEADERS.key] !== undefined,
    extract: (ctx: RequestContext): Credential | Denial => extractOkxCredential(ctx, options),
    render: renderOkx,
  };
}
