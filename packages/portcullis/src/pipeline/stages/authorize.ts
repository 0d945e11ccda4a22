import { AUTHENTICATED } from "../../authz/permissions.js";
import { deny } from "../../errors/catalogue.js";
import type { Stage } from "./stage.js";

/** Stage 8, authorization: the route's permission among the key's (or the session's) scopes. */
export function authorizeStage(): Stage {
  return {
    name: "authz",
    run(ctx) {
      const permission = ctx.route?.permission;
      if (permission === undefined || permission === null || ctx.key === null) return deny("INTERNAL", "authorize before key");
      return permission === AUTHENTICATED || ctx.key.permissions.has(permission) ? undefined : deny("SCOPE_MISSING", `needs ${permission}`);
    },
  };
}
