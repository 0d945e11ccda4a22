import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MemoryNonceStore } from "../../src/replay/nonces.js";

const T0 = Date.UTC(2026, 10, 22, 12, 0, 0);

describe("memory nonce store", () => {
  it("accepts a nonce once per key while it is remembered", () => {
    const s = new MemoryNonceStore();
    expect(s.claim("k1", "n", T0 + 6000, T0)).toBe("fresh");
    expect(s.claim("k1", "n", T0 + 6000, T0 + 10)).toBe("replayed");
    expect(s.claim("k1", "n", T0 + 11_900, T0 + 5900)).toBe("replayed");
    expect(s.claim("k2", "n", T0 + 6000, T0)).toBe("fresh");
  });

  it("forgets a nonce within three of its key's time-to-live spans", () => {
    const s = new MemoryNonceStore();
    s.claim("k", "n", T0 + 6000, T0);
    expect(s.claim("k", "n", T0 + 24_000, T0 + 18_000)).toBe("fresh");
  });

  it("frees entries as generations retire, and forgets quiet keys", () => {
    const s = new MemoryNonceStore();
    for (let i = 0; i < 100; i++) s.claim("a", `n${i}`, T0 + 6000, T0);
    s.claim("b", "x", T0 + 6000, T0);
    expect(s.size).toBe(101);
    // Two spans later, a claim for another key triggers the review that drops both quiet keys.
    s.claim("c", "y", T0 + 19_000, T0 + 13_000);
    expect(s.size).toBe(1);
  });

  it("answers full at capacity instead of growing, and recovers when entries expire", () => {
    const s = new MemoryNonceStore(3);
    for (const n of ["a", "b", "c"]) expect(s.claim("k", n, T0 + 1000, T0)).toBe("fresh");
    expect(s.claim("k", "d", T0 + 1000, T0)).toBe("full");
    expect(s.claim("k", "a", T0 + 1000, T0)).toBe("replayed");
    expect(s.claim("k", "d", T0 + 4000, T0 + 2500)).toBe("fresh");
  });

  it("never forgets a nonce before the expiry it was given (model-based)", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({ key: fc.constantFrom("a", "b"), nonce: fc.constantFrom("x", "y", "z", "w"), ttl: fc.integer({ min: 0, max: 7000 }), step: fc.integer({ min: 0, max: 4000 }) }),
          { maxLength: 80 },
        ),
        (ops) => {
          const s = new MemoryNonceStore();
          const expiry = new Map<string, number>();
          const span = new Map<string, number>();
          const lastAdded = new Map<string, number>();
          let now = T0;
          for (const op of ops) {
            now += op.step;
            const id = `${op.key}/${op.nonce}`;
            span.set(op.key, Math.max(span.get(op.key) ?? 0, op.ttl));
            const answer = s.claim(op.key, op.nonce, now + op.ttl, now);
            const until = expiry.get(id);
            // Must remember until its expiry...
            if (until !== undefined && until > now) expect(answer).toBe("replayed");
            // ...and must have forgotten once four spans (and the review second) have passed.
            const added = lastAdded.get(id);
            if (added !== undefined && now - added >= 4 * (span.get(op.key) ?? 0) + 1000) expect(answer).toBe("fresh");
            if (answer === "fresh") {
              expiry.set(id, now + op.ttl);
              lastAdded.set(id, now);
            }
          }
        },
      ),
      { numRuns: 1000 },
    );
  });
});
