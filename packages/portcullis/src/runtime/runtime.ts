import type { AddressInfo } from "node:net";
import { AdminApi } from "../admin/server.js";
import { AuditAdmin, readableAudit } from "../admin/audit.js";
import type { Governance } from "../admin/policy.js";
import { AddressBook } from "../governance/address-book.js";
import { PolicyService } from "../governance/policy-service.js";
import { type PortcullisConfig, ConfigError } from "../config/config.js";
import { Portcullis } from "../core/core.js";
import { HpkeKeyring } from "../custody/hpke.js";
import { IdentitySigner } from "../gateway/identity.js";
import { Forwarder } from "../gateway/proxy.js";
import { Gateway } from "../gateway/server.js";
import { Authorizer } from "../gateway/authorizer.js";
import type { Environment } from "../contract/ids.js";
import type { Logger } from "../log/logger.js";
import { checkSecretsOpen, openDataDir, readSecretFile } from "../core/data-dir.js";
import { RedisChangeBus } from "../storage/redis/bus.js";
import { RedisHotStore } from "../storage/redis/hot.js";
import type { DurableStore, HotStore } from "../storage/types.js";
import { SequenceReservations } from "../replay/reservations.js";
import { SessionAuthority } from "../sessions/authority.js";
import { PasskeyService, listenerOrigin } from "../sessions/passkeys.js";
import { SessionEndpoints } from "../gateway/session-endpoints.js";
import { WebSocketProxy } from "../gateway/websocket/proxy.js";
import { LivePrices, PriceRefresher } from "../operations/live-prices.js";
import type { PolicyDecider } from "../contract/policy.js";
import { HoldService, type HoldServiceOptions } from "../holds/service.js";
import { OperationEndpoints } from "../gateway/operation-endpoints.js";
import { RiskProfiles } from "../exposure/service.js";
import type { AnomalyScores } from "../contract/behaviour.js";
import type { AnomalyResponder } from "../anomaly/responder.js";
import { stepUpSettings } from "../anomaly/responses.js";
import { SnapshottingBehaviourStore } from "../storage/behaviour-state.js";
import { RedisBehaviourStore } from "../storage/redis/behaviour.js";
import { AlertWebhook } from "../anomaly/webhook.js";
import { TlsCredentials } from "../gateway/tls.js";
import { Readiness } from "../core/readiness.js";
import { PortcullisMetrics } from "../metrics/metrics.js";
import { findConsoleDist } from "./console-dir.js";
import { LiveStats } from "../metrics/live-stats.js";

export interface RunningPortcullis {
  readonly core: Portcullis;
  /** The gateway, or the authorizer in authorizer mode (`gateway.mode`, docs/deploy/authorizer.md). */
  readonly gateway: Gateway | Authorizer;
  readonly admin: AdminApi | null;
  /** The WebSocket proxy, when the config has WebSocket routes. */
  readonly websocket: WebSocketProxy | null;
  readonly gatewayAddress: AddressInfo;
  readonly adminAddress: AddressInfo | null;
  /** The policy service (a PolicyDecider) and the address books (docs/policy.md). */
  readonly governance: Governance;
  /** Held operations and approvers (docs/approvals.md): the policy's ChangeHolder too. */
  readonly holds: HoldService;
  /** The behaviour stage's responder (docs/behaviour.md, "Responses"): hand it each score. */
  readonly anomalies: AnomalyResponder;
  /** The gateway's and the admin API's TLS (docs/tls.md); null for a plain-HTTP listener. */
  readonly tls: ListenerTls;
  /**
   * Reads every listener's certificate and key again (what SIGHUP does, docs/tls.md): new
   * handshakes get them, open connections keep theirs. A bad file keeps the old certificate and
   * logs TLS_RELOAD_FAILED. True when every listener with TLS reloaded.
   */
  reloadTls(): boolean;
  /** The dependencies /portcullis/v1/readyz checks (docs/operations-endpoints.md). */
  readonly readiness: Readiness;
  /** The Prometheus metrics served by the admin API's /metrics; null when disabled. */
  readonly metrics: PortcullisMetrics | null;
  /**
   * Graceful shutdown: the probes turn 503 DRAINING at once; after `gateway.drainDelay` the
   * servers stop accepting and in-flight requests have `drainMs` (default `gateway.drainTimeout`)
   * to finish; then the audit log is flushed and the core closed.
   */
  close(drainMs?: number): Promise<void>;
}

