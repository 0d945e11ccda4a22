/**
 * An agent key's chain at request time and revocation down the chain (docs/wallets.md), through
 * the real gateway in front of the demo exchange: agents registered under a wallet owner key sign
 * native requests with Ed25519; a key above that is not active refuses every agent below it
 * (AGENT_CHAIN_REVOKED), at once, even where the cascade did not run (a race); a revoke by the
 * operator (key service, as the CLI and admin API call it) or by the behaviour stage's responder
 * revokes everything below (KEY_REVOKED for each).
 */
import { type DemoStack, startDemoStack } from "@portcullis/demo-exchange";
import { type PortcullisApiError, createClient, generateKeyPair } from "@portcullis/client";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentGrant, AgentTerms } from "../../src/contract/keys.js";
import { generateKeyId } from "../../src/contract/ids.js";
import { silentLogger } from "../../src/log/logger.js";
import { join } from "node:path";
import { AnomalyResponder } from "../../src/anomaly/responder.js";
import { DEFAULT_BEHAVIOUR_SETTINGS, DEFAULT_RESPONSES } from "../../src/anomaly/responses.js";
import { SqliteStore } from "../../src/storage/sqlite/store.js";
import type { KeyService } from "../../src/keys/service.js";

const WALLETS = { chainId: 8453, domain: "venue.example", uri: "https://venue.example" };
let stack: DemoStack;

beforeAll(async () => {
  stack = await startDemoStack({ port: 0, adminPort: 0, upstreamPort: 0, logger: silentLogger(), serverTiming: false, wallets: WALLETS });
});
afterAll(async () => {
  await stack.close();
});

const TERMS: AgentTerms = { scopes: ["read", "trade"], symbols: ["*"], maxOrderNotional: "", maxOrderQuantity: "", maxOpenNotional: "", limits: [], expiresAt: Math.floor(Date.now() / 1000) + 86_400 };

interface Agent {
  readonly id: string;
  readonly client: ReturnType<typeof createClient>;
}

/** An owner key and a chain of `depth` Ed25519 agents under it, registered as the wallet endpoint does. */
async function chain(depth: number): Promise<{ ownerKey: string; agents: Agent[] }> {
  const wallet = privateKeyToAccount(generatePrivateKey());
  const account = `chain-${wallet.address.slice(2, 10).toLowerCase()}`;
  const owner = await stack.createKey({ account, scopes: ["read", "trade"], wallet: wallet.address });
  const agents: Agent[] = [];
  const ids: string[] = [];
  const inputs = [];
  for (let i = 0; i < depth; i++) {
    const pair = await generateKeyPair("ed25519");
    const id = generateKeyId("test");
    const grant: AgentGrant = { ownerAddress: wallet.address, ownerKey: owner.key.id, parent: ids[i - 1] ?? null, agentKey: `ed25519:${"A".repeat(43)}`, ancestors: [...ids], depth: i + 1, terms: TERMS, digest: `0x${String(i).repeat(64)}` };
    inputs.push({ id, account, label: `agent ${String(i)}`, publicKey: pair.publicKeyPem, scopes: TERMS.scopes, guardrails: null, limits: {}, expiresAt: TERMS.expiresAt * 1000, grant });
    agents.push({ id, client: createClient({ baseUrl: stack.gateway, keyId: id, privateKey: pair.privateKeyPem, algorithm: "ed25519" }) });
    ids.push(id);
  }
  await stack.running.core.keys.registerAgents(inputs, [owner.key.id], "test");
  return { ownerKey: owner.key.id, agents };
}

async function codeOf(agent: Agent): Promise<string> {
  try {
    await agent.client.json("GET", "/api/v3/account");
    return "OK";
  } catch (err) {
    return String((err as PortcullisApiError).code);
  }
}

