/**
 * The policy and address book routes of the admin API, over a real socket with the client SDK:
 * scopes (admin:policy, admin:addresses), operator-only apply, account admins confined to their
 * own account's book, held changes answered 202 {operationId, state, required}, blocked ones 403
 * POLICY_BLOCKED, bad input 400 with its fields, and the dry run's trace.
 */
import { PortcullisApiError, createClient, type PortcullisClient } from "@portcullis/client";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminApi } from "../../src/admin/server.js";
import { POLICY_ROUTES } from "../../src/admin/policy.js";
import { AddressBook } from "../../src/governance/address-book.js";
import { PolicyService } from "../../src/governance/policy-service.js";
import { silentLogger } from "../../src/log/logger.js";
import { StaticPrices } from "../../src/operations/prices.js";
import { SqliteStore } from "../../src/storage/sqlite/store.js";
import { type TestCore, makeCore } from "../support/harness.js";
import { PRICES, TestHolder } from "./support.js";

let t: TestCore;
let store: SqliteStore;
let policy: PolicyService;
let holder: TestHolder;
let api: AdminApi;
let bare: AdminApi;
let base: string;
let bareBase: string;
let operator: PortcullisClient;
let accountAdmin: PortcullisClient;
let keysOnly: PortcullisClient;

const client = (url: string, created: { key: { id: string }; secret: string | null }): PortcullisClient => createClient({ baseUrl: url, keyId: created.key.id, secret: created.secret ?? "" });

beforeAll(async () => {
  t = await makeCore({ now: Date.now });
  // The governance on its own connection to the data directory's database, as a CLI beside the gateway would be.
  store = new SqliteStore(join(t.dataDir, "portcullis.db"));
  holder = new TestHolder();
  policy = await PolicyService.open({ store, prices: new StaticPrices(PRICES), holder, pollIntervalMs: 0 });
  const addresses = new AddressBook({ store, policy, holder, cooldownMs: 3_600_000 });
  api = new AdminApi({ core: t.core, logger: silentLogger(), governance: { policy, addresses } });
  base = `http://127.0.0.1:${(await api.listen(0, "127.0.0.1")).port}`;
  bare = new AdminApi({ core: t.core, logger: silentLogger() });
  bareBase = `http://127.0.0.1:${(await bare.listen(0, "127.0.0.1")).port}`;
  const op = await t.createKey({ account: "ops", scopes: ["admin:*"], operator: true, owner: "olivia" });
  operator = client(base, op);
  accountAdmin = client(base, await t.createKey({ account: "acct-a", scopes: ["admin:policy", "admin:addresses"] }));
  keysOnly = client(base, await t.createKey({ account: "acct-a", scopes: ["admin:keys"] }));
});
afterAll(async () => {
  await api.close(500);
  await bare.close(500);
  policy.close();
  await store.close();
  await t.cleanup();
});

async function refusal(p: Promise<unknown>): Promise<{ status: number; code: string; body: Record<string, unknown> }> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PortcullisApiError);
  const e = err as PortcullisApiError;
  return { status: e.status, code: String(e.code), body: e.body as Record<string, unknown> };
}

const CATCH_ALL = { name: "rest", action: { type: "allow" } };