/** The TLS of each listener, or null where it speaks plain HTTP. */
export interface ListenerTls {
  readonly gateway: TlsCredentials | null;
  readonly admin: TlsCredentials | null;
}

export function urlOf(address: AddressInfo, scheme: "http" | "https" = "http"): string {
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  const shown = host === "0.0.0.0" || host === "[::]" ? "127.0.0.1" : host;
  return `${scheme}://${shown}:${address.port}`;
}

/**
 * The listeners' certificates and keys, read and checked (docs/tls.md): a file that cannot be
 * read, is not PEM, or a key of another certificate stops the start with TLS_MATERIAL_INVALID
 * before anything is opened or written.
 */
export function loadListenerTls(config: PortcullisConfig, logger: Logger | null): ListenerTls {
  const gateway = config.gateway.tls === null ? null : new TlsCredentials(config.gateway.tls, "gateway.tls", logger);
  const admin = config.admin.tls === null || !config.admin.enabled ? null : new TlsCredentials(config.admin.tls, "admin.tls", logger);
  return { gateway, admin };
}

/** What the configuration file does not hold (yet): a decider in place of the policy, and the hold service's tuning. */
export interface StartOptions {
  /**
   * Stage 10's decider in place of the policy service (docs/policy.md): tests that hold by a
   * fixed rule. Default: the policy in force in the data directory.
   */
  readonly policy?: PolicyDecider;
  readonly holds?: Pick<HoldServiceOptions, "approvalTtlMs" | "rejectCancels" | "pollMs" | "leaseMs">;
  /** The behaviour model's latest scores, for keys' risk profiles (docs/behaviour.md); default: the core's behaviour engine. */
  readonly anomaly?: AnomalyScores | null;
}

