/**
 * Request parameters: collected from the query string and the body into one map, then read and
 * validated by the endpoints with Binance's error codes.
 *
 * Collection rules: a name sent twice (twice in one source, or in both the query and the body) is
 * -1101, as is sending more than MAX_PARAMS parameters; Binance's request-signing parameters
 * (timestamp, recvWindow, signature) are dropped, since the gateway has already authenticated the
 * caller. Each endpoint declares the names it reads; any other name is -1104.
 */
import { DECIMAL_PATTERN, parseDecimal } from "./decimal.js";
import { errors } from "./errors.js";
import { findMarket, type Market } from "./markets.js";

export const IGNORED_PARAMS: ReadonlySet<string> = new Set(["timestamp", "recvWindow", "signature"]);
export const MAX_PARAMS = 30;

export const SYMBOL_PATTERN = "^[A-Z0-9-_.]{1,20}$";
const SYMBOL_RE = /^[A-Z0-9\-_.]{1,20}$/;
export const CLIENT_ID_PATTERN = "^[a-zA-Z0-9-_]{1,36}$";
const CLIENT_ID_RE = /^[a-zA-Z0-9\-_]{1,36}$/;
export const INTEGER_PATTERN = "^[0-9]{1,20}$";
const INTEGER_RE = /^[0-9]{1,20}$/;
const SYMBOLS_PATTERN = '^\\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\\]$';
const SYMBOLS_RE = /^\[("[A-Z0-9\-_.]{1,20}"(,"[A-Z0-9\-_.]{1,20}")*)?\]$/;

export type ParamSource = Iterable<readonly [string, string]>;

export class Params {
  private constructor(private readonly values: ReadonlyMap<string, string>) {}

  /** Merges parameter sources (query string, body), enforcing the collection rules above. */
  static collect(sources: readonly ParamSource[]): Params {
    const values = new Map<string, string>();
    let count = 0;
    for (const source of sources) {
      for (const [name, value] of source) {
        if (++count > MAX_PARAMS) throw errors.tooManyParameters(MAX_PARAMS, count);
        if (IGNORED_PARAMS.has(name)) continue;
        if (values.has(name)) throw errors.duplicateParameter();
        values.set(name, value);
      }
    }
    return new Params(values);
  }

  /** -1104 unless every parameter sent is one the endpoint reads. */
  expectOnly(allowed: readonly string[]): void {
    const unknown = [...this.values.keys()].filter((name) => !allowed.includes(name)).length;
    if (unknown > 0) throw errors.unreadParameters(this.values.size - unknown, this.values.size);
  }

  /** Was the parameter sent at all (even empty)? */
  has(name: string): boolean {
    return this.values.has(name);
  }

  /** A mandatory parameter: -1102 when missing or empty. */
  required(name: string): string {
    const value = this.values.get(name);
    if (value === undefined || value === "") throw errors.mandatoryMissing(name);
    return value;
  }

  /** An optional parameter: undefined when not sent, -1105 when sent empty. */
  optional(name: string): string | undefined {
    const value = this.values.get(name);
    if (value === "") throw errors.emptyParameter(name);
    return value;
  }
}

/** Checks a symbol's syntax (-1100) and that it is listed (-1121). */
export function toMarket(symbol: string, param = "symbol"): Market {
  if (!SYMBOL_RE.test(symbol)) throw errors.illegalChars(param, SYMBOL_PATTERN);
  const market = findMarket(symbol);
  if (market === undefined) throw errors.invalidSymbol();
  return market;
}

/** A Binance `symbols` list: a JSON array of symbol strings, e.g. ["BTCUSDT","ETHUSDT"]. */
export function toMarkets(text: string): Market[] {
  if (!SYMBOLS_RE.test(text)) throw errors.illegalChars("symbols", SYMBOLS_PATTERN);
  const symbols = text === "[]" ? [] : text.slice(2, -2).split('","');
  if (symbols.length === 0) throw errors.mandatoryMissing("symbols");
  if (new Set(symbols).size !== symbols.length) throw errors.duplicateSymbols();
  return symbols.map((s) => toMarket(s, "symbols"));
}

/** A decimal amount (-1100 on bad syntax, -1111 beyond 8 decimals). */
export function toDecimal(text: string, param: string): bigint {
  const parsed = parseDecimal(text);
  if (parsed.ok) return parsed.value;
  if (parsed.reason === "precision") throw errors.tooMuchPrecision(param);
  throw errors.illegalChars(param, DECIMAL_PATTERN);
}

/** A non-negative integer (-1100 on bad syntax). */
export function toInteger(text: string, param: string): bigint {
  if (!INTEGER_RE.test(text)) throw errors.illegalChars(param, INTEGER_PATTERN);
  return BigInt(text);
}

/** A client order id (-1100 unless 1-36 of [a-zA-Z0-9-_]). */
export function toClientOrderId(text: string, param: string): string {
  if (!CLIENT_ID_RE.test(text)) throw errors.illegalChars(param, CLIENT_ID_PATTERN);
  return text;
}

/** One of a fixed set of values, or the given error. */
export function toEnum<T extends string>(text: string, allowed: readonly T[], onBad: () => Error): T {
  const found = allowed.find((v) => v === text);
  if (found === undefined) throw onBad();
  return found;
}
