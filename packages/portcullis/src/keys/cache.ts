import { grantedPermissions } from "../contract/permissions.js";
import { agentChain, idleExpiresAt } from "../contract/keys.js";
import { CidrSet } from "../net/ip.js";
import { ALGORITHMS_FOR_KEY } from "../signatures/algorithms.js";
import type { VerificationKey } from "../contract/verification-key.js";
import { passphraseCheckFor } from "./passphrase.js";
import type { KeyMaterial } from "./service.js";
import { compileGuardrails } from "../operations/guardrails.js";

/** Compiles loaded key material for the request path (the key cache does this once per load). */
export function compileKey(material: KeyMaterial, defaultWindowMs: number, idleExpiryMs: number | null = null): VerificationKey {
  const { record } = material;
  const idleAt = idleExpiresAt(record, idleExpiryMs);
  const allowlist = record.ipAllowlist.length === 0 ? null : new CidrSet(record.ipAllowlist);
  return {
    record,
    hmacKey: material.hmacKey,
    hmacKeyDecoded: material.hmacKeyDecoded,
    publicKey: material.publicKey,
    dialects: new Set(record.dialects),
    passphrase: material.passphraseHash === null ? null : passphraseCheckFor(material.passphraseHash),
    allowlist,
    permissions: grantedPermissions(record.scopes),
    nativeAlgorithms: ALGORITHMS_FOR_KEY[record.algorithm],
    windowMs: record.windowMs ?? defaultWindowMs,
    scopes: record.scopes,
    scopesText: record.scopes.join(","),
    idle: idleAt === null || idleExpiryMs === null ? null : { expiresAt: idleAt, afterMs: idleExpiryMs },
    session: null,
    guardrails: compileGuardrails(record.guardrails),
    chain: record.agent === null ? null : agentChain(record.agent),
  };
}

export interface KeyCacheOptions {
  readonly load: (id: string) => Promise<KeyMaterial | null>;
  readonly defaultWindowMs: number;
  /** Idle expiry of unrestricted trading keys (contract/keys.ts `idleExpiresAt`); null: off. Default off. */
  readonly idleExpiryMs?: number | null;
  /** A loaded key is served without a reload for this long. Default 60 s. */
  readonly freshMs?: number;
  /** After fresh, it is served while a reload runs in the background, up to this age. Default 5 min. */
  readonly staleMs?: number;
  /** An unknown id is remembered as unknown for this long. Default 5 s. */
  readonly negativeMs?: number;
  readonly maxEntries?: number;
  readonly now?: () => number;
  /** Called when a background refresh fails (the stale entry keeps serving until staleMs). */
  readonly onRefreshError?: (id: string, err: unknown) => void;
}

interface Entry {
  readonly key: VerificationKey | null;
  readonly freshUntil: number;
  readonly staleUntil: number;
}

interface InFlight {
  promise: Promise<VerificationKey | null>;
  /** Set when the key changed while this load was running: its answer must not be used. */
  superseded: boolean;
}

export interface KeyCacheStats {
  hits: number;
  staleHits: number;
  negativeHits: number;
  misses: number;
  loads: number;
  evictions: number;
}

/**
 * The key cache of stage 4: fresh and stale windows (stale-while-revalidate), negative caching
 * of unknown ids, de-duplicated concurrent loads, and explicit eviction on every change (the key
 * service's change feed). Eviction wins over any load already in flight: a load that started
 * before the change is discarded and redone, so a revoked key is never cached again from an old
 * read.
 */
/** Entries the sweep visits per insertion: more than one, so expired entries are found faster than added. */
const SWEEP_PER_INSERT = 2;

export class KeyCache {
  private readonly entries = new Map<string, Entry>();
  /** Where the sweep of expired entries goes on from (see `sweep`). */
  private cursor: IterableIterator<[string, Entry]> | null = null;
  private readonly inFlight = new Map<string, InFlight>();
  private readonly loader: (id: string) => Promise<KeyMaterial | null>;
  private readonly defaultWindowMs: number;
  private readonly idleExpiryMs: number | null;
  private readonly freshMs: number;
  private readonly staleMs: number;
  private readonly negativeMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;
  private readonly onRefreshError: (id: string, err: unknown) => void;
  readonly stats: KeyCacheStats = { hits: 0, staleHits: 0, negativeHits: 0, misses: 0, loads: 0, evictions: 0 };

