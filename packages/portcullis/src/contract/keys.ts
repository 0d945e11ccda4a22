import type { KeyRisk } from "./behaviour.js";
import type { AgentTerms } from "@portcullis/client/wallet";
import type { Environment } from "./ids.js";

/**
 * The credential behind a key: an HMAC secret, or a public key whose private half the user keeps.
 * `secp256k1` is an ECDSA key on the curve of Bitcoin and Ethereum (an agent's key), for the native
 * scheme only. `ethereum` is a wallet owner key: its `publicKey` is the wallet's EIP-55 address; it
 * signs no HTTP request, but logs on with EIP-4361 / EIP-712 and approves agents (docs/wallets.md).
 */
export const KEY_ALGORITHMS = ["hmac-sha256", "ed25519", "ecdsa-p256", "rsa", "secp256k1", "ethereum"] as const;
export type KeyAlgorithm = (typeof KEY_ALGORITHMS)[number];

/** Stored status. `expired` is derived from `expiresAt` and never stored. */
export const KEY_STATUSES = ["active", "suspended", "revoked"] as const;
export type KeyStatus = (typeof KEY_STATUSES)[number];
export type EffectiveStatus = KeyStatus | "expired";

/**
 * RFC 9421 algorithm names Portcullis verifies (section 3.3 of the RFC), and
 * `ecdsa-secp256k1-sha256`: ECDSA on secp256k1 over SHA-256 of the signature base, r || s (64
 * bytes), defined as `ecdsa-p256-sha256` is (docs/native-scheme.md).
 */
export const NATIVE_ALGORITHMS = ["hmac-sha256", "ed25519", "ecdsa-p256-sha256", "rsa-pss-sha512", "rsa-v1_5-sha256", "ecdsa-secp256k1-sha256"] as const;
export type NativeAlgorithm = (typeof NATIVE_ALGORITHMS)[number];

/** The signing schemes a key may be used with: the native one and the exchange dialects. */
export const DIALECTS = ["native", "binance", "kraken", "coinbase", "okx", "bybit"] as const;
export type Dialect = (typeof DIALECTS)[number];

/**
 * Which credential types each scheme can carry (a venue's scheme fixes its algorithms): Kraken
 * and OKX sign only with HMAC; Coinbase CDP keys are ES256 or EdDSA; Bybit has HMAC and RSA;
 * Binance has HMAC, Ed25519 and RSA. No venue signs with secp256k1: native only.
 */
export const DIALECT_ALGORITHMS: Readonly<Record<Dialect, readonly KeyAlgorithm[]>> = {
  native: KEY_ALGORITHMS,
  binance: ["hmac-sha256", "ed25519", "rsa"],
  kraken: ["hmac-sha256"],
  coinbase: ["ecdsa-p256", "ed25519"],
  okx: ["hmac-sha256"],
  bybit: ["hmac-sha256", "rsa"],
};

/** The freshness window for `created`: default 5 s, a key may widen it up to 60 s. */
export const DEFAULT_WINDOW_MS = 5_000;
export const MAX_WINDOW_MS = 60_000;

