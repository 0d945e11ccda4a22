/**
 * `portcullis/upstream`: what a service behind the gateway needs, with no other imports:
 * verifying the identity headers the gateway adds to every request it forwards, and reading the
 * permissions the caller's scopes grant (to check a route's permission again upstream).
 */
export {
  IDENTITY_HEADERS,
  createIdentityVerifier,
  type IdentityVerification,
  type IdentityVerifier,
  type IdentityVerifierOptions,
  type PortcullisIdentity,
  type UpstreamRequest,
} from "./gateway/identity.js";
export { grantedPermissions } from "./contract/permissions.js";
