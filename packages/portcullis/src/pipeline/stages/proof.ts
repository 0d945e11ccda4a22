import { deny } from "../../errors/catalogue.js";
import type { Stage } from "./stage.js";

/** Stage 5, freshness: the scheme's own rule (a window around `created`, a timestamp, an expiry). */
export function freshnessStage(): Stage {
  return {
    name: "fresh",
    run(ctx) {
      const { credential, key } = ctx;
      if (credential === null || key === null) return deny("INTERNAL", "freshness before credentials");
      return credential.fresh(ctx, key);
    },
  };
}

/** Stage 6, the signature: over the exact bytes sent, everything it covers matching the request. */
export function signatureStage(): Stage {
  return {
    name: "sig",
    run(ctx) {
      const { credential, key } = ctx;
      if (credential === null || key === null) return deny("INTERNAL", "signature before credentials");
      return credential.verify(ctx, key);
    },
  };
}
