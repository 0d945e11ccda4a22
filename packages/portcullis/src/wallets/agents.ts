import { createPublicKey } from "node:crypto";
import { type Denial, PortcullisError, deny } from "../errors/catalogue.js";
import { type AgentGrant, type AgentTerms, type KeyGuardrails, type KeyView, effectiveStatus } from "../contract/keys.js";
import { grantedPermissions } from "../contract/permissions.js";
import { compareDecimal, parseDecimal } from "../operations/decimal.js";
import type { LimitSpec } from "../contract/limits.js";
import { parseAgentTerms } from "../keys/input.js";
import type { AgentKeyInput, KeyService } from "../keys/service.js";
import { type Environment } from "../contract/ids.js";
import { type ReadRevocation, type WalletRefusal, type WalletVenue, readRevocation, revocationSignedBy, verifyAgentChain } from "@portcullis/client";

/**
 * Agent registration and revocation (docs/wallets.md), from signatures alone. The chain's
 * signatures, derived ids and narrowing are checked by the client package's protocol module
 * (`verifyAgentChain`); this module holds the chain against what is
 * registered here: the owner key of the recovered address, the owner key's own scopes, limits and
 * guardrails, the links already registered, and the rule that a derived id is used once.
 */

/** One link of a verified chain, top first. */
export interface VerifiedLink {
  /** The derived key id. */
  readonly id: string;
  /** The agent above (a delegation), or null (the owner's approval). */
  readonly parent: string | null;
  /** `ed25519:<base64url>` or `secp256k1:<0x hex>`. */
  readonly agentKey: string;
  readonly terms: AgentTerms;
  /** The link message's EIP-712 digest (0x + 64 hex). */
  readonly digest: string;
}

/** A chain whose signatures, ids and narrowing verified (offline). */
export interface VerifiedChain {
  /** The owner wallet that signed the approval (EIP-55). */
  readonly owner: string;
  /** The account the approval names. */
  readonly account: string;
  readonly links: readonly VerifiedLink[];
}

/** A protocol module refusal as a gateway denial (every code of the module is in the catalogue). */
export function walletDenial(refusal: WalletRefusal): Denial {
  return deny(refusal.code, refusal.link === undefined ? refusal.message : `link ${String(refusal.link)}: ${refusal.message}`);
}

export interface AgentRegistryOptions {
  readonly keys: KeyService;
  /** The venue every wallet message must name (config `wallets`). */
  readonly venue: WalletVenue;
  /** The configured limits: an owner's effective limit is its override, else the limit's. */
  readonly limits: readonly LimitSpec[];
}

/** What a registration answers: the last link of the chain, and every id it registered. */
export interface RegisteredAgent {
  readonly id: string;
  readonly account: string;
  readonly scopes: readonly string[];
  readonly guardrails: KeyGuardrails | null;
  readonly limits: Readonly<Record<string, number>>;
  readonly expiresAt: number | null;
  readonly parent: string | null;
  readonly ancestors: readonly string[];
  readonly registered: readonly string[];
}

/** Scopes an agent never holds. */
const FORBIDDEN = (scope: string): boolean => scope === "withdraw" || scope === "transfer" || scope.startsWith("admin");

/**
 * The agent's key text as the key service imports it: `ed25519:<base64url of 32 bytes>` as SPKI
 * PEM; `secp256k1:<0x + 66 hex>` as its point in hex (keys/material.ts decodes it on the curve).
 */
export function agentKeyMaterial(text: string): string | null {
  try {
    if (text.startsWith("ed25519:")) {
      const x = text.slice(8);
      if (!/^[A-Za-z0-9_-]{43}$/.test(x)) return null;
      return createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x }, format: "jwk" }).export({ type: "spki", format: "pem" }).toString();
    }
    if (text.startsWith("secp256k1:")) {
      const hex = text.slice(10);
      return /^0x0[23][0-9a-f]{64}$/.test(hex) ? hex : null;
    }
  } catch {
    return null;
  }
  return null;
}

/** The first way `terms` reach past what the owner key holds, or null. */
function widensOwner(owner: KeyView, terms: AgentTerms, limits: readonly LimitSpec[]): string | null {
  const held = grantedPermissions(owner.scopes);
  for (const p of grantedPermissions(terms.scopes)) if (!held.has(p)) return `scope ${p} is not the owner key's`;
  const g = owner.guardrails;
  if (g !== null) {
    // Symbols compare upper case without separators, as guardrails do.
    const plain = (s: string): string => s.toUpperCase().replace(/[^A-Z0-9]/g, "");
    const allowed = new Set((g.symbols ?? []).map(plain));
    if (g.symbols !== null && (terms.symbols.includes("*") || terms.symbols.some((s) => !allowed.has(plain(s))))) return "symbols beyond the owner key's";
    const capped = (cap: string | null, term: string, name: string): string | null => {
      if (cap === null) return null;
      const mine = parseDecimal(cap);
      const theirs = term === "" ? null : parseDecimal(term);
      return mine !== null && (theirs === null || compareDecimal(theirs, mine) > 0) ? `${name} beyond the owner key's` : null;
    };
    const over =
      capped(g.maxNotional, terms.maxOrderNotional, "maxOrderNotional") ??
      capped(g.maxQuantity, terms.maxOrderQuantity, "maxOrderQuantity") ??
      capped(g.maxOpenNotional, terms.maxOpenNotional, "maxOpenNotional");
    if (over !== null) return over;
  }
  for (const { name, value } of terms.limits) {
    const spec = limits.find((l) => l.name === name);
    const effective = owner.limits[name] ?? spec?.limit;
    if (effective !== undefined && value > effective) return `limit ${name} above the owner key's ${effective}`;
  }
  if (owner.expiresAt !== null && terms.expiresAt * 1000 > owner.expiresAt) return "expires after the owner key";
  return null;
}

