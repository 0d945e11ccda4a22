/**
 * Wallet logon (docs/wallets.md) through the real gateway in front of the demo exchange: an owner
 * key registered for a wallet address logs on with a SIWE (EIP-4361) message or an EIP-712 Logon
 * signed by a viem local account (the independent wallet), gets a session of its owner key, and
 * signs requests with it. Every bad message is refused with its code; the published EIP-712 "Mail"
 * example is recovered by the gateway's recovery as a vector.
 */
import { type DemoStack, startDemoStack } from "@portcullis/demo-exchange";
import { createSessionClient } from "@portcullis/client";
import { keccak256, toBytes } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { createSiweMessage } from "viem/siwe";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/log/logger.js";
import { recoverSigner } from "@portcullis/client";
import { hashTypedData } from "viem";

const WALLETS = { chainId: 8453, domain: "venue.example", uri: "https://venue.example" };
let stack: DemoStack;

beforeAll(async () => {
  stack = await startDemoStack({ port: 0, adminPort: 0, upstreamPort: 0, logger: silentLogger(), serverTiming: false, wallets: WALLETS });
});
afterAll(async () => {
  await stack.close();
});

let nonceCounter = 0;
const freshNonce = (): string => `n${String(Date.now())}x${String(++nonceCounter).padStart(4, "0")}`;

interface Siwe {
  readonly domain?: string;
  readonly uri?: string;
  readonly chainId?: number;
  readonly nonce?: string;
  readonly issuedAt?: Date;
  readonly expirationTime?: Date | null;
}

function siwe(address: `0x${string}`, o: Siwe = {}): string {
  const now = Date.now();
  return createSiweMessage({
    address,
    domain: o.domain ?? WALLETS.domain,
    uri: o.uri ?? WALLETS.uri,
    chainId: o.chainId ?? WALLETS.chainId,
    nonce: o.nonce ?? freshNonce(),
    version: "1",
    statement: "Log on to the venue.",
    issuedAt: o.issuedAt ?? new Date(now - 1000),
    ...(o.expirationTime === null ? {} : { expirationTime: o.expirationTime ?? new Date(now + 5 * 60_000) }),
  });
}

