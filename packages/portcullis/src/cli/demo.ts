import type { RouteSpec } from "../authz/routes.js";
import type { WebSocketRouteSpec } from "../gateway/websocket/config.js";

/**
 * `portcullis demo` runs the demo exchange from `@portcullis/demo-exchange`, a workspace package of
 * the repository that is not published with `portcullis`. It depends on `portcullis`, so it is
 * loaded here at run time, never imported at compile time: the package graph stays acyclic, and a
 * published install without it still has every other command.
 */

/** What the CLI uses of the demo package (packages/demo-exchange/src/index.ts). */
export interface DemoPackage {
  runDemo(options: {
    readonly port: number;
    readonly adminPort: number;
    readonly upstreamPort: number;
    readonly dataDir: string | undefined;
    readonly json: boolean;
  }): Promise<void>;
  readonly DEMO_EXCHANGE_ROUTES: readonly RouteSpec[];
  readonly DEMO_WEBSOCKET_ROUTES: readonly WebSocketRouteSpec[];
}

const DEMO_PACKAGE = "@portcullis/demo-exchange";

/** The demo package, or null when it is not installed (a published install of `portcullis`). */
export async function loadDemoPackage(): Promise<DemoPackage | null> {
  try {
    // A specifier in a variable: TypeScript does not resolve it, so nothing here depends on the
    // demo package when portcullis compiles.
    const loaded: unknown = await import(DEMO_PACKAGE);
    return loaded as DemoPackage;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException | null)?.code;
    if (code === "ERR_MODULE_NOT_FOUND" && err instanceof Error && err.message.includes(`'${DEMO_PACKAGE}'`)) return null;
    throw err;
  }
}

/** A failure of `portcullis demo` with a stable code (the demo package's errors carry one too). */
export class DemoCommandError extends Error {
  override name = "DemoCommandError";
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function demoNotInstalled(): DemoCommandError {
  return new DemoCommandError(
    "DEMO_NOT_INSTALLED",
    `the demo exchange (${DEMO_PACKAGE}) is not installed: it comes with the Portcullis repository, not with the published package; in a clone of the repository run npm install && npm start`,
  );
}

/**
 * Reports an error of `portcullis demo` that carries a `DEMO_` code (a port in use, the demo
 * package missing) as the CLI reports every error: one line on stderr, or a JSON object with
 * --json. Returns false, reporting nothing, for any other error.
 */
export function reportDemoError(err: unknown, json: boolean): boolean {
  if (!(err instanceof Error) || !("code" in err) || typeof err.code !== "string" || !err.code.startsWith("DEMO_")) return false;
  process.stderr.write(json ? `${JSON.stringify({ error: { code: err.code, message: err.message } })}\n` : `portcullis: ${err.message}\n`);
  return true;
}

/**
 * The routes of the starter config `portcullis init` writes: the demo exchange's (REST and
 * WebSocket) when the demo package is installed, as in the repository; otherwise one example
 * route to replace.
 */
export async function starterRoutes(): Promise<{ routes: readonly RouteSpec[]; websocket?: { routes: readonly WebSocketRouteSpec[] } }> {
  const demo = await loadDemoPackage();
  if (demo === null) return { routes: [{ method: "GET", path: "/api/example", permission: "read" }] };
  return { routes: demo.DEMO_EXCHANGE_ROUTES, websocket: { routes: demo.DEMO_WEBSOCKET_ROUTES } };
}
