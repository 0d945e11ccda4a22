/**
 * The console's approval digest is the server's: RFC 8785 canonical JSON (here, hand-written for
 * the browser) hashed with SHA-256 must equal holds/digest.ts (the `canonicalize` package) on the
 * same documents, or an approver's signature would never match. Also the signed message's bytes.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { approvalMessage as serverMessage, canonicalJson as serverCanonical, sha256Hex } from "../../portcullis/src/holds/digest.js";
import { approvalMessage, canonicalJson, digestOfDocument } from "../src/jcs.js";

const document = {
  v: 1,
  operationId: "op_0123456789abcdef0123456789abcdef",
  operation: { kind: "withdraw", asset: "USDT", amount: "2500", address: "TDemo", network: "TRX", tag: null, "é": "ü", "\u20ac": 1, a10: 2, a2: 3 },
  account: "acct",
  keyId: "pck_test_v1_x",
  policy: { version: 3, rule: "large" },
  approvals: [{ group: "treasury", count: 2 }],
  notBefore: null,
  expiresAt: 1765000000000,
  request: "ab".repeat(32),
};

describe("the console's approval digest", () => {
  it("is the server's digest of the same document", async () => {
    expect(canonicalJson(document)).toBe(serverCanonical(document));
    expect(await digestOfDocument(document)).toBe(sha256Hex(serverCanonical(document)));
  });

  it("canonicalises any JSON value as the canonicalize package does", async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue(), async (value) => {
        // JSON.parse(JSON.stringify(...)) is what arrives over the network (-0 becomes 0).
        const wire = JSON.parse(JSON.stringify(value)) as unknown;
        expect(canonicalJson(wire)).toBe(serverCanonical(wire));
        expect(await digestOfDocument(wire)).toBe(sha256Hex(serverCanonical(wire)));
      }),
      { numRuns: 300 },
    );
  });

  it("signs the same message bytes as the CLI, and refuses a digest that is not 64 hex digits", () => {
    const digest = "0f".repeat(32);
    expect(Buffer.from(approvalMessage("approve", digest))).toEqual(serverMessage("approve", digest));
    expect(Buffer.from(approvalMessage("reject", digest))).toEqual(serverMessage("reject", digest));
    expect(() => approvalMessage("approve", "0F".repeat(32))).toThrow(TypeError);
    expect(() => canonicalJson(Number.NaN)).toThrow(TypeError);
  });
});
