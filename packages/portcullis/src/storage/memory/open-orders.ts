import type { OpenOrderLedger, OpenReservation, OpenTotal, ReserveResult } from "../types.js";

interface Entry {
  readonly expiresAt: number;
  readonly amount: bigint;
  readonly symbol: string;
  refs: readonly string[];
}

/**
 * The open-notional ledger in process memory (the embedded hot store's `openOrders`). Each call
 * decides and writes in one synchronous step, so concurrent requests of one process cannot
 * interleave inside it. A key's map is dropped when its last reservation goes: memory follows the
 * keys with orders open, each bounded by `maxEntries`.
 */
export class MemoryOpenOrders implements OpenOrderLedger {
  private readonly keys = new Map<string, Map<string, Entry>>();

  reserve(r: OpenReservation): ReserveResult {
    let entries = this.keys.get(r.keyId);
    let total = 0n;
    if (entries !== undefined) total = this.prune(r.keyId, entries, r.now);
    const count = entries?.size ?? 0;
    if (count >= r.maxEntries) return { ok: false, reason: "full", open: total };
    const after = total + r.amount;
    if (after > r.cap) return { ok: false, reason: "cap", open: total };
    if (entries === undefined || entries.size === 0) {
      entries = new Map();
      this.keys.set(r.keyId, entries);
    }
    entries.set(r.id, { expiresAt: r.expiresAt, amount: r.amount, symbol: r.symbol, refs: [] });
    return { ok: true, open: after };
  }

  bind(keyId: string, id: string, refs: readonly string[]): boolean {
    const entry = this.keys.get(keyId)?.get(id);
    if (entry === undefined) return false;
    entry.refs = [...entry.refs, ...refs];
    return true;
  }

  release(keyId: string, id: string): boolean {
    const entries = this.keys.get(keyId);
    if (entries === undefined || !entries.delete(id)) return false;
    if (entries.size === 0) this.keys.delete(keyId);
    return true;
  }

  releaseOrders(keyId: string, symbol: string | null, refs: readonly string[], now: number): number {
    const entries = this.keys.get(keyId);
    if (entries === undefined) return 0;
    this.prune(keyId, entries, now);
    let released = 0;
    for (const [id, e] of entries) {
      if (symbol !== null && e.symbol !== symbol) continue;
      if (e.refs.some((ref) => refs.includes(ref))) {
        entries.delete(id);
        released++;
      }
    }
    if (entries.size === 0) this.keys.delete(keyId);
    return released;
  }

  open(keyId: string, now: number): OpenTotal {
    const entries = this.keys.get(keyId);
    if (entries === undefined) return { total: 0n, entries: 0 };
    const total = this.prune(keyId, entries, now);
    return { total, entries: entries.size };
  }

  /** Drops the key's expired reservations; the total of the others. */
  private prune(keyId: string, entries: Map<string, Entry>, now: number): bigint {
    let total = 0n;
    for (const [id, e] of entries) {
      if (e.expiresAt <= now) entries.delete(id);
      else total += e.amount;
    }
    if (entries.size === 0) this.keys.delete(keyId);
    return total;
  }
}
