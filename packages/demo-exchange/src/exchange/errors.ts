/**
 * Errors the demo exchange answers with, in Binance's shape `{"code": -1102, "msg": "..."}`.
 * Codes and messages follow Binance's spot API error list so that a Binance client reacts to the
 * demo the way it reacts to the real venue. Anything thrown that is not an ExchangeError is an
 * internal fault and is answered as -1000 with HTTP 500 (and no detail).
 */
export class ExchangeError extends Error {
  override name = "ExchangeError";

  constructor(
    readonly status: number,
    readonly code: number,
    message: string,
  ) {
    super(message);
  }

  /** The JSON body for this error. */
  toJSON(): { code: number; msg: string } {
    return { code: this.code, msg: this.message };
  }
}

const bad = (code: number, msg: string): ExchangeError => new ExchangeError(400, code, msg);

/** Constructors for every error the exchange gives, named after Binance's error names. */
export const errors = {
  unknown: (): ExchangeError => new ExchangeError(500, -1000, "An unknown error occurred while processing the request."),
  unknownEndpoint: (): ExchangeError => new ExchangeError(404, -1, "Unknown endpoint"),
  methodNotAllowed: (): ExchangeError => new ExchangeError(405, -1, "Method not allowed for this endpoint"),
  unauthorized: (): ExchangeError => new ExchangeError(401, -2015, "Invalid API-key, IP, or permissions for action."),
  bodyTooLarge: (limit: number): ExchangeError =>
    new ExchangeError(413, -1101, `Request body too large; the limit is ${limit} bytes.`),
  unsupportedMediaType: (): ExchangeError =>
    new ExchangeError(415, -1130, "Unsupported Content-Type; send application/x-www-form-urlencoded or application/json."),
  invalidJson: (): ExchangeError => bad(-1135, "Invalid JSON Request"),
  illegalBody: (): ExchangeError => bad(-1100, "Illegal characters found in the request body."),

  illegalChars: (param: string, pattern: string): ExchangeError =>
    bad(-1100, `Illegal characters found in parameter '${param}'; legal range is '${pattern}'.`),
  tooManyParameters: (expected: number, received: number): ExchangeError =>
    bad(-1101, `Too many parameters; expected '${expected}' and received '${received}'.`),
  duplicateParameter: (): ExchangeError => bad(-1101, "Duplicate values for a parameter detected."),
  mandatoryMissing: (param: string): ExchangeError =>
    bad(-1102, `Mandatory parameter '${param}' was not sent, was empty/null, or malformed.`),
  eitherMissing: (a: string, b: string): ExchangeError =>
    bad(-1102, `Param '${a}' or '${b}' must be sent, but both were empty/null!`),
  unreadParameters: (read: number, sent: number): ExchangeError =>
    bad(-1104, `Not all sent parameters were read; read '${read}' parameter(s) but was sent '${sent}'.`),
  emptyParameter: (param: string): ExchangeError => bad(-1105, `Parameter '${param}' was empty.`),
  notRequired: (param: string): ExchangeError => bad(-1106, `Parameter '${param}' sent when not required.`),
  tooMuchPrecision: (param: string): ExchangeError => bad(-1111, `Parameter '${param}' has too much precision.`),
  invalidTimeInForce: (): ExchangeError => bad(-1115, "Invalid timeInForce."),
  invalidOrderType: (): ExchangeError => bad(-1116, "Invalid orderType."),
  invalidSide: (): ExchangeError => bad(-1117, "Invalid side."),
  invalidSymbol: (): ExchangeError => bad(-1121, "Invalid symbol."),
  badCombination: (): ExchangeError => bad(-1128, "Combination of optional parameters invalid."),
  invalidParameter: (param: string): ExchangeError => bad(-1130, `Data sent for parameter '${param}' is not valid.`),
  duplicateSymbols: (): ExchangeError => bad(-1151, "Symbol is present multiple times in the list."),
  filterFailure: (filter: "PRICE_FILTER" | "LOT_SIZE" | "NOTIONAL"): ExchangeError => bad(-1013, `Filter failure: ${filter}`),

  insufficientBalance: (): ExchangeError => bad(-2010, "Account has insufficient balance for requested action."),
  duplicateOrder: (): ExchangeError => bad(-2010, "Duplicate order sent."),
  cancelRejected: (): ExchangeError => bad(-2011, "Unknown order sent."),
  noSuchOrder: (): ExchangeError => bad(-2013, "Order does not exist."),
  withdrawInsufficient: (): ExchangeError => bad(-4026, "User has insufficient balance"),
} as const;
