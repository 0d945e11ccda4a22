/**
 * The operator surfaces over a real core: the admin API's anomaly routes (scope admin:anomalies;
 * an account admin sees only its account's actions, another's is not found) and the real
 * `portcullis anomalies` command on the data directory.
 */
import { type PortcullisApiError, createClient } from "@portcullis/client";
import { afterEach, describe, expect, it } from "vitest";
import { AdminApi } from "../../src/admin/server.js";
import { AnomalyResponder } from "../../src/anomaly/responder.js";
import { DEFAULT_BEHAVIOUR_SETTINGS, DEFAULT_RESPONSES } from "../../src/anomaly/responses.js";
import { webhookKeyView } from "../../src/anomaly/webhook.js";
import type { AnomalyActionRecord } from "../../src/contract/behaviour.js";
import { type OpenDataDir, openDataDir } from "../../src/core/data-dir.js";
import { silentLogger } from "../../src/log/logger.js";
import { runCli } from "../support/cli.js";
import { type TestCore, makeCore } from "../support/harness.js";
import { score } from "./support.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(): Promise<{ t: TestCore; data: OpenDataDir; responder: AnomalyResponder; baseUrl: string }> {
  // The admin API checks signatures made now: the core runs on the real clock here.
  const t = await makeCore({ now: Date.now });
  const data = await openDataDir(t.dataDir);
  const responder = new AnomalyResponder({
    settings: { ...DEFAULT_BEHAVIOUR_SETTINGS, responses: [...DEFAULT_RESPONSES, { minScore: 99, action: "revoke", forMs: null }] },
    keys: t.core.keys,
    store: data.store.anomalies,
    audit: t.core.audit,
  });
  const admin = new AdminApi({ core: t.core, logger: silentLogger(), anomalies: { responder, signer: data.signingKeys } });
  const address = await admin.listen(0);
  cleanups.push(async () => {
    await admin.close(100);
    await data.close();
    await t.cleanup();
  });
  return { t, data, responder, baseUrl: `http://127.0.0.1:${address.port}` };
}

async function codeOf(p: Promise<unknown>): Promise<string | number | undefined> {
  return ((await p.then(() => ({ code: "resolved" }), (e: unknown) => e)) as PortcullisApiError).code;
}

describe("admin API: /portcullis/v1/anomalies", () => {
  it("an operator lists, shows and undoes; account admins see only their account's; admin:anomalies is required", async () => {
    const { t, data, responder, baseUrl } = await setup();
    const op = await t.createKey({ account: "ops", scopes: ["admin:anomalies"], operator: true });
    const own = await t.createKey({ account: "acct-1", scopes: ["admin:anomalies"] });
    const stranger = await t.createKey({ account: "acct-2", scopes: ["admin:*"] });
    const keysOnly = await t.createKey({ account: "ops", scopes: ["admin:keys"], operator: true });
    const operator = createClient({ baseUrl, keyId: op.key.id, secret: op.secret ?? "" });
    const accountAdmin = createClient({ baseUrl, keyId: own.key.id, secret: own.secret ?? "" });
    const otherAdmin = createClient({ baseUrl, keyId: stranger.key.id, secret: stranger.secret ?? "" });
    const noScope = createClient({ baseUrl, keyId: keysOnly.key.id, secret: keysOnly.secret ?? "" });

    const victim = await t.createKey({ account: "acct-1", scopes: ["trade"] });
    const suspended = await responder.respond(score(victim.key.id, 96, Date.now()));
    const elsewhere = await t.createKey({ account: "acct-2", scopes: ["trade"] });
    const alerted = await responder.respond(score(elsewhere.key.id, 55, Date.now(), "acct-2"));
    expect((await t.core.keys.get(victim.key.id)).status).toBe("suspended");

    const all = await operator.json<{ actions: AnomalyActionRecord[] }>("GET", "/portcullis/v1/anomalies");
    expect(all.actions.map((a) => a.id)).toEqual([alerted?.id, suspended?.id]);
    const filtered = await operator.json<{ actions: AnomalyActionRecord[] }>("GET", `/portcullis/v1/anomalies?key=${victim.key.id}&state=active&action=suspend`);
    expect(filtered.actions.map((a) => a.id)).toEqual([suspended?.id]);
    expect(await operator.json("GET", `/portcullis/v1/anomalies/${suspended?.id ?? ""}`)).toEqual(suspended);
    expect(await codeOf(operator.json("GET", "/portcullis/v1/anomalies?state=gone"))).toBe("VALIDATION_FAILED");
    expect(await codeOf(operator.json("GET", "/portcullis/v1/anomalies?limit=0"))).toBe("VALIDATION_FAILED");
    expect(await codeOf(operator.json("GET", "/portcullis/v1/anomalies/an_00000000000000000000000000000000"))).toBe("ANOMALY_ACTION_NOT_FOUND");
    const key = await operator.json<{ kid: string; publicKey: string }>("GET", "/portcullis/v1/anomalies/webhook-key");
    expect(key).toEqual(webhookKeyView(await data.signingKeys.open("webhook")));

    // An account admin: its own account only, whatever it asks for.
    expect((await accountAdmin.json<{ actions: AnomalyActionRecord[] }>("GET", "/portcullis/v1/anomalies?account=acct-2")).actions.map((a) => a.id)).toEqual([suspended?.id]);
    expect((await otherAdmin.json<{ actions: AnomalyActionRecord[] }>("GET", "/portcullis/v1/anomalies")).actions.map((a) => a.id)).toEqual([alerted?.id]);
    expect(await codeOf(otherAdmin.json("GET", `/portcullis/v1/anomalies/${suspended?.id ?? ""}`))).toBe("ANOMALY_ACTION_NOT_FOUND");
    expect(await codeOf(otherAdmin.json("POST", `/portcullis/v1/anomalies/${suspended?.id ?? ""}/undo`))).toBe("ANOMALY_ACTION_NOT_FOUND");
    expect((await t.core.keys.get(victim.key.id)).status).toBe("suspended");
    expect(await codeOf(noScope.json("GET", "/portcullis/v1/anomalies"))).toBe("SCOPE_MISSING");

    // The account's own admin undoes it: the key is resumed, attributed to that admin key.
    const undone = await accountAdmin.json<AnomalyActionRecord>("POST", `/portcullis/v1/anomalies/${suspended?.id ?? ""}/undo`);
    expect(undone).toMatchObject({ id: suspended?.id, state: "undone", undoneBy: `key:${own.key.id}` });
    expect((await t.core.keys.get(victim.key.id)).status).toBe("active");
    const again = await operator.json("POST", `/portcullis/v1/anomalies/${suspended?.id ?? ""}/undo`).catch((e: unknown) => e);
    expect((again as PortcullisApiError).code).toBe("ANOMALY_ACTION_FINAL");
    expect((again as PortcullisApiError).status).toBe(409);
  });

  it("without a responder, the routes are not found", async () => {
    const t = await makeCore({ now: Date.now });
    const admin = new AdminApi({ core: t.core, logger: silentLogger() });
    const address = await admin.listen(0);
    cleanups.push(async () => {
      await admin.close(100);
      await t.cleanup();
    });
    const op = await t.createKey({ account: "ops", scopes: ["admin:*"], operator: true });
    const operator = createClient({ baseUrl: `http://127.0.0.1:${address.port}`, keyId: op.key.id, secret: op.secret ?? "" });
    expect(await codeOf(operator.json("GET", "/portcullis/v1/anomalies"))).toBe("ROUTE_NOT_FOUND");
  });
});

