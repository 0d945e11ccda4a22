/**
 * `portcullis/upstream`: the one thing a service behind the gateway needs, with no other imports:
 * verifying the identity headers the gateway adds to every request it forwards.
 */
export {
  IDENTITY_HEADERS,
  createIdentityVerifier,
  type IdentityVerification,
  type IdentityVerifierOptions,
  type PortcullisIdentity,
  type UpstreamRequest,
} from "./gateway/identity.js";
