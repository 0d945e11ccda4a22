/**
 * The per-address shield under attack (issue 13), through the real gateway (in-process inject,
 * frozen clock, memory hot store): a key id is no secret, so failures against it must never lock
 * its owner out (finding 2); an IPv6 subscriber's /64 is one client (finding 5); refusals that
 * cost the gateway a signature verification are charged to the address (finding 8).
 */
import { generateKeyPairSync } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { AdminApi } from "../../src/admin/server.js";
import type { LimitsOptions } from "../../src/core/core.js";
import { silentLogger } from "../../src/log/logger.js";
import { DEFAULT_SHIELD_POLICY, type ShieldPolicy } from "../../src/limits/types.js";
import type { LimitSpec } from "../../src/contract/limits.js";
import { type TestGateway, makeGateway } from "../support/gateway.js";
import { TEST_START, signRequest } from "../support/harness.js";
import { MemoryHotStore } from "../../src/storage/memory/hot.js";

let t: TestGateway | null = null;
let admin: AdminApi | null = null;
afterEach(async () => {
  await admin?.close(500);
  admin = null;
  await t?.close();
  t = null;
});

async function gateway(limits: LimitsOptions): Promise<TestGateway> {
  t = await makeGateway({ limits });
  return t;
}

const ACCOUNT = { method: "GET" as const, url: "/api/v3/account" };
const CANCEL = { method: "DELETE" as const, url: "/api/v3/order?orderId=1" };
const ipWeight = (limit: number): LimitSpec => ({ name: "ip-weight-1m", scope: "ip", kind: "weight", limit, windowMs: 60_000 });

interface Call {
  method?: "GET" | "DELETE";
  url?: string;
  keyId: string;
  secret: string;
  ip: string;
  junk?: boolean;
}

async function call(g: TestGateway, c: Call): Promise<string> {
  const method = c.method ?? "GET";
  const url = c.url ?? "/api/v3/account";
  const headers = signRequest({ method, url, keyId: c.keyId, key: c.junk === true ? "not-the-secret" : c.secret, created: g.clock.seconds });
  const res = await g.inject({ method, url, headers, remoteAddress: c.ip });
  return res.statusCode === 200 ? "OK" : (JSON.parse(res.body) as { code: string }).code;
}

/** 33 junk-signature requests with `keyId`, 11 from each of three addresses: more than a key's 30. */
async function attack(g: TestGateway, keyId: string): Promise<void> {
  for (let i = 0; i < 33; i++) {
    expect(await call(g, { keyId, secret: "", junk: true, ip: `203.0.113.${(i % 3) + 1}` })).toBe("SIGNATURE_INVALID");
  }
  // Failures are counted off the response path; let every count land.
  await new Promise((r) => setImmediate(r));
}

/** The admin API on a loopback port, asked for the key list with `keyId`. */
async function adminList(g: TestGateway, keyId: string, secret: string): Promise<{ status: number; code?: string }> {
  admin ??= new AdminApi({ core: g.core, logger: silentLogger() });
  const { port } = await admin.listen(0, "127.0.0.1");
  const url = "/portcullis/v1/keys";
  const headers = signRequest({ method: "GET", url, keyId, key: secret, created: g.clock.seconds, host: `127.0.0.1:${port}` });
  const res = await fetch(`http://127.0.0.1:${port}${url}`, { headers });
  const body = (await res.json()) as { code?: string };
  return { status: res.status, ...(body.code === undefined ? {} : { code: body.code }) };
}

