import { createPublicKey, createSecretKey, randomBytes, type KeyObject } from "node:crypto";
import { type Envelope, PASSPHRASE_PURPOSE, SECRET_PURPOSE, retryUnderActiveKek } from "../custody/envelope.js";
import { PortcullisError } from "../errors/catalogue.js";
import { maxLimit } from "../limits/gcra.js";
import type { AgentInsert, DurableStore, KeyChange, KeyPatch, KeyRow, TransitionResult } from "../storage/types.js";
import { type Environment, generateKeyId } from "../contract/ids.js";
import { type CreateKeyInput, type RotateKeyInput, type UpdateKeyInput, mergeGuardrails, parseWalletAddress } from "./input.js";
import { importPublicKey } from "./material.js";
import { type AgentGrant, DIALECT_ALGORITHMS, type KeyGuardrails, type Dialect, type KeyAlgorithm, type KeyRecord, type KeyStatus, type KeyView, toView } from "../contract/keys.js";
import type { KeyRisk } from "../contract/behaviour.js";
import { hashPassphrase } from "./passphrase.js";

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
  /** Idle expiry of unrestricted trading keys (contract/keys.ts), shown in key views; null or unset: off. */
  readonly idleExpiryMs?: number | null;
}

/** An agent key to register (KeyService.registerAgents): validated terms, a derived id. */
export interface AgentKeyInput {
  /** The derived id (docs/wallets.md). */
  readonly id: string;
  readonly account: string;
  readonly label: string;
  /** The agent's public key: SPKI PEM, or a secp256k1 point in hex (keys/material.ts). */
  readonly publicKey: string;
  readonly scopes: readonly string[];
  readonly guardrails: KeyGuardrails | null;
  readonly limits: Readonly<Record<string, number>>;
  /** Epoch ms. */
  readonly expiresAt: number;
  readonly grant: AgentGrant;
}

export interface CreatedKey {
  readonly key: KeyView;
  /** The HMAC secret, shown once; null for asymmetric keys. */
  readonly secret: string | null;
}

export interface RotatedKey extends CreatedKey {
  /** The old key, now linked to its successor and expiring at the end of the grace period. */
  readonly predecessor: KeyView;
}

/** A new key's credential: an HMAC secret (generated here, sealed) or the user's public key. */
interface IssuedCredential {
  readonly algorithm: KeyAlgorithm;
  readonly publicKey: string | null;
  readonly secret: string | null;
  readonly secretEnvelope: Buffer | null;
}

/** The state every new key starts in (a successor names its predecessor). */
function newKeyState(now: number, rotatedFrom: string | null) {
  return {
    status: "active",
    statusReason: null,
    createdAt: now,
    updatedAt: now,
    lastUsedAt: null,
    revision: 1,
    sessionEpoch: 0,
    rotatedFrom,
    rotatedTo: null,
    // A new credential starts without a risk state: the old one's was about the old credential.
    risk: null,
  } as const satisfies Partial<KeyRow>;
}

