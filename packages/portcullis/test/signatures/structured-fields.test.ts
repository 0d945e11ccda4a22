import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  Decimal,
  InnerList,
  type Item,
  StructuredFieldError,
  Token,
  parseDictionary,
  parseItem,
  serializeDictionary,
} from "../../src/signatures/structured-fields.js";

describe("RFC 8941 dictionaries", () => {
  it("parses the shapes RFC 9421 uses", () => {
    const d = parseDictionary('sig1=("@method" "@path");created=1618884475;keyid="k";nonce="n"');
    const m = d.get("sig1");
    expect(m).toBeInstanceOf(InnerList);
    const list = m as InnerList;
    expect(list.items.map((i) => i.value)).toEqual(["@method", "@path"]);
    expect([...list.params]).toEqual([
      ["created", 1618884475],
      ["keyid", "k"],
      ["nonce", "n"],
    ]);
    const sig = parseDictionary("sig1=:AAEC:").get("sig1") as Item;
    expect([...(sig.value as Uint8Array)]).toEqual([0, 1, 2]);
  });

  it("parses every bare item type", () => {
    const d = parseDictionary('a=1, b=-2.5, c="s\\"q", d=tok/en:x, e=:aGk=:, f=?0, g, h=();p');
    expect(d.get("a")).toEqual({ value: 1, params: new Map() });
    expect((d.get("b") as Item).value).toEqual(new Decimal(-2.5));
    expect((d.get("c") as Item).value).toBe('s"q');
    expect((d.get("d") as Item).value).toEqual(new Token("tok/en:x"));
    expect(Buffer.from((d.get("e") as Item).value as Uint8Array).toString()).toBe("hi");
    expect((d.get("f") as Item).value).toBe(false);
    expect((d.get("g") as Item).value).toBe(true);
    expect((d.get("h") as InnerList).params.get("p")).toBe(true);
  });

  it.each([
    ["trailing comma", "a=1,"],
    ["bad key", "A=1"],
    ["unterminated string", 'a="x'],
    ["bad escape", 'a="\\n"'],
    ["non-ASCII in string", 'a="\u00e9"'],
    ["unterminated inner list", 'a=("x" "y"'],
    ["bad byte sequence", "a=:!!:"],
    ["integer too long", "a=1234567890123456"],
    ["decimal fraction too long", "a=1.2345"],
    ["duplicate key", "a=1, a=2"],
    ["duplicate parameter", "a=1;p=1;p=2"],
    ["garbage", "((("],
    ["trailing characters", 'a="x" y'],
  ])("rejects %s", (_name, input) => {
    expect(() => parseDictionary(input)).toThrow(StructuredFieldError);
  });

  it("accepts byte sequences without padding, as RFC 8941 asks", () => {
    expect(Buffer.from((parseItem(":aGk:").value as Uint8Array)).toString()).toBe("hi");
  });

  const key = fc.stringMatching(/^[a-z*][a-z0-9_.*-]{0,8}$/);
  const bare = fc.oneof(
    fc.integer({ min: -999_999_999, max: 999_999_999 }),
    fc.string({ unit: fc.constantFrom(..."abc XYZ 09\"\\!~".split("")), maxLength: 12 }),
    fc.stringMatching(/^[A-Za-z*][A-Za-z0-9:/._-]{0,8}$/).map((s) => new Token(s)),
    fc.uint8Array({ maxLength: 16 }).map((b) => Buffer.from(b)),
    fc.boolean(),
  );
  const params = fc.uniqueArray(fc.tuple(key, bare), { selector: ([k]) => k, maxLength: 3 }).map((e) => new Map(e));
  const item = fc.record({ value: bare, params });
  const member = fc.oneof(item, fc.record({ items: fc.array(item, { maxLength: 4 }), params }).map((l) => new InnerList(l.items, l.params)));
  const dict = fc.uniqueArray(fc.tuple(key, member), { selector: ([k]) => k, minLength: 1, maxLength: 4 }).map((e) => new Map(e));

  it("round-trips: parse(serialize(d)) serializes to the same text", () => {
    fc.assert(
      fc.property(dict, (d) => {
        const text = serializeDictionary(d);
        expect(serializeDictionary(parseDictionary(text))).toBe(text);
      }),
      { numRuns: 500 },
    );
  });

  it("never throws anything but StructuredFieldError on arbitrary input", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), (s) => {
        try {
          parseDictionary(s);
        } catch (err) {
          expect(err).toBeInstanceOf(StructuredFieldError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
