import type { AddressInfo } from "node:net";
import { AdminApi } from "./admin/server.js";
import type { PortcullisConfig } from "./config/config.js";
import { ConfigError } from "./config/config.js";
import { Portcullis } from "./core.js";
import { IdentitySigner } from "./gateway/identity.js";
import { Forwarder } from "./gateway/proxy.js";
import { Gateway } from "./gateway/server.js";
import type { Logger } from "./log/logger.js";
import { openDataDir, readSecretFile } from "./storage/data-dir.js";

export interface RunningPortcullis {
  readonly core: Portcullis;
  readonly gateway: Gateway;
  readonly admin: AdminApi | null;
  readonly gatewayAddress: AddressInfo;
  readonly adminAddress: AddressInfo | null;
  /** Graceful shutdown of both servers, then the core. */
  close(drainMs?: number): Promise<void>;
}

export function urlOf(address: AddressInfo): string {
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  const shown = host === "0.0.0.0" || host === "[::]" ? "127.0.0.1" : host;
  return `http://${shown}:${address.port}`;
}

/** Starts the gateway (and the admin API unless disabled) as the config describes. */
export async function startPortcullis(config: PortcullisConfig, logger: Logger): Promise<RunningPortcullis> {
  const data = await openDataDir(config.dataDir);
  if (config.environment !== null && config.environment !== data.environment) {
    await data.store.close();
    throw new ConfigError(`config.environment is ${config.environment} but ${config.dataDir} holds ${data.environment} keys`);
  }
  let core: Portcullis | null = null;
  let gateway: Gateway | null = null;
  let admin: AdminApi | null = null;
  try {
    const identitySecret = readSecretFile(config.gateway.identitySecretFile);
    core = new Portcullis({
      store: data.store,
      envelope: data.envelope,
      environment: data.environment,
      routes: config.routes,
      windowMs: config.signatures.windowMs,
      futureSkewMs: config.signatures.futureSkewMs,
      trustedProxies: config.gateway.trustedProxies,
      authorities: config.gateway.authorities,
      scheme: config.gateway.scheme,
      timing: config.gateway.serverTiming,
      limits: config.limits,
      logger,
    });
    gateway = new Gateway({
      pipeline: core.pipeline,
      forwarder: new Forwarder({ upstream: config.gateway.upstream, timeoutMs: config.gateway.upstreamTimeoutMs }),
      identity: new IdentitySigner(identitySecret),
      logger,
      bodyLimit: config.gateway.bodyLimit,
      scheme: config.gateway.scheme,
    });
    const gatewayAddress = await gateway.listen(config.gateway.port, config.gateway.host);
    let adminAddress: AddressInfo | null = null;
    if (config.admin.enabled) {
      admin = new AdminApi({ core, logger });
      adminAddress = await admin.listen(config.admin.port, config.admin.host);
    }
    const running = { core, gateway, admin };
    return {
      ...running,
      gatewayAddress,
      adminAddress,
      async close(drainMs = 10_000) {
        await Promise.all([running.gateway.close(drainMs), running.admin?.close(drainMs)]);
        await running.core.close();
      },
    };
  } catch (err) {
    await gateway?.close(0);
    await admin?.close(0);
    if (core !== null) await core.close();
    else await data.store.close();
    throw err;
  }
}