/** The statuses a key can be changed in: anything but revoked. */
const CHANGEABLE: readonly KeyStatus[] = ["active", "suspended"];

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
  /** Only operator keys (true) or only other keys (false). */
  readonly operator?: boolean;
  readonly status?: KeyStatus;
  readonly after?: string;
  /** A key id or account prefix, or a part of the label (KeyListFilter.search). */
  readonly search?: string;
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
  private readonly idleExpiryMs: number | null;
  readonly environment: Environment;

  constructor(options: KeyServiceOptions) {
    this.store = options.store;
    this.envelope = options.envelope;
    this.environment = options.environment;
    this.now = options.now ?? Date.now;
    this.limitWindows = options.limitWindows ?? null;
    this.idleExpiryMs = options.idleExpiryMs ?? null;
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
    const passphraseHash = input.passphrase === undefined ? null : await hashPassphrase(input.passphrase);
    return retryUnderActiveKek(this.envelope, async () => {
      const credential = await this.issueCredential(id, input.algorithm, input.publicKey, input.dialects);
      // The passphrase's salted slow hash, itself under the KEK and bound to the key id.
      const passphraseEnvelope = passphraseHash === null ? null : await this.envelope.encrypt(Buffer.from(passphraseHash, "utf8"), PASSPHRASE_PURPOSE, id);
      const row: KeyRow = {
        id,
        environment: this.environment,
        account: input.account,
        subAccount: input.subAccount,
        label: input.label,
        algorithm: credential.algorithm,
        publicKey: credential.publicKey,
        secretEnvelope: credential.secretEnvelope,
        scopes: input.scopes,
        ipAllowlist: input.ipAllowlist,
        dialects: input.dialects,
        expiresAt: input.expiresAt,
        windowMs: input.windowMs,
        passphraseHash: null,
        passphraseEnvelope,
        limits: input.limits,
        sessionTtlMs: input.sessionTtlMs,
        sessionBindAddress: input.sessionBindAddress,
        maxAgeMs: input.maxAgeMs,
        operator: input.operator,
        owner: input.owner,
        guardrails: input.guardrails,
        certThumbprint: input.certThumbprint,
        agent: null,
        ...newKeyState(now, null),
      };
      const change: KeyChange = {
        action: "create",
        actor,
        at: now,
        detail: { account: input.account, algorithm: credential.algorithm, scopes: input.scopes, ipAllowlist: input.ipAllowlist, ...(input.operator ? { operator: true } : {}), ...(input.owner === null ? {} : { owner: input.owner }), ...(input.guardrails === null ? {} : { guardrails: input.guardrails }), ...(input.certThumbprint === null ? {} : { certThumbprint: input.certThumbprint }) },
      };
      await this.store.keys.insert(row, change);
      return { key: toView(stripSecret(row), now, this.idleExpiryMs), secret: credential.secret };
    });
  }

  /**
   * The credential of a new key `id`: the user's public key when given (its type is the
   * algorithm), else a fresh HMAC secret, printed in the form the key's venues expect (Kraken's
   * base64 of 64 bytes, else 256 bits of base64url) and sealed under the KEK. Every scheme keys
   * its HMAC from that exact text (Kraken: decoded).
   */
  private async issueCredential(id: string, requested: KeyAlgorithm | undefined, publicKeyText: string | undefined, dialects: readonly Dialect[]): Promise<IssuedCredential> {
    let algorithm = requested ?? "hmac-sha256";
    let publicKey: string | null = null;
    let secret: string | null = null;
    let secretEnvelope: Buffer | null = null;
    if (requested === "ethereum") {
      // A wallet owner key: the address, validated and checksummed by keys/input.ts.
      const address = parseWalletAddress(publicKeyText);
      if (address === null) throw new PortcullisError("VALIDATION_FAILED", "a wallet owner key needs the wallet's address", { wallet: "required" });
      publicKey = address;
    } else if (publicKeyText !== undefined) {
      const imported = importPublicKey(publicKeyText, requested);
      algorithm = imported.algorithm;
      publicKey = imported.pem;
    } else if (algorithm !== "hmac-sha256") {
      throw new PortcullisError("VALIDATION_FAILED", `a public key is required for ${algorithm} keys`, { publicKey: "required" });
    } else {
      secret = dialects.includes("kraken") ? randomBytes(KRAKEN_SECRET_BYTES).toString("base64") : randomBytes(HMAC_SECRET_BYTES).toString("base64url");
      secretEnvelope = await this.envelope.encrypt(Buffer.from(secret, "utf8"), SECRET_PURPOSE, id);
    }
    const incompatible = dialects.filter((d) => !DIALECT_ALGORITHMS[d].includes(algorithm));
    if (incompatible.length > 0) {
      throw new PortcullisError("VALIDATION_FAILED", `${incompatible.join(", ")} cannot sign with ${algorithm} keys`, { dialects: "incompatible with the key" });
    }
    return { algorithm, publicKey, secret, secretEnvelope };
  }

  async get(id: string): Promise<KeyView> {
    const row = await this.store.keys.get(id);
    if (row === undefined) throw new PortcullisError("KEY_NOT_FOUND");
    return toView(stripSecret(row), this.now(), this.idleExpiryMs);
  }

  async list(query: ListKeysQuery = {}): Promise<KeyView[]> {
    const limit = Math.min(Math.max(query.limit ?? 100, 1), 1000);
    const rows = await this.store.keys.list({
      limit,
      ...(query.account === undefined ? {} : { account: query.account }),
      ...(query.operator === undefined ? {} : { operator: query.operator }),
      ...(query.status === undefined ? {} : { status: query.status }),
      ...(query.after === undefined ? {} : { after: query.after }),
      ...(query.search === undefined ? {} : { search: query.search }),
    });
    const now = this.now();
    return rows.map((r) => toView(stripSecret(r), now, this.idleExpiryMs));
  }

  /**
   * Revokes a key and every agent key below it (docs/wallets.md): an owner key's agents, an
   * agent's delegates, and theirs, in one transaction, each change audited. The one revoke path:
   * the admin API, the CLI, the behaviour stage's responder and the wallet endpoints all come here.
   */
  async revoke(id: string, actor: string, reason: string | null = null): Promise<KeyView> {
    return (await this.revokeTree(id, actor, reason)).key;
  }

  /** `revoke`, answering the keys revoked below the key too. */
  async revokeTree(id: string, actor: string, reason: string | null = null): Promise<{ readonly key: KeyView; readonly below: readonly KeyView[] }> {
    const now = this.now();
    const result = await this.store.keys.revokeTree(id, ["active", "suspended"], reason, { action: "revoke", actor, at: now, detail: reason === null ? {} : { reason } });
    if (!result.ok) return { key: this.viewOf(result, "revoke", now), below: [] };
    return { key: toView(stripSecret(result.row), now, this.idleExpiryMs), below: result.below.map((r) => toView(stripSecret(r), now, this.idleExpiryMs)) };
  }

  /** The wallet owner keys of `address` (EIP-55), any status, oldest first. */
  async wallets(address: string): Promise<KeyView[]> {
    const now = this.now();
    return (await this.store.keys.wallets(address)).map((r) => toView(stripSecret(r), now, this.idleExpiryMs));
  }

  /** The keys directly below `id` (agents it approved or delegated to). */
  async children(id: string): Promise<KeyView[]> {
    const now = this.now();
    return (await this.store.keys.children(id)).map((r) => toView(stripSecret(r), now, this.idleExpiryMs));
  }

  /**
   * Registers agent keys (docs/wallets.md), the links of one chain top first, in one transaction:
   * every key of `active` (the owner key and the links already registered above) must be active,
   * else AGENT_LINK_REVOKED; an id that exists (revoked or not) is AGENT_ALREADY_REGISTERED.
   * The caller verified the chain's signatures and terms.
   */
  async registerAgents(agents: readonly AgentKeyInput[], active: readonly string[], actor: string): Promise<KeyView[]> {
    const now = this.now();
    const rows: AgentInsert[] = agents.map((a) => {
      this.checkLimitNames(a.limits);
      const imported = importPublicKey(a.publicKey, undefined);
      const row: KeyRow = {
        id: a.id,
        environment: this.environment,
        account: a.account,
        subAccount: null,
        label: a.label,
        algorithm: imported.algorithm,
        publicKey: imported.pem,
        secretEnvelope: null,
        scopes: a.scopes,
        ipAllowlist: [],
        dialects: ["native"],
        expiresAt: a.expiresAt,
        windowMs: null,
        passphraseHash: null,
        passphraseEnvelope: null,
        limits: a.limits,
        sessionTtlMs: null,
        sessionBindAddress: false,
        maxAgeMs: null,
        operator: false,
        owner: null,
        guardrails: a.guardrails,
        certThumbprint: null,
        agent: a.grant,
        ...newKeyState(now, null),
      };
      const change: KeyChange = {
        action: "create",
        actor,
        at: now,
        detail: { account: a.account, algorithm: imported.algorithm, scopes: a.scopes, ipAllowlist: [], agent: { ownerAddress: a.grant.ownerAddress, ownerKey: a.grant.ownerKey, parent: a.grant.parent, depth: a.grant.depth, digest: a.grant.digest }, ...(a.guardrails === null ? {} : { guardrails: a.guardrails }) },
      };
      return { row, change };
    });
    const result = await this.store.keys.insertAgents(rows, active);
    if (!result.ok) {
      if (result.reason === "exists") throw new PortcullisError("AGENT_ALREADY_REGISTERED", `agent ${result.id} is already registered`);
      throw new PortcullisError("AGENT_LINK_REVOKED", `key ${result.id} above the new agent is not active`);
    }
    return rows.map(({ row }) => toView(stripSecret(row), now, this.idleExpiryMs));
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
    return this.viewOf(result, action, now);
  }

  private viewOf(result: TransitionResult, action: string, now: number): KeyView {
    if (!result.ok) {
      if (result.reason === "not-found") throw new PortcullisError("KEY_NOT_FOUND");
      throw new PortcullisError("KEY_STATE_CONFLICT", `cannot ${action} a key that is ${result.current ?? "in another state"}`);
    }
    return toView(stripSecret(result.row), now, this.idleExpiryMs);
  }

  /** Replaces the key's limit overrides (an empty object removes them all). */
  async setLimits(id: string, limits: Readonly<Record<string, number>>, actor: string): Promise<KeyView> {
    this.checkLimitNames(limits);
    const now = this.now();
    const result = await this.store.keys.update(id, ["active", "suspended", "revoked"], { limits }, { action: "limits", actor, at: now, detail: { limits } });
    return this.viewOf(result, "change the limits of", now);
  }

  /**
   * Changes a key's label, scopes, IP allowlist or session and rotation policy. A change of
   * scopes, allowlist or address binding ends every session of the key (its epoch moves), so no
   * session outlives the permissions it was issued under. A revoked key cannot change.
   */
  async update(id: string, input: UpdateKeyInput, actor: string): Promise<KeyView> {
    const now = this.now();
    const current = await this.store.keys.get(id);
    if (current === undefined) throw new PortcullisError("KEY_NOT_FOUND");
    const patch: { -readonly [F in keyof KeyPatch]: KeyPatch[F] } = {};
    const detail: Record<string, unknown> = {};
    if (input.label !== undefined) patch.label = detail.label = input.label;
    if (input.scopes !== undefined) patch.scopes = detail.scopes = input.scopes;
    if (input.ipAllowlist !== undefined) patch.ipAllowlist = detail.ipAllowlist = input.ipAllowlist;
    if (input.sessionTtlMs !== undefined) patch.sessionTtlMs = detail.sessionTtlMs = input.sessionTtlMs;
    if (input.sessionBindAddress !== undefined) patch.sessionBindAddress = detail.sessionBindAddress = input.sessionBindAddress;
    if (input.owner !== undefined) patch.owner = detail.owner = input.owner;
    // A merge patch over the current guardrails; sessions need not end: they check against the
    // key's record, which the change reaches with the key.
    if (input.guardrails !== undefined) patch.guardrails = detail.guardrails = mergeGuardrails(current.guardrails, input.guardrails);
    if (input.maxAgeMs !== undefined) {
      patch.maxAgeMs = detail.maxAgeMs = input.maxAgeMs;
      // A new policy moves the expiry to creation + max age, unless an earlier expiry stands.
      if (input.maxAgeMs !== null) {
        const due = current.createdAt + input.maxAgeMs;
        if (due <= now) {
          throw new PortcullisError("VALIDATION_FAILED", "maxAge: the key is already older than that; rotate it instead", { maxAge: "shorter than the key's age" });
        }
        if (current.expiresAt === null || current.expiresAt > due) patch.expiresAt = detail.expiresAt = due;
      }
    }
    const sessionsChange =
      (input.scopes !== undefined && input.scopes.join(",") !== current.scopes.join(",")) ||
      (input.ipAllowlist !== undefined && input.ipAllowlist.join(",") !== current.ipAllowlist.join(",")) ||
      (input.sessionBindAddress === true && !current.sessionBindAddress);
    if (sessionsChange) patch.endSessions = detail.endSessions = true;
    const result = await this.store.keys.update(id, CHANGEABLE, patch, { action: "update", actor, at: now, detail });
    return this.viewOf(result, "update", now);
  }

  /**
   * Sets or clears the key's risk state (contract/behaviour.ts KeyRisk): the behaviour stage's
   * step-up and throttle, and an operator undoing them. `expected`: only when the key's current
   * risk state was set by that action (undoing an action never clears a later one); recorded as
   * the key change `risk` (audited as `key.risk`). A revoked key cannot change.
   */
  async setRisk(id: string, risk: KeyRisk | null, actor: string, expected?: string): Promise<KeyView> {
    const now = this.now();
    const current = await this.store.keys.get(id);
    if (current === undefined) throw new PortcullisError("KEY_NOT_FOUND");
    if (expected !== undefined && current.risk?.actionId !== expected) return toView(stripSecret(current), now, this.idleExpiryMs);
    const detail = risk === null ? { cleared: current.risk?.actionId ?? null } : { state: risk.state, actionId: risk.actionId, until: risk.until };
    const result = await this.store.keys.update(id, CHANGEABLE, { risk }, { action: "risk", actor, at: now, detail });
    return this.viewOf(result, "set the risk state of", now);
  }

  /** Ends every session of the key at once (its epoch moves); the key itself keeps working. */
  async endSessions(id: string, actor: string, reason: string | null = null): Promise<KeyView> {
    const now = this.now();
    const result = await this.store.keys.update(id, CHANGEABLE, { endSessions: true }, { action: "end-sessions", actor, at: now, detail: reason === null ? {} : { reason } });
    return this.viewOf(result, "end the sessions of", now);
  }

  /**
   * Rotation: a successor with the same settings (account, scopes, allowlist, dialects, window,
   * limits, guardrails, owner, session and rotation policy, OKX passphrase) and a new credential: the public key the
   * caller brings (required for an asymmetric key, whose private half never reaches the server;
   * allowed for an HMAC key, to move it to a key pair), else a new HMAC secret. The old key keeps working for the grace
   * period, then expires by itself; each names the other (`rotatedTo`, `rotatedFrom`). The
   * successor keeps the old key's fixed expiry, or with a rotation policy expires its maximum age
   * after its own creation.
   */
  async rotate(id: string, input: RotateKeyInput, actor: string): Promise<RotatedKey> {
    const now = this.now();
    const old = await this.store.keys.get(id);
    if (old === undefined) throw new PortcullisError("KEY_NOT_FOUND");
    if (old.rotatedTo !== null) throw new PortcullisError("KEY_STATE_CONFLICT", `this key was already rotated (to ${old.rotatedTo})`);
    if (old.status === "revoked") throw new PortcullisError("KEY_STATE_CONFLICT", "cannot rotate a key that is revoked");
    // An owner key is its wallet's address; an agent key is registered by signatures (docs/wallets.md).
    if (old.algorithm === "ethereum" || old.agent !== null) throw new PortcullisError("KEY_STATE_CONFLICT", "a wallet owner key or an agent key cannot be rotated: register a new agent instead");
    if (old.algorithm !== "hmac-sha256" && input.publicKey === undefined) {
      throw new PortcullisError("VALIDATION_FAILED", "rotating an asymmetric key needs the successor's public key (you keep its private half)", { publicKey: "required" });
    }
    const successorId = generateKeyId(this.environment);
    // The same passphrase, sealed again for the successor's id (an envelope is bound to its row).
    const passphraseHash = await this.passphraseHashOf(old);
    return retryUnderActiveKek(this.envelope, async () => {
      const credential = await this.issueCredential(successorId, input.publicKey === undefined ? "hmac-sha256" : undefined, input.publicKey, old.dialects);
      const passphraseEnvelope = passphraseHash === null ? null : await this.envelope.encrypt(Buffer.from(passphraseHash, "utf8"), PASSPHRASE_PURPOSE, successorId);
      const expiresAt = old.maxAgeMs !== null ? now + old.maxAgeMs : old.expiresAt !== null && old.expiresAt > now ? old.expiresAt : null;
      const graceEnd = Math.min(now + input.graceMs, old.expiresAt ?? Number.MAX_SAFE_INTEGER);
      const successor: KeyRow = {
        ...old,
        id: successorId,
        algorithm: credential.algorithm,
        publicKey: credential.publicKey,
        secretEnvelope: credential.secretEnvelope,
        passphraseHash: null,
        passphraseEnvelope,
        expiresAt,
        ...newKeyState(now, old.id),
      };
      const result = await this.store.keys.rotate(
        id,
        successor,
        graceEnd,
        { action: "rotate", actor, at: now, detail: { successor: successorId, expiresAt: graceEnd } },
        { action: "create", actor, at: now, detail: { account: old.account, algorithm: credential.algorithm, scopes: old.scopes, ipAllowlist: old.ipAllowlist, rotatedFrom: old.id, ...(old.guardrails === null ? {} : { guardrails: old.guardrails }), ...(old.certThumbprint === null ? {} : { certThumbprint: old.certThumbprint }) } },
      );
      if (!result.ok) {
        if (result.reason === "not-found") throw new PortcullisError("KEY_NOT_FOUND");
        const why = result.rotatedTo === null || result.rotatedTo === undefined ? `is ${result.current ?? "in another state"}` : `was already rotated (to ${result.rotatedTo})`;
        throw new PortcullisError("KEY_STATE_CONFLICT", `cannot rotate a key that ${why}`);
      }
      return { key: toView(stripSecret(result.successor), now, this.idleExpiryMs), secret: credential.secret, predecessor: toView(stripSecret(result.predecessor), now, this.idleExpiryMs) };
    });
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
    // A wallet owner key's "public key" is its address: it verifies no HTTP signature.
    if (row.publicKey !== null && row.algorithm !== "ethereum") publicKey = createPublicKey(row.publicKey);
    return { record: stripSecret(row), hmacKey, hmacKeyDecoded, publicKey, passphraseHash: await this.passphraseHashOf(row) };
  }

  /** A key's passphrase hash: opened from its envelope, or as stored before passphrases were sealed. */
  private async passphraseHashOf(row: KeyRow): Promise<string | null> {
    if (row.passphraseEnvelope === null) return row.passphraseHash;
    return (await this.envelope.decrypt(row.passphraseEnvelope, PASSPHRASE_PURPOSE, row.id)).toString("utf8");
  }

  /** Records last-use times (batched by the caller). */
  touch(lastUsed: ReadonlyMap<string, number>): Promise<void> {
    return this.store.keys.touch(lastUsed);
  }
}
