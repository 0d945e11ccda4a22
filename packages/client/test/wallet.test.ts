/**
 * Wallet messages offline: viem's local account is the owner's wallet (an independent signer),
 * agents are Ed25519 (WebCrypto) and secp256k1 (viem) keys, and every refusal has its code.
 */
import { crc32 } from "node:zlib";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { recoverTypedDataAddress } from "viem";
import { describe, expect, it } from "vitest";
import {
  type AgentSigningKey,
  type AgentTerms,
  agentKeyId,
  delegatedKeyId,
  ed25519AgentKey,
  keyIdEnvironment,
  parseAgentKey,
  readRevocation,
  revocationSignedBy,
  secp256k1AgentKey,
  signAgentApproval,
  signAgentRevocation,
  signDelegation,
  signSiweLogon,
  signWalletLogon,
  verifyAgentChain,
  verifyLogon,
  verifySiweLogon,
  walletTypedData,
} from "../src/entry/index.js";

const NOW = Date.UTC(2026, 11, 6, 12, 0, 0);
const NOW_S = NOW / 1000;
const venue = { chainId: 1, domain: "api.venue.example", uri: "https://api.venue.example" };
const owner = privateKeyToAccount("0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318");
const options = { venue, environment: "live" as const, now: NOW, owner: owner.address as string | null };

const TERMS: AgentTerms = {
  scopes: ["read", "trade"],
  symbols: ["BTCUSDT", "ETH-USDT"],
  maxOrderNotional: "50000",
  maxOrderQuantity: "2",
  maxOpenNotional: "200000",
  limits: [{ name: "orders", value: 50 }],
  expiresAt: NOW_S + 30 * 86_400,
};

async function ed25519Agent(): Promise<{ key: AgentSigningKey; text: string }> {
  const pair = (await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]));
  return { key: { algorithm: "ed25519", privateKey: pair.privateKey }, text: await ed25519AgentKey(pair.publicKey) };
}

function secpAgent(): { key: AgentSigningKey; text: string } {
  const privateKey = generatePrivateKey();
  return { key: { algorithm: "secp256k1", privateKey }, text: secp256k1AgentKey(privateKey) };
}

async function approval(agentKey: string, overrides: Partial<AgentTerms> = {}, stamp: { nonce?: string; issuedAt?: number; venue?: typeof venue } = {}) {
  return signAgentApproval(owner, { venue: stamp.venue ?? venue, account: "acct-wallet", agentKey, terms: { ...TERMS, ...overrides }, issuedAt: stamp.issuedAt ?? NOW_S, ...(stamp.nonce === undefined ? {} : { nonce: stamp.nonce }) });
}

describe("agent key ids", () => {
  it("are derived: the same owner and nonce name the same key; the format's CRC-32 is zlib's", () => {
    const a = agentKeyId("live", 1, owner.address, "nonce12345");
    expect(agentKeyId("live", 1, owner.address.toLowerCase(), "nonce12345")).toBe(a);
    expect(agentKeyId("live", 1, owner.address, "nonce12346")).not.toBe(a);
    expect(agentKeyId("live", 5, owner.address, "nonce12345")).not.toBe(a);
    expect(a).toMatch(/^pck_live_v1_[0-9A-Za-z]{28}$/);
    expect(keyIdEnvironment(a)).toBe("live");
    const head = a.slice(0, 34);
    let n = BigInt(crc32(head));
    let check = "";
    for (let i = 0; i < 6; i++) {
      check = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".charAt(Number(n % 62n)) + check;
      n /= 62n;
    }
    expect(a.slice(34)).toBe(check);
    const d = delegatedKeyId("test", a, "nonce12345");
    expect(keyIdEnvironment(d)).toBe("test");
    expect(keyIdEnvironment(d.slice(0, 39) + (d.endsWith("0") ? "1" : "0"))).toBeNull();
  });

  it("agent key texts are canonical", async () => {
    const ed = await ed25519Agent();
    expect(parseAgentKey(ed.text)?.algorithm).toBe("ed25519");
    const k1 = secpAgent();
    expect(parseAgentKey(k1.text)?.bytes.length).toBe(33);
    expect(parseAgentKey(k1.text.toUpperCase())).toBeNull();
    expect(parseAgentKey("ed25519:" + "A".repeat(42) + "B")).toBeNull(); // stray low bits
    expect(parseAgentKey("rsa:abc")).toBeNull();
  });
});

