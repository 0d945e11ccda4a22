import { type Denial, deny } from "../../errors/catalogue.js";
import type { VerificationKey } from "../../contract/verification-key.js";
import { WS_DENIALS } from "./messages.js";

/**
 * What is WebSocket-specific in the Binance WebSocket API (binance-spot-api-docs, web-socket-api.md,
 * "Session Authentication"): the gateway answers `session.logon`, `session.status` and
 * `session.logout` itself. How a message is signed, and which of its parameters are credentials,
 * is the Binance scheme's message signing (dialects/binance/message.ts).
 *
 * `session.logon` is a signed request with only the signing parameters, and only an Ed25519 key
 * may log on.
 */
export function logonKeyDenial(key: VerificationKey): Denial | undefined {
  const algorithm = key.record.algorithm;
  if (algorithm === "ed25519") return undefined;
  return algorithm === "rsa" ? WS_DENIALS.logonRsa : deny("LOGON_KEY_TYPE_NOT_SUPPORTED", algorithm);
}

/** The answer of session.logon, session.status and session.logout (Binance's shape). */
export function sessionStatus(apiKey: string | null, authorizedSince: number | null, connectedSince: number, now: number): Record<string, unknown> {
  return { apiKey, authorizedSince, connectedSince, returnRateLimits: false, serverTime: now, userDataStream: false };
}
