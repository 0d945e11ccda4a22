/**
 * `RiskProfiles` over the real key service (SQLite) and the real policy service, and the admin
 * API's risk routes over a real socket with the client SDK: one key's profile, the top N riskiest
 * (paged through the key service), the anomaly score read per key, account isolation (an account
 * admin sees only its own account's keys), refusals with their codes.
 */
import { PortcullisApiError, createClient, type PortcullisClient } from "@portcullis/client";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminApi } from "../../src/admin/server.js";
import { RouteTable } from "../../src/authz/routes.js";
import type { AnomalyScores, BehaviourScore } from "../../src/contract/behaviour.js";
import type { RiskProfile } from "../../src/exposure/profile.js";
import { RiskProfiles } from "../../src/exposure/service.js";
import { PolicyService } from "../../src/governance/policy-service.js";
import { silentLogger } from "../../src/log/logger.js";
import { SqliteStore } from "../../src/storage/sqlite/store.js";
import { type TestCore, makeCore } from "../support/harness.js";
import { CAPPED, LIMITS, NOW, PRICE_TABLE, ROUTES, prices } from "./support.js";

/** The behaviour model's latest scores, as a map (the model itself is another unit's). */
class Scores implements AnomalyScores {
  readonly byKey = new Map<string, number>();
  latest(keyId: string): Promise<BehaviourScore | null> {
    const score = this.byKey.get(keyId);
    return Promise.resolve(score === undefined ? null : { keyId, account: "", at: NOW, score, basis: "key", seen: 50, contributions: [] });
  }
}

let t: TestCore;
let store: SqliteStore;
let policy: PolicyService;
let scores: Scores;
let risk: RiskProfiles;
let api: AdminApi;
let bare: AdminApi;
let base: string;
let bareBase: string;
let operator: PortcullisClient;
let acctAdmin: PortcullisClient;
let policyOnly: PortcullisClient;
let bareOperator: PortcullisClient;
const ids: Record<string, string> = {};

const client = (url: string, created: { key: { id: string }; secret: string | null }): PortcullisClient => createClient({ baseUrl: url, keyId: created.key.id, secret: created.secret ?? "" });

async function refusal(p: Promise<unknown>): Promise<{ status: number; code: string }> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PortcullisApiError);
  const e = err as PortcullisApiError;
  return { status: e.status, code: String(e.code) };
}

beforeAll(async () => {
  t = await makeCore({ now: Date.now });
  store = new SqliteStore(join(t.dataDir, "portcullis.db"));
  policy = await PolicyService.open({ store, prices, pollIntervalMs: 0 });
  await policy.apply(CAPPED, { actor: "cli:test", account: null, keyId: null, client: null, owner: null });
  scores = new Scores();
  risk = new RiskProfiles({
    keys: t.core.keys,
    limits: LIMITS,
    routes: new RouteTable(ROUTES).routes,
    policy,
    prices,
    assets: Object.keys(PRICE_TABLE.assets),
    symbols: Object.keys(PRICE_TABLE.symbols),
    anomaly: scores,
    now: () => NOW,
    pageSize: 2,
  });
  api = new AdminApi({ core: t.core, logger: silentLogger(), risk });
  base = `http://127.0.0.1:${(await api.listen(0, "127.0.0.1")).port}`;
  bare = new AdminApi({ core: t.core, logger: silentLogger() });
  bareBase = `http://127.0.0.1:${(await bare.listen(0, "127.0.0.1")).port}`;
  const op = await t.createKey({ account: "ops", scopes: ["admin:*"], operator: true, ipAllowlist: ["127.0.0.1/32"] });
  operator = client(base, op);
  bareOperator = client(bareBase, op);
  ids.operator = op.key.id;
  const admin = await t.createKey({ account: "acct-a", scopes: ["admin:keys"], ipAllowlist: ["127.0.0.1/32"] });
  acctAdmin = client(base, admin);
  ids.acctAdmin = admin.key.id;
  policyOnly = client(base, await t.createKey({ account: "acct-a", scopes: ["admin:policy"], ipAllowlist: ["127.0.0.1/32"] }));
  ids.aWide = (await t.createKey({ account: "acct-a", scopes: ["read", "trade", "withdraw"] })).key.id;
  ids.aNarrow = (await t.createKey({ account: "acct-a", scopes: ["read"], ipAllowlist: ["192.0.2.7/32"] })).key.id;
  ids.bWide = (await t.createKey({ account: "acct-b", scopes: ["read", "trade", "withdraw"] })).key.id;
  ids.bTrade = (await t.createKey({ account: "acct-b", scopes: ["trade"], ipAllowlist: ["192.0.2.0/24"] })).key.id;
  scores.byKey.set(ids.bWide, 100);
});
afterAll(async () => {
  await api.close(500);
  await bare.close(500);
  policy.close();
  await store.close();
  await t.cleanup();
});

