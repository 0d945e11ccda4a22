import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MemorySequenceStore } from "../../src/replay/sequences.js";
import { referenceSequence } from "../support/reference-sequence.js";

describe("memory sequence store (increasing nonces with a window)", () => {
  it("with no window: strictly increasing", () => {
    const s = new MemorySequenceStore();
    expect(s.claim("k", 10n, 0n)).toBe("fresh");
    expect(s.claim("k", 10n, 0n)).toBe("replayed");
    expect(s.claim("k", 9n, 0n)).toBe("too-low");
    expect(s.claim("k", 11n, 0n)).toBe("fresh");
    expect(s.claim("other", 1n, 0n)).toBe("fresh");
  });

  it("with a window: slightly out-of-order values are accepted once", () => {
    const s = new MemorySequenceStore();
    expect(s.claim("k", 100n, 10n)).toBe("fresh");
    expect(s.claim("k", 105n, 10n)).toBe("fresh");
    expect(s.claim("k", 101n, 10n)).toBe("fresh");
    expect(s.claim("k", 101n, 10n)).toBe("replayed");
    expect(s.claim("k", 100n, 10n)).toBe("replayed");
    expect(s.claim("k", 94n, 10n)).toBe("too-low");
    expect(s.claim("k", 120n, 10n)).toBe("fresh");
    expect(s.claim("k", 105n, 10n)).toBe("too-low");
  });

  it("handles values beyond 2^53 exactly", () => {
    const s = new MemorySequenceStore();
    const big = 2n ** 63n - 2n;
    expect(s.claim("k", big, 0n)).toBe("fresh");
    expect(s.claim("k", big + 1n, 0n)).toBe("fresh");
    expect(s.claim("k", big, 0n)).toBe("too-low");
  });

  it("agrees with a reference model", () => {
    fc.assert(
      fc.property(fc.array(fc.bigInt({ min: 0n, max: 60n }), { maxLength: 80 }), fc.bigInt({ min: 0n, max: 8n }), (values, window) => {
        const s = new MemorySequenceStore();
        const accepted: bigint[] = [];
        for (const v of values) {
          const answer = s.claim("k", v, window);
          expect(answer).toBe(referenceSequence(accepted, v, window));
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe("memory sequence store bounds", () => {
  it("keeps at most perKeyLimit values per key and never accepts a forgotten value again", () => {
    const s = new MemorySequenceStore(10, 3);
    expect(s.claim("k", 100n, 1000n)).toBe("fresh");
    for (const v of [50n, 60n, 70n, 80n]) expect(s.claim("k", v, 1000n)).toBe("fresh");
    // 50 was forgotten (limit 3) and became the floor: too low now, not fresh again.
    expect(s.claim("k", 50n, 1000n)).toBe("too-low");
    expect(s.claim("k", 40n, 1000n)).toBe("too-low");
    expect(s.claim("k", 70n, 1000n)).toBe("replayed");
    expect(s.claim("k", 90n, 1000n)).toBe("fresh");
  });

  it("answers full past its key capacity", () => {
    const s = new MemorySequenceStore(2);
    expect(s.claim("a", 1n, 0n)).toBe("fresh");
    expect(s.claim("b", 1n, 0n)).toBe("fresh");
    expect(s.claim("c", 1n, 0n)).toBe("full");
  });
});
