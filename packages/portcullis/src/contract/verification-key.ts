import type { KeyObject } from "node:crypto";
import type { CidrSet } from "../net/ip.js";
import type { Decimal } from "./operations.js";
import type { Dialect, KeyRecord, NativeAlgorithm } from "./keys.js";
import type { SessionClaims } from "./sessions.js";

/** An OKX key's passphrase check (keys/passphrase.ts): slow the first time, then a constant-time compare. */
export interface PassphraseVerifier {
  check(candidate: string): boolean | Promise<boolean>;
}

/**
 * A key's guardrails compiled for the request path (operations/guardrails.ts compiles and checks
 * them): sets and parsed decimals, so a check only looks things up and compares. Each field is
 * null when that guardrail is not set.
 */
export interface CompiledGuardrails {
  /** Allowed symbols, upper case without separators ("BTC-USDT" is kept as "BTCUSDT"). */
  readonly symbols: ReadonlySet<string> | null;
  readonly maxQuantity: Decimal | null;
  readonly maxNotional: Decimal | null;
  /** The price band in percent, as configured. */
  readonly bandPct: Decimal | null;
  /** 100 − band and 100 + band (percent): a price p passes when ref × low ≤ p × 100 ≤ ref × high. */
  readonly bandLow: Decimal | null;
  readonly bandHigh: Decimal | null;
  readonly withdrawAssets: ReadonlySet<string> | null;
  readonly transferAssets: ReadonlySet<string> | null;
  /** The open-notional cap (docs/guardrails.md), or null: the key's orders are not ledgered. */
  readonly maxOpenNotional: Decimal | null;
}

/**
 * A key compiled for the request path: everything a request needs is a field lookup. Built once
 * per load, never per request.
 */
export interface VerificationKey {
  readonly record: KeyRecord;
  /** HMAC key: the secret's UTF-8 bytes (native, Binance, OKX, Bybit). */
  readonly hmacKey: KeyObject | null;
  /** HMAC key: the secret base64-decoded (Kraken keys only). */
  readonly hmacKeyDecoded: KeyObject | null;
  readonly publicKey: KeyObject | null;
  /** The schemes the key was issued for. */
  readonly dialects: ReadonlySet<Dialect>;
  /** OKX keys: checks the passphrase (slowly once per load, then fast). */
  readonly passphrase: PassphraseVerifier | null;
  /** null when the key may be used from any address. */
  readonly allowlist: CidrSet | null;
  readonly permissions: ReadonlySet<string>;
  readonly nativeAlgorithms: readonly NativeAlgorithm[];
  readonly windowMs: number;
  /** The scopes the request acts with: the key's, or a session's narrower ones. */
  readonly scopes: readonly string[];
  /** Scopes as sent in the identity header. */
  readonly scopesText: string;
  /**
   * Idle expiry of an unrestricted trading key (contract/keys.ts `idleExpiresAt`): when it stops
   * for idleness, and the idle time after which it would stop if unused from now; null when the
   * key is not subject to it.
   */
  readonly idle: { readonly expiresAt: number; readonly afterMs: number } | null;
  /** The session a request is signed with (its claims), or null for the API key itself. */
  readonly session: SessionClaims | null;
  /** The key's guardrails (its record's, compiled), or null when it has none. A session's are its key's. */
  readonly guardrails: CompiledGuardrails | null;
  /**
   * An agent key's chain (contract/keys.ts `agentChain`): the owner key and the agents above it,
   * top first, each of which must be active for this key to be usable; null for other keys. A
   * session's is its key's.
   */
  readonly chain: readonly string[] | null;
}
