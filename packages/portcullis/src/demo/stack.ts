import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../config/config.js";
import { ServerLifecycle } from "../gateway/lifecycle.js";
import { valueOrThrow } from "../errors/result.js";
import { parseCreateKeyInput } from "../keys/input.js";
import type { CreatedKey } from "../keys/service.js";
import type { Logger } from "../log/logger.js";
import { type RunningPortcullis, startPortcullis, urlOf } from "../runtime.js";
import { DATA_FILES, initDataDir, readSecretFile } from "../storage/data-dir.js";
import { type DemoExchange, createDemoExchange } from "./exchange/index.js";
import { DEMO_EXCHANGE_ROUTES, DEMO_WEBSOCKET_ROUTES } from "./exchange/routes.js";

export interface DemoStackOptions {
  readonly port: number;
  readonly adminPort: number;
  readonly upstreamPort: number;
  /** Keep state here; default a temporary directory, removed by close(). */
  readonly dataDir?: string | undefined;
  readonly logger: Logger;
  readonly serverTiming?: boolean;
}

/** The demo's three servers, running in this process. */
export interface DemoStack {
  readonly gateway: string;
  readonly admin: string | null;
  readonly upstream: string;
  readonly dataDir: string;
  readonly temporary: boolean;
  readonly running: RunningPortcullis;
  readonly exchange: DemoExchange;
  /** Creates a key from raw input (as the admin API takes it). */
  createKey(input: Record<string, unknown>): Promise<CreatedKey>;
  close(): Promise<void>;
}

/**
 * Starts the demo exchange, the gateway in front of it (with the demo exchange's route table)
 * and the admin API, on embedded storage in the test environment. `portcullis demo` runs this;
 * so do the client-compatibility tests.
 */
export async function startDemoStack(options: DemoStackOptions): Promise<DemoStack> {
  const temporary = options.dataDir === undefined;
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), "portcullis-demo-"));
  await initDataDir(dataDir, "test");
  const identitySecret = readSecretFile(join(dataDir, DATA_FILES.identitySecret));
  const exchange = createDemoExchange({ identitySecret });
  const upstreamServer = createServer((req, res) => {
    exchange.handler(req, res);
  });
  upstreamServer.on("upgrade", exchange.upgrade);
  const upstream = new ServerLifecycle(upstreamServer);
  const upstreamUrl = urlOf(await upstream.listen(options.upstreamPort, "127.0.0.1"));
  const config = parseConfig(
    {
      dataDir,
      environment: "test",
      gateway: { host: "127.0.0.1", port: options.port, upstream: upstreamUrl, serverTiming: options.serverTiming ?? true },
      admin: { enabled: true, host: "127.0.0.1", port: options.adminPort },
      routes: DEMO_EXCHANGE_ROUTES,
      websocket: { routes: DEMO_WEBSOCKET_ROUTES },
    },
    dataDir,
  );
  let running: RunningPortcullis;
  try {
    running = await startPortcullis(config, options.logger);
  } catch (err) {
    exchange.closeWebSockets();
    await upstream.close(0);
    if (temporary) rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  return {
    gateway: urlOf(running.gatewayAddress),
    admin: running.adminAddress === null ? null : urlOf(running.adminAddress),
    upstream: upstreamUrl,
    dataDir,
    temporary,
    running,
    exchange,
    createKey: (input) => running.core.keys.create(valueOrThrow(parseCreateKeyInput(input, Date.now())), "demo"),
    async close() {
      await running.close(2_000);
      exchange.closeWebSockets();
      await upstream.close(1_000);
      if (temporary) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
