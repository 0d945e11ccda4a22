import type { AuditStore } from "../audit/store.js";
import type { KeyGuardrails, KeyRecord, KeyStatus } from "../contract/keys.js";
import type { KeyRisk } from "../contract/behaviour.js";
// The anomaly actions' store (migration 14): a line of its own, so merges stay apart.
import type { AnomalyAction, AnomalyActionRecord, AnomalyActionState } from "../contract/behaviour.js";
import type { Charge, ChargeState } from "../contract/limits.js";
import type { Decimal } from "../contract/operations.js";
import type { AddressAdd, ApprovalTier, HoldState } from "../contract/policy.js";
import type { ReplayClaim } from "../contract/request.js";
import type { ReservationStore } from "../replay/reservations.js";

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
  /**
   * A passphrase hash written before passphrases were kept under the KEK (OKX keys only); sealed
   * into `passphraseEnvelope` and cleared by the next custody open. Null for keys created since.
   */
  readonly passphraseHash: string | null;
  /** The salted slow hash of the key's passphrase, envelope-encrypted (OKX keys only). */
  readonly passphraseEnvelope: Buffer | null;
}

/** A change to a key, written in the same transaction as the change itself. */
export interface KeyChange {
  readonly action: "create" | "revoke" | "suspend" | "resume" | "limits" | "update" | "rotate" | "end-sessions" | "risk";
  readonly actor: string;
  readonly at: number;
  /** Non-secret facts about the change (reason, scopes…). */
  readonly detail: Readonly<Record<string, unknown>>;
}

export interface KeyListFilter {
  readonly account?: string;
  /** Only operator keys (true) or only other keys (false). */
  readonly operator?: boolean;
  readonly status?: KeyStatus;
  /** Return keys whose id sorts after this one (pagination). */
  readonly after?: string;
  /**
   * Only keys whose id or account starts with this text, or whose label contains it, ignoring the
   * case of ASCII letters (the console's search box). Taken literally: `%`, `_` and `\` are not
   * wildcards. An empty text matches every key.
   */
  readonly search?: string;
  readonly limit: number;
}

export type TransitionResult = { readonly ok: true; readonly row: KeyRow } | { readonly ok: false; readonly reason: "not-found" | "conflict"; readonly current?: KeyStatus };

/** The fields of a key that can change after creation (besides its status and last use). */
export interface KeyPatch {
  readonly label?: string;
  readonly scopes?: readonly string[];
  readonly ipAllowlist?: readonly string[];
  readonly limits?: Readonly<Record<string, number>>;
  readonly expiresAt?: number | null;
  readonly sessionTtlMs?: number | null;
  readonly sessionBindAddress?: boolean;
  readonly maxAgeMs?: number | null;
  readonly owner?: string | null;
  /** Replaces the key's guardrails (null: none). */
  readonly guardrails?: KeyGuardrails | null;
  /** Replaces the key's risk state (null: none). */
  readonly risk?: KeyRisk | null;
  /** Increment the session epoch: every session of the key ends. */
  readonly endSessions?: boolean;
}

export type RotationResult =
  | { readonly ok: true; readonly predecessor: KeyRow; readonly successor: KeyRow }
  | { readonly ok: false; readonly reason: "not-found" | "conflict"; readonly current?: KeyStatus; readonly rotatedTo?: string | null };

export interface KeyStore {
  insert(row: KeyRow, change: KeyChange): Promise<void>;
  get(id: string): Promise<KeyRow | undefined>;
  list(filter: KeyListFilter): Promise<KeyRow[]>;
  /**
   * Moves a key to `to` if its status is one of `from`, atomically, recording `change` in the
   * same transaction. Never changes anything else.
   */
  transition(id: string, from: readonly KeyStatus[], to: KeyStatus, reason: string | null, change: KeyChange): Promise<TransitionResult>;
  /**
   * Applies `patch` to a key whose status is one of `from`, atomically, recording `change` in the
   * same transaction. Every status change also increments the session epoch.
   */
  update(id: string, from: readonly KeyStatus[], patch: KeyPatch, change: KeyChange): Promise<TransitionResult>;
  /**
   * Rotation, in one transaction: inserts `successor` (whose `rotatedFrom` names the key) and links
   * the predecessor to it, setting its expiry to `predecessorExpiresAt`, if the predecessor is
   * active or suspended and not rotated yet. Records `change` for the predecessor and `created`
   * for the successor.
   */
  rotate(id: string, successor: KeyRow, predecessorExpiresAt: number, change: KeyChange, created: KeyChange): Promise<RotationResult>;
  /** Records last-use times, batched off the request path. */
  touch(lastUsed: ReadonlyMap<string, number>): Promise<void>;
  /** The wallet owner keys (algorithm `ethereum`) of `address` (EIP-55), any status, oldest first (docs/wallets.md). */
  wallets(address: string): Promise<KeyRow[]>;
  /** The keys directly below `id`: agents it approved (an owner key) or delegated to (an agent). */
  children(id: string): Promise<KeyRow[]>;
  /**
   * Agent registration, in one transaction: every key of `active` must exist with status active
   * (else `inactive`, naming the first that is not), then `rows` are inserted in order with their
   * changes (an id that exists: `exists`). Nothing is written unless all of it is.
   */
  insertAgents(rows: readonly AgentInsert[], active: readonly string[]): Promise<AgentInsertResult>;
  /**
   * Revokes `id` if its status is one of `from`, and every key below it (children, their children…)
   * that is not revoked yet, in one transaction, each with its change record (`change` for the
   * key, `change` with `detail.cascade = id` for those below) and its held operations cancelled.
   */
  revokeTree(id: string, from: readonly KeyStatus[], reason: string | null, change: KeyChange): Promise<TreeRevokeResult>;
}