async function post(path: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${stack.gateway}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

async function owner(scopes = ["read", "trade"]): Promise<{ account: ReturnType<typeof privateKeyToAccount>; keyId: string; name: string }> {
  const account = privateKeyToAccount(generatePrivateKey());
  const name = `wallet-${account.address.slice(2, 10).toLowerCase()}`;
  const created = await stack.createKey({ account: name, scopes, wallet: account.address.toLowerCase() });
  return { account, keyId: created.key.id, name };
}

interface LogonFields {
  readonly domain: string;
  readonly uri: string;
  readonly account: string;
  readonly nonce: string;
  readonly issuedAt: bigint;
  readonly expiresAt: bigint;
}

function logonTypedData(message: LogonFields) {
  return {
    domain: { name: "Portcullis", version: "1", chainId: WALLETS.chainId },
    types: {
      Logon: [
        { name: "domain", type: "string" },
        { name: "uri", type: "string" },
        { name: "account", type: "string" },
        { name: "nonce", type: "string" },
        { name: "issuedAt", type: "uint64" },
        { name: "expiresAt", type: "uint64" },
      ],
    },
    primaryType: "Logon",
    message,
  } as const;
}

describe("wallet owner keys", () => {
  it("are created with the wallet's EIP-55 address and sign no HTTP request themselves", async () => {
    const { account, keyId } = await owner();
    const key = await stack.running.core.keys.get(keyId);
    expect(key).toMatchObject({ algorithm: "ethereum", publicKey: account.address, dialects: ["native"], agent: null });
    const bad = await Promise.resolve().then(() => stack.createKey({ account: "w-bad", scopes: ["read"], wallet: "0x123" })).catch((err: unknown) => err);
    expect(bad).toMatchObject({ code: "VALIDATION_FAILED" });
    // A mixed-case address with a broken checksum is refused (EIP-55).
    const broken = account.address.replace(/[a-f]/, (c) => c.toUpperCase());
    const refused = await Promise.resolve().then(() => stack.createKey({ account: "w-bad", scopes: ["read"], wallet: broken })).catch((err: unknown) => err);
    expect(refused).toMatchObject({ code: "VALIDATION_FAILED" });
  });
});

describe("SIWE logon", () => {
  it("answers a session of the owner key, which signs requests through the normal session path", async () => {
    const { account, keyId } = await owner();
    const message = siwe(account.address);
    const res = await post("/portcullis/v1/wallet/session", { siwe: message, signature: await account.signMessage({ message }) });
    expect(res.status, JSON.stringify(res.json)).toBe(201);
    expect(res.json).toMatchObject({ apiKeyId: keyId, scopes: ["read", "trade"] });
    const session = createSessionClient({ baseUrl: stack.gateway, session: res.json as never });
    expect((await session.request("GET", "/api/v3/account")).status).toBe(200);
  });

  it("refuses a wrong chain id, domain or uri, an expired message, one valid too long, a replayed nonce", async () => {
    const { account } = await owner();
    const send = async (message: string) => post("/portcullis/v1/wallet/session", { siwe: message, signature: await account.signMessage({ message }) });
    const now = Date.now();
    expect((await send(siwe(account.address, { chainId: 1 }))).json.code).toBe("WALLET_CHAIN_MISMATCH");
    expect((await send(siwe(account.address, { domain: "evil.example" }))).json.code).toBe("WALLET_DOMAIN_MISMATCH");
    expect((await send(siwe(account.address, { uri: "https://evil.example" }))).json.code).toBe("WALLET_URI_MISMATCH");
    expect((await send(siwe(account.address, { issuedAt: new Date(now - 120_000), expirationTime: new Date(now - 60_000) }))).json.code).toBe("WALLET_EXPIRED");
    // Valid for longer than a logon may be (10 minutes): the protocol module's WALLET_MESSAGE_MALFORMED.
    expect((await send(siwe(account.address, { expirationTime: new Date(now + 11 * 60_000) }))).json.code).toBe("WALLET_MESSAGE_MALFORMED");
    expect((await send(siwe(account.address, { issuedAt: new Date(now + 5 * 60_000), expirationTime: new Date(now + 6 * 60_000) }))).json.code).toBe("WALLET_NOT_YET_VALID");
    const once = siwe(account.address);
    expect((await send(once)).status).toBe(201);
    const again = await send(once);
    expect(again).toMatchObject({ status: 401, json: { code: "WALLET_NONCE_REPLAYED" } });
  });

  it("refuses a malformed message: no expiration time, not the one EIP-4361 form, not a message at all", async () => {
    const { account } = await owner();
    const send = async (message: string) => post("/portcullis/v1/wallet/session", { siwe: message, signature: await account.signMessage({ message }) });
    expect((await send(siwe(account.address, { expirationTime: null }))).json.code).toBe("WALLET_MESSAGE_MALFORMED");
    // The same fields, a time written without milliseconds: not the text the fields re-create.
    const loose = siwe(account.address).replace(/(Issued At: [0-9T:-]+)\.[0-9]{3}Z/, "$1Z");
    expect((await send(loose)).json.code).toBe("WALLET_MESSAGE_MALFORMED");
    expect((await send(`${siwe(account.address)}\nExtra: x`)).json.code).toBe("WALLET_MESSAGE_MALFORMED");
    expect((await send("hello")).json.code).toBe("WALLET_MESSAGE_MALFORMED");
    expect((await post("/portcullis/v1/wallet/session", { siwe: siwe(account.address) })).json.code).toBe("WALLET_MESSAGE_MALFORMED");
    expect((await post("/portcullis/v1/wallet/session", { siwe: siwe(account.address), logon: {}, signature: "0x" })).json.code).toBe("WALLET_MESSAGE_MALFORMED");
    expect((await post("/portcullis/v1/wallet/session", [1, 2])).json.code).toBe("WALLET_MESSAGE_MALFORMED");
  });

  it("refuses a signature by another wallet, a wallet with no owner key, and a revoked owner key", async () => {
    const { account, keyId } = await owner();
    const other = privateKeyToAccount(generatePrivateKey());
    const message = siwe(account.address);
    expect((await post("/portcullis/v1/wallet/session", { siwe: message, signature: await other.signMessage({ message }) })).json.code).toBe("WALLET_SIGNATURE_INVALID");
    const stranger = siwe(other.address);
    expect((await post("/portcullis/v1/wallet/session", { siwe: stranger, signature: await other.signMessage({ message: stranger }) })).json.code).toBe("WALLET_UNKNOWN");
    await stack.running.core.keys.revoke(keyId, "test");
    const after = siwe(account.address);
    expect((await post("/portcullis/v1/wallet/session", { siwe: after, signature: await account.signMessage({ message: after }) })).json.code).toBe("WALLET_UNKNOWN");
  });
});

describe("the owner key's own bounds", () => {
  it("a logon from outside the owner key's IP allowlist is refused IP_NOT_ALLOWED", async () => {
    const wallet = privateKeyToAccount(generatePrivateKey());
    await stack.createKey({ account: "w-allow", scopes: ["read"], wallet: wallet.address, ipAllowlist: ["10.0.0.0/8"] });
    const message = siwe(wallet.address);
    expect((await post("/portcullis/v1/wallet/session", { siwe: message, signature: await wallet.signMessage({ message }) })).json.code).toBe("IP_NOT_ALLOWED");
  });
});

describe("EIP-712 logon", () => {
  it("answers a session of the owner key of the account the Logon names", async () => {
    const { account, keyId, name } = await owner(["read"]);
    const now = Math.floor(Date.now() / 1000);
    const message = { domain: WALLETS.domain, uri: WALLETS.uri, account: name, nonce: freshNonce(), issuedAt: BigInt(now - 1), expiresAt: BigInt(now + 300) };
    const signature = await account.signTypedData(logonTypedData(message));
    const wire = { ...message, issuedAt: now - 1, expiresAt: now + 300 };
    const body = (logon: Record<string, unknown>, sig = signature, chainId = WALLETS.chainId) => ({ chainId, logon, signature: sig });
    const res = await post("/portcullis/v1/wallet/session", body(wire));
    expect(res.status, JSON.stringify(res.json)).toBe(201);
    expect(res.json).toMatchObject({ apiKeyId: keyId, scopes: ["read"] });
    // A wrong chain named; a signature over another chain recovers another address, which owns nothing.
    expect((await post("/portcullis/v1/wallet/session", body({ ...wire, nonce: freshNonce() }, signature, 1))).json.code).toBe("WALLET_CHAIN_MISMATCH");
    const elsewhere = await account.signTypedData({ ...logonTypedData({ ...message, nonce: "elsewhere1" }), domain: { name: "Portcullis", version: "1", chainId: 1 } });
    expect((await post("/portcullis/v1/wallet/session", body({ ...wire, nonce: "elsewhere1" }, elsewhere))).json.code).toBe("WALLET_UNKNOWN");
    expect((await post("/portcullis/v1/wallet/session", body({ ...wire, domain: "evil.example" }))).json.code).toBe("WALLET_DOMAIN_MISMATCH");
    expect((await post("/portcullis/v1/wallet/session", body({ ...wire, uri: "https://evil.example" }))).json.code).toBe("WALLET_URI_MISMATCH");
    expect((await post("/portcullis/v1/wallet/session", body({ ...wire, issuedAt: now - 600, expiresAt: now - 1 }))).json.code).toBe("WALLET_EXPIRED");
    expect((await post("/portcullis/v1/wallet/session", body(wire))).json.code).toBe("WALLET_NONCE_REPLAYED");
    expect((await post("/portcullis/v1/wallet/session", body({ ...wire, extra: 1 }))).json.code).toBe("WALLET_MESSAGE_MALFORMED");
  });
});

describe("the gateway's EIP-712 recovery", () => {
  it("recovers the signer of the EIP-712 specification's Mail example (key keccak256(\"cow\"))", async () => {
    // The recovery the gateway's wallet checks run (@portcullis/client's recoverSigner), over the
    // digest viem's EIP-712 encoder makes of the published example.
    // EIP-712, "Example": the domain, the message and the signature by keccak256("cow"), as published.
    const typedData = {
      types: {
        EIP712Domain: [
          { name: "name", type: "string" },
          { name: "version", type: "string" },
          { name: "chainId", type: "uint256" },
          { name: "verifyingContract", type: "address" },
        ],
        Person: [
          { name: "name", type: "string" },
          { name: "wallet", type: "address" },
        ],
        Mail: [
          { name: "from", type: "Person" },
          { name: "to", type: "Person" },
          { name: "contents", type: "string" },
        ],
      },
      primaryType: "Mail",
      domain: { name: "Ether Mail", version: "1", chainId: 1n, verifyingContract: "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC" },
      message: {
        from: { name: "Cow", wallet: "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826" },
        to: { name: "Bob", wallet: "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB" },
        contents: "Hello, Bob!",
      },
    } as const;
    const r = "4355c47d63924e8a72e509b65029052eb6c299d53a04e167c5775fd466751c9d";
    const s = "07299936d304c153f6443dfa05f40ff007d72911b6f72307f996231605b91562";
    const v = "1c"; // 28
    const digest = hashTypedData(typedData);
    expect(digest).toBe("0xbe609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2");
    expect(await recoverSigner(digest, `0x${r}${s}${v}`)).toBe("0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826");
    // The key is keccak256("cow"): the address is its account's.
    expect(privateKeyToAccount(keccak256(toBytes("cow"))).address).toBe("0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826");
    // Another message under the same signature recovers someone else; garbage recovers no one.
    expect(await recoverSigner(hashTypedData({ ...typedData, message: { ...typedData.message, contents: "Hello, Alice!" } }), `0x${r}${s}${v}`)).not.toBe("0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826");
    expect(await recoverSigner(digest, "0x1234")).toBeNull();
  });
});

describe("the authorizer serves the wallet endpoints too", () => {
  it("a SIWE logon through the authorizer answers a session of the owner key", async () => {
    const authorizer = await startDemoStack({ port: 0, adminPort: 0, upstreamPort: 0, logger: silentLogger(), serverTiming: false, wallets: WALLETS, mode: "authorizer" });
    try {
      const wallet = privateKeyToAccount(generatePrivateKey());
      const created = await authorizer.createKey({ account: "w-authz", scopes: ["read"], wallet: wallet.address });
      const message = siwe(wallet.address);
      const res = await fetch(`${authorizer.gateway}/portcullis/v1/wallet/session`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ siwe: message, signature: await wallet.signMessage({ message }) }) });
      expect(res.status).toBe(201);
      expect(await res.json()).toMatchObject({ apiKeyId: created.key.id });
    } finally {
      await authorizer.close();
    }
  });
});
