/**
 * Structured Field Values for HTTP (RFC 8941): the parser and serializer that RFC 9421 and
 * RFC 9530 headers need. Strict: anything the RFC would fail is a parse error, and additionally a
 * repeated dictionary key or parameter key is an error instead of "last one wins", because a
 * security header that says two things at once must not be read as either.
 */

export class Token {
  constructor(readonly value: string) {}
}

export class Decimal {
  constructor(readonly value: number) {}
}

export type BareItem = number | Decimal | string | Token | Uint8Array | boolean;
export type Parameters = Map<string, BareItem>;

export interface Item {
  readonly value: BareItem;
  readonly params: Parameters;
}

export class InnerList {
  constructor(
    readonly items: Item[],
    readonly params: Parameters,
  ) {}
}

export type Member = Item | InnerList;
export type Dictionary = Map<string, Member>;

/**
 * Internal to the RFC 8941 parser: it unwinds a parse from any depth and never leaves the
 * signature modules. Their entry points (rfc9421.ts parseSignatureHeaders, content-digest.ts)
 * catch it and return the refusal (SIGNATURE_HEADER_MALFORMED, CONTENT_DIGEST_MALFORMED), so it
 * needs no code of its own and is not exported from the package.
 */
export class StructuredFieldError extends Error {
  override name = "StructuredFieldError";
}

const EMPTY_PARAMS: Parameters = new Map();

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}
function isLcAlpha(c: number): boolean {
  return c >= 0x61 && c <= 0x7a;
}
function isAlpha(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}
// tchar from RFC 9110: "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
const TCHAR = new Uint8Array(128);
for (const ch of "!#$%&'*+-.^_`|~") TCHAR[ch.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TCHAR[c] = 1;
function isTchar(c: number): boolean {
  return c < 128 && TCHAR[c] === 1;
}
const BASE64_CHAR = /^[A-Za-z0-9+/]*={0,2}$/;

class Parser {
  pos = 0;
  constructor(readonly input: string) {}

  fail(what: string): never {
    throw new StructuredFieldError(`${what} at offset ${this.pos}`);
  }

  peek(): number {
    return this.pos < this.input.length ? this.input.charCodeAt(this.pos) : -1;
  }

  skipSP(): void {
    while (this.input.charCodeAt(this.pos) === 0x20) this.pos++;
  }

  skipOWS(): void {
    for (;;) {
      const c = this.input.charCodeAt(this.pos);
      if (c === 0x20 || c === 0x09) this.pos++;
      else return;
    }
  }

  atEnd(): boolean {
    return this.pos >= this.input.length;
  }

  parseDictionary(): Dictionary {
    const dict: Dictionary = new Map();
    while (!this.atEnd()) {
      const key = this.parseKey();
      let member: Member;
      if (this.peek() === 0x3d /* = */) {
        this.pos++;
        member = this.parseItemOrInnerList();
      } else {
        member = { value: true, params: this.parseParameters() };
      }
      if (dict.has(key)) this.fail(`duplicate dictionary key "${key}"`);
      dict.set(key, member);
      this.skipOWS();
      if (this.atEnd()) return dict;
      if (this.peek() !== 0x2c /* , */) this.fail("expected comma");
      this.pos++;
      this.skipOWS();
      if (this.atEnd()) this.fail("trailing comma");
    }
    return dict;
  }

  parseItemOrInnerList(): Member {
    if (this.peek() === 0x28 /* ( */) return this.parseInnerList();
    return this.parseItem();
  }

  parseInnerList(): InnerList {
    this.pos++; // (
    const items: Item[] = [];
    while (!this.atEnd()) {
      this.skipSP();
      if (this.peek() === 0x29 /* ) */) {
        this.pos++;
        return new InnerList(items, this.parseParameters());
      }
      items.push(this.parseItem());
      const c = this.peek();
      if (c !== 0x20 && c !== 0x29) this.fail("expected space or ) in inner list");
    }
    return this.fail("unterminated inner list");
  }

  parseItem(): Item {
    const value = this.parseBareItem();
    return { value, params: this.parseParameters() };
  }

  parseBareItem(): BareItem {
    const c = this.peek();
    if (c === 0x2d /* - */ || isDigit(c)) return this.parseNumber();
    if (c === 0x22 /* " */) return this.parseString();
    if (c === 0x2a /* * */ || isAlpha(c)) return this.parseToken();
    if (c === 0x3a /* : */) return this.parseByteSequence();
    if (c === 0x3f /* ? */) return this.parseBoolean();
    return this.fail("expected an item");
  }

  parseParameters(): Parameters {
    if (this.peek() !== 0x3b /* ; */) return EMPTY_PARAMS;
    const params: Parameters = new Map();
    while (this.peek() === 0x3b) {
      this.pos++;
      this.skipSP();
      const key = this.parseKey();
      let value: BareItem = true;
      if (this.peek() === 0x3d /* = */) {
        this.pos++;
        value = this.parseBareItem();
      }
      if (params.has(key)) this.fail(`duplicate parameter "${key}"`);
      params.set(key, value);
    }
    return params;
  }

  parseKey(): string {
    const start = this.pos;
    const first = this.peek();
    if (!isLcAlpha(first) && first !== 0x2a) this.fail("expected a key");
    this.pos++;
    for (;;) {
      const c = this.peek();
      if (isLcAlpha(c) || isDigit(c) || c === 0x5f || c === 0x2d || c === 0x2e || c === 0x2a) this.pos++;
      else break;
    }
    return this.input.slice(start, this.pos);
  }

  parseNumber(): number | Decimal {
    let sign = 1;
    if (this.peek() === 0x2d) {
      sign = -1;
      this.pos++;
    }
    if (!isDigit(this.peek())) this.fail("expected a digit");
    const start = this.pos;
    let isDecimal = false;
    let dot = -1;
    for (;;) {
      const c = this.peek();
      if (isDigit(c)) {
        this.pos++;
      } else if (c === 0x2e /* . */ && !isDecimal) {
        if (this.pos - start > 12) this.fail("decimal integer part too long");
        isDecimal = true;
        dot = this.pos;
        this.pos++;
      } else {
        break;
      }
      const len = this.pos - start;
      if (!isDecimal && len > 15) this.fail("integer too long");
      if (isDecimal && len > 16) this.fail("decimal too long");
    }
    const text = this.input.slice(start, this.pos);
    if (!isDecimal) return sign * Number(text);
    if (dot === this.pos - 1) this.fail("decimal ends with a dot");
    if (this.pos - dot - 1 > 3) this.fail("decimal fraction too long");
    return new Decimal(sign * Number(text));
  }

  parseString(): string {
    this.pos++; // opening quote
    let out = "";
    let runStart = this.pos;
    for (;;) {
      if (this.atEnd()) this.fail("unterminated string");
      const c = this.input.charCodeAt(this.pos);
      if (c === 0x5c /* \ */) {
        out += this.input.slice(runStart, this.pos);
        this.pos++;
        const next = this.peek();
        if (next !== 0x22 && next !== 0x5c) this.fail("invalid escape in string");
        out += String.fromCharCode(next);
        this.pos++;
        runStart = this.pos;
      } else if (c === 0x22) {
        out += this.input.slice(runStart, this.pos);
        this.pos++;
        return out;
      } else if (c < 0x20 || c > 0x7e) {
        this.fail("invalid character in string");
      } else {
        this.pos++;
      }
    }
  }

  parseToken(): Token {
    const start = this.pos;
    this.pos++;
    for (;;) {
      const c = this.peek();
      if (isTchar(c) || c === 0x3a || c === 0x2f) this.pos++;
      else break;
    }
    return new Token(this.input.slice(start, this.pos));
  }

  parseByteSequence(): Uint8Array {
    this.pos++; // opening colon
    const end = this.input.indexOf(":", this.pos);
    if (end < 0) this.fail("unterminated byte sequence");
    const b64 = this.input.slice(this.pos, end);
    // RFC 8941 asks parsers to tolerate missing "=" padding; a length of 4n+1 is never valid.
    if (!BASE64_CHAR.test(b64) || b64.length % 4 === 1) this.fail("invalid base64 in byte sequence");
    this.pos = end + 1;
    return Buffer.from(b64, "base64");
  }

  parseBoolean(): boolean {
    this.pos++;
    const c = this.peek();
    if (c === 0x31) {
      this.pos++;
      return true;
    }
    if (c === 0x30) {
      this.pos++;
      return false;
    }
    return this.fail("invalid boolean");
  }
}

function prepare(input: string): Parser {
  const parser = new Parser(input);
  parser.skipSP();
  return parser;
}

/** Parses a Dictionary header value. Throws StructuredFieldError on any syntax error. */
export function parseDictionary(input: string): Dictionary {
  const parser = prepare(input);
  const dict = parser.parseDictionary();
  parser.skipSP();
  if (!parser.atEnd()) parser.fail("trailing characters");
  return dict;
}

/** Parses a single Item header value. */
export function parseItem(input: string): Item {
  const parser = prepare(input);
  const item = parser.parseItem();
  parser.skipSP();
  if (!parser.atEnd()) parser.fail("trailing characters");
  return item;
}

// --- serialization (RFC 8941 section 4.1) -------------------------------------------------

export function serializeString(value: string): string {
  let needsEscape = false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) throw new StructuredFieldError("string has a character outside printable ASCII");
    if (c === 0x22 || c === 0x5c) needsEscape = true;
  }
  return needsEscape ? `"${value.replace(/["\\]/g, "\\$&")}"` : `"${value}"`;
}