describe("the policy routes", () => {
  it("lists every policy and address route under its admin scope", () => {
    expect(POLICY_ROUTES.map((r) => `${r.method} ${r.path} ${r.permission}`)).toEqual([
      "GET /portcullis/v1/policy admin:policy",
      "PUT /portcullis/v1/policy admin:policy",
      "GET /portcullis/v1/policy/versions admin:policy",
      "POST /portcullis/v1/policy/test admin:policy",
      "GET /portcullis/v1/addresses admin:addresses",
      "POST /portcullis/v1/addresses admin:addresses",
      "DELETE /portcullis/v1/addresses/:id admin:addresses",
    ]);
  });

  it("an operator reads version 0 and applies a policy; an account admin reads it but cannot apply one", async () => {
    expect(await operator.json("GET", "/portcullis/v1/policy")).toMatchObject({ version: 0, createdBy: "built-in" });
    const doc = {
      rules: [
        { name: "new destinations", match: { kind: ["withdraw"], destination: "new" }, action: { type: "block", reason: "add it to the book first" } },
        { name: "big", match: { kind: ["withdraw"], amount: { over: "1000" } }, action: { type: "hold", approvals: [{ group: "treasury", count: 2 }, { group: "risk", count: 1 }], delay: "10m" } },
        { name: "btc book", match: { kind: ["address.add"], asset: ["BTC"] }, action: { type: "hold", approvals: [{ group: "treasury", count: 1 }] } },
        { name: "no doge", match: { kind: ["address.add"], asset: ["DOGE"] }, action: { type: "block", reason: "not listed" } },
        { name: "policy changes", match: { kind: ["policy.change"] }, action: { type: "hold", approvals: [{ group: "risk", count: 2 }] } },
        CATCH_ALL,
      ],
    };
    expect(await refusal(accountAdmin.json("PUT", "/portcullis/v1/policy", { json: doc }))).toMatchObject({ status: 403, code: "ADMIN_GRANT_EXCEEDED" });
    const applied = await operator.json<{ version: number; createdBy: string }>("PUT", "/portcullis/v1/policy", { json: doc });
    expect(applied).toMatchObject({ version: 1, rules: 6 });
    expect(applied.createdBy).toMatch(/^key:/);
    expect(await accountAdmin.json("GET", "/portcullis/v1/policy")).toMatchObject({ version: 1, document: doc });
    expect(await accountAdmin.json("GET", "/portcullis/v1/policy?version=0")).toMatchObject({ version: 0 });
    expect((await accountAdmin.json<{ versions: { version: number }[] }>("GET", "/portcullis/v1/policy/versions")).versions.map((v) => v.version)).toEqual([1, 0]);
    // Now policy changes are held for two of risk: the answer is 202 with the ticket.
    const held = await operator.fetch(`${base}/portcullis/v1/policy`, { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify({ rules: [CATCH_ALL] }) });
    expect(held.status).toBe(202);
    const ticket = (await held.json()) as { operationId: string; state: string; required: unknown };
    expect(ticket).toMatchObject({ state: "pending", required: { approvals: [{ group: "risk", count: 2, have: 0 }], notBefore: null } });
    expect(holder.held.get(ticket.operationId)?.owner).toBe("olivia");
    expect(await operator.json("GET", "/portcullis/v1/policy")).toMatchObject({ version: 1 });
  });

  it("refuses a bad document with its paths, a bad version, bad JSON", async () => {
    const bad = await refusal(operator.json("PUT", "/portcullis/v1/policy", { json: { rules: [{ name: "x", match: { amount: { over: 5 } }, action: { type: "allow" } }] } }));
    expect(bad).toMatchObject({ status: 400, code: "VALIDATION_FAILED", body: { fields: { "rules[0].match.amount.over": expect.any(String) as unknown, "rules[0].match": expect.stringMatching(/catch-all/) as unknown } } });
    expect(await refusal(operator.json("GET", "/portcullis/v1/policy?version=99"))).toMatchObject({ status: 404, code: "POLICY_VERSION_NOT_FOUND" });
    expect(await refusal(operator.json("GET", "/portcullis/v1/policy?version=-1"))).toMatchObject({ status: 400, code: "VALIDATION_FAILED" });
    const res = await operator.fetch(`${base}/portcullis/v1/policy/test`, { method: "POST", headers: { "content-type": "application/json" }, body: "{" });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { code: string }).code).toBe("JSON_MALFORMED");
  });

  it("the dry run answers the trace, reads the book, and refuses bad operations with their fields", async () => {
    const e = await accountAdmin.json<{ decision: { rule: string }; trace: { rule: string; matched: boolean; because: string[] }[] }>("POST", "/portcullis/v1/policy/test", {
      json: { operation: { kind: "withdraw", asset: "USDT", amount: "1500", address: "TNOWHERE" }, account: "acct-a", key: accountAdmin.keyId, source: "10.0.0.1" },
    });
    expect(e.decision.rule).toBe("new destinations");
    expect(e.trace).toEqual([{ rule: "new destinations", matched: true, because: ["kind withdraw is in [withdraw]", "destination TNOWHERE is not in the account's USDT address book: it is new"] }]);
    const bad = await refusal(accountAdmin.json("POST", "/portcullis/v1/policy/test", { json: { operation: { kind: "withdraw", asset: "USDT", amount: 1 }, source: "nope", extra: 1 } }));
    expect(bad).toMatchObject({ status: 400, code: "VALIDATION_FAILED", body: { fields: { source: expect.any(String) as unknown, extra: "unknown field" } } });
    const badOp = await refusal(accountAdmin.json("POST", "/portcullis/v1/policy/test", { json: { operation: { kind: "withdraw", asset: "USDT", amount: 1, address: "T" } } }));
    expect(badOp.body).toMatchObject({ fields: { "operation.amount": expect.any(String) as unknown } });
  });


  it("needs admin:policy: an admin:keys key is SCOPE_MISSING", async () => {
    expect(await refusal(keysOnly.json("GET", "/portcullis/v1/policy"))).toMatchObject({ status: 403, code: "SCOPE_MISSING" });
    expect(await refusal(keysOnly.json("GET", "/portcullis/v1/addresses"))).toMatchObject({ status: 403, code: "SCOPE_MISSING" });
  });

  it("an admin API without the policy answers its routes ROUTE_NOT_FOUND", async () => {
    const op = client(bareBase, await t.createKey({ account: "ops", scopes: ["admin:*"], operator: true }));
    expect(await refusal(op.json("GET", "/portcullis/v1/policy"))).toMatchObject({ status: 404, code: "ROUTE_NOT_FOUND" });
  });
});