/** Starts the gateway (and the admin API unless disabled) as the config describes. */
export async function startPortcullis(config: PortcullisConfig, logger: Logger, options: StartOptions = {}): Promise<RunningPortcullis> {
  // TLS first: a bad certificate or key stops the start before the data directory is opened.
  const tls = loadListenerTls(config, logger);
  // The envelope and the signing keys come from the configured custody provider (keyring or PKCS#11).
  // The audit log's commits, spill files, last-use batches and behaviour states are written by a
  // worker thread (storage/sqlite/writer.ts): the request thread never waits for an fsync.
  const data = await openDataDir(config.dataDir, {
    custody: config.custody,
    store: config.store,
    onStoreError: (err) => {
      logger.warn({ err: err.message }, "durable store: a PostgreSQL connection failed; it reconnects by itself");
    },
    pollIntervalMs: config.store.pollIntervalMs,
    offThreadWrites: true,
    onWriterDeath: (err) => {
      logger.error({ err: err.message }, "the durable writer's thread died; started again on the next write (writes in flight recovered or spilled)");
    },
  });
  if (config.environment !== null && config.environment !== data.environment) {
    await data.close();
    throw new ConfigError(`config.environment is ${config.environment} but ${config.dataDir} holds ${data.environment} keys`);
  }
  try {
    await checkSecretsOpen(data, config.dataDir);
  } catch (err) {
    await data.close();
    throw err;
  }
  let core: Portcullis | null = null;
  let gateway: Gateway | Authorizer | null = null;
  let admin: AdminApi | null = null;
  let policy: PolicyService | null = null;
  let hot: HotStore | undefined;
  let bus: RedisChangeBus | undefined;
  let alerts: AlertWebhook | null = null;
  let sweeper: NodeJS.Timeout | null = null;
  let sealingTimer: NodeJS.Timeout | null = null;
  let unwatchStore: (() => void) | null = null;
  // Reference prices (docs/guardrails.md): the configured table, kept current by a refresher
  // when one is configured (off the request path; a failed poll keeps the last prices).
  const prices = new LivePrices({ table: config.prices.table, maxAgeMs: config.prices.refresh?.maxAgeMs ?? Number.POSITIVE_INFINITY });
  const refresher = config.prices.refresh === null ? null : new PriceRefresher({ prices, settings: config.prices.refresh, logger });
  // Stage 11's step-up holds through the hold service (docs/behaviour.md).
  const holds = new HoldService({ store: data.store.holds, envelope: data.envelope, policy: options.policy ?? null, logger, stepUp: stepUpSettings(config.behaviour.stepUp), prices, ...options.holds });
  let states: SnapshottingBehaviourStore | null = null;
  let sharedStates: RedisBehaviourStore | null = null;
  const metricsSettings = config.admin.metrics;
  const metrics = config.admin.enabled && metricsSettings.enabled ? new PortcullisMetrics({ sampleEvery: metricsSettings.sampleEvery }) : null;
  // The console's live statistics (docs/console-backend.md): this process's decisions, read on the admin listener.
  const stats = config.admin.enabled ? new LiveStats() : null;
  try {
    const metricsToken = metrics === null || metricsSettings.tokenFile === null ? null : readSecretFile(metricsSettings.tokenFile, "admin.metrics.tokenFile");
    const identitySecret = readSecretFile(config.gateway.identitySecretFile);
    hot = await openHotStore(config, data.store, logger);
    bus = await openBus(config, logger);
    // Behaviour states: in the data directory, or shared by every process through Redis with the
    // data directory keeping a copy (docs/behaviour.md, "Where the state lives").
    if (config.hot.backend === "redis") {
      sharedStates = new RedisBehaviourStore({ url: config.hot.url, prefix: config.hot.prefix, onError: (err) => { logger.warn({ err: err.message }, "behaviour state: redis error"); } });
      states = new SnapshottingBehaviourStore(sharedStates, data.store.behaviour, { onError: (err) => { logger.warn({ err: err.message }, "behaviour state: snapshot failed; retried"); } });
    }
    alerts = config.behaviour.webhook === null ? null : new AlertWebhook({ settings: config.behaviour.webhook, signer: data.signingKeys, logger });
    // Sealed orders (docs/sealed-orders.md): the HPKE keys, a current one made now if none is.
    const sealing = config.sealing.enabled ? new HpkeKeyring({ store: data.store.hpke, envelope: data.envelope, rotateMs: config.sealing.rotateMs, graceMs: config.sealing.graceMs }) : null;
    if (sealing !== null) {
      await sealing.refresh();
      // Rotated (by whichever process comes first) and retired on time; a minute at most late.
      sealingTimer = setInterval(() => {
        sealing.refresh().catch((err: unknown) => {
          logger.error({ err }, "HPKE key rotation failed; retried in a minute");
        });
      }, Math.min(60_000, Math.floor(config.sealing.graceMs / 2) || 60_000));
      sealingTimer.unref();
    }
    const sessions = config.sessions.enabled ? await SessionAuthority.open({ meta: data.store, envelope: data.envelope, environment: data.environment, signingKeys: data.signingKeys }) : undefined;
    core = new Portcullis({
      store: data.store,
      envelope: data.envelope,
      environment: data.environment,
      routes: config.routes,
      windowMs: config.signatures.windowMs,
      idleExpiryMs: config.keys.idleExpiryMs,
      futureSkewMs: config.signatures.futureSkewMs,
      trustedProxies: config.gateway.trustedProxies,
      clientCertHeader: config.gateway.clientCertHeader,
      authorities: config.gateway.authorities,
      scheme: config.gateway.scheme,
      timing: config.gateway.serverTiming,
      outageGraceMs: config.store.outageGraceMs,
      limits: config.limits,
      ...(hot === undefined ? {} : { hot }),
      ...(sessions === undefined ? {} : { sessions }),
      ...(bus === undefined ? {} : { bus }),
      audit: { ...config.audit, signer: data.signingKeys },
      logger,
      prices,
      openOrders: { ttlMs: config.guardrails.reservationTtlMs, maxOpenOrders: config.guardrails.maxOpenOrders },
      behaviour: { settings: config.behaviour, alerts, ...(states === null ? {} : { states }) },
      metrics,
      stats,
      sealing,
    });
    // An outage of the durable store and its end, each logged once (docs/failures.md).
    const availability = core.availability;
    let outageStart: number | null = null;
    unwatchStore = availability?.watch((since) => {
      if (since !== null) {
        outageStart = since;
        logger.warn({ outageGraceMs: config.store.outageGraceMs }, "durable store unreachable: keys cached before now verify for store.outageGrace, others and admin calls are refused 503, audit entries spill");
      } else {
        logger.info({ outageMs: outageStart === null ? null : Date.now() - outageStart }, "durable store answers again: its changes caught up, spilled audit entries being replayed");
        outageStart = null;
      }
    }) ?? null;
    const readiness = new Readiness({
      store: data.store,
      availability: core.availability,
      hot: core.hot,
      audit: core.audit,
      custody: data.custody.kek,
      timeoutMs: config.gateway.readinessTimeoutMs,
      logger,
      ...(metrics === null ? {} : { onCheck: metrics.checked }),
    });
    metrics?.watch({ keyCache: core.cache, audit: core.audit, readiness });
    // The first poll is awaited (bounded by its timeout; a failure only logs): the gateway starts with prices.
    await refresher?.start();
    // Stage 10: the policy service judges (unless a test gives its own decider) and holds its own
    // changes (a new version, a new address) in the hold service, which settles velocity with it.
    policy = await PolicyService.open({ store: data.store, pollIntervalMs: config.store.pollIntervalMs, logger, prices, holder: holds });
    const decider = options.policy ?? policy;
    holds.usePolicy(decider);
    const governance: Governance = { policy, addresses: new AddressBook({ store: data.store, policy, holder: holds, cooldownMs: config.policy.addressCooldownMs }) };
    const identity = new IdentitySigner(identitySecret);
    const websocket = webSocketProxy(config, core, identity, data.environment, logger, { policy: decider, service: holds });
    const upstream = config.gateway.upstream;
    const forwarder = upstream === null ? null : new Forwarder({ upstream, timeoutMs: config.gateway.upstreamTimeoutMs });
    // Wallet logon and agents (docs/wallets.md): with a wallets section, and sessions to log on to.
    // Loaded only when configured: the wallet protocol brings viem, which nothing else needs at start.
    const wallets =
      config.wallets === null || sessions === undefined ? null : (await import("../gateway/wallet-endpoints.js")).walletEndpoints(core, config.wallets, config.limits.specs);
    gateway = config.gateway.mode === "authorizer" ? new Authorizer({
      pipeline: core.pipeline,
      tls: tls.gateway ?? undefined,
      identity,
      logger,
      trustedProxies: config.gateway.trustedProxies,
      bodyLimit: config.gateway.bodyLimit,
      scheme: config.gateway.scheme,
      ...(sessions === undefined ? {} : { sessions: new SessionEndpoints(core) }),
      ...(wallets === null ? {} : { wallets }),
      audit: core.audit,
      holds: { policy: decider, service: holds, operations: new OperationEndpoints(core, holds), forwarder },
      readiness,
    }) : forwarder === null ? null : new Gateway({
      pipeline: core.pipeline,
      tls: tls.gateway ?? undefined,
      forwarder,
      identity,
      ...(websocket === null ? {} : { websocket }),
      logger,
      bodyLimit: config.gateway.bodyLimit,
      scheme: config.gateway.scheme,
      ...(sessions === undefined ? {} : { sessions: new SessionEndpoints(core) }),
      ...(wallets === null ? {} : { wallets }),
      audit: core.audit,
      // The operations endpoint is served whether or not a policy holds anything here: an
      // operation held by another gateway process on the same data directory is readable too.
      holds: { policy: decider, service: holds, operations: new OperationEndpoints(core, holds) },
      readiness,
      sealing,
    });
    if (gateway === null) throw new TypeError("the proxy mode needs gateway.upstream");
    // Releases what is ready (made ready here, by another process, or by the CLI), expires what
    // waited too long; also at start, for what a previous run left ready.
    holds.start();
    // The behaviour stage's responses (the core's responder): revokes whose grace passed, once a minute.
    const anomalies = core.anomalies;
    if (anomalies === null) throw new TypeError("the core was built without its responder");
    sweeper = setInterval(() => {
      anomalies.sweep().catch((err: unknown) => {
        logger.error({ err }, "anomaly revoke sweep failed; retried in a minute");
      });
    }, 60_000);
    sweeper.unref();
    const gatewayAddress = await gateway.listen(config.gateway.port, config.gateway.host);
    let adminAddress: AddressInfo | null = null;
    if (config.admin.enabled) {
      // Keys' risk profiles (docs/behaviour.md): the configured limits and routes, the policy in force, the prices.
      const risk = new RiskProfiles({
        keys: core.keys,
        limits: config.limits.specs,
        routes: core.routes.routes,
        policy,
        prices,
        assets: Object.keys(config.prices.table.assets ?? {}),
        symbols: Object.keys(config.prices.table.symbols ?? {}),
        anomaly: options.anomaly === undefined ? core.behaviour : options.anomaly,
        idleExpiryMs: config.keys.idleExpiryMs,
      });
      // The audit log's routes read the durable store's chain (both stores can: admin/audit.ts).
      const auditStore = readableAudit(data.store.audit);
      // Passkeys (docs/passkeys.md): bound to the console's origin, configured or the listener's own.
      const passkeys = new PasskeyService({ store: data.store.passkeys, origins: config.admin.origin });
      admin = new AdminApi({
        core,
        logger,
        tls: tls.admin ?? undefined,
        governance,
        holds,
        risk,
        anomalies: { responder: anomalies, signer: data.signingKeys },
        ...(auditStore === null ? {} : { audit: new AuditAdmin({ log: core.audit, store: auditStore, signer: data.signingKeys }) }),
        passkeys,
        ...(metrics === null ? {} : { metrics: { metrics, public: metricsSettings.public, token: metricsToken } }),
        console: consoleFiles(config.admin.console, logger),
        ...(stats === null ? {} : { stats: { live: stats } }),
      });
      adminAddress = await admin.listen(config.admin.port, config.admin.host);
      if (config.admin.origin === null) {
        const derived = listenerOrigin(adminAddress, config.admin.host, tls.admin !== null);
        if (derived === null) logger.warn({ host: config.admin.host }, "passkeys are off: the admin listener's host is an IP address, which WebAuthn cannot use; set admin.origin to the console's origin");
        else passkeys.useOrigins([derived]);
      }
    }
    const running = { core, gateway, admin, websocket, policy };
    return {
      core,
      gateway,
      admin,
      websocket,
      governance,
      holds,
      anomalies,
      gatewayAddress,
      adminAddress,
      tls,
      reloadTls() {
        const gatewayOk = tls.gateway?.reload() ?? true;
        const adminOk = tls.admin?.reload() ?? true;
        return gatewayOk && adminOk;
      },
      readiness,
      metrics,
      async close(drainMs = config.gateway.drainTimeoutMs) {
        // Draining: the probes answer 503 while requests are still served, so that a load
        // balancer stops sending before the listener closes.
        running.gateway.drain();
        if (config.gateway.drainDelayMs > 0) {
          logger.info({ drainDelayMs: config.gateway.drainDelayMs }, "draining: probes answer 503 DRAINING; still serving until the delay ends");
          await new Promise((resolve) => setTimeout(resolve, config.gateway.drainDelayMs));
        }
        refresher?.stop();
        if (sweeper !== null) clearInterval(sweeper);
        if (sealingTimer !== null) clearInterval(sealingTimer);
        unwatchStore?.();
        await holds.stop();
        await Promise.all([running.gateway.close(drainMs), running.admin?.close(drainMs)]);
        running.policy.close();
        // What is queued is scored and answered, its alerts sent and its states copied, before the store closes.
        await running.core.behaviour?.close();
        await alerts?.close();
        await states?.close();
        await running.core.close();
        await sharedStates?.close();
        await bus?.close();
        await data.custody.close();
      },
    };
  } catch (err) {
    tls.gateway?.close();
    tls.admin?.close();
    unwatchStore?.();
    refresher?.stop();
    if (sweeper !== null) clearInterval(sweeper);
    if (sealingTimer !== null) clearInterval(sealingTimer);
    policy?.close();
    await holds.stop();
    await gateway?.close(0);
    await admin?.close(0);
    await core?.behaviour?.close();
    await alerts?.close();
    await states?.close();
    await sharedStates?.close();
    if (core !== null) await core.close();
    else {
      await data.store.close();
      await hot?.close();
    }
    await bus?.close();
    await data.custody.close();
    throw err;
  }
}

