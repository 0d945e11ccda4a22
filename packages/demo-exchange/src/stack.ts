import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CreatedKey, DEFAULT_LIMITS, type Logger, OperatorError, type RunningPortcullis, type StartOptions, initDataDir, parseConfig, parseCreateKeyInput, startPortcullis, valueOrThrow } from "portcullis";
import { type DemoExchange, createDemoExchange } from "./exchange/index.js";
import { DEMO_ADDRESS_COOLDOWN, DEMO_APPROVER_GROUP } from "./governance.js";
import { DEMO_EXCHANGE_ROUTES, DEMO_WEBSOCKET_ROUTES } from "./exchange/routes.js";

/** The gateway-upstream secret in a data directory `portcullis init` laid out (docs/configuration.md). */
const IDENTITY_SECRET_FILE = "identity.secret";

export interface DemoStackOptions {
  readonly port: number;
  readonly adminPort: number;
  readonly upstreamPort: number;
  /** Keep state here; default a temporary directory, removed by close() and on any failure to start. */
  readonly dataDir?: string | undefined;
  readonly logger: Logger;
  readonly serverTiming?: boolean;
  /** Stage 10's policy and hold tuning (docs/approvals.md); default: nothing is judged. */
  readonly start?: StartOptions;
  /**
   * "proxy" (default): the gateway forwards to the exchange. "authorizer": Portcullis only decides,
   * for a proxy on this host (nginx with docs/deploy/nginx.conf) that forwards to `upstream`
   * (docs/deploy/authorizer.md); no WebSocket routes then.
   */
  readonly mode?: "proxy" | "authorizer";
  /** Wallet-owned accounts and agent keys (the config's `wallets` section, docs/wallets.md); default off. */
  readonly wallets?: { readonly chainId: number; readonly domain: string; readonly uri: string };
}

/** The demo's three servers, running in this process. */
export interface DemoStack {
  readonly gateway: string;
  readonly admin: string | null;
  readonly upstream: string;
  readonly dataDir: string;
  /** The data directory was created by the demo (and is removed by close()). */
  readonly temporary: boolean;
  readonly running: RunningPortcullis;
  readonly exchange: DemoExchange;
  /** Creates a key from raw input (as the admin API takes it). */
  createKey(input: Record<string, unknown>): Promise<CreatedKey>;
  close(): Promise<void>;
}

/** The demo could not listen on a port: another process (often a demo already running) holds it. */
export class DemoPortInUseError extends OperatorError<"DEMO_PORT_IN_USE"> {
  override name = "DemoPortInUseError";

  constructor(
    readonly port: number,
    /** The `portcullis demo` option that chooses this port. */
    readonly option: "--port" | "--admin-port" | "--upstream-port",
  ) {
    super("DEMO_PORT_IN_USE", `port ${String(port)} (${option}) is in use; is a demo already running? Choose another with ${option} N`);
  }
}

function isAddressInUse(err: unknown): err is NodeJS.ErrnoException & { port?: number } {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === "EADDRINUSE";
}

function urlOf(address: AddressInfo): string {
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return `http://${host}:${String(address.port)}`;
}