describe("the address routes", () => {
  it("adds (cooling), lists, and removes; an account admin reaches its own account only", async () => {
    const added = await accountAdmin.json<{ id: string; state: string; account: string }>("POST", "/portcullis/v1/addresses", { json: { account: "acct-a", asset: "usdt", address: "TADDR-A", network: "TRX" } });
    expect(added).toMatchObject({ account: "acct-a", asset: "USDT", state: "cooling" });
    expect(await refusal(accountAdmin.json("POST", "/portcullis/v1/addresses", { json: { account: "acct-b", asset: "USDT", address: "TX" } }))).toMatchObject({ status: 403, code: "ADMIN_GRANT_EXCEEDED" });
    const foreign = await operator.json<{ id: string }>("POST", "/portcullis/v1/addresses", { json: { account: "acct-b", asset: "USDT", address: "TADDR-B" } });
    // The account admin sees its own entries only, and cannot remove another account's (nor learn it exists).
    const own = await accountAdmin.json<{ addresses: { id: string; account: string }[] }>("GET", "/portcullis/v1/addresses");
    expect(own.addresses.map((a) => a.account)).toEqual(["acct-a"]);
    expect(await accountAdmin.json("GET", "/portcullis/v1/addresses?account=acct-b")).toEqual({ addresses: [] });
    const missing = await refusal(accountAdmin.json("DELETE", "/portcullis/v1/addresses/adr_000000000000000000000000"));
    expect(missing).toMatchObject({ status: 404, code: "ADDRESS_NOT_FOUND" });
    expect(await refusal(accountAdmin.json("DELETE", `/portcullis/v1/addresses/${foreign.id}`))).toMatchObject({ status: 404, code: "ADDRESS_NOT_FOUND", body: { message: missing.body.message } });
    expect((await operator.json<{ addresses: unknown[] }>("GET", "/portcullis/v1/addresses?account=acct-b")).addresses).toHaveLength(1);
    expect(await refusal(accountAdmin.json("POST", "/portcullis/v1/addresses", { json: { account: "acct-a", asset: "USDT", address: "TADDR-A", network: "TRX" } }))).toMatchObject({ status: 409, code: "ADDRESS_EXISTS" });
    expect(await accountAdmin.json("DELETE", `/portcullis/v1/addresses/${added.id}`)).toMatchObject({ id: added.id, state: "removed" });
    expect((await accountAdmin.json<{ addresses: unknown[] }>("GET", "/portcullis/v1/addresses")).addresses).toEqual([]);
    expect((await accountAdmin.json<{ addresses: unknown[] }>("GET", "/portcullis/v1/addresses?removed=true")).addresses).toHaveLength(1);
    expect(await refusal(accountAdmin.json("GET", "/portcullis/v1/addresses?removed=maybe"))).toMatchObject({ status: 400, code: "VALIDATION_FAILED" });
  });

  it("an addition the policy holds is 202 with the ticket; one it blocks is POLICY_BLOCKED", async () => {
    const res = await accountAdmin.fetch(`${base}/portcullis/v1/addresses`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ account: "acct-a", asset: "BTC", address: "bc1qexample" }) });
    expect(res.status).toBe(202);
    expect(await res.json()).toMatchObject({ state: "pending", required: { approvals: [{ group: "treasury", count: 1, have: 0 }] } });
    const blocked = await refusal(accountAdmin.json("POST", "/portcullis/v1/addresses", { json: { account: "acct-a", asset: "DOGE", address: "D1" } }));
    expect(blocked).toMatchObject({ status: 403, code: "POLICY_BLOCKED", body: { message: expect.stringMatching(/not listed/) as unknown } });
    expect(await refusal(accountAdmin.json("POST", "/portcullis/v1/addresses", { json: { account: "acct-a", asset: "USDT" } }))).toMatchObject({ status: 400, code: "VALIDATION_FAILED", body: { fields: { address: "required" } } });
  });
});