export function serializeBareItem(value: BareItem): string {
  if (typeof value === "string") return serializeString(value);
  if (typeof value === "number") {
    if (!Number.isInteger(value) || Math.abs(value) > 999_999_999_999_999) {
      throw new StructuredFieldError("integer out of range");
    }
    return String(value);
  }
  if (typeof value === "boolean") return value ? "?1" : "?0";
  if (value instanceof Token) return value.value;
  if (value instanceof Decimal) {
    const rounded = Math.round(value.value * 1000) / 1000;
    return Number.isInteger(rounded) ? `${rounded}.0` : String(rounded);
  }
  return `:${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64")}:`;
}

export function serializeParams(params: Parameters): string {
  let out = "";
  for (const [key, value] of params) {
    out += value === true ? `;${key}` : `;${key}=${serializeBareItem(value)}`;
  }
  return out;
}

export function serializeItem(item: Item): string {
  return serializeBareItem(item.value) + serializeParams(item.params);
}

export function serializeInnerList(list: InnerList): string {
  let out = "(";
  for (let i = 0; i < list.items.length; i++) {
    if (i > 0) out += " ";
    const item = list.items[i];
    if (item !== undefined) out += serializeItem(item);
  }
  return out + ")" + serializeParams(list.params);
}

export function serializeDictionary(dict: Dictionary): string {
  const parts: string[] = [];
  for (const [key, member] of dict) {
    if (member instanceof InnerList) parts.push(`${key}=${serializeInnerList(member)}`);
    else if (member.value === true) parts.push(key + serializeParams(member.params));
    else parts.push(`${key}=${serializeItem(member)}`);
  }
  return parts.join(", ");
}
