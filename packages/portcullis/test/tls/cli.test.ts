/**
 * `portcullis keys create --cert FILE | --cert-thumbprint X` (docs/tls.md): the binding computed
 * from a certificate made at run time, shown by `keys show` and `keys list`; bad input refused
 * with its code.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { initDataDir } from "../../src/core/data-dir.js";
import { runCli } from "../support/cli.js";
import { type TestPki, makePki } from "../support/tls.js";

let pki: TestPki;
let dir: string;

beforeAll(async () => {
  pki = makePki();
  dir = mkdtempSync(join(tmpdir(), "portcullis-tls-cli-"));
  await initDataDir(dir, "test");
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  pki.cleanup();
});

describe("keys create with a client certificate", () => {
  it("--cert FILE binds the key to that certificate's x5t#S256; keys show and keys list print it", async () => {
    const created = await runCli(["keys", "create", "--account", "acct-1", "--scopes", "read", "--cert", pki.client1.cert, "--data", dir, "--json"]);
    expect(created.code).toBe(0);
    const key = JSON.parse(created.stdout) as { id: string; certThumbprint: string };
    expect(key.certThumbprint).toBe(pki.client1.thumbprint);
    const shown = await runCli(["keys", "show", key.id, "--data", dir]);
    expect(shown.stdout).toContain(`client cert ${pki.client1.thumbprint}`);
    const listed = await runCli(["keys", "list", "--data", dir]);
    expect(listed.stdout).toMatch(new RegExp(`${key.id}.*cert ${pki.client1.thumbprint.replace(/[-]/g, "\\-")}`));
  });

  it("--cert-thumbprint X binds it as given", async () => {
    const created = await runCli(["keys", "create", "--account", "acct-1", "--scopes", "read", "--cert-thumbprint", pki.client2.thumbprint, "--data", dir, "--json"]);
    expect(created.code).toBe(0);
    expect((JSON.parse(created.stdout) as { certThumbprint: string }).certThumbprint).toBe(pki.client2.thumbprint);
  });

  it("refuses a malformed thumbprint, a file that is not a certificate, and both options at once", async () => {
    const notCert = join(pki.dir, "not-a-cert.pem");
    writeFileSync(notCert, "hello\n");
    for (const args of [
      ["--cert-thumbprint", "AB:CD:EF"],
      ["--cert", notCert],
      ["--cert", pki.client1.cert, "--cert-thumbprint", pki.client1.thumbprint],
    ]) {
      const refused = await runCli(["keys", "create", "--account", "acct-1", "--scopes", "read", ...args, "--data", dir, "--json"]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain("VALIDATION_FAILED");
    }
    // Nothing was created by the refusals.
    const listed = await runCli(["keys", "list", "--data", dir, "--json"]);
    expect((JSON.parse(listed.stdout) as unknown[]).length).toBe(2);
  });
});