describe("portcullis anomalies (on the data directory)", () => {
  it("list, show and undo; refusals are coded", async () => {
    const { t, responder } = await setup();
    const victim = await t.createKey({ account: "acct-1", scopes: ["trade"] });
    const revoke = await responder.respond(score(victim.key.id, 99, Date.now()));
    const other = await t.createKey({ account: "acct-2", scopes: ["trade"] });
    const throttle = await responder.respond(score(other.key.id, 85, Date.now(), "acct-2"));

    const listed = await runCli(["anomalies", "list", "--data", t.dataDir, "--json"]);
    expect(listed.code, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as { actions: { id: string }[] }).actions.map((a) => a.id)).toEqual([throttle?.id, revoke?.id]);
    const byAccount = await runCli(["anomalies", "list", "--data", t.dataDir, "--account", "acct-1", "--state", "active", "--json"]);
    expect((JSON.parse(byAccount.stdout) as { actions: { id: string }[] }).actions.map((a) => a.id)).toEqual([revoke?.id]);
    const human = await runCli(["anomalies", "list", "--data", t.dataDir, "--key", victim.key.id]);
    expect(human.stdout).toContain(revoke?.id ?? "");
    expect(human.stdout).toContain("revoke");

    const shown = await runCli(["anomalies", "show", revoke?.id ?? "", "--data", t.dataDir]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain("revoke at");
    expect(shown.stdout).toContain("network.new: 203.0.113.0/24");

    const undone = await runCli(["anomalies", "undo", revoke?.id ?? "", "--data", t.dataDir, "--json"]);
    expect(undone.code, undone.stderr).toBe(0);
    expect(JSON.parse(undone.stdout)).toMatchObject({ id: revoke?.id, state: "undone" });
    expect((JSON.parse(undone.stdout) as { undoneBy: string }).undoneBy).toMatch(/^cli:/);
    expect((await t.core.keys.get(victim.key.id)).status).toBe("active");

    const again = await runCli(["anomalies", "undo", revoke?.id ?? "", "--data", t.dataDir, "--json"]);
    expect(again.code).toBe(1);
    expect(again.stderr + again.stdout).toContain("ANOMALY_ACTION_FINAL");
    const missing = await runCli(["anomalies", "show", "an_00000000000000000000000000000000", "--data", t.dataDir]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("ANOMALY_ACTION_NOT_FOUND");
    const bad = await runCli(["anomalies", "list", "--data", t.dataDir, "--state", "nope"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("VALIDATION_FAILED");
  });
});
