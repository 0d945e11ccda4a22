/**
 * Wallet-owned accounts (docs/wallets.md): an owner's Ethereum wallet approves agent keys with
 * EIP-712, agents delegate narrower credentials, and anyone can verify a chain offline.
 */
export type { AgentKeyAlgorithm, AgentPublicKey, AgentSigningKey } from "./agent-key.js";
export { compressSecp256k1, ed25519AgentKey, formatAgentKey, parseAgentKey, secp256k1AgentKey, signDigest, verifyDigest } from "./agent-key.js";
export type { Environment } from "./ids.js";
export { agentKeyId, delegatedKeyId, keyIdEnvironment } from "./ids.js";
export type { ApprovalOptions, DelegationOptions, ShortOptions, WalletSigner } from "./sign.js";
export { generateWalletNonce, signAgentApproval, signAgentRevocation, signDelegation, signSiweLogon, signWalletLogon } from "./sign.js";
export type { AgentLimit, AgentScope, AgentTerms, CapField, Widening, WalletCode, WalletRefusal, WalletResult } from "./terms.js";
export { AGENT_SCOPES, ANY_SYMBOL, CAP_FIELDS, compareDecimalText, isCapDecimal, MAX_LIMITS, MAX_LIMIT_VALUE, MAX_SYMBOLS, narrows, NONCE_RE, readTerms, TERM_FIELDS } from "./terms.js";
export type { ApproveAgentMessage, DelegateMessage, LogonMessage, RevokeAgentMessage, WalletMessages, WalletMessageType, WalletVenue } from "./typed-data.js";
export { EIP712_NAME, EIP712_VERSION, MESSAGE_FIELDS, termsOf, WALLET_TYPES, walletDigest, walletDomain, walletTypedData } from "./typed-data.js";
export type { ChainOptions, ReadRevocation, VerifiedChain, VerifiedLink, VerifiedLogon, VerifyOptions } from "./verify.js";
export {
  ISSUED_AT_SKEW_S,
  MAX_AGENT_LIFETIME_S,
  MAX_CHAIN_LENGTH,
  MAX_SHORT_LIFETIME_S,
  readRevocation,
  recoverSigner,
  revocationSignedBy,
  verifyAgentChain,
  verifyLogon,
  verifySiweLogon,
} from "./verify.js";
export type { AgentRegistration, GatewayOptions } from "./gateway.js";
export { AGENTS_PATH, AGENTS_REVOKE_PATH, registerAgent, revokeAgent, WALLET_SESSION_PATH, walletLogon } from "./gateway.js";
