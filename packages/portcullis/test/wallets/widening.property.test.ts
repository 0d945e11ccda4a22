/**
 * Property (fast-check), through the gateway's registration endpoint: a chain with a widening
 * anywhere — the approval past its owner key, or any delegation past the link above — is refused
 * AGENT_WIDENED, and nothing of it is registered. (The protocol module has its own offline property
 * test of `narrows`; this one holds the gateway to it, the owner-key bound included.)
 */
import { type DemoStack, startDemoStack } from "@portcullis/demo-exchange";
import { type AgentTerms, type GeneratedKeyPair, agentKeyId, delegatedKeyId, ed25519AgentKey, generateKeyPair, generateWalletNonce, signAgentApproval, signDelegation } from "@portcullis/client";
import fc from "fast-check";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/log/logger.js";

const VENUE = { chainId: 8453, domain: "venue.example", uri: "https://venue.example" };
let stack: DemoStack;
const wallet = privateKeyToAccount(generatePrivateKey());
const ACCOUNT = "widening";
let ownerExpires = 0;
const keys: { pair: GeneratedKeyPair; text: string }[] = [];

beforeAll(async () => {
  stack = await startDemoStack({ port: 0, adminPort: 0, upstreamPort: 0, logger: silentLogger(), serverTiming: false, wallets: VENUE });
  // The owner key holds read only, two symbols, caps, a lowered limit and an expiry: each can be exceeded.
  const owner = await stack.createKey({
    account: ACCOUNT,
    scopes: ["read"],
    wallet: wallet.address,
    guardrails: { symbols: ["BTCUSDT", "ETHUSDT"], maxNotional: "1000", maxQuantity: "1", maxOpenNotional: "5000" },
    limits: { "key-weight-1m": 1000 },
    expires: "30d",
  });
  ownerExpires = Math.floor((owner.key.expiresAt ?? 0) / 1000);
  for (let i = 0; i < 4; i++) {
    const pair = await generateKeyPair("ed25519");
    keys.push({ pair, text: await ed25519AgentKey(pair.publicKey) });
  }
});
afterAll(async () => {
  await stack.close();
});

const FIELDS = ["scopes", "symbols", "maxOrderNotional", "maxOrderQuantity", "limits", "expiresAt", "maxOpenNotional"] as const;
type Field = (typeof FIELDS)[number];

/** Terms within the owner key, the same at every link (equal narrows). */
function base(): AgentTerms {
  return { scopes: ["read"], symbols: ["BTCUSDT"], maxOrderNotional: "100", maxOrderQuantity: "0.5", maxOpenNotional: "500", limits: [{ name: "key-weight-1m", value: 100 }], expiresAt: ownerExpires - 3600 };
}

/** `t` widened in `field` (past the base terms, and past the owner key's at the top). `variant` picks how. */
function widen(t: AgentTerms, field: Field, variant: number, top: boolean): AgentTerms {
  switch (field) {
    case "scopes":
      return { ...t, scopes: ["read", "trade"] };
    case "symbols":
      return { ...t, symbols: variant % 2 === 0 ? ["BTCUSDT", "SOLUSDT"] : ["*"] };
    case "maxOrderNotional":
      return { ...t, maxOrderNotional: variant % 2 === 0 ? "5000" : "" };
    case "maxOrderQuantity":
      return { ...t, maxOrderQuantity: variant % 2 === 0 ? "2" : "" };
    case "maxOpenNotional":
      // Past the parent's 500; at the top, past the owner key's 5000.
      return { ...t, maxOpenNotional: variant % 2 === 0 ? (top ? "5000.000001" : "500.000001") : "" };
    case "limits":
      // Above the owner's 1000 at the top; below it, above the parent's 100, or the limit dropped.
      return { ...t, limits: top ? [{ name: "key-weight-1m", value: 5000 }] : variant % 2 === 0 ? [{ name: "key-weight-1m", value: 101 }] : [] };
    case "expiresAt":
      return { ...t, expiresAt: top ? ownerExpires + 60 : t.expiresAt + 1 };
  }
}

describe("registration refuses any widening at any depth", () => {
  it("AGENT_WIDENED, nothing registered", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 4 }).chain((length) => fc.tuple(fc.constant(length), fc.integer({ min: 0, max: length - 1 }), fc.constantFrom(...FIELDS), fc.nat(7))),
        async ([length, at, field, variant]) => {
          const nonces = Array.from({ length }, () => generateWalletNonce());
          const chain: unknown[] = [];
          let parent = "";
          for (let i = 0; i < length; i++) {
            const terms = i === at ? widen(base(), field, variant, i === 0) : base();
            const key = keys[i] as { text: string };
            if (i === 0) {
              chain.push(await signAgentApproval(wallet, { venue: VENUE, account: ACCOUNT, agentKey: key.text, terms, nonce: nonces[0] as string }));
              parent = agentKeyId("test", VENUE.chainId, wallet.address, nonces[0] as string);
            } else {
              const above = keys[i - 1] as { pair: GeneratedKeyPair };
              chain.push(await signDelegation({ algorithm: "ed25519", privateKey: above.pair.privateKey }, { venue: VENUE, parent, agentKey: key.text, terms, nonce: nonces[i] as string }));
              parent = delegatedKeyId("test", parent, nonces[i] as string);
            }
          }
          const res = await fetch(`${stack.gateway}/portcullis/v1/agents`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ chain }) });
          const json = (await res.json()) as { code?: string };
          expect(json.code, `widened ${field} at link ${String(at)} of ${String(length)}`).toBe("AGENT_WIDENED");
          expect(res.status).toBe(403);
          const top = agentKeyId("test", VENUE.chainId, wallet.address, nonces[0] as string);
          await expect(stack.running.core.keys.get(top)).rejects.toMatchObject({ code: "KEY_NOT_FOUND" });
        },
      ),
      { numRuns: 40 },
    );
  });

  it("the same chains without the widening register (the property is not vacuous)", async () => {
    const nonce = generateWalletNonce();
    const approval = await signAgentApproval(wallet, { venue: VENUE, account: ACCOUNT, agentKey: (keys[0] as { text: string }).text, terms: base(), nonce });
    const res = await fetch(`${stack.gateway}/portcullis/v1/agents`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ chain: [approval] }) });
    expect(res.status).toBe(201);
  });
});
