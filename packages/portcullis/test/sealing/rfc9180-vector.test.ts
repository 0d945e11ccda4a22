/**
 * A sanity check of the suite choice (docs/sealed-orders.md): RFC 9180 Appendix A.1
 * (DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM), base mode, A.1.1 and its encryptions of
 * sequence numbers 0 and 1, run through @hpke/core as the gateway builds it (custody/hpke.ts
 * `hpkeSuite`). The values are copied exactly from the RFC.
 */
import { describe, expect, it } from "vitest";
import { hpkeSuite } from "../../src/custody/hpke.js";

const hex = (s: string): ArrayBuffer => {
  const b = Buffer.from(s, "hex");
  return new Uint8Array(b).buffer;
};
const toHex = (b: ArrayBuffer): string => Buffer.from(b).toString("hex");

// RFC 9180, A.1.1. Base Setup Information
const info = "4f6465206f6e2061204772656369616e2055726e";
const pkEm = "37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431";
const skEm = "52c4a758a802cd8b936eceea314432798d5baf2d7e9235dc084ab1b9cfa2f736";
const pkRm = "3948cfe0ad1ddb695d780e59077195da6c56506b027329794ab02bca80815c4d";
const skRm = "4612c550263fc8ad58375df3f557aac531d26850903e55a9f23f21d8534e8ac8";
const enc = "37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431";
// A.1.1.1. Encryptions
const pt = "4265617574792069732074727574682c20747275746820626561757479";
const encryptions = [
  { aad: "436f756e742d30", ct: "f938558b5d72f1a23810b4be2ab4f84331acc02fc97babc53a52ae8218a355a96d8770ac83d07bea87e13c512a" },
  { aad: "436f756e742d31", ct: "af2d7e9ac9ae7e270f46ba1f975be53c09f8d875bdc8535458c2494e8a6eab251c03d0c22a56b8ca42c2063b84" },
];

describe("RFC 9180 A.1 through @hpke/core (the gateway's suite)", () => {
  it("the recipient opens the published encryptions (sequence 0 and 1)", async () => {
    const suite = hpkeSuite();
    const recipientKey = { privateKey: await suite.kem.deserializePrivateKey(hex(skRm)), publicKey: await suite.kem.deserializePublicKey(hex(pkRm)) };
    const recipient = await suite.createRecipientContext({ recipientKey, enc: hex(enc), info: hex(info) });
    for (const { aad, ct } of encryptions) expect(toHex(await recipient.open(hex(ct), hex(aad)))).toBe(pt);
    // The single-shot open the gateway uses is sequence 0.
    expect(toHex(await suite.open({ recipientKey, enc: hex(enc), info: hex(info) }, hex(encryptions[0]?.ct ?? ""), hex(encryptions[0]?.aad ?? "")))).toBe(pt);
  });

  it("the sender, with the published ephemeral key, produces the published enc and ciphertexts", async () => {
    const suite = hpkeSuite();
    const ekm = { privateKey: await suite.kem.deserializePrivateKey(hex(skEm)), publicKey: await suite.kem.deserializePublicKey(hex(pkEm)) };
    const sender = await suite.createSenderContext({ recipientPublicKey: await suite.kem.deserializePublicKey(hex(pkRm)), info: hex(info), ekm });
    expect(toHex(sender.enc)).toBe(enc);
    for (const { aad, ct } of encryptions) expect(toHex(await sender.seal(hex(pt), hex(aad)))).toBe(ct);
  });
});
