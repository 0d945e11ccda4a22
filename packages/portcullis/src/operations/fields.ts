import type { Decimal, OrderCancel, OrderPlace, OrderSide, Transfer, Withdraw } from "../contract/operations.js";
import { type Denial, deny } from "../errors/catalogue.js";
import { isZero, multiplyDecimal, parseDecimal } from "./decimal.js";

/**
 * Reading an operation's fields from a request's parameters (a form's name → value map, or a JSON
 * object's members), strictly: every field the operation needs is present, of the venue's type
 * and syntax, within bounds. The reader keeps the first refusal and goes on answering nulls, so a
 * decoder reads its fields in a row and checks `denial` once at the end (no exceptions, nothing
 * thrown for anything a sender wrote).
 *
 * Values are strings. A JSON number, boolean, array or object where a string is expected is
 * refused (amounts above all: a JSON number is a float to most parsers), and `null` or an empty
 * string is taken as absent (as the venues read them).
 */

/** A parameter's value by name: a string (form) or any JSON value; undefined when not sent. */
export type Lookup = (name: string) => unknown;

/** Symbols: the venues' instrument names (BTCUSDT, XBT/USD, BTC-USDT-SWAP, BTC-USD, ETH-30DEC26-3000-C). */
const SYMBOL_RE = /^[A-Za-z0-9][A-Za-z0-9._\-/:]{0,63}$/;
/** Assets: BTC, USDT, XBT, 1INCH, USDC.E… */
const ASSET_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/;
/** Addresses, tags, ids, names: printable ASCII without spaces. */
const TOKEN_RE = /^[\x21-\x7e]+$/;
export const MAX_ID_LENGTH = 128;
/** Memos may hold spaces. */
const MEMO_RE = /^[\x20-\x7e]+$/;

/** Is `value` an id or name: a string of printable ASCII without spaces, 1 to `max` characters? */
export function isToken(value: unknown, max = MAX_ID_LENGTH): value is string {
  return typeof value === "string" && value.length > 0 && value.length <= max && TOKEN_RE.test(value);
}

export const MAX_ADDRESS_LENGTH = 256;

export class FieldReader {
  /** The first refusal, or null. */
  denial: Denial | null = null;

  constructor(
    private readonly get: Lookup,
    /** Prefix of field names in refusal details (a nested object's path, e.g. "order_configuration.limit_limit_gtc."). */
    private readonly prefix = "",
  ) {}

  /** A reader of a nested JSON object member (refused unless it is an object); its refusals are this reader's. */
  object(name: string, required = true): FieldReader | null {
    const value = this.raw(name);
    if (value === undefined) {
      if (required) this.missing(name);
      return null;
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      this.invalid(name, "must be an object");
      return null;
    }
    const members = value as Record<string, unknown>;
    const child = new FieldReader((n) => (Object.hasOwn(members, n) ? members[n] : undefined), `${this.prefix}${name}.`);
    child.parent = this;
    return child;
  }

  private parent: FieldReader | null = null;

  fail(code: "OPERATION_PARAM_MISSING" | "OPERATION_PARAM_INVALID" | "OPERATION_MALFORMED", detail: string): void {
    if (this.parent !== null) {
      this.parent.fail(code, detail);
      return;
    }
    if (this.denial === null) this.denial = deny(code, detail);
  }

  get failed(): boolean {
    return this.parent !== null ? this.parent.failed : this.denial !== null;
  }

  missing(name: string): void {
    this.fail("OPERATION_PARAM_MISSING", `${this.prefix}${name} is required`);
  }

  invalid(name: string, why: string): void {
    this.fail("OPERATION_PARAM_INVALID", `${this.prefix}${name} ${why}`);
  }

  /** The value as sent; null and "" read as absent (undefined). */
  raw(name: string): unknown {
    const value = this.get(name);
    return value === null || value === "" ? undefined : value;
  }

  /** Was the field sent (non-empty)? */
  has(name: string): boolean {
    return this.raw(name) !== undefined;
  }

  /** A string field of printable ASCII without spaces (`memo`: spaces allowed), at most `max` characters. */
  text(name: string, required: boolean, max = MAX_ID_LENGTH, memo = false): string | null {
    const value = this.raw(name);
    if (value === undefined) {
      if (required) this.missing(name);
      return null;
    }
    if (typeof value !== "string") {
      this.invalid(name, "must be a string");
      return null;
    }
    if (value.length > max) {
      this.invalid(name, `is longer than ${max} characters`);
      return null;
    }
    if (!(memo ? MEMO_RE : TOKEN_RE).test(value)) {
      this.invalid(name, memo ? "must be printable ASCII" : "must be printable ASCII without spaces");
      return null;
    }
    return value;
  }