function listen(server: Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.removeListener("error", reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

function closeServer(server: Server): Promise<void> {
  if (!server.listening) return Promise.resolve();
  const closed = new Promise<void>((resolve) => {
    server.close(() => {
      resolve();
    });
  });
  server.closeAllConnections();
  return closed;
}

/**
 * Starts the demo exchange, the gateway in front of it (with the demo exchange's route table)
 * and the admin API, on embedded storage in the test environment. `portcullis demo` runs this;
 * so do the client-compatibility tests.
 *
 * A temporary data directory holds a key-encryption key: whenever starting fails, it is removed
 * before the error is thrown (a directory given in `dataDir` is never removed). A port in use is a
 * `DemoPortInUseError` naming the option that moves it.
 */
export async function startDemoStack(options: DemoStackOptions): Promise<DemoStack> {
  const temporary = options.dataDir === undefined;
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), "portcullis-demo-"));
  let exchange: DemoExchange | null = null;
  let upstreamServer: Server | null = null;
  try {
    await initDataDir(dataDir, "test");
    const identitySecret = readFileSync(join(dataDir, IDENTITY_SECRET_FILE), "utf8").trim();
    const demo = createDemoExchange({ identitySecret });
    exchange = demo;
    const server = createServer((req, res) => {
      demo.handler(req, res);
    });
    upstreamServer = server;
    server.on("upgrade", demo.upgrade);
    let upstreamUrl: string;
    try {
      upstreamUrl = urlOf(await listen(server, options.upstreamPort, "127.0.0.1"));
    } catch (err) {
      throw isAddressInUse(err) ? new DemoPortInUseError(options.upstreamPort, "--upstream-port") : err;
    }
    const raw = {
      dataDir,
      environment: "test",
      gateway: {
        host: "127.0.0.1",
        port: options.port,
        upstream: upstreamUrl,
        serverTiming: options.serverTiming ?? true,
        ...(options.mode === "authorizer" ? { mode: "authorizer", trustedProxies: ["127.0.0.1/32"] } : {}),
      },
      admin: { enabled: true, host: "127.0.0.1", port: options.adminPort },
      routes: DEMO_EXCHANGE_ROUTES,
      // The defaults, account weight budget included: the demo's keys of one account share it.
      limits: DEFAULT_LIMITS,
      ...(options.mode === "authorizer" ? {} : { websocket: { routes: DEMO_WEBSOCKET_ROUTES } }),
      // Reference prices for per-key guardrails (price bands, market orders' value), read off
      // the request path from the exchange's own public ticker.
      prices: { refresh: { url: `${upstreamUrl}/api/v3/ticker/price`, interval: "10s" } },
      // A new withdrawal address is known to the policy after a minute (docs/policy.md).
      policy: { addressCooldown: DEMO_ADDRESS_COOLDOWN },
      // Stage 11 (docs/behaviour.md): the default responses; a stepped-up key's withdrawals and
      // larger orders wait for one treasury approver.
      behaviour: { stepUp: { approvals: [{ group: DEMO_APPROVER_GROUP, count: 1 }], minValue: "1000" } },
      ...(options.wallets === undefined ? {} : { wallets: options.wallets }),
    };
    // The configuration beside the data, as a deployment keeps it: the CLI's commands that read
    // the gateway's configuration (`keys risk --data DIR`) find it there.
    writeFileSync(join(dataDir, "portcullis.json"), `${JSON.stringify(raw, null, 2)}\n`, { mode: 0o600 });
    const config = parseConfig(raw, dataDir);
    let running: RunningPortcullis;
    try {
      running = await startPortcullis(config, options.logger, options.start);
    } catch (err) {
      // The gateway listens first, then the admin API; the port says which (unless both are equal).
      if (isAddressInUse(err)) throw err.port === options.port ? new DemoPortInUseError(options.port, "--port") : new DemoPortInUseError(options.adminPort, "--admin-port");
      throw err;
    }
    return {
      gateway: urlOf(running.gatewayAddress),
      admin: running.adminAddress === null ? null : urlOf(running.adminAddress),
      upstream: upstreamUrl,
      dataDir,
      temporary,
      running,
      exchange: demo,
      createKey: (input) => running.core.keys.create(valueOrThrow(parseCreateKeyInput(input, Date.now())), "demo"),
      async close() {
        try {
          await running.close(2_000);
          demo.closeWebSockets();
          await closeServer(server);
        } finally {
          if (temporary) rmSync(dataDir, { recursive: true, force: true });
        }
      },
    };
  } catch (err) {
    exchange?.closeWebSockets();
    if (upstreamServer !== null) await closeServer(upstreamServer);
    if (temporary) rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
}