function objectOf(v: unknown): Record<string, unknown> | null {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
}

/** A revocation whose signer may revoke its target (`AgentRegistry.authorizeRevocation`). */
export interface AuthorizedRevocation {
  readonly target: string;
  readonly alreadyRevoked: boolean;
  /** Who signed it, for the audit log: `wallet:<address>` or `key:<agent id>`. */
  readonly actor: string;
}

export class AgentRegistry {
  private readonly keys: KeyService;
  private readonly venue: WalletVenue;
  private readonly environment: Environment;
  private readonly limits: readonly LimitSpec[];

  constructor(options: AgentRegistryOptions) {
    this.keys = options.keys;
    this.venue = options.venue;
    this.environment = options.keys.environment;
    this.limits = options.limits;
  }

  /**
   * The chain verified offline by the client package's protocol module (signatures, derived ids,
   * narrowing, stamps): the owner is whoever signed the approval, looked up here.
   */
  private async verifyChain(chain: unknown, now: number): Promise<VerifiedChain | Denial> {
    const result = await verifyAgentChain(chain, { venue: this.venue, now, environment: this.environment, owner: null });
    if (!result.ok) return walletDenial(result);
    const { owner, account, links } = result.value;
    return { owner, account, links: links.map((l) => ({ id: l.id, parent: l.parent, agentKey: l.agentKey.text, terms: l.terms, digest: l.digest })) };
  }

  /**
   * Registers every link of a chain not registered yet, in one transaction. Refusals: the chain's
   * own (malformed, signature, domain, uri, chain, expired, widened), WALLET_UNKNOWN (no active owner
   * key of the address for the account), AGENT_SCOPE_FORBIDDEN, AGENT_WIDENED (past the owner
   * key), AGENT_LINK_REVOKED (a link above is registered and not active), AGENT_ALREADY_REGISTERED.
   */
  async register(body: unknown, now: number, client: string | null): Promise<RegisteredAgent | Denial> {
    const o = objectOf(body);
    if (o === null || !Array.isArray(o.chain) || Object.keys(o).some((k) => k !== "chain")) return deny("WALLET_MESSAGE_MALFORMED", "the body is { chain: [ { approval, signature }, { delegation, signature }… ] }");
    if (o.chain.length === 0 || o.chain.length > 8) return deny("WALLET_MESSAGE_MALFORMED", "a chain has 1 to 8 links");
    const verified = await this.verifyChain(o.chain, now);
    if ("ok" in verified) return verified;
    const { links } = verified;
    for (const link of links) {
      const bad = link.terms.scopes.find(FORBIDDEN);
      if (bad !== undefined) return deny("AGENT_SCOPE_FORBIDDEN", bad);
    }
    const owners = await this.keys.wallets(verified.owner);
    const owner = owners.find((k) => k.account === verified.account && effectiveStatus(k, now) === "active" && k.effectiveStatus === "active");
    if (owner === undefined) return deny("WALLET_UNKNOWN", `${verified.owner} for account ${verified.account}`);
    const top = links[0];
    if (top === undefined) return deny("WALLET_MESSAGE_MALFORMED", "an empty chain");
    const widened = widensOwner(owner, top.terms, this.limits);
    if (widened !== null) return deny("AGENT_WIDENED", widened);

    // The links registered already (a prefix of the chain) must be active and the very links signed.
    const active: string[] = [owner.id];
    let first = 0;
    for (const link of links) {
      const existing = await this.keys.get(link.id).catch((err: unknown) => {
        if (err instanceof PortcullisError && err.code === "KEY_NOT_FOUND") return null;
        throw err;
      });
      if (existing === null) break;
      if (first === links.length - 1 || existing.agent?.digest !== link.digest) return deny("AGENT_ALREADY_REGISTERED", link.id);
      if (existing.effectiveStatus !== "active") return deny("AGENT_LINK_REVOKED", `${link.id} is ${existing.effectiveStatus}`);
      active.push(link.id);
      first++;
    }
    if (first === links.length) return deny("AGENT_ALREADY_REGISTERED", links[links.length - 1]?.id);

    const inputs: AgentKeyInput[] = [];
    const ancestors: string[] = [];
    for (let i = 0; i < links.length; i++) {
      const link = links[i] as VerifiedLink;
      if (i >= first) {
        const pem = agentKeyMaterial(link.agentKey);
        if (pem === null) return deny("WALLET_MESSAGE_MALFORMED", `agentKey of link ${i} is not an ed25519: or secp256k1: key`);
        const terms = parseAgentTerms(link.terms);
        if (!terms.ok) return deny("WALLET_MESSAGE_MALFORMED", terms.message);
        const grant: AgentGrant = { ownerAddress: verified.owner, ownerKey: owner.id, parent: link.parent, agentKey: link.agentKey, ancestors: [...ancestors], depth: i + 1, terms: link.terms, digest: link.digest };
        inputs.push({
          id: link.id,
          account: owner.account,
          label: i === 0 ? `agent of ${verified.owner}` : `delegate of ${link.parent ?? ""}`,
          publicKey: pem,
          scopes: [...new Set(link.terms.scopes)],
          guardrails: terms.value.guardrails,
          limits: terms.value.limits,
          expiresAt: link.terms.expiresAt * 1000,
          grant,
        });
      }
      ancestors.push(link.id);
    }
    let views: KeyView[];
    try {
      views = await this.keys.registerAgents(inputs, active, `wallet:${verified.owner}${client === null ? "" : `@${client}`}`);
    } catch (err) {
      if (err instanceof PortcullisError && (err.code === "AGENT_ALREADY_REGISTERED" || err.code === "AGENT_LINK_REVOKED" || err.code === "VALIDATION_FAILED")) {
        return deny(err.code === "VALIDATION_FAILED" ? "WALLET_MESSAGE_MALFORMED" : err.code, err.message);
      }
      throw err;
    }
    const last = views[views.length - 1];
    if (last === undefined) return deny("WALLET_MESSAGE_MALFORMED", "nothing to register");
    return {
      id: last.id,
      account: last.account,
      scopes: last.scopes,
      guardrails: last.guardrails,
      limits: last.limits,
      expiresAt: last.expiresAt,
      parent: last.agent?.parent ?? null,
      ancestors: last.agent?.ancestors ?? [],
      registered: views.map((v) => v.id),
    };
  }

