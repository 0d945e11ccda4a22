/**
 * The memory hot store's list of banned addresses is bounded: an attacker rotating IPv6 prefixes
 * cannot grow it for a day (the soak found it unbounded). At the cap the address banned longest
 * ago is forgotten first.
 */
import { describe, expect, it } from "vitest";
import { DEFAULT_SHIELD_POLICY } from "../../src/limits/types.js";
import type { Charge } from "../../src/contract/limits.js";
import { MemoryHotStore } from "../../src/storage/memory/hot.js";

const T0 = 1_700_000_000_000;
/** One strike bans (a strike is a refusal by a limit; a limit of one refuses the second request). */
const POLICY = { ...DEFAULT_SHIELD_POLICY, strikes: 1, strikeWindowMs: 60_000, banBaseMs: 60_000, banMaxMs: 3_600_000 };

function charge(ip: string): Charge {
  return { spec: { name: "w", scope: "ip", kind: "weight", limit: 1, windowMs: 60_000 }, bucket: `w:${ip}`, limit: 1, windowMs: 60_000, cost: 1 };
}

async function ban(store: MemoryHotStore, ip: string, now: number): Promise<void> {
  for (let i = 0; i < 3; i++) await store.admit({ now, ip, replay: null, charges: [charge(ip)], session: null });
  expect(await store.admit({ now, ip, replay: null, charges: [], session: null })).toMatchObject({ ok: false, reason: "banned" });
}

describe("the memory hot store's bans", () => {
  it("remembers at most maxBans addresses, forgetting the one banned longest ago", async () => {
    // (Ordered by last ban: an address banned again, after its ban, moves to the end.)
    const store = new MemoryHotStore({ policy: POLICY, maxBans: 3, epochStart: T0 });
    for (const [i, ip] of ["2001:db8:1::/64", "2001:db8:2::/64", "2001:db8:3::/64", "2001:db8:4::/64"].entries()) await ban(store, ip, T0 + i);
    const banned = async (ip: string): Promise<boolean> => !(await store.admit({ now: T0 + 10, ip, replay: null, charges: [], session: null })).ok;
    expect(await banned("2001:db8:1::/64")).toBe(false); // forgotten: the list holds three
    for (const ip of ["2001:db8:2::/64", "2001:db8:3::/64", "2001:db8:4::/64"]) expect(await banned(ip)).toBe(true);
  });
});