describe("verifyAgentChain", () => {
  it("accepts an owner's approval signed by viem's account, and a chain of two delegations (Ed25519, then secp256k1)", async () => {
    const a1 = await ed25519Agent();
    const a2 = secpAgent();
    const a3 = await ed25519Agent();
    const link0 = await approval(a1.text);
    // The typed data is what any EIP-712 wallet signs: viem recovers the owner from it independently.
    expect(await recoverTypedDataAddress({ ...walletTypedData("ApproveAgent", link0.approval, 1), signature: link0.signature })).toBe(owner.address);
    const id1 = agentKeyId("live", 1, owner.address, link0.approval.nonce);
    const link1 = await signDelegation(a1.key, { venue, parent: id1, agentKey: a2.text, terms: { ...TERMS, scopes: ["trade"], symbols: ["BTC-USDT"], maxOpenNotional: "1000" }, issuedAt: NOW_S });
    const id2 = delegatedKeyId("live", id1, link1.delegation.nonce);
    const link2 = await signDelegation(a2.key, { venue, parent: id2, agentKey: a3.text, terms: { ...TERMS, scopes: ["trade"], symbols: ["BTCUSDT"], maxOpenNotional: "500", expiresAt: NOW_S + 3600 }, issuedAt: NOW_S });
    const result = await verifyAgentChain(JSON.parse(JSON.stringify([link0, link1, link2])), { ...options, owner: owner.address.toLowerCase() });
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.value.owner).toBe(owner.address);
    expect(result.value.account).toBe("acct-wallet");
    expect(result.value.links.map((l) => l.id)).toEqual([id1, id2, delegatedKeyId("live", id2, link2.delegation.nonce)]);
    expect(result.value.links.map((l) => l.parent)).toEqual([null, id1, id2]);
    expect(result.value.links[2]?.terms.maxOpenNotional).toBe("500");
  });

  it("refuses each fault with its code", async () => {
    const a1 = await ed25519Agent();
    const a2 = await ed25519Agent();
    const good = await approval(a1.text);
    const id1 = agentKeyId("live", 1, owner.address, good.approval.nonce);
    const code = async (chain: unknown, extra: Partial<typeof options> = {}) => {
      const r = await verifyAgentChain(JSON.parse(JSON.stringify(chain)), { ...options, ...extra });
      return r.ok ? "ok" : `${r.code}@${r.link ?? "-"}`;
    };
    expect(await code([good])).toBe("ok");
    expect(await code([await approval(a1.text, {}, { venue: { ...venue, chainId: 5 } })])).toBe("WALLET_CHAIN_MISMATCH@0");
    expect(await code([await approval(a1.text, {}, { venue: { ...venue, domain: "evil.example" } })])).toBe("WALLET_DOMAIN_MISMATCH@0");
    expect(await code([await approval(a1.text, {}, { venue: { ...venue, uri: "https://evil.example" } })])).toBe("WALLET_URI_MISMATCH@0");
    expect(await code([good], { now: (TERMS.expiresAt + 1) * 1000 })).toBe("WALLET_EXPIRED@0");
    expect(await code([await approval(a1.text, {}, { issuedAt: NOW_S + 3600 })])).toBe("WALLET_NOT_YET_VALID@0");
    expect(await code([await approval(a1.text, { expiresAt: NOW_S + 400 * 86_400 })])).toBe("WALLET_MESSAGE_MALFORMED@0");
    expect(await code([await approval(a1.text, { scopes: ["read", "withdraw"] as never })])).toBe("AGENT_SCOPE_FORBIDDEN@0");
    expect(await code([await approval(a1.text, { scopes: ["admin:keys"] as never })])).toBe("AGENT_SCOPE_FORBIDDEN@0");
    expect(await code([{ ...good, approval: { ...good.approval, maxOrderNotional: "1e9" } }])).toBe("WALLET_MESSAGE_MALFORMED@0");
    expect(await code([{ ...good, approval: { ...good.approval, extra: 1 } }])).toBe("WALLET_MESSAGE_MALFORMED@0");
    expect(await code([{ ...good, approval: { ...good.approval, maxOrderNotional: "60000" } }])).toBe("WALLET_SIGNATURE_INVALID@0");
    expect(await code([good], { owner: privateKeyToAccount(generatePrivateKey()).address })).toBe("WALLET_SIGNATURE_INVALID@0");
    expect(await code([{ ...good, signature: "0x1234" }])).toBe("WALLET_MESSAGE_MALFORMED@0");
    // owner: null answers whoever signed; a tampered approval then names someone else, whom the caller must not trust.
    const whoever = await verifyAgentChain(JSON.parse(JSON.stringify([good])), { ...options, owner: null });
    expect(whoever.ok && whoever.value.owner).toBe(owner.address);
    const tampered = await verifyAgentChain([{ ...good, approval: { ...good.approval, maxOrderNotional: "60000" } }], { ...options, owner: null });
    expect(tampered.ok && tampered.value.owner).not.toBe(owner.address);
    expect(await code([])).toBe("WALLET_MESSAGE_MALFORMED@-");
    expect(await code({})).toBe("WALLET_MESSAGE_MALFORMED@-");

    const delegate = (signer: AgentSigningKey, parent: string, terms: Partial<AgentTerms>) =>
      signDelegation(signer, { venue, parent, agentKey: a2.text, terms: { ...TERMS, ...terms }, issuedAt: NOW_S });
    expect(await code([good, await delegate(a1.key, id1, { scopes: ["read"] })])).toBe("ok");
    expect(await code([good, await delegate(a2.key, id1, { scopes: ["read"] })])).toBe("WALLET_SIGNATURE_INVALID@1");
    expect(await code([good, await delegate(a1.key, delegatedKeyId("live", id1, "x1234567"), {})])).toBe("AGENT_CHAIN_BROKEN@1");
    expect(await code([good, await delegate(a1.key, id1, { maxOrderQuantity: "" })])).toBe("AGENT_WIDENED@1");
    expect(await code([good, await delegate(a1.key, id1, { symbols: ["*"] })])).toBe("AGENT_WIDENED@1");
    expect(await code([good, await delegate(a1.key, id1, { limits: [] })])).toBe("AGENT_WIDENED@1");
    expect(await code([good, await delegate(a1.key, id1, { expiresAt: TERMS.expiresAt + 1 })])).toBe("AGENT_WIDENED@1");
  });
});

