/**
 * The browser tests' plumbing: Debian's Chromium driven by playwright-core (no browser download),
 * and the origin that serves the console with the admin API.
 */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type Browser, chromium } from "playwright-core";

export const REPO_ROOT = fileURLToPath(new URL("../../../../", import.meta.url));
export const CONSOLE_DIST = join(REPO_ROOT, "packages", "console", "dist");
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/** Why the browser tests cannot run here, or null. In CI (`CI=true`) they never skip: a reason fails the run. */
export function unavailable(): string | null {
  if (!existsSync(CHROMIUM)) return `no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`;
  if (!existsSync(join(CONSOLE_DIST, "index.html"))) return "the console is not built (npm run build -w @portcullis/console)";
  return null;
}

export function launch(): Promise<Browser> {
  const root = typeof process.getuid === "function" && process.getuid() === 0;
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: root ? ["--no-sandbox"] : [] });
}

/** Where screenshots go: $SCREENSHOTS_DIR, default the gitignored test-output/screenshots. */
export function screenshotsDir(): string {
  const dir = process.env.SCREENSHOTS_DIR;
  return dir === undefined || dir === "" ? join(REPO_ROOT, "test-output", "screenshots") : resolve(REPO_ROOT, dir);
}

/**
 * The console's origin: the admin listener itself, which serves the built console under
 * `/console/` (admin.console, on by default) with its strict CSP. Checked here, so that a stack that
 * does not serve it fails with a reason rather than a blank page.
 */
export async function consoleOrigin(admin: string): Promise<string> {
  const res = await fetch(`${admin}/console/`);
  const csp = res.headers.get("content-security-policy") ?? "";
  await res.body?.cancel();
  if (res.status !== 200) throw new Error(`${admin}/console/ answered ${String(res.status)}: is admin.console on and the console built?`);
  if (!csp.includes("default-src 'self'") || csp.includes("unsafe-inline")) throw new Error(`the console is served without the strict CSP: ${csp}`);
  return admin;
}
