/**
 * The page of test/browser/sdk.test.ts: @portcullis/client and viem, bundled by Vite for the
 * browser, and a few functions the test calls with `page.evaluate`. Keys are made here, in the
 * browser (WebCrypto for Ed25519, viem for secp256k1); only public keys leave the page.
 */
import {
  type AgentTerms,
  type Environment,
  PortcullisApiError,
  type WalletVenue,
  agentKeyId,
  createClient,
  delegatedKeyId,
  ed25519AgentKey,
  generateKeyPair,
  generateSecp256k1Key,
  type GeneratedKeyPair,
  type GeneratedSecp256k1Key,
  type PortcullisClient,
  secp256k1AgentKey,
  signAgentApproval,
  signDelegation,
  verifyAgentChain,
} from "@portcullis/client";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";

/** What a refused call ended in, or the answer. */
export type Outcome<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly status: number; readonly code: string } | { readonly ok: false; readonly error: string; readonly message: string };

async function outcome<T>(p: Promise<T>): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await p };
  } catch (err) {
    if (err instanceof PortcullisApiError) return { ok: false, status: err.status, code: String(err.code) };
    return { ok: false, error: err instanceof Error ? err.name : typeof err, message: err instanceof Error ? err.message : String(err) };
  }
}

let ed: GeneratedKeyPair | null = null;
let secp: GeneratedSecp256k1Key | null = null;

function keys(): { ed: GeneratedKeyPair; secp: GeneratedSecp256k1Key } {
  if (ed === null || secp === null) throw new Error("call makeKeys first");
  return { ed, secp };
}

