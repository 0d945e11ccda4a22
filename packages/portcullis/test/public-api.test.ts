/**
 * The public API is curated (src/index.ts, src/upstream.ts): what the package exports at run time
 * is exactly this list, so an internal (the SQLite store, a PKCS#11 token, the nonce store) cannot
 * become public by accident. Adding an export means adding it here, on purpose, with its docs.
 */
import { describe, expect, it } from "vitest";

describe("the public entry points", () => {
  it("portcullis exports exactly the curated API", async () => {
    const api = await import("portcullis");
    expect(Object.keys(api).sort()).toEqual([
      "ADMIN_ROUTES", "AdminApi", "CUSTODY_ERRORS", "CodedError", "ConfigError", "CustodyError", "DEFAULT_LIMITS", "DEFAULT_SHIELD_POLICY",
      "DataDirError", "ERROR_CODES", "Forwarder", "Gateway", "IDENTITY_HEADERS", "IdentitySigner", "KeyService", "LivePrices", "MemoryHotStore", "OperatorError", "PERMISSIONS",
      "Portcullis", "PortcullisError", "PriceRefresher", "RedisChangeBus", "RedisHotStore", "RouteTable", "RouteTableError", "SESSION_ROUTES", "SequenceReservations",
      "SessionAuthority", "SessionEndpoints", "StaticPrices", "WEBSOCKET_CLOSE_CODES", "WebSocketConfigError", "WebSocketProxy",
      "compileWebSocketSettings", "createIdentityVerifier", "createLogger", "createMiddleware", "custodyStatus", "errorCatalogue",
      "grantedPermissions", "initDataDir", "loadConfig", "openDataDir", "parseConfig", "parseCreateKeyInput", "parseKeyId",
      "portcullisPreParsing", "restoreBackup", "restorePostgresBackup", "rotateKek", "startPortcullis", "valueOrThrow", "writeBackup", "writePostgresBackup",
    ]);
    for (const internal of ["SqliteStore", "MemoryNonceStore", "Pkcs11Token", "Pkcs11KekProvider", "KeyringFileProvider", "Envelope", "openCustody"]) {
      expect(api).not.toHaveProperty(internal);
    }
  });

  it("portcullis/upstream exports only what a service behind the gateway needs", async () => {
    const upstream = await import("portcullis/upstream");
    expect(Object.keys(upstream).sort()).toEqual(["IDENTITY_HEADERS", "createIdentityVerifier", "grantedPermissions"]);
    expect(upstream.grantedPermissions(["read", "admin:*"])).toEqual(new Set(["read", "admin:keys", "admin:policy", "admin:addresses", "admin:approvers", "admin:approvals", "admin:anomalies", "admin:audit", "admin:stats"]));
  });
});
