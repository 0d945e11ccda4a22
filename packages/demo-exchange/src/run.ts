import { generateKeyPairSync } from "node:crypto";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { createLogger } from "portcullis";
import { DEMO_APPROVER_GROUP, DEMO_APPROVERS, DEMO_POLICY, type DemoGovernance, setUpDemoGovernance } from "./governance.js";
import { type DemoStack, startDemoStack } from "./stack.js";
import { writeSecretFile } from "./secret-file.js";
import { type DemoTraffic, startDemoTraffic } from "./traffic.js";
import { DEMO_WALLET_VENUE, type DemoWallet, setUpDemoWallet } from "./wallet.js";

export { writeSecretFile };

export interface DemoOptions {
  readonly port: number;
  readonly adminPort: number;
  readonly upstreamPort: number;
  /** Keep state here; default a temporary directory removed on exit. */
  readonly dataDir: string | undefined;
  /** Print one JSON line (URLs and keys) first, for scripts and tests. */
  readonly json: boolean;
  /** Background traffic for the console's charts (traffic.ts); default true, `--no-traffic` turns it off. */
  readonly traffic?: boolean;
}

/** The console operator's credential file in the data directory (docs/console-backend.md). */
export const CONSOLE_CREDENTIAL_FILE = "console-operator.json";

export interface DemoKey {
  readonly id: string;
  readonly account: string;
  readonly scopes: readonly string[];
  readonly algorithm: string;
  /** The signing schemes the key may use. */
  readonly dialects: readonly string[];
  readonly secret?: string;
  /** OKX keys: the passphrase. */
  readonly passphrase?: string;
  /** PEM private key (PKCS#8 for Ed25519; SEC1 for the Coinbase ECDSA key, as ccxt reads it). */
  readonly privateKey?: string;
  readonly privateKeyFile?: string;
}

interface DemoKeySpec {
  readonly name: string;
  readonly account: string;
  readonly scopes: readonly string[];
  readonly dialects: readonly string[];
  readonly label: string;
  readonly algorithm?: "ed25519" | "ecdsa-p256";
  readonly passphrase?: string;
  /** An operator key: its admin scopes reach every account. */
  readonly operator?: true;
  /** The person behind the key (who may not approve what it initiates). */
  readonly owner?: string;
  /** Per-key guardrails (docs/guardrails.md), as the admin API takes them. */
  readonly guardrails?: Readonly<Record<string, unknown>>;
  /** Per-key limit overrides, as the admin API takes them. */
  readonly limits?: Readonly<Record<string, number>>;
}

/** One key per way of signing: the trader key speaks the native scheme and the HMAC venues. */
const DEMO_KEYS: readonly DemoKeySpec[] = [
  { name: "trader", account: "demo-trader", scopes: ["read", "trade"], dialects: ["native", "binance", "kraken", "bybit"], label: "demo trading key (HMAC)" },
  {
    name: "ed25519",
    account: "demo-trader",
    scopes: ["read", "trade"],
    dialects: ["native", "binance"],
    label: "demo trading key (Ed25519)",
    algorithm: "ed25519",
    // Least privilege beyond scopes: three markets, at most 50,000 USDT an order, within 10 % of
    // the reference price (a fat-finger order is refused before it reaches the exchange).
    guardrails: { symbols: ["BTCUSDT", "ETHUSDT", "ETHBTC"], maxNotional: "50000", priceBandPct: "10" },
  },
  { name: "okx", account: "demo-trader", scopes: ["read", "trade"], dialects: ["native", "okx"], label: "demo OKX key", passphrase: "Demo-Passphrase-1" },
  { name: "coinbase", account: "demo-trader", scopes: ["read", "trade"], dialects: ["coinbase"], label: "demo Coinbase CDP key (ES256)", algorithm: "ecdsa-p256" },
  { name: "reader", account: "demo-trader", scopes: ["read"], dialects: ["native", "binance"], label: "demo read-only key" },
  {
    name: "treasury",
    account: "demo-treasury",
    scopes: ["read", "withdraw"],
    dialects: ["native", "binance"],
    label: "demo treasury key (withdrawals, held by the policy)",
    owner: "dave",
    guardrails: { withdrawAssets: ["USDT", "BTC"] },
  },
  { name: "admin", account: "demo-admin", scopes: ["admin:*"], dialects: ["native"], label: "demo admin key (operator)", operator: true },
  // The console's sign-in (issue 18): an operator's own Ed25519 key, its credential file in the data directory.
  { name: "console", account: "demo-admin", scopes: ["admin:*"], dialects: ["native"], label: "demo console operator (Ed25519)", algorithm: "ed25519", operator: true },
  // The background traffic (traffic.ts): its own account, read only; the burst key's small limit is what a burst goes over.
  { name: "traffic", account: "demo-traffic", scopes: ["read"], dialects: ["binance"], label: "demo traffic bot" },
  { name: "trafficBurst", account: "demo-traffic", scopes: ["read"], dialects: ["binance"], label: "demo traffic bot (bursts)", limits: { "key-weight-1m": 60 } },
];