/** A key to insert with its change record (KeyStore.insertAgents). */
export interface AgentInsert {
  readonly row: KeyRow;
  readonly change: KeyChange;
}

export type AgentInsertResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: "inactive" | "exists"; readonly id: string };

export type TreeRevokeResult =
  | { readonly ok: true; readonly row: KeyRow; readonly below: readonly KeyRow[] }
  | { readonly ok: false; readonly reason: "not-found" | "conflict"; readonly current?: KeyStatus };

/** Ids of keys that changed, in commit order, for cache eviction across processes. */
export interface ChangeFeed {
  /**
   * Calls `listener` with the ids of keys changed by any process; `local` is true when the change
   * was written by this process (and false when it was found by polling). Returns an unsubscribe.
   */
  subscribe(listener: (keyIds: readonly string[], local: boolean) => void): () => void;
}

/**
 * Sessions ended one at a time (logout). The hot store refuses them on every request; this durable
 * record is what a hot store starting empty (a restart; a Redis that restarted) loads again, so
 * that a restart never brings a logged-out session back.
 */
export interface EndedSessionStore {
  /** Records that `sessionId` is refused until `until` (epoch ms); durable when it resolves. */
  endSession(sessionId: string, until: number, now: number): Promise<void>;
  /** The sessions still refused at `now`: id -> until. */
  endedSessions(now: number): Promise<ReadonlyMap<string, number>>;
}

/** Small facts about the deployment, e.g. its environment. */
export interface MetaStore {
  getMeta(key: string): Promise<string | undefined>;
  /** Sets `key` only if it has no value yet; returns the value now stored. */
  initMeta(key: string, value: string): Promise<string>;
  /** Sets `key` to `value`, whatever it held. */
  setMeta(key: string, value: string): Promise<void>;
}

/** One key row's envelopes, for KEK rotation and custody status. */
export interface KeyEnvelopes {
  readonly id: string;
  readonly secretEnvelope: Buffer | null;
  readonly passphraseEnvelope: Buffer | null;
  /** A passphrase hash still in clear (written before migration 5), to be sealed. */
  readonly legacyPassphraseHash: string | null;
}

/** Which envelope of a key row. */
export type EnvelopeColumn = "secret" | "passphrase";

/** One held operation's envelopes (docs/approvals.md), for KEK rotation and custody status. */
export interface HeldEnvelopes {
  /** The operation id (bound into both envelopes). */
  readonly id: string;
  /** The exact held request, or a change's payload (custody/envelope.ts HELD_REQUEST_PURPOSE). */
  readonly held: Buffer;
  /** The upstream's answer once released (HELD_OUTCOME_PURPOSE), or null. */
  readonly outcome: Buffer | null;
}

/** Which envelope of a held operation. */
export type HeldEnvelopeColumn = "held" | "outcome";

/** A rewrapped envelope for one row's column: a key row's (`EnvelopeColumn`) or a held operation's (`HeldEnvelopeColumn`). */
export interface EnvelopeReplacement<Column extends string = EnvelopeColumn> {
  readonly id: string;
  readonly column: Column;
  /** Replaced only if the row still holds exactly this envelope (compare-and-swap). */
  readonly expected: Buffer;
  readonly next: Buffer;
}

/**
 * Custody's view of the durable store: every envelope it holds, and compare-and-swap replacement
 * for a KEK rotation's rewrap. A replacement never writes the change feed: a rewrap changes the
 * wrapped data key only, never a secret, so every cached key stays valid.
 */
