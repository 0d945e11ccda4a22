/**
 * Passkeys (docs/passkeys.md) end to end, with real WebAuthn: Debian's Chromium driven by
 * playwright-core, a CDP virtual authenticator (CTAP2, internal, resident keys, user
 * verification), and a page on the admin listener's origin (a blank page fulfilled by the test)
 * calling navigator.credentials.create/get with the server's options. The admin API runs on a real
 * socket with a SQLite store. Registration by a signed admin key; sign-in yielding a session that
 * signs admin calls; and the refusals: a replayed answer, another origin, an unknown credential,
 * revoked and suspended keys, a counter that went back (a cloned authenticator), the limits of a
 * public route, and the registration's own checks.
 */
import { createClient, type PortcullisClient } from "@portcullis/client";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Browser, type BrowserContext, type CDPSession, type Page, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminApi } from "../../src/admin/server.js";
import { DEFAULT_SHIELD_POLICY } from "../../src/limits/types.js";
import { silentLogger } from "../../src/log/logger.js";
import { MAX_PASSKEYS_PER_KEY, PasskeyService, listenerOrigin, relyingParty } from "../../src/sessions/passkeys.js";
import { parseConfig } from "../../src/config/config.js";
import { SqliteStore } from "../../src/storage/sqlite/store.js";
import { initDataDir } from "../../src/core/data-dir.js";
import { type RunningPortcullis, startPortcullis, urlOf } from "../../src/runtime/runtime.js";
import { type TestCore, makeCore } from "../support/harness.js";
import { captureLogger } from "../support/gateway.js";
import { IN_CI, loudSkip } from "../support/redis.js";

const CHROMIUM = process.env.PORTCULLIS_CHROMIUM ?? "/usr/bin/chromium";
const haveChromium = existsSync(CHROMIUM);
// In CI (CI=true) Chromium is required (.ci/run installs it): the browser tests then fail rather than skip.
if (!haveChromium && !IN_CI) loudSkip("the passkey browser tests", `no Chromium at ${CHROMIUM}`);

type Json = Record<string, unknown>;

interface Server {
  readonly t: TestCore;
  readonly admin: AdminApi;
  /** Where Node calls it. */
  readonly base: string;
  /** The console's origin (the relying party: localhost). */
  readonly origin: string;
  readonly port: number;
}

/** Every log line of the servers, and every secret the tests saw: none may be in the other. */
const captured = captureLogger();
const secrets: string[] = [];

async function startServer(options: { shield?: boolean; frozen?: boolean } = {}): Promise<Server> {
  const t = await makeCore({
    logger: captured.logger,
    ...(options.frozen === true ? {} : { now: Date.now }),
    sessions: true,
    ...(options.shield === true
      ? { limits: { specs: [{ name: "ip-weight-1m", scope: "ip" as const, kind: "weight" as const, limit: 10_000, windowMs: 60_000 }], shield: { ...DEFAULT_SHIELD_POLICY, authFailuresPerIp: 3 } } }
      : {}),
  });
  const passkeys = new PasskeyService({ store: t.store.passkeys, origins: null });
  const admin = new AdminApi({ core: t.core, logger: captured.logger, passkeys });
  const address = await admin.listen(0, "127.0.0.1");
  const origin = listenerOrigin(address, "127.0.0.1", false) ?? "";
  passkeys.useOrigins([origin]);
  return { t, admin, base: `http://127.0.0.1:${address.port}`, origin, port: address.port };
}

async function stopServer(s: Server): Promise<void> {
  await s.admin.close(200);
  await s.t.cleanup();
}

