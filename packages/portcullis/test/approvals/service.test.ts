/**
 * Held operations and approvals on the real SQLite store: every refusal the issue names (self-
 * approval, another digest, expired, outside the group), two tiers, rejection, cancellation during
 * the delay, revocation and suspension, a restart between the last approval and the release, and
 * a release interrupted mid-way (unknown, never re-sent).
 */
import { afterEach, describe, expect, it } from "vitest";
import { HoldService } from "../../src/holds/service.js";
import { parseCreateKeyInput } from "../../src/keys/input.js";
import { valueOrThrow } from "../../src/errors/result.js";
import type { PortcullisError } from "../../src/errors/catalogue.js";
import { type HoldsFixture, HoldWithdrawals, Releases, approver, holdsFixture } from "./support.js";

let fx: HoldsFixture;
afterEach(async () => {
  await fx.cleanup();
});

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return (err as PortcullisError).code;
  }
  return "resolved";
}

const alice = approver("alice");
const bob = approver("bob");
const carol = approver("carol");
const dave = approver("dave");

async function register(f: HoldsFixture): Promise<void> {
  await f.holds.addApprover("alice", ["treasury"], alice.publicPem, "test");
  await f.holds.addApprover("bob", ["treasury"], bob.publicPem, "test");
  await f.holds.addApprover("carol", ["treasury", "risk"], carol.publicPem, "test");
  await f.holds.addApprover("dave", ["risk"], dave.publicPem, "test");
}

async function approve(f: HoldsFixture, id: string, who: ReturnType<typeof approver>, holds = f.holds): Promise<string> {
  const digest = (await holds.view(id)).digest;
  return (await holds.decide(id, who.name, "approve", digest, who.sign("approve", digest))).state;
}

describe("approvers", () => {
  it("are registered with Ed25519 keys only, in groups, and removed", async () => {
    fx = await holdsFixture();
    await register(fx);
    expect((await fx.holds.approvers()).map((a) => a.name)).toEqual(["alice", "bob", "carol", "dave"]);
    // The same person and key in another group: added to it.
    expect((await fx.holds.addApprover("alice", ["risk"], alice.publicPem, "test")).groups).toEqual(["risk", "treasury"]);
    expect(await code(fx.holds.addApprover("alice", ["risk"], bob.publicPem, "test"))).toBe("APPROVER_EXISTS");
    expect(await code(fx.holds.addApprover("eve", ["risk"], "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----", "test"))).toBe("VALIDATION_FAILED");
    expect(await code(fx.holds.addApprover("bad name!", ["risk"], alice.publicPem, "test"))).toBe("VALIDATION_FAILED");
    expect(await code(fx.holds.addApprover("eve", [], alice.publicPem, "test"))).toBe("VALIDATION_FAILED");
    await fx.holds.removeApprover("dave", "test");
    expect(await code(fx.holds.removeApprover("dave", "test"))).toBe("APPROVER_NOT_FOUND");
    const events = (await fx.data.store.audit.query({ limit: 1000 })).map((r) => r.event);
    expect(events.filter((e) => e === "approver.add")).toHaveLength(5);
    expect(events).toContain("approver.remove");
  });
});