const api = {
  /** Where the page runs: the SDK needs WebCrypto, which a secure context has. */
  environment: () => ({ origin: location.origin, secureContext: isSecureContext, subtle: typeof crypto.subtle === "object", userAgent: navigator.userAgent }),

  /** An Ed25519 pair (WebCrypto) and a secp256k1 key (viem), made in the page: their public halves. */
  async makeKeys(): Promise<{ ed25519: string; secp256k1: string; agentKey: string }> {
    ed = await generateKeyPair("ed25519");
    secp = await generateSecp256k1Key();
    return { ed25519: ed.publicKeyPem, secp256k1: secp.compressed, agentKey: secp.agentKey };
  },

  /** A client of the page's keys (by the ids the gateway gave them), as a bot in a browser makes one. */
  client(baseUrl: string, keyId: string, which: "ed25519" | "secp256k1"): PortcullisClient {
    const k = keys();
    return which === "ed25519"
      ? createClient({ baseUrl, keyId, privateKey: k.ed.privateKey, algorithm: "ed25519" })
      : createClient({ baseUrl, keyId, privateKey: k.secp.privateKey, algorithm: "secp256k1" });
  },

  /** Reads the account, places an order and reads it back, signed with one of the page's keys. */
  async trade(baseUrl: string, keyId: string, which: "ed25519" | "secp256k1", symbol: string) {
    const client = api.client(baseUrl, keyId, which);
    const account = await outcome(client.json<{ balances: unknown[] }>("GET", "/api/v3/account"));
    const order = await outcome(client.json<{ orderId: number; status: string; symbol: string }>("POST", "/api/v3/order", { json: { symbol, side: "BUY", type: "MARKET", quantity: "0.01" } }));
    return { algorithm: client.algorithm, account: account.ok ? { ok: true, balances: account.value.balances.length } : account, order };
  },

  /** A session opened with one of the page's keys (one signature at logon, HMAC afterwards). */
  async session(baseUrl: string, keyId: string, which: "ed25519" | "secp256k1") {
    const opened = await outcome(api.client(baseUrl, keyId, which).logon({ scopes: ["read"] }));
    if (!opened.ok) return { logon: opened };
    const session = opened.value;
    const read = await outcome(session.json<{ balances: unknown[] }>("GET", "/api/v3/account"));
    const trade = await outcome(session.json("POST", "/api/v3/order", { json: { symbol: "BTCUSDT", side: "BUY", type: "MARKET", quantity: "0.01" } }));
    await session.logout();
    return { logon: { ok: true }, algorithm: session.algorithm, apiKeyId: session.session.apiKeyId, read: read.ok, trade };
  },

  /** A plain call with one of the page's keys, for refusals (another key's id, say). */
  async read(baseUrl: string, keyId: string, which: "ed25519" | "secp256k1") {
    return outcome(api.client(baseUrl, keyId, which).json("GET", "/api/v3/account"));
  },

  /** viem's local account, made in the page, signs EIP-712 typed data; the test recovers the signer in Node. */
  async signTypedData(chainId: number, message: Record<string, string>) {
    const account = privateKeyToAccount(generatePrivateKey());
    const typedData = {
      domain: { name: "Portcullis", version: "1", chainId },
      types: { Logon: [{ name: "domain", type: "string" }, { name: "uri", type: "string" }, { name: "account", type: "address" }, { name: "nonce", type: "string" }, { name: "issuedAt", type: "uint64" }, { name: "expiresAt", type: "uint64" }] },
      primaryType: "Logon",
      message: { ...message, account: account.address },
    } as const;
    const signature = await account.signTypedData({
      ...typedData,
      message: { ...typedData.message, domain: message.domain ?? "", uri: message.uri ?? "", nonce: message.nonce ?? "", issuedAt: BigInt(message.issuedAt ?? "0"), expiresAt: BigInt(message.expiresAt ?? "0") },
    });
    return { address: account.address, signature, message: typedData.message };
  },

  /**
   * The wallet protocol with the SDK's helpers: an owner (viem's local account, made here) approves
   * the page's secp256k1 key as an agent, and that agent delegates narrower terms to the page's
   * Ed25519 key (signed by the secp256k1 key over the EIP-712 digest). Also a delegation that widens
   * its parent's terms, which verification must refuse. The page verifies the chain offline too.
   */
  async approveAgent(venue: WalletVenue, environment: Environment, account: string, now: number) {
    const k = keys();
    const owner = privateKeyToAccount(generatePrivateKey());
    const expiresAt = Math.floor(now / 1000) + 86_400;
    const terms: AgentTerms = { scopes: ["read", "trade"], symbols: ["BTCUSDT", "ETHUSDT"], maxOrderNotional: "5000", maxOrderQuantity: "1", maxOpenNotional: "20000", limits: [{ name: "orders-10s", value: 20 }], expiresAt };
    const approval = await signAgentApproval(owner, { venue, account, agentKey: k.secp.agentKey, terms, issuedAt: Math.floor(now / 1000) });
    const agentId = agentKeyId(environment, venue.chainId, owner.address, approval.approval.nonce);
    const edAgentKey = await ed25519AgentKey(k.ed.publicKey);
    const narrower: AgentTerms = { ...terms, scopes: ["trade"], symbols: ["BTCUSDT"], maxOrderNotional: "1000", expiresAt: expiresAt - 3600 };
    const parentKey = { algorithm: "secp256k1", privateKey: k.secp.privateKey } as const;
    const delegation = await signDelegation(parentKey, { venue, parent: agentId, agentKey: edAgentKey, terms: narrower, issuedAt: Math.floor(now / 1000) });
    const widened = await signDelegation(parentKey, { venue, parent: agentId, agentKey: edAgentKey, terms: { ...narrower, maxOrderNotional: "9000" }, issuedAt: Math.floor(now / 1000) });
    const verified = await verifyAgentChain([approval, delegation], { venue, environment, owner: owner.address, now });
    return {
      owner: owner.address,
      agentId,
      delegatedId: delegatedKeyId(environment, agentId, delegation.delegation.nonce),
      // The agent key text, two ways: from the key's public forms, and from the wallet helpers.
      agentKeys: [k.secp.agentKey, secp256k1AgentKey(k.secp.privateKey)],
      edAgentKey,
      chain: [approval, delegation],
      widened: [approval, widened],
      verifiedInPage: verified.ok ? verified.value.links.map((l) => l.id) : verified.code,
    };
  },
};

export type SdkPage = typeof api;
(globalThis as { sdkPage?: SdkPage }).sdkPage = api;
