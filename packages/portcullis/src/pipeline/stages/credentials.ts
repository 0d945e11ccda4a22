import type { AuthScheme } from "../../dialects/scheme.js";
import { deny } from "../../errors/catalogue.js";
import type { Stage } from "./stage.js";

/**
 * Stage 3, credentials: exactly one scheme's credentials, a scheme the route accepts (the native
 * scheme everywhere, a dialect on its venue's routes), parsed strictly by the scheme into a
 * `Credential` that carries its own checks for stages 5 to 7.
 */
export function credentialStage(native: AuthScheme): Stage {
  return {
    name: "cred",
    run(ctx) {
      if (ctx.schemeAmbiguous) return deny("CREDENTIALS_AMBIGUOUS");
      const scheme = ctx.scheme;
      if (scheme === null) return deny("CREDENTIALS_MISSING");
      if (scheme !== native && scheme.name !== ctx.route?.dialect) return deny("SCHEME_NOT_ACCEPTED", `${scheme.name} on ${ctx.route?.id ?? "?"}`);
      const credential = scheme.extract(ctx);
      if ("ok" in credential) return credential;
      ctx.credential = credential;
      ctx.keyId = credential.keyId;
      return undefined;
    },
  };
}
