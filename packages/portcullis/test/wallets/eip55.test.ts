/** Owner addresses are read with EIP-55 checksums: the EIP's own examples, copied exactly. */
import { describe, expect, it } from "vitest";
import { parseWalletAddress } from "../../src/keys/input.js";

// EIP-55, "Test Cases" (all caps, all lower, normal).
const VECTORS = [
  "0x52908400098527886E0F7030069857D2E4169EE7",
  "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
  "0xde709f2102306220921060314715629080e2fb77",
  "0x27b1fdb04752bbc536007a920d24acb045561c26",
  "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
  "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
  "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
  "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
];

describe("parseWalletAddress", () => {
  it("answers the EIP-55 form of every test case, given in any single case", () => {
    for (const mixed of VECTORS.slice(4)) {
      expect(parseWalletAddress(mixed)).toBe(mixed);
      expect(parseWalletAddress(mixed.toLowerCase())).toBe(mixed);
      expect(parseWalletAddress(`0x${mixed.slice(2).toUpperCase()}`)).toBe(mixed);
    }
    for (const single of VECTORS.slice(0, 4)) expect(parseWalletAddress(single)?.toLowerCase()).toBe(single.toLowerCase());
  });

  it("refuses a mixed-case address whose checksum is wrong, and anything not 0x and 40 hex digits", () => {
    expect(parseWalletAddress("0x5aaeb6053F3E94C9b9A09f33669435E7Ef1BeAed")).toBeNull();
    for (const bad of ["5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe", "0xZZAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", 42, null]) {
      expect(parseWalletAddress(bad)).toBeNull();
    }
  });
});
