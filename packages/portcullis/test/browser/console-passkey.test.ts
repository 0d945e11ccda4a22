/**
 * Passkeys in the console (docs/console.md "Passkeys"), in a real browser: Debian's Chromium driven
 * by playwright-core with a CDP virtual authenticator (CTAP2, internal, resident keys, user
 * verification: a platform authenticator such as Touch ID or Windows Hello), against the demo
 * stack. The console is opened at `http://localhost:PORT/console/`: the admin listener listens on
 * 127.0.0.1 with no `admin.origin`, so the runtime derives its origin, `http://localhost:PORT`,
 * the relying party the browser and the server must agree on. The flows:
 *
 * - at `http://127.0.0.1:PORT/console/` the sign-in page says why passkeys cannot work there
 *   (WebAuthn has no IP-address relying party) and links the localhost URL;
 * - sign in with the operator's credential file, register a passkey on the Passkeys page (the
 *   authenticator now holds a discoverable credential of the key); registering the same device
 *   again is refused by the browser (WEBAUTHN_ALREADY_REGISTERED);
 * - sign out; a device that cannot verify the user signs nobody in (WEBAUTHN_NOT_ALLOWED); sign in
 *   with the passkey alone, and use the Keys page with that session;
 * - remove the passkey (after a confirmation): the authenticator's copy signs nobody in
 *   (PASSKEY_UNKNOWN), and the sign-in page shows the code.
 *
 * The sign-in page and the Passkeys page are screenshotted (1280x800) to $SCREENSHOTS_DIR (default
 * test-output/screenshots; docs/screenshots holds a committed run). Without Chromium the file skips
 * with the reason, except in CI (CI=true), where that is a failure.
 */
import { type PortcullisClient, createClient } from "@portcullis/client";
import { type DemoStack, startDemoStack } from "@portcullis/demo-exchange";
import { generateKeyPairSync } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, CDPSession, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/log/logger.js";
import { consoleOrigin, launch, screenshotsDir, unavailable } from "./support.js";

const reason = unavailable();
if (reason !== null && process.env.CI === "true") throw new Error(`the browser tests cannot run in CI: ${reason}`);

let stack: DemoStack;
let browser: Browser;
let page: Page;
let cdp: CDPSession;
let authenticatorId: string;
/** The console's origin as the user opens it: by name (localhost), the relying party. */
let origin: string;
/** The same listener by its IP address, where passkeys cannot work. */
let ipOrigin: string;
let files: string;
let shots: string;
let operatorFile: string;
let operatorKeyId: string;
/** The operator key from Node, to read what the server holds. */
let operator: PortcullisClient;
const cspViolations: string[] = [];
const pageErrors: string[] = [];

function pem(key: { export(o: { type: "pkcs8" | "spki"; format: "pem" }): string | Buffer }, type: "pkcs8" | "spki"): string {
  return key.export({ type, format: "pem" }).toString();
}

async function credentials(): Promise<{ credentialId: string; isResidentCredential: boolean; rpId?: string; userHandle?: string; signCount: number }[]> {
  const { credentials: list } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  return list;
}

async function stored(): Promise<{ id: string; keyId: string; label: string; lastUsedAt: number | null }[]> {
  return (await operator.json<{ passkeys: { id: string; keyId: string; label: string; lastUsedAt: number | null }[] }>("GET", "/portcullis/v1/passkeys")).passkeys;
}

async function signInWithFile(file: string): Promise<void> {
  await page.goto(`${origin}/console/`);
  await page.getByTestId("signin-file").setInputFiles(file);
  await expect.poll(() => page.getByTestId("signin-text").inputValue()).toContain("PRIVATE KEY");
  await page.getByTestId("signin-submit").click();
  await page.getByTestId("sign-out").waitFor();
}

async function signOut(): Promise<void> {
  await page.getByTestId("sign-out").click();
  await page.getByTestId("signin-form").waitFor();
}