export interface EnvelopeStore {
  /** Key rows with an envelope or a legacy passphrase hash, by id after `after`, at most `limit`. */
  keyEnvelopes(after: string, limit: number): Promise<KeyEnvelopes[]>;
  /** Applies each replacement whose row still holds `expected`, in one transaction; resolves to how many did. */
  replaceKeyEnvelopes(replacements: readonly EnvelopeReplacement[]): Promise<number>;
  /** Held operations' envelopes (every state: a released one's answer is read later), by id after `after`, at most `limit`. */
  heldEnvelopes(after: string, limit: number): Promise<HeldEnvelopes[]>;
  /** As `replaceKeyEnvelopes`, for held operations' envelopes. */
  replaceHeldEnvelopes(replacements: readonly EnvelopeReplacement<HeldEnvelopeColumn>[]): Promise<number>;
  /** Stores `envelope` and clears the clear hash, only if the row still holds `expectedHash`. */
  sealLegacyPassphrase(id: string, expectedHash: string, envelope: Buffer): Promise<boolean>;
  /** Meta entries whose key starts with `prefix`. */
  metaEntries(prefix: string): Promise<{ key: string; value: string }[]>;
  /** Sets meta `key` to `next` only if it still holds `expected`. */
  replaceMeta(key: string, expected: string, next: string): Promise<boolean>;
  /** The KEK floor (storage/kek-floor.ts): the lowest KEK version an envelope may be written under; 0 when none. */
  kekFloor(): Promise<number>;
  /**
   * In one transaction: counts the envelopes (key rows, held operations, envelope meta entries)
   * under a KEK version below `floor`; when there are none, raises the floor to `floor` (never
   * lowers it). Every envelope write (key insert and rotation, a hold and its outcome, rewrap,
   * legacy sealing, envelope meta entries) checks the floor in its own transaction and is refused
   * with CUSTODY_KEK_RETIRED below it.
   */
  raiseKekFloor(floor: number): Promise<{ readonly raised: boolean; readonly floor: number; readonly below: number }>;
}

/** One version of the policy (docs/policy.md): never edited; a later version supersedes it. */
export interface PolicyVersionRow {
  readonly version: number;
  /** The document's canonical JSON (RFC 8785). */
  readonly document: string;
  /** SHA-256 (hex) of `document`. */
  readonly digest: string;
  readonly rules: number;
  readonly createdAt: number;
  /** Who applied it (`key:<id>`, `cli:<user>`); a released hold names its initiator. */
  readonly createdBy: string;
}

export type PolicyVersionSummary = Omit<PolicyVersionRow, "document">;

/**
 * The versioned policy documents. The version in force is the latest; nothing is ever edited or
 * deleted (going back is applying the old document again, as a new version).
 */
export interface PolicyStore {
  /** The latest version's number and digest (a cheap read, polled), or null when none was ever applied. */
  latest(): Promise<{ readonly version: number; readonly digest: string } | null>;
  get(version: number): Promise<PolicyVersionRow | undefined>;
  /** Every version, newest first (at most `limit`). */
  versions(limit: number): Promise<PolicyVersionSummary[]>;
  /**
   * Inserts `row` as the version in force if the latest version is still `row.version - 1` (0:
   * none), with its audit entry (`policy.change`, `detail`) in the same transaction. Otherwise
   * changes nothing and answers the latest version.
   */
  insert(row: PolicyVersionRow, detail: Readonly<Record<string, unknown>>): Promise<{ readonly ok: true } | { readonly ok: false; readonly latest: number }>;
}

/** An entry of an account's withdrawal address book. */
export interface AddressRow extends Omit<AddressAdd, "kind"> {
  readonly id: string;
  readonly addedAt: number;
  readonly addedBy: string;
  /** added + the cooldown: before this moment the address is not "known" to the policy. */
  readonly usableFrom: number;
  readonly removedAt: number | null;
  readonly removedBy: string | null;
}

export interface AddressListFilter {
  readonly account?: string;
  readonly asset?: string;
  /** Include removed entries (default: only entries in the book). */
  readonly removed?: boolean;
  readonly limit: number;
}

export interface AddressStore {
  /**
   * Adds `row` (audited `address.add` in the same transaction) unless the account's book already
   * holds the same asset, address, network and tag (not removed): then answers that entry.
   */
  add(row: AddressRow): Promise<{ readonly ok: true } | { readonly ok: false; readonly existing: AddressRow }>;
  /**
   * Removes an entry now (audited `address.remove`): only if it is in the book and, when `account`
   * is given, belongs to it. Answers the removed entry, or undefined.
   */
  remove(id: string, account: string | null, actor: string, at: number): Promise<AddressRow | undefined>;
  get(id: string): Promise<AddressRow | undefined>;
  list(filter: AddressListFilter): Promise<AddressRow[]>;
  /** The entries in `account`'s book (not removed) for this asset and address. */
  lookup(account: string, asset: string, address: string): Promise<AddressRow[]>;
}

/** What the velocity ledger records for an operation the policy did not block. */
export interface SpendEntry {
  /** The operation id the decision was made under (`forget` takes it back). */
  readonly ref: string;
  readonly kind: string;
  readonly keyId: string | null;
  readonly account: string | null;
  readonly asset: string;
  /** The value in the reference currency; null when unknown (no reference price). */
  readonly value: Decimal | null;
  readonly at: number;
}

/** The windows a decision reads: per key or per account, what was recorded for `kind` in (at - windowMs, at]. */
export interface SpendQuery {
  readonly kind: string;
  readonly keyId: string | null;
  readonly account: string | null;
  readonly at: number;
  readonly windows: readonly { readonly per: "key" | "account"; readonly windowMs: number }[];
}

