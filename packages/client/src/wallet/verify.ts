/**
 * Verifying wallet messages, offline: everything here needs only the messages, their signatures
 * and the venue they are for — no gateway, no key store. The gateway runs the same functions, then
 * checks what only it knows (the owner's key is registered, a link is not revoked, a nonce is unused).
 *
 * Each message's stamp is checked in full: its `domain`, `uri` and chain id are the venue's, its
 * nonce is well-formed, it was issued (at most a minute in the future, for clock skew) and has not
 * expired, and it is not valid for longer than its kind allows.
 */
import { getAddress, isHex, recoverAddress, recoverMessageAddress } from "viem/utils";
import type { Hex } from "viem";
import { createSiweMessage, parseSiweMessage } from "viem/siwe";
import { type AgentPublicKey, parseAgentKey, verifyDigest } from "./agent-key.js";
import { agentKeyId, delegatedKeyId, type Environment } from "./ids.js";
import { type AgentTerms, exactMembers, isEpochSeconds, narrows, NONCE_RE, readTerms, refuse, type WalletRefusal, type WalletResult } from "./terms.js";
import {
  type ApproveAgentMessage,
  type DelegateMessage,
  type LogonMessage,
  MESSAGE_FIELDS,
  type RevokeAgentMessage,
  type WalletMessageType,
  type WalletVenue,
  walletDigest,
} from "./typed-data.js";

/** A message may be issued at most this far in the future (clock skew), in seconds. */
export const ISSUED_AT_SKEW_S = 60;
/** Logons and revocations are valid for at most 10 minutes. */
export const MAX_SHORT_LIFETIME_S = 600;
/** An agent's approval or delegation grants for at most 366 days. */
export const MAX_AGENT_LIFETIME_S = 366 * 86_400;
/** The longest chain: an approval and seven delegations. */
export const MAX_CHAIN_LENGTH = 8;

export interface VerifyOptions {
  readonly venue: WalletVenue;
  /** Now, in epoch milliseconds (default `Date.now()`). */
  readonly now?: number;
}

export interface ChainOptions extends VerifyOptions {
  /** The gateway's environment, for the derived key ids. */
  readonly environment: Environment;
  /**
   * The owner's address (any case): the approval must be signed by it. Null: answer whoever
   * signed, and the caller checks that address (the gateway looks it up among its owner keys) —
   * without that check any wallet's approval would pass.
   */
  readonly owner: string | null;
}

/** One verified link of a chain. */
export interface VerifiedLink {
  /** The derived key id of the agent this link creates. */
  readonly id: string;
  /** The key id of the agent above, or null for the owner's approval. */
  readonly parent: string | null;
  readonly agentKey: AgentPublicKey;
  readonly terms: AgentTerms;
  readonly nonce: string;
  /** The EIP-712 digest the link's signature signs. */
  readonly digest: Hex;
  readonly signature: Hex;
}

export interface VerifiedChain {
  /** The owner's address (EIP-55), recovered from the approval. */
  readonly owner: string;
  /** The account the owner approved for. */
  readonly account: string;
  readonly chainId: number;
  /** Top first: the owner's approval, then each delegation. */
  readonly links: readonly VerifiedLink[];
}

/** A chain as a bot sends it: `[{ chainId, approval, signature }, { chainId, delegation, signature }…]`. */
export type ChainEnvelope = readonly unknown[];

function nowSeconds(options: VerifyOptions): number {
  return Math.floor((options.now ?? Date.now()) / 1000);
}

