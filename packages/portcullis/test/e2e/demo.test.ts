/**
 * End to end, as a new user: start `portcullis demo`, read its keys, and trade through the
 * gateway with the client SDK (HMAC and Ed25519 keys), then stop it with Ctrl-C.
 */
import {
  PortcullisApiError,
  createClient,
  importPrivateKey,
  delegatedKeyId,
  ed25519AgentKey,
  generateKeyPair,
  registerAgent,
  revokeAgent,
  signAgentRevocation,
  signDelegation,
  signSiweLogon,
  walletLogon,
} from "@portcullis/client";
import { privateKeyToAccount } from "viem/accounts";
import { existsSync, readFileSync, statSync } from "node:fs";
import ccxt from "ccxt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, startCli } from "../support/cli.js";

interface DemoKey {
  id: string;
  secret?: string;
  passphrase?: string;
  privateKey?: string;
  account: string;
  scopes: string[];
  dialects: string[];
}
interface DemoInfo {
  gateway: string;
  admin: string;
  upstream: string;
  dataDir: string;
  keys: Record<"trader" | "ed25519" | "okx" | "coinbase" | "reader" | "admin" | "treasury", DemoKey>;
  approvers: Record<"alice" | "bob" | "carol", { keyFile: string }>;
  heldWithdrawal: { operationId: string; rule: string; amount: string; asset: string; address: string } | null;
  wallet: { account: string; owner: string; ownerKeyId: string; ownerFile: string; agent: { id: string; privateKeyFile: string; approval: unknown } };
}

let demo: Awaited<ReturnType<typeof startCli>>;
let info: DemoInfo;

beforeAll(async () => {
  demo = await startCli(["demo", "--json", "--port", "0", "--admin-port", "0", "--upstream-port", "0"]);
  info = JSON.parse(demo.line) as DemoInfo;
});
afterAll(async () => {
  if (demo.child.exitCode === null) await demo.stop();
});

interface Order {
  orderId: number;
  status: string;
  side: string;
  executedQty: string;
}