describe("approving a held withdrawal", () => {
  it("two approvals of the group make it ready; it is released once, and its answer recorded", async () => {
    fx = await holdsFixture();
    await register(fx);
    const releases = new Releases();
    fx.holds.setRequestReleaser(releases.releaser);
    const key = await fx.key("mallory");
    const id = await fx.hold(key, "mallory");
    const view = await fx.holds.view(id);
    expect(view).toMatchObject({ state: "pending", kind: "withdraw", keyId: key, owner: "mallory", required: { approvals: [{ group: "treasury", count: 2, have: 0 }], notBefore: null } });
    const row = await fx.holds.store.hold(id);
    if (row === undefined) throw new Error("not stored");
    expect(view.digest).toBe(HoldService.digestOf(row));
    expect(await approve(fx, id, alice)).toBe("pending");
    expect(await approve(fx, id, bob)).toBe("ready");
    await fx.holds.tick();
    await fx.holds.tick();
    expect(releases.count(id)).toBe(1);
    expect(releases.calls[0]?.request.body.toString()).toBe("coin=USDT&amount=2500&address=0xaa&network=ETH");
    const released = await fx.holds.view(id);
    expect(released).toMatchObject({ state: "released", outcome: { status: 200, body: '{"id":"venue-1"}' } });
    expect(released.approvals.map((a) => a.approver)).toEqual(["alice", "bob"]);
    const events = (await fx.data.store.audit.query({ limit: 1000 })).map((r) => r.event);
    expect(events).toEqual(expect.arrayContaining(["operation.hold", "approval.sign", "operation.ready", "operation.release"]));
  });

  it("refuses self-approval by the initiating key's owner", async () => {
    fx = await holdsFixture();
    await register(fx);
    const id = await fx.hold(await fx.key("alice"), "alice");
    expect(await code(approve(fx, id, alice))).toBe("APPROVAL_SELF");
    expect((await fx.holds.view(id)).approvals).toEqual([]);
  });

  it("refuses an approval over another digest, and a signature over another digest", async () => {
    fx = await holdsFixture();
    await register(fx);
    const key = await fx.key(null);
    const id = await fx.hold(key, null);
    const other = await fx.hold(key, null);
    const digest = (await fx.holds.view(id)).digest;
    const otherDigest = (await fx.holds.view(other)).digest;
    expect(otherDigest).not.toBe(digest);
    // Signed what another operation showed, and says so: refused before the signature is looked at.
    expect(await code(fx.holds.decide(id, "alice", "approve", otherDigest, alice.sign("approve", otherDigest)))).toBe("APPROVAL_DIGEST_MISMATCH");
    // Claims this digest but signed another one (or the other decision, or with another key).
    expect(await code(fx.holds.decide(id, "alice", "approve", digest, alice.sign("approve", otherDigest)))).toBe("APPROVAL_SIGNATURE_INVALID");
    expect(await code(fx.holds.decide(id, "alice", "approve", digest, alice.sign("reject", digest)))).toBe("APPROVAL_SIGNATURE_INVALID");
    expect(await code(fx.holds.decide(id, "alice", "approve", digest, bob.sign("approve", digest)))).toBe("APPROVAL_SIGNATURE_INVALID");
    expect(await code(fx.holds.decide(id, "alice", "approve", digest, "garbage"))).toBe("APPROVAL_SIGNATURE_INVALID");
    expect(await code(fx.holds.decide(id, "nobody", "approve", digest, alice.sign("approve", digest)))).toBe("APPROVER_NOT_FOUND");
    expect(await code(fx.holds.decide("op_ffffffffffffffffffffffffffffffff", "alice", "approve", digest, alice.sign("approve", digest)))).toBe("OPERATION_NOT_FOUND");
    expect(await code(fx.holds.decide("../../etc", "alice", "approve", digest, alice.sign("approve", digest)))).toBe("OPERATION_NOT_FOUND");
    expect((await fx.holds.view(id)).approvals).toEqual([]);
  });

  it("refuses an expired approval, and the loop expires the operation (and the policy forgets it)", async () => {
    fx = await holdsFixture({ approvalTtlMs: 60_000 });
    await register(fx);
    const id = await fx.hold(await fx.key(null), null);
    expect(await approve(fx, id, alice)).toBe("pending");
    fx.clock.advance(60_000);
    expect(await code(approve(fx, id, bob))).toBe("APPROVAL_EXPIRED");
    await fx.holds.tick();
    expect((await fx.holds.view(id)).state).toBe("expired");
    expect(fx.policy.forgotten).toEqual([id]);
    expect(await code(approve(fx, id, bob))).toBe("OPERATION_STATE_CONFLICT");
  });

  it("refuses an approver outside the group, and a second decision by the same person", async () => {
    fx = await holdsFixture();
    await register(fx);
    const id = await fx.hold(await fx.key(null), null);
    expect(await code(approve(fx, id, dave))).toBe("APPROVAL_NOT_IN_GROUP");
    expect(await approve(fx, id, alice)).toBe("pending");
    expect(await code(approve(fx, id, alice))).toBe("APPROVAL_DUPLICATE");
  });

  it("two tiers need distinct people: one in both groups counts once", async () => {
    fx = await holdsFixture({}, new HoldWithdrawals([{ group: "treasury", count: 1 }, { group: "risk", count: 1 }]));
    await register(fx);
    const releases = new Releases();
    fx.holds.setRequestReleaser(releases.releaser);
    const id = await fx.hold(await fx.key(null), null);
    // carol is in both groups: her approval fills the treasury tier only.
    expect(await approve(fx, id, carol)).toBe("pending");
    expect((await fx.holds.view(id)).required.approvals).toEqual([{ group: "treasury", count: 1, have: 1 }, { group: "risk", count: 1, have: 0 }]);
    expect(await code(approve(fx, id, alice))).toBe("APPROVAL_NOT_IN_GROUP");
    expect(await approve(fx, id, dave)).toBe("ready");
    await fx.holds.tick();
    expect(releases.count(id)).toBe(1);
  });

  it("a rejection rejects (and the policy forgets it); configured otherwise, it is only recorded", async () => {
    fx = await holdsFixture();
    await register(fx);
    const id = await fx.hold(await fx.key(null), null);
    const digest = (await fx.holds.view(id)).digest;
    expect(await code(fx.holds.decide(id, "alice", "reject", digest, alice.sign("reject", digest), "x".repeat(257)))).toBe("VALIDATION_FAILED");
    const rejected = await fx.holds.decide(id, "alice", "reject", digest, alice.sign("reject", digest), "unknown address");
    expect(rejected).toMatchObject({ state: "rejected", reason: "rejected by alice: unknown address" });
    await fx.holds.tick();
    expect(fx.policy.forgotten).toEqual([id]);
    expect(await code(approve(fx, id, bob))).toBe("OPERATION_STATE_CONFLICT");
    await fx.cleanup();

    fx = await holdsFixture({ rejectCancels: false });
    await register(fx);
    const id2 = await fx.hold(await fx.key(null), null);
    const d2 = (await fx.holds.view(id2)).digest;
    expect((await fx.holds.decide(id2, "alice", "reject", d2, alice.sign("reject", d2))).state).toBe("pending");
    expect(await approve(fx, id2, bob)).toBe("pending");
    expect(await approve(fx, id2, carol)).toBe("ready");
  });
});

