/**
 * Held operations' envelopes (the exact held request, the upstream's answer: docs/approvals.md)
 * under KEK custody: a rotation rewraps them, `custody status` counts them, the KEK floor counts
 * them and checks every write of one. Before, a rotation retired the version a pending operation's
 * request was sealed under, and its release failed (recorded as a 500, never sent).
 */
import { afterEach, describe, expect, it } from "vitest";
import { Envelope, HELD_OUTCOME_PURPOSE, HELD_REQUEST_PURPOSE } from "../../src/custody/envelope.js";
import { custodyStatus, rotateKek } from "../../src/custody/rotation.js";
import { openDataDir, type OpenDataDir } from "../../src/core/data-dir.js";
import { OperatorError } from "../../src/errors/catalogue.js";
import { newOperationId, type PolicySubject } from "../../src/contract/policy.js";
import { HoldService } from "../../src/holds/service.js";
import type { HoldStore } from "../../src/storage/types.js";
import { type HoldsFixture, HoldWithdrawals, Releases, WITHDRAWAL, approver, heldRequest, holdsFixture } from "../approvals/support.js";

let fx: HoldsFixture;
const opened: OpenDataDir[] = [];
afterEach(async () => {
  for (const d of opened.splice(0)) await d.close();
  await fx.cleanup();
});

const alice = approver("alice");
const bob = approver("bob");

async function register(f: HoldsFixture): Promise<void> {
  await f.holds.addApprover("alice", ["treasury"], alice.publicPem, "test");
  await f.holds.addApprover("bob", ["treasury"], bob.publicPem, "test");
}

async function approve(holds: HoldService, id: string, who: ReturnType<typeof approver>): Promise<string> {
  const digest = (await holds.view(id)).digest;
  return (await holds.decide(id, who.name, "approve", digest, who.sign("approve", digest))).state;
}

/** Another process's handle on the fixture's data directory (the rotator). */
async function other(f: HoldsFixture): Promise<OpenDataDir> {
  const d = await openDataDir(f.dir);
  opened.push(d);
  return d;
}

/** Holds a withdrawal that no key initiated (an operator's: nothing to check at claim). */
async function holdByOperator(f: HoldsFixture): Promise<string> {
  const id = newOperationId();
  const subject: PolicySubject = { operation: WITHDRAWAL, account: "acct-1", keyId: null, client: "127.0.0.1", at: f.clock.ms };
  await f.holds.holdRequest(id, subject, f.policy.decide(subject, id), heldRequest(), null);
  await f.holds.idle();
  return id;
}

function present<T>(value: T | null | undefined): T {
  if (value === null || value === undefined) throw new Error("expected a value");
  return value;
}

async function refusedCode(p: Promise<unknown>): Promise<string> {
  const err: unknown = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(OperatorError);
  return (err as OperatorError).code;
}

