/**
 * Stage 10 on the surfaces: the gateway holds a native withdrawal (202 with the ticket, nothing
 * forwarded), releases it through its forwarder once approved (identity headers signed afresh),
 * blocks (POLICY_BLOCKED) and fails closed (POLICY_UNAVAILABLE); a request without an operation is
 * not judged; the embedded middleware refuses a hold without a release callback (HOLD_NOT_SUPPORTED)
 * and hands it to the callback with one; the held answers in each venue's success shape; and the
 * admin API's approvers and approvals, for operator keys only.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { inject } from "light-my-request";
import { afterEach, describe, expect, it } from "vitest";
import { createClient, type PortcullisApiError } from "@portcullis/client";
import type { PolicyDecider, PolicyDecision, PolicyExplanation, PolicySubject } from "../../src/contract/policy.js";
import type { Operation } from "../../src/contract/operations.js";
import type { RouteSpec } from "../../src/authz/routes.js";
import { Gateway } from "../../src/gateway/server.js";
import { Forwarder } from "../../src/gateway/proxy.js";
import { IdentitySigner } from "../../src/gateway/identity.js";
import { OperationEndpoints } from "../../src/gateway/operation-endpoints.js";
import { AdminApi } from "../../src/admin/server.js";
import { createMiddleware } from "../../src/embedded/middleware.js";
import { renderHeld } from "../../src/dialects/held.js";
import { HoldService } from "../../src/holds/service.js";
import { silentLogger } from "../../src/log/logger.js";
import { IDENTITY_SECRET, startEchoUpstream } from "../support/gateway.js";
import { TEST_ROUTES, type TestCore, makeCore, signRequest } from "../support/harness.js";
import { HoldWithdrawals, Releases, approver } from "./support.js";

const ROUTES: RouteSpec[] = [
  ...TEST_ROUTES.filter((r) => r.path !== "/sapi/v1/capital/withdraw/apply"),
  { method: "POST", path: "/sapi/v1/capital/withdraw/apply", permission: "withdraw", operation: "withdraw" },
];
const BODY = JSON.stringify({ asset: "USDT", amount: "2500", address: "0xaa", network: "ETH" });

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

class Fixed implements PolicyDecider {
  readonly forgotten: string[] = [];
  decisions = 0;
  constructor(private readonly decision: PolicyDecision | Error) {}
  judges(): boolean {
    return true;
  }
  decide(): PolicyDecision {
    this.decisions++;
    if (this.decision instanceof Error) throw this.decision;
    return this.decision;
  }
  explain(_subject: PolicySubject): Promise<PolicyExplanation> {
    return Promise.resolve({ decision: this.decide(), trace: [] });
  }
  forget(ref: string): Promise<void> {
    this.forgotten.push(ref);
    return Promise.resolve();
  }
}

async function setup(policy: PolicyDecider): Promise<{ t: TestCore; holds: HoldService; gateway: Gateway; upstream: Awaited<ReturnType<typeof startEchoUpstream>>; key: { id: string; secret: string } }> {
  const upstream = await startEchoUpstream();
  const t = await makeCore({ routes: ROUTES });
  const data = { store: (t.core as unknown as { store: { holds: HoldService["store"] } }).store };
  const holds = new HoldService({ store: data.store.holds, envelope: (t.core.keys as unknown as { envelope: ConstructorParameters<typeof HoldService>[0]["envelope"] }).envelope, policy, now: t.clock.now, pollMs: 1_000_000 });
  const gateway = new Gateway({
    pipeline: t.core.pipeline,
    forwarder: new Forwarder({ upstream: upstream.url }),
    identity: new IdentitySigner(IDENTITY_SECRET),
    logger: silentLogger(),
    now: t.clock.now,
    audit: t.core.audit,
    holds: { policy, service: holds, operations: new OperationEndpoints(t.core, holds) },
  });
  const created = await t.createKey({ scopes: ["read", "withdraw"] });
  cleanups.push(async () => {
    await holds.stop();
    await gateway.close(100);
    await upstream.close();
    await t.cleanup();
  });
  return { t, holds, gateway, upstream, key: { id: created.key.id, secret: created.secret ?? "" } };
}

function signed(t: TestCore, key: { id: string; secret: string }, method: string, url: string, body?: string): Record<string, string> {
  return { ...signRequest({ method, url, keyId: key.id, key: key.secret, created: t.clock.seconds, ...(body === undefined ? {} : { body }) }), ...(body === undefined ? {} : { "content-type": "application/json" }) };
}

describe("the gateway holds, blocks and releases", () => {
  it("holds a native withdrawal: 202 with the ticket, nothing forwarded; approved, it is forwarded once with fresh identity", async () => {
    const policy = new HoldWithdrawals([{ group: "treasury", count: 1 }]);
    const { t, holds, gateway, upstream, key } = await setup(policy);
    const url = "/sapi/v1/capital/withdraw/apply";
    const res = await inject(gateway.handle, { method: "POST", url, headers: signed(t, key, "POST", url, BODY), payload: BODY, remoteAddress: "127.0.0.1" });
    expect(res.statusCode).toBe(202);
    const ticket = res.json<{ operationId: string; state: string; required: unknown }>();
    expect(ticket).toMatchObject({ state: "pending", required: { approvals: [{ group: "treasury", count: 1, have: 0 }], notBefore: null } });
    expect(upstream.requests).toHaveLength(0);
    // The initiator reads it.
    const path = `/portcullis/v1/operations/${ticket.operationId}`;
    const read = await inject(gateway.handle, { method: "GET", url: path, headers: signed(t, key, "GET", path), remoteAddress: "127.0.0.1" });
    expect(read.statusCode).toBe(200);
    expect(read.json()).toMatchObject({ operationId: ticket.operationId, state: "pending", operation: { kind: "withdraw", amount: "2500", address: "0xaa" } });
    // A request without an operation is not judged.
    const before = policy.decided.length;
    const account = await inject(gateway.handle, { method: "GET", url: "/api/v3/account", headers: signed(t, key, "GET", "/api/v3/account"), remoteAddress: "127.0.0.1" });
    expect(account.statusCode).toBe(200);
    expect(policy.decided).toHaveLength(before);
    // Approved: the loop releases it through the gateway's forwarder.
    const alice = approver("alice");
    await holds.addApprover("alice", ["treasury"], alice.publicPem, "test");
    const digest = (await holds.view(ticket.operationId)).digest;
    expect((await holds.decide(ticket.operationId, "alice", "approve", digest, alice.sign("approve", digest))).state).toBe("ready");
    // The last approval released it at once, in this process; the loop finds nothing more to do.
    await holds.idle();
    await holds.tick();
    const forwarded = upstream.requests.filter((r) => r.url === url);
    expect(forwarded).toHaveLength(1);
    expect(forwarded[0]?.body).toBe(BODY);
    expect(forwarded[0]?.headers["portcullis-key-id"]).toBe(key.id);
    expect(forwarded[0]?.headers["portcullis-request-id"]).toBe(ticket.operationId);
    expect(forwarded[0]?.headers.signature).toBeUndefined();
    expect((await holds.view(ticket.operationId)).state).toBe("released");
  });

  it("blocks with POLICY_BLOCKED, and fails closed with POLICY_UNAVAILABLE", async () => {
    for (const [policy, status, code] of [
      [new Fixed({ action: { type: "block", reason: "sanctioned address" }, rule: "deny-list", version: 2 }), 403, "POLICY_BLOCKED"],
      [new Fixed(new Error("engine down")), 503, "POLICY_UNAVAILABLE"],
    ] as const) {
      const { t, gateway, upstream, key } = await setup(policy);
      const url = "/sapi/v1/capital/withdraw/apply";
      const res = await inject(gateway.handle, { method: "POST", url, headers: signed(t, key, "POST", url, BODY), payload: BODY, remoteAddress: "127.0.0.1" });
      expect(res.statusCode).toBe(status);
      expect(res.json()).toMatchObject({ code });
      expect(res.body).not.toContain("sanctioned");
      expect(upstream.requests).toHaveLength(0);
    }
  });

  it("another key's operation is not found; a malformed id is not found", async () => {
    const { t, gateway, key } = await setup(new HoldWithdrawals());
    const other = await t.createKey({ scopes: ["read"] });
    const url = "/sapi/v1/capital/withdraw/apply";
    const held = await inject(gateway.handle, { method: "POST", url, headers: signed(t, key, "POST", url, BODY), payload: BODY, remoteAddress: "127.0.0.1" });
    const id = held.json<{ operationId: string }>().operationId;
    for (const [who, path] of [
      [{ id: other.key.id, secret: other.secret ?? "" }, `/portcullis/v1/operations/${id}`],
      [key, "/portcullis/v1/operations/op_nope"],
    ] as const) {
      const res = await inject(gateway.handle, { method: "DELETE", url: path, headers: signed(t, who, "DELETE", path), remoteAddress: "127.0.0.1" });
      expect(res.statusCode).toBe(404);
      expect(res.json()).toMatchObject({ code: "OPERATION_NOT_FOUND" });
    }
  });
});

describe("the embedded middleware", () => {
  async function embedded(release: boolean): Promise<{ server: Server; url: string; t: TestCore; holds: HoldService; policy: HoldWithdrawals; releases: Releases; key: { id: string; secret: string } }> {
    const t = await makeCore({ routes: ROUTES });
    const policy = new HoldWithdrawals([], 60_000);
    const holds = new HoldService({ store: (t.core as unknown as { store: { holds: HoldService["store"] } }).store.holds, envelope: (t.core.keys as unknown as { envelope: ConstructorParameters<typeof HoldService>[0]["envelope"] }).envelope, policy, now: t.clock.now, pollMs: 1_000_000 });
    const releases = new Releases();
    const middleware = createMiddleware(t.core, { holds: { policy, service: holds, ...(release ? { release: releases.releaser } : {}) } });
    const server = createServer((req, res) => {
      middleware(req, res, () => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end('{"handled":true}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const created = await t.createKey({ scopes: ["withdraw"] });
    cleanups.push(async () => {
      await holds.stop();
      await new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      });
      await t.cleanup();
    });
    return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, t, holds, policy, releases, key: { id: created.key.id, secret: created.secret ?? "" } };
  }

  it("without a release callback a hold is refused, fail closed (HOLD_NOT_SUPPORTED), and the policy forgets it", async () => {
    const { t, server, policy, key } = await embedded(false);
    const url = "/sapi/v1/capital/withdraw/apply";
    const res = await inject(server.listeners("request")[0] as never, { method: "POST", url, headers: signed(t, key, "POST", url, BODY), payload: BODY, remoteAddress: "127.0.0.1" });
    expect(res.statusCode).toBe(403);
    expect(res.json()).toMatchObject({ code: "HOLD_NOT_SUPPORTED" });
    expect(policy.forgotten).toEqual(policy.decided);
  });

  it("with one, the held request goes to the callback once its delay is over", async () => {
    const { t, server, holds, releases, key } = await embedded(true);
    const url = "/sapi/v1/capital/withdraw/apply";
    const res = await inject(server.listeners("request")[0] as never, { method: "POST", url, headers: signed(t, key, "POST", url, BODY), payload: BODY, remoteAddress: "127.0.0.1" });
    expect(res.statusCode).toBe(202);
    const id = res.json<{ operationId: string }>().operationId;
    await holds.tick();
    expect(releases.calls).toEqual([]);
    t.clock.advance(60_000);
    await holds.tick();
    expect(releases.count(id)).toBe(1);
    expect(releases.calls[0]?.request.body.toString()).toBe(BODY);
  });
});

describe("held answers in each venue's success shape", () => {
  const ticket = { operationId: "op_0123456789abcdef0123456789abcdef", state: "pending" as const, required: { approvals: [{ group: "treasury", count: 2, have: 0 }], notBefore: null, expiresAt: 1 } };
  const withdraw: Operation = { kind: "withdraw", asset: "USDT", amount: { coefficient: 25n, scale: 1 }, address: "0xaa", addressName: null, network: "ETH", tag: null };
  const transfer: Operation = { kind: "transfer", asset: "USDT", amount: { coefficient: 5n, scale: 0 }, from: "6", to: "18" };
  const id = ticket.operationId;
  it.each([
    ["binance", withdraw, { id }],
    ["binance", transfer, { tranId: id }],
    ["kraken", withdraw, { error: [], result: { refid: id } }],
    ["okx", withdraw, { code: "0", msg: "", data: [{ amt: "2.5", wdId: id, ccy: "USDT", clientId: "", chain: "ETH" }] }],
    ["okx", transfer, { code: "0", msg: "", data: [{ transId: id, ccy: "USDT", clientId: "", from: "6", amt: "5", to: "18" }] }],
    ["bybit", withdraw, { retCode: 0, retMsg: "success", result: { id }, retExtInfo: {}, time: 7 }],
    ["bybit", transfer, { retCode: 0, retMsg: "success", result: { transferId: id, status: "PENDING" }, retExtInfo: {}, time: 7 }],
  ] as const)("%s %o", (dialect, op, body) => {
    expect(renderHeld(dialect, ticket, op, 7)).toEqual({ status: 200, body: JSON.stringify(body) });
  });
  it("anything else answers natively: 202 with the ticket", () => {
    expect(renderHeld("coinbase", ticket, withdraw, 7)).toEqual({ status: 202, body: JSON.stringify(ticket) });
    expect(renderHeld(null, ticket, withdraw, 7)).toEqual({ status: 202, body: JSON.stringify(ticket) });
    expect(renderHeld("binance", ticket, { kind: "order.cancel", symbol: "BTCUSDT", orderIds: [], clientOrderId: null } as unknown as Operation, 7).status).toBe(202);
  });
});

describe("the admin API's approvers and approvals", () => {
  it("operator keys manage approvers and approve with the approver's own signature; account admins are refused", async () => {
    // The admin API checks signatures made now: the core runs on the real clock here.
    const t = await makeCore({ routes: ROUTES, now: Date.now });
    const policy = new HoldWithdrawals([{ group: "treasury", count: 1 }]);
    const holds = new HoldService({ store: (t.core as unknown as { store: { holds: HoldService["store"] } }).store.holds, envelope: (t.core.keys as unknown as { envelope: ConstructorParameters<typeof HoldService>[0]["envelope"] }).envelope, policy, pollMs: 1_000_000 });
    const admin = new AdminApi({ core: t.core, logger: silentLogger(), holds });
    const address = await admin.listen(0);
    cleanups.push(async () => {
      await holds.stop();
      await admin.close(100);
      await t.cleanup();
    });
    const baseUrl = `http://127.0.0.1:${address.port}`;
    // Requests are signed now (the admin API's clock is the real one).
    const op = await t.createKey({ account: "ops", scopes: ["admin:*"], operator: true });
    const acct = await t.createKey({ account: "acct-1", scopes: ["admin:*"] });
    const operator = createClient({ baseUrl, keyId: op.key.id, secret: op.secret ?? "" });
    const accountAdmin = createClient({ baseUrl, keyId: acct.key.id, secret: acct.secret ?? "" });
    const alice = approver("alice");
    expect(await operator.json("POST", "/portcullis/v1/approvers", { json: { name: "alice", groups: ["treasury"], publicKey: alice.publicPem } })).toMatchObject({ name: "alice", groups: ["treasury"] });
    const refused = await accountAdmin.json("GET", "/portcullis/v1/approvers").catch((e: unknown) => e);
    expect((refused as PortcullisApiError).code).toBe("ADMIN_GRANT_EXCEEDED");
    const bad = await operator.json("POST", "/portcullis/v1/approvers", { json: { name: "bob", groups: "treasury" } }).catch((e: unknown) => e);
    expect((bad as PortcullisApiError).code).toBe("VALIDATION_FAILED");

    const initiator = await t.createKey({ scopes: ["withdraw"] });
    const id = (await holds.holdRequest(
      "op_00000000000000000000000000000001",
      { operation: { kind: "withdraw", asset: "BTC", amount: { coefficient: 1n, scale: 0 }, address: "bc1q", addressName: null, network: null, tag: null }, account: "acct-1", keyId: initiator.key.id, client: null, at: Date.now() },
      { action: { type: "hold", approvals: [{ group: "treasury", count: 1 }], delayMs: 0 }, rule: "r", version: 1 },
      { method: "POST", url: "/x", headers: {}, body: Buffer.alloc(0), clientIp: "", authority: null, identity: null },
      null,
    )).operationId;
    const shown = await operator.json<{ digest: string; rendering: string; document: unknown }>("GET", `/portcullis/v1/approvals/${id}`);
    expect(shown.rendering).toContain("bc1q");
    const listed = await operator.json<{ operations: { operationId: string }[] }>("GET", "/portcullis/v1/approvals?state=pending");
    expect(listed.operations.map((o) => o.operationId)).toContain(id);
    const badState = await operator.json("GET", "/portcullis/v1/approvals?state=nope").catch((e: unknown) => e);
    expect((badState as PortcullisApiError).code).toBe("VALIDATION_FAILED");
    const approved = await operator.json<{ state: string }>("POST", `/portcullis/v1/approvals/${id}/approve`, { json: { approver: "alice", digest: shown.digest, signature: alice.sign("approve", shown.digest) } });
    expect(approved.state).toBe("ready");
    const removed = await operator.json("DELETE", "/portcullis/v1/approvers/alice");
    expect(removed).toEqual({ removed: "alice" });
  });
});
