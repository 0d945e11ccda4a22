/**
 * The hold service (src/holds/service.ts) over the PostgreSQL store's holds, as two gateway
 * processes would run it: two PostgresStores (two pools) on one schema, each with its own
 * HoldService, keys created and revoked through KeyService on PostgreSQL. The envelopes come from a
 * data directory's keyring (the fixture's); nothing of the holds touches its SQLite file. Through
 * the service's public methods: hold, approvals from both processes with real Ed25519 signatures
 * over the recomputed digest, both release loops racing (released exactly once, the answer
 * recorded and read back), and a revocation in one process cancelling what the other holds.
 * Without a PostgreSQL this file is skipped loudly, except in CI (CI=true), where it fails.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyAudit } from "../../src/audit/verify.js";
import type { PortcullisError } from "../../src/errors/catalogue.js";
import { valueOrThrow } from "../../src/errors/result.js";
import { newOperationId, type PolicySubject } from "../../src/contract/policy.js";
import { HoldService } from "../../src/holds/service.js";
import { parseCreateKeyInput } from "../../src/keys/input.js";
import { KeyService } from "../../src/keys/service.js";
import { PostgresStore } from "../../src/storage/postgres/store.js";
import { SHARED_POSTGRES_URL, dropSchema, postgresReachable, uniqueSchema } from "../support/postgres.js";
import { IN_CI, loudSkip } from "../support/redis.js";
import { type HoldsFixture, Releases, WITHDRAWAL, approver, heldRequest, holdsFixture } from "./support.js";

const pgUp = await postgresReachable(SHARED_POSTGRES_URL);
const runPg = pgUp || IN_CI;
if (!runPg) loudSkip("the hold service over PostgreSQL", `no PostgreSQL answers at ${SHARED_POSTGRES_URL}`);

const alice = approver("alice");
const bob = approver("bob");

describe.runIf(runPg)("hold service over PostgreSQL, two processes", () => {
  const schema = uniqueSchema("hsvc");
  let fx: HoldsFixture;
  let a: PostgresStore;
  let b: PostgresStore;
  let holdsA: HoldService;
  let holdsB: HoldService;
  let keys: KeyService;

  beforeAll(async () => {
    fx = await holdsFixture();
    a = await PostgresStore.open({ url: SHARED_POSTGRES_URL, schema, poolSize: 4 });
    b = await PostgresStore.open({ url: SHARED_POSTGRES_URL, schema, poolSize: 4 });
    const service = (store: PostgresStore): HoldService => new HoldService({ store: store.holds, envelope: fx.data.envelope, policy: fx.policy, now: fx.clock.now, pollMs: 1_000_000 });
    holdsA = service(a);
    holdsB = service(b);
    keys = new KeyService({ store: a, envelope: fx.data.envelope, environment: "test", now: fx.clock.now });
    await holdsA.addApprover("alice", ["treasury"], alice.publicPem, "test");
    await holdsB.addApprover("bob", ["treasury"], bob.publicPem, "test");
  });

  afterAll(async () => {
    await holdsA.stop();
    await holdsB.stop();
    await a.close();
    await b.close();
    await fx.cleanup();
    await dropSchema(SHARED_POSTGRES_URL, schema);
  });

  async function key(owner: string): Promise<string> {
    return (await keys.create(valueOrThrow(parseCreateKeyInput({ account: "acct-1", scopes: ["withdraw"], owner }, fx.clock.ms)), "test")).key.id;
  }

  async function hold(service: HoldService, keyId: string, body: string): Promise<string> {
    const id = newOperationId();
    const subject: PolicySubject = { operation: WITHDRAWAL, account: "acct-1", keyId, client: "127.0.0.1", at: fx.clock.ms };
    await service.holdRequest(id, subject, fx.policy.decide(subject, id), heldRequest(body), "mallory");
    return id;
  }

  it("holds in one process, is approved from both, and is released exactly once by the racing release loops", async () => {
    const k = await key("mallory");
    const request = heldRequest("coin=USDT&amount=2500&address=0xaa&network=ETH&name=pg");
    const id = await hold(holdsA, k, "coin=USDT&amount=2500&address=0xaa&network=ETH&name=pg");
    const seen = await holdsB.view(id);
    expect(seen).toMatchObject({ operationId: id, state: "pending", keyId: k, owner: "mallory", required: { approvals: [{ group: "treasury", count: 2, have: 0 }] } });
    // The digest each process recomputes from the stored row is the same: the summary survived.
    expect((await holdsA.view(id)).digest).toBe(seen.digest);

    const releases = new Releases();
    holdsA.setRequestReleaser(releases.releaser);
    holdsB.setRequestReleaser(releases.releaser);
    expect((await holdsA.decide(id, "alice", "approve", seen.digest, alice.sign("approve", seen.digest))).state).toBe("pending");
    // A second decision by the same person, from the other process, is refused with its code.
    await expect(holdsB.decide(id, "alice", "approve", seen.digest, alice.sign("approve", seen.digest))).rejects.toMatchObject({ code: "APPROVAL_DUPLICATE" });
    expect((await holdsB.decide(id, "bob", "approve", seen.digest, bob.sign("approve", seen.digest))).state).toMatch(/^(ready|releasing|released)$/);
    await Promise.all([holdsA.release(id), holdsB.release(id), holdsA.tick(), holdsB.tick()]);
    await holdsA.idle();
    await holdsB.idle();
    expect(releases.count(id)).toBe(1);
    expect(releases.calls[0]?.request).toEqual(request);
    expect(await holdsA.view(id)).toMatchObject({ state: "released", outcome: { status: 200, body: '{"id":"venue-1"}' } });
    expect(await verifyAudit(a.audit)).toMatchObject({ ok: true });
  });

  it("a key revoked in one process cancels its held operation for the other: no approval, no release", async () => {
    const k = await key("mallory");
    const id = await hold(holdsB, k, "coin=USDT&amount=7&address=0xbb&network=ETH");
    const digest = (await holdsA.view(id)).digest;
    expect((await holdsA.decide(id, "alice", "approve", digest, alice.sign("approve", digest))).state).toBe("pending");
    await keys.revoke(k, "cli:sec", "leaked");
    expect(await holdsB.view(id)).toMatchObject({ state: "cancelled", reason: "key revoked" });
    const refused = await holdsB.decide(id, "bob", "approve", digest, bob.sign("approve", digest)).catch((err: unknown) => err as PortcullisError);
    expect(refused).toMatchObject({ code: "OPERATION_STATE_CONFLICT" });
    await Promise.all([holdsA.tick(), holdsB.tick()]);
    // What the policy recorded for it is forgotten once (settled by one process).
    expect(fx.policy.forgotten.filter((ref) => ref === id)).toHaveLength(1);
    expect(await a.holds.unsettled(10)).toEqual([]);
  });
});