describe("RiskProfiles", () => {
  it("one key's profile: the policy in force (version 1), the configured limits, the key's anomaly score", async () => {
    const p = await risk.profile(ids.bWide ?? "");
    expect(p).toMatchObject({ keyId: ids.bWide, account: "acct-b", policyVersion: 1, usable: true });
    expect(p.exposure).toMatchObject({ maxWithdrawalPerHour: 5000, maxOrdersPerHour: 36_100, anomalyScore: 100 });
    expect(p.scoreParts.anomaly).toBe(5);
    expect(p.sensitivities.length).toBeGreaterThan(0);
    expect((await risk.profile(ids.aWide ?? "")).exposure.anomalyScore).toBeNull();
  });

  it("an unknown key is KEY_NOT_FOUND", async () => {
    await expect(risk.profile("pk_test_00000000000000000000000000000000")).rejects.toMatchObject({ code: "KEY_NOT_FOUND" });
  });

  it("top N: every key ranked (paged two at a time), riskiest first, each with its sensitivities", async () => {
    const all = await risk.top(100);
    expect(all).toHaveLength(7);
    const scoresInOrder = all.map((p) => p.riskScore);
    expect(scoresInOrder).toEqual([...scoresInOrder].sort((a, b) => b - a));
    // Same exposure as acct-a's wide key, plus the anomaly: first.
    expect(all[0]?.keyId).toBe(ids.bWide);
    expect(all[1]?.keyId).toBe(ids.aWide);
    expect(all[0]?.sensitivities.length).toBeGreaterThan(0);
    const top2 = await risk.top(2);
    expect(top2.map((p) => p.keyId)).toEqual([ids.bWide, ids.aWide]);
    const onlyA = await risk.top(10, { account: "acct-a" });
    expect(new Set(onlyA.map((p) => p.account))).toEqual(new Set(["acct-a"]));
    expect(onlyA[0]?.keyId).toBe(ids.aWide);
  });

  it("refuses a bad N with VALIDATION_FAILED", async () => {
    await expect(risk.top(0)).rejects.toMatchObject({ code: "VALIDATION_FAILED" });
    await expect(risk.top(1001)).rejects.toMatchObject({ code: "VALIDATION_FAILED" });
    await expect(risk.top(1.5)).rejects.toMatchObject({ code: "VALIDATION_FAILED" });
  });
});