/** A key as stored and as shown: no secret material, ever. */
export interface KeyRecord {
  readonly id: string;
  readonly environment: Environment;
  readonly account: string;
  readonly subAccount: string | null;
  readonly label: string;
  readonly algorithm: KeyAlgorithm;
  /** SPKI PEM of the public key; null for HMAC keys. */
  readonly publicKey: string | null;
  readonly scopes: readonly string[];
  /** Canonical CIDR blocks; empty means any address. */
  readonly ipAllowlist: readonly string[];
  readonly dialects: readonly Dialect[];
  /** Epoch ms, or null for no expiry. */
  readonly expiresAt: number | null;
  /** Per-key freshness window in ms, or null for the gateway default. */
  readonly windowMs: number | null;
  readonly status: KeyStatus;
  readonly statusReason: string | null;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly lastUsedAt: number | null;
  /** Incremented on every change; lets caches and clients detect stale copies. */
  readonly revision: number;
  /** Per-key limit overrides by limit name (a market maker gets more); empty for none. */
  readonly limits: Readonly<Record<string, number>>;
  /**
   * The key's session epoch: every session token carries the epoch it was issued under, and a
   * token whose epoch is not the key's current one is refused. Revoking, suspending or resuming
   * the key, changing its scopes, IP allowlist or address binding, or ending its sessions
   * increments it, which ends every session of the key at once.
   */
  readonly sessionEpoch: number;
  /** Lifetime of the key's sessions in ms, or null for the gateway default (15 min). */
  readonly sessionTtlMs: number | null;
  /** Sessions of this key are bound to the address they logged on from. */
  readonly sessionBindAddress: boolean;
  /** The key this one was rotated from (its predecessor), or null. */
  readonly rotatedFrom: string | null;
  /** The key this one was rotated to (its successor), or null. */
  readonly rotatedTo: string | null;
  /**
   * Scheduled rotation: the key expires this long after creation, and its successor inherits the
   * policy. Answers carry a warning header before the expiry. Null for no policy.
   */
  readonly maxAgeMs: number | null;
  /**
   * An operator key: its `admin:` scopes reach every account's keys. Without the flag an admin key
   * is an account admin key: it manages only keys of its own account (other keys are not found)
   * and grants only scopes and addresses it holds itself. Set when the key is created, by the CLI
   * on the data directory or by another operator key, and never changed (a successor inherits it).
   */
  readonly operator: boolean;
  /**
   * The person who owns the key (a name an operator chose, as approvers are named), or null. An
   * approver of that name never approves an operation this key initiated (docs/approvals.md).
   * Set when the key is created or updated; a successor inherits it.
   */
  readonly owner: string | null;
  /**
   * Per-key guardrails (docs/guardrails.md): limits on what the key's orders and withdrawals may
   * carry, checked on the request path after the operation is decoded. They only narrow what the
   * scopes allow. Null for none. Sessions of the key and its successors inherit them.
   */
  readonly guardrails: KeyGuardrails | null;
  /**
   * The key's risk state, left by a response of the behaviour stage (docs/behaviour.md): its next
   * high-value operation is held for approval (`step-up`), or its requests are charged against a
   * small extra limit (`throttle`). Null for none. Sessions of the key carry it with the key.
   */
  readonly risk: KeyRisk | null;
  /**
   * The client certificate the key is bound to (docs/tls.md): the SHA-256 thumbprint of its DER
   * encoding, base64url without padding (RFC 8705 `x5t#S256`). A request signed with the key (or
   * with one of its sessions) is refused KEY_CERT_MISMATCH unless it came over mutual TLS with that
   * certificate. Null: not bound. Set when the key is created; a successor inherits it.
   */
  readonly certThumbprint: string | null;
  /**
   * An agent key's grant (docs/wallets.md): who approved it (the owner wallet and its owner key),
   * the keys above it, and the terms it was signed with. Null for every other key. Set when the
   * agent is registered and never changed.
   */
  readonly agent: AgentGrant | null;
}

/**
 * The terms an agent was approved or delegated with, as signed (EIP-712 `ApproveAgent` /
 * `Delegate`): the wallet protocol's own type (@portcullis/client's `wallet/terms.ts`), which
 * verified them.
 */
export type { AgentLimit, AgentTerms } from "@portcullis/client/wallet";

/** An agent key's place in its chain of delegation (KeyRecord.agent). */
export interface AgentGrant {
  /** The owner wallet's EIP-55 address. */
  readonly ownerAddress: string;
  /** The owner key (algorithm `ethereum`) of that address and account. */
  readonly ownerKey: string;
  /** The agent key that delegated to this one, or null for an agent the owner approved. */
  readonly parent: string | null;
  /** The agent's public key as the chain names it: `ed25519:<base64url>` or `secp256k1:<0x hex>`. */
  readonly agentKey: string;
  /** The agent keys above this one, top first (empty for an approved agent; the owner key is `ownerKey`). */
  readonly ancestors: readonly string[];
  /** 1 for an approved agent, 2 for one it delegated to, and so on. */
  readonly depth: number;
  /** The terms of the link that registered this key. */
  readonly terms: AgentTerms;
  /** The EIP-712 digest of that link's message (0x + 64 hex). */
  readonly digest: string;
}

/** The key directly above an agent: its parent, or the owner key for an approved agent. */
export function agentAbove(grant: AgentGrant): string {
  return grant.parent ?? grant.ownerKey;
}

/** Every key above an agent, the owner key first: what must be active for it to be usable. */
export function agentChain(grant: AgentGrant): readonly string[] {
  return [grant.ownerKey, ...grant.ancestors];
}

/**
 * A certificate thumbprint as `KeyRecord.certThumbprint` holds it: 43 characters of base64url
 * (SHA-256, no padding), in the one encoding a certificate's thumbprint is ever written in: the
 * last character carries 4 bits of the digest and 2 zero bits, so it is one of 16. Another last
 * character decodes to the same bytes but matches no certificate (the key could never be used).
 */