/**
 * With hot state in Redis, the change bus on the same Redis and prefix: revocations and logouts
 * reach every gateway process at once. Redis being down at startup is not fatal (the change feed
 * still carries key changes, later).
 */
async function openBus(config: PortcullisConfig, logger: Logger): Promise<RedisChangeBus | undefined> {
  if (config.hot.backend !== "redis") return undefined;
  const where = redactedUrl(config.hot.url);
  let last = "";
  const bus = new RedisChangeBus({
    url: config.hot.url,
    prefix: config.hot.prefix,
    onError: (err) => {
      if (err.message === last) return;
      last = err.message;
      logger.warn({ redis: where, reason: err.message }, "change bus: redis unreachable; changes reach this gateway through the durable store only");
    },
  });
  try {
    await bus.ready();
  } catch {
    logger.warn({ redis: where }, "change bus: not subscribed at startup; it subscribes as soon as redis answers");
  }
  return bus;
}

/** The WebSocket proxy for the config's WebSocket routes (docs/websocket.md), or null when it has none. */
function webSocketProxy(
  config: PortcullisConfig,
  core: Portcullis,
  identity: IdentitySigner,
  environment: Environment,
  logger: Logger,
  holds: { readonly policy: PolicyDecider; readonly service: HoldService },
): WebSocketProxy | null {
  const upstream = config.gateway.upstream;
  if (config.websocket.routes.length === 0 || upstream === null || config.gateway.mode !== "proxy") return null;
  return new WebSocketProxy({
    core,
    settings: config.websocket,
    environment,
    identity,
    upstream,
    upstreamTimeoutMs: config.gateway.upstreamTimeoutMs,
    futureSkewMs: config.signatures.futureSkewMs,
    scheme: config.gateway.scheme,
    logger,
    holds,
  });
}