/** The checks every message's stamp passes. `lifetime`: the longest validity of its kind, in seconds. */
function checkStamp(m: Record<string, unknown>, chainId: unknown, options: VerifyOptions, lifetime: number, link?: number): WalletRefusal | null {
  const { venue } = options;
  const bad = (message: string): WalletRefusal => refuse("WALLET_MESSAGE_MALFORMED", message, link);
  for (const name of ["domain", "uri", "nonce"]) {
    if (typeof m[name] !== "string") return bad(`${name} is not a string`);
  }
  if (!isEpochSeconds(chainId)) return bad("chainId is not a chain id");
  if (!isEpochSeconds(m["issuedAt"])) return bad("issuedAt is not epoch seconds");
  if (!isEpochSeconds(m["expiresAt"])) return bad("expiresAt is not epoch seconds");
  if (!NONCE_RE.test(m["nonce"] as string)) return bad("nonce is not 8 to 64 letters and digits");
  if (chainId !== venue.chainId) return refuse("WALLET_CHAIN_MISMATCH", `signed for chain ${chainId}, this venue is chain ${venue.chainId}`, link);
  if (m["domain"] !== venue.domain) return refuse("WALLET_DOMAIN_MISMATCH", `signed for domain ${JSON.stringify(m["domain"])}, this venue is ${venue.domain}`, link);
  if (m["uri"] !== venue.uri) return refuse("WALLET_URI_MISMATCH", `signed for uri ${JSON.stringify(m["uri"])}, this venue is ${venue.uri}`, link);
  const issuedAt = m["issuedAt"];
  const expiresAt = m["expiresAt"];
  if (expiresAt <= issuedAt) return bad("expiresAt is not after issuedAt");
  if (expiresAt - issuedAt > lifetime) return bad(`valid for more than ${lifetime} s`);
  const now = nowSeconds(options);
  if (issuedAt > now + ISSUED_AT_SKEW_S) return refuse("WALLET_NOT_YET_VALID", `issued at ${issuedAt}, in the future`, link);
  if (expiresAt <= now) return refuse("WALLET_EXPIRED", `expired at ${expiresAt}`, link);
  return null;
}

function readSignature(value: unknown, link?: number): Hex | WalletRefusal {
  // 65 bytes (r‖s‖v: a wallet's, a secp256k1 agent's) or 64 (an Ed25519 agent's); whose it must be is checked by the verification.
  if (typeof value !== "string" || !isHex(value, { strict: true }) || (value.length !== 132 && value.length !== 130)) {
    return refuse("WALLET_MESSAGE_MALFORMED", "signature is not 64 or 65 bytes of 0x hex", link);
  }
  return value;
}

/** Recovers the address that signed a digest (EIP-55), or null when the signature is not one. */
export async function recoverSigner(digest: Hex, signature: Hex): Promise<string | null> {
  try {
    return getAddress(await recoverAddress({ hash: digest, signature }));
  } catch {
    return null;
  }
}

function readEnvelope(value: unknown, kind: "approval" | "delegation" | "logon" | "revocation", extra: readonly string[], link?: number): Record<string, unknown> | WalletRefusal {
  const e = exactMembers(value, ["chainId", kind, "signature", ...extra], link === undefined ? "the body" : `chain link ${link}`);
  if (typeof e === "string") return refuse("WALLET_MESSAGE_MALFORMED", e, link);
  return e;
}

function readMessage(type: WalletMessageType, value: unknown, link?: number): Record<string, unknown> | WalletRefusal {
  const m = exactMembers(value, MESSAGE_FIELDS[type], `the ${type} message`);
  if (typeof m === "string") return refuse("WALLET_MESSAGE_MALFORMED", m, link);
  return m;
}

/**
 * Verifies a delegation chain offline: the owner's approval (recovered with EIP-712), then each
 * delegation signed by the agent above it and naming it as `parent`, every link narrowing the one
 * above (`narrows`), none expired, all for this venue. Answers the owner, the account and each
 * link's derived key id and terms.
 */
