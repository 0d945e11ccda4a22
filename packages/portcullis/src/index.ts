/**
 * `portcullis`: the library. Embed the pipeline in your own service (`Portcullis` +
 * `createMiddleware`), run the gateway and admin API (`startPortcullis`), or compose the servers
 * yourself. The upstream-side identity check lives in `portcullis/upstream`.
 *
 * This is the whole public API: everything else under `src/` is internal and may change in any
 * release (tests reach it by relative path).
 */

/**
 * Embedding: the core (`Portcullis`) over an opened data directory, as middleware for node:http,
 * Express and Connect, or as a Fastify `preParsing` hook (README, Embedded mode).
 */
export { Portcullis, type PortcullisOptions, type LimitsOptions, type CoreEvent } from "./core/core.js";
export { createMiddleware, type MiddlewareOptions, type PortcullisCaller, type PortcullisRequest } from "./embedded/middleware.js";
export { portcullisPreParsing, type FastifyRequestLike } from "./embedded/fastify.js";

/**
 * The data directory `portcullis init` lays out (keyring, identity secret, database): create it,
 * open it for a core, and the error both throw for a directory that is not one.
 */
export { initDataDir, openDataDir, DataDirError, type InitResult, type OpenDataDir, type OpenDataDirOptions } from "./core/data-dir.js";

/**
 * Running the gateway and the admin API from a config, as `portcullis start` does
 * (docs/configuration.md).
 */
export { startPortcullis, type RunningPortcullis, type StartOptions } from "./runtime/runtime.js";
export { loadConfig, parseConfig, ConfigError, DEFAULT_LIMITS, type PortcullisConfig } from "./config/config.js";

/**
 * Composing the servers yourself: the gateway (with its upstream forwarder and the identity
 * headers it signs), the WebSocket proxy for your own `upgrade` handler (docs/websocket.md), the
 * session endpoints and the admin API.
 */
export { Gateway, type GatewayOptions } from "./gateway/server.js";
export { Forwarder, type ForwarderOptions } from "./gateway/proxy.js";
export { IdentitySigner, createIdentityVerifier, IDENTITY_HEADERS, type IdentityVerifier, type PortcullisIdentity } from "./gateway/identity.js";
export {
  WebSocketProxy,
  type WebSocketProxyOptions,
  compileWebSocketSettings,
  WebSocketConfigError,
  type WebSocketRouteSpec,
  type WebSocketMethodSpec,
  type WebSocketSpec,
  type WebSocketSettings,
  WEBSOCKET_CLOSE_CODES,
} from "./gateway/websocket/index.js";
export { SessionAuthority, type IssuedSession, type LogonRequest } from "./sessions/authority.js";
export { SessionEndpoints, SESSION_ROUTES } from "./gateway/session-endpoints.js";
export { AdminApi, ADMIN_ROUTES } from "./admin/server.js";

/** Routes and permissions: the default-deny route table and the permission catalogue. */
export { RouteTable, RouteTableError, type RouteSpec } from "./authz/routes.js";
export type { Route } from "./contract/route.js";
/** Stage 10: the policy contract and held operations (docs/approvals.md). */
export type { PolicyDecider, PolicyDecision, PolicySubject, PolicyAction, ApprovalTier, HeldTicket, HoldState, HoldRequirements, ChangeHolder } from "./contract/policy.js";
export { PERMISSIONS, grantedPermissions, type Permission } from "./contract/permissions.js";

/**
 * Errors: one catalogue of stable codes (docs/errors.md) — request refusals with their HTTP
 * status, operator failures with their area and exit status — and the result type of the parsers
 * of untrusted input.
 */
export { errorCatalogue, ERROR_CODES, CodedError, OperatorError, PortcullisError, type CatalogueCode, type Denial, type ErrorCode, type OperatorCode } from "./errors/catalogue.js";
export { valueOrThrow, type Invalid, type Result } from "./errors/result.js";

/** Limits: the shapes of the config's `limits` section and the default shield policy. */
export { DEFAULT_SHIELD_POLICY, type ShieldPolicy } from "./limits/types.js";
export type { LimitSpec, LimitScope, LimitKind } from "./contract/limits.js";

/** Keys: the key service (a core's `keys`), its input parser, the key model and key ids. */
export { KeyService, type CreatedKey } from "./keys/service.js";
export { parseCreateKeyInput, type CreateKeyInput } from "./keys/input.js";
export type { KeyRecord, KeyView, KeyAlgorithm, KeyStatus, EffectiveStatus, KeyGuardrails } from "./contract/keys.js";

// Reference prices (docs/guardrails.md): `PortcullisOptions.prices` for an embedded core.
export type { ReferencePrices } from "./contract/prices.js";
export { StaticPrices, type PriceTable } from "./operations/prices.js";
export { LivePrices, PriceRefresher, type PriceRefreshSettings } from "./operations/live-prices.js";
export { parseKeyId, type Environment } from "./contract/ids.js";

/**
 * Hot state shared by gateway processes (replay, limits, bans, logouts) and the change bus
 * between them: in process memory or in Redis, behind small interfaces (README, Embedded mode).
 */
export { MemoryHotStore, type MemoryHotStoreOptions } from "./storage/memory/hot.js";
export { RedisHotStore, type RedisHotStoreOptions, type RedisEpoch } from "./storage/redis/hot.js";
/** Increasing nonces kept across restarts: give a hot store you construct the durable store's reservations. */
export { SequenceReservations, type ReservationStore, type SequenceReservationsOptions } from "./replay/reservations.js";
export { RedisChangeBus, type RedisChangeBusOptions } from "./storage/redis/bus.js";
export type { HotStore, ChangeBus, BusMessage } from "./storage/types.js";

/**
 * Key custody over an opened data directory: KEK rotation, status, encrypted backup and restore,
 * and the custody errors with their codes (docs/custody.md). The providers themselves (keyring
 * file, PKCS#11 token) are chosen by the config's `custody` section, not constructed here.
 */
export { rotateKek, custodyStatus, type RotationResult, type CustodyStatus } from "./custody/rotation.js";
export { writeBackup, restoreBackup, type BackupResult, type RestoreResult, type BackupHeader } from "./custody/backup.js";
/** The same for a PostgreSQL store: pg_dump and pg_restore, from PATH or /usr/lib/postgresql (docs/custody.md). */
export { writePostgresBackup, restorePostgresBackup } from "./custody/backup-postgres.js";
export { CustodyError, CUSTODY_ERRORS, type CustodyErrorCode } from "./custody/errors.js";
export type { CustodyConfig } from "./custody/config.js";
export type { KekProvider } from "./custody/keyring.js";

/** Logging: structured JSON logs (pino) with credential redaction. */
export { createLogger, type Logger } from "./log/logger.js";
