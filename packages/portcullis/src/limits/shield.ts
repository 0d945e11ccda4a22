/**
 * The in-process shield (stage 2): bans and blocks this gateway already knows about, answered
 * from memory without asking the hot store — a banned address costs nothing but a Map lookup,
 * even when the hot store is Redis. It learns them from the hot store's answers (a ban at
 * admission or after refusals of authenticated requests, a block after repeated authentication
 * failures). Addresses are `ClientAddress.group` (an IPv6 client by its prefix). Also the per-key
 * concurrency cap, which is per gateway process.
 *
 * A key's block is never the key's alone: it is earned by failures from one address against the
 * key on one surface (a pipeline's `scope`), and refuses only that address's requests with the key
 * on that surface — anyone may send a key id, so a block of the whole key would let anyone lock its
 * owner out.
 */
const MAX_ENTRIES = 100_000;

class Expiring {
  private readonly until = new Map<string, number>();

  constructor(private readonly capacity = MAX_ENTRIES) {}

  get(id: string, now: number): number | null {
    const until = this.until.get(id);
    if (until === undefined) return null;
    if (until > now) return until;
    this.until.delete(id);
    return null;
  }

  set(id: string, until: number): void {
    if (this.until.size >= this.capacity && !this.until.has(id)) {
      const oldest = this.until.keys().next();
      if (oldest.done !== true) this.until.delete(oldest.value);
    }
    const current = this.until.get(id);
    if (current === undefined || until > current) this.until.set(id, until);
  }
}

/** Blocked (scope, address) pairs of one key, at most this many remembered per key. */
const MAX_BLOCKS_PER_KEY = 10_000;

export class Shield {
  private readonly bans = new Expiring();
  private readonly ipBlocks = new Expiring();
  /** key id -> "scope|address" -> until: a request with a key nobody attacks costs one failed lookup. */
  private readonly keyBlocks = new Map<string, Expiring>();
  private readonly inFlight = new Map<string, number>();

  /** 0 disables the concurrency cap. */
  constructor(private readonly maxConcurrentPerKey = 0) {}

  bannedUntil(ip: string, now: number): number | null {
    return this.bans.get(ip, now);
  }

  blockedIpUntil(ip: string, now: number): number | null {
    return this.ipBlocks.get(ip, now);
  }

  /** Until when `keyId` is blocked for requests from `ip` (an address group) on surface `scope`. */
  blockedKeyUntil(scope: string, keyId: string, ip: string, now: number): number | null {
    const blocks = this.keyBlocks.get(keyId);
    if (blocks === undefined) return null;
    return blocks.get(`${scope}|${ip}`, now);
  }

  ban(ip: string, until: number): void {
    this.bans.set(ip, until);
  }

  blockIp(ip: string, until: number): void {
    this.ipBlocks.set(ip, until);
  }

  blockKey(scope: string, keyId: string, ip: string, until: number): void {
    let blocks = this.keyBlocks.get(keyId);
    if (blocks === undefined) {
      if (this.keyBlocks.size >= MAX_ENTRIES) {
        const oldest = this.keyBlocks.keys().next();
        if (oldest.done !== true) this.keyBlocks.delete(oldest.value);
      }
      blocks = new Expiring(MAX_BLOCKS_PER_KEY);
      this.keyBlocks.set(keyId, blocks);
    }
    blocks.set(`${scope}|${ip}`, until);
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
