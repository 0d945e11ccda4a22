/**
 * The console in a real browser (issue 18): Debian's Chromium driven by playwright-core, against
 * the whole demo stack (the demo exchange, the gateway in front of it, the admin API serving the
 * built console). The flows an operator runs:
 *
 * - sign in with the operator's credential file (an Ed25519 key imported in the browser, a signed
 *   logon, then a session);
 * - create an Ed25519 key in the browser: only its public half is sent; the downloaded credential
 *   file signs a real gateway request from Node with @portcullis/client;
 * - see the key in the live statistics (top keys, charts);
 * - revoke it in the console (after the confirmation) and see its next request refused
 *   KEY_REVOKED;
 * - approve a held withdrawal with two approvers' key files (PKCS#8 PEM, signed in the browser
 *   over the digest it recomputed) and see the demo exchange receive it exactly once;
 * - an account admin sees its own account's keys and not the operator pages.
 *
 * Each page is screenshotted (1280x800) to $SCREENSHOTS_DIR (default test-output/screenshots;
 * docs/screenshots holds a committed run). Without Chromium the file skips with the reason, except
 * in CI (CI=true), where that is a failure.
 */
import { createClient, PortcullisApiError } from "@portcullis/client";
import { type DemoStack, startDemoStack } from "@portcullis/demo-exchange";
import { createHmac, generateKeyPairSync } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/log/logger.js";
import { consoleOrigin, launch, screenshotsDir, unavailable } from "./support.js";

const reason = unavailable();
if (reason !== null && process.env.CI === "true") throw new Error(`the browser tests cannot run in CI: ${reason}`);

const ADDRESS = "TConsoleTestWallet111111111111111";
const POLICY = {
  description: "console test: every withdrawal waits for two treasury approvers",
  rules: [
    { name: "withdrawals", match: { kind: ["withdraw"] }, action: { type: "hold", approvals: [{ group: "treasury", count: 2 }] } },
    { name: "everything else", action: { type: "allow" } },
  ],
};

let stack: DemoStack;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let origin: string;
let files: string;
let shots: string;
const cspViolations: string[] = [];
/** Uncaught errors in the page: none is expected. */
const pageErrors: string[] = [];
let treasury: { id: string; secret: string };
let operatorFile: string;
let adminFile: string;
const approverFiles: Record<string, string> = {};

function pem(key: { export(o: { type: "pkcs8" | "spki"; format: "pem" }): string | Buffer }, type: "pkcs8" | "spki"): string {
  return key.export({ type, format: "pem" }).toString();
}

/** A key made on the stack with an Ed25519 pair, written as a console credential file. */
async function credentialFile(name: string, input: Record<string, unknown>): Promise<string> {
  const pair = generateKeyPairSync("ed25519");
  const { key } = await stack.createKey({ ...input, algorithm: "ed25519", publicKey: pem(pair.publicKey, "spki") });
  const file = join(files, `${name}.json`);
  writeFileSync(file, JSON.stringify({ keyId: key.id, algorithm: "ed25519", privateKey: pem(pair.privateKey, "pkcs8") }), { mode: 0o600 });
  return file;
}

/** A withdrawal signed in the Binance dialect, as a bot sends it: held by the policy (operation id as its id). */
async function withdraw(): Promise<string> {
  const params = new URLSearchParams({ coin: "USDT", network: "TRX", address: ADDRESS, amount: "250", timestamp: String(Date.now()) });
  params.set("signature", createHmac("sha256", treasury.secret).update(params.toString()).digest("hex"));
  const res = await fetch(`${stack.gateway}/sapi/v1/capital/withdraw/apply?${params.toString()}`, { method: "POST", headers: { "x-mbx-apikey": treasury.id } });
  const body = (await res.json()) as { id?: string };
  expect(res.status).toBe(200);
  expect(body.id).toMatch(/^op_[0-9a-f]{32}$/);
  return body.id ?? "";
}

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: join(shots, `${name}.png`) });
}

async function signIn(p: Page, file: string): Promise<void> {
  await p.goto(`${origin}/console/`);
  await p.getByTestId("signin-file").setInputFiles(file);
  await expect.poll(() => p.getByTestId("signin-text").inputValue()).toContain("PRIVATE KEY");
  await p.getByTestId("signin-submit").click();
  await p.getByTestId("sign-out").waitFor();
}

async function go(id: string): Promise<void> {
  await page.getByTestId(`nav-${id}`).click();
  await page.getByTestId(`page-${id}`).waitFor();
}