function generatePair(algorithm: "ed25519" | "ecdsa-p256"): { publicKey: string; privateKey: string } {
  const pair = algorithm === "ed25519" ? generateKeyPairSync("ed25519") : generateKeyPairSync("ec", { namedCurve: "P-256" });
  return {
    publicKey: pair.publicKey.export({ type: "spki", format: "pem" }).toString(),
    // ccxt reads a Coinbase ES256 key as SEC1 ("EC PRIVATE KEY"); everything else takes PKCS#8.
    privateKey: pair.privateKey.export({ type: algorithm === "ed25519" ? "pkcs8" : "sec1", format: "pem" }).toString(),
  };
}

/**
 * `portcullis demo`: the demo exchange, the gateway in front of it and the admin API, on
 * embedded storage in the test environment, with demo keys and example requests printed.
 * Runs until SIGINT / SIGTERM, then shuts down gracefully.
 */
export async function runDemo(options: DemoOptions): Promise<void> {
  // Logs go to stderr, so stdout carries only what the demo prints (not the traffic bot's refusals).
  const hidden = new Set<string>();
  const logger = createLogger({ level: "info" }, refusalsOnly(process.stderr, hidden));
  const stack = await startDemoStack({
    port: options.port,
    adminPort: options.adminPort,
    upstreamPort: options.upstreamPort,
    dataDir: options.dataDir,
    logger,
    wallets: DEMO_WALLET_VENUE,
  });
  // The temporary directory holds the key-encryption key: whatever ends this process, remove it.
  // close() does on a signal; this covers an exit that skips it (an error after start, process.exit).
  if (stack.temporary) {
    process.once("exit", () => {
      rmSync(stack.dataDir, { recursive: true, force: true });
    });
  }
  let keys: Record<string, DemoKey>;
  let governance: DemoGovernance;
  let consoleCredential: string;
  let wallet: DemoWallet;
  let traffic: DemoTraffic | null = null;
  try {
    keys = await createDemoKeys(stack);
    const treasury = keys.treasury;
    if (treasury?.secret === undefined) throw new Error("the demo treasury key has no secret");
    governance = await setUpDemoGovernance(stack, { id: treasury.id, secret: treasury.secret, account: treasury.account });
    consoleCredential = writeConsoleCredential(stack.dataDir, keys.console);
    wallet = await setUpDemoWallet({ ...stack, environment: "test", createKey: (input) => stack.createKey(input) });
    const bot = keys.traffic;
    const burst = keys.trafficBurst;
    if (bot?.secret === undefined || burst?.secret === undefined) throw new Error("the demo traffic keys have no secret");
    hidden.add(bot.id);
    hidden.add(burst.id);
    if (options.traffic !== false) traffic = startDemoTraffic({ gateway: stack.gateway, key: { id: bot.id, secret: bot.secret }, burst: { id: burst.id, secret: burst.secret } });
  } catch (err) {
    await stack.close();
    throw err;
  }
  const consoleUrl = stack.admin === null ? null : `${stack.admin}/console/`;

  if (options.json) {
    const { approvers, held } = governance;
    process.stdout.write(
      `${JSON.stringify({ gateway: stack.gateway, admin: stack.admin, upstream: stack.upstream, dataDir: stack.dataDir, keys, approvers, heldWithdrawal: held, console: consoleUrl, consoleCredential, wallet })}\n`,
    );
  } else {
    process.stdout.write(
      describe(stack.gateway, stack.admin, stack.upstream, stack.dataDir, stack.temporary, keys) +
        describeGovernance(stack.gateway, stack.dataDir, keys, governance) +
        describeBehaviour(stack.dataDir) +
        describeWallet(stack.gateway, stack.dataDir, wallet) +
        describeConsole(consoleUrl, consoleCredential, traffic !== null) +
        "Ctrl-C stops everything.\n",
    );
  }

  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    (traffic === null ? Promise.resolve() : traffic.stop())
      .then(() => stack.close())
      .catch((err: unknown) => {
        logger.error({ err }, "demo shutdown failed");
      })
      .finally(() => {
        process.exit(0);
      });
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  // A closed terminal: without a handler, SIGHUP would end the process before any cleanup.
  process.once("SIGHUP", stop);
}