/** A URL safe to log: without its password. */
function redactedUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== "") u.password = "***";
    return u.toString();
  } catch {
    return "(unparsable url)";
  }
}

/**
 * The configured hot store: undefined for process memory (the core's default), else a Redis store
 * shared with every gateway on the same Redis and prefix. Redis being down at startup is not
 * fatal: the gateway starts, refuses non-degradable routes (HOT_STORE_UNAVAILABLE) and uses Redis
 * as soon as it answers. Connection errors are logged once per distinct error, and at most every
 * 30 s while Redis stays down.
 */
async function openHotStore(config: PortcullisConfig, durable: DurableStore, logger: Logger): Promise<HotStore | undefined> {
  if (config.hot.backend !== "redis") return undefined;
  const where = redactedUrl(config.hot.url);
  let last = "";
  let lastAt = 0;
  const store = new RedisHotStore({
    url: config.hot.url,
    prefix: config.hot.prefix,
    policy: config.limits.shield,
    reservations: new SequenceReservations(durable.replay),
    logouts: durable.logouts,
    runs: durable.meta,
    onEpoch: (epoch, previous) => {
      if (previous === null) logger.info({ redis: where, runId: epoch.runId }, "redis hot store: replay state since the server started");
      else logger.warn({ redis: where, runId: epoch.runId, previousRunId: previous.runId }, "redis restarted: requests signed before it started are refused (REPLAY_FENCED), increasing nonces resume above their reservations");
    },
    onError: (err) => {
      const now = Date.now();
      if (err.message === last && now - lastAt < 30_000) return;
      last = err.message;
      lastAt = now;
      logger.warn({ redis: where, reason: err.message }, "redis hot store unreachable; non-degradable routes are refused until it answers");
    },
  });
  try {
    await store.ready();
    // The epoch (docs/replay.md) before the first request, so the first admissions need not wait for it.
    await store.epoch();
    logger.info({ redis: where, prefix: config.hot.prefix }, "hot state in redis");
  } catch {
    logger.warn({ redis: where }, "redis not reachable at startup; non-degradable routes are refused until it answers");
  }
  return store;
}

/** The console's files for the admin API (admin.console), or undefined with a line saying why not. */
function consoleFiles(enabled: boolean, logger: Logger): { dir: string } | undefined {
  if (!enabled) {
    logger.info("console off (admin.console: false): /console/ answers CONSOLE_NOT_AVAILABLE");
    return undefined;
  }
  const dir = findConsoleDist();
  if (dir === null) {
    logger.info("console not available: the @portcullis/console package is not installed; /console/ answers CONSOLE_NOT_AVAILABLE, the admin API works");
    return undefined;
  }
  return { dir };
}
