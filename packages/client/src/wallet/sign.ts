/**
 * Making wallet messages: what an owner's wallet signs (an agent's approval, a logon, a
 * revocation) and what an agent's key signs (a delegation, a revocation below it). Each answers
 * the JSON body the gateway takes, ready to send. Works with any EIP-712 wallet that has viem's
 * account shape (`privateKeyToAccount`, a JSON-RPC account of a `walletClient`, …), in Node and in
 * browsers.
 */
import type { Hex, TypedDataDefinition } from "viem";
import { createSiweMessage } from "viem/siwe";
import { randomBytes } from "../encoding.js";
import { type AgentSigningKey, signDigest } from "./agent-key.js";
import type { AgentTerms } from "./terms.js";
import { type ApproveAgentMessage, type DelegateMessage, type LogonMessage, type RevokeAgentMessage, type WalletVenue, walletDigest, walletTypedData } from "./typed-data.js";

/** What Portcullis needs of a wallet: its address, EIP-712 and EIP-191 signing (viem's account shape). */
export interface WalletSigner {
  readonly address: string;
  signTypedData(typedData: TypedDataDefinition): Promise<Hex>;
  signMessage(args: { message: string }): Promise<Hex>;
}

const NONCE_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** A fresh nonce: 22 base62 characters from the platform CSPRNG (about 131 bits). */
export function generateWalletNonce(): string {
  let out = "";
  for (const b of randomBytes(22)) out += NONCE_ALPHABET.charAt(b % 62);
  return out;
}

interface StampOptions {
  readonly venue: WalletVenue;
  /** Default: a fresh one. */
  readonly nonce?: string;
  /** Epoch seconds; default now. */
  readonly issuedAt?: number;
}

function stamp(options: StampOptions): { domain: string; uri: string; nonce: string; issuedAt: number } {
  return {
    domain: options.venue.domain,
    uri: options.venue.uri,
    nonce: options.nonce ?? generateWalletNonce(),
    issuedAt: options.issuedAt ?? Math.floor(Date.now() / 1000),
  };
}

function typed(signer: WalletSigner, typedData: TypedDataDefinition): Promise<Hex> {
  return signer.signTypedData(typedData);
}

export interface ApprovalOptions extends StampOptions {
  readonly account: string;
  readonly agentKey: string;
  readonly terms: AgentTerms;
}

/** The owner approves an agent: the first link of a chain, `{ chainId, approval, signature }`. */
export async function signAgentApproval(owner: WalletSigner, options: ApprovalOptions) {
  const approval: ApproveAgentMessage = { ...stamp(options), account: options.account, agentKey: options.agentKey, ...options.terms };
  const signature = await typed(owner, walletTypedData("ApproveAgent", approval, options.venue.chainId));
  return { chainId: options.venue.chainId, approval, signature };
}

export interface DelegationOptions extends StampOptions {
  /** The key id of the agent that signs (its parent's id as the chain derives it). */
  readonly parent: string;
  readonly agentKey: string;
  readonly terms: AgentTerms;
}

/** An agent delegates narrower terms to another key: a further link, `{ chainId, delegation, signature }`. */
export async function signDelegation(parentKey: AgentSigningKey, options: DelegationOptions) {
  const delegation: DelegateMessage = { ...stamp(options), parent: options.parent, agentKey: options.agentKey, ...options.terms };
  const signature = await signDigest(parentKey, walletDigest("Delegate", delegation, options.venue.chainId));
  return { chainId: options.venue.chainId, delegation, signature };
}

export interface ShortOptions extends StampOptions {
  /** Seconds the message stays valid: default 300, at most 600. */
  readonly ttl?: number;
}

/** An EIP-712 logon of the owner: the body of `POST /portcullis/v1/wallet/session`. */
export async function signWalletLogon(owner: WalletSigner, options: ShortOptions & { readonly account: string }) {
  const s = stamp(options);
  const logon: LogonMessage = { ...s, account: options.account, expiresAt: s.issuedAt + (options.ttl ?? 300) };
  const signature = await typed(owner, walletTypedData("Logon", logon, options.venue.chainId));
  return { chainId: options.venue.chainId, logon, signature };
}

/** An EIP-4361 (Sign-In with Ethereum) logon: the body `{ siwe, signature }` of `POST /portcullis/v1/wallet/session`. */
export async function signSiweLogon(owner: WalletSigner, options: ShortOptions & { readonly statement?: string }) {
  const s = stamp(options);
  const siwe = createSiweMessage({
    domain: s.domain,
    address: owner.address as Hex,
    uri: s.uri,
    version: "1",
    chainId: options.venue.chainId,
    nonce: s.nonce,
    issuedAt: new Date(s.issuedAt * 1000),
    expirationTime: new Date((s.issuedAt + (options.ttl ?? 300)) * 1000),
    ...(options.statement === undefined ? {} : { statement: options.statement }),
  });
  const signature = await owner.signMessage({ message: siwe });
  return { siwe, signature };
}

/**
 * Revokes an agent (and everything below it): signed by the owner's wallet (`signer: "owner"`) or
 * by an agent above it (`signer`: that agent's key id). The body of `POST /portcullis/v1/agents/revoke`.
 */
export async function signAgentRevocation(
  by: { readonly owner: WalletSigner } | { readonly agent: string; readonly key: AgentSigningKey },
  options: ShortOptions & { readonly revoke: string },
) {
  const s = stamp(options);
  const revocation: RevokeAgentMessage = { ...s, agent: options.revoke, expiresAt: s.issuedAt + (options.ttl ?? 300) };
  const chainId = options.venue.chainId;
  if ("owner" in by) {
    const signature = await typed(by.owner, walletTypedData("RevokeAgent", revocation, chainId));
    return { chainId, revocation, signature, signer: "owner" };
  }
  const signature = await signDigest(by.key, walletDigest("RevokeAgent", revocation, chainId));
  return { chainId, revocation, signature, signer: by.agent };
}