  /**
   * A revocation's body (`signAgentRevocation`: `{ chainId, revocation: RevokeAgent, signature,
   * signer }`), its stamp checked by the protocol module (venue, nonce, at most 10 minutes).
   */
  readRevocation(body: unknown, now: number): ReadRevocation | Denial {
    const result = readRevocation(body, { venue: this.venue, now });
    return result.ok ? result.value : walletDenial(result);
  }

  /**
   * Revokes an agent and everything below it, signed by its owner wallet (EIP-712) or by an agent
   * above it in its chain (its key over the message's digest): AGENT_REVOKE_FORBIDDEN for any other
   * signer or no such agent, WALLET_SIGNATURE_INVALID for a signature that does not verify.
   */
  /**
   * Checks a revocation's signer and signature: the owner wallet of the agent, or an active agent
   * above it. Answers who may revoke what, for `revoke`, or the refusal. Nothing is changed or
   * consumed, so a message that fails here burns no nonce.
   */
  async authorizeRevocation(revocation: ReadRevocation): Promise<AuthorizedRevocation | Denial> {
    const target = await this.keys.get(revocation.agent).catch(() => null);
    const grant = target?.agent ?? null;
    if (target === null || grant === null) return deny("AGENT_REVOKE_FORBIDDEN", "no such agent");
    let actor: string;
    if (revocation.signer === "owner") {
      if (!(await revocationSignedBy(revocation, { owner: grant.ownerAddress }))) return deny("WALLET_SIGNATURE_INVALID", "not signed by the agent's owner wallet");
      actor = `wallet:${grant.ownerAddress}`;
    } else {
      if (!grant.ancestors.includes(revocation.signer)) return deny("AGENT_REVOKE_FORBIDDEN", `${revocation.signer} is not above ${target.id}`);
      const signer = await this.keys.get(revocation.signer).catch(() => null);
      if (signer?.agent === null || signer?.agent === undefined || signer.effectiveStatus !== "active") return deny("AGENT_REVOKE_FORBIDDEN", `${revocation.signer} is not an active agent`);
      if (!(await revocationSignedBy(revocation, { agentKey: signer.agent.agentKey }))) return deny("WALLET_SIGNATURE_INVALID", `not signed by ${revocation.signer}`);
      actor = `key:${signer.id}`;
    }
    return { target: target.id, alreadyRevoked: target.status === "revoked", actor };
  }

  /** Revokes an agent and every key below it, as an authorized revocation says. */
  async revoke(authorized: AuthorizedRevocation, client: string | null): Promise<{ readonly revoked: readonly string[] }> {
    if (authorized.alreadyRevoked) return { revoked: [] };
    const { key, below } = await this.keys.revokeTree(authorized.target, `${authorized.actor}${client === null ? "" : `@${client}`}`, "revoked by a signed RevokeAgent message");
    return { revoked: [key.id, ...below.map((k) => k.id)] };
  }
}
