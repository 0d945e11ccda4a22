/**
 * Agent registration from signatures alone, and revocation by signed message (docs/wallets.md),
 * through the real gateway in front of the demo exchange. The owner is a viem local account; its
 * agents are Ed25519 keys that sign native requests and delegate narrower terms. Every refusal
 * asserts its code.
 */
import { type DemoStack, startDemoStack } from "@portcullis/demo-exchange";
import {
  type AgentTerms,
  type PortcullisApiError,
  agentKeyId,
  createClient,
  delegatedKeyId,
  ed25519AgentKey,
  generateKeyPair,
  generateWalletNonce,
  signAgentApproval,
  signAgentRevocation,
  signDelegation,
  secp256k1AgentKey,
} from "@portcullis/client";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/log/logger.js";

const VENUE = { chainId: 8453, domain: "venue.example", uri: "https://venue.example" };
let stack: DemoStack;

beforeAll(async () => {
  stack = await startDemoStack({ port: 0, adminPort: 0, upstreamPort: 0, logger: silentLogger(), serverTiming: false, wallets: VENUE });
});
afterAll(async () => {
  await stack.close();
});

const DAY = 86_400;
/** One expiry for every link (a later one would widen the link above). */
const EXPIRES = Math.floor(Date.now() / 1000) + 7 * DAY;
const terms = (o: Partial<AgentTerms> = {}): AgentTerms => ({
  scopes: ["read", "trade"],
  symbols: ["*"],
  maxOrderNotional: "",
  maxOrderQuantity: "",
  maxOpenNotional: "",
  limits: [],
  expiresAt: EXPIRES,
  ...o,
});

interface Owner {
  readonly wallet: ReturnType<typeof privateKeyToAccount>;
  readonly account: string;
  readonly keyId: string;
}

async function owner(scopes: string[] = ["read", "trade", "withdraw"]): Promise<Owner> {
  const wallet = privateKeyToAccount(generatePrivateKey());
  const account = `agents-${wallet.address.slice(2, 10).toLowerCase()}`;
  const created = await stack.createKey({ account, scopes, wallet: wallet.address });
  return { wallet, account, keyId: created.key.id };
}

interface AgentKey {
  readonly text: string;
  readonly pair: Awaited<ReturnType<typeof generateKeyPair>>;
}

async function agentKey(): Promise<AgentKey> {
  const pair = await generateKeyPair("ed25519");
  return { pair, text: await ed25519AgentKey(pair.publicKey) };
}

