/**
 * The browser tests' plumbing: Debian's Chromium driven by playwright-core (no browser download),
 * and the origin that serves the console with the admin API.
 */
import { existsSync } from "node:fs";
import { type IncomingMessage, type Server, type ServerResponse, createServer, request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type Browser, chromium } from "playwright-core";
import { loadConsole, serveConsole } from "../../src/admin/console.js";
import { silentLogger } from "../../src/log/logger.js";

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
 * The console's origin. The admin listener serves the console itself when it is configured to
 * (admin/console.ts, wired by the runtime); until then, a front on one origin serves the same
 * files with the same code (`loadConsole`/`serveConsole`, with the CSP) and passes every other
 * request to the admin listener untouched (its Host too: the signatures cover `@authority`), as a
 * deployment's reverse proxy would.
 */
export async function consoleOrigin(admin: string): Promise<{ origin: string; close(): Promise<void> }> {
  const probe = await fetch(`${admin}/console/`).catch(() => null);
  if (probe?.status === 200) {
    await probe.body?.cancel();
    return { origin: admin, close: () => Promise.resolve() };
  }
  await probe?.body?.cancel();
  const files = loadConsole(CONSOLE_DIST, silentLogger());
  const target = new URL(admin);
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    if (path === "/console" || path.startsWith("/console/")) {
      if (serveConsole(files, req, res, path, "front")) return;
    }
    const upstream = httpRequest(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on("error", () => {
      res.destroy();
    });
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${String(port)}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          resolve();
        });
      }),
  };
}
