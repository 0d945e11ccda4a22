import { deny } from "../errors/catalogue.js";
import type { Environment } from "../contract/ids.js";
import type { ChainVerifier, RevocationVerifier } from "./agents.js";
import type { WalletDomain } from "./logon.js";

/**
 * The client package's wallet protocol module (`@portcullis/client`: the EIP-712 types, derived
 * ids, `narrows`, `verifyAgentChain`), adapted to the registry. PLACEHOLDER until it lands on main.
 */
export function chainVerifier(_wallets: WalletDomain, _environment: Environment): ChainVerifier {
  return () => deny("WALLET_MESSAGE_MALFORMED", "agent registration is not available yet");
}

export function revocationVerifier(_wallets: WalletDomain): RevocationVerifier {
  return { ownerOf: () => Promise.resolve(null), signedBy: () => Promise.resolve(false) };
}
