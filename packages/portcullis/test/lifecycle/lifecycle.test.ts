/**
 * The lifecycle's own contract (pipeline/lifecycle.ts), with a recording exchange over a real core
 * with a per-key concurrency cap: the order of the hooks, what is audited, when the slot is
 * released, and what a hold hook, a handler's refusal, a fault of our own and an unreadable body
 * come to. The surfaces themselves are held to it by surfaces.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuditEntry } from "../../src/audit/events.js";
import type { RequestContext } from "../../src/contract/request.js";
import { PortcullisError, deny } from "../../src/errors/catalogue.js";
import { type Exchange, type HoldHook, Lifecycle, type Outcome } from "../../src/pipeline/lifecycle.js";
import { silentLogger } from "../../src/log/logger.js";
import { readEntries } from "../audit/support.js";
import { type TestCore, makeCore, signRequest } from "../support/harness.js";

let t: TestCore;
let keyId: string;
let secret: string;

beforeAll(async () => {
  t = await makeCore({ limits: { specs: [{ name: "key-weight-1d", scope: "key", kind: "weight", limit: 1_000_000, windowMs: 86_400_000 }], maxConcurrentPerKey: 1 } });
  const created = await t.createKey({ account: "acct-lifecycle", scopes: ["read"] });
  keyId = created.key.id;
  secret = created.secret ?? "";
});
afterAll(async () => {
  await t.cleanup();
});

interface Target {
  readonly events: string[];
  outcome: Outcome<string> | null;
  release: (() => void) | null;
}

type HandOn = (ctx: RequestContext) => string;

function lifecycle(handOn: HandOn, options: { hold?: HoldHook; waits?: boolean } = {}): Lifecycle<Target, string> {
  const exchange: Exchange<Target, string> = {
    handOn(ctx, target) {
      target.events.push(`hand on (slot held: ${String(t.core.shield.inFlightFor(keyId))})`);
      return handOn(ctx);
    },
    render(_ctx, outcome, target) {
      target.events.push(`render (slot held: ${String(t.core.shield.inFlightFor(keyId))})`);
      target.outcome = outcome;
    },
  };
  if (options.waits === true) {
    exchange.untilDone = (target, release) => {
      target.release = release;
    };
  }
  return new Lifecycle({ pipeline: t.core.pipeline, exchange, surface: "embedded", audit: t.core.audit, logger: silentLogger(), hold: options.hold ?? null });
}

function request(overrides: { url?: string; body?: Buffer | ReturnType<typeof deny> } = {}): Parameters<Lifecycle<Target, string>["serve"]>[0] {
  const url = overrides.url ?? "/api/v3/account";
  return {
    method: "GET",
    url,
    headers: signRequest({ method: "GET", url, keyId, key: secret, created: t.clock.seconds }),
    body: overrides.body ?? Buffer.alloc(0),
    socketAddress: "127.0.0.1",
  };
}

async function serve(l: Lifecycle<Target, string>, input = request()): Promise<{ target: Target; entry: AuditEntry | undefined }> {
  const target: Target = { events: [], outcome: null, release: null };
  const requestId = `r-${String(Math.random()).slice(2)}`;
  await l.serve(input, requestId, target);
  await t.core.audit.flush();
  return { target, entry: readEntries(t.dataDir).find((e) => e.requestId === requestId) };
}

describe("the request lifecycle", () => {
  it("hands an allowed request on with its slot held, audits it, releases the slot, then renders the answer", async () => {
    const { target, entry } = await serve(lifecycle(() => "answer"));
    expect(target.events).toEqual(["hand on (slot held: 1)", "render (slot held: 0)"]);
    expect(target.outcome).toEqual({ kind: "answered", answer: "answer" });
    expect(entry).toMatchObject({ event: "request.allow", surface: "embedded", key: keyId });
    expect(entry?.detail).toBeUndefined();
  });

  it("with untilDone, keeps the slot until the surface says the answer is over", async () => {
    const { target } = await serve(lifecycle(() => "streamed", { waits: true }));
    expect(target.events).toEqual(["hand on (slot held: 1)", "render (slot held: 1)"]);
    // Held: the next request of the key is refused for it.
    const second = await serve(lifecycle(() => "second"));
    expect(second.target.outcome).toMatchObject({ kind: "refused", denial: { code: "CONCURRENCY_LIMITED" } });
    target.release?.();
    expect(t.core.shield.inFlightFor(keyId)).toBe(0);
    expect((await serve(lifecycle(() => "third"))).target.outcome).toEqual({ kind: "answered", answer: "third" });
  });

  it("skips hand on for a refusal, and audits it with its code", async () => {
    const { target, entry } = await serve(lifecycle(() => "never"), request({ url: "/nowhere" }));
    expect(target.events).toEqual(["render (slot held: 0)"]);
    expect(target.outcome).toMatchObject({ kind: "refused", denial: { code: "ROUTE_NOT_FOUND" } });
    expect(entry).toMatchObject({ event: "request.deny", code: "ROUTE_NOT_FOUND", surface: "embedded" });
  });

  it("audits and renders a body that could not be read like any refusal", async () => {
    const { target, entry } = await serve(lifecycle(() => "never"), request({ body: deny("BODY_TOO_LARGE") }));
    expect(target.outcome).toMatchObject({ kind: "refused", denial: { code: "BODY_TOO_LARGE" } });
    expect(entry).toMatchObject({ event: "request.deny", code: "BODY_TOO_LARGE", path: "/api/v3/account" });
  });

  it("lets the hold hook refuse an allowed request: not handed on, its slot released, audited with the hook's code", async () => {
    const seen: string[] = [];
    const hold: HoldHook = (ctx) => {
      seen.push(ctx.key?.record.id ?? "none");
      return deny("SCOPE_MISSING", "held by policy");
    };
    const { target, entry } = await serve(lifecycle(() => "never", { hold }));
    expect(seen).toEqual([keyId]);
    expect(target.events).toEqual(["render (slot held: 0)"]);
    expect(target.outcome).toMatchObject({ kind: "refused", denial: { code: "SCOPE_MISSING" } });
    expect(entry).toMatchObject({ event: "request.deny", code: "SCOPE_MISSING" });
  });

  it("renders a handler's refusal as failed, and the allowed request's entry carries its code", async () => {
    const { target, entry } = await serve(
      lifecycle(() => {
        throw new PortcullisError("VALIDATION_FAILED", "quantity: a decimal", { quantity: "a decimal" });
      }),
    );
    expect(target.outcome).toMatchObject({ kind: "failed", error: { code: "VALIDATION_FAILED", fields: { quantity: "a decimal" } } });
    expect(entry).toMatchObject({ event: "request.allow", detail: { outcome: "VALIDATION_FAILED" } });
    expect(t.core.shield.inFlightFor(keyId)).toBe(0);
  });

  it("turns a fault of our own in hand on into INTERNAL, never a rejection, and releases the slot", async () => {
    const { target, entry } = await serve(
      lifecycle(() => {
        throw new Error("a bug, with a detail that must not reach the caller");
      }),
    );
    expect(target.outcome).toMatchObject({ kind: "failed", error: { code: "INTERNAL" } });
    expect(JSON.stringify(target.outcome)).not.toContain("a bug");
    expect(entry).toMatchObject({ event: "request.allow", detail: { outcome: "INTERNAL" } });
    expect(t.core.shield.inFlightFor(keyId)).toBe(0);
  });
});
