import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "../../src/config/config.js";
import { CUSTODY_ERRORS } from "../../src/custody/errors.js";

const base = { gateway: { upstream: "http://127.0.0.1:9000" }, routes: [{ method: "GET", path: "/a", permission: "read" }] };

function refused(custody: unknown): string {
  try {
    parseConfig({ ...base, custody }, "/srv");
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error("expected a ConfigError");
}

describe("the custody section of the config", () => {
  it("defaults to the data directory's keyring file", () => {
    expect(parseConfig(base, "/srv").custody).toEqual({ provider: "keyring", keyring: null });
    expect(parseConfig({ ...base, custody: { provider: "keyring", keyring: "/etc/pc/keyring.json" } }, "/srv").custody).toEqual({ provider: "keyring", keyring: "/etc/pc/keyring.json" });
  });

  it("takes a PKCS#11 token, resolving the pin file against the config's directory", () => {
    const c = parseConfig({ ...base, custody: { provider: "pkcs11", module: "/usr/lib/softhsm/libsofthsm2.so", tokenLabel: "portcullis", pinFile: "hsm.pin" } }, "/srv/pc");
    expect(c.custody).toEqual({
      provider: "pkcs11",
      module: "/usr/lib/softhsm/libsofthsm2.so",
      tokenLabel: "portcullis",
      pin: { file: "/srv/pc/hsm.pin" },
      labelPrefix: "portcullis/",
      signingKeys: "pkcs11",
    });
    const env = parseConfig({ ...base, custody: { provider: "pkcs11", module: "/m.so", tokenLabel: "t", signingKeys: "envelope", labelPrefix: "gw1/" } }, "/srv").custody;
    expect(env).toMatchObject({ pin: { env: "PORTCULLIS_HSM_PIN" }, signingKeys: "envelope", labelPrefix: "gw1/" });
    expect(parseConfig({ ...base, custody: { provider: "pkcs11", module: "/m.so", tokenLabel: "t", pinEnv: "HSM_PIN" } }, "/srv").custody).toMatchObject({ pin: { env: "HSM_PIN" } });
  });

  it.each([
    ["x", "custody must be an object"],
    [{ provider: "kms" }, 'custody.provider must be "keyring" or "pkcs11"'],
    [{ provider: "keyring", module: "/m.so" }, "custody.module is not a known setting for provider keyring"],
    [{ provider: "pkcs11", tokenLabel: "t" }, "custody.module is required"],
    [{ provider: "pkcs11", module: "/m.so" }, "custody.tokenLabel is required"],
    [{ provider: "pkcs11", module: "/m.so", tokenLabel: "t".repeat(33) }, "at most 32 characters"],
    [{ provider: "pkcs11", module: "/m.so", tokenLabel: "t", pinFile: "a", pinEnv: "B" }, "pinFile or pinEnv, not both"],
    [{ provider: "pkcs11", module: "/m.so", tokenLabel: "t", pinEnv: "not a name" }, "custody.pinEnv must be an environment variable name"],
    [{ provider: "pkcs11", module: "/m.so", tokenLabel: "t", pin: "1234" }, "custody.pin is not a known setting"],
    [{ provider: "pkcs11", module: "/m.so", tokenLabel: "t", signingKeys: "hsm" }, 'custody.signingKeys must be "pkcs11" or "envelope"'],
    [{ provider: "pkcs11", module: "", tokenLabel: "t" }, "custody.module must be a non-empty string"],
    [{ provider: "pkcs11", module: "/m.so", tokenLabel: "t", labelPrefix: "has space" }, "custody.labelPrefix must be"],
  ])("refuses %j", (custody, message) => {
    expect(refused(custody)).toContain(message);
  });

  it("never echoes a PIN put where it does not belong", () => {
    expect(refused({ provider: "pkcs11", module: "/m.so", tokenLabel: "t", pin: "s3cret-pin-value" })).not.toContain("s3cret-pin-value");
  });
});

describe("docs/custody.md", () => {
  it("lists every custody error code", () => {
    const doc = readFileSync(new URL("../../../../docs/custody.md", import.meta.url), "utf8");
    for (const code of Object.keys(CUSTODY_ERRORS)) expect(doc).toContain(`\`${code}\``);
  });
});
