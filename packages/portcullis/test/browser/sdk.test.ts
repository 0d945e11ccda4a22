/**
 * @portcullis/client in a real browser: Debian's Chromium driven by playwright-core (no browser
 * download), a page that bundles the SDK and viem with Vite's API (no `node:` module may reach it),
 * and the demo stack (the gateway in front of the demo exchange) started here.
 *
 * - the page makes an Ed25519 pair (WebCrypto) and a secp256k1 key (viem); only the public halves
 *   leave it; the test registers them;
 * - the page signs native requests with each (an account read, an order) and opens a session with
 *   each; the gateway verifies them and the exchange fills the orders;
 * - a key's signature under another key's id is refused in the page with its code;
 * - viem's local account, made in the page, signs EIP-712 typed data that Node recovers with viem's
 *   recoverTypedDataAddress;
 * - the SDK's wallet helpers, in the page: that account approves the page's secp256k1 key as an
 *   agent, the agent delegates narrower terms to the Ed25519 key; Node verifies the chain offline
 *   (verifyAgentChain), recovers the approval's signer with viem, and refuses a widening delegation.
 *
 * Origin: the gateway has no CORS support (it answers no preflight: a cross-origin signed request
 * is blocked by the browser, which this file shows). So the page is served from the gateway's own
 * origin, by a Playwright route that answers /sdk-test/ before it reaches the network, and the
 * SDK's requests are same-origin. A browser app on another origin needs the gateway behind its own
 * origin (a reverse proxy), as the console is served by the admin listener.
 *
 * Without Chromium the file skips with the reason, except in CI (CI=true), where that is a failure.
 */
import { type DemoStack, startDemoStack } from "@portcullis/demo-exchange";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Browser, Page } from "playwright-core";
import { type ApproveAgentMessage, verifyAgentChain, walletTypedData } from "@portcullis/client";
import { recoverTypedDataAddress } from "viem";
import { build } from "vite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/log/logger.js";
import type { SdkPage } from "./sdk-page/main.js";
import { launch } from "./support.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const PAGE_DIR = fileURLToPath(new URL("./sdk-page/", import.meta.url));
const reason = existsSync(CHROMIUM) ? null : `no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`;
if (reason !== null && process.env.CI === "true") throw new Error(`the browser tests cannot run in CI: ${reason}`);

const CHAIN_ID = 31337;

/** The page's script: sdk-page/main.ts and everything it imports, one IIFE for the browser. */
async function bundle(): Promise<string> {
  const out = await build({
    configFile: false,
    logLevel: "warn",
    root: PAGE_DIR,
    build: {
      write: false,
      minify: false,
      target: "es2022",
      copyPublicDir: false,
      lib: { entry: join(PAGE_DIR, "main.ts"), formats: ["iife"], name: "sdkPageBundle", fileName: () => "sdk.js" },
      // @hpke/core's WebCrypto lookup falls back to `await import("crypto")` where there is no
      // globalThis.crypto (old Node); a browser never takes it. Left as the import it is rather
      // than replaced by Vite's stub, so the checks below still catch any real Node dependency.
      rolldownOptions: { external: ["crypto"] },
    },
  });
  const chunks = (Array.isArray(out) ? out : [out]).flatMap((o) => ("output" in o ? o.output : [])).filter((c) => c.type === "chunk");
  expect(chunks.map((c) => c.fileName)).toEqual(["sdk.js"]);
  return chunks[0]?.type === "chunk" ? chunks[0].code : "";
}

const PAGE = '<!doctype html><html><head><meta charset="utf-8"><title>SDK test</title></head><body><script src="/sdk-test/sdk.js"></script></body></html>';

let stack: DemoStack;
let browser: Browser;
let page: Page;
let code: string;
/** Uncaught errors in the page: none is expected. */
const pageErrors: string[] = [];

/** Calls a function of the page's `sdkPage` with JSON arguments. */
function call<K extends keyof SdkPage>(name: K, ...args: Parameters<SdkPage[K]>): Promise<Awaited<ReturnType<SdkPage[K]>>> {
  return page.evaluate(
    async ([n, a]) => {
      const api = (globalThis as unknown as { sdkPage: Record<string, (...x: unknown[]) => unknown> }).sdkPage;
      const fn = api[n];
      if (fn === undefined) throw new Error(`no sdkPage.${n}`);
      return (await fn(...a)) as never;
    },
    [name, args] as [string, unknown[]],
  );
}