describe("portcullis demo", () => {
  it("prints the URLs and the demo keys as the first JSON line", () => {
    expect(info.gateway).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(info.admin).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(info.upstream).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    // The trader key also speaks Kraken, so its secret is printed the way Kraken prints one.
    expect(info.keys.trader.secret).toMatch(/^[A-Za-z0-9+/]{86}==$/);
    expect(info.keys.trader.dialects).toEqual(["native", "binance", "kraken", "bybit"]);
    expect(info.keys.ed25519.privateKey).toMatch(/BEGIN PRIVATE KEY/);
    expect(info.keys.okx.passphrase).toBe("Demo-Passphrase-1");
    expect(info.keys.coinbase.privateKey).toMatch(/BEGIN EC PRIVATE KEY/);
  });

  it("trades through the gateway with an HMAC key and the client SDK", async () => {
    const client = createClient({ baseUrl: info.gateway, keyId: info.keys.trader.id, secret: info.keys.trader.secret ?? "" });
    const account = await client.json<{ balances: { asset: string; free: string }[] }>("GET", "/api/v3/account");
    expect(account.balances.find((b) => b.asset === "USDT")?.free).toBe("100000.00000000");
    const bought = await client.json<Order>("POST", "/api/v3/order", { form: { symbol: "BTCUSDT", side: "BUY", type: "MARKET", quantity: "0.01" } });
    expect(bought).toMatchObject({ status: "FILLED", executedQty: "0.01000000" });
    const resting = await client.json<Order>("POST", "/api/v3/order", {
      query: { symbol: "BTCUSDT", side: "SELL", type: "LIMIT", timeInForce: "GTC", quantity: "0.005", price: "90000" },
    });
    expect(resting.status).toBe("NEW");
    const open = await client.json<Order[]>("GET", "/api/v3/openOrders", { query: { symbol: "BTCUSDT" } });
    expect(open.map((o) => o.orderId)).toContain(resting.orderId);
    const cancelled = await client.json<Order>("DELETE", "/api/v3/order", { query: { symbol: "BTCUSDT", orderId: resting.orderId } });
    expect(cancelled.status).toBe("CANCELED");
  });

  it("trades with an Ed25519 key: the server holds only the public key", async () => {
    const client = createClient({ baseUrl: info.gateway, keyId: info.keys.ed25519.id, privateKey: info.keys.ed25519.privateKey ?? "", algorithm: "ed25519" });
    const order = await client.json<Order>("POST", "/api/v3/order", { json: { symbol: "ETHUSDT", side: "BUY", type: "MARKET", quantity: "0.1" } });
    expect(order.status).toBe("FILLED");
  });

  it("works with an existing bot library, unchanged: ccxt's binance with the printed trader key", async () => {
    const exchange = new ccxt.binance({
      apiKey: info.keys.trader.id,
      secret: info.keys.trader.secret ?? "",
      enableRateLimit: false,
      options: { fetchMarkets: { types: ["spot"] }, fetchMargins: false, fetchCurrencies: false },
    });
    const api: Record<string, string> = {};
    for (const [name, url] of Object.entries(exchange.urls.api)) if (typeof url === "string") api[name] = url.replace(/^https:\/\/[^/]+/, info.gateway);
    exchange.urls.api = api;
    const balance = await exchange.fetchBalance();
    expect(balance.total).toHaveProperty("BTC");
    const order = await exchange.createOrder("BTC/USDT", "market", "buy", 0.001);
    expect(order.status).toBe("closed");
  });

  it("refuses what the keys may not do, with clear codes", async () => {
    const reader = createClient({ baseUrl: info.gateway, keyId: info.keys.reader.id, secret: info.keys.reader.secret ?? "" });
    await expect(reader.json("GET", "/api/v3/account")).resolves.toBeTruthy();
    const err = await reader.json("POST", "/api/v3/order", { form: { symbol: "BTCUSDT", side: "BUY", type: "MARKET", quantity: "0.01" } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PortcullisApiError);
    expect((err as PortcullisApiError).code).toBe("SCOPE_MISSING");
    const trader = createClient({ baseUrl: info.gateway, keyId: info.keys.trader.id, secret: info.keys.trader.secret ?? "" });
    const withdraw = await trader.json("POST", "/sapi/v1/capital/withdraw/apply", { form: { coin: "USDT", address: "x", amount: "1" } }).catch((e: unknown) => e);
    expect((withdraw as PortcullisApiError).code).toBe("SCOPE_MISSING");
    // An unsigned request to a Binance-shaped route is refused the way Binance refuses it.
    const unsigned = await fetch(`${info.gateway}/api/v3/account`);
    expect(unsigned.status).toBe(401);
    expect(((await unsigned.json()) as { code: number }).code).toBe(-2014);
  });

  it("revocation through the admin API takes effect on the gateway", async () => {
    const admin = createClient({ baseUrl: info.admin, keyId: info.keys.admin.id, secret: info.keys.admin.secret ?? "" });
    // The demo's admin key is an operator key: it manages keys of every account.
    expect(await admin.json("GET", `/portcullis/v1/keys/${info.keys.admin.id}`)).toMatchObject({ account: "demo-admin", operator: true });
    const created = await admin.json<{ id: string; secret: string }>("POST", "/portcullis/v1/keys", { json: { account: "e2e", scopes: ["read"] } });
    const bot = createClient({ baseUrl: info.gateway, keyId: created.id, secret: created.secret });
    await expect(bot.json("GET", "/api/v3/account")).resolves.toBeTruthy();
    await admin.json("POST", `/portcullis/v1/keys/${created.id}/revoke`);
    const err = await bot.json("GET", "/api/v3/account").catch((e: unknown) => e);
    expect((err as PortcullisApiError).code).toBe("KEY_REVOKED");
  });

  it("guards the Ed25519 trader key: its markets, and a price band around the reference price", async () => {
    const client = createClient({ baseUrl: info.gateway, keyId: info.keys.ed25519.id, privateKey: info.keys.ed25519.privateKey ?? "", algorithm: "ed25519" });
    const other = await client.json("POST", "/api/v3/order", { json: { symbol: "BTCETH", side: "BUY", type: "MARKET", quantity: "0.1" } }).catch((e: unknown) => e);
    expect((other as PortcullisApiError).code).toBe("GUARDRAIL_SYMBOL");
    const fatFinger = await client
      .json("POST", "/api/v3/order", { json: { symbol: "BTCUSDT", side: "BUY", type: "LIMIT", timeInForce: "GTC", quantity: "0.01", price: "1" } })
      .catch((e: unknown) => e);
    expect((fatFinger as PortcullisApiError).code).toBe("GUARDRAIL_PRICE_BAND");
  });

  it("holds the treasury key's withdrawal by the demo policy; two approvers on the command line release it exactly once", async () => {
    const held = info.heldWithdrawal;
    expect(held).toMatchObject({ operationId: expect.stringMatching(/^op_[0-9a-f]{32}$/) as unknown, rule: "new destination", amount: "2500", asset: "USDT" });
    const id = held?.operationId ?? "";
    expect(Object.keys(info.approvers)).toEqual(["alice", "bob", "carol"]);
    const treasury = createClient({ baseUrl: info.gateway, keyId: info.keys.treasury.id, secret: info.keys.treasury.secret ?? "" });
    expect(await treasury.json("GET", `/portcullis/v1/operations/${id}`)).toMatchObject({ state: "pending", required: { approvals: [{ group: "treasury", count: 2, have: 0 }] } });
    // Another key of the same account sees nothing of it.
    const reader = createClient({ baseUrl: info.gateway, keyId: info.keys.reader.id, secret: info.keys.reader.secret ?? "" });
    expect(((await reader.json("GET", `/portcullis/v1/operations/${id}`).catch((e: unknown) => e)) as PortcullisApiError).code).toBe("OPERATION_NOT_FOUND");
    for (const name of ["alice", "bob"] as const) {
      const approved = await runCli(["approvals", "approve", id, "--key", info.approvers[name].keyFile, "--data", info.dataDir, "--json"]);
      expect(approved.code).toBe(0);
    }
    // A third approval after release is refused: nothing is sent twice.
    let state = "";
    for (let i = 0; i < 100 && state !== "released"; i++) {
      state = (await treasury.json<{ state: string }>("GET", `/portcullis/v1/operations/${id}`)).state;
      if (state !== "released") await new Promise((r) => setTimeout(r, 100));
    }
    const released = await treasury.json<{ state: string; outcome: { status: number; body: string } }>("GET", `/portcullis/v1/operations/${id}`);
    expect(released).toMatchObject({ state: "released", outcome: { status: 200 } });
    expect(JSON.parse(released.outcome.body)).toHaveProperty("id");
    const late = await runCli(["approvals", "approve", id, "--key", info.approvers.carol.keyFile, "--data", info.dataDir, "--json"]);
    expect(late.code).not.toBe(0);
    expect(late.stderr).toMatch(/OPERATION_STATE_CONFLICT/);
  });

  it("ranks its keys by what they could do if stolen, and lists what the behaviour stage did, from the command line", async () => {
    const top = await runCli(["keys", "risk", "--top", "3", "--data", info.dataDir, "--json"]);
    expect(top.code).toBe(0);
    const profiles = JSON.parse(top.stdout) as { keyId: string; riskScore: number }[];
    expect(profiles).toHaveLength(3);
    expect(profiles[0]?.riskScore ?? 0).toBeGreaterThanOrEqual(profiles[2]?.riskScore ?? 0);
    const one = await runCli(["keys", "risk", info.keys.trader.id, "--data", info.dataDir, "--json"]);
    expect(one.code).toBe(0);
    expect(JSON.parse(one.stdout)).toMatchObject({ keyId: info.keys.trader.id, exposure: { reachableFrom: expect.anything() as unknown } });
    const actions = await runCli(["anomalies", "list", "--data", info.dataDir, "--json"]);
    expect(actions.code).toBe(0);
    expect(Array.isArray((JSON.parse(actions.stdout) as { actions: unknown }).actions)).toBe(true);
  });

  it("has a wallet-owned account: the owner logs on with SIWE, its agent trades (sealed too) within its caps, delegates narrower, and a signed revocation takes everything below", async () => {
    const venue = { chainId: 31337, domain: "demo-exchange.localhost", uri: "http://demo-exchange.localhost" };
    const { wallet } = info;
    expect(statSync(wallet.ownerFile).mode & 0o777).toBe(0o600);
    const ownerFile = JSON.parse(readFileSync(wallet.ownerFile, "utf8")) as { address: string; privateKey: `0x${string}` };
    const owner = privateKeyToAccount(ownerFile.privateKey);
    expect(owner.address).toBe(wallet.owner);

    // The owner: Sign-In with Ethereum, then an ordinary session of its owner key.
    const session = await walletLogon({ baseUrl: info.gateway }, await signSiweLogon(owner, { venue }));
    expect(session.session.apiKeyId).toBe(wallet.ownerKeyId);
    const balances = await session.json<{ balances: unknown[] }>("GET", "/api/v3/account");
    expect(Array.isArray(balances.balances)).toBe(true);

    // The agent the demo registered: trades, sealed or not, and is held to its terms.
    const agentPem = readFileSync(wallet.agent.privateKeyFile, "utf8");
    const agent = createClient({ baseUrl: info.gateway, keyId: wallet.agent.id, privateKey: agentPem, algorithm: "ed25519" });
    const order = await agent.json<Order>("POST", "/api/v3/order", { form: { symbol: "BTCUSDT", side: "BUY", type: "MARKET", quantity: "0.01" }, sealed: true });
    expect(order.status).toBe("FILLED");
    await expect(agent.json("POST", "/api/v3/order", { form: { symbol: "BTCUSDT", side: "BUY", type: "MARKET", quantity: "1" } })).rejects.toMatchObject({ code: "GUARDRAIL_QUANTITY" });
    await expect(agent.json("POST", "/api/v3/order", { form: { symbol: "SOLUSDT", side: "BUY", type: "MARKET", quantity: "0.01" } })).rejects.toMatchObject({ code: "GUARDRAIL_SYMBOL" });

    // The agent delegates a narrower credential to a sub-strategy's own key, registered from the chain of signatures.
    const sub = await generateKeyPair("ed25519");
    const agentKey = await importPrivateKey(agentPem, "ed25519");
    const delegation = await signDelegation(
      { algorithm: "ed25519", privateKey: agentKey },
      {
        venue,
        parent: wallet.agent.id,
        agentKey: await ed25519AgentKey(sub.publicKey),
        terms: { scopes: ["trade"], symbols: ["ETHUSDT"], maxOrderNotional: "1000", maxOrderQuantity: "0.2", maxOpenNotional: "2000", limits: [], expiresAt: Math.floor(Date.now() / 1000) + 3600 },
      },
    );
    const subId = delegatedKeyId("test", wallet.agent.id, delegation.delegation.nonce);
    const registered = await registerAgent({ baseUrl: info.gateway }, [wallet.agent.approval, delegation]);
    expect(registered).toMatchObject({ id: subId, parent: wallet.agent.id });
    const subClient = createClient({ baseUrl: info.gateway, keyId: subId, privateKey: sub.privateKey, algorithm: "ed25519" });
    expect((await subClient.json<Order>("POST", "/api/v3/order", { form: { symbol: "ETHUSDT", side: "BUY", type: "MARKET", quantity: "0.1" } })).status).toBe("FILLED");
    await expect(subClient.json("POST", "/api/v3/order", { form: { symbol: "BTCUSDT", side: "BUY", type: "MARKET", quantity: "0.01" } })).rejects.toMatchObject({ code: "GUARDRAIL_SYMBOL" });

    // The command line seals too: `portcullis request --sealed` (and refuses to seal nothing).
    const sealedCli = await runCli(["request", "--key-id", wallet.agent.id, "--private-key", wallet.agent.privateKeyFile, "--sealed", "--data", "symbol=ETHUSDT&side=BUY&type=MARKET&quantity=0.1", "POST", `${info.gateway}/api/v3/order`]);
    expect(sealedCli.code).toBe(0);
    expect(sealedCli.stdout).toMatch(/^HTTP 200 .*\n.*"status":"FILLED"/s);
    const nothing = await runCli(["request", "--key-id", wallet.agent.id, "--private-key", wallet.agent.privateKeyFile, "--sealed", "GET", `${info.gateway}/api/v3/account`]);
    expect(nothing.code).not.toBe(0);
    expect(nothing.stderr).toMatch(/--sealed seals the body/);

    // The owner's signed revocation of the agent takes the sub-strategy's key with it, at once.
    const revoked = await revokeAgent({ baseUrl: info.gateway }, await signAgentRevocation({ owner }, { venue, revoke: wallet.agent.id }));
    expect([...revoked.revoked].sort()).toEqual([wallet.agent.id, subId].sort());
    for (const client of [agent, subClient]) {
      const refusal = await client.json("GET", "/api/v3/account").catch((err: unknown) => err);
      expect(refusal).toBeInstanceOf(PortcullisApiError);
      expect(["KEY_REVOKED", "AGENT_CHAIN_REVOKED"]).toContain((refusal as PortcullisApiError).code);
    }
  });

  it("stops cleanly on SIGINT and removes its temporary data directory", async () => {
    expect(existsSync(info.dataDir)).toBe(true);
    const exited = new Promise<number | null>((resolve) => demo.child.once("exit", (code) => { resolve(code); }));
    demo.child.kill("SIGINT");
    expect(await exited).toBe(0);
    expect(existsSync(info.dataDir)).toBe(false);
  });
});
