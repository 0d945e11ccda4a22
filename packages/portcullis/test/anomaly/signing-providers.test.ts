/**
 * The `webhook` signing purpose in both signing-key providers: the envelope provider (keyring) and
 * PKCS#11 (SoftHSM2, key pair generated in the token). Each opens one key of its own for the
 * purpose, the same in every process, and its signatures verify with the published public key.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { verify } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { webhookKeyView } from "../../src/anomaly/webhook.js";
import { SIGNING_PURPOSES } from "../../src/contract/signing.js";
import { parseCustodyConfig } from "../../src/custody/config.js";
import { type OpenDataDir, initDataDir, openDataDir } from "../../src/core/data-dir.js";
import { SoftHsm, type SoftHsmToken, softhsmOrSkip } from "../support/softhsm.js";

const dirs: string[] = [];
const opened: OpenDataDir[] = [];

afterEach(async () => {
  for (const d of opened.splice(0)) await d.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function dataDir(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-webhook-key-"));
  dirs.push(dir);
  await initDataDir(dir, "test");
  return dir;
}

async function checkProvider(open: () => Promise<OpenDataDir>, provider: string): Promise<void> {
  const a = await open();
  opened.push(a);
  expect(SIGNING_PURPOSES).toContain("webhook");
  const key = await a.signingKeys.open("webhook");
  expect(key).toMatchObject({ purpose: "webhook", provider, algorithm: "ed25519" });
  expect(key.kid).toMatch(/^webhook:/);
  const audit = await a.signingKeys.open("audit-checkpoint");
  expect(audit.kid).not.toBe(key.kid);
  const message = Buffer.from("a webhook signature base");
  const signature = await key.sign(message);
  const published = webhookKeyView(key);
  expect(verify(null, message, published.publicKey, signature)).toBe(true);
  expect(verify(null, message, audit.publicKey, signature)).toBe(false);
  // Another process on the same deployment gets the same key.
  await a.close();
  opened.splice(opened.indexOf(a), 1);
  const b = await open();
  opened.push(b);
  expect(webhookKeyView(await b.signingKeys.open("webhook"))).toEqual(published);
}

describe("the webhook signing key", () => {
  it("envelope provider (keyring)", async () => {
    const dir = await dataDir();
    await checkProvider(() => openDataDir(dir), "envelope");
  });

  const run = softhsmOrSkip("PKCS#11 webhook signing key (test/anomaly/signing-providers.test.ts)");
  describe.runIf(run)("PKCS#11 provider (SoftHSM2)", () => {
    let hsm: SoftHsm;
    let token: SoftHsmToken;
    beforeAll(() => {
      hsm = new SoftHsm();
      token = hsm.initToken("portcullis-webhook");
    });
    afterAll(() => {
      hsm.cleanup();
    });

    it("generates the key pair in the token and signs there", async () => {
      const dir = await dataDir();
      const parsed = parseCustodyConfig(hsm.custody(token), "/");
      if (!parsed.ok) throw new Error(parsed.message);
      await checkProvider(() => openDataDir(dir, { custody: parsed.value }), "pkcs11");
    });
  });
});
