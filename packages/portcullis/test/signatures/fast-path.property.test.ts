/**
 * The canonical fast path for Signature-Input / Signature must agree with the strict general
 * parser on every input it accepts, and decline (not mis-read) everything else.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseCanonical, parseGeneral } from "../../src/signatures/rfc9421.js";

const sfString = fc.string({ unit: fc.constantFrom(..."abcXYZ019 -_.:/@!~".split("")), maxLength: 16 });
const component = fc.oneof(fc.constantFrom("@method", "@authority", "@path", "@query", "@target-uri", "content-digest", "date", "@status"), sfString);
const param = fc.oneof(
  fc.tuple(fc.constantFrom("created", "expires"), fc.integer({ min: -5, max: 2_000_000_000 })),
  fc.tuple(fc.constantFrom("nonce", "keyid", "alg", "tag", "color"), sfString),
);
const input = fc.record({
  label: fc.constantFrom("sig1", "a", "sig-b26"),
  components: fc.array(component, { maxLength: 6 }),
  params: fc.array(param, { maxLength: 6 }),
  sigLabel: fc.constantFrom("sig1", "a", "other"),
  sig: fc.uint8Array({ minLength: 0, maxLength: 70 }),
});

function text(v: string | number): string {
  return typeof v === "number" ? String(v) : `"${v}"`;
}

describe("Signature-Input fast path", () => {
  it("answers for what signers send", () => {
    const parsed = parseCanonical('sig1=("@method" "@authority" "@path" "@query");created=1;nonce="abcdefgh";keyid="k";alg="hmac-sha256"', "sig1=:AAAA:");
    expect(parsed?.params).toEqual({ created: 1, expires: undefined, nonce: "abcdefgh", keyid: "k", alg: "hmac-sha256", tag: undefined });
  });

  it("agrees with the general parser whenever it answers", () => {
    fc.assert(
      fc.property(input, (i) => {
        const inputHeader = `${i.label}=(${i.components.map((c) => `"${c}"`).join(" ")})${i.params.map(([k, v]) => `;${k}=${text(v)}`).join("")}`;
        const sigHeader = `${i.sigLabel}=:${Buffer.from(i.sig).toString("base64")}:`;
        const fast = parseCanonical(inputHeader, sigHeader);
        const general = parseGeneral(inputHeader, sigHeader);
        if (fast === null) return;
        // The fast path only answers for well-formed input, and then exactly as the general one.
        if ("ok" in general) throw new Error(`fast path accepted what the general parser refuses: ${general.code}`);
        expect(general).toEqual({ ...fast, signature: general.signature });
        expect(Buffer.from(fast.signature).equals(Buffer.from(general.signature))).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });

  it("declines non-canonical text, leaving it to the general parser", () => {
    const sig = "sig1=:AAAA:";
    for (const odd of [
      'sig1=("@method"  "@path");created=1',
      'sig1=( "@method");created=1',
      'sig1=("@method");created=01',
      'sig1=("@method");created=1;created=2',
      'sig1=("@method";sf);created=1',
      'sig1=("a\\"b");created=1',
      'sig1=("@method");flag',
    ]) {
      expect(parseCanonical(odd, sig)).toBeNull();
    }
  });
});