  constructor(options: KeyCacheOptions) {
    this.loader = options.load;
    this.defaultWindowMs = options.defaultWindowMs;
    this.idleExpiryMs = options.idleExpiryMs ?? null;
    this.freshMs = options.freshMs ?? 60_000;
    this.staleMs = options.staleMs ?? 300_000;
    this.negativeMs = options.negativeMs ?? 5_000;
    this.maxEntries = options.maxEntries ?? 100_000;
    this.now = options.now ?? Date.now;
    this.onRefreshError = options.onRefreshError ?? (() => undefined);
    if (this.staleMs < this.freshMs) throw new TypeError("staleMs must be at least freshMs");
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * The synchronous fast path: the cached key (or null for a cached "unknown"), or undefined when
   * the caller must `load`. A stale entry is returned and refreshed in the background.
   */
  peek(id: string): VerificationKey | null | undefined {
    const entry = this.entries.get(id);
    if (entry === undefined) {
      this.stats.misses++;
      return undefined;
    }
    const now = this.now();
    if (now < entry.freshUntil) {
      if (entry.key === null) this.stats.negativeHits++;
      else this.stats.hits++;
      return entry.key;
    }
    if (now < entry.staleUntil) {
      this.stats.staleHits++;
      if (!this.inFlight.has(id)) {
        this.load(id).catch((err: unknown) => {
          this.onRefreshError(id, err);
        });
      }
      return entry.key;
    }
    this.entries.delete(id);
    this.stats.misses++;
    return undefined;
  }

  /**
   * The entry cached for `id` whatever its age (the key, null for a cached "unknown", undefined for
   * none), without a reload: while the durable store is out (docs/failures.md) the keys cached
   * before the outage keep serving for its grace, and a reload could only fail.
   */
  cached(id: string): VerificationKey | null | undefined {
    const entry = this.entries.get(id);
    if (entry === undefined) {
      this.stats.misses++;
      return undefined;
    }
    if (entry.key === null) this.stats.negativeHits++;
    else this.stats.staleHits++;
    return entry.key;
  }

  /** Loads (or joins the load already running for) `id`. Rejects when the store fails. */
  load(id: string): Promise<VerificationKey | null> {
    const running = this.inFlight.get(id);
    if (running !== undefined) return running.promise;
    const flight: InFlight = { promise: Promise.resolve(null), superseded: false };
    flight.promise = this.run(id, flight);
    this.inFlight.set(id, flight);
    return flight.promise;
  }

  private async run(id: string, flight: InFlight): Promise<VerificationKey | null> {
    this.stats.loads++;
    try {
      const material = await this.loader(id);
      if (flight.superseded) return await this.load(id);
      const key = material === null ? null : compileKey(material, this.defaultWindowMs, this.idleExpiryMs);
      const now = this.now();
      this.sweep(now);
      if (this.entries.size >= this.maxEntries && !this.entries.has(id)) {
        const oldest = this.entries.keys().next();
        if (oldest.done !== true) this.entries.delete(oldest.value);
      }
      this.entries.set(
        id,
        key === null
          ? { key, freshUntil: now + this.negativeMs, staleUntil: now + this.negativeMs }
          : { key, freshUntil: now + this.freshMs, staleUntil: now + this.staleMs },
      );
      return key;
    } finally {
      if (this.inFlight.get(id) === flight) this.inFlight.delete(id);
    }
  }

  /**
   * Forgets a few entries past their stale window, visiting the entries in turn across calls (a
   * live iterator over the map). An expired entry is otherwise dropped only when its id is asked
   * for again, which a stream of never-repeated unknown ids (an attacker's, negatively cached for
   * `negativeMs`) never does: without this they would fill the cache to `maxEntries` and stay.
   * Every insertion visits SWEEP_PER_INSERT entries, so expired ones cannot accumulate faster
   * than they are found.
   */
  private sweep(now: number): void {
    for (let i = 0; i < SWEEP_PER_INSERT; i++) {
      this.cursor ??= this.entries.entries();
      const next = this.cursor.next();
      if (next.done === true) {
        this.cursor = null;
        return;
      }
      const [id, entry] = next.value;
      if (now >= entry.staleUntil) this.entries.delete(id);
    }
  }

  /** Drops `ids` now; any load of them already running is superseded. */
  evict(ids: Iterable<string>): void {
    for (const id of ids) {
      if (this.entries.delete(id)) this.stats.evictions++;
      const flight = this.inFlight.get(id);
      if (flight !== undefined) {
        flight.superseded = true;
        this.inFlight.delete(id);
      }
    }
  }

  /** The ids cached now (known or known to be unknown). */
  cachedIds(): string[] {
    return [...this.entries.keys()];
  }

  clear(): void {
    this.evict([...this.entries.keys(), ...this.inFlight.keys()]);
  }
}
