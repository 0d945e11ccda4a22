import type { Charge, ChargeState } from "../../contract/limits.js";

/**
 * Binance's own rate-limit headers, which Binance clients read to pace themselves:
 *
 *   X-MBX-USED-WEIGHT-1M: 35          weight used in the interval (Binance counts it per IP)
 *   X-MBX-ORDER-COUNT-10S: 2          orders placed in the interval (per account)
 *   X-MBX-ORDER-COUNT-1D: 17
 *
 * The interval is the limit's window in Binance's notation (a number and S, M, H or D). Weight is
 * reported from the IP limits when there are any, else from the key's.
 */
function interval(windowMs: number): string {
  const units: [number, string][] = [
    [86_400_000, "D"],
    [3_600_000, "H"],
    [60_000, "M"],
    [1000, "S"],
  ];
  for (const [ms, unit] of units) if (windowMs % ms === 0) return `${windowMs / ms}${unit}`;
  return `${Math.ceil(windowMs / 1000)}S`;
}

export function binanceLimitHeaders(charges: readonly Charge[], states: readonly ChargeState[]): Record<string, string> {
  const out: Record<string, string> = {};
  const hasIp = charges.some((c) => c.spec.kind === "weight" && c.spec.scope === "ip");
  for (let i = 0; i < charges.length; i++) {
    const c = charges[i];
    const s = states[i];
    if (c === undefined || s === undefined) continue;
    const used = String(c.limit - s.remaining);
    if (c.spec.kind === "weight" && c.spec.scope === (hasIp ? "ip" : "key")) out[`x-mbx-used-weight-${interval(c.windowMs).toLowerCase()}`] = used;
    else if (c.spec.kind === "orders") out[`x-mbx-order-count-${interval(c.windowMs).toLowerCase()}`] = used;
  }
  return out;
}
