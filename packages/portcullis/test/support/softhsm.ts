/**
 * SoftHSM2 for the PKCS#11 tests: a private token directory per test file (SOFTHSM2_CONF points
 * at a temporary config; never the machine's global one), tokens initialised with
 * `softhsm2-util --init-token --free`. SoftHSM reads its config and scans its tokens when the
 * module is initialised, so a test initialises its tokens before it opens them (every custody
 * close finalises the module when the last user lets go).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { IN_CI, loudSkip } from "./redis.js";

const MODULE_PATHS = ["/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so", "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so", "/usr/local/lib/softhsm/libsofthsm2.so"];

export const SOFTHSM_MODULE = MODULE_PATHS.find((p) => existsSync(p)) ?? MODULE_PATHS[0] ?? "";

export function softhsmInstalled(): boolean {
  return existsSync(SOFTHSM_MODULE) && spawnSync("softhsm2-util", ["--version"], { encoding: "utf8" }).status === 0;
}

/**
 * True when the PKCS#11 tests can run. Without SoftHSM2 they skip with a banner, except in CI
 * (CI=true), where they run and fail.
 */
export function softhsmOrSkip(what: string): boolean {
  if (softhsmInstalled()) return true;
  if (IN_CI) return true;
  loudSkip(what, "SoftHSM2 is not installed: apt-get update && apt-get install -y softhsm2 (Debian's softhsm2 package; .ci/run installs it)");
  return false;
}

export interface SoftHsmToken {
  readonly label: string;
  readonly pin: string;
  readonly soPin: string;
}

export class SoftHsm {
  readonly dir: string;
  readonly conf: string;

  /** A private SoftHSM2 config and token directory; sets SOFTHSM2_CONF for this process. */
  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), "portcullis-softhsm-"));
    mkdirSync(join(this.dir, "tokens"), { mode: 0o700 });
    this.conf = join(this.dir, "softhsm2.conf");
    writeFileSync(this.conf, `directories.tokendir = ${join(this.dir, "tokens")}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
    process.env.SOFTHSM2_CONF = this.conf;
  }

  /** Environment for child processes that use these tokens. */
  get env(): Record<string, string> {
    return { SOFTHSM2_CONF: this.conf };
  }

  /** Initialises a fresh token with random PINs. */
  initToken(label = `t-${randomBytes(4).toString("hex")}`): SoftHsmToken {
    const pin = `pin-${randomBytes(8).toString("hex")}`;
    const soPin = `so-${randomBytes(8).toString("hex")}`;
    execFileSync("softhsm2-util", ["--init-token", "--free", "--label", label, "--so-pin", soPin, "--pin", pin], {
      env: { ...process.env, SOFTHSM2_CONF: this.conf },
      stdio: "pipe",
    });
    return { label, pin, soPin };
  }

  /** Writes the PIN to a file of the given mode (0600 unless told). */
  pinFile(token: SoftHsmToken, mode = 0o600): string {
    const path = join(this.dir, `${token.label}-${randomBytes(3).toString("hex")}.pin`);
    writeFileSync(path, `${token.pin}\n`, { mode });
    return path;
  }

  /** The `custody` config section for a token. */
  custody(token: SoftHsmToken, extra: Record<string, unknown> = {}): Record<string, unknown> {
    return { provider: "pkcs11", module: SOFTHSM_MODULE, tokenLabel: token.label, pinFile: this.pinFile(token), ...extra };
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