/**
 * The demo's stderr carries what the README promises: refusals (one JSON line each, with the
 * code), warnings and errors. Other information (the audit log's checkpoint lines, for log
 * shipping in production; the policy's and the hold service's progress, which the banner and
 * `portcullis approvals` show) stays off it; `portcullis audit verify --data DIR` checks the log.
 */
function refusalsOnly(out: NodeJS.WritableStream, hidden: ReadonlySet<string>): { write(line: string): void } {
  return {
    write(line: string): void {
      // pino writes one JSON object per call, `level` first and `msg` last; a quote inside a value
      // is escaped, so the prefix is only ever the level and the suffix only ever the message.
      if (line.startsWith('{"level":30,') && !line.endsWith('"msg":"request denied"}\n')) return;
      // The traffic bot's refusals are its purpose, not news (the console and the audit log show them).
      if (line.startsWith('{"level":30,') && hidden.size > 0) {
        const at = line.indexOf('"keyId":"');
        if (at >= 0 && hidden.has(line.slice(at + 9, line.indexOf('"', at + 9)))) return;
      }
      out.write(line);
    },
  };
}

async function createDemoKeys(stack: DemoStack): Promise<Record<string, DemoKey>> {
  const keys: Record<string, DemoKey> = {};
  for (const spec of DEMO_KEYS) {
    const pair = spec.algorithm === undefined ? null : generatePair(spec.algorithm);
    const created = await stack.createKey({
      account: spec.account,
      scopes: [...spec.scopes],
      label: spec.label,
      dialects: [...spec.dialects],
      ...(pair === null ? {} : { publicKey: pair.publicKey }),
      ...(spec.passphrase === undefined ? {} : { passphrase: spec.passphrase }),
      ...(spec.operator === undefined ? {} : { operator: spec.operator }),
      ...(spec.owner === undefined ? {} : { owner: spec.owner }),
      ...(spec.guardrails === undefined ? {} : { guardrails: spec.guardrails }),
      ...(spec.limits === undefined ? {} : { limits: spec.limits }),
    });
    const privateKeyFile = pair === null ? null : join(stack.dataDir, `demo-${spec.name}.pem`);
    if (pair !== null && privateKeyFile !== null) writeSecretFile(privateKeyFile, pair.privateKey);
    keys[spec.name] = {
      id: created.key.id,
      account: created.key.account,
      scopes: created.key.scopes,
      algorithm: created.key.algorithm,
      dialects: created.key.dialects,
      ...(created.secret === null ? {} : { secret: created.secret }),
      ...(spec.passphrase === undefined ? {} : { passphrase: spec.passphrase }),
      ...(pair === null || privateKeyFile === null ? {} : { privateKey: pair.privateKey, privateKeyFile }),
    };
  }
  return keys;
}

