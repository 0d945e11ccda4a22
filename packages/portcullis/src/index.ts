/**
 * `portcullis`: the library. Embed the pipeline in your own service (`Portcullis` +
 * `createMiddleware`), run the gateway and admin API (`startPortcullis`), or build on the parts.
 * The upstream-side identity check lives in `portcullis/upstream`.
 */
export { Portcullis, type PortcullisOptions, type LimitsOptions, type CoreEvent } from "./core.js";
export { startPortcullis, type RunningPortcullis } from "./runtime.js";
export { createMiddleware, type MiddlewareOptions, type PortcullisCaller, type PortcullisRequest } from "./embedded/middleware.js";
export { portcullisPreParsing, type FastifyRequestLike } from "./embedded/fastify.js";
export { Gateway, type GatewayOptions } from "./gateway/server.js";
export { Forwarder, type ForwarderOptions } from "./gateway/proxy.js";
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
export { IdentitySigner, createIdentityVerifier, IDENTITY_HEADERS, type PortcullisIdentity } from "./gateway/identity.js";
export { AdminApi, ADMIN_ROUTES } from "./admin/server.js";
export { loadConfig, parseConfig, ConfigError, DEFAULT_LIMITS, type PortcullisConfig } from "./config/config.js";
export { DEFAULT_SHIELD_POLICY, type LimitSpec, type LimitScope, type LimitKind, type ShieldPolicy } from "./limits/types.js";
export { errorCatalogue, ERROR_CODES, CodedError, OperatorError, PortcullisError, type CatalogueCode, type Denial, type ErrorCode, type OperatorCode } from "./errors/catalogue.js";
export { valueOrThrow, type Invalid, type Result } from "./errors/result.js";
export { RouteTable, RouteTableError, type RouteSpec, type Route } from "./authz/routes.js";
export { PERMISSIONS, type Permission } from "./authz/permissions.js";
export { KeyService, type CreatedKey } from "./keys/service.js";
export { parseCreateKeyInput, type CreateKeyInput } from "./keys/input.js";
export type { KeyRecord, KeyView, KeyAlgorithm, KeyStatus, EffectiveStatus } from "./keys/model.js";
export { generateKeyId, parseKeyId, type Environment } from "./keys/ids.js";
export { Envelope } from "./custody/envelope.js";
export { KeyringFileProvider, type KekProvider } from "./custody/keyring.js";
export { CustodyError, CUSTODY_ERRORS, type CustodyErrorCode } from "./custody/errors.js";
export type { CustodyConfig } from "./custody/config.js";
export { openCustody, type Custody } from "./custody/open.js";
export { Pkcs11KekProvider } from "./custody/pkcs11-kek.js";
export { Pkcs11SigningKeys } from "./custody/pkcs11-signing.js";
export { Pkcs11Token } from "./custody/pkcs11-token.js";
export { EnvelopeSigningKeys, openStoredSecret, type SigningKey, type SigningKeyProvider, type SigningPurpose } from "./custody/signing.js";
export { rotateKek, custodyStatus, type RotationResult, type CustodyStatus } from "./custody/rotation.js";
export { writeBackup, restoreBackup } from "./custody/backup.js";
export { SqliteStore } from "./storage/sqlite/store.js";
export { MemoryNonceStore } from "./storage/memory/nonces.js";
export { MemoryHotStore, type MemoryHotStoreOptions } from "./storage/memory/hot.js";
export { RedisHotStore, type RedisHotStoreOptions } from "./storage/redis/hot.js";
export { RedisChangeBus, type RedisChangeBusOptions } from "./storage/redis/bus.js";
export { SessionAuthority, type IssuedSession, type LogonRequest } from "./sessions/authority.js";
export { SessionEndpoints, SESSION_ROUTES } from "./sessions/endpoints.js";
export type { DurableStore, NonceStore, KeyStore, ChangeFeed, HotStore, ChangeBus, BusMessage } from "./storage/types.js";
export { initDataDir, openDataDir } from "./storage/data-dir.js";
export type { PipelineRequest, RequestContext } from "./pipeline/context.js";
export { createLogger, type Logger } from "./log/logger.js";