describe("delays and cancellation", () => {
  it("the initiator cancels during the delay; another key cannot even see it; it is never released", async () => {
    fx = await holdsFixture({}, new HoldWithdrawals([], 3_600_000));
    const releases = new Releases();
    fx.holds.setRequestReleaser(releases.releaser);
    const key = await fx.key(null);
    const other = await fx.key(null);
    const id = await fx.hold(key, null);
    expect((await fx.holds.view(id, key)).required.notBefore).toBe(fx.clock.ms + 3_600_000);
    expect(await code(fx.holds.view(id, other))).toBe("OPERATION_NOT_FOUND");
    expect(await code(fx.holds.cancel(id, other, `key:${other}`))).toBe("OPERATION_NOT_FOUND");
    expect((await fx.holds.cancel(id, key, `key:${key}`)).state).toBe("cancelled");
    expect(await code(fx.holds.cancel(id, key, `key:${key}`))).toBe("OPERATION_STATE_CONFLICT");
    fx.clock.advance(3_600_000);
    await fx.holds.tick();
    expect(releases.calls).toEqual([]);
    expect(fx.policy.forgotten).toEqual([id]);
  });

  it("a delay alone: released by the loop once it is over, not before", async () => {
    fx = await holdsFixture({}, new HoldWithdrawals([], 60_000));
    const releases = new Releases();
    fx.holds.setRequestReleaser(releases.releaser);
    const id = await fx.hold(await fx.key(null), null);
    await fx.holds.tick();
    expect(releases.calls).toEqual([]);
    fx.clock.advance(59_999);
    await fx.holds.tick();
    expect(releases.calls).toEqual([]);
    fx.clock.advance(1);
    await fx.holds.tick();
    expect(releases.count(id)).toBe(1);
  });
});

