/**
 * The live statistics aggregator (metrics/live-stats.ts): 10 s buckets over a 1 h window, by
 * surface and refusal code, and bounded top keys (Misra–Gries summaries). Times are given, never
 * read from a clock.
 */
import { describe, expect, it } from "vitest";
import type { KeyRecord } from "../../src/contract/keys.js";
import { LiveStats } from "../../src/metrics/live-stats.js";

const T0 = Date.UTC(2026, 11, 6, 12, 0, 0);
const key = (id: string, account = "acct-1"): KeyRecord => ({ id, account }) as KeyRecord;

describe("LiveStats buckets", () => {
  it("every bucket of the window, oldest first, empty ones as zeros", () => {
    const s = new LiveStats();
    const snap = s.snapshot(T0 + 5_000);
    expect(snap).toMatchObject({ now: T0 + 5_000, bucketMs: 10_000, windowMs: 3_600_000 });
    expect(snap.buckets).toHaveLength(360);
    expect(snap.buckets[359]).toEqual({ at: T0, allowed: 0, refused: 0, bySurface: {}, byCode: {} });
    expect(snap.buckets[0]?.at).toBe(T0 - 359 * 10_000);
    for (let i = 1; i < 360; i++) expect((snap.buckets[i]?.at ?? 0) - (snap.buckets[i - 1]?.at ?? 0)).toBe(10_000);
    expect(snap.totals).toEqual({ allowed: 0, refused: 0, bySurface: {}, byCode: {} });
    expect(snap.topKeys).toEqual([]);
    expect(snap.topRefusedKeys).toEqual([]);
  });

  it("counts allowed and refused by surface and code, in the bucket of the request's time", () => {
    const s = new LiveStats();
    const a = key("pck_a");
    s.decided("gateway", "OK", a, T0 + 1);
    s.decided("gateway", "OK", a, T0 + 2);
    s.decided("gateway", "HELD", a, T0 + 3);
    s.decided("gateway", "KEY_REVOKED", a, T0 + 4);
    s.decided("websocket", "SIGNATURE_INVALID", null, T0 + 9_999);
    s.decided("admin", "OK", null, T0 + 10_000);
    const snap = s.snapshot(T0 + 15_000);
    expect(snap.buckets[358]).toEqual({
      at: T0,
      allowed: 3,
      refused: 2,
      bySurface: { gateway: { allowed: 3, refused: 1 }, websocket: { allowed: 0, refused: 1 } },
      byCode: { KEY_REVOKED: 1, SIGNATURE_INVALID: 1 },
    });
    expect(snap.buckets[359]).toEqual({ at: T0 + 10_000, allowed: 1, refused: 0, bySurface: { admin: { allowed: 1, refused: 0 } }, byCode: {} });
    expect(snap.totals).toEqual({
      allowed: 4,
      refused: 2,
      bySurface: { gateway: { allowed: 3, refused: 1 }, websocket: { allowed: 0, refused: 1 }, admin: { allowed: 1, refused: 0 } },
      byCode: { KEY_REVOKED: 1, SIGNATURE_INVALID: 1 },
    });
    expect(s.update(T0 + 15_000).bucket).toEqual(snap.buckets[359]);
  });

  it("buckets older than the window leave it; a gap longer than the window leaves nothing", () => {
    const s = new LiveStats();
    s.decided("gateway", "OK", null, T0);
    s.decided("gateway", "RATE_LIMITED", null, T0 + 600_000);
    // 59 min 50 s later the first bucket is the oldest of the window; 10 s more and it is gone.
    expect(s.snapshot(T0 + 3_590_000).totals).toMatchObject({ allowed: 1, refused: 1 });
    expect(s.snapshot(T0 + 3_600_000).totals).toMatchObject({ allowed: 0, refused: 1, byCode: { RATE_LIMITED: 1 } });
    s.decided("gateway", "OK", null, T0 + 10 * 3_600_000);
    const later = s.snapshot(T0 + 10 * 3_600_000);
    expect(later.totals).toEqual({ allowed: 1, refused: 0, bySurface: { gateway: { allowed: 1, refused: 0 } }, byCode: {} });
    expect(later.buckets.filter((b) => b.allowed + b.refused > 0)).toHaveLength(1);
  });

  it("a clock that steps back is counted in the current bucket", () => {
    const s = new LiveStats();
    s.decided("gateway", "OK", null, T0 + 20_000);
    s.decided("gateway", "OK", null, T0);
    const snap = s.snapshot(T0 + 20_000);
    expect(snap.buckets[359]).toMatchObject({ at: T0 + 20_000, allowed: 2 });
  });

  it("refuses options that are not whole buckets", () => {
    expect(() => new LiveStats({ bucketMs: 0 })).toThrow(TypeError);
    expect(() => new LiveStats({ bucketMs: 7_000, windowMs: 60_000 })).toThrow(TypeError);
    expect(() => new LiveStats({ keyCapacity: 3 })).toThrow(TypeError);
  });
});

