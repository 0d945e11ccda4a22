import type { RouteSpec } from "../authz/routes.js";
import type { WebSocketRouteSpec } from "../gateway/websocket/config.js";
import { OperatorError } from "../errors/catalogue.js";

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
    /** Background traffic for the console's charts; default true (`--no-traffic`). */
    readonly traffic?: boolean;
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

/** `portcullis demo` without the demo package (a published install): DEMO_NOT_INSTALLED. */
export function demoNotInstalled(): OperatorError<"DEMO_NOT_INSTALLED"> {
  return new OperatorError(
    "DEMO_NOT_INSTALLED",
    `the demo exchange (${DEMO_PACKAGE}) is not installed: it comes with the Portcullis repository, not with the published package; in a clone of the repository run npm install && npm start`,
  );
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
