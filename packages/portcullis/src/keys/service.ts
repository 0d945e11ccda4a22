import { createPublicKey, createSecretKey, randomBytes, type KeyObject } from "node:crypto";
import type { Envelope } from "../custody/envelope.js";
import { PortcullisError } from "../errors/catalogue.js";
import { maxLimit } from "../limits/gcra.js";
import type { DurableStore, KeyChange, KeyRow } from "../storage/types.js";
import { type Environment, generateKeyId } from "./ids.js";
import type { CreateKeyInput } from "./input.js";
import { importPublicKey } from "./material.js";
import { DIALECT_ALGORITHMS, type KeyRecord, type KeyStatus, type KeyView, toView } from "./model.js";
import { hashPassphrase } from "./passphrase.js";

/** The purpose bound into every HMAC secret's envelope. */
export const SECRET_PURPOSE = "key-secret";
/** The purpose bound into every passphrase hash's envelope (OKX keys). */
export const PASSPHRASE_PURPOSE = "key-passphrase";
const HMAC_SECRET_BYTES = 32;
/** Kraken decodes the secret from base64 and keys HMAC-SHA512 with it: 64 bytes, as Kraken issues. */
const KRAKEN_SECRET_BYTES = 64;

export interface KeyServiceOptions {
  readonly store: DurableStore;
  readonly envelope: Envelope;
  /** The environment new keys are issued for. */
  readonly environment: Environment;
  readonly now?: () => number;
  /**
   * The configured limits' windows (ms) by name. When set, overrides naming any other limit are
   * refused (a typo would otherwise raise nothing, silently), and so are values beyond exact
   * arithmetic for the limit's window. Unset where the configuration is not known (the CLI
   * writing a data directory directly).
   */
  readonly limitWindows?: ReadonlyMap<string, number>;
}

export interface CreatedKey {
  readonly key: KeyView;
  /** The HMAC secret, shown once; null for asymmetric keys. */
  readonly secret: string | null;
}

/** What the verification path needs of a key: the record and its usable key material. */
export interface KeyMaterial {
  readonly record: KeyRecord;
  /** The secret exactly as printed, as UTF-8 bytes (native, Binance, OKX, Bybit). */
  readonly hmacKey: KeyObject | null;
  /** The secret base64-decoded (Kraken), for keys issued for Kraken. */
  readonly hmacKeyDecoded: KeyObject | null;
  readonly publicKey: KeyObject | null;
  readonly passphraseHash: string | null;
}

export interface ListKeysQuery {
  readonly account?: string;
  readonly status?: KeyStatus;
  readonly after?: string;
  readonly limit?: number;
}

function stripSecret(row: KeyRow): KeyRecord {
  const { secretEnvelope: _secret, passphraseHash: _passphrase, passphraseEnvelope: _sealed, ...record } = row;
  return record;
}

/**
 * The one key service. The CLI (on a data directory) and the admin API (over HTTP) both call it;
 * every change is a single transaction that also writes the change record, so a gateway in another
 * process sees it through the change feed.
 */
export class KeyService {
  private readonly store: DurableStore;
  private readonly envelope: Envelope;
  private readonly now: () => number;
  private readonly limitWindows: ReadonlyMap<string, number> | null;
  readonly environment: Environment;

  constructor(options: KeyServiceOptions) {
    this.store = options.store;
    this.envelope = options.envelope;
    this.environment = options.environment;
    this.now = options.now ?? Date.now;
    this.limitWindows = options.limitWindows ?? null;
  }

  private checkLimitNames(limits: Readonly<Record<string, number>>): void {
    const known = this.limitWindows;
    if (known === null) return;
    const refuse = (error: string): never => {
      throw new PortcullisError("VALIDATION_FAILED", `limits: ${error}`, { limits: error });
    };
    const unknown = Object.keys(limits).filter((name) => !known.has(name));
    if (unknown.length > 0) {
      const configured = known.size === 0 ? "no limits are configured" : `configured: ${[...known.keys()].join(", ")}`;
      refuse(`unknown limit ${unknown.map((n) => JSON.stringify(n)).join(", ")} (${configured})`);
    }
    for (const [name, value] of Object.entries(limits)) {
      const max = maxLimit(known.get(name) ?? 1);
      if (value > max) refuse(`${name} must be at most ${max} for its window`);
    }
  }

