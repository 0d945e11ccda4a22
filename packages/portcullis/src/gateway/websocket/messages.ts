import { type Denial, type ErrorCode, deny } from "../../errors/catalogue.js";
import { createBinanceRenderer } from "../../dialects/binance/errors.js";
import type { MessageParams } from "../../contract/request.js";
import { PROTOTYPE_NAMES, isJsonObject, parseJson, record } from "../../contract/json.js";

/**
 * Messages on a WebSocket route: requests in the Binance WebSocket API's shape, on every route
 * (one JSON object per text frame),
 *
 *   {"id": "5494febb", "method": "order.place", "params": {"symbol": "BTCUSDT", ...}}
 *
 * `id` a string (at most 128 characters), an integer or null, echoed in the answer; `method` the
 * name the route's message table maps; `params` (optional) an object of strings, numbers and
 * booleans, none named like a member of `Object.prototype` (`__proto__`, `constructor`…: the
 * message is read with contract/json.ts, its params kept in a null-prototype record). Anything
 * else is refused (MESSAGE_MALFORMED, JSON_MALFORMED) without closing. What
 * the gateway forwards is the message re-serialised from what it checked, never the client's
 * bytes, so the upstream cannot read a message (a duplicated key, say) differently from the
 * gateway.
 *
 * Refusals are answered in the route's format:
 *
 *   native   {"id": …, "status": 403, "error": {"code": "SCOPE_MISSING", "message": "…"}}
 *   binance  {"id": …, "status": 401, "error": {"code": -2015, "msg": "…"}}
 */
export type MessageId = string | number | null;
export type ParamValue = string | number | boolean;
export type Params = MessageParams;

export interface WsRequest {
  readonly id: MessageId;
  readonly method: string;
  /** Null when the message had no `params`. */
  readonly params: Params | null;
}

export interface BadMessage {
  readonly id: MessageId;
  readonly denial: Denial;
}

const MAX_ID_LENGTH = 128;
const MAX_PARAMS = 64;
const METHOD_RE = /^[A-Za-z][A-Za-z0-9._/-]{0,63}$/;
const utf8 = new TextDecoder("utf-8", { fatal: true });

function idOf(value: unknown): MessageId | undefined {
  if (value === null) return null;
  if (typeof value === "string") return value.length <= MAX_ID_LENGTH ? value : undefined;
  if (typeof value === "number" && Number.isSafeInteger(value)) return value;
  return undefined;
}

/** Parses one frame. Never throws. */
export function parseMessage(data: Buffer, isBinary: boolean): WsRequest | BadMessage {
  if (isBinary) return { id: null, denial: deny("MESSAGE_MALFORMED", "binary frame") };
  let value: unknown;
  try {
    value = parseJson(utf8.decode(data));
  } catch {
    return { id: null, denial: deny("JSON_MALFORMED") };
  }
  if (!isJsonObject(value)) return { id: null, denial: deny("MESSAGE_MALFORMED", "not an object") };
  const o = value;
  const id = idOf(o.id);
  if (id === undefined) return { id: null, denial: deny("MESSAGE_MALFORMED", "id") };
  for (const field of Object.keys(o)) {
    if (field !== "id" && field !== "method" && field !== "params") return { id, denial: deny("MESSAGE_MALFORMED", `field ${field}`) };
  }
  if (typeof o.method !== "string" || !METHOD_RE.test(o.method)) return { id, denial: deny("MESSAGE_MALFORMED", "method") };
  if (o.params === undefined) return { id, method: o.method, params: null };
  if (!isJsonObject(o.params)) return { id, denial: deny("MESSAGE_MALFORMED", "params") };
  const entries = Object.entries(o.params);
  if (entries.length > MAX_PARAMS) return { id, denial: deny("MESSAGE_MALFORMED", "too many params") };
  const params = record<ParamValue>();
  for (const [name, v] of entries) {
    if (PROTOTYPE_NAMES.has(name)) return { id, denial: deny("MESSAGE_MALFORMED", `param ${name}`) };
    if (typeof v === "string" || typeof v === "boolean" || (typeof v === "number" && Number.isFinite(v))) params[name] = v;
    else return { id, denial: deny("MESSAGE_MALFORMED", `param ${name}`) };
  }
  return { id, method: o.method, params };
}

