/**
 * The HPKE keys' private halves are envelopes under the KEK (docs/sealed-orders.md): `custody
 * status` counts them, a KEK rotation rewraps them with every other envelope (the floor is raised,
 * the old version retired), and a gateway process started afterwards still opens what is sealed to
 * the key. A retired HPKE key has no envelope left to rewrap.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type OpenDataDir, initDataDir, openDataDir } from "../../src/core/data-dir.js";
import { Envelope } from "../../src/custody/envelope.js";
import { HpkeKeyring, hpkeSuite, sealedAad } from "../../src/custody/hpke.js";
import { custodyStatus, rotateKek } from "../../src/custody/rotation.js";

let dir: string;
let data: OpenDataDir;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "portcullis-hpke-kek-"));
  await initDataDir(dir, "test");
  data = await openDataDir(dir);
});
afterAll(async () => {
  await data.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("HPKE keys under a KEK rotation", () => {
  it("are counted, rewrapped under the new KEK version, and still open afterwards", async () => {
    const keyring = new HpkeKeyring({ store: data.store.hpke, envelope: data.envelope });
    await keyring.refresh();
    const before = await custodyStatus(data.store, data.envelope);
    expect(before.envelopes.byKind["hpke-private"]).toBe(1);
    const [live] = await data.store.hpke.live();
    expect(Envelope.kekVersionOf(live?.privateEnvelope ?? Buffer.alloc(0))).toBe(1);

    const rotated = await rotateKek(dir, data.store, data.envelope, { settleMs: 0, retire: true });
    expect(rotated).toMatchObject({ active: 2, retired: [1], failures: [] });
    const [after] = await data.store.hpke.live();
    expect(after?.id).toBe(live?.id);
    expect(Envelope.kekVersionOf(after?.privateEnvelope ?? Buffer.alloc(0))).toBe(2);
    expect((await custodyStatus(data.store, data.envelope)).envelopes.byVersion).not.toHaveProperty("1");

    // A process started now (a fresh keyring) opens what is sealed to the key.
    const fresh = new HpkeKeyring({ store: data.store.hpke, envelope: data.envelope });
    await fresh.load();
    const published = fresh.published().keys[0];
    const suite = hpkeSuite();
    const aad = sealedAad("pck_test_v1_k", "nonce-0001", "POST", "/o");
    const sealed = await suite.seal({ recipientPublicKey: await suite.kem.deserializePublicKey(Buffer.from(published?.publicKey ?? "", "base64url")) }, Buffer.from("order"), aad);
    const opened = await fresh.open(published?.id ?? "", Buffer.concat([Buffer.from(sealed.enc), Buffer.from(sealed.ct)]), aad, Date.now());
    expect(Buffer.isBuffer(opened) && opened.toString()).toBe("order");
  });
});