describe("revoking or suspending the initiating key", () => {
  for (const action of ["revoke", "suspend"] as const) {
    it(`${action}: cancels its pending and ready operations in the key change's transaction`, async () => {
      fx = await holdsFixture();
      await register(fx);
      const releases = new Releases();
      const key = await fx.key(null);
      const pending = await fx.hold(key, null);
      const ready = await fx.hold(key, null);
      await approve(fx, ready, alice);
      expect(await approve(fx, ready, bob)).toBe("ready");
      const otherKey = await fx.key(null);
      const unrelated = await fx.hold(otherKey, null);
      await (action === "revoke" ? fx.keys.revoke(key, "test", "stolen") : fx.keys.suspend(key, "test", "investigating"));
      expect((await fx.holds.view(pending)).state).toBe("cancelled");
      expect((await fx.holds.view(ready)).reason).toBe(`key ${action === "revoke" ? "revoked" : "suspended"}`);
      expect((await fx.holds.view(unrelated)).state).toBe("pending");
      fx.holds.setRequestReleaser(releases.releaser);
      await fx.holds.tick();
      expect(releases.calls).toEqual([]);
      expect(fx.policy.forgotten.sort()).toEqual([pending, ready].sort());
    });
  }

  it("a key that expired after its operation was approved: the claim cancels it", async () => {
    fx = await holdsFixture();
    await register(fx);
    const releases = new Releases();
    fx.holds.setRequestReleaser(releases.releaser);
    const key = (await fx.keys.create(valueOrThrow(parseCreateKeyInput({ account: "acct-1", scopes: ["withdraw"], expires: new Date(fx.clock.ms + 60_000).toISOString() }, fx.clock.ms)), "test")).key.id;
    const id = await fx.hold(key, null);
    await approve(fx, id, alice);
    fx.clock.advance(60_000);
    await approve(fx, id, bob);
    await fx.holds.tick();
    expect(releases.calls).toEqual([]);
    expect((await fx.holds.view(id)).state).toBe("cancelled");
  });
});