/** An unsigned call (the public sign-in routes): status and JSON body. */
async function post(s: Server, path: string, body: unknown): Promise<{ status: number; body: Json }> {
  const res = await fetch(`${s.base}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const answer = (await res.json()) as Json;
  if (typeof answer.secret === "string") secrets.push(answer.secret);
  return { status: res.status, body: answer };
}

/** A signed call's refusal code (or "ok"). */
async function code(p: Promise<unknown>): Promise<string> {
  return p.then(
    () => "ok",
    (err: unknown) => (err as { code?: string }).code ?? String(err),
  );
}

// --- the browser -------------------------------------------------------------------------------

/** In the page: navigator.credentials.create with the server's options; the credential's toJSON(). */
const CREATE = `async (options) => {
  const credential = await navigator.credentials.create({ publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options) });
  return credential.toJSON();
}`;
/** In the page: navigator.credentials.get, limited to one credential when asked (the test's choice, not the server's). */
const GET = `async ([options, only]) => {
  const json = only === null ? options : { ...options, allowCredentials: [{ type: "public-key", id: only }] };
  const credential = await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(json) });
  return credential.toJSON();
}`;

interface Tab {
  readonly page: Page;
  readonly cdp: CDPSession;
  readonly authenticatorId: string;
}

let browser: Browser | null = null;
let context: BrowserContext;

async function launch(): Promise<void> {
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
  context = await browser.newContext();
}

/** A page on `origin` (a blank page the test serves) with a fresh virtual authenticator. */
async function openTab(origin: string): Promise<Tab> {
  const page = await context.newPage();
  await page.route(`${origin}/**`, (route) => route.fulfill({ status: 200, contentType: "text/html", body: "<!doctype html><title>console</title>" }));
  await page.goto(`${origin}/console/`);
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable", { enableUI: false });
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: { protocol: "ctap2", transport: "internal", hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
  });
  return { page, cdp, authenticatorId };
}

async function create(tab: Tab, options: unknown): Promise<Json> {
  return tab.page.evaluate<Json>(`(${CREATE})(${JSON.stringify(options)})`);
}

async function get(tab: Tab, options: unknown, only: string | null = null): Promise<Json> {
  return tab.page.evaluate<Json>(`(${GET})(${JSON.stringify([options, only])})`);
}

/** An admin key, and a client signing with it. */
async function adminKey(s: Server, input: Json = {}): Promise<{ id: string; client: PortcullisClient }> {
  const created = await s.t.createKey({ account: "ops", scopes: ["admin:*"], operator: true, ...input });
  if (created.secret !== null) secrets.push(created.secret);
  return { id: created.key.id, client: createClient({ baseUrl: s.base, keyId: created.key.id, secret: created.secret ?? "" }) };
}

/** Registers a passkey to the client's key through the browser; the passkey as answered. */
async function register(s: Server, tab: Tab, client: PortcullisClient, label = "laptop"): Promise<Json & { id: string }> {
  const options = await client.json<Json>("POST", "/portcullis/v1/passkeys/registration/options", { json: { label } });
  const credential = await create(tab, options);
  return client.json<Json & { id: string }>("POST", "/portcullis/v1/passkeys/registration", { json: { credential } });
}

/** A sign-in answer from the browser for fresh options (limited to `only` when given). */
async function assertion(s: Server, tab: Tab, only: string | null): Promise<Json> {
  const options = await post(s, "/portcullis/v1/passkeys/authentication/options", {});
  expect(options.status).toBe(200);
  return get(tab, options.body, only);
}

/** A session of the key, issued by the core's session authority (the session endpoints are not on this listener). */
async function sessionOf(s: Server, keyId: string, scopes?: string[]): Promise<{ keyid: string; secret: string }> {
  const sessions = s.t.core.sessions;
  const key = await s.t.core.cache.load(keyId);
  if (sessions === null || key === null) throw new Error("no session authority or no key");
  return sessions.logon(key, scopes === undefined ? {} : { scopes }, "127.0.0.1", Date.now());
}

async function auditEvents(s: Server, event: string): Promise<Json[]> {
  await s.t.core.audit.flush();
  const store = s.t.store;
  if (!(store instanceof SqliteStore)) throw new Error("a SQLite store was expected");
  const rows = store.audit.query({ events: [event], limit: 1000 });
  return rows.map((r) => JSON.parse(r.entry) as Json);
}

