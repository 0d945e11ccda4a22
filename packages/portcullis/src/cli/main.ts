import { Command, InvalidArgumentError, Option } from "commander";
import { X509Certificate, generateKeyPairSync, randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { type ConfigSource, type PortcullisConfig, DEFAULT_LIMITS, MAX_WORKERS, loadConfigSource, parseWorkers } from "../config/config.js";
import { PortcullisError } from "../errors/catalogue.js";
import { valueOrThrow } from "../errors/result.js";
import { parseLimitOverrides, parseRotateKeyInput } from "../keys/input.js";
import { KEY_STATUSES, type KeyGuardrails, type KeyStatus, type KeyView } from "../contract/keys.js";
import { LAST_USED_FLUSH_MS } from "../keys/usage.js";
import { type Logger, createLogger } from "../log/logger.js";
import { certThumbprint } from "../net/client-cert.js";
import { startPortcullis, urlOf } from "../runtime/runtime.js";
import { onHangup, startWorkers, workerCount } from "../runtime/workers.js";
import { initDataDir } from "../core/data-dir.js";
import { exitQuietlyOnClosedOutput, reportFailure, usageError } from "./errors.js";
import { registerCustodyCommands } from "./custody.js";
import { registerAuditCommands } from "./audit.js";
import { registerPolicyCommands } from "./policy.js";
import { registerApprovalCommands } from "./approvals.js";
import { registerRiskCommand } from "./risk.js";
import { registerAnomalyCommands } from "./anomalies.js";
import { type KeyOps, localKeyOps, remoteKeyOps } from "./key-ops.js";
import { sendSignedRequest } from "./request.js";
import { demoNotInstalled, loadDemoPackage, starterRoutes } from "./demo.js";
import { print } from "./target.js";
import { productionConfig } from "./production.js";
import { type StoreSettings, StoreSettingsError, describeStore, parseStoreSettings } from "../storage/location.js";

/**
 * The `portcullis` command. Every command takes `--json` where it prints data; failures go to
 * stderr as one line, `CODE: message` (or a JSON object with --json), with a code from the error
 * catalogue, and exit with a non-zero status (cli/errors.ts).
 */

const DEFAULT_DATA = process.env.PORTCULLIS_DATA ?? "./portcullis-data";

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError("must be a port number from 0 to 65535");
  return n;
}

function workersFlag(value: string): number | "auto" {
  try {
    return parseWorkers(value === "auto" ? value : Number(value), "--workers");
  } catch {
    throw new InvalidArgumentError(`must be a number from 1 to ${MAX_WORKERS}, or "auto" (one per core)`);
  }
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** "name=n" flags into overrides; the key service validates names and values. */
function limitOverrides(pairs: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    const value = Number(pair.slice(eq + 1));
    if (eq <= 0 || !Number.isSafeInteger(value)) throw new PortcullisError("VALIDATION_FAILED", `--limit/--set takes name=n, e.g. key-weight-1m=12000 (got ${pair})`);
    out[pair.slice(0, eq)] = value;
  }
  return valueOrThrow(parseLimitOverrides(out));
}

