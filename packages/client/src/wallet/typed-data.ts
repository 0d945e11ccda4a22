/**
 * The four EIP-712 messages of wallet-owned accounts, in one place: their types, their JSON
 * shapes (what a bot sends to the gateway), and the typed data a wallet signs.
 *
 * Every message names the venue (`domain`: its host, `uri`: its API origin), carries a single-use
 * `nonce`, and `issuedAt` / `expiresAt` in epoch seconds; the EIP-712 domain adds the chain id. All
 * are required: a verifier that left one out would let a signature made for another venue, chain
 * or moment be used here.
 */
import { hashTypedData } from "viem/utils";
import type { Hex, TypedDataDefinition } from "viem";
import { type AgentTerms, TERM_FIELDS } from "./terms.js";

/** The EIP-712 domain's name and version; the chain id is the gateway's (`wallets.chainId`). */
export const EIP712_NAME = "Portcullis";
export const EIP712_VERSION = "1";

/** Where a message is valid: the gateway's configured venue. */
export interface WalletVenue {
  /** The EIP-155 chain id the owner's wallet signs for. */
  readonly chainId: number;
  /** The venue's host, as in an EIP-4361 message's first line ("api.venue.example"). */
  readonly domain: string;
  /** The venue's API origin ("https://api.venue.example"). */
  readonly uri: string;
}

const LIMIT_TYPE = [
  { name: "name", type: "string" },
  { name: "value", type: "uint64" },
] as const;

const TERMS_TYPE = [
  { name: "scopes", type: "string[]" },
  { name: "symbols", type: "string[]" },
  { name: "maxOrderNotional", type: "string" },
  { name: "maxOrderQuantity", type: "string" },
  { name: "maxOpenNotional", type: "string" },
  { name: "limits", type: "Limit[]" },
  { name: "expiresAt", type: "uint64" },
] as const;

const VENUE_TYPE = [
  { name: "domain", type: "string" },
  { name: "uri", type: "string" },
] as const;

const STAMP_TYPE = [
  { name: "nonce", type: "string" },
  { name: "issuedAt", type: "uint64" },
] as const;

/** The EIP-712 types of each message (EIP712Domain is implied). */
export const WALLET_TYPES = {
  Logon: [...VENUE_TYPE, { name: "account", type: "string" }, ...STAMP_TYPE, { name: "expiresAt", type: "uint64" }],
  ApproveAgent: [...VENUE_TYPE, { name: "account", type: "string" }, { name: "agentKey", type: "string" }, ...TERMS_TYPE, ...STAMP_TYPE],
  Delegate: [...VENUE_TYPE, { name: "parent", type: "string" }, { name: "agentKey", type: "string" }, ...TERMS_TYPE, ...STAMP_TYPE],
  RevokeAgent: [...VENUE_TYPE, { name: "agent", type: "string" }, ...STAMP_TYPE, { name: "expiresAt", type: "uint64" }],
} as const;

export type WalletMessageType = keyof typeof WALLET_TYPES;

/** The JSON members of each message, in type order. */
export const MESSAGE_FIELDS: Readonly<Record<WalletMessageType, readonly string[]>> = {
  Logon: WALLET_TYPES.Logon.map((f) => f.name),
  ApproveAgent: WALLET_TYPES.ApproveAgent.map((f) => f.name),
  Delegate: WALLET_TYPES.Delegate.map((f) => f.name),
  RevokeAgent: WALLET_TYPES.RevokeAgent.map((f) => f.name),
};

interface Stamp {
  readonly domain: string;
  readonly uri: string;
  readonly nonce: string;
  /** Epoch seconds. */
  readonly issuedAt: number;
}

export interface LogonMessage extends Stamp {
  readonly account: string;
  readonly expiresAt: number;
}

export interface ApproveAgentMessage extends Stamp, AgentTerms {
  readonly account: string;
  /** `ed25519:<base64url>` or `secp256k1:0x<compressed point>` (agent-key.ts). */
  readonly agentKey: string;
}

export interface DelegateMessage extends Stamp, AgentTerms {
  /** The key id of the agent that signs this delegation. */
  readonly parent: string;
  readonly agentKey: string;
}

export interface RevokeAgentMessage extends Stamp {
  /** The key id of the agent revoked (and everything below it). */
  readonly agent: string;
  readonly expiresAt: number;
}

export interface WalletMessages {
  Logon: LogonMessage;
  ApproveAgent: ApproveAgentMessage;
  Delegate: DelegateMessage;
  RevokeAgent: RevokeAgentMessage;
}

/** Converts the JSON form (epoch seconds and limit values as numbers) to what EIP-712 encodes (uint64 as bigint). */
function toTypedMessage(message: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(message)) {
    if (name === "issuedAt" || name === "expiresAt") out[name] = BigInt(value as number);
    else if (name === "limits") out[name] = (value as { name: string; value: number }[]).map((l) => ({ name: l.name, value: BigInt(l.value) }));
    else out[name] = value;
  }
  return out;
}

/** The EIP-712 domain for a chain id. */
export function walletDomain(chainId: number): { name: string; version: string; chainId: number } {
  return { name: EIP712_NAME, version: EIP712_VERSION, chainId };
}

/**
 * The typed data a wallet signs for a message: pass it to any EIP-712 signer (viem's
 * `account.signTypedData`, `walletClient.signTypedData`, MetaMask's `eth_signTypedData_v4`).
 */
export function walletTypedData<T extends WalletMessageType>(primaryType: T, message: WalletMessages[T], chainId: number): TypedDataDefinition {
  const types: Record<string, readonly { name: string; type: string }[]> = { [primaryType]: WALLET_TYPES[primaryType] };
  if (primaryType === "ApproveAgent" || primaryType === "Delegate") types["Limit"] = LIMIT_TYPE;
  return { domain: walletDomain(chainId), types, primaryType, message: toTypedMessage(message) } as unknown as TypedDataDefinition;
}

/** The EIP-712 digest (`hashTypedData`) of a message: what an owner's wallet or an agent's key signs. */
export function walletDigest<T extends WalletMessageType>(primaryType: T, message: WalletMessages[T], chainId: number): Hex {
  return hashTypedData(walletTypedData(primaryType, message, chainId));
}

/** Picks a link's terms out of its message. */
export function termsOf(message: AgentTerms): AgentTerms {
  const out: Record<string, unknown> = {};
  for (const field of TERM_FIELDS) out[field] = message[field];
  return out as unknown as AgentTerms;
}
