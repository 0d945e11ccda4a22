import { generateKeyPairSync } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { createLogger } from "../log/logger.js";
import { startDemoStack } from "./stack.js";

export interface DemoOptions {
  readonly port: number;
  readonly adminPort: number;
  readonly upstreamPort: number;
  /** Keep state here; default a temporary directory removed on exit. */
  readonly dataDir: string | undefined;
  /** Print one JSON line (URLs and keys) first, for scripts and tests. */
  readonly json: boolean;
}

export interface DemoKey {
  readonly id: string;
  readonly account: string;
  readonly scopes: readonly string[];
  readonly algorithm: string;
  readonly secret?: string;
  readonly privateKey?: string;
  readonly privateKeyFile?: string;
}

const DEMO_KEYS = [
  { name: "trader", account: "demo-trader", scopes: ["read", "trade"], label: "demo trading key (HMAC)" },
  { name: "ed25519", account: "demo-trader", scopes: ["read", "trade"], label: "demo trading key (Ed25519)", algorithm: "ed25519" },
  { name: "reader", account: "demo-trader", scopes: ["read"], label: "demo read-only key" },
  { name: "admin", account: "demo-admin", scopes: ["admin:*"], label: "demo admin key" },
] as const;

/**
 * `portcullis demo`: the demo exchange, the gateway in front of it and the admin API, on
 * embedded storage in the test environment, with demo keys and example requests printed.
 * Runs until SIGINT / SIGTERM, then shuts down gracefully.
 */
export async function runDemo(options: DemoOptions): Promise<void> {
  // Logs go to stderr, so stdout carries only what the demo prints.
  const logger = createLogger({ level: "info" }, process.stderr);
  const stack = await startDemoStack({
    port: options.port,
    adminPort: options.adminPort,
    upstreamPort: options.upstreamPort,
    dataDir: options.dataDir,
    logger,
  });

  const keys: Record<string, DemoKey> = {};
  for (const spec of DEMO_KEYS) {
    let publicKey: string | undefined;
    let privateKey: string | undefined;
    if ("algorithm" in spec) {
      const pair = generateKeyPairSync("ed25519", {
        publicKeyEncoding: { type: "spki", format: "pem" },
        privateKeyEncoding: { type: "pkcs8", format: "pem" },
      });
      publicKey = pair.publicKey;
      privateKey = pair.privateKey;
    }
    const created = await stack.createKey({ account: spec.account, scopes: [...spec.scopes], label: spec.label, ...(publicKey === undefined ? {} : { publicKey }) });
    let privateKeyFile: string | undefined;
    if (privateKey !== undefined) {
      privateKeyFile = join(stack.dataDir, `demo-${spec.name}.pem`);
      writeFileSync(privateKeyFile, privateKey, { mode: 0o600 });
    }
    keys[spec.name] = {
      id: created.key.id,
      account: created.key.account,
      scopes: created.key.scopes,
      algorithm: created.key.algorithm,
      ...(created.secret === null ? {} : { secret: created.secret }),
      ...(privateKey === undefined ? {} : { privateKey }),
      ...(privateKeyFile === undefined ? {} : { privateKeyFile }),
    };
  }

  if (options.json) {
    process.stdout.write(`${JSON.stringify({ gateway: stack.gateway, admin: stack.admin, upstream: stack.upstream, dataDir: stack.dataDir, keys })}\n`);
  } else {
    process.stdout.write(describe(stack.gateway, stack.admin, stack.upstream, stack.dataDir, stack.temporary, keys));
  }

  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    stack
      .close()
      .catch((err: unknown) => {
        logger.error({ err }, "demo shutdown failed");
      })
      .finally(() => {
        process.exit(0);
      });
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

function describe(gateway: string, admin: string | null, upstream: string, dataDir: string, temporary: boolean, keys: Record<string, DemoKey>): string {
  const trader = keys.trader;
  const ed = keys.ed25519;
  const reader = keys.reader;
  const adminKey = keys.admin;
  const line = (name: string, k: DemoKey | undefined): string =>
    k === undefined ? "" : `  ${name.padEnd(30)} ${k.id}\n${k.secret === undefined ? "" : `  ${"".padEnd(30)} secret ${k.secret}\n`}${k.privateKeyFile === undefined ? "" : `  ${"".padEnd(30)} private key ${k.privateKeyFile}\n`}`;
  const req = (k: DemoKey | undefined, method: string, path: string): string => {
    if (k === undefined) return "";
    const cred = k.secret !== undefined ? `--secret ${k.secret}` : `--private-key ${k.privateKeyFile ?? ""}`;
    return `  npx portcullis request --key-id ${k.id} ${cred} ${method} '${gateway}${path}'\n`;
  };
  return [
    "Portcullis demo is running.\n\n",
    `  gateway     ${gateway}    (clients go here)\n`,
    `  admin API   ${admin ?? "disabled"}\n`,
    `  upstream    ${upstream}    (the demo exchange, behind the gateway)\n`,
    `  data        ${dataDir}${temporary ? "    (temporary, removed on exit)" : ""}\n\n`,
    "Demo keys (test environment; secrets are shown only here):\n",
    line("trader   HMAC     read,trade", trader),
    line("trader   Ed25519  read,trade", ed),
    line("reader   HMAC     read", reader),
    line("admin    HMAC     admin:*", adminKey),
    "\nTry it (from the repository root):\n",
    req(trader, "GET", "/api/v3/account"),
    req(trader, "POST", "/api/v3/order?symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.01"),
    req(ed, "GET", "/api/v3/openOrders"),
    req(reader, "POST", "/api/v3/order?symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.01").replace("\n", "    # refused: SCOPE_MISSING\n"),
    `  curl '${gateway}/api/v3/ticker/price?symbol=BTCUSDT'    # public\n`,
    `  curl '${gateway}/api/v3/account'    # refused: CREDENTIALS_MISSING\n`,
    "\nCtrl-C stops everything.\n",
  ].join("");
}
