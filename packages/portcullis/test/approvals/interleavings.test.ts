/**
 * Concurrent approve / release / revoke, explored with fast-check's scheduler against the real
 * SQLite store: two hold services (two processes' connections to one data directory) race the last
 * approvals, their release loops and direct releases, while the initiating key is revoked (or
 * suspended, or left alone) at a point the scheduler picks. Whatever the order: at most one
 * release, and none once the key change committed while the operation was still pending or ready.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HoldState } from "../../src/contract/policy.js";
import type { HeldRequest, HoldService, ReleaseOutcome } from "../../src/holds/service.js";
import type { PortcullisError } from "../../src/errors/catalogue.js";
import { type HoldsFixture, approver, holdsFixture } from "./support.js";

let fx: HoldsFixture;
let other: HoldService;
const alice = approver("alice");
const bob = approver("bob");
const carol = approver("carol");

beforeAll(async () => {
  fx = await holdsFixture();
  await fx.holds.addApprover("alice", ["treasury"], alice.publicPem, "test");
  await fx.holds.addApprover("bob", ["treasury"], bob.publicPem, "test");
  await fx.holds.addApprover("carol", ["treasury"], carol.publicPem, "test");
  other = (await fx.open()).holds;
});

afterAll(async () => {
  await fx.cleanup();
});

/** Refusals a racing step may meet; anything else fails the run. */
const EXPECTED = new Set(["OPERATION_STATE_CONFLICT", "APPROVAL_DUPLICATE", "APPROVAL_NOT_IN_GROUP"]);

function tolerate(err: unknown): void {
  if (!EXPECTED.has((err as PortcullisError).code)) throw err;
}

describe("approve / release / revoke interleavings (fast-check scheduler)", () => {
  it("never release twice, never after revocation or suspension", async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), fc.constantFrom("revoke" as const, "suspend" as const, "none" as const), async (s, keyChange) => {
        const key = await fx.key(null);
        const id = await fx.hold(key, null);
        const digest = (await fx.holds.view(id)).digest;
        await fx.holds.decide(id, "alice", "approve", digest, alice.sign("approve", digest));
        let releases = 0;
        const releaser = async (_request: HeldRequest, row: { id: string }): Promise<ReleaseOutcome> => {
          if (row.id === id) releases++;
          await s.schedule(Promise.resolve("upstream answers"));
          return { status: 200, body: Buffer.from("{}"), contentType: "application/json" };
        };
        fx.holds.setRequestReleaser(releaser);
        other.setRequestReleaser(releaser);
        let stateAtKeyChange: HoldState | undefined;
        const steps: Promise<unknown>[] = [
          s.schedule(Promise.resolve("bob approves (process A)")).then(() => fx.holds.decide(id, "bob", "approve", digest, bob.sign("approve", digest)).catch(tolerate)),
          s.schedule(Promise.resolve("carol approves (process B)")).then(() => other.decide(id, "carol", "approve", digest, carol.sign("approve", digest)).catch(tolerate)),
          s.schedule(Promise.resolve("A's loop")).then(() => fx.holds.tick()),
          s.schedule(Promise.resolve("B's loop")).then(() => other.tick()),
          s.schedule(Promise.resolve("A releases")).then(() => fx.holds.release(id)),
          s.schedule(Promise.resolve("B releases")).then(() => other.release(id)),
        ];
        if (keyChange !== "none") {
          steps.push(
            s.schedule(Promise.resolve(`the key is ${keyChange}d`)).then(async () => {
              const to = keyChange === "revoke" ? "revoked" : "suspended";
              // The SQLite store answers synchronously inside its promises: the read and the key
              // change below run back to back, so the read is where the operation stood at the commit.
              const before = fx.data.store.holds.hold(id);
              const changed = fx.data.store.transition(key, ["active"], to, "test", { action: keyChange, actor: "test", at: fx.clock.ms, detail: {} });
              stateAtKeyChange = (await before)?.state;
              expect((await changed).ok).toBe(true);
            }),
          );
        }
        // Releases started inside a step (the last approval releases at once) schedule their own
        // upstream answers later: run the scheduler until nothing is left to run.
        for (let round = 0; round < 20; round++) {
          await s.waitIdle();
          await new Promise((resolve) => setImmediate(resolve));
        }
        expect(s.count()).toBe(0);
        await Promise.all(steps);
        await fx.holds.tick();
        await other.tick();
        const final = (await fx.holds.view(id)).state;
        expect(releases).toBeLessThanOrEqual(1);
        if (stateAtKeyChange === "pending" || stateAtKeyChange === "ready") {
          expect(releases).toBe(0);
          expect(final).toBe("cancelled");
        } else {
          // No key change, or one that came after the claim: released exactly once.
          expect(releases).toBe(1);
          expect(final).toBe("released");
        }
      }),
      { numRuns: 60 },
    );
  });
});