/**
 * The velocity ledger. `decide` reads the sums of the windows, calls `choose` with them
 * (synchronously: it is the policy engine), and records what it returns, in one atomic step
 * (in SQLite one immediate transaction, serialised across connections and processes): two
 * decisions can never both pass a cap only one fits under.
 */
export interface SpendStore {
  decide<T>(query: SpendQuery, choose: (sums: readonly (Decimal | null)[]) => { readonly record: SpendEntry | null; readonly result: T }): Promise<T>;
  /** Reads the sums only (a dry run). */
  sums(query: SpendQuery): Promise<readonly (Decimal | null)[]>;
  /** Removes what was recorded under `ref`; resolves to how many entries. */
  forget(ref: string): Promise<number>;
}

/**
 * Whether this process can reach its durable store (docs/failures.md). Read on the request path,
 * so it is a field, kept current by the store itself: no I/O per request. SQLite, a file of this
 * host, is never "out" and has none.
 */
export interface StoreAvailability {
  /** When this process lost the store (epoch ms, the store's clock), or null while it has it. */
  readonly outageSince: number | null;
  /**
   * Calls `listener` at every change: the outage's start (its time), or null once the store is back
   * (for PostgreSQL: its change feed reconnected and caught up). Returns an unsubscribe.
   */
  watch(listener: (outageSince: number | null) => void): () => void;
}

export interface DurableStore {
  readonly kind: string;
  /** Outages of a store on another host (PostgreSQL); absent: it cannot be out (SQLite). */
  readonly availability?: StoreAvailability;
  readonly keys: KeyStore;
  readonly changes: ChangeFeed;
  readonly meta: MetaStore;
  readonly envelopes: EnvelopeStore;
  /** Increasing-nonce reservations: what replay protection keeps across restarts (replay/reservations.ts). */
  readonly replay: ReservationStore;
  /** Sessions ended by logout, kept so that a restart of the hot state does not bring them back. */
  readonly logouts: EndedSessionStore;
  /** The audit log's chain; the store writes a change's entry in the change's own transaction. */
  readonly audit: AuditStore;
  /** Where the audit log's decision batches are appended, when not `audit` (a writer off the request thread). */
  readonly decisions?: AuditStore;
  /** Versioned policy documents (docs/policy.md). */
  readonly policies: PolicyStore;
  /** The withdrawal address books. */
  readonly addresses: AddressStore;
  /** The velocity ledger of the policy's amount-over-a-window conditions. */
  readonly spend: SpendStore;
  /** Approvers and held operations (docs/approvals.md). */
  readonly holds: HoldStore;
  readonly behaviour: BehaviourStateStore;
  /** The behaviour stage's anomaly actions (docs/behaviour.md, "Responses"). */
  readonly anomalies: AnomalyActionStore;
  /** Passkeys (WebAuthn credentials) bound to API keys, and their single-use challenges (docs/passkeys.md). */
  readonly passkeys: PasskeyStore;
  /** The gateway's HPKE key pairs for sealed orders (docs/sealed-orders.md), private halves in envelopes. */
  readonly hpke: HpkeKeyStore;
  /**
   * A store that several hosts share (PostgreSQL) excludes KEK rotations itself, where a lock file
   * in one host's data directory cannot: see `CustodyLock`. Absent for a store only one host opens
   * (SQLite: the data directory's lock file is enough).
   */
  readonly custodyLock?: CustodyLock;
  close(): Promise<void>;
}

/** One KEK rotation at a time on a store, across every host that opens it (custody/rotation.ts). */
export interface CustodyLock {
  /**
   * Runs `fn` holding the store's custody lock; waits up to `waitMs` (default 5000) for another
   * holder, then refuses with CUSTODY_ROTATION_IN_PROGRESS. `stillHeld` answers whether the lock
   * is still held (its connection alive): check it before a step that must not interleave.
   */
  withLock<T>(what: string, fn: (stillHeld: () => Promise<boolean>) => Promise<T>, waitMs?: number): Promise<T>;
}

// --- approvers and held operations (docs/approvals.md) ------------------------------------------

/** A person who approves held operations, with their own Ed25519 key. */
export interface ApproverRow {
  /** A person's name (keys/input.ts PERSON_NAME_RE). */
  readonly name: string;
  /** Their Ed25519 public key, SPKI PEM. */
  readonly publicKey: string;
  readonly groups: readonly string[];
  readonly addedAt: number;
}

