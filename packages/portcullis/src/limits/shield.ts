/**
 * The in-process shield (stage 2): bans and blocks this gateway already knows about, answered
 * from memory without asking the hot store — a banned address costs nothing but a Map lookup,
 * even when the hot store is Redis. It learns them from the hot store's answers (a ban at
 * admission, a block after repeated authentication failures). Also the per-key concurrency cap,
 * which is per gateway process.
 */
const MAX_ENTRIES = 100_000;

class Expiring {
  private readonly until = new Map<string, number>();

  get(id: string, now: number): number | null {
    const until = this.until.get(id);
    if (until === undefined) return null;
    if (until > now) return until;
    this.until.delete(id);
    return null;
  }

  set(id: string, until: number): void {
    if (this.until.size >= MAX_ENTRIES && !this.until.has(id)) {
      const oldest = this.until.keys().next();
      if (oldest.done !== true) this.until.delete(oldest.value);
    }
    const current = this.until.get(id);
    if (current === undefined || until > current) this.until.set(id, until);
  }
}

export class Shield {
  private readonly bans = new Expiring();
  private readonly ipBlocks = new Expiring();
  private readonly keyBlocks = new Expiring();
  private readonly inFlight = new Map<string, number>();

  /** 0 disables the concurrency cap. */
  constructor(private readonly maxConcurrentPerKey = 0) {}

  bannedUntil(ip: string, now: number): number | null {
    return this.bans.get(ip, now);
  }

  blockedIpUntil(ip: string, now: number): number | null {
    return this.ipBlocks.get(ip, now);
  }

  blockedKeyUntil(keyId: string, now: number): number | null {
    return this.keyBlocks.get(keyId, now);
  }

  ban(ip: string, until: number): void {
    this.bans.set(ip, until);
  }

  blockIp(ip: string, until: number): void {
    this.ipBlocks.set(ip, until);
  }

  blockKey(keyId: string, until: number): void {
    this.keyBlocks.set(keyId, until);
  }

  /** Whether keys have a concurrency cap at all (without one, no slot is taken or released). */
  get capped(): boolean {
    return this.maxConcurrentPerKey !== 0;
  }

  /** Takes one of the key's concurrent slots; false when all are taken. */
  acquire(keyId: string): boolean {
    if (this.maxConcurrentPerKey === 0) return true;
    const n = this.inFlight.get(keyId) ?? 0;
    if (n >= this.maxConcurrentPerKey) return false;
    this.inFlight.set(keyId, n + 1);
    return true;
  }

  release(keyId: string): void {
    if (this.maxConcurrentPerKey === 0) return;
    const n = this.inFlight.get(keyId) ?? 0;
    if (n <= 1) this.inFlight.delete(keyId);
    else this.inFlight.set(keyId, n - 1);
  }

  inFlightFor(keyId: string): number {
    return this.inFlight.get(keyId) ?? 0;
  }
}