describe("an agent's chain at request time", () => {
  it("an Ed25519 agent and its delegate sign native requests, and log on to sessions", async () => {
    const { agents } = await chain(2);
    for (const a of agents) expect(await codeOf(a)).toBe("OK");
    const session = await (agents[1] as Agent).client.logon();
    expect(session.session.apiKeyId).toBe((agents[1] as Agent).id);
    expect(await session.json("GET", "/api/v3/account")).toBeTruthy();
  });

  it("a link above that is not active refuses the agents below it at once, even without the cascade (a race)", async () => {
    const { agents } = await chain(3);
    const [top, middle, bottom] = agents as [Agent, Agent, Agent];
    for (const a of agents) expect(await codeOf(a)).toBe("OK");
    const session = await bottom.client.logon();
    // The store's bare transition: the middle link revoked, the cascade not (yet) run.
    await stack.running.core.keys.suspend(middle.id, "test");
    expect(await codeOf(top)).toBe("OK");
    expect(await codeOf(middle)).toBe("KEY_SUSPENDED");
    expect(await codeOf(bottom)).toBe("AGENT_CHAIN_REVOKED");
    const refused = await session.json("GET", "/api/v3/account").then(() => "OK", (err: unknown) => String((err as PortcullisApiError).code));
    expect(refused).toBe("AGENT_CHAIN_REVOKED");
    await stack.running.core.keys.resume(middle.id, "test");
    expect(await codeOf(bottom)).toBe("OK");
  });

  it("an operator's revoke of a link revokes everything below it (KEY_REVOKED), nothing above", async () => {
    const { agents } = await chain(3);
    const [top, middle, bottom] = agents as [Agent, Agent, Agent];
    const { below } = await stack.running.core.keys.revokeTree(middle.id, "operator:test", "leaked");
    expect(below.map((k) => k.id)).toEqual([bottom.id]);
    expect(await codeOf(top)).toBe("OK");
    expect(await codeOf(middle)).toBe("KEY_REVOKED");
    expect(await codeOf(bottom)).toBe("KEY_REVOKED");
  });

  it("revoking the owner key revokes every agent under it", async () => {
    const { ownerKey, agents } = await chain(2);
    const revoked = await stack.running.core.keys.revoke(ownerKey, "operator:test");
    expect(revoked.status).toBe("revoked");
    for (const a of agents) {
      expect(await codeOf(a)).toBe("KEY_REVOKED");
      expect((await stack.running.core.keys.get(a.id)).status).toBe("revoked");
    }
  });

  it("the behaviour stage's revoke goes through the same path: suspended at once (the chain refused), revoked for good down the chain", async () => {
    const { agents } = await chain(2);
    const [top, child] = agents as [Agent, Agent];
    // The responder of the gateway's core, with a policy whose strongest response is a revoke
    // (the demo's stops at suspend): its own store connection on the data directory.
    const store = new SqliteStore(join(stack.dataDir, "portcullis.db"));
    const anomalies = new AnomalyResponder({
      settings: { ...DEFAULT_BEHAVIOUR_SETTINGS, responses: [...DEFAULT_RESPONSES, { minScore: 99, action: "revoke", forMs: null }] },
      // The demo stack runs the built package: its KeyService is this same class, built.
      keys: stack.running.core.keys as unknown as KeyService,
      store: store.anomalies,
      audit: stack.running.core.audit,
    });
    const action = await anomalies.respond({ keyId: top.id, account: (await stack.running.core.keys.get(top.id)).account, at: Date.now(), score: 100, basis: "key", seen: 500, contributions: [] });
    expect(action?.action).toBe("revoke");
    expect(await codeOf(top)).toBe("KEY_SUSPENDED");
    expect(await codeOf(child)).toBe("AGENT_CHAIN_REVOKED");
    await anomalies.sweep(Date.now() + 366 * 86_400_000);
    expect(await codeOf(top)).toBe("KEY_REVOKED");
    expect(await codeOf(child)).toBe("KEY_REVOKED");
    await store.close();
  });
});