/** "15m", "90d": the largest whole unit. */
function duration(ms: number): string {
  for (const [unit, size] of [["d", 86_400_000], ["h", 3_600_000], ["m", 60_000], ["s", 1000]] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

function describeKey(k: KeyView): string {
  const lines = [
    `id          ${k.id}`,
    `status      ${k.effectiveStatus}${k.statusReason === null ? "" : ` (${k.statusReason})`}`,
    `account     ${k.account}${k.subAccount === null ? "" : ` / ${k.subAccount}`}`,
    `algorithm   ${k.algorithm}`,
    `scopes      ${k.scopes.join(", ")}${k.operator ? " (operator: every account)" : ""}`,
    `ip allow    ${k.ipAllowlist.length === 0 ? "any" : k.ipAllowlist.join(", ")}`,
    `dialects    ${k.dialects.join(", ")}`,
    `expires     ${k.expiresAt === null ? "never" : new Date(k.expiresAt).toISOString()}`,
    `limits      ${Object.keys(k.limits).length === 0 ? "the configured ones" : Object.entries(k.limits).map(([n, v]) => `${n}=${v}`).join(", ")}`,
    `sessions    ${k.sessionTtlMs === null ? "default lifetime" : `lifetime ${duration(k.sessionTtlMs)}`}${k.sessionBindAddress ? ", bound to the logon address" : ""} (epoch ${k.sessionEpoch})`,
    `created     ${new Date(k.createdAt).toISOString()}`,
    `last used   ${k.lastUsedAt === null ? "never" : new Date(k.lastUsedAt).toISOString()} (written in batches: up to ${LAST_USED_FLUSH_MS / 1000} s late)`,
  ];
  if (k.label !== "") lines.splice(1, 0, `label       ${k.label}`);
  if (k.owner !== null) lines.push(`owner       ${k.owner}`);
  if (k.certThumbprint !== null) lines.push(`client cert ${k.certThumbprint} (x5t#S256: requests need mutual TLS with this certificate)`);
  if (k.idleExpiresAt !== null) lines.push(`idle expiry ${new Date(k.idleExpiresAt).toISOString()} unless used (it may trade or withdraw from any address)`);
  if (k.maxAgeMs !== null) lines.push(`rotation    every ${duration(k.maxAgeMs)} (maximum age)`);
  if (k.rotatedFrom !== null) lines.push(`rotated from ${k.rotatedFrom}`);
  if (k.rotatedTo !== null) lines.push(`rotated to  ${k.rotatedTo} (this key stops at its expiry)`);
  if (k.algorithm === "ethereum") lines.push(`wallet      ${k.publicKey ?? ""} (an owner key: logs on with SIWE / EIP-712, approves agents)`);
  const agent = k.agent;
  if (agent !== null) {
    lines.push(`agent of    ${agent.ownerAddress} (owner key ${agent.ownerKey}), depth ${agent.depth}${agent.parent === null ? "" : `, delegated by ${agent.parent}`}`);
    lines.push(`agent key   ${agent.agentKey}`);
    const t = agent.terms;
    lines.push(`agent terms symbols ${t.symbols.join(",")}; max order notional ${t.maxOrderNotional || "none"}; max order quantity ${t.maxOrderQuantity || "none"}; max open notional ${t.maxOpenNotional || "none"}`);
  }
  lines.push(...describeGuardrails(k.guardrails));
  return lines.join("\n");
}

/**
 * The thumbprint `keys create` binds the key to (docs/tls.md): computed from `--cert FILE` (a PEM
 * certificate), or `--cert-thumbprint` as given (the key service checks its form); not both.
 */
function certBinding(certFile: string | undefined, thumbprint: string | undefined): string | undefined {
  if (certFile !== undefined && thumbprint !== undefined) {
    throw new PortcullisError("VALIDATION_FAILED", "give --cert or --cert-thumbprint, not both", { certThumbprint: "given twice" });
  }
  if (certFile === undefined) return thumbprint;
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(readFileSync(certFile));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT" || (err as NodeJS.ErrnoException).code === "EACCES") throw err;
    throw new PortcullisError("VALIDATION_FAILED", `--cert: ${certFile} is not a PEM certificate`, { certThumbprint: "--cert is not a PEM certificate" });
  }
  return certThumbprint(cert.raw);
}

/** The `guardrails` lines of `keys show` (docs/guardrails.md). */
function describeGuardrails(g: KeyGuardrails | null): string[] {
  if (g === null) return ["guardrails  none"];
  const parts: string[] = [];
  if (g.symbols !== null) parts.push(`symbols ${g.symbols.join(", ")}`);
  if (g.maxQuantity !== null) parts.push(`max quantity ${g.maxQuantity}`);
  if (g.maxNotional !== null) parts.push(`max notional ${g.maxNotional}`);
  if (g.priceBandPct !== null) parts.push(`price band ±${g.priceBandPct} %`);
  if (g.withdrawAssets !== null) parts.push(`withdraw ${g.withdrawAssets.join(", ")}`);
  if (g.transferAssets !== null) parts.push(`transfer ${g.transferAssets.join(", ")}`);
  if (g.maxOpenNotional !== null) parts.push(`max open notional ${g.maxOpenNotional} (the key's open orders together)`);
  return parts.map((p, i) => `${i === 0 ? "guardrails " : "           "} ${p}`);
}

interface GuardrailFlags {
  symbols?: string;
  maxQuantity?: string;
  maxNotional?: string;
  priceBand?: string;
  withdrawAssets?: string;
  transferAssets?: string;
  maxOpenNotional?: string;
}

/**
 * The `guardrails` member from the guardrail flags, or undefined when none was given. On
 * `keys update` a flag's value "none" removes that guardrail (the update is a merge patch).
 */
function guardrailsFromFlags(opts: GuardrailFlags, update: boolean): Record<string, unknown> | undefined {
  const out: Record<string, unknown> = {};
  const list = (v: string): string[] | null => (update && v === "none" ? null : v.split(",").map((s) => s.trim()).filter((s) => s !== ""));
  const value = (v: string): string | null => (update && v === "none" ? null : v);
  if (opts.symbols !== undefined) out.symbols = list(opts.symbols);
  if (opts.maxQuantity !== undefined) out.maxQuantity = value(opts.maxQuantity);
  if (opts.maxNotional !== undefined) out.maxNotional = value(opts.maxNotional);
  if (opts.priceBand !== undefined) out.priceBandPct = value(opts.priceBand);
  if (opts.withdrawAssets !== undefined) out.withdrawAssets = list(opts.withdrawAssets);
  if (opts.transferAssets !== undefined) out.transferAssets = list(opts.transferAssets);
  if (opts.maxOpenNotional !== undefined) out.maxOpenNotional = value(opts.maxOpenNotional);
  return Object.keys(out).length === 0 ? undefined : out;
}

/** Adds the guardrail flags to a command (`none` clears one on update). */
function withGuardrailFlags(cmd: Command, update: boolean): Command {
  const clear = update ? '; "none" to remove it' : "";
  return cmd
    .option("--symbols <list>", `guardrail: the only symbols the key may order, e.g. BTCUSDT,ETHUSDT${clear}`)
    .option("--max-quantity <n>", `guardrail: the largest base quantity of one order${clear}`)
    .option("--max-notional <n>", `guardrail: the largest value of one order in its quote asset${clear}`)
    .option("--price-band <pct>", `guardrail: a limit price at most this many percent from the reference price${clear}`)
    .option("--withdraw-assets <list>", `guardrail: the only assets the key may withdraw, e.g. USDT,BTC${clear}`)
    .option("--transfer-assets <list>", `guardrail: the only assets the key may transfer${clear}`)
    .option("--max-open-notional <n>", `guardrail: the largest value of the key's open orders together, in their quote asset${clear}`);
}

interface TargetOptions {
  data?: string;
  admin?: string;
  adminKeyId?: string;
  adminSecret?: string;
}

async function keyOps(opts: TargetOptions): Promise<KeyOps> {
  if (opts.admin !== undefined) {
    const keyId = opts.adminKeyId ?? process.env.PORTCULLIS_ADMIN_KEY_ID;
    const secret = opts.adminSecret ?? process.env.PORTCULLIS_ADMIN_SECRET;
    if (keyId === undefined || secret === undefined) {
      throw new PortcullisError(
        "VALIDATION_FAILED",
        "--admin needs an admin key: set PORTCULLIS_ADMIN_KEY_ID and PORTCULLIS_ADMIN_SECRET (or --admin-key-id / --admin-secret)",
      );
    }
    return remoteKeyOps(opts.admin, { keyId, secret });
  }
  return localKeyOps(resolve(opts.data ?? DEFAULT_DATA));
}

function withTarget(cmd: Command): Command {
  return cmd
    .option("--data <dir>", "data directory to operate on directly (default $PORTCULLIS_DATA or ./portcullis-data)")
    .option("--admin <url>", "operate through a running admin API instead (admin key from $PORTCULLIS_ADMIN_KEY_ID / $PORTCULLIS_ADMIN_SECRET)")
    .option("--admin-key-id <id>", "admin key id (prefer $PORTCULLIS_ADMIN_KEY_ID)")
    .option("--admin-secret <secret>", "admin key secret (prefer $PORTCULLIS_ADMIN_SECRET: arguments are visible to other users)")
    .option("--json", "print JSON");
}

async function withOps<T>(opts: TargetOptions, fn: (ops: KeyOps) => Promise<T>): Promise<T> {
  const ops = await keyOps(opts);
  try {
    return await fn(ops);
  } finally {
    await ops.close();
  }
}

/**
 * Generates a key pair here, so the private half never leaves this machine. A secp256k1 private
 * key is printed as viem and wallets write it: `0x` and 64 hex digits.
 */
function generatePrivateKey(algorithm: string): { publicKey: string; privateKey: string } {
  if (algorithm === "secp256k1") {
    const pair = generateKeyPairSync("ec", { namedCurve: "secp256k1" });
    const d = pair.privateKey.export({ format: "jwk" }).d ?? "";
    return { publicKey: pair.publicKey.export({ type: "spki", format: "pem" }).toString(), privateKey: `0x${Buffer.from(d, "base64url").toString("hex")}\n` };
  }
  const pair =
    algorithm === "ed25519"
      ? generateKeyPairSync("ed25519")
      : algorithm === "ecdsa-p256"
        ? generateKeyPairSync("ec", { namedCurve: "P-256" })
        : generateKeyPairSync("rsa", { modulusLength: 3072 });
  return {
    publicKey: pair.publicKey.export({ type: "spki", format: "pem" }).toString(),
    privateKey: pair.privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
  };
}

/**
 * A generated private key: written to `out` (mode 0600, never overwriting) when given, else
 * returned to be printed once.
 */
function keepPrivateKey(generated: { privateKey: string } | null, out: string | undefined): string | undefined {
  if (generated === null) return undefined;
  if (out === undefined) return generated.privateKey;
  writeFileSync(out, generated.privateKey, { mode: 0o600, flag: "wx" });
  return undefined;
}

/** The lines that show a new credential once: an HMAC secret, a private key, or where it went. */
function credentialLines(secret: string | undefined, privateKey: string | undefined, writtenTo: string | undefined): string[] {
  const lines: string[] = [];
  if (secret !== undefined) lines.push("", `secret      ${secret}`, "            (shown once: store it now; Portcullis keeps only an encrypted copy)");
  if (privateKey !== undefined) lines.push("", "private key (shown once, never sent to the server):", privateKey.trimEnd());
  if (writtenTo !== undefined) lines.push("", `private key written to ${writtenTo} (mode 0600)`);
  return lines;
}

/**
 * `portcullis start --workers N` with N > 1: a primary and N gateway processes on the same ports
 * (runtime/workers.ts). SIGTERM / SIGINT drain every worker; the primary exits 0 when all did.
 */
async function startWorkerPool(config: PortcullisConfig, source: ConfigSource, workers: number, logger: Logger, hangup: ReturnType<typeof onHangup>): Promise<void> {
  const pool = await startWorkers({ config, source, workers, logger });
  const stop = (): void => {
    logger.info({ workers: pool.workers }, "shutting down: draining in-flight requests in every worker");
    pool.stop().then(
      (status) => process.exit(status),
      (err: unknown) => {
        logger.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  // TLS reload (docs/tls.md): each worker reads its certificate and key again.
  hangup.ready(() => {
    for (const pid of pool.pids()) {
      try {
        process.kill(pid, "SIGHUP");
      } catch {
        // A worker that just exited: its replacement reads the files at its start.
      }
    }
  });
  logger.info({ gateway: pool.gateway, admin: pool.admin, upstream: config.gateway.upstream, workers: pool.workers }, "portcullis started");
}

function buildProgram(): Command {
  const program = new Command("portcullis")
    .description("The security layer in front of a trading venue's API.")
    .version("0.1.0")
    // Options of the program itself come before a command: `policy show --version 3` is the command's.
    .enablePositionalOptions()
    .configureOutput({ outputError: usageError(process.argv.includes("--json")) })
    .showHelpAfterError();

  program
    .command("init")
    .description("create a data directory: keyring (0600), identity secret (0600), database (or store.json naming PostgreSQL), starter config")
    .option("--data <dir>", "data directory", DEFAULT_DATA)
    .addOption(new Option("--environment <env>", "environment of the keys issued here").choices(["live", "test"]).default("live"))
    .option("--upstream <url>", "origin of the API to protect, written to the starter config", "http://127.0.0.1:9000")
    .option("--store <url>", "keep the durable store in PostgreSQL at this postgres:// URL (no password: PGPASSWORD or ~/.pgpass) instead of SQLite")
    .option("--schema <name>", "the PostgreSQL schema of the store's tables (with --store)", "portcullis")
    .option("--production", "write a commented production config: PostgreSQL (--store), Redis (--redis), TLS, workers, metrics")
    .option("--redis <url>", "the Redis of the production config (with --production)", "redis://127.0.0.1:6379")
    .option("--json", "print JSON")
    .action(async (opts: { data: string; environment: "live" | "test"; upstream: string; store?: string; schema: string; production?: boolean; redis: string; json?: boolean }) => {
      const dataDir = resolve(opts.data);
      if (opts.production === true && opts.store === undefined) {
        throw new PortcullisError("VALIDATION_FAILED", "--production needs --store postgres://user@host:5432/database: production keeps its durable state in PostgreSQL");
      }
      if (opts.store === undefined && opts.schema !== "portcullis") throw new PortcullisError("VALIDATION_FAILED", "--schema goes with --store");
      let store: StoreSettings | undefined;
      try {
        store = opts.store === undefined ? undefined : parseStoreSettings({ backend: "postgres", url: opts.store, schema: opts.schema }, "--store");
      } catch (err) {
        if (err instanceof StoreSettingsError) throw new PortcullisError("VALIDATION_FAILED", err.message.replace("--store.url", "--store").replace("--store.schema", "--schema"));
        throw err;
      }
      if (opts.production === true && !/^rediss?:\/\//.test(opts.redis)) throw new PortcullisError("VALIDATION_FAILED", "--redis must be a redis:// or rediss:// URL");
      const result = await initDataDir(dataDir, opts.environment, store);
      const configPath = join(dataDir, "portcullis.json");
      const created = [...result.created];
      const next: string[] = [];
      if (opts.production === true && store?.backend === "postgres") {
        const tokenPath = join(dataDir, "metrics.token");
        if (!existsSync(tokenPath)) {
          writeFileSync(tokenPath, `${randomBytes(32).toString("base64url")}\n`, { mode: 0o600, flag: "wx" });
          created.push(tokenPath);
        }
        if (!existsSync(configPath)) {
          const { routes } = await starterRoutes();
          writeFileSync(configPath, productionConfig({ environment: opts.environment, upstream: opts.upstream, store, redisUrl: opts.redis, routes, limits: DEFAULT_LIMITS }), { mode: 0o644, flag: "wx" });
          created.push(configPath);
        }
        next.push(
          `  put the gateway's and the admin API's certificates and keys in ${join(dataDir, "tls")} (gateway.crt/.key, admin.crt/.key; keys mode 0600)`,
          `  edit ${configPath} (upstream, routes, trustedProxies), then`,
          `  PGPASSWORD=… portcullis keys create --data ${dataDir} --account ops --scopes admin:keys --operator   # an operator key`,
          `  PGPASSWORD=… portcullis start --config ${configPath}`,
          `  other hosts: copy ${join(dataDir, "keyring.json")}, identity.secret, store.json, metrics.token and the config (mode 0600 for secrets)`,
        );
      } else {
        if (!existsSync(configPath)) {
          const starter = {
            dataDir: ".",
            environment: opts.environment,
            gateway: { host: "0.0.0.0", port: 8080, upstream: opts.upstream, trustedProxies: [], serverTiming: false },
            admin: { enabled: true, host: "127.0.0.1", port: 8081 },
            signatures: { windowMs: 5000 },
            ...(store === undefined ? {} : { store }),
            // Written out, so the budgets are there to read and tune (the account's is shared by its keys).
            limits: DEFAULT_LIMITS,
            ...(await starterRoutes()),
          };
          writeFileSync(configPath, `${JSON.stringify(starter, null, 2)}\n`, { mode: 0o644 });
          created.push(configPath);
        }
        next.push(
          `  edit ${configPath} (upstream, routes), then`,
          `  portcullis keys create --data ${dataDir} --account ops --scopes admin:keys --operator   # an operator key`,
          `  portcullis start --config ${configPath}`,
        );
      }
      print(opts.json === true, { dataDir, environment: result.environment, store: store === undefined ? "sqlite" : describeStore(store), config: configPath, created }, () =>
        [`Portcullis data directory: ${dataDir} (${result.environment}; store: ${store === undefined ? "SQLite" : describeStore(store)})`, ...created.map((c) => `  created ${c}`), "", "Next:", ...next].join("\n"),
      );
    });

  program
    .command("start")
    .description("run the gateway and the admin API from a config file")
    .option("--config <file>", "config file", "./portcullis.json")
    .option(
      "--workers <n>",
      'gateway processes sharing the gateway and admin ports: a number, or "auto" (one per core); default: the config\'s gateway.workers, else 1. More than one needs hot.backend "redis"',
      workersFlag,
    )
    .action(async (opts: { config: string; workers?: number | "auto" }) => {
      const { config, source } = loadConfigSource(opts.config);
      const workers = workerCount(opts.workers ?? config.gateway.workers);
      const logger = createLogger({ level: config.log.level });
      // SIGHUP (TLS reload) is handled from here on: while starting, it must not end the process.
      const hangup = onHangup();
      if (workers > 1) {
        await startWorkerPool(config, source, workers, logger, hangup);
        return;
      }
      const running = await startPortcullis(config, logger);
      let stopping = false;
      const stop = (): void => {
        // The first signal drains; a later one (Ctrl-C after SIGTERM) changes nothing.
        if (stopping) return;
        stopping = true;
        logger.info({ drainDelayMs: config.gateway.drainDelayMs, drainTimeoutMs: config.gateway.drainTimeoutMs }, "shutting down: draining in-flight requests");
        running.close().then(
          () => {
            const audit = running.core.audit.stats;
            logger.info({ audit: { committed: audit.committed, spilled: audit.spilled, dropped: audit.dropped, buffered: audit.buffered } }, "portcullis stopped: in-flight requests answered, audit log flushed");
            process.exit(0);
          },
          (err: unknown) => {
            logger.error({ err }, "shutdown failed");
            process.exit(1);
          },
        );
      };
      process.on("SIGINT", stop);
      process.on("SIGTERM", stop);
      // SIGHUP reloads the TLS certificates and keys (docs/tls.md); without TLS it is ignored.
      hangup.ready(() => {
        running.reloadTls();
      });
      // Only now: whoever waits for this line may signal at once (before, SIGTERM would kill outright).
      logger.info(
        { gateway: urlOf(running.gatewayAddress, running.tls.gateway === null ? "http" : "https"), mode: config.gateway.mode, admin: running.adminAddress === null ? null : urlOf(running.adminAddress, running.tls.admin === null ? "http" : "https"), upstream: config.gateway.upstream },
        "portcullis started",
      );
    });

  program
    .command("demo")
    .description("run the demo exchange, the gateway in front of it and the admin API, with ready-to-use keys")
    .option("--port <n>", "gateway port", port, 8080)
    .option("--admin-port <n>", "admin API port", port, 8081)
    .option("--upstream-port <n>", "demo exchange port", port, 8082)
    .option("--data <dir>", "data directory (default: a temporary one, removed on exit)")
    .option("--json", "print one JSON line with the URLs and demo keys first")
    .option("--no-traffic", "no background traffic (by default a small bot keeps the console's charts moving)")
    .action(async (opts: { port: number; adminPort: number; upstreamPort: number; data?: string; json?: boolean; traffic: boolean }) => {
      try {
        const demo = await loadDemoPackage();
        if (demo === null) throw demoNotInstalled();
        await demo.runDemo({
          port: opts.port,
          adminPort: opts.adminPort,
          upstreamPort: opts.upstreamPort,
          dataDir: opts.data === undefined ? undefined : resolve(opts.data),
          json: opts.json === true,
          traffic: opts.traffic,
        });
      } catch (err) {
        // DEMO_PORT_IN_USE, DEMO_NOT_INSTALLED, or anything else: the CLI's one-line failure.
        process.exit(reportFailure(err, opts.json === true));
      }
    });

  const keys = program.command("keys").description("create, inspect, update, rotate, revoke, suspend and resume API keys");

  withGuardrailFlags(withTarget(
    keys
      .command("create")
      .description("create an API key; an HMAC secret or generated private key is printed once")
      .requiredOption("--account <id>", "account the key acts for")
      .requiredOption("--scopes <list>", "comma-separated: read, trade, withdraw, transfer, admin:keys, admin:policy, admin:addresses, admin:*")
      .option("--sub-account <id>", "sub-account")
      .option("--label <text>", "a label for humans")
      .option("--ip <cidr>", "allow only this address or CIDR block (repeatable)", collect)
      .addOption(new Option("--algorithm <alg>", "credential type").choices(["hmac-sha256", "ed25519", "ecdsa-p256", "rsa", "secp256k1"]))
      .option("--public-key <file>", "your public key (SPKI PEM or JWK; secp256k1 also hex: 0x02…/0x03…/0x04…); without it an asymmetric key pair is generated here")
      .option("--wallet <address>", "a wallet owner key (docs/wallets.md): the wallet's address (0x…); it logs on with SIWE or EIP-712 and approves agents")
      .option("--private-key-out <file>", "write a generated private key to this file (mode 0600) instead of printing it")
      .option("--expires <duration>", 'expiry: a duration such as "30d", or an ISO-8601 time')
      .option("--window <ms>", "freshness window for signatures, 1000-60000 ms (default 5000)")
      .option("--dialect <name>", "signing scheme the key may use: native, binance, kraken, coinbase, okx, bybit (repeatable; default native)", collect)
      .option("--passphrase <text>", "OKX keys: the passphrase the client will send (prefer $PORTCULLIS_PASSPHRASE)")
      .option("--limit <name=n>", "override a configured limit for this key, e.g. key-weight-1m=12000 (repeatable)", collect)
      .option("--max-age <duration>", 'scheduled rotation: the key expires this long after creation, e.g. "90d" (answers warn before)')
      .option("--session-ttl <duration>", 'lifetime of the key\'s sessions, 1m to 24h (default 15m)')
      .option("--session-bind-address", "bind the key's sessions to the address they log on from")
      .option("--operator", "an operator key: its admin scopes reach every account (without it an admin key manages its own account's keys)")
      .option("--owner <name>", "the person who owns the key (an approver of that name never approves what it initiates)")
      .option("--cert <file>", "bind the key to this client certificate (PEM): requests need mutual TLS with it (docs/tls.md)")
      .option("--cert-thumbprint <x5t#S256>", "bind the key to the client certificate with this SHA-256 thumbprint (base64url, RFC 8705)"),
  ), false).action(
    async (opts: TargetOptions & GuardrailFlags & {
      cert?: string;
      certThumbprint?: string;
      wallet?: string;
      operator?: boolean;
      owner?: string;
      account: string;
      scopes: string;
      subAccount?: string;
      label?: string;
      ip?: string[];
      algorithm?: string;
      publicKey?: string;
      privateKeyOut?: string;
      expires?: string;
      window?: string;
      dialect?: string[];
      passphrase?: string;
      limit?: string[];
      maxAge?: string;
      sessionTtl?: string;
      sessionBindAddress?: boolean;
      json?: boolean;
    }) => {
      let generated: { publicKey: string; privateKey: string } | null = null;
      let publicKey: string | undefined;
      if (opts.publicKey !== undefined) publicKey = readFileSync(opts.publicKey, "utf8");
      else if (opts.algorithm !== undefined && opts.algorithm !== "hmac-sha256") {
        generated = generatePrivateKey(opts.algorithm);
        publicKey = generated.publicKey;
      }
      const raw: Record<string, unknown> = {
        account: opts.account,
        scopes: opts.scopes.split(",").map((s) => s.trim()).filter((s) => s !== ""),
      };
      if (opts.subAccount !== undefined) raw.subAccount = opts.subAccount;
      if (opts.label !== undefined) raw.label = opts.label;
      if (opts.ip !== undefined) raw.ipAllowlist = opts.ip;
      if (opts.algorithm !== undefined) raw.algorithm = opts.algorithm;
      if (publicKey !== undefined) raw.publicKey = publicKey;
      if (opts.wallet !== undefined) raw.wallet = opts.wallet;
      if (opts.expires !== undefined) raw.expires = opts.expires;
      if (opts.window !== undefined) raw.windowMs = Number(opts.window);
      if (opts.dialect !== undefined) raw.dialects = opts.dialect;
      const passphrase = opts.passphrase ?? process.env.PORTCULLIS_PASSPHRASE;
      if (passphrase !== undefined) raw.passphrase = passphrase;
      if (opts.limit !== undefined) raw.limits = limitOverrides(opts.limit);
      if (opts.maxAge !== undefined) raw.maxAge = opts.maxAge;
      if (opts.sessionTtl !== undefined) raw.sessionTtl = opts.sessionTtl;
      if (opts.sessionBindAddress === true) raw.sessionBindAddress = true;
      if (opts.operator === true) raw.operator = true;
      if (opts.owner !== undefined) raw.owner = opts.owner;
      const thumbprint = certBinding(opts.cert, opts.certThumbprint);
      if (thumbprint !== undefined) raw.certThumbprint = thumbprint;
      const guardrails = guardrailsFromFlags(opts, false);
      if (guardrails !== undefined) raw.guardrails = guardrails;
      const key = await withOps(opts, (ops) => ops.create(raw));
      const privateKey = keepPrivateKey(generated, opts.privateKeyOut);
      const out = privateKey === undefined ? key : { ...key, privateKey };
      print(opts.json === true, out, () => [describeKey(key), ...credentialLines(key.secret, privateKey, generated === null ? undefined : opts.privateKeyOut)].join("\n"));
    },
  );

  withTarget(
    keys
      .command("list")
      .description("list keys")
      .option("--account <id>", "only this account")
      .addOption(new Option("--status <status>", "only this status").choices([...KEY_STATUSES]))
      .option("--search <text>", "only keys whose id or account starts with TEXT, or whose label contains it (any case; 1-100 characters)")
      .option("--limit <n>", "at most this many (1-1000)", "100"),
  ).action(async (opts: TargetOptions & { account?: string; status?: KeyStatus; search?: string; limit: string; json?: boolean }) => {
    const limit = Number(opts.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new PortcullisError("VALIDATION_FAILED", "--limit must be 1-1000");
    const search = opts.search;
    // The admin API's q takes 1-100 characters; the CLI asks the same of a local search.
    if (search !== undefined && (search.length < 1 || search.length > 100)) throw new PortcullisError("VALIDATION_FAILED", "--search must be 1-100 characters");
    const list = await withOps(opts, (ops) =>
      ops.list({
        limit,
        ...(opts.account === undefined ? {} : { account: opts.account }),
        ...(opts.status === undefined ? {} : { status: opts.status }),
        ...(search === undefined ? {} : { search }),
      }),
    );
    print(opts.json === true, list, () =>
      list.length === 0
        ? "no keys"
        : list.map((k) => `${k.id}  ${k.effectiveStatus.padEnd(9)} ${k.algorithm.padEnd(11)} ${k.account}  ${k.scopes.join(",")}${k.certThumbprint === null ? "" : `  cert ${k.certThumbprint}`}${k.agent === null ? "" : `  agent of ${k.agent.parent ?? k.agent.ownerKey}`}`).join("\n"),
    );
  });

  withTarget(keys.command("show").description("show one key").argument("<id>", "key id")).action(
    async (id: string, opts: TargetOptions & { json?: boolean }) => {
      const key = await withOps(opts, (ops) => ops.show(id));
      print(opts.json === true, key, () => describeKey(key));
    },
  );

  for (const action of ["revoke", "suspend"] as const) {
    withTarget(
      keys
        .command(action)
        .description(action === "revoke" ? "revoke a key for good, and every agent key below it (docs/wallets.md)" : "suspend a key, and refuse every agent key below it (resume undoes it)")
        .argument("<id>", "key id")
        .option("--reason <text>", "why (recorded with the change)"),
    ).action(async (id: string, opts: TargetOptions & { reason?: string; json?: boolean }) => {
      const key = await withOps(opts, (ops) => ops[action](id, opts.reason ?? null));
      print(opts.json === true, key, () => `${key.id} is now ${key.effectiveStatus}`);
    });
  }

  withTarget(
    keys
      .command("limits")
      .description("set a key's limit overrides (replacing the old ones), or clear them")
      .argument("<id>", "key id")
      .option("--set <name=n>", "override a configured limit, e.g. key-weight-1m=12000 (repeatable)", collect)
      .option("--clear", "remove every override"),
  ).action(async (id: string, opts: TargetOptions & { set?: string[]; clear?: boolean; json?: boolean }) => {
    if (opts.clear !== true && opts.set === undefined) throw new PortcullisError("VALIDATION_FAILED", "give --set name=n (repeatable) or --clear");
    const limits = opts.clear === true ? {} : limitOverrides(opts.set ?? []);
    const key = await withOps(opts, (ops) => ops.setLimits(id, limits));
    const shown = Object.entries(key.limits).map(([n, v]) => `${n}=${v}`).join(", ");
    print(opts.json === true, key, () => `${key.id} limits: ${shown === "" ? "the configured ones" : shown}`);
  });

  withTarget(keys.command("resume").description("resume a suspended key").argument("<id>", "key id")).action(
    async (id: string, opts: TargetOptions & { json?: boolean }) => {
      const key = await withOps(opts, (ops) => ops.resume(id));
      print(opts.json === true, key, () => `${key.id} is now ${key.effectiveStatus}`);
    },
  );

  withGuardrailFlags(withTarget(
    keys
      .command("update")
      .description("change a key's label, scopes, IP allowlist, guardrails or session / rotation policy (scope, allowlist and binding changes end its sessions)")
      .argument("<id>", "key id")
      .option("--label <text>", "a label for humans")
      .option("--scopes <list>", "replace the scopes (comma-separated)")
      .option("--ip <cidr>", "replace the IP allowlist with these addresses or CIDR blocks (repeatable)", collect)
      .option("--any-ip", "remove the IP allowlist (any address)")
      .option("--session-ttl <duration>", 'lifetime of the key\'s sessions, 1m to 24h; "default" for the gateway default')
      .option("--session-bind-address", "bind the key's sessions to the address they log on from")
      .option("--no-session-bind-address", "do not bind the key's sessions to an address")
      .option("--max-age <duration>", 'scheduled rotation: expire this long after creation; "none" to drop the policy')
      .option("--owner <name>", 'the person who owns the key; "none" to clear it')
      .option("--clear-guardrails", "remove every guardrail of the key"),
  ), true).action(
    async (
      id: string,
      opts: TargetOptions & GuardrailFlags & { clearGuardrails?: boolean; owner?: string; label?: string; scopes?: string; ip?: string[]; anyIp?: boolean; sessionTtl?: string; sessionBindAddress?: boolean; maxAge?: string; json?: boolean },
    ) => {
      if (opts.ip !== undefined && opts.anyIp === true) throw new PortcullisError("VALIDATION_FAILED", "give --ip or --any-ip, not both");
      const raw: Record<string, unknown> = {};
      if (opts.label !== undefined) raw.label = opts.label;
      if (opts.scopes !== undefined) raw.scopes = opts.scopes.split(",").map((s) => s.trim()).filter((s) => s !== "");
      if (opts.ip !== undefined) raw.ipAllowlist = opts.ip;
      if (opts.anyIp === true) raw.ipAllowlist = [];
      if (opts.sessionTtl !== undefined) raw.sessionTtl = opts.sessionTtl === "default" ? null : opts.sessionTtl;
      if (opts.sessionBindAddress !== undefined) raw.sessionBindAddress = opts.sessionBindAddress;
      if (opts.maxAge !== undefined) raw.maxAge = opts.maxAge === "none" ? null : opts.maxAge;
      if (opts.owner !== undefined) raw.owner = opts.owner === "none" ? null : opts.owner;
      const guardrails = guardrailsFromFlags(opts, true);
      if (guardrails !== undefined && opts.clearGuardrails === true) throw new PortcullisError("VALIDATION_FAILED", "give guardrail flags or --clear-guardrails, not both");
      if (opts.clearGuardrails === true) raw.guardrails = null;
      else if (guardrails !== undefined) raw.guardrails = guardrails;
      const key = await withOps(opts, (ops) => ops.update(id, raw));
      print(opts.json === true, key, () => describeKey(key));
    },
  );

  withTarget(
    keys
      .command("rotate")
      .description("create a successor with the same settings and a new credential; the old key keeps working for a grace period, then expires")
      .argument("<id>", "key id")
      .option("--grace <duration>", 'how long the old key keeps working: "0" (stop now) up to "30d"', "24h")
      .option("--public-key <file>", "the successor's public key (SPKI PEM or JWK); without it a key pair is generated here for an asymmetric key")
      .option("--private-key-out <file>", "write a generated private key to this file (mode 0600) instead of printing it"),
  ).action(async (id: string, opts: TargetOptions & { grace: string; publicKey?: string; privateKeyOut?: string; json?: boolean }) => {
    valueOrThrow(parseRotateKeyInput({ grace: opts.grace })); // a bad --grace is refused before anything is read
    const rotated = await withOps(opts, async (ops) => {
      const current = await ops.show(id);
      let generated: { publicKey: string; privateKey: string } | null = null;
      let publicKey: string | undefined;
      if (opts.publicKey !== undefined) publicKey = readFileSync(opts.publicKey, "utf8");
      else if (current.algorithm !== "hmac-sha256") {
        generated = generatePrivateKey(current.algorithm);
        publicKey = generated.publicKey;
      }
      const successor = await ops.rotate(id, publicKey === undefined ? { grace: opts.grace } : { grace: opts.grace, publicKey });
      return { successor, generated };
    });
    const { successor, generated } = rotated;
    const privateKey = keepPrivateKey(generated, opts.privateKeyOut);
    const out = privateKey === undefined ? successor : { ...successor, privateKey };
    print(opts.json === true, out, () => {
      const { predecessor, secret, ...key } = successor;
      const until = predecessor.expiresAt === null ? "never" : new Date(predecessor.expiresAt).toISOString();
      return [describeKey(key), "", `${predecessor.id} keeps working until ${until}, then expires`, ...credentialLines(secret, privateKey, generated === null ? undefined : opts.privateKeyOut)].join("\n");
    });
  });

  withTarget(
    keys
      .command("end-sessions")
      .description("end every session of a key at once (the key itself keeps working)")
      .argument("<id>", "key id")
      .option("--reason <text>", "why (recorded with the change)"),
  ).action(async (id: string, opts: TargetOptions & { reason?: string; json?: boolean }) => {
    const key = await withOps(opts, (ops) => ops.endSessions(id, opts.reason ?? null));
    print(opts.json === true, key, () => `every session of ${key.id} has ended (epoch ${key.sessionEpoch})`);
  });

  // Agent keys (docs/wallets.md): registered by signatures at the gateway; here, seen and revoked.
  const agents = program.command("agents").description("list, show and revoke agent keys of wallet-owned accounts (docs/wallets.md)");
  withTarget(
    agents
      .command("list")
      .description("the agent keys of an account, each under the key above it")
      .requiredOption("--account <id>", "the account")
      .option("--owner <key id>", "only the agents under this owner key"),
  ).action(async (opts: TargetOptions & { account: string; owner?: string; json?: boolean }) => {
    const all = await withOps(opts, (ops) => ops.list({ account: opts.account, limit: 1000 }));
    const list = all.filter((k) => k.agent !== null && (opts.owner === undefined || k.agent.ownerKey === opts.owner));
    // Top first: by the chain, so each agent follows the one above it.
    const path = (k: KeyView): string => [...(k.agent?.ancestors ?? []), k.id].join("/");
    list.sort((a, b) => (path(a) < path(b) ? -1 : path(a) > path(b) ? 1 : 0));
    print(opts.json === true, list, () =>
      list.length === 0
        ? "no agents"
        : list.map((k) => `${"  ".repeat((k.agent?.depth ?? 1) - 1)}${k.id}  ${k.effectiveStatus.padEnd(9)} ${k.scopes.join(",")}  of ${k.agent?.ownerAddress ?? ""}${k.agent?.parent === null || k.agent === null ? "" : ` via ${k.agent.parent}`}`).join("\n"),
    );
  });
  withTarget(agents.command("show").description("show an agent key and its grant").argument("<id>", "agent key id")).action(async (id: string, opts: TargetOptions & { json?: boolean }) => {
    const key = await withOps(opts, (ops) => ops.show(id));
    if (key.agent === null) throw new PortcullisError("VALIDATION_FAILED", `${id} is not an agent key (keys show shows any key)`);
    print(opts.json === true, key, () => describeKey(key));
  });
  withTarget(
    agents
      .command("revoke")
      .description("revoke an agent key and every agent below it")
      .argument("<id>", "agent key id")
      .option("--reason <text>", "why (recorded with each change)"),
  ).action(async (id: string, opts: TargetOptions & { reason?: string; json?: boolean }) => {
    const key = await withOps(opts, async (ops) => {
      const shown = await ops.show(id);
      if (shown.agent === null) throw new PortcullisError("VALIDATION_FAILED", `${id} is not an agent key (keys revoke revokes any key)`);
      return ops.revoke(id, opts.reason ?? null);
    });
    print(opts.json === true, key, () => `${key.id} is now ${key.effectiveStatus}, and every agent below it`);
  });

  program
    .command("request")
    .description("send one request signed in the native scheme (like curl); key from $PORTCULLIS_KEY_ID / $PORTCULLIS_SECRET")
    .argument("<method>", "HTTP method")
    .argument("<url>", "full URL, e.g. http://127.0.0.1:8080/api/v3/account")
    .option("--key-id <id>", "API key id")
    .option("--secret <secret>", "HMAC secret (prefer $PORTCULLIS_SECRET)")
    .option("--private-key <file>", "PKCS#8 PEM private key for an ed25519 / ecdsa-p256 / secp256k1 key, or a secp256k1 key as 0x and 64 hex digits")
    .option("-d, --data <body>", "request body, sent exactly as given")
    .option("-H, --header <header>", "extra header 'name: value' (repeatable)", collect)
    .option("--sealed", "seal the body to the gateway with HPKE (docs/sealed-orders.md); needs --data")
    .action(
      async (
        method: string,
        url: string,
        opts: { keyId?: string; secret?: string; privateKey?: string; data?: string; header?: string[]; sealed?: boolean },
      ) => {
        const status = await sendSignedRequest({
          method,
          url,
          keyId: opts.keyId ?? process.env.PORTCULLIS_KEY_ID,
          secret: opts.secret ?? process.env.PORTCULLIS_SECRET,
          privateKeyFile: opts.privateKey,
          body: opts.data,
          headers: opts.header ?? [],
          sealed: opts.sealed === true,
        });
        if (status >= 400) process.exitCode = 1;
      },
    );

  registerCustodyCommands(program, DEFAULT_DATA);
  registerAuditCommands(program, DEFAULT_DATA);
  registerPolicyCommands(program, DEFAULT_DATA);
  registerApprovalCommands(program, DEFAULT_DATA);
  registerRiskCommand(keys, DEFAULT_DATA);
  registerAnomalyCommands(program, DEFAULT_DATA);
  return program;
}

const argv = process.argv;
exitQuietlyOnClosedOutput();
buildProgram()
  .parseAsync(argv)
  .catch((err: unknown) => {
    process.exit(reportFailure(err, argv.includes("--json")));
  });