export async function verifyAgentChain(chain: unknown, options: ChainOptions): Promise<WalletResult<VerifiedChain>> {
  if (!Array.isArray(chain) || chain.length === 0) return refuse("WALLET_MESSAGE_MALFORMED", "chain is not a non-empty array");
  if (chain.length > MAX_CHAIN_LENGTH) return refuse("WALLET_MESSAGE_MALFORMED", `chain is longer than ${MAX_CHAIN_LENGTH} links`);
  const links: VerifiedLink[] = [];
  let owner = "";
  let account = "";
  for (let i = 0; i < chain.length; i++) {
    const kind = i === 0 ? "approval" : "delegation";
    const envelope = readEnvelope(chain[i], kind, [], i);
    if ("ok" in envelope) return envelope as WalletRefusal;
    const type = i === 0 ? "ApproveAgent" : "Delegate";
    const m = readMessage(type, envelope[kind], i);
    if ("ok" in m) return m as WalletRefusal;
    const stamp = checkStamp(m, envelope["chainId"], options, MAX_AGENT_LIFETIME_S, i);
    if (stamp !== null) return stamp;
    const terms = readTerms(m, i);
    if (!terms.ok) return terms;
    if (typeof m["agentKey"] !== "string") return refuse("WALLET_MESSAGE_MALFORMED", "agentKey is not a string", i);
    const agentKey = parseAgentKey(m["agentKey"]);
    if (agentKey === null) return refuse("WALLET_MESSAGE_MALFORMED", "agentKey is not ed25519:<base64url> or secp256k1:0x<compressed point>", i);
    const signature = readSignature(envelope["signature"], i);
    if (typeof signature !== "string") return signature;
    const nonce = m["nonce"] as string;
    const chainId = options.venue.chainId;
    if (i === 0) {
      if (typeof m["account"] !== "string" || m["account"] === "") return refuse("WALLET_MESSAGE_MALFORMED", "account is not a non-empty string", i);
      const digest = walletDigest("ApproveAgent", m as unknown as ApproveAgentMessage, chainId);
      const signer = await recoverSigner(digest, signature);
      if (signer === null || (options.owner !== null && signer.toLowerCase() !== options.owner.toLowerCase())) {
        return refuse("WALLET_SIGNATURE_INVALID", "the approval's signature does not recover to the owner", i);
      }
      owner = signer;
      account = m["account"];
      links.push({ id: agentKeyId(options.environment, chainId, signer, nonce), parent: null, agentKey, terms: terms.value, nonce, digest, signature });
      continue;
    }
    const above = links[i - 1] as VerifiedLink;
    if (m["parent"] !== above.id) return refuse("AGENT_CHAIN_BROKEN", `delegation ${i} names parent ${JSON.stringify(m["parent"])}, the link above is ${above.id}`, i);
    const digest = walletDigest("Delegate", m as unknown as DelegateMessage, chainId);
    if (!(await verifyDigest(above.agentKey, digest, signature))) {
      return refuse("WALLET_SIGNATURE_INVALID", `delegation ${i} is not signed by the agent above it`, i);
    }
    const widening = narrows(above.terms, terms.value);
    if (widening !== null) return refuse("AGENT_WIDENED", `delegation ${i} widens ${widening.field}: ${widening.message}`, i);
    links.push({ id: delegatedKeyId(options.environment, above.id, nonce), parent: above.id, agentKey, terms: terms.value, nonce, digest, signature });
  }
  return { ok: true, value: { owner, account, chainId: options.venue.chainId, links } };
}

/** A verified logon: who signed it, and the single-use nonce the gateway must now consume. */
export interface VerifiedLogon {
  readonly owner: string;
  /** The account named in an EIP-712 logon; null for EIP-4361 (the owner's address names it). */
  readonly account: string | null;
  readonly nonce: string;
  /** Epoch ms. */
  readonly expiresAt: number;
}

/** Verifies an EIP-712 logon: `{ chainId, logon: Logon, signature }`. */
export async function verifyLogon(body: unknown, options: VerifyOptions): Promise<WalletResult<VerifiedLogon>> {
  const envelope = readEnvelope(body, "logon", []);
  if ("ok" in envelope) return envelope as WalletRefusal;
  const m = readMessage("Logon", envelope["logon"]);
  if ("ok" in m) return m as WalletRefusal;
  const stamp = checkStamp(m, envelope["chainId"], options, MAX_SHORT_LIFETIME_S);
  if (stamp !== null) return stamp;
  if (typeof m["account"] !== "string" || m["account"] === "") return refuse("WALLET_MESSAGE_MALFORMED", "account is not a non-empty string");
  const signature = readSignature(envelope["signature"]);
  if (typeof signature !== "string") return signature;
  const owner = await recoverSigner(walletDigest("Logon", m as unknown as LogonMessage, options.venue.chainId), signature);
  if (owner === null) return refuse("WALLET_SIGNATURE_INVALID", "the logon's signature recovers no address");
  return { ok: true, value: { owner, account: m["account"], nonce: m["nonce"] as string, expiresAt: (m["expiresAt"] as number) * 1000 } };
}

/**
 * Verifies an EIP-4361 (Sign-In with Ethereum) logon: `{ siwe: "<message>", signature }`. The text
 * is parsed, every field Portcullis requires must be there (domain, address, URI, version 1, chain
 * id, nonce, issued-at and expiration time), and it must be exactly the text those fields make
 * (so no field can hide in an unparsed line); the signature is EIP-191's.
 */