describe.skipIf(reason !== null)(`the console in Chromium${reason === null ? "" : ` (skipped: ${reason})`}`, () => {
  beforeAll(async () => {
    stack = await startDemoStack({ port: 0, adminPort: 0, upstreamPort: 0, logger: silentLogger(), serverTiming: false, start: { holds: { pollMs: 100 } } });
    files = mkdtempSync(join(tmpdir(), "portcullis-console-"));
    shots = screenshotsDir();
    mkdirSync(shots, { recursive: true });
    operatorFile = await credentialFile("operator", { account: "console-ops", scopes: ["admin:*"], operator: true, label: "console operator" });
    adminFile = await credentialFile("account-admin", { account: "demo-trader", scopes: ["admin:keys", "admin:anomalies"], label: "demo-trader's admin" });
    const made = await stack.createKey({ account: "demo-treasury", scopes: ["read", "withdraw"], dialects: ["native", "binance"], owner: "dave", label: "treasury bot" });
    treasury = { id: made.key.id, secret: made.secret ?? "" };
    await stack.createKey({ account: "demo-trader", scopes: ["read", "trade"], label: "market maker" });
    const { governance, holds } = stack.running;
    for (const name of ["alice", "bob"]) {
      const pair = generateKeyPairSync("ed25519");
      approverFiles[name] = join(files, `${name}.pem`);
      writeFileSync(approverFiles[name], pem(pair.privateKey, "pkcs8"), { mode: 0o600 });
      await holds.addApprover(name, ["treasury"], pem(pair.publicKey, "spki"), "test");
    }
    const initiator = { actor: "test", account: null, keyId: null, client: null, owner: null } as const;
    expect((await governance.policy.apply(POLICY, initiator)).state).toBe("applied");
    origin = await consoleOrigin(stack.admin ?? "");
    browser = await launch();
    context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
    page = await context.newPage();
    page.setDefaultTimeout(10_000);
    if (process.env.CONSOLE_TEST_DEBUG !== undefined) page.on("console", (m) => { console.log(`[browser] ${m.type()} ${m.text()}`); });
    page.on("pageerror", (e) => {
      pageErrors.push(e.message);
      if (process.env.CONSOLE_TEST_DEBUG !== undefined) console.log(`[pageerror] ${e.stack ?? e.message}`);
    });
    page.on("console", (m) => {
      if (m.type() === "error" && /Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
    });
  }, 90_000);

  afterAll(async () => {
    await browser.close().catch(() => undefined);
    await stack.close();
    rmSync(files, { recursive: true, force: true });
  });

  afterEach(async ({ task }) => {
    // A failed step leaves its page behind, for whoever reads the failure.
    if (task.result?.state === "fail") await page.screenshot({ path: join(shots, `failed-${task.name.slice(0, 40).replace(/[^a-z0-9]+/gi, "-")}.png`) }).catch(() => undefined);
  });

  let created: { keyId: string; privateKey: string };

  it("signs in with the operator's credential file; a bad file is refused with a reason", async () => {
    await page.goto(`${origin}/console/`);
    await page.getByTestId("signin-form").waitFor();
    await shot("sign-in");
    await page.getByTestId("signin-text").fill('{"keyId":"pck_nope","algorithm":"ed25519","privateKey":"-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----"}');
    await page.getByTestId("signin-submit").click();
    await expect.poll(() => page.getByTestId("error-code").textContent()).toBe("CLIENT_ERROR");
    await signIn(page, operatorFile);
    await expect.poll(() => page.getByTestId("who").textContent()).toContain("operator");
    for (const p of ["overview", "keys", "approvals", "anomalies", "policies", "audit"]) expect(await page.getByTestId(`nav-${p}`).count()).toBe(1);
  });

  it("creates an Ed25519 key in the browser; the downloaded credential signs a real gateway request", async () => {
    await go("keys");
    await page.getByTestId("key-create-open").click();
    await page.getByTestId("create-account").fill("browser-bot");
    await page.getByTestId("create-label").fill("made in the console");
    await page.getByTestId("scope-trade").check();
    await page.getByTestId("create-maxNotional").fill("50000");
    expect(await page.getByTestId("kind-ed25519").isChecked()).toBe(true);
    await page.getByTestId("create-submit").click();
    await page.getByTestId("key-created").waitFor();
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByTestId("download-credential").click()]);
    const path = await download.path();
    created = JSON.parse(readFileSync(path, "utf8")) as { keyId: string; privateKey: string };
    expect(created.keyId).toBe(await page.getByTestId("created-key-id").textContent());
    // Only the public half reached the server.
    const stored = await stack.running.core.keys.get(created.keyId);
    expect(stored).toMatchObject({ account: "browser-bot", algorithm: "ed25519", scopes: ["read", "trade"] });
    expect(JSON.stringify(stored)).not.toContain(created.privateKey.split("\n")[1] ?? "x");

    const bot = createClient({ baseUrl: stack.gateway, keyId: created.keyId, privateKey: created.privateKey, algorithm: "ed25519" });
    for (let i = 0; i < 3; i++) {
      const res = await bot.request("GET", "/api/v3/account");
      expect(res.status).toBe(200);
      await res.body?.cancel();
    }
    await page.getByTestId("key-created-done").click();
    await page.getByTestId(`key-row-${created.keyId}`).waitFor();
    // The account filter, then the search box (`q`, searched by the server): the key is found.
    await page.getByTestId("keys-account").fill("browser-bot");
    await expect.poll(() => page.getByTestId("keys-table").locator("tbody tr").count()).toBe(1);
    await page.getByTestId("keys-account").fill("");
    await page.getByTestId("keys-search").fill("browser-b");
    await page.getByTestId(`key-row-${created.keyId}`).waitFor();
    await page.getByTestId("risk-profile").waitFor();
    await shot("keys");
  });

  it("creates an HMAC key: the secret is shown once, with a copy button, and signs requests", async () => {
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin });
    await page.getByTestId("key-create-open").click();
    await page.getByTestId("create-account").fill("hmac-bot");
    await page.getByTestId("kind-hmac").check();
    await page.getByTestId("create-submit").click();
    const secret = (await page.getByTestId("hmac-secret-value").textContent()) ?? "";
    const keyId = (await page.getByTestId("created-key-id").textContent()) ?? "";
    expect(secret.length).toBeGreaterThanOrEqual(32);
    await page.getByTestId("copy").click();
    await expect.poll(() => page.getByTestId("copy").textContent()).toBe("Copied");
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(secret);
    await shot("keys-hmac-secret");
    const res = await createClient({ baseUrl: stack.gateway, keyId, secret }).request("GET", "/api/v3/account");
    expect(res.status).toBe(200);
    await res.body?.cancel();
    await page.getByTestId("key-created-done").click();
    // Shown once: the key's page has no secret.
    await page.getByTestId("key-detail").waitFor();
    expect(await page.getByTestId("hmac-secret").count()).toBe(0);
  });

  it("shows the key's requests in the live statistics", async () => {
    await go("overview");
    await page.getByTestId(`top-key-${created.keyId}`).waitFor({ timeout: 15_000 });
    await page.getByTestId("chart-total").locator("canvas").waitFor();
    expect(Number(await page.getByTestId("total-allowed").textContent())).toBeGreaterThanOrEqual(3);
    await shot("overview");
  });

  it("revokes the key after a confirmation; its next request is refused KEY_REVOKED", async () => {
    await go("keys");
    await page.getByTestId("keys-search").fill(created.keyId);
    await page.getByTestId(`key-open-${created.keyId}`).click();
    await page.getByTestId("key-revoke").click();
    await page.getByTestId("confirm-reason").fill("test: revoked from the console");
    await shot("keys-revoke-confirm");
    await page.getByTestId("confirm-ok").click();
    await expect.poll(() => page.getByTestId("detail-status").textContent()).toBe("revoked");
    const bot = createClient({ baseUrl: stack.gateway, keyId: created.keyId, privateKey: created.privateKey, algorithm: "ed25519" });
    const err = await bot.json("GET", "/api/v3/account").then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PortcullisApiError);
    expect((err as PortcullisApiError).code).toBe("KEY_REVOKED");
  });

  it("approves a held withdrawal with two approvers' key files; the exchange gets it exactly once", async () => {
    const id = await withdraw();
    expect(stack.exchange.withdrawals()).toEqual([]);
    await go("approvals");
    await page.getByTestId(`operation-open-${id}`).click();
    await page.getByTestId("digest-ok").waitFor();
    const digest = await page.getByTestId("operation-digest").textContent();
    expect(digest).toMatch(/^[0-9a-f]{64}$/);
    expect(await page.getByTestId("operation-rendering").textContent()).toContain(digest ?? "-");
    await shot("approvals");
    for (const name of ["alice", "bob"]) {
      await page.getByTestId("approver-key").setInputFiles(approverFiles[name] ?? "");
      await expect.poll(() => page.getByTestId("approver-name").inputValue()).toBe(name);
      await page.getByTestId("approve").click();
      await page.getByTestId("confirm-ok").click();
      if (name === "alice") await expect.poll(() => page.getByTestId(`operation-state-${id}`).textContent()).toBe("pending");
    }
    await expect.poll(() => stack.exchange.withdrawals().length, { timeout: 10_000 }).toBe(1);
    await page.getByTestId("approvals-state").selectOption("");
    await expect.poll(() => page.getByTestId(`operation-state-${id}`).textContent(), { timeout: 10_000 }).toBe("released");
    // Released once: several release polls later, still one withdrawal.
    await new Promise((r) => setTimeout(r, 600));
    expect(stack.exchange.withdrawals()).toHaveLength(1);
    expect(stack.exchange.withdrawals()[0]).toMatchObject({ account: "demo-treasury", address: ADDRESS });
  });

  it("rejects a held withdrawal with an approver's key file: it is never sent", async () => {
    const id = await withdraw();
    await page.getByTestId("approvals-reload").click();
    await page.getByTestId(`operation-open-${id}`).click();
    await page.getByTestId("digest-ok").waitFor();
    await page.getByTestId("approver-key").setInputFiles(approverFiles.alice ?? "");
    await expect.poll(() => page.getByTestId("approver-name").inputValue()).toBe("alice");
    await page.getByTestId("reject").click();
    await page.getByTestId("confirm-ok").click();
    await expect.poll(() => page.getByTestId("operation-state").textContent()).toBe("rejected");
    expect((await stack.running.holds.view(id)).state).toBe("rejected");
    await new Promise((r) => setTimeout(r, 300));
    expect(stack.exchange.withdrawals()).toHaveLength(1);
  });

  it("shows anomalies, policies (with a dry run's trace) and the audit page", async () => {
    await go("anomalies");
    await page.getByTestId("anomalies-table").waitFor();
    await shot("anomalies");
    await go("policies");
    await page.getByTestId("policy-version").waitFor();
    await page.getByTestId("dryrun-operation").fill(JSON.stringify({ kind: "withdraw", asset: "USDT", amount: "10", address: ADDRESS, network: "TRX" }));
    await page.getByTestId("dryrun-account").fill("demo-treasury");
    await page.getByTestId("dryrun-submit").click();
    await expect.poll(() => page.getByTestId("dryrun-decision").textContent()).toBe("hold");
    expect(await page.getByTestId("dryrun-trace").locator("li").count()).toBeGreaterThanOrEqual(1);
    await shot("policies");
    await go("audit");
    await page.getByTestId("audit-event").fill("key.revoke");
    await page.getByTestId("audit-since").fill("1h");
    await page.getByTestId("audit-search").click();
    await expect.poll(() => page.getByTestId("audit-table").locator("tbody tr").count()).toBe(1);
    expect(await page.getByTestId("audit-table").textContent()).toContain(created.keyId);
    const [csv] = await Promise.all([page.waitForEvent("download"), page.getByTestId("audit-export-csv").click()]);
    expect(readFileSync(await csv.path(), "utf8")).toContain(created.keyId);
    await page.getByTestId("audit-event").fill("");
    await page.getByTestId("audit-since").fill("");
    await page.getByTestId("audit-search").click();
    await page.getByTestId("audit-verify").click();
    await expect.poll(() => page.getByTestId("audit-verify-result").textContent()).toMatch(/^intact/);
    await shot("audit");
    expect(cspViolations).toEqual([]);
    expect(pageErrors).toEqual([]);
  });

  it("an account admin sees its own account's keys and none of the operator pages", async () => {
    const other = await context.browser()?.newContext({ viewport: { width: 1280, height: 800 } });
    if (other === undefined) throw new Error("no browser");
    const p = await other.newPage();
    try {
      await signIn(p, adminFile);
      expect(await p.getByTestId("nav-overview").count()).toBe(0);
      expect(await p.getByTestId("nav-approvals").count()).toBe(0);
      expect(await p.getByTestId("nav-keys").count()).toBe(1);
      await p.getByTestId("page-keys").waitFor();
      await expect.poll(() => p.getByTestId("keys-table").locator("tbody tr").count()).toBeGreaterThan(0);
      const accounts = await p.getByTestId("keys-table").locator("tbody tr td:nth-child(2)").allTextContents();
      expect(new Set(accounts)).toEqual(new Set(["demo-trader"]));
      await p.screenshot({ path: join(shots, "account-admin-keys.png") });
      await p.getByTestId("sign-out").click();
      await p.getByTestId("signin-form").waitFor();
    } finally {
      await other.close();
    }
  });
});
