import type { Environment } from "../contract/ids.js";
import type { StoreSettings } from "../storage/location.js";

/**
 * The configuration `portcullis init --production` writes: every setting a production deployment
 * decides, with a comment saying what it is for and what to change (config/jsonc.ts reads the
 * comments). It is a valid configuration as written — once the certificate files it names exist —
 * so that `portcullis start` on it is the first test of an edit.
 */
export interface ProductionTemplate {
  readonly environment: Environment;
  readonly upstream: string;
  readonly store: Extract<StoreSettings, { backend: "postgres" }>;
  readonly redisUrl: string;
  /** The starter routes (demo.ts `starterRoutes`), as JSON. */
  readonly routes: readonly unknown[];
  readonly limits: unknown;
}

/** Indents a JSON value for its place in the template (its first line stays where it is). */
function json(value: unknown, indent: number): string {
  return JSON.stringify(value, null, 2).replace(/\n/g, `\n${" ".repeat(indent)}`);
}

export function productionConfig(t: ProductionTemplate): string {
  return `// Portcullis production configuration (portcullis init --production).
// Comments are allowed in this file. Paths are relative to this file's directory.
// Reference: docs/configuration.md, docs/production.md; every setting is checked at start.
{
  // The data directory: keyring (or use an HSM: "custody"), identity secret, audit spill and
  // archive directories, and store.json, which names the PostgreSQL store below. Copy keyring.json
  // and identity.secret (mode 0600) to every host that runs a gateway of this deployment.
  "dataDir": ".",
  "environment": ${json(t.environment, 2)},

  // Durable state (keys, audit log, policies, approvals, behaviour snapshots) in PostgreSQL, shared
  // by every gateway process and host. The URL holds no password: set PGPASSWORD, or use
  // ~/.pgpass. It must name the same server, database and schema as store.json.
  "store": {
    "backend": "postgres",
    "url": ${json(t.store.url, 4)},
    "schema": ${json(t.store.schema, 4)},
    "poolSize": ${json(t.store.poolSize, 4)},
    // While PostgreSQL cannot be reached, keys cached before the outage keep verifying this long;
    // then requests are refused (503 STORE_UNAVAILABLE). Admin writes fail at once (503).
    "outageGrace": "60s"
  },

  // Hot state (nonces, rate limits, bans, sessions, behaviour scores) in one Redis shared by every
  // gateway, and the bus that carries revocations between them within milliseconds.
  "hot": { "backend": "redis", "url": ${json(t.redisUrl, 2)}, "prefix": "portcullis:" },

  "gateway": {
    "host": "0.0.0.0",
    "port": 8443,
    "upstream": ${json(t.upstream, 4)},
    // Gateway processes on this host sharing the port ("auto": one per core).
    "workers": "auto",
    // HTTPS (docs/tls.md): TLS 1.2 minimum, 1.3 preferred; the files are reloaded when they change
    // (and on SIGHUP) without dropping connections. With "ca" and "clientAuth": "optional", keys
    // can be bound to a client certificate (portcullis keys create --bind-cert FILE).
    "tls": { "cert": "tls/gateway.crt", "key": "tls/gateway.key" },
    // The load balancers in front of this gateway, whose X-Forwarded-For is believed. Empty: none.
    "trustedProxies": [],
    // On SIGTERM: readyz turns 503 at once, then after drainDelay the listener stops accepting and
    // requests in flight have drainTimeout to finish.
    "drainDelay": "5s",
    "drainTimeout": "20s"
  },

  // The admin API and /metrics. Keep it on a private interface; its TLS may require client
  // certificates of your operators' CA ("ca", "clientAuth": "required").
  "admin": {
    "enabled": true,
    "host": "127.0.0.1",
    "port": 8444,
    "tls": { "cert": "tls/admin.crt", "key": "tls/admin.key" },
    // Prometheus scrapes send "Authorization: Bearer <this file's content>" (mode 0600, 32+ characters).
    "metrics": { "tokenFile": "metrics.token" }
  },

  "signatures": { "windowMs": 5000 },

  // Every audit decision is recorded; batches that cannot reach PostgreSQL spill to the data
  // directory and are replayed when it answers again.
  "audit": { "requests": "all" },

  "log": { "level": "info" },

  "limits": ${json(t.limits, 2)},

  "routes": ${json(t.routes, 2)}
}
`;
}