async function post(path: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${stack.gateway}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

const register = (chain: unknown[]) => post("/portcullis/v1/agents", { chain });

function clientOf(id: string, key: AgentKey) {
  return createClient({ baseUrl: stack.gateway, keyId: id, privateKey: key.pair.privateKeyPem, algorithm: "ed25519" });
}

async function codeOf(id: string, key: AgentKey, method = "GET", path = "/api/v3/account"): Promise<string> {
  try {
    await clientOf(id, key).json(method, path);
    return "OK";
  } catch (err) {
    return String((err as PortcullisApiError).code);
  }
}

/** An approved agent (registered), its derived id and key. */
async function approved(o: Owner, t: AgentTerms = terms()): Promise<{ id: string; key: AgentKey; link: Awaited<ReturnType<typeof signAgentApproval>> }> {
  const key = await agentKey();
  const nonce = generateWalletNonce();
  const link = await signAgentApproval(o.wallet, { venue: VENUE, account: o.account, agentKey: key.text, terms: t, nonce });
  const res = await register([link]);
  expect(res.status, JSON.stringify(res.json)).toBe(201);
  const id = agentKeyId("test", VENUE.chainId, o.wallet.address, nonce);
  expect(res.json).toMatchObject({ id, account: o.account, parent: null, ancestors: [], registered: [id] });
  return { id, key, link };
}

describe("registering an agent", () => {
  it("an owner's approval registers an Ed25519 agent under the derived id; it signs native requests and logs on", async () => {
    const o = await owner();
    const { id, key } = await approved(o, terms({ symbols: ["BTCUSDT", "ETH-USDT"], maxOrderNotional: "5000", maxOrderQuantity: "2", maxOpenNotional: "20000", limits: [{ name: "key-weight-1m", value: 600 }] }));
    const stored = await stack.running.core.keys.get(id);
    expect(stored).toMatchObject({ algorithm: "ed25519", account: o.account, scopes: ["read", "trade"], dialects: ["native"], limits: { "key-weight-1m": 600 } });
    expect(stored.guardrails).toMatchObject({ symbols: ["BTCUSDT", "ETH-USDT"], maxNotional: "5000", maxQuantity: "2", maxOpenNotional: "20000" });
    expect(stored.agent).toMatchObject({ ownerAddress: o.wallet.address, ownerKey: o.keyId, parent: null, depth: 1, ancestors: [] });
    expect(stored.agent?.terms.maxOpenNotional).toBe("20000");
    expect(await codeOf(id, key)).toBe("OK");
    const session = await clientOf(id, key).logon();
    expect(session.session.apiKeyId).toBe(id);
    expect(await session.json("GET", "/api/v3/account")).toBeTruthy();
  });

  it("the same approval again is AGENT_ALREADY_REGISTERED, also once the agent is revoked", async () => {
    const o = await owner();
    const { id, link } = await approved(o);
    expect(await register([link])).toMatchObject({ status: 409, json: { code: "AGENT_ALREADY_REGISTERED" } });
    await stack.running.core.keys.revoke(id, "test");
    expect(await register([link])).toMatchObject({ status: 409, json: { code: "AGENT_ALREADY_REGISTERED" } });
  });

  it("refuses terms wider than the owner key (scopes, limits, expiry) and any agent holding withdraw", async () => {
    const o = await owner(["read"]);
    const key = await agentKey();
    const approve = (t: AgentTerms) => signAgentApproval(o.wallet, { venue: VENUE, account: o.account, agentKey: key.text, terms: t });
    expect((await register([await approve(terms())])).json.code).toBe("AGENT_WIDENED");
    expect((await register([await approve(terms({ scopes: ["read"], limits: [{ name: "key-weight-1m", value: 1_000_000 }] }))])).json.code).toBe("AGENT_WIDENED");
    const rich = await owner();
    const withdraw = await signAgentApproval(rich.wallet, { venue: VENUE, account: rich.account, agentKey: key.text, terms: terms({ scopes: ["read", "withdraw"] as never }) });
    expect((await register([withdraw])).json.code).toBe("AGENT_SCOPE_FORBIDDEN");
  });

  it("refuses an approval by a wallet with no owner key for the account, and one for another venue", async () => {
    const o = await owner();
    const key = await agentKey();
    const stranger = privateKeyToAccount(generatePrivateKey());
    expect((await register([await signAgentApproval(stranger, { venue: VENUE, account: o.account, agentKey: key.text, terms: terms() })])).json.code).toBe("WALLET_UNKNOWN");
    expect((await register([await signAgentApproval(o.wallet, { venue: VENUE, account: "someone-else", agentKey: key.text, terms: terms() })])).json.code).toBe("WALLET_UNKNOWN");
    expect((await register([await signAgentApproval(o.wallet, { venue: { ...VENUE, chainId: 1 }, account: o.account, agentKey: key.text, terms: terms() })])).json.code).toBe("WALLET_CHAIN_MISMATCH");
    expect((await register([await signAgentApproval(o.wallet, { venue: { ...VENUE, domain: "evil.example" }, account: o.account, agentKey: key.text, terms: terms() })])).json.code).toBe("WALLET_DOMAIN_MISMATCH");
    expect((await register([await signAgentApproval(o.wallet, { venue: { ...VENUE, uri: "https://evil.example" }, account: o.account, agentKey: key.text, terms: terms() })])).json.code).toBe("WALLET_URI_MISMATCH");
    expect((await post("/portcullis/v1/agents", { chain: [], extra: 1 })).json.code).toBe("WALLET_MESSAGE_MALFORMED");
  });

  it("an agent cannot withdraw: the demo's withdraw route answers SCOPE_MISSING", async () => {
    const o = await owner();
    const { id, key } = await approved(o);
    expect(await codeOf(id, key, "POST", "/sapi/v1/capital/withdraw/apply?coin=USDT&address=0xabc&amount=1")).toBe("SCOPE_MISSING");
  });
});

describe("secp256k1 agents", () => {
  it("a secp256k1 agent registers, signs native requests (ecdsa-secp256k1-sha256), logs on, and delegates to an Ed25519 key", async () => {
    const o = await owner();
    const privateKey = generatePrivateKey();
    const text = secp256k1AgentKey(privateKey);
    const nonce = generateWalletNonce();
    const link = await signAgentApproval(o.wallet, { venue: VENUE, account: o.account, agentKey: text, terms: terms(), nonce });
    const res = await register([link]);
    expect(res.status, JSON.stringify(res.json)).toBe(201);
    const id = agentKeyId("test", VENUE.chainId, o.wallet.address, nonce);
    expect((await stack.running.core.keys.get(id)).algorithm).toBe("secp256k1");
    const client = createClient({ baseUrl: stack.gateway, keyId: id, privateKey, algorithm: "secp256k1" });
    expect(await client.json("GET", "/api/v3/account")).toBeTruthy();
    const session = await client.logon();
    expect(await session.json("GET", "/api/v3/account")).toBeTruthy();
    // It signs a delegation over the digest with its 65-byte recoverable signature.
    const childKey = await agentKey();
    const childNonce = generateWalletNonce();
    const delegation = await signDelegation({ algorithm: "secp256k1", privateKey }, { venue: VENUE, parent: id, agentKey: childKey.text, terms: terms({ scopes: ["read"] }), nonce: childNonce });
    const child = await register([link, delegation]);
    expect(child.status, JSON.stringify(child.json)).toBe(201);
    expect(await codeOf(delegatedKeyId("test", id, childNonce), childKey)).toBe("OK");
  });
});

describe("delegation", () => {
  it("registers every link not yet registered; a delegate signs requests; a chain under a revoked link is AGENT_LINK_REVOKED", async () => {
    const o = await owner();
    const top = await approved(o);
    const childKey = await agentKey();
    const nonce = generateWalletNonce();
    const delegation = await signDelegation({ algorithm: "ed25519", privateKey: top.key.pair.privateKey }, { venue: VENUE, parent: top.id, agentKey: childKey.text, terms: terms({ scopes: ["read"] }), nonce });
    const res = await register([top.link, delegation]);
    expect(res.status, JSON.stringify(res.json)).toBe(201);
    const childId = delegatedKeyId("test", top.id, nonce);
    expect(res.json).toMatchObject({ id: childId, parent: top.id, ancestors: [top.id], registered: [childId], scopes: ["read"] });
    expect(await codeOf(childId, childKey)).toBe("OK");
    // A delegate with read only cannot trade.
    expect(await codeOf(childId, childKey, "POST", "/api/v3/order?symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=0.001&price=100&timeInForce=GTC")).toBe("SCOPE_MISSING");
    // A widening at the second link: the protocol module's AGENT_WIDENED.
    const wide = await signDelegation({ algorithm: "ed25519", privateKey: top.key.pair.privateKey }, { venue: VENUE, parent: top.id, agentKey: childKey.text, terms: terms({ expiresAt: top.link.approval.expiresAt + 1 }) });
    expect((await register([top.link, wide])).json.code).toBe("AGENT_WIDENED");
    // A delegation naming another parent than the link above: AGENT_CHAIN_BROKEN.
    const astray = await signDelegation({ algorithm: "ed25519", privateKey: top.key.pair.privateKey }, { venue: VENUE, parent: childId, agentKey: childKey.text, terms: terms({ scopes: ["read"] }) });
    expect((await register([top.link, astray])).json.code).toBe("AGENT_CHAIN_BROKEN");
    // The top revoked (with everything below): a new delegation under it is refused, the delegate's requests too.
    await stack.running.core.keys.revoke(top.id, "test");
    const late = await signDelegation({ algorithm: "ed25519", privateKey: top.key.pair.privateKey }, { venue: VENUE, parent: top.id, agentKey: childKey.text, terms: terms({ scopes: ["read"] }) });
    expect(await register([top.link, late])).toMatchObject({ status: 409, json: { code: "AGENT_LINK_REVOKED" } });
    expect(await codeOf(childId, childKey)).toBe("KEY_REVOKED");
  });

  it("a registered link that is suspended refuses the delegate's requests (AGENT_CHAIN_REVOKED)", async () => {
    const o = await owner();
    const top = await approved(o);
    const childKey = await agentKey();
    const nonce = generateWalletNonce();
    await register([top.link, await signDelegation({ algorithm: "ed25519", privateKey: top.key.pair.privateKey }, { venue: VENUE, parent: top.id, agentKey: childKey.text, terms: terms(), nonce })]);
    const childId = delegatedKeyId("test", top.id, nonce);
    await stack.running.core.keys.suspend(top.id, "test");
    expect(await codeOf(childId, childKey)).toBe("AGENT_CHAIN_REVOKED");
  });
});

describe("the admin API", () => {
  it("lists agents with their grant, and its revoke of an owner key revokes the agents below", async () => {
    const operator = await stack.createKey({ account: "ops", scopes: ["admin:keys"], operator: true });
    const admin = createClient({ baseUrl: stack.admin ?? "", keyId: operator.key.id, secret: operator.secret ?? "", algorithm: "hmac-sha256" });
    const o = await owner();
    const { id, key } = await approved(o);
    const listed = await admin.json<{ keys: { id: string; agent: { ownerKey: string; depth: number; terms: { scopes: string[] } } | null }[] }>("GET", `/portcullis/v1/keys?account=${o.account}`);
    const shown = listed.keys.find((k) => k.id === id);
    expect(shown?.agent).toMatchObject({ ownerKey: o.keyId, depth: 1, terms: { scopes: ["read", "trade"] } });
    expect(listed.keys.find((k) => k.id === o.keyId)?.agent).toBeNull();
    await admin.json("POST", `/portcullis/v1/keys/${o.keyId}/revoke`, { json: { reason: "wallet lost" } });
    expect(await codeOf(id, key)).toBe("KEY_REVOKED");
  });
});

describe("revocation by signed message", () => {
  it("the owner's RevokeAgent revokes the agent and everything below it; replayed, it is WALLET_NONCE_REPLAYED", async () => {
    const o = await owner();
    const top = await approved(o);
    const childKey = await agentKey();
    const nonce = generateWalletNonce();
    await register([top.link, await signDelegation({ algorithm: "ed25519", privateKey: top.key.pair.privateKey }, { venue: VENUE, parent: top.id, agentKey: childKey.text, terms: terms(), nonce })]);
    const childId = delegatedKeyId("test", top.id, nonce);
    const body = await signAgentRevocation({ owner: o.wallet }, { venue: VENUE, revoke: top.id });
    // A forgery carrying the same nonce is refused by its signature, and burns nothing: the real one still works.
    const forgery = { ...body, signature: (await signAgentRevocation({ owner: (await owner()).wallet }, { venue: VENUE, revoke: top.id, nonce: body.revocation.nonce, issuedAt: body.revocation.issuedAt })).signature };
    expect((await post("/portcullis/v1/agents/revoke", forgery)).json.code).toBe("WALLET_SIGNATURE_INVALID");
    expect(await post("/portcullis/v1/agents/revoke", body)).toEqual({ status: 200, json: { revoked: [top.id, childId] } });
    expect(await codeOf(top.id, top.key)).toBe("KEY_REVOKED");
    expect(await codeOf(childId, childKey)).toBe("KEY_REVOKED");
    expect((await post("/portcullis/v1/agents/revoke", body)).json.code).toBe("WALLET_NONCE_REPLAYED");
  });

  it("an agent above revokes the one below; anyone else is refused (AGENT_REVOKE_FORBIDDEN, WALLET_SIGNATURE_INVALID)", async () => {
    const o = await owner();
    const top = await approved(o);
    const other = await approved(o);
    const childKey = await agentKey();
    const nonce = generateWalletNonce();
    await register([top.link, await signDelegation({ algorithm: "ed25519", privateKey: top.key.pair.privateKey }, { venue: VENUE, parent: top.id, agentKey: childKey.text, terms: terms(), nonce })]);
    const childId = delegatedKeyId("test", top.id, nonce);
    // Another agent of the same owner is not above the child.
    const sideways = await signAgentRevocation({ agent: other.id, key: { algorithm: "ed25519", privateKey: other.key.pair.privateKey } }, { venue: VENUE, revoke: childId });
    expect((await post("/portcullis/v1/agents/revoke", sideways)).json.code).toBe("AGENT_REVOKE_FORBIDDEN");
    // The child cannot revoke its parent.
    const upward = await signAgentRevocation({ agent: childId, key: { algorithm: "ed25519", privateKey: childKey.pair.privateKey } }, { venue: VENUE, revoke: top.id });
    expect((await post("/portcullis/v1/agents/revoke", upward)).json.code).toBe("AGENT_REVOKE_FORBIDDEN");
    // Signed by another key than the one named: the signature does not verify.
    const forged = await signAgentRevocation({ agent: top.id, key: { algorithm: "ed25519", privateKey: other.key.pair.privateKey } }, { venue: VENUE, revoke: childId });
    expect((await post("/portcullis/v1/agents/revoke", forged)).json.code).toBe("WALLET_SIGNATURE_INVALID");
    const stranger = privateKeyToAccount(generatePrivateKey());
    expect((await post("/portcullis/v1/agents/revoke", await signAgentRevocation({ owner: stranger }, { venue: VENUE, revoke: childId }))).json.code).toBe("WALLET_SIGNATURE_INVALID");
    const byParent = await signAgentRevocation({ agent: top.id, key: { algorithm: "ed25519", privateKey: top.key.pair.privateKey } }, { venue: VENUE, revoke: childId });
    expect(await post("/portcullis/v1/agents/revoke", byParent)).toEqual({ status: 200, json: { revoked: [childId] } });
    expect(await codeOf(childId, childKey)).toBe("KEY_REVOKED");
    expect(await codeOf(top.id, top.key)).toBe("OK");
  });
});
