/**
 * The responder on a real data directory (SQLite, keyring, the real key service and audit log),
 * with a frozen clock: each action's effect on the key, no repeat and no weakening, escalation,
 * the revoke's grace and sweep, undo of each (and its refusal codes), and the audit entries.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { decodeEntry } from "../../src/audit/canonical.js";
import { verifyAudit } from "../../src/audit/verify.js";
import { DEFAULT_RESPONSES } from "../../src/anomaly/responses.js";
import { AnomalyResponder } from "../../src/anomaly/responder.js";
import { DEFAULT_BEHAVIOUR_SETTINGS } from "../../src/anomaly/responses.js";
import { webhookBody } from "../../src/anomaly/webhook.js";
import { PortcullisError } from "../../src/errors/catalogue.js";
import { valueOrThrow } from "../../src/errors/result.js";
import { parseCreateKeyInput } from "../../src/keys/input.js";
import { captureLogger } from "../support/gateway.js";
import { type AnomalyFixture, anomalyFixture, score } from "./support.js";

let f: AnomalyFixture;

afterEach(async () => {
  await f.cleanup();
});

const HOUR = 3_600_000;
const WITH_REVOKE = [...DEFAULT_RESPONSES, { minScore: 99, action: "revoke" as const, forMs: null }];

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof PortcullisError) return err.code;
    throw err;
  }
  return "resolved";
}

async function anomalyEntries(): Promise<Record<string, unknown>[]> {
  await f.audit.flush();
  return (await f.data.store.audit.query({ events: ["anomaly.action"], limit: 1000 }))
    .map((e) => decodeEntry(e.entry))
    .map((e) => ({ actor: e?.actor, key: e?.key, account: e?.account, ...(e?.detail ?? {}) }));
}

describe("each action's effect on the key", () => {
  it("record: stored, the key untouched, no alert", async () => {
    f = await anomalyFixture();
    const id = await f.key();
    const r = await f.responder.respond(score(id, 35, f.clock.ms));
    expect(r).toMatchObject({ action: "record", state: "active", keyId: id, account: "acct-1", score: 35, dueAt: null });
    expect(r?.id).toMatch(/^an_[0-9a-f]{32}$/);
    expect(await f.data.store.anomalies.get(r?.id ?? "")).toEqual(r);
    const key = await f.keys.get(id);
    expect(key.status).toBe("active");
    expect(key.risk).toBeNull();
    expect(f.alerts.sent).toEqual([]);
    // Below the record floor: nothing at all.
    expect(await f.responder.respond(score(id, 29, f.clock.ms + 120_000))).toBeNull();
  });

  it("alert: stored and sent to the webhook", async () => {
    f = await anomalyFixture();
    const id = await f.key();
    const r = await f.responder.respond(score(id, 55, f.clock.ms));
    expect(r?.action).toBe("alert");
    expect(f.alerts.sent.map((a) => [a.record.id, a.event])).toEqual([[r?.id, "anomaly.action"]]);
    expect((await f.keys.get(id)).risk).toBeNull();
  });

  it("step-up: the key's risk names the action and its reason, until 24 h later", async () => {
    f = await anomalyFixture();
    const id = await f.key();
    const r = await f.responder.respond(score(id, 75, f.clock.ms));
    expect(r?.action).toBe("step-up");
    const risk = (await f.keys.get(id)).risk;
    expect(risk).toMatchObject({ state: "step-up", actionId: r?.id, since: f.clock.ms, until: f.clock.ms + 24 * HOUR });
    expect(risk?.reason).toContain(r?.id);
    expect(risk?.reason).toContain("score 75");
    expect(risk?.reason).toContain("network.new 203.0.113.0/24");
    expect(f.alerts.sent).toHaveLength(1);
  });

  it("throttle: risk throttle until 1 h later", async () => {
    f = await anomalyFixture();
    const id = await f.key();
    const r = await f.responder.respond(score(id, 85, f.clock.ms));
    expect((await f.keys.get(id)).risk).toMatchObject({ state: "throttle", actionId: r?.id, until: f.clock.ms + HOUR });
  });

  it("suspend: the key is suspended with a reason naming the action and the score", async () => {
    f = await anomalyFixture();
    const id = await f.key();
    const r = await f.responder.respond(score(id, 96, f.clock.ms));
    const key = await f.keys.get(id);
    expect(key.status).toBe("suspended");
    expect(key.statusReason).toContain(r?.id);
    expect(key.statusReason).toContain("score 96");
    expect(f.alerts.sent.map((a) => a.record.action)).toEqual(["suspend"]);
  });

  it("revoke: suspended at once, revoked for good by the sweep once the grace has passed", async () => {
    f = await anomalyFixture({ responses: WITH_REVOKE });
    const id = await f.key();
    const r = await f.responder.respond(score(id, 99.5, f.clock.ms));
    expect(r).toMatchObject({ action: "revoke", state: "active", dueAt: f.clock.ms + 24 * HOUR });
    expect((await f.keys.get(id)).status).toBe("suspended");
    f.clock.advance(24 * HOUR - 1);
    expect(await f.responder.sweep(f.clock.ms)).toEqual([]);
    expect((await f.keys.get(id)).status).toBe("suspended");
    f.clock.advance(1);
    const done = await f.responder.sweep(f.clock.ms);
    expect(done.map((d) => [d.id, d.state])).toEqual([[r?.id, "done"]]);
    expect((await f.keys.get(id)).status).toBe("revoked");
    expect((await f.data.store.anomalies.get(r?.id ?? ""))?.state).toBe("done");
    // Carried out: final, and the sweep does not see it again.
    expect(await codeOf(f.responder.undo(r?.id ?? "", "cli:alice"))).toBe("ANOMALY_ACTION_FINAL");
    expect(await f.responder.sweep(f.clock.ms + HOUR)).toEqual([]);
  });

  it("a key that does not exist, or is revoked: nothing to do", async () => {
    f = await anomalyFixture();
    expect(await f.responder.respond(score("pck_test_v1_00000000000000000000000000000000", 96, f.clock.ms))).toBeNull();
    const id = await f.key();
    await f.keys.revoke(id, "test");
    expect(await f.responder.respond(score(id, 96, f.clock.ms))).toBeNull();
    expect(await f.data.store.anomalies.list()).toEqual([]);
  });

  it("disabled: nothing", async () => {
    f = await anomalyFixture({ enabled: false });
    const id = await f.key();
    expect(await f.responder.respond(score(id, 99, f.clock.ms))).toBeNull();
    expect((await f.keys.get(id)).status).toBe("active");
  });
});

describe("never repeats or weakens what is in force; escalates", () => {
  it("a throttled key is not throttled again, nor stepped up or alerted", async () => {
    f = await anomalyFixture();
    const id = await f.key();
    const first = await f.responder.respond(score(id, 85, f.clock.ms));
    for (const s of [85, 88, 75, 55, 35]) {
      f.clock.advance(61_000);
      expect(await f.responder.respond(score(id, s, f.clock.ms))).toBeNull();
    }
    expect((await f.data.store.anomalies.list({ keyId: id })).map((r) => r.id)).toEqual([first?.id]);
    expect((await f.keys.get(id)).risk?.actionId).toBe(first?.id);
  });

  it("concurrent scores of one key lead to one action", async () => {
    f = await anomalyFixture();
    const id = await f.key();
    const results = await Promise.all(Array.from({ length: 10 }, () => f.responder.respond(score(id, 85, f.clock.ms))));
    expect(results.filter((r) => r !== null)).toHaveLength(1);
    expect(await f.data.store.anomalies.list({ keyId: id })).toHaveLength(1);
  });

  it("escalates: alert, step-up, throttle, suspend, revoke; a suspended key only to a revoke, once", async () => {
    f = await anomalyFixture({ responses: WITH_REVOKE });
    const id = await f.key();
    const actions: (string | undefined)[] = [];
    for (const s of [55, 75, 85, 96, 96, 99, 99]) {
      actions.push((await f.responder.respond(score(id, s, f.clock.ms)))?.action);
      f.clock.advance(1000);
    }
    expect(actions).toEqual(["alert", "step-up", "throttle", "suspend", undefined, "revoke", undefined]);
    expect((await f.keys.get(id)).risk?.state).toBe("throttle");
  });

  it("record and alert: at most once a minute per key", async () => {
    f = await anomalyFixture();
    const id = await f.key();
    expect((await f.responder.respond(score(id, 55, f.clock.ms)))?.action).toBe("alert");
    f.clock.advance(30_000);
    expect(await f.responder.respond(score(id, 56, f.clock.ms))).toBeNull();
    expect(await f.responder.respond(score(id, 35, f.clock.ms))).toBeNull();
    f.clock.advance(31_000);
    expect((await f.responder.respond(score(id, 57, f.clock.ms)))?.action).toBe("alert");
    // A record after a recent record is quiet too; an alert after it is stronger and acts.
    const other = await f.key();
    expect((await f.responder.respond(score(other, 35, f.clock.ms)))?.action).toBe("record");
    expect(await f.responder.respond(score(other, 36, f.clock.ms))).toBeNull();
    expect((await f.responder.respond(score(other, 55, f.clock.ms)))?.action).toBe("alert");
  });

  it("a repeat of what this process stored within the minute reads neither the key nor the action store; another process finds it in the store", async () => {
    f = await anomalyFixture();
    const id = await f.key();
    expect((await f.responder.respond(score(id, 55, f.clock.ms)))?.action).toBe("alert");
    const list = vi.spyOn(f.data.store.anomalies, "list");
    const get = vi.spyOn(f.keys, "get");
    f.clock.advance(30_000);
    expect(await f.responder.respond(score(id, 56, f.clock.ms))).toBeNull();
    expect(await f.responder.respond(score(id, 35, f.clock.ms))).toBeNull();
    expect(list).not.toHaveBeenCalled();
    expect(get).not.toHaveBeenCalled();
    // Another process's responder over the same stores knows nothing of it but reads the store.
    const other = new AnomalyResponder({ settings: DEFAULT_BEHAVIOUR_SETTINGS, keys: f.keys, store: f.data.store.anomalies, audit: f.audit, alerts: f.alerts, now: f.clock.now });
    expect(await other.respond(score(id, 56, f.clock.ms))).toBeNull();
    expect(list).toHaveBeenCalledTimes(1);
    // A stronger action is never skipped.
    expect((await f.responder.respond(score(id, 75, f.clock.ms)))?.action).toBe("step-up");
    // Past the minute, an alert acts again (the step-up is in force: still nothing).
    f.clock.advance(61_000);
    expect(await f.responder.respond(score(id, 57, f.clock.ms))).toBeNull();
    expect(get).toHaveBeenCalled();
    const fresh = await f.key();
    expect((await f.responder.respond(score(fresh, 57, f.clock.ms)))?.action).toBe("alert");
    f.clock.advance(61_000);
    expect((await f.responder.respond(score(fresh, 57, f.clock.ms)))?.action).toBe("alert");
  });

  it("a lapsed risk state is none: the key can be throttled again", async () => {
    f = await anomalyFixture();
    const id = await f.key();
    const first = await f.responder.respond(score(id, 85, f.clock.ms));
    f.clock.advance(HOUR);
    const second = await f.responder.respond(score(id, 85, f.clock.ms));
    expect(second?.action).toBe("throttle");
    expect(second?.id).not.toBe(first?.id);
  });
});

describe("undo", () => {
  it("step-up and throttle: the risk state is cleared", async () => {
    f = await anomalyFixture();
    for (const s of [75, 85]) {
      const id = await f.key();
      const r = await f.responder.respond(score(id, s, f.clock.ms));
      const undone = await f.responder.undo(r?.id ?? "", "cli:alice");
      expect(undone).toMatchObject({ id: r?.id, state: "undone", undoneBy: "cli:alice", undoneAt: f.clock.ms });
      expect((await f.keys.get(id)).risk).toBeNull();
    }
  });

  it("a step-up replaced by a throttle: undoing the step-up leaves the throttle", async () => {
    f = await anomalyFixture();
    const id = await f.key();
    const stepUp = await f.responder.respond(score(id, 75, f.clock.ms));
    const throttle = await f.responder.respond(score(id, 85, f.clock.ms));
    await f.responder.undo(stepUp?.id ?? "", "cli:alice");
    expect((await f.keys.get(id)).risk?.actionId).toBe(throttle?.id);
  });

  it("suspend: the key is resumed; undo sends an alert of the undo", async () => {
    f = await anomalyFixture();
    const id = await f.key();
    const r = await f.responder.respond(score(id, 96, f.clock.ms));
    await f.responder.undo(r?.id ?? "", "key:pck_ops");
    expect((await f.keys.get(id)).status).toBe("active");
    expect(f.alerts.sent.map((a) => a.event)).toEqual(["anomaly.action", "anomaly.undo"]);
  });

  it("a revoke in its grace: resumed and never revoked", async () => {
    f = await anomalyFixture({ responses: WITH_REVOKE });
    const id = await f.key();
    const r = await f.responder.respond(score(id, 99, f.clock.ms));
    f.clock.advance(HOUR);
    await f.responder.undo(r?.id ?? "", "cli:alice");
    expect((await f.keys.get(id)).status).toBe("active");
    f.clock.advance(48 * HOUR);
    expect(await f.responder.sweep(f.clock.ms)).toEqual([]);
    expect((await f.keys.get(id)).status).toBe("active");
  });

  it("a suspend undone while a revoke of the key is in force: the key stays suspended until the revoke is undone too", async () => {
    f = await anomalyFixture({ responses: WITH_REVOKE });
    const id = await f.key();
    const suspend = await f.responder.respond(score(id, 96, f.clock.ms));
    const revoke = await f.responder.respond(score(id, 99, f.clock.ms));
    await f.responder.undo(suspend?.id ?? "", "cli:alice");
    expect((await f.keys.get(id)).status).toBe("suspended");
    await f.responder.undo(revoke?.id ?? "", "cli:alice");
    expect((await f.keys.get(id)).status).toBe("active");
  });

  it("refusals: unknown or malformed id (ANOMALY_ACTION_NOT_FOUND), undone twice (ANOMALY_ACTION_FINAL)", async () => {
    f = await anomalyFixture();
    const id = await f.key();
    const r = await f.responder.respond(score(id, 55, f.clock.ms));
    expect(await codeOf(f.responder.undo("an_00000000000000000000000000000000", "cli:alice"))).toBe("ANOMALY_ACTION_NOT_FOUND");
    expect(await codeOf(f.responder.undo("'; DROP TABLE anomaly_actions; --", "cli:alice"))).toBe("ANOMALY_ACTION_NOT_FOUND");
    expect(await codeOf(f.responder.get("an_x"))).toBe("ANOMALY_ACTION_NOT_FOUND");
    expect((await f.responder.undo(r?.id ?? "", "cli:alice")).state).toBe("undone");
    expect(await codeOf(f.responder.undo(r?.id ?? "", "cli:bob"))).toBe("ANOMALY_ACTION_FINAL");
    expect((await f.responder.get(r?.id ?? "")).undoneBy).toBe("cli:alice");
  });

  it("a key revoked meanwhile: the undo is recorded, nothing else to do", async () => {
    f = await anomalyFixture();
    const id = await f.key();
    const r = await f.responder.respond(score(id, 96, f.clock.ms));
    await f.keys.revoke(id, "test");
    expect((await f.responder.undo(r?.id ?? "", "cli:alice")).state).toBe("undone");
    expect((await f.keys.get(id)).status).toBe("revoked");
  });
});

describe("the audit log", () => {
  it("records every action and undo as anomaly.action with key, action id, score and top contributions; the chain verifies", async () => {
    f = await anomalyFixture({ responses: WITH_REVOKE });
    const id = await f.key();
    const throttle = await f.responder.respond(score(id, 85, f.clock.ms));
    const revoke = await f.responder.respond(score(id, 99, f.clock.ms));
    await f.responder.undo(throttle?.id ?? "", "cli:alice");
    f.clock.advance(25 * HOUR);
    await f.responder.sweep(f.clock.ms);
    const entries = await anomalyEntries();
    expect(entries).toHaveLength(4);
    expect(entries[0]).toMatchObject({ actor: "behaviour", key: id, account: "acct-1", actionId: throttle?.id, action: "throttle", score: 85, basis: "key", until: (throttle?.at ?? 0) + HOUR });
    expect(entries[0]?.contributions).toEqual([
      { feature: "network.new", observed: "203.0.113.0/24", baseline: "2 networks seen", points: 40 },
      { feature: "rate.1m", observed: "62 requests/min", baseline: "median 3.1/min, MAD 1.2", points: 30 },
      { feature: "symbol.new", observed: "XYZUSDT", baseline: "4 symbols traded", points: 15 },
    ]);
    expect(entries[1]).toMatchObject({ actor: "behaviour", actionId: revoke?.id, action: "revoke", dueAt: revoke?.dueAt });
    expect(entries[2]).toMatchObject({ actor: "cli:alice", actionId: throttle?.id, state: "undone" });
    expect(entries[3]).toMatchObject({ actor: "behaviour", actionId: revoke?.id, state: "done", revoked: true });
    // The key changes are audited by the store, in their transactions, attributed to the responder.
    const changes = (await f.data.store.audit.query({ key: id, events: ["key.*"], limit: 100 })).map((e) => [e.event, decodeEntry(e.entry)?.actor]);
    expect(changes).toEqual(
      expect.arrayContaining([
        ["key.risk", "behaviour"],
        ["key.suspend", "behaviour"],
        ["key.risk", "cli:alice"],
        ["key.revoke", "behaviour"],
      ]),
    );
    expect((await verifyAudit(f.data.store.audit)).ok).toBe(true);
  });
});

describe("secrets", () => {
  it("no log line, audit entry or webhook body carries the key's secret", async () => {
    f = await anomalyFixture({ responses: WITH_REVOKE });
    const { logger, lines } = captureLogger();
    const responder = new AnomalyResponder({ settings: { ...DEFAULT_BEHAVIOUR_SETTINGS, responses: WITH_REVOKE }, keys: f.keys, store: f.data.store.anomalies, audit: f.audit, alerts: f.alerts, logger, now: f.clock.now });
    const created = await f.keys.create(valueOrThrow(parseCreateKeyInput({ account: "acct-1", scopes: ["trade"] }, f.clock.ms)), "test");
    const secret = created.secret ?? "";
    expect(secret.length).toBeGreaterThan(20);
    for (const s of [35, 55, 75, 85, 96, 99]) await responder.respond(score(created.key.id, s, f.clock.ms));
    const [latest] = await responder.list({ keyId: created.key.id, limit: 1 });
    await responder.undo(latest?.id ?? "", "cli:alice");
    await responder.respond(score("pck_test_v1_00000000000000000000000000000000", 99, f.clock.ms));
    f.clock.advance(48 * HOUR);
    await responder.sweep(f.clock.ms);
    await f.audit.flush();
    expect(lines.length).toBeGreaterThan(5);
    const audit = (await f.data.store.audit.query({ limit: 1000 })).map((e) => e.entry);
    const bodies = f.alerts.sent.map((a) => webhookBody(a.record, a.event));
    for (const text of [...lines, ...audit, ...bodies]) expect(text).not.toContain(secret);
  });
});