describe("exactly once across restarts", () => {
  it("a restart between the last approval and the release: the new process releases it, once", async () => {
    fx = await holdsFixture();
    await register(fx);
    const id = await fx.hold(await fx.key(null), null);
    // This process (like the CLI) has no releaser: the last approval leaves it ready.
    await approve(fx, id, alice);
    expect(await approve(fx, id, bob)).toBe("ready");
    await fx.holds.tick();
    expect((await fx.holds.view(id)).state).toBe("ready");
    await fx.holds.stop();
    // A new process on the same data directory: its own connection, its own service.
    const restarted = await fx.open();
    const releases = new Releases();
    restarted.holds.setRequestReleaser(releases.releaser);
    await restarted.holds.tick();
    await restarted.holds.tick();
    expect(releases.count(id)).toBe(1);
    expect((await restarted.holds.view(id)).state).toBe("released");
  });

  it("an approval that lands while the process stops (a drain) leaves the operation ready: nothing is sent, the next process releases it once", async () => {
    fx = await holdsFixture();
    await register(fx);
    const releases = new Releases();
    fx.holds.setRequestReleaser(releases.releaser);
    const id = await fx.hold(await fx.key(null), null);
    expect(await approve(fx, id, alice)).toBe("pending");
    // SIGTERM: the release loop stops before the listeners close; requests in flight still finish.
    await fx.holds.stop();
    expect(await approve(fx, id, bob)).toBe("ready");
    await fx.holds.idle();
    expect(releases.calls).toEqual([]);
    expect((await fx.holds.view(id)).state).toBe("ready");
    // A claim from a release that had started before the stop is not taken either.
    await fx.holds.release(id);
    expect(releases.calls).toEqual([]);
    const restarted = await fx.open();
    const next = new Releases();
    restarted.holds.setRequestReleaser(next.releaser);
    await restarted.holds.tick();
    await restarted.holds.tick();
    expect(next.count(id)).toBe(1);
    expect((await restarted.holds.view(id)).state).toBe("released");
  });

  it("a process that died mid-release: after the lease the operation is unknown, and never sent again", async () => {
    fx = await holdsFixture({ leaseMs: 30_000 });
    await register(fx);
    const id = await fx.hold(await fx.key(null), null);
    await approve(fx, id, alice);
    await approve(fx, id, bob);
    // The dead process claimed it (and may or may not have sent it).
    expect((await fx.holds.store.claim(id, "proc_dead", fx.clock.ms)).ok).toBe(true);
    const next = await fx.open();
    const releases = new Releases();
    next.holds.setRequestReleaser(releases.releaser);
    await next.holds.tick();
    expect((await next.holds.view(id)).state).toBe("releasing");
    fx.clock.advance(30_000);
    await next.holds.tick();
    await next.holds.tick();
    expect((await next.holds.view(id)).state).toBe("unknown");
    expect(releases.calls).toEqual([]);
    // Not forgotten either: the value may have left.
    expect(fx.policy.forgotten).toEqual([]);
    // The dead process's own late outcome is still recorded, if it ever comes.
    expect(await fx.holds.store.finish(id, "proc_dead", fx.clock.ms, 200, Buffer.from("x"))).toBe(true);
    expect(await fx.holds.store.finish(id, "proc_dead", fx.clock.ms, 200, Buffer.from("x"))).toBe(false);
  });

  it("two processes on one data directory release every operation exactly once", async () => {
    fx = await holdsFixture();
    await register(fx);
    const key = await fx.key(null);
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const id = await fx.hold(key, null);
      await approve(fx, id, alice);
      await approve(fx, id, bob);
      ids.push(id);
    }
    const a = await fx.open();
    const b = await fx.open();
    const releases = new Releases();
    a.holds.setRequestReleaser(releases.releaser);
    b.holds.setRequestReleaser(releases.releaser);
    await Promise.all([a.holds.tick(), b.holds.tick(), a.holds.tick(), b.holds.tick(), ...ids.map((id) => a.holds.release(id)), ...ids.map((id) => b.holds.release(id))]);
    for (const id of ids) expect(releases.count(id)).toBe(1);
    expect(releases.calls).toHaveLength(ids.length);
  });
});

describe("governed changes (ChangeHolder)", () => {
  it("a held change is handed to the releaser registered for its kind, once, with its payload; its result recorded", async () => {
    fx = await holdsFixture();
    await register(fx);
    const applied: unknown[] = [];
    fx.holds.onRelease("address.add", (payload) => {
      applied.push(payload);
      return Promise.resolve({ added: true });
    });
    const subject = {
      operation: { kind: "address.add" as const, account: "acct-1", asset: "USDT", address: "0xbb", network: "ETH", tag: null, label: "cold wallet" },
      account: null,
      keyId: null,
      client: null,
      at: fx.clock.ms,
    };
    const payload = { account: "acct-1", asset: "USDT", address: "0xbb", network: "ETH", tag: null, label: "cold wallet" };
    // An operator named alice made the change: she may not approve it.
    const ticket = await fx.holds.holdChange("op_000000000000000000000000000000aa", subject, { action: { type: "hold", approvals: [{ group: "treasury", count: 2 }], delayMs: 0 }, rule: "address-book", version: 2 }, payload, "alice");
    expect(ticket).toMatchObject({ operationId: "op_000000000000000000000000000000aa", state: "pending" });
    expect(await code(approve(fx, ticket.operationId, alice))).toBe("APPROVAL_SELF");
    await approve(fx, ticket.operationId, bob);
    expect(await approve(fx, ticket.operationId, carol)).toBe("ready");
    await fx.holds.idle();
    await fx.holds.tick();
    expect(applied).toEqual([payload]);
    expect(await fx.holds.view(ticket.operationId)).toMatchObject({ state: "released", kind: "address.add", outcome: { status: 200, body: '{"added":true}' } });
  });
});