describe("the dry run across accounts", () => {
  it("an account admin dry-runs its own account only: another account is ADMIN_GRANT_EXCEEDED, a key it cannot reach KEY_NOT_FOUND; an operator names any", async () => {
    const operation = { kind: "withdraw", asset: "USDT", amount: "1500", address: "TNOWHERE" };
    const foreignKey = (await t.createKey({ account: "acct-b", scopes: ["withdraw"] })).key.id;
    expect(await refusal(accountAdmin.json("POST", "/portcullis/v1/policy/test", { json: { operation, account: "acct-b" } }))).toMatchObject({ status: 403, code: "ADMIN_GRANT_EXCEEDED" });
    expect(await refusal(accountAdmin.json("POST", "/portcullis/v1/policy/test", { json: { operation, key: foreignKey } }))).toMatchObject({ status: 404, code: "KEY_NOT_FOUND" });
    expect(await refusal(accountAdmin.json("POST", "/portcullis/v1/policy/test", { json: { operation, key: "pck_test_v1_000000000000000000000000000000" } }))).toMatchObject({ status: 404, code: "KEY_NOT_FOUND" });
    // Naming no account is naming its own: its book decides (TADDR-OWN is in acct-a's book only).
    const entry = await operator.json<{ id: string }>("POST", "/portcullis/v1/addresses", { json: { account: "acct-a", asset: "USDT", address: "TADDR-OWN" } });
    const own = await accountAdmin.json<{ trace: { because: string[] }[] }>("POST", "/portcullis/v1/policy/test", { json: { operation: { ...operation, address: "TADDR-OWN" } } });
    await operator.json("DELETE", `/portcullis/v1/addresses/${entry.id}`);
    expect(JSON.stringify(own.trace)).toContain("destination TADDR-OWN was added");
    const asOperator = await operator.json<{ decision: { rule: string } }>("POST", "/portcullis/v1/policy/test", { json: { operation, account: "acct-b", key: foreignKey } });
    expect(asOperator.decision.rule).toBe("new destinations");
  });
});
