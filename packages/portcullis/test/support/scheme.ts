/**
 * A scheme's stages 3 and 5–7 run directly, as the pipeline runs them (for scheme unit tests that
 * need no gateway): extract the credential, check freshness and the signature, then record the
 * scheme's replay claim in a hot store.
 */
import type { AuthScheme, RequestContext } from "../../src/contract/request.js";
import { type Denial, deny } from "../../src/errors/catalogue.js";
import type { VerificationKey } from "../../src/contract/verification-key.js";
import type { MemoryHotStore } from "../../src/storage/memory/hot.js";

export async function runScheme(scheme: AuthScheme, ctx: RequestContext, key: VerificationKey, hot: MemoryHotStore): Promise<Denial | undefined> {
  const credential = scheme.extract(ctx);
  if ("ok" in credential) return credential;
  const early = (await credential.fresh(ctx, key)) ?? (await credential.verify(ctx, key));
  if (early !== undefined) return early;
  const admitted = await hot.admit({ now: ctx.now, ip: "127.0.0.1", replay: credential.replayClaim(ctx, key), charges: [], session: null });
  if (admitted.ok) return undefined;
  switch (admitted.reason) {
    case "replayed":
      return deny("NONCE_REPLAYED");
    case "fenced":
      return deny("REPLAY_FENCED");
    default:
      return deny("REPLAY_CAPACITY");
  }
}