describe.skipIf(reason !== null)(`passkeys in the console, in Chromium${reason === null ? "" : ` (skipped: ${reason})`}`, () => {
  beforeAll(async () => {
    stack = await startDemoStack({ port: 0, adminPort: 0, upstreamPort: 0, logger: silentLogger(), serverTiming: false });
    files = mkdtempSync(join(tmpdir(), "portcullis-console-passkey-"));
    shots = screenshotsDir();
    mkdirSync(shots, { recursive: true });
    const pair = generateKeyPairSync("ed25519");
    const { key } = await stack.createKey({ account: "console-ops", scopes: ["admin:*"], operator: true, label: "console operator", algorithm: "ed25519", publicKey: pem(pair.publicKey, "spki") });
    operatorKeyId = key.id;
    operatorFile = join(files, "operator.json");
    writeFileSync(operatorFile, JSON.stringify({ keyId: key.id, algorithm: "ed25519", privateKey: pem(pair.privateKey, "pkcs8") }), { mode: 0o600 });

    ipOrigin = await consoleOrigin(stack.admin ?? "");
    operator = createClient({ baseUrl: ipOrigin, keyId: key.id, privateKey: pem(pair.privateKey, "pkcs8"), algorithm: "ed25519" });
    const admin = new URL(ipOrigin);
    expect(admin.hostname).toBe("127.0.0.1");
    origin = `http://localhost:${admin.port}`;

    browser = await launch();
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    page = await context.newPage();
    page.setDefaultTimeout(10_000);
    page.on("pageerror", (e) => {
      pageErrors.push(e.message);
    });
    page.on("console", (m) => {
      if (m.type() === "error" && /Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
    });
    // The authenticator belongs to the tab and stays across its navigations: one device, as a user has.
    cdp = await context.newCDPSession(page);
    await cdp.send("WebAuthn.enable", { enableUI: false });
    ({ authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
      options: { protocol: "ctap2", transport: "internal", hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
    }));
  }, 90_000);

  afterAll(async () => {
    await browser.close().catch(() => undefined);
    await stack.close();
    rmSync(files, { recursive: true, force: true });
  });

  afterEach(async ({ task }) => {
    if (task.result?.state === "fail") await page.screenshot({ path: join(shots, `failed-passkey-${task.name.slice(0, 40).replace(/[^a-z0-9]+/gi, "-")}.png`) }).catch(() => undefined);
  });

  it("at an IP address, says why passkeys cannot work there and links the localhost URL", async () => {
    await page.goto(`${ipOrigin}/console/`);
    await page.getByTestId("signin-form").waitFor();
    expect(await page.getByTestId("passkey-obstacle").textContent()).toContain("IP address (127.0.0.1)");
    expect(await page.getByTestId("passkey-local-url").getAttribute("href")).toBe(`${origin}/console/`);
    expect(await page.getByTestId("signin-passkey").isDisabled()).toBe(true);
    // By name, nothing stands in the way.
    await page.goto(`${origin}/console/`);
    await page.getByTestId("signin-form").waitFor();
    expect(await page.getByTestId("passkey-obstacle").count()).toBe(0);
    expect(await page.getByTestId("signin-passkey").isEnabled()).toBe(true);
    await page.screenshot({ path: join(shots, "sign-in-passkey.png") });
  });

  let passkeyId: string;

  it("signed in with the credential file, registers a passkey on this device", async () => {
    await signInWithFile(operatorFile);
    await page.getByTestId("nav-passkeys").click();
    await page.getByTestId("page-passkeys").waitFor();
    await page.getByTestId("passkeys-none").waitFor();
    await page.getByTestId("passkey-label").fill("Test laptop");
    await page.getByTestId("passkey-register").click();
    await page.getByTestId("passkey-added").waitFor();
    await expect.poll(() => page.getByTestId("passkeys-table").locator("tbody tr").count()).toBe(1);

    // The authenticator holds a discoverable credential of the relying party localhost, and the
    // server has it as the operator key's.
    const [held, ...more] = await credentials();
    expect(more).toEqual([]);
    expect(held).toMatchObject({ isResidentCredential: true, rpId: "localhost" });
    passkeyId = Buffer.from(held?.credentialId ?? "", "base64").toString("base64url");
    expect((await stored()).map((p) => [p.id, p.keyId, p.label])).toEqual([[passkeyId, operatorKeyId, "Test laptop"]]);
    await page.getByTestId(`passkey-row-${passkeyId}`).waitFor();
    expect(await page.getByTestId(`passkey-row-${passkeyId}`).textContent()).toContain("Test laptop");

    // The same device again: the server's excludeCredentials names it, the browser refuses.
    await page.getByTestId("passkey-label").fill("Test laptop, again");
    await page.getByTestId("passkey-register").click();
    await expect.poll(() => page.getByTestId("error-code").textContent()).toBe("WEBAUTHN_ALREADY_REGISTERED");
    expect(await credentials()).toHaveLength(1);
    expect(await stored()).toHaveLength(1);
  });

  it("signs out, signs in with the passkey alone, and uses the Keys page with that session", async () => {
    await signOut();
    // The device cannot verify the user (no fingerprint matched): the browser refuses, nobody signs in.
    await cdp.send("WebAuthn.setUserVerified", { authenticatorId, isUserVerified: false });
    await page.getByTestId("signin-passkey").click();
    await expect.poll(() => page.getByTestId("error-code").textContent()).toBe("WEBAUTHN_NOT_ALLOWED");
    expect(await page.getByTestId("sign-out").count()).toBe(0);
    await cdp.send("WebAuthn.setUserVerified", { authenticatorId, isUserVerified: true });

    await page.getByTestId("signin-passkey").click();
    await page.getByTestId("sign-out").waitFor();
    expect(await page.getByTestId("who").textContent()).toContain(operatorKeyId);
    expect(await page.getByTestId("who").textContent()).toContain("operator (passkey)");
    await page.getByTestId("nav-keys").click();
    await page.getByTestId("page-keys").waitFor();
    await page.getByTestId(`key-row-${operatorKeyId}`).waitFor();
    // The server saw the passkey used.
    expect((await stored())[0]?.lastUsedAt).toEqual(expect.any(Number));

    await page.getByTestId("nav-passkeys").click();
    await page.getByTestId(`passkey-row-${passkeyId}`).waitFor();
    expect(await page.getByTestId(`passkey-row-${passkeyId}`).textContent()).toContain("this session");
    // Signed in with a passkey there is no key in the page: registering another is off, and says why
    // (the API accepts a registration signed by the key itself only, never a session).
    await page.getByTestId("passkey-needs-key").waitFor();
    expect(await page.getByTestId("passkey-register").isDisabled()).toBe(true);
    await page.screenshot({ path: join(shots, "passkeys.png") });
  });

  it("removes the passkey after a confirmation: the device's copy signs nobody in (PASSKEY_UNKNOWN)", async () => {
    await page.getByTestId(`passkey-remove-${passkeyId}`).click();
    await page.getByTestId("confirm-cancel").click();
    expect(await page.getByTestId(`passkey-row-${passkeyId}`).count()).toBe(1);
    await page.getByTestId(`passkey-remove-${passkeyId}`).click();
    await page.getByTestId("confirm-ok").click();
    await page.getByTestId("passkeys-none").waitFor();
    expect(await stored()).toEqual([]);

    await signOut();
    expect(await credentials()).toHaveLength(1);
    await page.getByTestId("signin-passkey").click();
    await expect.poll(() => page.getByTestId("error-code").textContent()).toBe("PASSKEY_UNKNOWN");
    expect(await page.getByTestId("sign-out").count()).toBe(0);
    expect(cspViolations).toEqual([]);
    expect(pageErrors).toEqual([]);
  });
});