  async create(input: CreateKeyInput, actor: string): Promise<CreatedKey> {
    this.checkLimitNames(input.limits);
    const now = this.now();
    const id = generateKeyId(this.environment);
    let algorithm = input.algorithm ?? "hmac-sha256";
    let publicKey: string | null = null;
    let secret: string | null = null;
    let secretEnvelope: Buffer | null = null;
    if (input.publicKey !== undefined) {
      const imported = importPublicKey(input.publicKey, input.algorithm);
      algorithm = imported.algorithm;
      publicKey = imported.pem;
    } else if (algorithm !== "hmac-sha256") {
      throw new PortcullisError("VALIDATION_FAILED", `a public key is required for ${algorithm} keys`, { publicKey: "required" });
    } else {
      // Printed in the form the key's venues expect: Kraken's base64 of 64 bytes, else 256 bits
      // of base64url. Every scheme keys its HMAC from this exact text (Kraken: decoded).
      secret = input.dialects.includes("kraken")
        ? randomBytes(KRAKEN_SECRET_BYTES).toString("base64")
        : randomBytes(HMAC_SECRET_BYTES).toString("base64url");
      secretEnvelope = await this.envelope.encrypt(Buffer.from(secret, "utf8"), SECRET_PURPOSE, id);
    }
    const incompatible = input.dialects.filter((d) => !DIALECT_ALGORITHMS[d].includes(algorithm));
    if (incompatible.length > 0) {
      throw new PortcullisError("VALIDATION_FAILED", `${incompatible.join(", ")} cannot sign with ${algorithm} keys`, { dialects: "incompatible with the key" });
    }
    // The passphrase's salted slow hash, itself under the KEK and bound to the key id.
    const passphraseEnvelope =
      input.passphrase === undefined ? null : await this.envelope.encrypt(Buffer.from(await hashPassphrase(input.passphrase), "utf8"), PASSPHRASE_PURPOSE, id);
    const row: KeyRow = {
      id,
      environment: this.environment,
      account: input.account,
      subAccount: input.subAccount,
      label: input.label,
      algorithm,
      publicKey,
      secretEnvelope,
      scopes: input.scopes,
      ipAllowlist: input.ipAllowlist,
      dialects: input.dialects,
      expiresAt: input.expiresAt,
      windowMs: input.windowMs,
      status: "active",
      statusReason: null,
      createdAt: now,
      updatedAt: now,
      lastUsedAt: null,
      revision: 1,
      passphraseHash: null,
      passphraseEnvelope,
      limits: input.limits,
    };
    const change: KeyChange = {
      action: "create",
      actor,
      at: now,
      detail: { account: input.account, algorithm, scopes: input.scopes, ipAllowlist: input.ipAllowlist },
    };
    await this.store.keys.insert(row, change);
    return { key: toView(stripSecret(row), now), secret };
  }

  async get(id: string): Promise<KeyView> {
    const row = await this.store.keys.get(id);
    if (row === undefined) throw new PortcullisError("KEY_NOT_FOUND");
    return toView(stripSecret(row), this.now());
  }

  async list(query: ListKeysQuery = {}): Promise<KeyView[]> {
    const limit = Math.min(Math.max(query.limit ?? 100, 1), 1000);
    const rows = await this.store.keys.list({
      limit,
      ...(query.account === undefined ? {} : { account: query.account }),
      ...(query.status === undefined ? {} : { status: query.status }),
      ...(query.after === undefined ? {} : { after: query.after }),
    });
    const now = this.now();
    return rows.map((r) => toView(stripSecret(r), now));
  }

  revoke(id: string, actor: string, reason: string | null = null): Promise<KeyView> {
    return this.transition(id, ["active", "suspended"], "revoked", "revoke", actor, reason);
  }

  suspend(id: string, actor: string, reason: string | null = null): Promise<KeyView> {
    return this.transition(id, ["active"], "suspended", "suspend", actor, reason);
  }

  resume(id: string, actor: string): Promise<KeyView> {
    return this.transition(id, ["suspended"], "active", "resume", actor, null);
  }

  private async transition(
    id: string,
    from: readonly KeyStatus[],
    to: KeyStatus,
    action: KeyChange["action"],
    actor: string,
    reason: string | null,
  ): Promise<KeyView> {
    const now = this.now();
    const result = await this.store.keys.transition(id, from, to, reason, { action, actor, at: now, detail: reason === null ? {} : { reason } });
    if (!result.ok) {
      if (result.reason === "not-found") throw new PortcullisError("KEY_NOT_FOUND");
      throw new PortcullisError("KEY_STATE_CONFLICT", `cannot ${action} a key that is ${result.current ?? "in another state"}`);
    }
    return toView(stripSecret(result.row), now);
  }

  /** Replaces the key's limit overrides (an empty object removes them all). */
  async setLimits(id: string, limits: Readonly<Record<string, number>>, actor: string): Promise<KeyView> {
    this.checkLimitNames(limits);
    const now = this.now();
    const row = await this.store.keys.updateLimits(id, limits, { action: "limits", actor, at: now, detail: { limits } });
    if (row === undefined) throw new PortcullisError("KEY_NOT_FOUND");
    return toView(stripSecret(row), now);
  }

  /**
   * Loads a key with usable material for the verification path: the HMAC secret decrypted into a
   * KeyObject (the plaintext buffer is wiped), or the public key parsed. Null when unknown.
   */
  async loadMaterial(id: string): Promise<KeyMaterial | null> {
    const row = await this.store.keys.get(id);
    if (row === undefined) return null;
    let hmacKey: KeyObject | null = null;
    let hmacKeyDecoded: KeyObject | null = null;
    let publicKey: KeyObject | null = null;
    if (row.secretEnvelope !== null) {
      const plaintext = await this.envelope.decrypt(row.secretEnvelope, SECRET_PURPOSE, row.id);
      try {
        hmacKey = createSecretKey(plaintext);
        if (row.dialects.includes("kraken")) {
          const decoded = Buffer.from(plaintext.toString("latin1"), "base64");
          try {
            hmacKeyDecoded = createSecretKey(decoded);
          } finally {
            decoded.fill(0);
          }
        }
      } finally {
        plaintext.fill(0);
      }
    }
    if (row.publicKey !== null) publicKey = createPublicKey(row.publicKey);
    const passphraseHash =
      row.passphraseEnvelope === null ? row.passphraseHash : (await this.envelope.decrypt(row.passphraseEnvelope, PASSPHRASE_PURPOSE, row.id)).toString("utf8");
    return { record: stripSecret(row), hmacKey, hmacKeyDecoded, publicKey, passphraseHash };
  }

  /** Records last-use times (batched by the caller). */
  touch(lastUsed: ReadonlyMap<string, number>): Promise<void> {
    return this.store.keys.touch(lastUsed);
  }
}