describe("finding 2: a key id is no secret — failures against it never lock its owner out", () => {
  it("30-odd junk signatures from three addresses: the owner's signed requests, cancels and the admin API still pass", async () => {
    const g = await gateway({ specs: [] });
    const victim = await g.createKey({});
    const v = { keyId: victim.key.id, secret: victim.secret ?? "" };
    await attack(g, v.keyId);
    expect(await call(g, { ...v, ...ACCOUNT, ip: "192.0.2.10" })).toBe("OK");
    expect(await call(g, { ...v, ...CANCEL, ip: "192.0.2.10" })).toBe("OK");

    const ops = await g.createKey({ account: "ops", scopes: ["admin:*"] });
    await attack(g, ops.key.id);
    expect(await adminList(g, ops.key.id, ops.secret ?? "")).toEqual({ status: 200 });
  });

  it("a key blocked for the address that failed: others pass, cancels pass, and the admin API ignores the gateway's blocks", async () => {
    const shield: ShieldPolicy = { ...DEFAULT_SHIELD_POLICY, authFailuresPerIp: 1_000, authFailuresPerKey: 3 };
    const g = await gateway({ specs: [], shield });
    const victim = await g.createKey({});
    const v = { keyId: victim.key.id, secret: victim.secret ?? "" };
    for (let i = 0; i < 4; i++) expect(await call(g, { ...v, junk: true, ip: "198.51.100.1" })).toBe("SIGNATURE_INVALID");
    await new Promise((r) => setImmediate(r));
    expect(await call(g, { ...v, ...ACCOUNT, ip: "198.51.100.1" })).toBe("KEY_BLOCKED");
    expect(await call(g, { ...v, ...CANCEL, ip: "198.51.100.1" })).toBe("OK");
    expect(await call(g, { ...v, ...ACCOUNT, ip: "198.51.100.2" })).toBe("OK");

    // Failures at the gateway from the operator's own address: the gateway blocks the key there,
    // the admin API (its own pipeline) does not.
    const ops = await g.createKey({ account: "ops", scopes: ["admin:*"] });
    const o = { keyId: ops.key.id, secret: ops.secret ?? "" };
    for (let i = 0; i < 4; i++) expect(await call(g, { ...o, junk: true, ip: "127.0.0.1" })).toBe("SIGNATURE_INVALID");
    await new Promise((r) => setImmediate(r));
    expect(await call(g, { ...o, ip: "127.0.0.1" })).toBe("KEY_BLOCKED");
    expect(await adminList(g, o.keyId, o.secret)).toEqual({ status: 200 });
  });
});

describe("finding 5: an IPv6 client is its /64", () => {
  it("two addresses in one /64 share one budget; another /64 has its own", async () => {
    const g = await gateway({ specs: [ipWeight(2 * 20)] });
    const { key, secret } = await g.createKey({});
    const k = { keyId: key.id, secret: secret ?? "" };
    expect(await call(g, { ...k, ip: "2001:db8:1:2::1" })).toBe("OK");
    expect(await call(g, { ...k, ip: "2001:db8:1:2:ffff:ffff:ffff:fffe" })).toBe("OK");
    expect(await call(g, { ...k, ip: "2001:db8:1:2::3" })).toBe("RATE_LIMITED");
    expect(await call(g, { ...k, ip: "2001:db8:1:3::1" })).toBe("OK");
  });

  it("an IPv4-mapped address is the IPv4 address", async () => {
    const g = await gateway({ specs: [ipWeight(2 * 20)] });
    const { key, secret } = await g.createKey({});
    const k = { keyId: key.id, secret: secret ?? "" };
    expect(await call(g, { ...k, ip: "::ffff:198.51.100.9" })).toBe("OK");
    expect(await call(g, { ...k, ip: "198.51.100.9" })).toBe("OK");
    expect(await call(g, { ...k, ip: "::ffff:c633:6409" })).toBe("RATE_LIMITED");
  });

  it("one ban and one failure block for the whole /64", async () => {
    const shield: ShieldPolicy = { ...DEFAULT_SHIELD_POLICY, strikes: 1, banBaseMs: 10_000, authFailuresPerIp: 2 };
    const g = await gateway({ specs: [ipWeight(20)], shield });
    const { key, secret } = await g.createKey({});
    const k = { keyId: key.id, secret: secret ?? "" };
    expect(await call(g, { ...k, ip: "2001:db8:a:b::1" })).toBe("OK");
    expect(await call(g, { ...k, ip: "2001:db8:a:b::2" })).toBe("RATE_LIMITED");
    expect(await call(g, { ...k, ip: "2001:db8:a:b::3" })).toBe("IP_BANNED");
    expect(await call(g, { ...k, ip: "2001:db8:a:b:c::4" })).toBe("IP_BANNED");
    expect(await call(g, { ...k, ip: "2001:db8:a:c::1" })).toBe("OK");

    for (let i = 1; i <= 3; i++) expect(await call(g, { ...k, junk: true, ip: `2001:db8:f:f::${i}` })).toBe("SIGNATURE_INVALID");
    await new Promise((r) => setImmediate(r));
    expect(await call(g, { ...k, ip: "2001:db8:f:f::99" })).toBe("IP_BLOCKED");
    expect(await call(g, { ...k, ip: "2001:db8:f:e::1" })).toBe("OK");
  });

  it("limits.ipv6Prefix sets the grouping (128: each address alone)", async () => {
    const g = await gateway({ specs: [ipWeight(20)], ipv6Prefix: 128 });
    const { key, secret } = await g.createKey({});
    const k = { keyId: key.id, secret: secret ?? "" };
    expect(await call(g, { ...k, ip: "2001:db8:1:2::1" })).toBe("OK");
    expect(await call(g, { ...k, ip: "2001:db8:1:2::2" })).toBe("OK");
    expect(await call(g, { ...k, ip: "2001:db8:1:2::1" })).toBe("RATE_LIMITED");
  });

  it("a key's allowlist still matches the exact address, not its /64", async () => {
    const g = await gateway({ specs: [] });
    const { key, secret } = await g.createKey({ ipAllowlist: ["2001:db8:1:2::1"] });
    const k = { keyId: key.id, secret: secret ?? "" };
    expect(await call(g, { ...k, ip: "2001:db8:1:2::1" })).toBe("OK");
    expect(await call(g, { ...k, ip: "2001:db8:1:2::2" })).toBe("IP_NOT_ALLOWED");
  });
});