/** A held operation as stored. `held` and `outcome` are envelopes (custody/envelope.ts). */
export interface HeldRow {
  /** `op_` and 128 random bits (hex). */
  readonly id: string;
  readonly state: HoldState;
  /** The operation's kind (`http` requests: an OperationKind; changes: `policy.change`, `address.add`). */
  readonly kind: string;
  /** What release does: forward a request, or apply a change. */
  readonly target: "request" | "change";
  readonly keyId: string | null;
  readonly account: string | null;
  /** The person behind the initiating key: they may not approve it. */
  readonly owner: string | null;
  /** The operation's summary (JSON), exactly as the digest covers it. */
  readonly summary: unknown;
  readonly policyVersion: number;
  readonly rule: string;
  readonly tiers: readonly ApprovalTier[];
  readonly notBefore: number | null;
  readonly expiresAt: number;
  readonly createdAt: number;
  readonly updatedAt: number;
  /** SHA-256 (hex) of the exact held bytes. */
  readonly requestDigest: string;
  readonly held: Buffer;
  /** The upstream's status (a request), or 200 for a change applied; null until released. */
  readonly outcomeStatus: number | null;
  readonly outcome: Buffer | null;
  readonly claimedBy: string | null;
  readonly claimedAt: number | null;
  /** Why it ended as it did (who cancelled, the key revoked…), or null. */
  readonly reason: string | null;
}

/** One approver's decision on a held operation. */
export interface ApprovalRow {
  readonly operationId: string;
  readonly approver: string;
  readonly decision: "approve" | "reject";
  /** The tier (index into `tiers`) an approval counts toward; null for a rejection. */
  readonly tier: number | null;
  /** Base64 Ed25519 signature over the decision message (holds/digest.ts). */
  readonly signature: string;
  readonly at: number;
}

export interface HoldListFilter {
  readonly state?: HoldState;
  readonly keyId?: string;
  readonly limit: number;
}

export type HoldResult =
  | { readonly ok: true; readonly row: HeldRow }
  | { readonly ok: false; readonly reason: "not-found" | "state"; readonly current?: HoldState };

export type DecisionResult =
  | HoldResult
  | { readonly ok: false; readonly reason: "expired" | "duplicate" | "not-in-group" | "approver-unknown" };

/** What one pass of the release loop moved (ids). */
export interface Advanced {
  readonly ready: readonly string[];
  readonly expired: readonly string[];
  readonly unknown: readonly string[];
}

/**
 * Approvers and held operations. Every transition is a compare-and-swap on the state in one
 * immediate transaction, with its audit entry in the same transaction; `actor` is who made the
 * change (`key:<id>`, `cli:<user>`, `approver:<name>`, `gateway`).
 */
export interface HoldStore {
  /**
   * Registers an approver, or adds groups to one registered with the same public key; "exists"
   * when the name is registered with another key.
   */
  addApprover(row: ApproverRow, actor: string): Promise<{ readonly ok: true; readonly row: ApproverRow } | { readonly ok: false; readonly reason: "exists" }>;
  /** Removes an approver (their past decisions stay); false when there is none. */
  removeApprover(name: string, actor: string, at: number): Promise<boolean>;
  approver(name: string): Promise<ApproverRow | undefined>;
  approvers(): Promise<ApproverRow[]>;
  /** Stores a new held operation; refused (CUSTODY_KEK_RETIRED) when `held` is under a KEK version below the floor. */
  insertHold(row: HeldRow, actor: string): Promise<void>;
  hold(id: string): Promise<HeldRow | undefined>;
  holds(filter: HoldListFilter): Promise<HeldRow[]>;
  approvals(id: string): Promise<ApprovalRow[]>;
  /**
   * Records an approver's decision on a pending operation, in one transaction that checks: the
   * state (pending), the expiry, that the approver is still registered with `publicKey`, has not
   * decided already, and (an approval) is in a group of a tier that still needs one (the first
   * such tier, in order, is the one it counts toward). An approval that meets every tier with the
   * delay over makes it ready; a rejection rejects it when `rejectCancels`.
   */
  decide(
    id: string,
    decision: { readonly approver: string; readonly publicKey: string; readonly decision: "approve" | "reject"; readonly signature: string; readonly at: number; readonly reason?: string | null },
    rejectCancels: boolean,
  ): Promise<DecisionResult>;
  /** Cancels a pending or ready operation (of `keyId` only, when given). */
  cancel(id: string, keyId: string | null, at: number, actor: string, reason: string): Promise<HoldResult>;
  /**
   * One pass of the release loop: pending operations whose tiers are met and delay over become
   * ready; pending or ready ones past their expiry expire; claims older than `leaseMs` (the
   * process died mid-release) become unknown.
   */
  advance(now: number, leaseMs: number): Promise<Advanced>;
  /** Ids of ready operations, oldest first. */
  readyIds(limit: number): Promise<string[]>;
  /**
   * ready -> releasing, claimed by `by`, in one transaction that also checks the initiating key is
   * still active (status active, not expired) — else the operation is cancelled there and then.
   */
  claim(id: string, by: string, now: number): Promise<HoldResult>;
  /**
   * releasing (or unknown, if the lease ran out meanwhile) -> released, by its claimant only;
   * refused (CUSTODY_KEK_RETIRED) when `outcome` is under a KEK version below the floor.
   */
  finish(id: string, by: string, now: number, status: number, outcome: Buffer): Promise<boolean>;
  /** Ids of operations that ended without release (cancelled, rejected, expired) not settled yet. */
  unsettled(limit: number): Promise<string[]>;
  /** Marks one settled (its policy value forgotten); false when another process did first. */
  settle(id: string): Promise<boolean>;
}