  /** An instrument name, upper-cased. */
  symbol(name: string, required = true): string | null {
    const value = this.text(name, required, 64);
    if (value === null) return null;
    if (!SYMBOL_RE.test(value)) {
      this.invalid(name, "is not a symbol (letters, digits and . _ - / :)");
      return null;
    }
    return value.toUpperCase();
  }

  /** An asset name, upper-cased. */
  asset(name: string, required = true): string | null {
    const value = this.text(name, required, 32);
    if (value === null) return null;
    if (!ASSET_RE.test(value)) {
      this.invalid(name, "is not an asset (letters, digits and . _ -)");
      return null;
    }
    return value.toUpperCase();
  }

  /** A positive exact decimal, written as a plain decimal string (digits, optionally a point and digits). */
  amount(name: string, required: boolean): Decimal | null {
    const value = this.raw(name);
    if (value === undefined) {
      if (required) this.missing(name);
      return null;
    }
    if (typeof value !== "string") {
      this.invalid(name, "must be a decimal string (not a JSON number)");
      return null;
    }
    const decimal = parseDecimal(value);
    if (decimal === null) {
      this.invalid(name, "is not a plain decimal (digits, optionally a point and digits; at most 20 of each)");
      return null;
    }
    if (isZero(decimal)) {
      this.invalid(name, "must be greater than zero");
      return null;
    }
    return decimal;
  }

  /** One of the venue's spellings, mapped to its value. */
  oneOf<T>(name: string, values: ReadonlyMap<string, T>, required = true): T | null {
    const value = this.raw(name);
    if (value === undefined) {
      if (required) this.missing(name);
      return null;
    }
    const mapped = typeof value === "string" ? values.get(value) : undefined;
    if (mapped === undefined) {
      this.invalid(name, `must be one of ${[...values.keys()].join(", ")}`);
      return null;
    }
    return mapped;
  }

  /** Refuses a field that must not be sent with the others (e.g. two sizes of one order). */
  exclusive(a: string, b: string): void {
    if (this.has(a) && this.has(b)) this.invalid(a, `and ${b} cannot both be sent`);
  }
}

/** The venue's side spellings → the model's. */
export function sides(buy: string, sell: string): ReadonlyMap<string, OrderSide> {
  return new Map<string, OrderSide>([
    [buy, "buy"],
    [sell, "sell"],
  ]);
}

/** The venue's order types (as sent) → the model's type (lower case). */
export function orderTypes(names: readonly string[]): ReadonlyMap<string, string> {
  return new Map(names.map((name) => [name, name.toLowerCase()]));
}

/** A new order; its notional is quantity × price when both are known, else the quote quantity. */
export function orderPlace(
  symbol: string,
  side: OrderSide,
  type: string,
  quantity: Decimal | null,
  price: Decimal | null,
  quoteQuantity: Decimal | null,
): OrderPlace {
  const notional = quantity !== null && price !== null ? multiplyDecimal(quantity, price) : quoteQuantity;
  return Object.freeze({ kind: "order.place", symbol, side, type, quantity, price, quoteQuantity, notional });
}

/**
 * A cancel: refused unless it names at least one venue order id or a client order id (the
 * reader's refusal), so a decoder's result always identifies what it cancels.
 */
export function orderCancel(reader: FieldReader, symbol: string | null, orderIds: readonly string[], clientOrderId: string | null, names: string): OrderCancel | null {
  if (orderIds.length === 0 && clientOrderId === null) {
    if (!reader.failed) reader.fail("OPERATION_PARAM_MISSING", `one of ${names} is required`);
    return null;
  }
  return Object.freeze({ kind: "order.cancel", symbol, orderIds: Object.freeze([...orderIds]), clientOrderId });
}

export function withdraw(asset: string, amount: Decimal, address: string | null, addressName: string | null, network: string | null, tag: string | null): Withdraw {
  return Object.freeze({ kind: "withdraw", asset, amount, address, addressName, network, tag });
}

export function transfer(asset: string, amount: Decimal, from: string, to: string): Transfer {
  return Object.freeze({ kind: "transfer", asset, amount, from, to });
}

/** The address field: printable ASCII, no spaces, at most 256 characters. */
export function address(reader: FieldReader, name: string, required = true): string | null {
  return reader.text(name, required, MAX_ADDRESS_LENGTH);
}

/** A memo / tag: printable ASCII (spaces allowed), at most 128 characters. */
export function memo(reader: FieldReader, name: string): string | null {
  return reader.text(name, false, MAX_ID_LENGTH, true);
}