export const CERT_THUMBPRINT_RE = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;

/**
 * A key's guardrails, JSON-safe (decimals as plain strings, as `operations/decimal.ts` reads them).
 * Each field is null when that guardrail is not set; a key with none at all has `guardrails: null`.
 */
export interface KeyGuardrails {
  /** Instruments the key may place orders on (upper case, as the venue names them; separators are ignored). */
  readonly symbols: readonly string[] | null;
  /** The largest base quantity of one order. */
  readonly maxQuantity: string | null;
  /** The largest value of one order in its quote asset (quantity × price, or the quote amount). */
  readonly maxNotional: string | null;
  /** A limit price may be at most this many percent above or below the symbol's reference price (e.g. "5"). */
  readonly priceBandPct: string | null;
  /** Assets the key may withdraw (upper case). */
  readonly withdrawAssets: readonly string[] | null;
  /** Assets the key may transfer between its own accounts (upper case). */
  readonly transferAssets: readonly string[] | null;
  /**
   * The largest sum of the notional of the key's open orders: the orders the gateway forwarded and
   * has not seen end (docs/guardrails.md, "Open notional"). Optional in a stored record written
   * before it existed: read as null.
   */
  readonly maxOpenNotional: string | null;
}

/** The guardrail fields, in display order. */
export const GUARDRAIL_FIELDS = ["symbols", "maxQuantity", "maxNotional", "priceBandPct", "withdrawAssets", "transferAssets", "maxOpenNotional"] as const;

/** Session lifetimes: 15 minutes by default, per key from 1 minute up to 24 hours. */
export const DEFAULT_SESSION_TTL_MS = 15 * 60_000;
export const MIN_SESSION_TTL_MS = 60_000;
export const MAX_SESSION_TTL_MS = 24 * 3_600_000;

/** Maximum age of a key with a rotation policy: from 1 hour to 5 years. */
export const MIN_MAX_AGE_MS = 3_600_000;
export const MAX_MAX_AGE_MS = 5 * 365 * 86_400_000;

export function effectiveStatus(record: KeyRecord, now: number): EffectiveStatus {
  if (record.status === "active" && record.expiresAt !== null && record.expiresAt <= now) return "expired";
  return record.status;
}

/**
 * Idle expiry of unrestricted trading keys: a key that may trade or withdraw from any address is
 * the one a thief can use from anywhere, so it stops working after this long without use (venues
 * use 14 to 90 days). Configurable (`"keys": { "idleExpiry" }`); default 90 days.
 */
export const DEFAULT_IDLE_EXPIRY_MS = 90 * 86_400_000;
export const MIN_IDLE_EXPIRY_MS = 86_400_000;
export const MAX_IDLE_EXPIRY_MS = 366 * 86_400_000;

/** Scopes that make a key worth stealing when it has no IP allowlist. */
const VALUABLE_SCOPES: ReadonlySet<string> = new Set(["trade", "withdraw"]);

/** A key that may trade or withdraw from any address (no IP allowlist): subject to idle expiry. */
export function isUnrestrictedTrading(record: KeyRecord): boolean {
  return record.ipAllowlist.length === 0 && record.scopes.some((s) => VALUABLE_SCOPES.has(s));
}

/**
 * When an unrestricted trading key stops for idleness: its last activity (creation, last use, or
 * any change an operator made to it: an update or resume renews it) plus `idleMs`; null when the
 * key is restricted or idle expiry is off (`idleMs` null).
 */
export function idleExpiresAt(record: KeyRecord, idleMs: number | null): number | null {
  if (idleMs === null || !isUnrestrictedTrading(record)) return null;
  return Math.max(record.createdAt, record.updatedAt, record.lastUsedAt ?? 0) + idleMs;
}

/** The JSON view of a key for the admin API and the CLI. */
export interface KeyView extends KeyRecord {
  readonly effectiveStatus: EffectiveStatus;
  /** When the key stops for idleness unless used before (unrestricted trading keys), or null. */
  readonly idleExpiresAt: number | null;
}

/** `idleMs`: the deployment's idle expiry (null: off, or not known where the view is made). */
export function toView(record: KeyRecord, now: number, idleMs: number | null = null): KeyView {
  const idleAt = idleExpiresAt(record, idleMs);
  const status = effectiveStatus(record, now);
  return { ...record, effectiveStatus: status === "active" && idleAt !== null && idleAt <= now ? "expired" : status, idleExpiresAt: idleAt };
}