/**
 * Everything a request consumes, decided at once: its replay claim and every limit it is charged
 * against. All-or-nothing — when anything refuses, nothing is recorded or consumed (except the
 * refusing address's strike toward a ban).
 */
export interface Admission {
  readonly now: number;
  /** The client address (its group: an IPv6 client by its prefix), for bans and strikes. */
  readonly ip: string;
  readonly replay: ReplayClaim | null;
  readonly charges: readonly Charge[];
  /** The session the request is signed with (its id), checked against logged-out sessions; or null. */
  readonly session: string | null;
}

export type AdmissionResult =
  | { readonly ok: true; readonly states: readonly ChargeState[] }
  | { readonly ok: false; readonly reason: "replayed" | "too-low" | "fenced" | "full" | "session-revoked" }
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
  /** Set when the key is now blocked for requests from this address. */
  readonly keyBlockedUntil: number | null;
}

export interface StrikeResult {
  /** Set when the address is banned (by this strike, or already). */
  readonly bannedUntil: number | null;
}

/**
 * The hot state of stages 2, 7 and 9: replay, limits, bans and blocks. Memory in one process;
 * Redis (one Lua script, one round trip per request) across many.
 */
/**
 * One order's reservation in the open-notional ledger (docs/guardrails.md, "Open notional"):
 * amounts are non-negative integers in ledger units (operations/open-orders.ts `LEDGER_SCALE`),
 * an order's rounded up and a cap rounded down, so the ledger never under-counts.
 */
export interface OpenReservation {
  readonly keyId: string;
  /** Unique per order: the request id. */
  readonly id: string;
  readonly amount: bigint;
  /** The key's maxOpenNotional in ledger units: the open total with this order must stay at or below it. */
  readonly cap: bigint;
  /** The order's symbol, upper case without separators: a cancel that names a symbol matches only it. */
  readonly symbol: string;
  readonly now: number;
  /** When the reservation ages out (the gateway sees no fills of resting orders). */
  readonly expiresAt: number;
  /** Reservations a key may hold at once: one more is refused ("full"), never stored. */
  readonly maxEntries: number;
}

export type ReserveResult =
  | { readonly ok: true; /** The key's open total with this order. */ readonly open: bigint }
  | { readonly ok: false; readonly reason: "cap" | "full"; /** The key's open total before it. */ readonly open: bigint };

/**
 * The open-notional ledger of the hot store: per key, the orders it has open as far as the
 * gateway can tell. Every method is atomic on its own (memory: one turn of the event loop; Redis:
 * one Lua script or one command), so gateways sharing a Redis share one ledger per key, and two
 * orders racing for the last room under a cap cannot both get it. Expired reservations are
 * dropped by every reserve and release-by-order (and never counted).
 */
export interface OpenOrderLedger {
  /** Reserves `r.amount` if the key's open total plus it stays at or below `r.cap`. */
  reserve(r: OpenReservation): ReserveResult | Promise<ReserveResult>;
  /** Attaches the venue's order references to reservation `id` (false: it is gone already). */
  bind(keyId: string, id: string, refs: readonly string[]): boolean | Promise<boolean>;
  /** Removes reservation `id` (false: it was not there). */
  release(keyId: string, id: string): boolean | Promise<boolean>;
  /**
   * Removes every reservation of the key bound to one of `refs` (and, when `symbol` is given, on
   * that symbol): how many were removed.
   */
  releaseOrders(keyId: string, symbol: string | null, refs: readonly string[], now: number): number | Promise<number>;
  /** The key's open total and reservations now. */
  open(keyId: string, now: number): OpenTotal | Promise<OpenTotal>;
}

export interface OpenTotal {
  readonly total: bigint;
  readonly entries: number;
}

export interface HotStore {
  readonly kind: string;
  /**
   * The open-notional ledger (docs/guardrails.md); absent: this store keeps none, and an order of
   * a key with maxOpenNotional is refused HOT_STORE_UNAVAILABLE (fail closed).
   */
  readonly openOrders?: OpenOrderLedger;
  /**
   * Resolves once the store answers a trivial command (Redis: PING), rejects when it cannot
   * (readiness, docs/operations-endpoints.md). Absent: the store lives in this process.
   */
  ping?(): Promise<void>;
  admit(admission: Admission): AdmissionResult | Promise<AdmissionResult>;
  /**
   * When this store's replay memory began (epoch ms; -Infinity when nothing was accepted before
   * it): a single-use claim of a request that could have been accepted earlier is refused,
   * "fenced" (replay/claims.ts). Rejects when it cannot be known (Redis unreachable).
   */
  epoch(): Promise<number>;
  /**
   * Records an authentication failure from `ip` (an address group): it counts toward a block of
   * the address, and, when `key` is given (a key on one surface, "scope|keyId"), toward a block of
   * that key for requests from this address only — never of the key everywhere.
   */
  recordFailure(ip: string, key: string | null, now: number): FailureResult | Promise<FailureResult>;
  /**
   * One strike for `ip`, as a request refused by a limit earns at admission: a request the
   * gateway verified (a signature checked) and then refused. Too many strikes, a ban (the same
   * strikes and bans as `admit`'s).
   */
  strike(ip: string, now: number): StrikeResult | Promise<StrikeResult>;
  /**
   * Ends the session `sessionId` (logout): every later admission of a request signed with it is
   * refused ("session-revoked") until `until` (epoch ms; after it, the session has expired anyway).
   */
  revokeSession(sessionId: string, until: number, now: number): void | Promise<void>;
  close(): Promise<void>;
}