describe("held operations under KEK rotation", () => {
  it("a pending operation survives a rotation that retires the old version, and is released with its exact request; its answer survives the next", async () => {
    fx = await holdsFixture();
    await register(fx);
    const releases = new Releases();
    fx.holds.setRequestReleaser(releases.releaser);
    const request = heldRequest("coin=USDT&amount=2500&address=0xaa&network=ETH&name=rotated");
    const id = await fx.hold(await fx.key("mallory"), "mallory", request);
    expect(Envelope.kekVersionOf(present(await fx.data.store.holds.hold(id)).held)).toBe(1);

    const rotated = await rotateKek(fx.dir, fx.data.store, fx.data.envelope, { settleMs: 0 });
    // The key's secret and the held request.
    expect(rotated).toMatchObject({ previous: [1], active: 2, rewrapped: 2, retired: [1], failures: [] });
    expect((await fx.data.kek.versions()).held).toEqual([2]);
    const row = present(await fx.data.store.holds.hold(id));
    expect(Envelope.kekVersionOf(row.held)).toBe(2);

    expect(await approve(fx.holds, id, alice)).toBe("pending");
    expect(await approve(fx.holds, id, bob)).toBe("ready");
    await fx.holds.idle();
    await fx.holds.tick();
    expect(releases.count(id)).toBe(1);
    const sent = present(releases.calls[0]).request;
    expect(sent).toEqual(request);
    expect(sent.body.equals(request.body)).toBe(true);
    expect(await fx.holds.view(id)).toMatchObject({ state: "released", outcome: { status: 200, body: '{"id":"venue-1"}' } });
    expect(Envelope.kekVersionOf(present(present(await fx.data.store.holds.hold(id)).outcome))).toBe(2);

    // The recorded answer is an envelope too: the next rotation rewraps it (and the request).
    const again = await rotateKek(fx.dir, fx.data.store, fx.data.envelope, { settleMs: 0 });
    expect(again).toMatchObject({ previous: [2], active: 3, rewrapped: 3, retired: [2], failures: [] });
    const after = present(await fx.data.store.holds.hold(id));
    expect([Envelope.kekVersionOf(after.held), Envelope.kekVersionOf(present(after.outcome))]).toEqual([3, 3]);
    expect(await fx.holds.view(id)).toMatchObject({ state: "released", outcome: { status: 200, body: '{"id":"venue-1"}' } });
    expect((await fx.data.envelope.decrypt(after.held, HELD_REQUEST_PURPOSE, id)).length).toBeGreaterThan(0);
  });

  it("custody status counts held requests and answers, by kind and by version", async () => {
    fx = await holdsFixture({}, new HoldWithdrawals([], 0));
    const releases = new Releases();
    fx.holds.setRequestReleaser(releases.releaser);
    const key = await fx.key("mallory");
    const released = await fx.hold(key, "mallory");
    await fx.holds.idle();
    await fx.holds.tick();
    expect((await fx.holds.view(released)).state).toBe("released");
    fx.holds.setRequestReleaser(null);
    await fx.hold(key, "mallory");
    const status = await custodyStatus(fx.data.store, fx.data.envelope);
    expect(status.envelopes).toMatchObject({
      total: 4,
      byVersion: { "1": 4 },
      byKind: { "key-secret": 1, "key-passphrase": 0, "held-request": 2, "held-outcome": 1, "stored-secret": 0, "signing-key": 0, "hpke-private": 0 },
      missingVersions: [],
      malformed: 0,
    });
  });

  it("a hold and an outcome sealed under the old version while a rotation retires it are refused, sealed again, and open", async () => {
    fx = await holdsFixture({}, new HoldWithdrawals([], 0));
    const rotator = await other(fx);
    const key = await fx.key("mallory");
    // Between the wrap (under version 1) and the store write, another process rotates and retires
    // version 1; each write then reaches the store.
    let inserts = 0;
    let finishes = 0;
    const store = Object.create(fx.data.store.holds) as HoldStore;
    store.insertHold = async (row, actor) => {
      if (inserts++ === 0) await rotateKek(fx.dir, rotator.store, rotator.envelope, { settleMs: 0 });
      return fx.data.store.holds.insertHold(row, actor);
    };
    store.finish = async (...args) => {
      if (finishes++ === 0) await rotateKek(fx.dir, rotator.store, rotator.envelope, { settleMs: 0 });
      return fx.data.store.holds.finish(...args);
    };
    const releases = new Releases();
    const holds = new HoldService({ store, envelope: fx.data.envelope, now: fx.clock.now, pollMs: 1_000_000 });
    holds.setRequestReleaser(releases.releaser);
    try {
      const request = heldRequest("coin=USDT&amount=1&address=0xbb&network=ETH");
      const id = newOperationId();
      const subject: PolicySubject = { operation: WITHDRAWAL, account: "acct-1", keyId: key, client: "127.0.0.1", at: fx.clock.ms };
      await holds.holdRequest(id, subject, fx.policy.decide(subject, id), request, "mallory");
      expect(inserts).toBe(2); // refused once (sealed under version 1, retired), then stored
      expect(await rotator.store.envelopes.kekFloor()).toBe(2);
      expect(Envelope.kekVersionOf(present(await rotator.store.holds.hold(id)).held)).toBe(2);

      await holds.tick();
      await holds.idle();
      expect(releases.count(id)).toBe(1);
      expect(present(releases.calls[0]).request).toEqual(request);
      expect(finishes).toBe(2); // refused once (sealed under version 2, retired), then recorded
      const done = present(await rotator.store.holds.hold(id));
      expect(done.state).toBe("released");
      expect([Envelope.kekVersionOf(done.held), Envelope.kekVersionOf(present(done.outcome))]).toEqual([3, 3]);
      expect(JSON.parse((await rotator.envelope.decrypt(present(done.outcome), HELD_OUTCOME_PURPOSE, id)).toString("utf8"))).toMatchObject({ body: '{"id":"venue-1"}' });
      expect((await rotator.kek.versions()).held).toEqual([3]);
    } finally {
      await holds.stop();
    }
  });

  it("a rotation that retires the version between the claim and the decrypt does not fail the release", async () => {
    fx = await holdsFixture({}, new HoldWithdrawals([], 0));
    const key = await fx.key("mallory");
    const request = heldRequest("coin=USDT&amount=3&address=0xee&network=ETH");
    let claims = 0;
    const store = Object.create(fx.data.store.holds) as HoldStore;
    // The claim reads the row (its request under version 1); a rotation running in the same process
    // (a gateway may run it in the background) then rewraps it and retires version 1 before the
    // release decrypts what the claim read. (Another process's keyring provider would still hold
    // version 1 in memory; a token would not.)
    store.claim = async (...args) => {
      const claimed = await fx.data.store.holds.claim(...args);
      if (claims++ === 0) await rotateKek(fx.dir, fx.data.store, fx.data.envelope, { settleMs: 0 });
      return claimed;
    };
    const releases = new Releases();
    const holds = new HoldService({ store, envelope: fx.data.envelope, now: fx.clock.now, pollMs: 1_000_000 });
    try {
      const id = newOperationId();
      const subject: PolicySubject = { operation: WITHDRAWAL, account: "acct-1", keyId: key, client: "127.0.0.1", at: fx.clock.ms };
      await holds.holdRequest(id, subject, fx.policy.decide(subject, id), request, "mallory");
      await holds.idle();
      holds.setRequestReleaser(releases.releaser);
      await holds.tick();
      expect(claims).toBe(1);
      expect((await fx.data.kek.versions()).held).toEqual([2]);
      expect(releases.count(id)).toBe(1);
      expect(present(releases.calls[0]).request).toEqual(request);
      expect(await holds.view(id)).toMatchObject({ state: "released", outcome: { status: 200, body: '{"id":"venue-1"}' } });
    } finally {
      await holds.stop();
    }
  });
});

