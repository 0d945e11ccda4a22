import type { AuditStore } from "../audit/store.js";
import type { KeyRecord, KeyStatus } from "../keys/model.js";
import type { Charge, ChargeState } from "../limits/types.js";

/**
 * The storage interfaces. Durable state (keys now; policies, approvals and audit later) lives
 * behind `DurableStore`: SQLite is the embedded default, PostgreSQL the production backend. Hot
 * state (nonces now; limits, bans and sessions later) lives behind the hot-state interfaces:
 * process memory by default, Redis in production. Each backend implements every primitive
 * atomically, and one contract suite runs against all of them.
 *
 * Every method is asynchronous so that network backends fit; the in-process backends answer
 * synchronously inside the promise.
 */

/** A key row: the record plus its protected material. */
export interface KeyRow extends KeyRecord {
  /** The envelope-encrypted HMAC secret (HMAC keys only). */
  readonly secretEnvelope: Buffer | null;
  /** The salted slow hash of the key's passphrase (OKX keys only). */
  readonly passphraseHash: string | null;
}

/** A change to a key, written in the same transaction as the change itself. */
export interface KeyChange {
  readonly action: "create" | "revoke" | "suspend" | "resume" | "limits";
  readonly actor: string;
  readonly at: number;
  /** Non-secret facts about the change (reason, scopes…). */
  readonly detail: Readonly<Record<string, unknown>>;
}

export interface KeyListFilter {
  readonly account?: string;
  readonly status?: KeyStatus;
  /** Return keys whose id sorts after this one (pagination). */
  readonly after?: string;
  readonly limit: number;
}

export type TransitionResult = { readonly ok: true; readonly row: KeyRow } | { readonly ok: false; readonly reason: "not-found" | "conflict"; readonly current?: KeyStatus };

export interface KeyStore {
  insert(row: KeyRow, change: KeyChange): Promise<void>;
  get(id: string): Promise<KeyRow | undefined>;
  list(filter: KeyListFilter): Promise<KeyRow[]>;
  /**
   * Moves a key to `to` if its status is one of `from`, atomically, recording `change` in the
   * same transaction. Never changes anything else.
   */
  transition(id: string, from: readonly KeyStatus[], to: KeyStatus, reason: string | null, change: KeyChange): Promise<TransitionResult>;
  /** Replaces a key's limit overrides, recording `change` in the same transaction. */
  updateLimits(id: string, limits: Readonly<Record<string, number>>, change: KeyChange): Promise<KeyRow | undefined>;
  /** Records last-use times, batched off the request path. */
  touch(lastUsed: ReadonlyMap<string, number>): Promise<void>;
}

/** Ids of keys that changed, in commit order, for cache eviction across processes. */
export interface ChangeFeed {
  /** Calls `listener` with the ids of keys changed by any process; returns an unsubscribe. */
  subscribe(listener: (keyIds: readonly string[]) => void): () => void;
}

/** Small facts about the deployment, e.g. its environment. */
export interface MetaStore {
  getMeta(key: string): Promise<string | undefined>;
  /** Sets `key` only if it has no value yet; returns the value now stored. */
  initMeta(key: string, value: string): Promise<string>;
}

export interface DurableStore {
  readonly kind: string;
  readonly keys: KeyStore;
  readonly changes: ChangeFeed;
  readonly meta: MetaStore;
  /** The audit log's chain; the store writes a change's entry in the change's own transaction. */
  readonly audit: AuditStore;
  close(): Promise<void>;
}

/** The answer of a replay check. */
export type NonceClaim = "fresh" | "replayed" | "full";

/** Stage 7's hot state: each (key, nonce) pair is accepted once until it expires. */
export interface NonceStore {
  /**
   * Records `nonce` for `keyId` until `expiresAt` (epoch ms). "replayed" if it is already
   * recorded and unexpired; "full" if the store is at capacity (the caller fails closed).
   * May answer synchronously (memory) or with a promise (network stores).
   */
  claim(keyId: string, nonce: string, expiresAt: number, now: number): NonceClaim | Promise<NonceClaim>;
}

/** The answer of an increasing-nonce check. */
export type SequenceClaim = "fresh" | "replayed" | "too-low" | "full";

/**
 * Per-key nonces that must increase (Kraken's rule), with a tolerance window for requests that
 * arrive slightly out of order: a value is accepted once if it is above the highest seen, or at
 * most `window` below it and not seen before.
 */
export interface SequenceStore {
  claim(keyId: string, value: bigint, window: bigint): SequenceClaim | Promise<SequenceClaim>;
}

/** What a scheme needs recorded so that its request cannot be replayed. */
export type ReplayClaim =
  | { readonly kind: "nonce"; readonly keyId: string; readonly value: string; readonly expiresAt: number }
  | { readonly kind: "sequence"; readonly keyId: string; readonly value: bigint; readonly window: bigint };

/**
 * Everything a request consumes, decided at once: its replay claim and every limit it is charged
 * against. All-or-nothing — when anything refuses, nothing is recorded or consumed (except the
 * refusing address's strike toward a ban).
 */
export interface Admission {
  readonly now: number;
  /** The client address, for bans and strikes. */
  readonly ip: string;
  readonly replay: ReplayClaim | null;
  readonly charges: readonly Charge[];
}

export type AdmissionResult =
  | { readonly ok: true; readonly states: readonly ChargeState[] }
  | { readonly ok: false; readonly reason: "replayed" | "too-low" | "full" }
  | { readonly ok: false; readonly reason: "banned"; readonly until: number }
  | {
      readonly ok: false;
      readonly reason: "limited";
      /** Which charge refused. */
      readonly index: number;
      readonly retryAfterMs: number;
      readonly states: readonly ChargeState[];
      /** Set when this refusal got the address banned. */
      readonly bannedUntil: number | null;
    };

export interface FailureResult {
  /** Set when the address is now blocked. */
  readonly ipBlockedUntil: number | null;
  /** Set when the key is now blocked. */
  readonly keyBlockedUntil: number | null;
}

/**
 * The hot state of stages 2, 7 and 9: replay, limits, bans and blocks. Memory in one process;
 * Redis (one Lua script, one round trip per request) across many.
 */
export interface HotStore {
  readonly kind: string;
  admit(admission: Admission): AdmissionResult | Promise<AdmissionResult>;
  /** Records an authentication failure from `ip` (against `keyId` when known). */
  recordFailure(ip: string, keyId: string | null, now: number): FailureResult | Promise<FailureResult>;
  close(): Promise<void>;
}