describe.skipIf(reason !== null)(`@portcullis/client in Chromium${reason === null ? "" : ` (skipped: ${reason})`}`, () => {
  let gateway: string;
  const ids = { ed25519: "", secp256k1: "" };

  beforeAll(async () => {
    [stack, code] = await Promise.all([startDemoStack({ port: 0, adminPort: 0, upstreamPort: 0, logger: silentLogger(), serverTiming: false }), bundle()]);
    gateway = new URL(stack.gateway).origin;
    browser = await launch();
    const context = await browser.newContext();
    await context.route(`${gateway}/sdk-test/**`, async (route) => {
      const path = new URL(route.request().url()).pathname;
      if (path === "/sdk-test/sdk.js") await route.fulfill({ status: 200, contentType: "text/javascript", body: code });
      else await route.fulfill({ status: 200, contentType: "text/html", body: PAGE });
    });
    page = await context.newPage();
    page.setDefaultTimeout(20_000);
    page.on("pageerror", (e) => pageErrors.push(e.message));
    await page.goto(`${gateway}/sdk-test/`);
    await page.waitForFunction(() => "sdkPage" in globalThis);
  }, 120_000);

  afterAll(async () => {
    await browser.close().catch(() => undefined);
    await stack.close();
    expect(pageErrors).toEqual([]);
  });

  it("the bundle is for the browser: no node: module, nothing replaced by Vite's browser stub", () => {
    expect(code).not.toMatch(/["']node:[a-z]/);
    expect(code).not.toContain("__vite-browser-external");
    expect(code).toContain("ecdsa-secp256k1-sha256");
  });

  it("runs in a secure context on the gateway's origin, with WebCrypto", async () => {
    expect(await call("environment")).toMatchObject({ origin: gateway, secureContext: true, subtle: true, userAgent: expect.stringMatching(/Chrome\//) as unknown });
  });

  it("makes an Ed25519 pair and a secp256k1 key in the page; the gateway registers their public halves", async () => {
    const made = await call("makeKeys");
    expect(made.ed25519).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
    expect(made.secp256k1).toMatch(/^0x0[23][0-9a-f]{64}$/);
    expect(made.agentKey).toBe(`secp256k1:${made.secp256k1}`);
    const ed = await stack.createKey({ account: "demo-trader", scopes: ["read", "trade"], algorithm: "ed25519", publicKey: made.ed25519, label: "browser ed25519" });
    const secp = await stack.createKey({ account: "demo-trader", scopes: ["read", "trade"], algorithm: "secp256k1", publicKey: made.secp256k1, label: "browser secp256k1" });
    expect(secp.key.algorithm).toBe("secp256k1");
    ids.ed25519 = ed.key.id;
    ids.secp256k1 = secp.key.id;
  });

  it.each(["ed25519", "secp256k1"] as const)("signs native requests with the %s key: the gateway verifies them and the exchange fills the order", async (which) => {
    const traded = await call("trade", gateway, ids[which], which, which === "ed25519" ? "BTCUSDT" : "ETHUSDT");
    expect(traded.algorithm).toBe(which === "ed25519" ? "ed25519" : "ecdsa-secp256k1-sha256");
    expect(traded.account).toMatchObject({ ok: true });
    expect(traded.order).toMatchObject({ ok: true, value: { symbol: which === "ed25519" ? "BTCUSDT" : "ETHUSDT", status: "FILLED" } });
  });

  it.each(["ed25519", "secp256k1"] as const)("opens a session with the %s key: reads with it, and its read-only scope refuses an order", async (which) => {
    const s = await call("session", gateway, ids[which], which);
    expect(s).toMatchObject({ logon: { ok: true }, algorithm: "hmac-sha256", apiKeyId: ids[which], read: true, trade: { ok: false, status: 403, code: "SCOPE_MISSING" } });
  });

  it("a signature under another key's id is refused, with its code, in the page", async () => {
    // The secp256k1 key signing as the Ed25519 key: its alg is not the key's.
    expect(await call("read", gateway, ids.ed25519, "secp256k1")).toEqual({ ok: false, status: 401, code: "ALGORITHM_MISMATCH" });
    // Another secp256k1 key's id: the signature does not verify.
    const other = await stack.createKey({ account: "demo-trader", scopes: ["read"], algorithm: "secp256k1", publicKey: `0x0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798` });
    expect(await call("read", gateway, other.key.id, "secp256k1")).toEqual({ ok: false, status: 401, code: "SIGNATURE_INVALID" });
  });

  it("a cross-origin call is blocked by the browser: the gateway answers no CORS preflight", async () => {
    const preflight = await fetch(`${gateway}/api/v3/account`, { method: "OPTIONS", headers: { origin: "http://localhost:1", "access-control-request-method": "GET", "access-control-request-headers": "signature,signature-input" } });
    expect(preflight.headers.get("access-control-allow-origin")).toBeNull();
    await preflight.body?.cancel();
    const other = gateway.replace("127.0.0.1", "localhost");
    expect(other).not.toBe(gateway);
    expect(await call("read", other, ids.ed25519, "ed25519")).toMatchObject({ ok: false, error: "TypeError" });
  });

  it("viem's local account in the page signs EIP-712 typed data; Node recovers its address", async () => {
    const issuedAt = Math.floor(Date.now() / 1000);
    const message = { domain: "venue.example", uri: gateway, nonce: "n0nce1234ABCD", issuedAt: String(issuedAt), expiresAt: String(issuedAt + 300) };
    const signed = await call("signTypedData", CHAIN_ID, message);
    expect(signed.address).toMatch(/^0x[0-9a-fA-F]{40}$/);
    expect(signed.signature).toMatch(/^0x[0-9a-f]{130}$/);
    const typed = {
      domain: { name: "Portcullis", version: "1", chainId: CHAIN_ID },
      types: { Logon: [{ name: "domain", type: "string" }, { name: "uri", type: "string" }, { name: "account", type: "address" }, { name: "nonce", type: "string" }, { name: "issuedAt", type: "uint64" }, { name: "expiresAt", type: "uint64" }] },
      primaryType: "Logon",
      message: { ...message, account: signed.address, issuedAt: BigInt(issuedAt), expiresAt: BigInt(issuedAt + 300) },
    } as const;
    expect(await recoverTypedDataAddress({ ...typed, signature: signed.signature })).toBe(signed.address);
    // Any change to what was signed recovers another address.
    expect(await recoverTypedDataAddress({ ...typed, message: { ...typed.message, nonce: "n0nce1234ABCE" }, signature: signed.signature })).not.toBe(signed.address);
    expect(await recoverTypedDataAddress({ ...typed, domain: { ...typed.domain, chainId: 1 }, signature: signed.signature })).not.toBe(signed.address);
  });

  it("the SDK's wallet helpers in the page: an owner approves the secp256k1 agent, which delegates to the Ed25519 key; Node verifies the chain offline", async () => {
    const venue = { chainId: CHAIN_ID, domain: new URL(gateway).host, uri: gateway };
    const now = Date.now();
    const made = await call("approveAgent", venue, "test", "demo-trader", now);
    expect(made.agentKeys[0]).toBe(made.agentKeys[1]);
    expect(made.edAgentKey).toMatch(/^ed25519:[A-Za-z0-9_-]{43}$/);
    expect(made.verifiedInPage).toEqual([made.agentId, made.delegatedId]);
    // Node, from the JSON that left the page: the same chain verifies, the owner is who signed.
    const verified = await verifyAgentChain(made.chain, { venue, environment: "test", owner: made.owner, now });
    expect(verified).toMatchObject({ ok: true, value: { owner: made.owner, account: "demo-trader", chainId: CHAIN_ID } });
    expect(verified.ok ? verified.value.links.map((l) => [l.id, l.agentKey.text]) : []).toEqual([
      [made.agentId, made.agentKeys[0]],
      [made.delegatedId, made.edAgentKey],
    ]);
    // The approval recovers to the owner with viem alone.
    const approval = (made.chain[0] as { approval: ApproveAgentMessage; signature: `0x${string}` });
    expect(await recoverTypedDataAddress({ ...walletTypedData("ApproveAgent", approval.approval, CHAIN_ID), signature: approval.signature })).toBe(made.owner);
    // Another owner, a widening delegation, another venue: refused with their codes.
    expect(await verifyAgentChain(made.chain, { venue, environment: "test", owner: "0x0000000000000000000000000000000000000001", now })).toMatchObject({ ok: false, code: "WALLET_SIGNATURE_INVALID" });
    expect(await verifyAgentChain(made.widened, { venue, environment: "test", owner: made.owner, now })).toMatchObject({ ok: false, code: "AGENT_WIDENED", link: 1 });
    expect(await verifyAgentChain(made.chain, { venue: { ...venue, chainId: 1 }, environment: "test", owner: made.owner, now })).toMatchObject({ ok: false, code: "WALLET_CHAIN_MISMATCH", link: 0 });
  });
});