describe("logons", () => {
  it("EIP-4361: viem's account signs, the strict reading accepts; anything else is refused with its code", async () => {
    const body = await signSiweLogon(owner, { venue, issuedAt: NOW_S, ttl: 300, statement: "Sign in to the venue's API." });
    const ok = await verifySiweLogon(body, { venue, now: NOW });
    expect(ok.ok && ok.value).toEqual({ owner: owner.address, account: null, nonce: body.siwe.match(/Nonce: (\w+)/)?.[1], expiresAt: NOW + 300_000 });
    const code = async (b: unknown, now = NOW) => {
      const r = await verifySiweLogon(b, { venue, now });
      return r.ok ? "ok" : r.code;
    };
    expect(await code(body, NOW + 301_000)).toBe("WALLET_EXPIRED");
    expect(await code(await signSiweLogon(owner, { venue: { ...venue, chainId: 10 }, issuedAt: NOW_S }))).toBe("WALLET_CHAIN_MISMATCH");
    expect(await code(await signSiweLogon(owner, { venue: { ...venue, domain: "evil.example" }, issuedAt: NOW_S }))).toBe("WALLET_DOMAIN_MISMATCH");
    expect(await code(await signSiweLogon(owner, { venue, issuedAt: NOW_S, ttl: 3600 }))).toBe("WALLET_MESSAGE_MALFORMED");
    // Without the fields common libraries make optional (nonce, expiration): refused.
    const noExpiry = body.siwe.replace(/\nExpiration Time: [^\n]*/, "");
    expect(await code({ siwe: noExpiry, signature: await owner.signMessage({ message: noExpiry }) })).toBe("WALLET_MESSAGE_MALFORMED");
    const extraLine = body.siwe + "\nRequest ID: 7";
    expect(await code({ siwe: extraLine, signature: await owner.signMessage({ message: extraLine }) })).toBe("ok"); // a field EIP-4361 defines, canonical
    const junk = body.siwe + "\njunk";
    expect(await code({ siwe: junk, signature: await owner.signMessage({ message: junk }) })).toBe("WALLET_MESSAGE_MALFORMED");
    const other = privateKeyToAccount(generatePrivateKey());
    expect(await code({ siwe: body.siwe, signature: await other.signMessage({ message: body.siwe }) })).toBe("WALLET_SIGNATURE_INVALID");
    expect(await code({ siwe: body.siwe })).toBe("WALLET_MESSAGE_MALFORMED");
  });

  it("EIP-712: the logon recovers the owner and names the account", async () => {
    const body = await signWalletLogon(owner, { venue, account: "acct-wallet", issuedAt: NOW_S });
    const r = await verifyLogon(JSON.parse(JSON.stringify(body)), { venue, now: NOW });
    expect(r).toEqual({ ok: true, value: { owner: owner.address, account: "acct-wallet", nonce: body.logon.nonce, expiresAt: NOW + 300_000 } });
    const tampered = await verifyLogon({ ...body, logon: { ...body.logon, account: "other" } }, { venue, now: NOW });
    expect(tampered.ok && tampered.value.owner).not.toBe(owner.address);
    expect((await verifyLogon({ ...body, chainId: 2 }, { venue, now: NOW })).ok).toBe(false);
  });
});

describe("revocations", () => {
  it("are signed by the owner or an agent above, and checked against the one they name", async () => {
    const a1 = await ed25519Agent();
    const byOwner = await signAgentRevocation({ owner }, { venue, revoke: "pck_live_v1_x", issuedAt: NOW_S });
    const read = readRevocation(JSON.parse(JSON.stringify(byOwner)), { venue, now: NOW });
    expect(read.ok).toBe(true);
    if (!read.ok) return;
    expect(read.value.signer).toBe("owner");
    expect(await revocationSignedBy(read.value, { owner: owner.address })).toBe(true);
    expect(await revocationSignedBy(read.value, { agentKey: a1.text })).toBe(false);
    const byAgent = await signAgentRevocation({ agent: "pck_live_v1_parent", key: a1.key }, { venue, revoke: "pck_live_v1_child", issuedAt: NOW_S });
    const read2 = readRevocation(byAgent, { venue, now: NOW });
    expect(read2.ok && (await revocationSignedBy(read2.value, { agentKey: a1.text }))).toBe(true);
    expect(read2.ok && (await revocationSignedBy(read2.value, { owner: owner.address }))).toBe(false);
    const expired = readRevocation(byOwner, { venue, now: NOW + 301_000 });
    expect(expired.ok ? "ok" : expired.code).toBe("WALLET_EXPIRED");
  });
});