function describe(gateway: string, admin: string | null, upstream: string, dataDir: string, temporary: boolean, keys: Record<string, DemoKey>): string {
  const trader = keys.trader;
  const ed = keys.ed25519;
  const reader = keys.reader;
  const adminKey = keys.admin;
  const pad = "".padEnd(30);
  const line = (name: string, k: DemoKey | undefined): string =>
    k === undefined
      ? ""
      : `  ${name.padEnd(30)} ${k.id}    (${k.dialects.join(", ")})\n` +
        (k.secret === undefined ? "" : `  ${pad} secret ${k.secret}\n`) +
        (k.passphrase === undefined ? "" : `  ${pad} passphrase ${k.passphrase}\n`) +
        (k.privateKeyFile === undefined ? "" : `  ${pad} private key ${k.privateKeyFile}\n`);
  const req = (k: DemoKey | undefined, method: string, path: string): string => {
    if (k === undefined) return "";
    const cred = k.secret !== undefined ? `--secret ${k.secret}` : `--private-key ${k.privateKeyFile ?? ""}`;
    return `  npx portcullis request --key-id ${k.id} ${cred} ${method} '${gateway}${path}'\n`;
  };
  return [
    "Portcullis demo is running.\n\n",
    `  gateway     ${gateway}    (clients go here)\n`,
    `  admin API   ${admin ?? "disabled"}\n`,
    `  websocket   ${gateway.replace(/^http/, "ws")}/ws-api/v3    (Binance WebSocket API-shaped; docs/websocket.md)\n`,
    `  upstream    ${upstream}    (the demo exchange, behind the gateway)\n`,
    `  data        ${dataDir}${temporary ? "    (temporary, removed on exit)" : ""}\n\n`,
    "Demo keys (test environment; secrets are shown only here):\n",
    line("trader   HMAC     read,trade", trader),
    line("trader   Ed25519  read,trade", ed),
    line("okx      HMAC     read,trade", keys.okx),
    line("coinbase ES256    read,trade", keys.coinbase),
    line("reader   HMAC     read", reader),
    line("treasury HMAC     read,withdraw", keys.treasury),
    line("admin    HMAC     admin:* (operator)", adminKey),
    "\nTry it (from the repository root):\n",
    req(trader, "GET", "/api/v3/account"),
    req(trader, "POST", "/api/v3/order?symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.01"),
    req(ed, "GET", "/api/v3/openOrders"),
    req(ed, "POST", "/portcullis/v1/session").replace("\n", "    # a session: then sign with its keyid and secret (an HMAC per request)\n"),
    req(reader, "POST", "/api/v3/order?symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.01").replace("\n", "    # refused: SCOPE_MISSING\n"),
    `  curl '${gateway}/api/v3/ticker/price?symbol=BTCUSDT'    # public\n`,
    `  curl '${gateway}/api/v3/account'    # refused in Binance's format: {"code":-2014,...}\n`,
    "\nExisting bots work unchanged: point ccxt's binance, kraken or bybit at the gateway with the trader\n",
    "key, okx with the okx key and its passphrase, coinbase with the coinbase key (README, Exchange dialects).\n",
  ].join("");
}

/** The policy part of the demo's banner: the held withdrawal and how to approve it. */
function describeGovernance(gateway: string, dataDir: string, keys: Record<string, DemoKey>, g: DemoGovernance): string {
  const treasury = keys.treasury;
  const lines = [
    `\nWithdrawal policy (version ${g.policyVersion}; docs/policy.md): withdrawals over 1,000 USDT-equivalent or to an\n`,
    `address younger than its 60 s cooldown need 2 of the ${DEMO_APPROVER_GROUP} approvers (${DEMO_APPROVERS.join(", ")}); an account's\n`,
    `withdrawals are capped at 20,000 USDT-equivalent a day. Rules: ${DEMO_POLICY.rules.map((r) => `"${r.name}"`).join(", ")}.\n`,
    `Approver key files (Ed25519): ${dataDir}/approvers/NAME.pem\n`,
  ];
  const held = g.held;
  if (held === null || treasury === undefined) return `${lines.join("")}\n`;
  const cred = treasury.secret === undefined ? "" : `--secret ${treasury.secret}`;
  lines.push(
    `\nThe treasury key just asked to withdraw ${held.amount} ${held.asset} to ${held.address} (Binance-signed, as a bot would).\n`,
    `The policy held it (rule "${held.rule}"): the bot got Binance's usual answer, {"id":"${held.operationId}"}.\n`,
    "Look at it, approve it as two people, and watch it go through exactly once:\n",
    `  npx portcullis approvals show ${held.operationId} --data ${dataDir}\n`,
    `  npx portcullis approvals approve ${held.operationId} --key ${dataDir}/approvers/alice.pem --data ${dataDir}\n`,
    `  npx portcullis approvals approve ${held.operationId} --key ${dataDir}/approvers/bob.pem --data ${dataDir}\n`,
    `  npx portcullis request --key-id ${treasury.id} ${cred} GET '${gateway}/portcullis/v1/operations/${held.operationId}'\n`,
  );
  return `${lines.join("")}\n`;
}