/**
 * The local stand-in for a shared hot store that cannot answer (degradable routes): at the start of
 * each outage it reads the durable increasing-nonce reservations (as floors) and logouts again
 * (`reload`), so a Kraken request or a logout the shared store saw before the outage holds in it
 * too. (Its single-use fence is its own start: a public or read request the shared store accepted
 * may be accepted once more during an outage; docs/replay.md.)
 */
export interface FallbackHotStore extends HotStore {
  reload(): void;
}

/** What gateways tell each other at once (DESIGN.md: revocation fans out over Redis pub/sub). */
export type BusMessage =
  | { readonly kind: "keys"; readonly ids: readonly string[] }
  | { readonly kind: "session-ended"; readonly sessionId: string; readonly keyId: string }
  /** The bus lost messages (a reconnection): everything cached must be checked again. */
  | { readonly kind: "resync" };

/**
 * A bus between the gateway processes of a deployment: a change made in one (a key revoked
 * through its admin API, a session logged out) reaches every other within milliseconds, instead
 * of at their next poll of the durable store. Delivery is best effort; a subscriber that may have
 * missed messages is told so ("resync"). A process never receives its own messages.
 */
export interface ChangeBus {
  readonly kind: string;
  publish(message: BusMessage): void;
  subscribe(listener: (message: BusMessage) => void): () => void;
  close(): Promise<void>;
}

// --- behaviour state (docs/behaviour.md) ----------------------------------------------------------

/** The largest behaviour state a store keeps (bytes): the bound of 2 KB per key. */
export const BEHAVIOUR_STATE_MAX_BYTES = 2_048;

/**
 * Each key's and account's behaviour state (opaque bytes, at most 2,048), kept across restarts and,
 * with Redis, shared by every gateway process.
 */
export interface BehaviourStateStore {
  readonly kind: string;
  /** The states of `ids` that exist. */
  load(ids: readonly string[]): Promise<Map<string, Uint8Array>>;
  /**
   * Read-modify-write, atomic per id: `apply(id, current)` returns the new bytes for `id` (current:
   * null when none). When another process wrote an id between the read and the write, `apply` is
   * called again with the newer bytes (it must be a pure function of its input and what the caller
   * holds), up to a bounded number of retries; then the update of that id rejects with a coded error.
   */
  update(ids: readonly string[], apply: (id: string, current: Uint8Array | null) => Uint8Array): Promise<void>;
  /** Forgets the states of `ids`. */
  remove(ids: readonly string[]): Promise<void>;
  /** Every id with a state, in pages (`after`: the last id of the previous page). */
  ids(after: string | null, limit: number): Promise<string[]>;
}

// --- anomaly actions (docs/behaviour.md, "Responses") -------------------------------------------

/** Which anomaly actions to list (every filter optional), newest first. */
export interface AnomalyActionFilter {
  readonly keyId?: string;
  readonly account?: string;
  readonly state?: AnomalyActionState;
  readonly action?: AnomalyAction;
  /** Paging: only actions older than this one (an action id from the previous page). */
  readonly before?: string;
  /** At most this many (default 100, at most 1000). */
  readonly limit?: number;
}

/** The anomaly actions the responder took (anomaly/responder.ts), each with its state. */
export interface AnomalyActionStore {
  /** Stores a new action; an id already stored is a fault (throws). */
  insert(record: AnomalyActionRecord): Promise<void>;
  get(id: string): Promise<AnomalyActionRecord | undefined>;
  list(filter?: AnomalyActionFilter): Promise<AnomalyActionRecord[]>;
  /**
   * Moves the action from `from` to `to` atomically (undone: with when and by whom); the record
   * after the change, or undefined when it is not in `from` (or does not exist): someone else won.
   */
  transition(id: string, from: AnomalyActionState, to: AnomalyActionState, at: number, by: string | null): Promise<AnomalyActionRecord | undefined>;
  /** Revokes whose grace has passed (dueAt ≤ now) and that are still active, oldest due first. */
  due(now: number, limit: number): Promise<AnomalyActionRecord[]>;
}

// --- passkeys (docs/passkeys.md) ------------------------------------------------------------------

/**
 * A passkey: a WebAuthn credential registered to an API key (an operator or account admin key),
 * with which the console signs in as that key. Nothing here is a secret: the public key verifies
 * assertions, it cannot make one.
 */
