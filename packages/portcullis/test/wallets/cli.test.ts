/**
 * The CLI's side of wallet-owned accounts (docs/wallets.md): `keys create --wallet` makes an
 * owner key of the wallet's EIP-55 address; `keys show` tells an owner key and an agent key apart;
 * `keys revoke` of an owner key revokes every agent below it.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDataDir } from "../../src/core/data-dir.js";
import { generateKeyId } from "../../src/contract/ids.js";
import { runCli } from "../support/cli.js";

const ADDRESS = "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826";
let data: string;

beforeAll(async () => {
  data = mkdtempSync(join(tmpdir(), "pc-wallet-cli-"));
  expect((await runCli(["init", "--data", data, "--environment", "test", "--json"])).code).toBe(0);
});
afterAll(() => {
  rmSync(data, { recursive: true, force: true });
});

describe("portcullis keys and wallets", () => {
  it("keys create --wallet makes an owner key; keys show names it; keys revoke takes its agents with it", async () => {
    const created = await runCli(["keys", "create", "--data", data, "--account", "w-1", "--scopes", "read,trade", "--wallet", ADDRESS.toLowerCase(), "--json"]);
    expect(created.code, created.stderr).toBe(0);
    const owner = JSON.parse(created.stdout) as { id: string; algorithm: string; publicKey: string; secret: string | null };
    expect(owner).toMatchObject({ algorithm: "ethereum", publicKey: ADDRESS });
    expect(owner.secret ?? null).toBeNull();
    const bad = await runCli(["keys", "create", "--data", data, "--account", "w-1", "--scopes", "read", "--wallet", "0x1234", "--json"]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("VALIDATION_FAILED");

    // An agent under it, registered as the wallet endpoint does.
    const dir = await openDataDir(data);
    const agentId = generateKeyId("test");
    const { generateKeyPairSync } = await import("node:crypto");
    const pem = generateKeyPairSync("ed25519").publicKey.export({ type: "spki", format: "pem" }).toString();
    const terms = { scopes: ["trade" as const], symbols: ["*"], maxOrderNotional: "", maxOrderQuantity: "", maxOpenNotional: "", limits: [], expiresAt: Math.floor(Date.now() / 1000) + 3600 };
    const { KeyService } = await import("../../src/keys/service.js");
    const service = new KeyService({ store: dir.store, envelope: dir.envelope, environment: "test" });
    await service.registerAgents([{ id: agentId, account: "w-1", label: "bot", publicKey: pem, scopes: ["trade"], guardrails: null, limits: {}, expiresAt: terms.expiresAt * 1000, grant: { ownerAddress: ADDRESS, ownerKey: owner.id, parent: null, agentKey: `ed25519:${"A".repeat(43)}`, ancestors: [], depth: 1, terms, digest: `0x${"1".repeat(64)}` } }], [owner.id], "test");
    await dir.close();

    const shownOwner = await runCli(["keys", "show", owner.id, "--data", data]);
    expect(shownOwner.stdout).toContain(`wallet      ${ADDRESS}`);
    const shownAgent = await runCli(["keys", "show", agentId, "--data", data]);
    expect(shownAgent.stdout).toContain(`agent of    ${ADDRESS} (owner key ${owner.id}), depth 1`);
    const listed = await runCli(["keys", "list", "--data", data, "--account", "w-1"]);
    expect(listed.stdout).toContain(`agent of ${owner.id}`);

    const agentsListed = await runCli(["agents", "list", "--data", data, "--account", "w-1"]);
    expect(agentsListed.stdout).toContain(agentId);
    expect(agentsListed.stdout).not.toContain(`${owner.id}  `);
    expect((await runCli(["agents", "show", agentId, "--data", data])).stdout).toContain("agent terms");
    expect((await runCli(["agents", "show", owner.id, "--data", data])).code).not.toBe(0);

    expect((await runCli(["keys", "revoke", owner.id, "--data", data, "--reason", "lost wallet"])).code).toBe(0);
    const after = JSON.parse((await runCli(["keys", "show", agentId, "--data", data, "--json"])).stdout) as { status: string };
    expect(after.status).toBe("revoked");
  }, 120_000); // about a dozen CLI processes, each a Node start
});