/** The behaviour part of the demo's banner (docs/behaviour.md): risk profiles and anomaly actions. */
function describeBehaviour(dataDir: string): string {
  return [
    "Behaviour (stage 11; docs/behaviour.md): every decision is scored against its key's normal use, off the\n",
    `request path; an unusual key is alerted on, stepped up (its withdrawals held for one ${DEMO_APPROVER_GROUP} approver),\n`,
    "throttled or suspended, each action explained and undoable. What each key could do if stolen now:\n",
    `  npx portcullis keys risk --top 5 --data ${dataDir}\n`,
    `  npx portcullis anomalies list --data ${dataDir}\n\n`,
  ].join("");
}

/**
 * Writes the console operator's credential file (mode 0600): the key id, its algorithm and its
 * PKCS#8 private key, the format the console imports to sign in (docs/console-backend.md).
 */
function writeConsoleCredential(dataDir: string, key: DemoKey | undefined): string {
  if (key?.privateKey === undefined) throw new Error("the demo console operator key has no private key");
  const file = join(dataDir, CONSOLE_CREDENTIAL_FILE);
  writeSecretFile(file, `${JSON.stringify({ keyId: key.id, algorithm: "ed25519", privateKey: key.privateKey }, null, 2)}\n`);
  return file;
}

/** The wallet part of the demo's banner (docs/wallets.md): the owner, its agent, and what the agent may do. */
function describeWallet(gateway: string, dataDir: string, w: DemoWallet): string {
  const t = w.agent.terms;
  const req = (method: string, path: string): string => `  npx portcullis request --key-id ${w.agent.id} --private-key ${w.agent.privateKeyFile} ${method} '${gateway}${path}'`;
  return [
    `Wallet-owned account (docs/wallets.md): ${w.account}, owned by the Ethereum wallet ${w.owner}\n`,
    `(its private key: ${w.ownerFile}). The wallet approved an agent key for a bot with one EIP-712 signature;\n`,
    "the gateway registered it from that signature alone and holds no secret of either:\n",
    `  agent ${w.agent.id}  Ed25519  ${t.scopes.join(",")}  ${t.symbols.join(", ")}; at most ${t.maxOrderQuantity} and ${t.maxOrderNotional} USDT an order, ${t.maxOpenNotional} USDT open\n`,
    `${req("POST", "/api/v3/order?symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.01")}\n`,
    `${req("POST", "/api/v3/order?symbol=BTCUSDT&side=BUY&type=MARKET&quantity=1")}    # refused: GUARDRAIL_QUANTITY\n`,
    `${req("POST", "/api/v3/order").replace(" POST ", " --sealed --data 'symbol=ETHUSDT&side=BUY&type=MARKET&quantity=0.1' POST ")}    # sealed (HPKE): only the gateway reads it\n`,
    `${req("POST", "/sapi/v1/capital/withdraw/apply?coin=USDT&network=TRX&address=T1&amount=5")}    # refused: an agent never withdraws\n`,
    `  npx portcullis keys revoke ${w.agent.id} --data ${dataDir}    # then its next request: KEY_REVOKED\n\n`,
  ].join("");
}

/** The console part of the demo's banner: where it is and how to sign in. */
function describeConsole(url: string | null, credential: string, traffic: boolean): string {
  if (url === null) return "";
  return [
    `Console (docs/console.md): ${url}\n`,
    `  Sign in with the demo operator's key: choose its credential file, ${credential}\n`,
    "  (an Ed25519 key that stays in the browser; no password).\n",
    traffic
      ? "  A small bot sends a few requests a second (some refused on purpose) so the charts move; its refusals are\n  not logged here. `npm start -- --no-traffic` turns it off.\n\n"
      : "  Background traffic is off (--no-traffic).\n\n",
  ].join("");
}