describe("LiveStats top keys", () => {
  it("exact while the keys fit: top 10 by requests and by refusals, with the last refusal's code", () => {
    const s = new LiveStats();
    for (let k = 0; k < 12; k++) {
      const rec = key(`pck_${String(k).padStart(2, "0")}`, `acct-${k % 3}`);
      for (let i = 0; i <= k; i++) s.decided("gateway", "OK", rec, T0 + i);
      for (let i = 0; i < 12 - k; i++) s.decided("gateway", i % 2 === 0 ? "SIGNATURE_INVALID" : "KEY_SUSPENDED", rec, T0 + 100 + i);
    }
    const snap = s.snapshot(T0 + 1_000);
    // requests = (k + 1) + (12 - k) = 13 each: ties ordered by id.
    expect(snap.topKeys).toHaveLength(10);
    expect(snap.topKeys[0]).toEqual({ keyId: "pck_00", account: "acct-0", requests: 13, refused: 12 });
    expect(snap.topRefusedKeys.map((k) => [k.keyId, k.refused])).toEqual([
      ["pck_00", 12], ["pck_01", 11], ["pck_02", 10], ["pck_03", 9], ["pck_04", 8], ["pck_05", 7], ["pck_06", 6], ["pck_07", 5], ["pck_08", 4], ["pck_09", 3],
    ]);
    // pck_00's 12th refusal (i = 11) was KEY_SUSPENDED, pck_01's 11th (i = 10) SIGNATURE_INVALID.
    expect(snap.topRefusedKeys[0]).toEqual({ keyId: "pck_00", account: "acct-0", refused: 12, lastCode: "KEY_SUSPENDED" });
    expect(snap.topRefusedKeys[1]?.lastCode).toBe("SIGNATURE_INVALID");
  });

  it("bounded: 50,000 distinct keys hold at most the capacity, and a heavy hitter is still on top", () => {
    const s = new LiveStats({ keyCapacity: 64 });
    const heavy = key("pck_heavy", "acct-h");
    for (let i = 0; i < 50_000; i++) {
      s.decided("gateway", "OK", key(`pck_${i}`), T0 + (i % 1000));
      if (i % 10 === 0) s.decided("gateway", "RATE_LIMITED", heavy, T0 + (i % 1000));
    }
    const held = (s as unknown as { segments: { requests: { counts: Map<string, unknown> }; refusals: { counts: Map<string, unknown> } }[] }).segments;
    for (const seg of held) {
      expect(seg.requests.counts.size).toBeLessThanOrEqual(64);
      expect(seg.refusals.counts.size).toBeLessThanOrEqual(64);
    }
    const snap = s.snapshot(T0 + 1_000);
    expect(snap.topKeys[0]?.keyId).toBe("pck_heavy");
    // Misra–Gries undercounts by at most n / capacity (55,000 / 64 < 860) of the true 5,000.
    expect(snap.topKeys[0]?.requests).toBeGreaterThan(5_000 - 860);
    expect(snap.topKeys[0]?.requests).toBeLessThanOrEqual(5_000);
    expect(snap.topRefusedKeys).toEqual([{ keyId: "pck_heavy", account: "acct-h", refused: 5_000, lastCode: "RATE_LIMITED" }]);
    expect(snap.totals).toMatchObject({ allowed: 50_000, refused: 5_000 });
  });

  it("keys age out with their 10-minute segments", () => {
    const s = new LiveStats();
    s.decided("gateway", "KEY_REVOKED", key("pck_old"), T0);
    s.decided("gateway", "OK", key("pck_new"), T0 + 3_000_000);
    expect(s.snapshot(T0 + 3_000_000).topKeys.map((k) => k.keyId)).toEqual(["pck_new", "pck_old"].sort());
    const later = s.snapshot(T0 + 4_300_000);
    expect(later.topKeys.map((k) => k.keyId)).toEqual(["pck_new"]);
    expect(later.topRefusedKeys).toEqual([]);
  });
});