export interface PasskeyRow {
  /** The credential id, base64url (as WebAuthn's `rawId`). */
  readonly id: string;
  /** The API key it signs in as. */
  readonly keyId: string;
  readonly account: string;
  /** The credential's public key, COSE, base64url. */
  readonly publicKey: string;
  /** The signature counter last seen (0: the authenticator keeps none). */
  readonly counter: number;
  /** The transports the browser reported ("internal", "usb", "hybrid"…), as hints. */
  readonly transports: readonly string[];
  readonly label: string;
  readonly createdAt: number;
  readonly lastUsedAt: number | null;
}

/** What a challenge was issued for. */
export type PasskeyCeremony = "registration" | "authentication";

/** A challenge issued and not yet spent. */
export interface PasskeyChallengeRow {
  /** The challenge, base64url (what the browser puts in clientDataJSON). */
  readonly challenge: string;
  readonly ceremony: PasskeyCeremony;
  /** Registration: the key registering (the caller). Authentication: null (any credential may answer). */
  readonly keyId: string | null;
  /** Registration: the label the credential will have. */
  readonly label: string | null;
  readonly expiresAt: number;
}

/**
 * Passkeys and their challenges. Every change is atomic in the backend; a registration or a
 * removal writes its audit entry (`passkey.register`, `passkey.remove`) in its own transaction.
 */
export interface PasskeyStore {
  /**
   * The random WebAuthn user handle of `keyId` (base64url): the one stored, or `candidate`,
   * stored now (of two processes choosing at once, both get the first stored).
   */
  userHandle(keyId: string, candidate: string): Promise<string>;
  /** Stores a credential, audited as `passkey.register` by `actor`; false when its id is already stored (to any key). */
  insert(row: PasskeyRow, actor: string): Promise<boolean>;
  get(id: string): Promise<PasskeyRow | undefined>;
  /** The key's passkeys, oldest first. */
  list(keyId: string): Promise<PasskeyRow[]>;
  /** Removes the key's credential `id`, audited as `passkey.remove` by `actor`; the row removed, or undefined (none such for that key). */
  remove(id: string, keyId: string, actor: string, at: number): Promise<PasskeyRow | undefined>;
  /**
   * Moves the credential's counter from `from` to `to` and its last use to `at`, atomically: false
   * when the counter is no longer `from` (another sign-in with the same credential won).
   */
  advance(id: string, from: number, to: number, at: number): Promise<boolean>;
  /** Stores a challenge (and drops expired ones, a bounded number at a time). */
  putChallenge(row: PasskeyChallengeRow, now: number): Promise<void>;
  /**
   * Spends a challenge: removes it and returns it, or undefined when it was never issued, was spent
   * already (by any process) or has expired. At most one caller ever gets a given challenge.
   */
  takeChallenge(challenge: string, now: number): Promise<PasskeyChallengeRow | undefined>;
}

// --- HPKE keys of the sealed order flow (docs/sealed-orders.md) ---------------------------------

/**
 * One of the gateway's HPKE key pairs (X25519). Generations number the keys one after another:
 * the key of generation n + 1 replaces the key of generation n, and only one row can hold a
 * generation, so two processes rotating at once make one key.
 */
export interface HpkeKeyRow {
  /** The key id clients name in `Portcullis-Sealed` (base64url, 16 characters). */
  readonly id: string;
  readonly generation: number;
  /** The raw 32-byte X25519 public key, base64url. */
  readonly publicKey: string;
  /** The raw private key in an envelope (custody/envelope.ts, purpose `hpke-private`); null once retired (erased). */
  readonly privateEnvelope: Buffer | null;
  readonly createdAt: number;
  /** When it stops being the current key (epoch ms); it is still accepted for the grace after. */
  readonly notAfter: number;
  /** When it was retired (its private half erased), or null. */
  readonly retiredAt: number | null;
}

export interface HpkeKeyStore {
  /** The keys not retired, newest generation first. */
  live(): Promise<HpkeKeyRow[]>;
  /**
   * Inserts `row` unless a row of its generation exists (another process rotated first); resolves
   * to the row that holds the generation either way. Refused with CUSTODY_KEK_RETIRED when the
   * envelope is under a KEK version below the floor.
   */
  insert(row: HpkeKeyRow): Promise<HpkeKeyRow>;
  /** Retires (erases the private half of) every live key whose `notAfter` is at or before `before`; resolves to how many. */
  retire(before: number, now: number): Promise<number>;
  /** For a KEK rotation's rewrap: the live keys' envelopes, by id after `after`, at most `limit`. */
  envelopes(after: string, limit: number): Promise<HpkeEnvelopes[]>;
  /** Applies each replacement whose row still holds `expected`, in one transaction that checks the KEK floor; resolves to how many did. */
  replaceEnvelopes(replacements: readonly EnvelopeReplacement<"private">[]): Promise<number>;
}

/** A live HPKE key's envelope (custody/envelope.ts HPKE_PRIVATE_PURPOSE, bound to its id). */
export interface HpkeEnvelopes {
  readonly id: string;
  readonly private: Buffer;
}