describe.skipIf(!haveChromium && !IN_CI)("passkeys, with a browser's virtual authenticator", () => {
  let s: Server;
  let tab: Tab;

  beforeAll(async () => {
    s = await startServer();
    await launch();
    tab = await openTab(s.origin);
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await stopServer(s);
  });

  it("registers a passkey to an admin key, lists it, and audits it", async () => {
    const { id: keyId, client } = await adminKey(s);
    const options = await client.json<Json & { rp: Json; user: Json; challenge: string; authenticatorSelection: Json; pubKeyCredParams: Json[]; timeout: number }>(
      "POST",
      "/portcullis/v1/passkeys/registration/options",
      { json: { label: "laptop" } },
    );
    expect(options.rp).toMatchObject({ id: "localhost" });
    expect(options.user).toMatchObject({ name: keyId });
    expect(options.authenticatorSelection).toMatchObject({ residentKey: "preferred", userVerification: "required" });
    expect(options.pubKeyCredParams.map((p) => p.alg)).toEqual([-8, -7]);
    expect(options.timeout).toBe(300_000);
    const credential = await create(tab, options);
    const passkey = await client.json<Json & { id: string }>("POST", "/portcullis/v1/passkeys/registration", { json: { credential } });
    expect(passkey).toMatchObject({ id: credential.id, keyId, label: "laptop", transports: ["internal"], lastUsedAt: null });
    expect(passkey).not.toHaveProperty("publicKey");
    const listed = await client.json<{ passkeys: Json[] }>("GET", "/portcullis/v1/passkeys");
    expect(listed.passkeys.map((p) => p.id)).toEqual([passkey.id]);
    const registered = (await auditEvents(s, "passkey.register")).filter((e) => e.key === keyId);
    expect(registered).toHaveLength(1);
    expect(registered[0]).toMatchObject({ actor: `key:${keyId}`, detail: { passkey: passkey.id, label: "laptop" } });
    // The same key keeps one WebAuthn user handle.
    const again = await client.json<{ user: Json; excludeCredentials: Json[] }>("POST", "/portcullis/v1/passkeys/registration/options", { json: {} });
    expect(again.user.id).toBe(options.user.id);
    expect(again.excludeCredentials.map((c) => c.id)).toEqual([passkey.id]);
  });

  it("signs in with the passkey: a session of its key, which signs admin calls, audited as a passkey logon", async () => {
    const { id: keyId, client } = await adminKey(s);
    const passkey = await register(s, tab, client);
    const answer = await assertion(s, tab, passkey.id);
    const signedIn = await post(s, "/portcullis/v1/passkeys/authentication", { credential: answer });
    expect(signedIn.status).toBe(201);
    const session = signedIn.body as { keyid: string; secret: string; expiresAt: number; scopes: string[]; apiKeyId: string };
    expect(session).toMatchObject({ apiKeyId: keyId, scopes: ["admin:*"] });
    expect(session.expiresAt - Date.now()).toBeGreaterThan(14 * 60_000);
    expect(session.expiresAt - Date.now()).toBeLessThanOrEqual(15 * 60_000);
    const asSession = createClient({ baseUrl: s.base, keyId: session.keyid, secret: session.secret });
    const keys = await asSession.json<{ keys: Json[] }>("GET", `/portcullis/v1/keys?account=ops`);
    expect(keys.keys.map((k) => k.id)).toContain(keyId);
    const logons = (await auditEvents(s, "session.create")).filter((e) => e.key === keyId);
    expect(logons).toHaveLength(1);
    expect(logons[0]).toMatchObject({ actor: `key:${keyId}`, detail: { method: "passkey", passkey: passkey.id } });
    expect(JSON.stringify(logons[0])).not.toContain(session.secret);
    const [shown] = (await client.json<{ passkeys: Json[] }>("GET", "/portcullis/v1/passkeys")).passkeys;
    expect(shown?.counter).toBeGreaterThan(passkey.counter as number);
    expect(typeof shown?.lastUsedAt).toBe("number");
  });

  it("an account admin key signs in to its own account only, with its own scopes", async () => {
    const { id: keyId, client } = await adminKey(s, { account: "acct-self", scopes: ["admin:keys", "read"], operator: false });
    await s.t.createKey({ account: "acct-self", scopes: ["read"], label: "own bot" });
    await s.t.createKey({ account: "acct-other", scopes: ["read"], label: "someone else's" });
    const passkey = await register(s, tab, client);
    const signedIn = await post(s, "/portcullis/v1/passkeys/authentication", { credential: await assertion(s, tab, passkey.id) });
    expect(signedIn).toMatchObject({ status: 201, body: { apiKeyId: keyId, scopes: ["admin:keys", "read"] } });
    const session = signedIn.body as { keyid: string; secret: string };
    const asSession = createClient({ baseUrl: s.base, keyId: session.keyid, secret: session.secret });
    const listed = await asSession.json<{ keys: Json[] }>("GET", "/portcullis/v1/keys");
    expect(new Set(listed.keys.map((k) => k.account))).toEqual(new Set(["acct-self"]));
  });

  it("refuses an answer whose user handle is not the passkey's key's: PASSKEY_VERIFICATION_FAILED", async () => {
    const { client } = await adminKey(s);
    // An authenticator of its own, holding this one passkey: the browser offers it unasked (a
    // discoverable credential), and the answer names its user.
    const own = await openTab(s.origin);
    try {
      await register(s, own, client);
      const answer = await assertion(s, own, null);
      const response = answer.response as Json;
      expect(typeof response.userHandle).toBe("string");
      const swapped = { ...answer, response: { ...response, userHandle: Buffer.from("someone else").toString("base64url") } };
      expect(await post(s, "/portcullis/v1/passkeys/authentication", { credential: swapped })).toMatchObject({ status: 401, body: { code: "PASSKEY_VERIFICATION_FAILED" } });
      // The refused attempt spent the challenge: the unaltered answer is refused too; a fresh one signs in.
      expect(await post(s, "/portcullis/v1/passkeys/authentication", { credential: answer })).toMatchObject({ status: 401, body: { code: "PASSKEY_CHALLENGE_INVALID" } });
      expect((await post(s, "/portcullis/v1/passkeys/authentication", { credential: await assertion(s, own, null) })).status).toBe(201);
    } finally {
      await own.page.close();
    }
  });

  it("refuses a replayed sign-in answer (its challenge is spent): PASSKEY_CHALLENGE_INVALID", async () => {
    const { client } = await adminKey(s);
    const passkey = await register(s, tab, client);
    const answer = await assertion(s, tab, passkey.id);
    expect((await post(s, "/portcullis/v1/passkeys/authentication", { credential: answer })).status).toBe(201);
    const replay = await post(s, "/portcullis/v1/passkeys/authentication", { credential: answer });
    expect(replay).toMatchObject({ status: 401, body: { code: "PASSKEY_CHALLENGE_INVALID" } });
  });

  it("refuses an answer for a challenge the server never issued, and a registration challenge used to sign in", async () => {
    const { client } = await adminKey(s);
    const passkey = await register(s, tab, client);
    const forged = await get(tab, { challenge: "bm90LWlzc3VlZC1ieS10aGUtc2VydmVyLWF0LWFsbA", rpId: "localhost", userVerification: "required" }, passkey.id);
    expect(await post(s, "/portcullis/v1/passkeys/authentication", { credential: forged })).toMatchObject({ status: 401, body: { code: "PASSKEY_CHALLENGE_INVALID" } });
    const registration = await client.json<{ challenge: string }>("POST", "/portcullis/v1/passkeys/registration/options", { json: {} });
    const crossed = await get(tab, { challenge: registration.challenge, rpId: "localhost", userVerification: "required" }, passkey.id);
    expect(await post(s, "/portcullis/v1/passkeys/authentication", { credential: crossed })).toMatchObject({ status: 401, body: { code: "PASSKEY_CHALLENGE_INVALID" } });
  });

  it("refuses an answer made on another origin: PASSKEY_VERIFICATION_FAILED", async () => {
    const { client } = await adminKey(s);
    const passkey = await register(s, tab, client);
    // Same host (the RP id is localhost), another port: another origin.
    const elsewhere = await openTab(`http://localhost:${s.port === 65_535 ? 65_534 : s.port + 1}`);
    try {
      const { credentials } = await tab.cdp.send("WebAuthn.getCredentials", { authenticatorId: tab.authenticatorId });
      const copy = credentials.find((c) => Buffer.from(c.credentialId, "base64").toString("base64url") === passkey.id);
      expect(copy).toBeDefined();
      if (copy !== undefined) await elsewhere.cdp.send("WebAuthn.addCredential", { authenticatorId: elsewhere.authenticatorId, credential: copy });
      const answer = await assertion(s, elsewhere, passkey.id);
      expect(await post(s, "/portcullis/v1/passkeys/authentication", { credential: answer })).toMatchObject({ status: 401, body: { code: "PASSKEY_VERIFICATION_FAILED" } });
    } finally {
      await elsewhere.page.close();
    }
  });

  it("refuses a credential that is not (or no longer) registered: PASSKEY_UNKNOWN", async () => {
    const { client } = await adminKey(s);
    const passkey = await register(s, tab, client);
    const removed = await client.json<Json>("DELETE", `/portcullis/v1/passkeys/${passkey.id}`);
    expect(removed).toMatchObject({ id: passkey.id });
    expect((await auditEvents(s, "passkey.remove")).some((e) => (e.detail as Json).passkey === passkey.id)).toBe(true);
    const answer = await assertion(s, tab, passkey.id);
    expect(await post(s, "/portcullis/v1/passkeys/authentication", { credential: answer })).toMatchObject({ status: 401, body: { code: "PASSKEY_UNKNOWN" } });
    expect(await code(client.json("DELETE", `/portcullis/v1/passkeys/${passkey.id}`))).toBe("PASSKEY_NOT_FOUND");
  });

  it("a revoked key's passkey signs nobody in, and revoking the key ends the passkey's session", async () => {
    const { id: keyId, client } = await adminKey(s);
    const { client: operator } = await adminKey(s);
    const passkey = await register(s, tab, client);
    const signedIn = await post(s, "/portcullis/v1/passkeys/authentication", { credential: await assertion(s, tab, passkey.id) });
    expect(signedIn.status).toBe(201);
    const session = signedIn.body as { keyid: string; secret: string };
    const asSession = createClient({ baseUrl: s.base, keyId: session.keyid, secret: session.secret });
    expect(await code(asSession.json("GET", "/portcullis/v1/passkeys"))).toBe("ok");
    await operator.json("POST", `/portcullis/v1/keys/${keyId}/revoke`, { json: { reason: "left" } });
    expect(await code(asSession.json("GET", "/portcullis/v1/passkeys"))).toBe("KEY_REVOKED");
    expect(await post(s, "/portcullis/v1/passkeys/authentication", { credential: await assertion(s, tab, passkey.id) })).toMatchObject({ status: 401, body: { code: "KEY_REVOKED" } });
  });

  it("a suspended key's passkey signs nobody in until the key is resumed", async () => {
    const { id: keyId, client } = await adminKey(s);
    const { client: operator } = await adminKey(s);
    const passkey = await register(s, tab, client);
    await operator.json("POST", `/portcullis/v1/keys/${keyId}/suspend`, { json: {} });
    expect(await post(s, "/portcullis/v1/passkeys/authentication", { credential: await assertion(s, tab, passkey.id) })).toMatchObject({ status: 403, body: { code: "KEY_SUSPENDED" } });
    await operator.json("POST", `/portcullis/v1/keys/${keyId}/resume`);
    expect((await post(s, "/portcullis/v1/passkeys/authentication", { credential: await assertion(s, tab, passkey.id) })).status).toBe(201);
  });

  it("refuses a cloned authenticator (its signature counter went back): PASSKEY_COUNTER_REGRESSED, audited", async () => {
    const { id: keyId, client } = await adminKey(s);
    const passkey = await register(s, tab, client);
    // The authenticator's state now, exported: the clone.
    const { credential: clone } = await tab.cdp.send("WebAuthn.getCredential", { authenticatorId: tab.authenticatorId, credentialId: Buffer.from(passkey.id, "base64url").toString("base64") });
    expect((await post(s, "/portcullis/v1/passkeys/authentication", { credential: await assertion(s, tab, passkey.id) })).status).toBe(201);
    // The original was used since; the clone answers with the counter it had.
    await tab.cdp.send("WebAuthn.removeCredential", { authenticatorId: tab.authenticatorId, credentialId: clone.credentialId });
    await tab.cdp.send("WebAuthn.addCredential", { authenticatorId: tab.authenticatorId, credential: clone });
    const refused = await post(s, "/portcullis/v1/passkeys/authentication", { credential: await assertion(s, tab, passkey.id) });
    expect(refused).toMatchObject({ status: 401, body: { code: "PASSKEY_COUNTER_REGRESSED" } });
    const clones = (await auditEvents(s, "passkey.clone")).filter((e) => e.key === keyId);
    expect(clones).toHaveLength(1);
    expect(clones[0]).toMatchObject({ actor: "anonymous", detail: { passkey: passkey.id } });
  });

  it("registration: only by an admin key signing itself (never a session), for its own challenge, once per credential", async () => {
    const { id: keyId, client } = await adminKey(s);
    // Not an admin key.
    const plain = await s.t.createKey({ account: "acct-1", scopes: ["read"] });
    const trader = createClient({ baseUrl: s.base, keyId: plain.key.id, secret: plain.secret ?? "" });
    expect(await code(trader.json("POST", "/portcullis/v1/passkeys/registration/options", { json: {} }))).toBe("SCOPE_MISSING");
    // No session, narrowed or full: a passkey outlives every session, so only the key mints one
    // (a stolen session, or one a passkey opened, must not turn into a lasting credential).
    const narrowed = await sessionOf(s, keyId, ["admin:keys"]);
    const asNarrowed = createClient({ baseUrl: s.base, keyId: narrowed.keyid, secret: narrowed.secret });
    expect(await code(asNarrowed.json("POST", "/portcullis/v1/passkeys/registration/options", { json: {} }))).toBe("SESSION_NOT_ALLOWED");
    const full = await sessionOf(s, keyId);
    const asFull = createClient({ baseUrl: s.base, keyId: full.keyid, secret: full.secret });
    expect(await code(asFull.json("POST", "/portcullis/v1/passkeys/registration/options", { json: {} }))).toBe("SESSION_NOT_ALLOWED");
    // The registration step too, with options the key itself asked for.
    const keysOptions = await client.json<Json>("POST", "/portcullis/v1/passkeys/registration/options", { json: {} });
    expect(await code(asFull.json("POST", "/portcullis/v1/passkeys/registration", { json: { credential: await create(tab, keysOptions) } }))).toBe("SESSION_NOT_ALLOWED");
    const passkey = await register(s, tab, client, "by the key");
    expect(passkey).toMatchObject({ keyId, label: "by the key" });
    // Another key's challenge.
    const { client: other } = await adminKey(s);
    const options = await other.json<Json>("POST", "/portcullis/v1/passkeys/registration/options", { json: {} });
    const credential = await create(tab, options);
    expect(await code(client.json("POST", "/portcullis/v1/passkeys/registration", { json: { credential } }))).toBe("PASSKEY_CHALLENGE_INVALID");
    // The same credential again, under a fresh challenge ("none" attestation signs no challenge).
    const fresh = await other.json<{ challenge: string }>("POST", "/portcullis/v1/passkeys/registration/options", { json: {} });
    const response = credential.response as Json;
    const clientData = JSON.parse(Buffer.from(response.clientDataJSON as string, "base64url").toString("utf8")) as Json;
    const replayed = { ...credential, response: { ...response, clientDataJSON: Buffer.from(JSON.stringify({ ...clientData, challenge: fresh.challenge })).toString("base64url") } };
    const first = await other.json<Json>("POST", "/portcullis/v1/passkeys/registration", { json: { credential: replayed } });
    expect(first.id).toBe(credential.id);
    const again = await other.json<{ challenge: string }>("POST", "/portcullis/v1/passkeys/registration/options", { json: {} });
    const twice = { ...credential, response: { ...response, clientDataJSON: Buffer.from(JSON.stringify({ ...clientData, challenge: again.challenge })).toString("base64url") } };
    expect(await code(other.json("POST", "/portcullis/v1/passkeys/registration", { json: { credential: twice } }))).toBe("PASSKEY_EXISTS");
  });

  it("registration answers made on another origin, or of another relying party, do not verify", async () => {
    const { client } = await adminKey(s);
    const options = await client.json<Json & { rp: Json }>("POST", "/portcullis/v1/passkeys/registration/options", { json: {} });
    const elsewhere = await openTab(`http://localhost:${s.port === 65_535 ? 65_534 : s.port + 1}`);
    try {
      const credential = await create(elsewhere, options);
      expect(await code(client.json("POST", "/portcullis/v1/passkeys/registration", { json: { credential } }))).toBe("PASSKEY_VERIFICATION_FAILED");
    } finally {
      await elsewhere.page.close();
    }
  });

  it("a key has at most MAX_PASSKEYS_PER_KEY passkeys: PASSKEY_LIMIT_REACHED", async () => {
    const { id: keyId, client } = await adminKey(s);
    for (let i = 0; i < MAX_PASSKEYS_PER_KEY; i++) {
      await s.t.store.passkeys.insert({ id: `cred-${keyId.slice(-8)}-${i}`, keyId, account: "ops", publicKey: "AA", counter: 0, transports: [], label: "", createdAt: i, lastUsedAt: null }, "test");
    }
    expect(await code(client.json("POST", "/portcullis/v1/passkeys/registration/options", { json: {} }))).toBe("PASSKEY_LIMIT_REACHED");
  });

  it("lists and removes only the caller's own key's passkeys", async () => {
    const { client: a } = await adminKey(s);
    const { client: b } = await adminKey(s);
    const passkey = await register(s, tab, a);
    expect((await b.json<{ passkeys: Json[] }>("GET", "/portcullis/v1/passkeys")).passkeys).toEqual([]);
    expect(await code(b.json("DELETE", `/portcullis/v1/passkeys/${passkey.id}`))).toBe("PASSKEY_NOT_FOUND");
    expect((await a.json<{ passkeys: Json[] }>("GET", "/portcullis/v1/passkeys")).passkeys).toHaveLength(1);
  });

  it.each([
    ["an unknown body field", { credential: {}, extra: 1 }],
    ["no credential", {}],
    ["a credential that is not an object", { credential: "x" }],
    ["rawId unlike id", { credential: { id: "AAAA", rawId: "BBBB", type: "public-key", response: { clientDataJSON: "AA", authenticatorData: "AA", signature: "AA" } } }],
    ["a wrong type", { credential: { id: "AAAA", rawId: "AAAA", type: "password", response: { clientDataJSON: "AA", authenticatorData: "AA", signature: "AA" } } }],
    ["an unknown response member", { credential: { id: "AAAA", rawId: "AAAA", type: "public-key", response: { clientDataJSON: "AA", authenticatorData: "AA", signature: "AA", extra: "AA" } } }],
    ["a signature that is not base64url", { credential: { id: "AAAA", rawId: "AAAA", type: "public-key", response: { clientDataJSON: "AA", authenticatorData: "AA", signature: "A+A/" } } }],
  ])("refuses a sign-in body with %s: VALIDATION_FAILED", async (_name, body) => {
    expect(await post(s, "/portcullis/v1/passkeys/authentication", body)).toMatchObject({ status: 400, body: { code: "VALIDATION_FAILED" } });
  });

  it("never logs nor audits a secret it handed out (session secrets, admin keys' secrets), nor a signature", async () => {
    expect(secrets.length).toBeGreaterThan(5);
    expect(captured.lines.some((l) => l.includes("passkey registered"))).toBe(true);
    expect(captured.lines.some((l) => l.includes("signature counter went back"))).toBe(true);
    const store = s.t.store;
    if (!(store instanceof SqliteStore)) throw new Error("a SQLite store was expected");
    await s.t.core.audit.flush();
    const audited = store.audit.query({ limit: 100_000 }).map((r) => r.entry);
    expect(audited.length).toBeGreaterThan(10);
    for (const secret of secrets) {
      expect(captured.lines.filter((l) => l.includes(secret))).toEqual([]);
      expect(audited.filter((e) => e.includes(secret))).toEqual([]);
    }
    expect(captured.lines.filter((l) => /"signature"\s*:\s*"[A-Za-z0-9_-]{20,}/.test(l))).toEqual([]);
  });

  it("answers garbage inside a well-formed credential with a refusal, never a 5xx", async () => {
    const junk = (clientDataJSON: string): Json => ({ credential: { id: "AAAA", rawId: "AAAA", type: "public-key", response: { clientDataJSON, authenticatorData: "AAAA", signature: "AAAA" } } });
    expect((await post(s, "/portcullis/v1/passkeys/authentication", junk("AAAA"))).body.code).toBe("PASSKEY_VERIFICATION_FAILED");
    const options = await post(s, "/portcullis/v1/passkeys/authentication/options", {});
    const clientData = Buffer.from(JSON.stringify({ type: "webauthn.get", challenge: options.body.challenge, origin: s.origin })).toString("base64url");
    expect((await post(s, "/portcullis/v1/passkeys/authentication", junk(clientData))).body.code).toBe("PASSKEY_UNKNOWN");
    expect((await post(s, "/portcullis/v1/passkeys/authentication/options", { label: "x" })).body.code).toBe("VALIDATION_FAILED");
    const { client } = await adminKey(s);
    expect(await code(client.json("POST", "/portcullis/v1/passkeys/registration/options", { json: { label: 5 } }))).toBe("VALIDATION_FAILED");
    expect(await code(client.json("POST", "/portcullis/v1/passkeys/registration", { json: { credential: { id: "AAAA", rawId: "AAAA", type: "public-key", response: { clientDataJSON: "AAAA", attestationObject: "AAAA", transports: ["carrier-pigeon"] } } } }))).toBe(
      "VALIDATION_FAILED",
    );
    expect(await code(client.json("POST", "/portcullis/v1/passkeys/registration", { json: { credential: { id: "AAAA", rawId: "AAAA", type: "public-key", response: { clientDataJSON: "AAAA", attestationObject: "AAAA" } } } }))).toBe(
      "PASSKEY_VERIFICATION_FAILED",
    );
  });
});

describe("passkey sign-ins are charged to the address like any authentication failure", () => {
  let s: Server;
  beforeAll(async () => {
    s = await startServer({ shield: true });
  });
  afterAll(async () => {
    await stopServer(s);
  });

  it("blocks the address after repeated refused sign-ins (IP_BLOCKED), before any passkey check", async () => {
    const forged = { credential: { id: "AAAA", rawId: "AAAA", type: "public-key", response: { clientDataJSON: Buffer.from(JSON.stringify({ type: "webauthn.get", challenge: "bm9uZQ" })).toString("base64url"), authenticatorData: "AAAA", signature: "AAAA" } } };
    // Three are allowed in the window (authFailuresPerIp); the fourth blocks the address.
    for (let i = 0; i < 4; i++) expect((await post(s, "/portcullis/v1/passkeys/authentication", forged)).body.code).toBe("PASSKEY_CHALLENGE_INVALID");
    // The failure counter learns off the response path: the next request after it is blocked.
    await expect.poll(async () => (await post(s, "/portcullis/v1/passkeys/authentication/options", {})).body.code, { timeout: 2_000 }).toBe("IP_BLOCKED");
  });
});

describe("passkey challenges expire (a frozen clock)", () => {
  let s: Server;
  beforeAll(async () => {
    s = await startServer({ frozen: true });
  });
  afterAll(async () => {
    await stopServer(s);
  });

  /** A sign-in answer carrying `challenge`, from no registered credential. */
  const answer = (challenge: unknown): Json => ({
    credential: { id: "AAAA", rawId: "AAAA", type: "public-key", response: { clientDataJSON: Buffer.from(JSON.stringify({ type: "webauthn.get", challenge, origin: s.origin })).toString("base64url"), authenticatorData: "AAAA", signature: "AAAA" } },
  });

  it("a sign-in challenge is good for 2 minutes, and not at 2 minutes", async () => {
    const fresh = await post(s, "/portcullis/v1/passkeys/authentication/options", {});
    const stale = await post(s, "/portcullis/v1/passkeys/authentication/options", {});
    s.t.clock.advance(120_000 - 1);
    // Still good: the challenge passes, and the unknown credential is what is refused.
    expect((await post(s, "/portcullis/v1/passkeys/authentication", answer(fresh.body.challenge))).body.code).toBe("PASSKEY_UNKNOWN");
    s.t.clock.advance(1);
    expect((await post(s, "/portcullis/v1/passkeys/authentication", answer(stale.body.challenge))).body.code).toBe("PASSKEY_CHALLENGE_INVALID");
  });
});

describe("passkeys' relying party", () => {
  it("is the host of the console's origins: one host, exact origins, a domain name", () => {
    expect(relyingParty(["https://console.example.com", "https://console.example.com:8443"])).toEqual({ id: "console.example.com", origins: ["https://console.example.com", "https://console.example.com:8443"] });
    expect(() => relyingParty([])).toThrow(TypeError);
    expect(() => relyingParty(["https://a.example", "https://b.example"])).toThrow(/one host/);
    expect(() => relyingParty(["https://console.example/console"])).toThrow(/no path/);
    expect(() => relyingParty(["ftp://console.example"])).toThrow(TypeError);
    expect(() => relyingParty(["http://127.0.0.1:8081"])).toThrow(/domain name/);
  });

  it("is derived from the listener when admin.origin is not set", () => {
    expect(listenerOrigin({ port: 8081 }, "127.0.0.1", false)).toBe("http://localhost:8081");
    expect(listenerOrigin({ port: 443 }, "console.example", true)).toBe("https://console.example");
    expect(listenerOrigin({ port: 8443 }, "0.0.0.0", true)).toBe("https://localhost:8443");
    expect(listenerOrigin({ port: 8443 }, "::", true)).toBe("https://localhost:8443");
    // Another IP address cannot be a relying party: admin.origin must name the host.
    expect(listenerOrigin({ port: 8081 }, "10.0.0.5", false)).toBeNull();
    expect(listenerOrigin({ port: 8081 }, "2001:db8::1", false)).toBeNull();
  });

  it("admin.origin: an origin or a list, checked at startup (CONFIG_INVALID)", () => {
    const config = (admin: Json): unknown => ({ gateway: { upstream: "http://127.0.0.1:9000" }, routes: [{ method: "GET", path: "/a", permission: "read" }], admin });
    expect(parseConfig(config({ origin: "https://console.example" }), "/tmp").admin.origin).toEqual(["https://console.example"]);
    expect(parseConfig(config({ origin: ["https://console.example", "https://console.example:8443"] }), "/tmp").admin.origin).toHaveLength(2);
    expect(parseConfig(config({}), "/tmp").admin.origin).toBeNull();
    expect(() => parseConfig(config({ origin: ["https://a.example", "https://b.example"] }), "/tmp")).toThrow(expect.objectContaining({ code: "CONFIG_INVALID" }) as Error);
    expect(() => parseConfig(config({ origin: 5 }), "/tmp")).toThrow(expect.objectContaining({ code: "CONFIG_INVALID" }) as Error);
  });
});

describe("the runtime serves passkeys on the admin listener", () => {
  const runs: { dir: string; running: RunningPortcullis }[] = [];
  afterAll(async () => {
    for (const r of runs) {
      await r.running.close(500);
      rmSync(r.dir, { recursive: true, force: true });
    }
  });

  async function start(admin: Json): Promise<string> {
    const dir = mkdtempSync(join(tmpdir(), "portcullis-passkeys-runtime-"));
    await initDataDir(dir, "test");
    const config = parseConfig(
      { dataDir: dir, environment: "test", gateway: { host: "127.0.0.1", port: 0, upstream: "http://127.0.0.1:9" }, admin: { host: "127.0.0.1", port: 0, ...admin }, routes: [{ method: "GET", path: "/a", permission: "read" }] },
      dir,
    );
    const running = await startPortcullis(config, silentLogger());
    runs.push({ dir, running });
    if (running.adminAddress === null) throw new Error("no admin listener");
    return urlOf(running.adminAddress);
  }

  it("bound to the listener's own origin (localhost) without admin.origin, to admin.origin's host with it", async () => {
    const derived = await start({});
    const options = (await (await fetch(`${derived}/portcullis/v1/passkeys/authentication/options`, { method: "POST" })).json()) as Json;
    expect(options).toMatchObject({ rpId: "localhost", userVerification: "required", timeout: 120_000 });
    const configured = await start({ origin: ["https://console.venue.example", "https://console.venue.example:8443"] });
    const named = (await (await fetch(`${configured}/portcullis/v1/passkeys/authentication/options`, { method: "POST" })).json()) as Json;
    expect(named).toMatchObject({ rpId: "console.venue.example" });
  });
});