describe("finding 8: refusals that cost a signature verification are charged to the address", () => {
  it("except REPLAY_FENCED: an honest client retrying after a restart is never banned for it", async () => {
    const shield: ShieldPolicy = { ...DEFAULT_SHIELD_POLICY, strikes: 3 };
    // A hot store whose memory began a minute after the clock's start: a restart, as seen by requests signed before it.
    t = await makeGateway({ limits: { specs: [], shield }, hot: new MemoryHotStore({ policy: shield, epochStart: TEST_START + 60_000 }) });
    const { key, secret } = await t.createKey({});
    const k = { keyId: key.id, secret: secret ?? "", ip: "198.51.100.30" };
    for (let i = 0; i < 10; i++) expect(await call(t, k)).toBe("REPLAY_FENCED");
    await new Promise((r) => setImmediate(r));
    t.clock.advance(62_000);
    expect(await call(t, k)).toBe("OK");
  });

  it("1000 copies of one signed Ed25519 request: a replay flood ends in a ban, long before the thousandth", async () => {
    const g = await gateway({ specs: [] });
    const pair = generateKeyPairSync("ed25519");
    const { key } = await g.createKey({ algorithm: "ed25519", publicKey: pair.publicKey.export({ type: "spki", format: "pem" }).toString() });
    const headers = signRequest({ method: "GET", url: "/api/v3/account", keyId: key.id, key: pair.privateKey, alg: "ed25519", created: g.clock.seconds });
    const codes: string[] = [];
    for (let i = 0; i < 1000; i++) {
      const res = await g.inject({ method: "GET", url: "/api/v3/account", headers, remoteAddress: "198.51.100.7" });
      codes.push(res.statusCode === 200 ? "OK" : (JSON.parse(res.body) as { code: string }).code);
    }
    expect(codes[0]).toBe("OK");
    const firstBan = codes.indexOf("IP_BANNED");
    // The default shield: 20 strikes a minute; the 21st refusal earns the ban.
    expect(firstBan).toBe(22);
    expect(codes.slice(1, firstBan).every((c) => c === "NONCE_REPLAYED")).toBe(true);
    expect(codes.slice(firstBan).every((c) => c === "IP_BANNED")).toBe(true);
    // Another address is not affected.
    const fresh = signRequest({ method: "GET", url: "/api/v3/account", keyId: key.id, key: pair.privateKey, alg: "ed25519", created: g.clock.seconds });
    expect((await g.inject({ method: "GET", url: "/api/v3/account", headers: fresh, remoteAddress: "198.51.100.8" })).statusCode).toBe(200);
  });

  it("a verified request refused for its scope is charged too; a refusal before verification is not a strike", async () => {
    const shield: ShieldPolicy = { ...DEFAULT_SHIELD_POLICY, strikes: 3, authFailuresPerIp: 1_000 };
    const g = await gateway({ specs: [], shield });
    const readOnly = await g.createKey({ scopes: ["read"] });
    const r = { keyId: readOnly.key.id, secret: readOnly.secret ?? "" };
    const post = { method: "DELETE" as const, url: "/api/v3/order?orderId=7" };
    for (let i = 0; i < 4; i++) expect(await call(g, { ...r, ...post, ip: "198.51.100.20" })).toBe("SCOPE_MISSING");
    expect(await call(g, { ...r, ip: "198.51.100.20" })).toBe("IP_BANNED");
    // Stale requests are refused before their signature is checked: cheap, and not strikes.
    g.clock.advance(120_000);
    const stale = signRequest({ method: "GET", url: "/api/v3/account", keyId: r.keyId, key: r.secret, created: g.clock.seconds - 60 });
    for (let i = 0; i < 10; i++) {
      const res = await g.inject({ method: "GET", url: "/api/v3/account", headers: stale, remoteAddress: "198.51.100.21" });
      expect((JSON.parse(res.body) as { code: string }).code).toBe("CREATED_TOO_OLD");
    }
    expect(await call(g, { ...r, ip: "198.51.100.21" })).toBe("OK");
  });
});
