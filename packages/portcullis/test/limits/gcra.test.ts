import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type Tat, gcra } from "../../src/limits/gcra.js";

const T0 = Date.UTC(2026, 10, 22, 12, 0, 0);

/** Runs requests through one bucket; returns which were admitted. */
function run(limit: number, windowMs: number, events: readonly { at: number; cost: number }[]): boolean[] {
  let tat: Tat | undefined;
  return events.map(({ at, cost }) => {
    const d = gcra({ limit, windowMs }, tat, cost, at);
    if (d.allowed) tat = d.tat;
    return d.allowed;
  });
}

describe("GCRA", () => {
  it("admits exactly the limit in a burst, even when the interval is not an integer (7 per minute)", () => {
    const burst = run(7, 60_000, Array.from({ length: 8 }, () => ({ at: T0, cost: 1 })));
    expect(burst).toEqual([true, true, true, true, true, true, true, false]);
  });

  it("lets one more in exactly one emission interval later, not a millisecond before", () => {
    const T = 60_000 / 7;
    const before = run(7, 60_000, [...Array.from({ length: 7 }, () => ({ at: T0, cost: 1 })), { at: T0 + Math.floor(T), cost: 1 }]);
    expect(before.at(-1)).toBe(false);
    const after = run(7, 60_000, [...Array.from({ length: 7 }, () => ({ at: T0, cost: 1 })), { at: T0 + Math.ceil(T), cost: 1 }]);
    expect(after.at(-1)).toBe(true);
  });

  it("has no fixed-window edge: a full burst just before a boundary is not followed by another just after", () => {
    const events = [...Array.from({ length: 10 }, () => ({ at: T0 + 59_999, cost: 1 })), ...Array.from({ length: 10 }, () => ({ at: T0 + 60_001, cost: 1 }))];
    const admitted = run(10, 60_000, events).filter(Boolean).length;
    expect(admitted).toBe(10);
  });

  it("charges weights: a cost-5 request uses five units", () => {
    expect(run(10, 1000, [{ at: T0, cost: 5 }, { at: T0, cost: 5 }, { at: T0, cost: 1 }])).toEqual([true, true, false]);
    expect(run(10, 1000, [{ at: T0, cost: 11 }])).toEqual([false]);
    expect(run(10, 1000, [{ at: T0, cost: 0 }])).toEqual([true]);
  });

  it("reports remaining units, the time to full, and when to retry", () => {
    let d = gcra({ limit: 1200, windowMs: 60_000 }, undefined, 13, T0);
    expect(d).toMatchObject({ allowed: true, remaining: 1187, resetMs: 650, retryAfterMs: 0 });
    d = gcra({ limit: 10, windowMs: 1000 }, { ms: T0 + 1000, rem: 0 }, 1, T0);
    expect(d).toMatchObject({ allowed: false, remaining: 0, resetMs: 1000, retryAfterMs: 100 });
    d = gcra({ limit: 10, windowMs: 1000 }, { ms: T0 + 1000, rem: 0 }, 3, T0);
    expect(d.retryAfterMs).toBe(300);
  });

  it("stays exact with a daily limit of 200000 (the arithmetic never passes 2^53)", () => {
    let tat: Tat | undefined;
    let admitted = 0;
    for (let i = 0; i < 200_001; i++) {
      const d = gcra({ limit: 200_000, windowMs: 86_400_000 }, tat, 1, T0);
      if (d.allowed) {
        admitted++;
        tat = d.tat;
      }
    }
    expect(admitted).toBe(200_000);
  });

  it("is a leaky bucket: it agrees with a reference that drains limit/window per ms and holds at most `limit`", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 20 }),
        fc.integer({ min: 1, max: 5000 }),
        fc.array(fc.record({ dt: fc.integer({ min: 0, max: 700 }), cost: fc.integer({ min: 0, max: 4 }) }), { maxLength: 60 }),
        (limit, windowMs, steps) => {
          // Reference: a bucket level in units·windowMs (to stay in integers); it drains `limit`
          // per ms and may hold at most limit·windowMs. A request of cost c adds c·windowMs.
          let level = 0;
          let at = T0;
          let last = T0;
          let tat: Tat | undefined;
          for (const { dt, cost } of steps) {
            at += dt;
            level = Math.max(0, level - (at - last) * limit);
            last = at;
            const fits = level + cost * windowMs <= limit * windowMs;
            const d = gcra({ limit, windowMs }, tat, cost, at);
            expect(d.allowed).toBe(fits);
            if (fits) {
              level += cost * windowMs;
              tat = d.tat;
            }
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});
