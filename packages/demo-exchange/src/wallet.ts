import { generateKeyPairSync } from "node:crypto";
import { join } from "node:path";
import { type AgentTerms, type WalletVenue, agentKeyId, registerAgent, signAgentApproval } from "@portcullis/client";
import type { CreatedKey } from "portcullis";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { writeSecretFile } from "./secret-file.js";

/**
 * The demo's wallet-owned account (docs/wallets.md): an Ethereum wallet (a fresh local key, saved
 * in the data directory as the user's wallet would hold it) owns the account `demo-wallet`, and
 * approves one agent key — an Ed25519 key a bot holds — with an EIP-712 signature, registered
 * through the gateway's `POST /portcullis/v1/agents` exactly as a bot would. The gateway never
 * holds a secret of either.
 */

/** The demo venue's wallet settings: a local development chain id, and a name that is not a real host. */
export const DEMO_WALLET_VENUE: WalletVenue = { chainId: 31337, domain: "demo-exchange.localhost", uri: "http://demo-exchange.localhost" };
export const DEMO_WALLET_ACCOUNT = "demo-wallet";

/** What the owner granted the demo agent: two markets, per-order caps, a cap on open orders, a week. */
export function demoAgentTerms(now: number): AgentTerms {
  return {
    scopes: ["read", "trade"],
    symbols: ["BTCUSDT", "ETHUSDT"],
    maxOrderNotional: "5000",
    maxOrderQuantity: "0.5",
    maxOpenNotional: "20000",
    limits: [],
    expiresAt: Math.floor(now / 1000) + 7 * 86_400,
  };
}

export interface DemoWallet {
  readonly account: string;
  /** The owner's address (EIP-55). */
  readonly owner: string;
  /** The owner key (algorithm `ethereum`). */
  readonly ownerKeyId: string;
  /** `{ address, privateKey }` (mode 0600): the wallet, for signing logons, approvals and revocations. */
  readonly ownerFile: string;
  readonly agent: {
    readonly id: string;
    /** The agent's Ed25519 private key (PKCS#8 PEM, mode 0600). */
    readonly privateKeyFile: string;
    readonly terms: AgentTerms;
    /**
     * The owner's signed approval (`{ chainId, approval, signature }`): the first link of any chain
     * the agent delegates from (`registerAgent([approval, delegation])`). Not a secret.
     */
    readonly approval: unknown;
  };
}

/** What the set-up needs of a running demo (stack.ts's `DemoStack` has it). */
export interface WalletStack {
  readonly gateway: string;
  readonly dataDir: string;
  readonly environment: "live" | "test";
  createKey(input: Record<string, unknown>): Promise<CreatedKey>;
}

export async function setUpDemoWallet(stack: WalletStack): Promise<DemoWallet> {
  const privateKey = generatePrivateKey();
  const owner = privateKeyToAccount(privateKey);
  const ownerKey = await stack.createKey({ account: DEMO_WALLET_ACCOUNT, scopes: ["read", "trade"], wallet: owner.address, label: "demo wallet owner" });
  const ownerFile = join(stack.dataDir, "wallet-owner.json");
  writeSecretFile(ownerFile, `${JSON.stringify({ address: owner.address, privateKey }, null, 2)}\n`);

  const agent = generateKeyPairSync("ed25519");
  const raw = agent.publicKey.export({ format: "jwk" }).x;
  if (raw === undefined) throw new Error("an Ed25519 public key without x");
  const terms = demoAgentTerms(Date.now());
  const approval = await signAgentApproval(owner, { venue: DEMO_WALLET_VENUE, account: DEMO_WALLET_ACCOUNT, agentKey: `ed25519:${raw}`, terms });
  const registered = await registerAgent({ baseUrl: stack.gateway }, [approval]);
  const id = agentKeyId(stack.environment, DEMO_WALLET_VENUE.chainId, owner.address, approval.approval.nonce);
  if (registered.id !== id) throw new Error(`the gateway registered ${registered.id}, the approval derives ${id}`);
  const privateKeyFile = join(stack.dataDir, "demo-agent.pem");
  writeSecretFile(privateKeyFile, agent.privateKey.export({ type: "pkcs8", format: "pem" }).toString());
  return { account: DEMO_WALLET_ACCOUNT, owner: owner.address, ownerKeyId: ownerKey.key.id, ownerFile, agent: { id, privateKeyFile, terms, approval } };
}
