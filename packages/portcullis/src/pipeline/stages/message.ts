import type { AuthScheme } from "../../contract/request.js";
import { deny } from "../../errors/catalogue.js";
import type { Dialect } from "../../contract/keys.js";
import type { Stage } from "./stage.js";

/**
 * Routing and stage 3 for a message on a long-lived connection (a WebSocket message). The surface
 * knows what an HTTP request would have to be parsed for: it sets the message's route (its method,
 * as a route of the limit plan), its client (the connection's) and its credential (the message's
 * own signature, or the connection's identity) on the context before the pipeline runs. These two
 * stages only check that they are there; every other stage is the request's own module.
 */
export function messageRouteStage(): Stage {
  return {
    name: "route",
    run(ctx) {
      return ctx.route === null ? deny("INTERNAL", "a message without its route") : undefined;
    },
  };
}

/** Stage 3 for a message: the credential the surface set (none: CREDENTIALS_MISSING). */
export function messageCredentialStage(schemes: ReadonlyMap<Dialect, AuthScheme>): Stage {
  return {
    name: "cred",
    run(ctx) {
      const credential = ctx.credential;
      if (credential === null) return deny("CREDENTIALS_MISSING");
      ctx.keyId = credential.keyId;
      ctx.scheme = schemes.get(credential.scheme) ?? null;
      return undefined;
    },
  };
}