export function isBadMessage(m: WsRequest | BadMessage): m is BadMessage {
  return "denial" in m;
}

/**
 * The message forwarded upstream: re-serialised, its params without `credentials` (the route's
 * scheme's credential parameters, `MessageSigning.credentialParams`). Every message a connection
 * forwards is written here, so none can take a credential upstream.
 */
export function encodeRequest(id: MessageId, method: string, params: Params | null, credentials: ReadonlySet<string>): string {
  if (params === null) return JSON.stringify({ id, method });
  let forwarded: Params = params;
  if (credentials.size > 0) {
    for (const name of credentials) {
      if (Object.hasOwn(params, name)) {
        forwarded = withoutNames(params, credentials);
        break;
      }
    }
  }
  return JSON.stringify({ id, method, params: forwarded });
}

function withoutNames(params: Params, names: ReadonlySet<string>): Params {
  const out = record<ParamValue>();
  for (const [name, value] of Object.entries(params)) if (!names.has(name)) out[name] = value;
  return out;
}

/** Renders refusals of messages in a route's format. */
export interface MessageRenderer {
  error(id: MessageId, denial: Denial, retryAfterMs?: number): string;
  /** A success answered by the gateway itself (Binance session methods). */
  result(id: MessageId, result: unknown): string;
}

export const nativeRenderer: MessageRenderer = {
  error(id, denial, retryAfterMs) {
    const error: Record<string, unknown> = { code: denial.code, message: denial.message };
    if (retryAfterMs !== undefined && retryAfterMs >= 0) error.retryAfterMs = retryAfterMs;
    return JSON.stringify({ id, status: denial.status, error });
  },
  result(id, result) {
    return JSON.stringify({ id, status: 200, result });
  },
};

interface BinanceWsError {
  readonly status: number;
  readonly code: number;
  readonly msg: string;
}

/**
 * Refusals the WebSocket API gives with its own Binance answers (beyond the dialect's table):
 * shared frozen denials, recognised by identity.
 */
export const WS_DENIALS = {
  logonRsa: Object.freeze(deny("LOGON_KEY_TYPE_NOT_SUPPORTED", "rsa")),
} as const;

const WS_SPECIFIC: ReadonlyMap<Denial, BinanceWsError> = new Map([
  // Binance answers an HMAC key's logon with -4056 "HMAC_SHA256 API key is not supported."
  // (the dialect's table); an RSA key's gets the same family's answer.
  [WS_DENIALS.logonRsa, { status: 400, code: -4057, msg: "RSA API key is not supported." }],
]);

/**
 * The Binance WebSocket API's error shape, from the Binance dialect's table (its specific
 * answers included): each distinct answer is worked out once and then looked up.
 */
export function createBinanceMessageRenderer(futureSkewMs: number): MessageRenderer {
  const rest = createBinanceRenderer(futureSkewMs);
  const byDenial = new Map<Denial, BinanceWsError>(WS_SPECIFIC);
  const byCode = new Map<ErrorCode, BinanceWsError>();
  const lookup = (denial: Denial): BinanceWsError => {
    const known = byDenial.get(denial) ?? (Object.isFrozen(denial) ? undefined : byCode.get(denial.code));
    if (known !== undefined) return known;
    const rendered = rest(denial, "");
    const body = JSON.parse(rendered.body) as { code: number; msg: string };
    const error = { status: rendered.status, code: body.code, msg: body.msg };
    // A shared (frozen) denial may have a specific answer of its own; one with a detail is by code.
    if (Object.isFrozen(denial)) byDenial.set(denial, error);
    else byCode.set(denial.code, error);
    return error;
  };
  return {
    error(id, denial) {
      const e = lookup(denial);
      return JSON.stringify({ id, status: e.status, error: { code: e.code, msg: e.msg } });
    },
    result(id, result) {
      return JSON.stringify({ id, status: 200, result });
    },
  };
}
