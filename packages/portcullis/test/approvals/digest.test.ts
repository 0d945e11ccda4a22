/**
 * The approval digest: RFC 8785 canonical JSON (the RFC's own examples, copied exactly), the
 * digest over an operation's facts, and the domain-separated message an approver signs.
 */
import { generateKeyPairSync, sign } from "node:crypto";
import { describe, expect, it } from "vitest";
import { approvalDigest, approvalMessage, approverKeyObject, canonicalJson, parseApproverKey, verifyApproval } from "../../src/holds/digest.js";

/** RFC 8785 Appendix B: IEEE 754 bit patterns and their canonical (ECMAScript) serialization. */
const APPENDIX_B: readonly [string, string][] = [
  ["0000000000000000", "0"],
  ["8000000000000000", "0"],
  ["0000000000000001", "5e-324"],
  ["8000000000000001", "-5e-324"],
  ["7fefffffffffffff", "1.7976931348623157e+308"],
  ["ffefffffffffffff", "-1.7976931348623157e+308"],
  ["4340000000000000", "9007199254740992"],
  ["c340000000000000", "-9007199254740992"],
  ["4430000000000000", "295147905179352830000"],
  ["44b52d02c7e14af5", "9.999999999999997e+22"],
  ["44b52d02c7e14af6", "1e+23"],
  ["44b52d02c7e14af7", "1.0000000000000001e+23"],
  ["444b1ae4d6e2ef4e", "999999999999999700000"],
  ["444b1ae4d6e2ef4f", "999999999999999900000"],
  ["444b1ae4d6e2ef50", "1e+21"],
  ["3eb0c6f7a0b5ed8c", "9.999999999999997e-7"],
  ["3eb0c6f7a0b5ed8d", "0.000001"],
  ["41b3de4355555553", "333333333.3333332"],
  ["41b3de4355555554", "333333333.33333325"],
  ["41b3de4355555555", "333333333.3333333"],
  ["41b3de4355555556", "333333333.3333334"],
  ["41b3de4355555557", "333333333.33333343"],
  ["becbf647612f3696", "-0.0000033333333333333333"],
  ["43143ff3c1cb0959", "1424953923781206.2"],
];

function fromBits(hex: string): number {
  return Buffer.from(hex, "hex").readDoubleBE(0);
}

describe("RFC 8785 canonical JSON (the RFC's examples)", () => {
  it("section 3.2.2: the sample input canonicalizes to the RFC's output", () => {
    // The input of section 3.2.2, as JSON text (its escapes and number spellings exactly).
    const input = JSON.parse(
      '{\n  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],\n  "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",\n  "literals": [null, true, false]\n}',
    ) as unknown;
    expect(canonicalJson(input)).toBe('{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}');
  });

  it("section 3.2.3: properties are sorted by their UTF-16 code units", () => {
    const input = JSON.parse(
      '{\n  "\\u20ac": "Euro Sign",\n  "\\r": "Carriage Return",\n  "\\ufb33": "Hebrew Letter Dalet With Dagesh",\n  "1": "One",\n  "\\ud83d\\ude00": "Emoji: Grinning Face",\n  "\\u0080": "Control",\n  "\\u00f6": "Latin Small Letter O With Diaeresis"\n}',
    ) as Record<string, string>;
    // The RFC's expected output, its non-ASCII characters written here as JS escapes.
    expect(canonicalJson(input)).toBe(
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign","\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    );
  });

  it("appendix B: every number serializes as the RFC lists", () => {
    for (const [bits, text] of APPENDIX_B) expect(canonicalJson(fromBits(bits)), bits).toBe(text);
  });

  it("refuses what JSON cannot hold (NaN, Infinity) rather than inventing a spelling", () => {
    expect(() => canonicalJson(fromBits("7fffffffffffffff"))).toThrow(TypeError);
    expect(() => canonicalJson(fromBits("7ff0000000000000"))).toThrow(TypeError);
  });
});

const FACTS = {
  operationId: "op_00112233445566778899aabbccddeeff",
  operation: { kind: "withdraw", asset: "USDT", amount: "2500", address: "0xaa", addressName: null, network: "ETH", tag: null },
  account: "acct-1",
  keyId: "pk_test_x",
  policyVersion: 3,
  rule: "large-withdrawals",
  tiers: [{ group: "treasury", count: 2 }],
  notBefore: null,
  expiresAt: 1_800_000_000_000,
  requestDigest: "a".repeat(64),
};

describe("the approval digest", () => {
  it("is SHA-256 of the canonical JSON of the facts, and changes with every one of them", () => {
    const digest = approvalDigest(FACTS);
    expect(digest).toMatch(/^[0-9a-f]{64}$/);
    expect(approvalDigest({ ...FACTS })).toBe(digest);
    const variants = [
      { ...FACTS, operationId: "op_ffeeddccbbaa99887766554433221100" },
      { ...FACTS, operation: { ...FACTS.operation, amount: "2500.1" } },
      { ...FACTS, operation: { ...FACTS.operation, address: "0xab" } },
      { ...FACTS, account: "acct-2" },
      { ...FACTS, keyId: "pk_test_y" },
      { ...FACTS, policyVersion: 4 },
      { ...FACTS, rule: "other" },
      { ...FACTS, tiers: [{ group: "treasury", count: 1 }] },
      { ...FACTS, notBefore: 1 },
      { ...FACTS, expiresAt: FACTS.expiresAt + 1 },
      { ...FACTS, requestDigest: "b".repeat(64) },
    ];
    for (const v of variants) expect(approvalDigest(v)).not.toBe(digest);
  });

  it("an approval verifies for its decision and digest only", () => {
    const pair = generateKeyPairSync("ed25519");
    const digest = approvalDigest(FACTS);
    const signature = sign(null, approvalMessage("approve", digest), pair.privateKey).toString("base64");
    expect(approvalMessage("approve", digest).toString()).toBe(`portcullis-approval/v1 approve ${digest}`);
    expect(verifyApproval(pair.publicKey, "approve", digest, signature)).toBe(true);
    expect(verifyApproval(pair.publicKey, "approve", digest, signature.replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, ""))).toBe(true);
    expect(verifyApproval(pair.publicKey, "reject", digest, signature)).toBe(false);
    expect(verifyApproval(pair.publicKey, "approve", approvalDigest({ ...FACTS, rule: "x" }), signature)).toBe(false);
    expect(verifyApproval(generateKeyPairSync("ed25519").publicKey, "approve", digest, signature)).toBe(false);
    for (const bad of ["", "not base64!", "AAAA", signature.slice(0, 40)]) expect(verifyApproval(pair.publicKey, "approve", digest, bad)).toBe(false);
  });

  it("approver keys: Ed25519 SPKI PEM or OKP JWK only", () => {
    const ed = generateKeyPairSync("ed25519");
    const pem = ed.publicKey.export({ type: "spki", format: "pem" }).toString();
    expect(parseApproverKey(pem)).toBe(pem);
    expect(parseApproverKey(JSON.stringify(ed.publicKey.export({ format: "jwk" })))).toBe(pem);
    expect(approverKeyObject(pem).asymmetricKeyType).toBe("ed25519");
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ type: "spki", format: "pem" }).toString();
    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey.export({ type: "spki", format: "pem" }).toString();
    const privateJwk = JSON.stringify(ed.privateKey.export({ format: "jwk" }));
    const privatePem = ed.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    for (const bad of [ec, rsa, privateJwk, privatePem, "", "garbage", "{}", "[1]"]) expect(parseApproverKey(bad)).toBeNull();
  });
});