describe("held operations and the KEK floor", () => {
  it("the floor is not raised while a held request or answer is below it, and `below` counts them", async () => {
    fx = await holdsFixture({}, new HoldWithdrawals([], 0));
    const released = await holdByOperator(fx);
    // Released by hand: claim, then record an answer under version 1.
    await fx.data.store.holds.advance(fx.clock.ms, 60_000);
    expect((await fx.data.store.holds.claim(released, "p", fx.clock.ms)).ok).toBe(true);
    const answer = await fx.data.envelope.encrypt(Buffer.from('{"body":"","contentType":null}'), HELD_OUTCOME_PURPOSE, released);
    expect(await fx.data.store.holds.finish(released, "p", fx.clock.ms, 200, answer)).toBe(true);
    await holdByOperator(fx);
    // A new version, active, but nothing rewrapped under it: two requests and one answer are below.
    expect(await fx.data.kek.addVersion()).toBe(2);
    expect(await fx.data.store.envelopes.raiseKekFloor(2)).toEqual({ raised: false, floor: 0, below: 3 });
    expect(await fx.data.store.envelopes.kekFloor()).toBe(0);
    // Rewrapped one by one (compare-and-swap), the count goes down; at zero the floor is raised.
    const rows = await fx.data.store.envelopes.heldEnvelopes("", 10);
    expect(rows.map((r) => r.outcome !== null).sort()).toEqual([false, true]);
    for (const r of rows) {
      const next = present(await fx.data.envelope.rewrap(r.held, HELD_REQUEST_PURPOSE, r.id, 2));
      // A stale expectation replaces nothing.
      expect(await fx.data.store.envelopes.replaceHeldEnvelopes([{ id: r.id, column: "held", expected: next, next }])).toBe(0);
      expect(await fx.data.store.envelopes.replaceHeldEnvelopes([{ id: r.id, column: "held", expected: r.held, next }])).toBe(1);
    }
    expect(await fx.data.store.envelopes.raiseKekFloor(2)).toEqual({ raised: false, floor: 0, below: 1 });
    const withAnswer = present(rows.find((r) => r.outcome !== null));
    const outcome = present(withAnswer.outcome);
    const rewrapped = present(await fx.data.envelope.rewrap(outcome, HELD_OUTCOME_PURPOSE, withAnswer.id, 2));
    expect(await fx.data.store.envelopes.replaceHeldEnvelopes([{ id: withAnswer.id, column: "outcome", expected: outcome, next: rewrapped }])).toBe(1);
    expect(await fx.data.store.envelopes.raiseKekFloor(2)).toEqual({ raised: true, floor: 2, below: 0 });
    expect((await fx.holds.view(withAnswer.id)).outcome).toMatchObject({ status: 200, body: "" });
  });

  it("every write of a held envelope under a version below the floor is refused with CUSTODY_KEK_RETIRED, in its transaction", async () => {
    fx = await holdsFixture({}, new HoldWithdrawals([], 0));
    const id = await holdByOperator(fx);
    const stored = present(await fx.data.store.holds.hold(id));
    await fx.data.store.holds.advance(fx.clock.ms, 60_000);
    expect((await fx.data.store.holds.claim(id, "p", fx.clock.ms)).ok).toBe(true);
    // Sealed under version 1, which the rotation then retires.
    const fresh = newOperationId();
    const v1Held = await fx.data.envelope.encrypt(Buffer.from("a request"), HELD_REQUEST_PURPOSE, fresh);
    const v1Outcome = await fx.data.envelope.encrypt(Buffer.from('{"body":"","contentType":null}'), HELD_OUTCOME_PURPOSE, id);
    expect(await rotateKek(fx.dir, fx.data.store, fx.data.envelope, { settleMs: 0 })).toMatchObject({ active: 2, retired: [1] });
    expect(await fx.data.store.envelopes.kekFloor()).toBe(2);

    expect(await refusedCode(fx.data.store.holds.insertHold({ ...stored, id: fresh, held: v1Held }, "test"))).toBe("CUSTODY_KEK_RETIRED");
    expect(await fx.data.store.holds.hold(fresh)).toBeUndefined();
    expect((await fx.data.store.audit.query({ limit: 1000 })).filter((e) => e.event === "operation.hold")).toHaveLength(1);
    expect(await refusedCode(fx.data.store.holds.finish(id, "p", fx.clock.ms, 200, v1Outcome))).toBe("CUSTODY_KEK_RETIRED");
    expect(present(await fx.data.store.holds.hold(id))).toMatchObject({ state: "releasing", outcome: null });
    const current = present(await fx.data.store.holds.hold(id)).held;
    expect(await refusedCode(fx.data.store.envelopes.replaceHeldEnvelopes([{ id, column: "held", expected: current, next: v1Held }]))).toBe("CUSTODY_KEK_RETIRED");
    expect(present(await fx.data.store.holds.hold(id)).held.equals(current)).toBe(true);
    // Under the active version, the same writes are taken.
    const v2Outcome = await fx.data.envelope.encrypt(Buffer.from('{"body":"","contentType":null}'), HELD_OUTCOME_PURPOSE, id);
    expect(await fx.data.store.holds.finish(id, "p", fx.clock.ms, 200, v2Outcome)).toBe(true);
  });
});