describe("the admin API", () => {
  it("an operator reads any key's profile and the ranking of every account", async () => {
    const p = await operator.json<RiskProfile>("GET", `/portcullis/v1/keys/${ids.bWide ?? ""}/risk`);
    expect(p).toMatchObject({ keyId: ids.bWide, exposure: { maxWithdrawalPerHour: 5000 } });
    const top = await operator.json<{ keys: RiskProfile[] }>("GET", "/portcullis/v1/risk?top=3");
    expect(top.keys.map((k) => k.keyId)).toEqual([ids.bWide, ids.aWide, top.keys[2]?.keyId]);
    expect(top.keys).toHaveLength(3);
    const b = await operator.json<{ keys: RiskProfile[] }>("GET", "/portcullis/v1/risk?account=acct-b");
    expect(b.keys.map((k) => k.keyId).sort()).toEqual([ids.bTrade, ids.bWide].sort());
  });

  it("an account admin sees only its own account's keys: another account's key is KEY_NOT_FOUND, the ranking its own keys", async () => {
    expect(await acctAdmin.json<RiskProfile>("GET", `/portcullis/v1/keys/${ids.aWide ?? ""}/risk`)).toMatchObject({ keyId: ids.aWide });
    expect(await refusal(acctAdmin.json("GET", `/portcullis/v1/keys/${ids.bWide ?? ""}/risk`))).toEqual({ status: 404, code: "KEY_NOT_FOUND" });
    expect(await refusal(acctAdmin.json("GET", `/portcullis/v1/keys/${ids.operator ?? ""}/risk`))).toEqual({ status: 404, code: "KEY_NOT_FOUND" });
    const own = await acctAdmin.json<{ keys: RiskProfile[] }>("GET", "/portcullis/v1/risk?top=50");
    expect(own.keys.length).toBeGreaterThan(0);
    expect(own.keys.every((k) => k.account === "acct-a")).toBe(true);
    expect(own.keys.map((k) => k.keyId)).not.toContain(ids.operator);
    expect(await acctAdmin.json("GET", "/portcullis/v1/risk?account=acct-b")).toEqual({ keys: [] });
  });

  it("refusals: no admin:keys scope, a bad top, an unknown key, risk not served", async () => {
    expect(await refusal(policyOnly.json("GET", `/portcullis/v1/keys/${ids.aWide ?? ""}/risk`))).toEqual({ status: 403, code: "SCOPE_MISSING" });
    expect(await refusal(operator.json("GET", "/portcullis/v1/risk?top=0"))).toEqual({ status: 400, code: "VALIDATION_FAILED" });
    expect(await refusal(operator.json("GET", "/portcullis/v1/risk?top=abc"))).toEqual({ status: 400, code: "VALIDATION_FAILED" });
    expect(await refusal(operator.json("GET", "/portcullis/v1/keys/pk_test_00000000000000000000000000000000/risk"))).toEqual({ status: 404, code: "KEY_NOT_FOUND" });
    expect(await refusal(bareOperator.json("GET", "/portcullis/v1/risk"))).toEqual({ status: 404, code: "ROUTE_NOT_FOUND" });
  });

  it("?keys=ID,… answers the scores of the keys named, as the profiles give them; unknown ids are left out", async () => {
    const named = [ids.aWide, ids.bWide, ids.bTrade, "pck_test_v1_000000000000000000000000000000"].join(",");
    const { scores } = await operator.json<{ scores: Record<string, number> }>("GET", `/portcullis/v1/risk?keys=${named},${ids.aWide ?? ""}`);
    expect(Object.keys(scores).sort()).toEqual([ids.aWide, ids.bWide, ids.bTrade].sort());
    for (const id of [ids.aWide, ids.bWide, ids.bTrade]) {
      expect(scores[id ?? ""]).toBe((await operator.json<RiskProfile>("GET", `/portcullis/v1/keys/${id ?? ""}/risk`)).riskScore);
    }
    expect(scores[ids.bWide ?? ""]).toBeGreaterThan(scores[ids.bTrade ?? ""] ?? 100);
  });

  it("?keys= for an account admin: another account's keys and operator keys are left out, like unknown ones", async () => {
    const { scores } = await acctAdmin.json<{ scores: Record<string, number> }>("GET", `/portcullis/v1/risk?keys=${[ids.aWide, ids.aNarrow, ids.bWide, ids.operator].join(",")}`);
    expect(Object.keys(scores).sort()).toEqual([ids.aWide, ids.aNarrow].sort());
    expect(await acctAdmin.json("GET", `/portcullis/v1/risk?keys=${ids.bWide ?? ""}`)).toEqual({ scores: {} });
  });

  it.each([
    ["no id", "keys=", "keys"],
    ["101 ids", `keys=${Array.from({ length: 101 }, (_, i) => `k${i}`).join(",")}`, "keys"],
    ["an empty id", "keys=a,,b", "keys"],
    ["keys with top", "keys=a&top=3", "top"],
    ["keys with account", "keys=a&account=acct-a", "account"],
    ["keys twice", "keys=a&keys=b", "keys"],
  ])("?keys= refuses %s (VALIDATION_FAILED naming it)", async (_name, query, field) => {
    const err = await operator.json("GET", `/portcullis/v1/risk?${query}`).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PortcullisApiError);
    const e = err as PortcullisApiError;
    expect({ status: e.status, code: e.code, named: (e.body as { fields?: Record<string, string> }).fields?.[field] !== undefined }).toEqual({ status: 400, code: "VALIDATION_FAILED", named: true });
  });

  it("?keys= takes 100 ids", async () => {
    const many = [ids.aWide ?? "", ...Array.from({ length: 99 }, (_, i) => `pck_none_${i}`)];
    expect(await operator.json<{ scores: Record<string, number> }>("GET", `/portcullis/v1/risk?keys=${many.join(",")}`)).toEqual({ scores: { [ids.aWide ?? ""]: expect.any(Number) as unknown } });
  });
});