export async function verifySiweLogon(body: unknown, options: VerifyOptions): Promise<WalletResult<VerifiedLogon>> {
  const e = exactMembers(body, ["siwe", "signature"], "the body");
  if (typeof e === "string") return refuse("WALLET_MESSAGE_MALFORMED", e);
  const text = e["siwe"];
  if (typeof text !== "string" || text.length > 4096) return refuse("WALLET_MESSAGE_MALFORMED", "siwe is not a message of at most 4096 characters");
  const signature = readSignature(e["signature"]);
  if (typeof signature !== "string") return signature;
  const parsed = parseSiweMessage(text);
  const { domain, address, uri, version, chainId, nonce, issuedAt, expirationTime } = parsed;
  if (domain === undefined || address === undefined || uri === undefined || version !== "1" || chainId === undefined || nonce === undefined || issuedAt === undefined || expirationTime === undefined) {
    return refuse("WALLET_MESSAGE_MALFORMED", "an EIP-4361 message needs domain, address, URI, Version 1, Chain ID, Nonce, Issued At and Expiration Time");
  }
  let canonical: string;
  try {
    canonical = createSiweMessage({ ...parsed, domain, address, uri, version, chainId, nonce, issuedAt, expirationTime });
  } catch {
    return refuse("WALLET_MESSAGE_MALFORMED", "the EIP-4361 message has an invalid field");
  }
  if (canonical !== text) return refuse("WALLET_MESSAGE_MALFORMED", "the EIP-4361 message is not in its canonical form");
  const stamp = checkStamp(
    { domain, uri, nonce, issuedAt: Math.floor(issuedAt.getTime() / 1000), expiresAt: Math.floor(expirationTime.getTime() / 1000) },
    chainId,
    options,
    MAX_SHORT_LIFETIME_S,
  );
  if (stamp !== null) return stamp;
  if (parsed.notBefore !== undefined && parsed.notBefore.getTime() > (options.now ?? Date.now())) return refuse("WALLET_NOT_YET_VALID", "not before " + parsed.notBefore.toISOString());
  let owner: string;
  try {
    owner = getAddress(await recoverMessageAddress({ message: text, signature }));
  } catch {
    return refuse("WALLET_SIGNATURE_INVALID", "the signature recovers no address");
  }
  if (owner !== getAddress(address)) return refuse("WALLET_SIGNATURE_INVALID", "the signature is not the message's address's");
  return { ok: true, value: { owner, account: null, nonce, expiresAt: expirationTime.getTime() } };
}

/** A revocation whose stamp is checked; its signature is checked against whoever it says signed it. */
export interface ReadRevocation {
  readonly agent: string;
  readonly nonce: string;
  /** Epoch ms. */
  readonly expiresAt: number;
  /** "owner" (the wallet, EIP-712) or the key id of an agent above the revoked one. */
  readonly signer: string;
  readonly digest: Hex;
  readonly signature: Hex;
}

/** Reads and stamp-checks `{ chainId, revocation: RevokeAgent, signature, signer }`. */
export function readRevocation(body: unknown, options: VerifyOptions): WalletResult<ReadRevocation> {
  const envelope = readEnvelope(body, "revocation", ["signer"]);
  if ("ok" in envelope) return envelope as WalletRefusal;
  const m = readMessage("RevokeAgent", envelope["revocation"]);
  if ("ok" in m) return m as WalletRefusal;
  const stamp = checkStamp(m, envelope["chainId"], options, MAX_SHORT_LIFETIME_S);
  if (stamp !== null) return stamp;
  if (typeof m["agent"] !== "string") return refuse("WALLET_MESSAGE_MALFORMED", "agent is not a key id");
  const signer = envelope["signer"];
  if (typeof signer !== "string" || signer === "") return refuse("WALLET_MESSAGE_MALFORMED", `signer is not "owner" or a key id`);
  const signature = readSignature(envelope["signature"]);
  if (typeof signature !== "string") return signature;
  const digest = walletDigest("RevokeAgent", m as unknown as RevokeAgentMessage, options.venue.chainId);
  return { ok: true, value: { agent: m["agent"], nonce: m["nonce"] as string, expiresAt: (m["expiresAt"] as number) * 1000, signer, digest, signature } };
}

/** Does a revocation's signature come from `owner` (an address), or from the agent key given? */
export async function revocationSignedBy(revocation: ReadRevocation, by: { readonly owner: string } | { readonly agentKey: string }): Promise<boolean> {
  if ("owner" in by) {
    const signer = await recoverSigner(revocation.digest, revocation.signature);
    return signer !== null && signer.toLowerCase() === by.owner.toLowerCase();
  }
  const key = parseAgentKey(by.agentKey);
  return key !== null && (await verifyDigest(key, revocation.digest, revocation.signature));
}
