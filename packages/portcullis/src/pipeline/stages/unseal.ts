import type { RequestContext } from "../../contract/request.js";
import { HPKE_ENC_LENGTH, type HpkeKeyring, sealedAad } from "../../custody/hpke.js";
import { type Denial, deny } from "../../errors/catalogue.js";
import type { Stage } from "./stage.js";

/** The content type of a sealed body. */
export const SEALED_CONTENT_TYPE = "application/portcullis-sealed";

/** A media type with optional parameters, printable ASCII, not itself a sealed body's. */
const MEDIA_TYPE_RE = /^[A-Za-z0-9!#$&^_.+-]{1,127}\/[A-Za-z0-9!#$&^_.+-]{1,127}(?:\s*;[\x20-\x7e]*)?$/;

function isSealedType(value: string | undefined): boolean {
  if (value === undefined) return false;
  const semi = value.indexOf(";");
  return (semi === -1 ? value : value.slice(0, semi)).trim().toLowerCase() === SEALED_CONTENT_TYPE;
}

/**
 * Does a request say it is sealed? Any of the three marks counts (the Portcullis-Sealed header, the
 * sealed content type, Portcullis-Sealed-Type), so that a request carrying only some is refused
 * rather than forwarded with its ciphertext.
 */
export function looksSealed(ctx: RequestContext): boolean {
  const headers = ctx.headers;
  return headers["portcullis-sealed"] !== undefined || headers["portcullis-sealed-type"] !== undefined || isSealedType(headers["content-type"]);
}

/**
 * The unseal stage (docs/sealed-orders.md), after authorization and before the operation stage: a
 * sealed request (`Portcullis-Sealed: <HPKE key id>`, `Content-Type: application/portcullis-sealed`,
 * `Portcullis-Sealed-Type: <the plaintext's type>`, body `enc || ciphertext`) is opened with the
 * gateway's HPKE key (custody/hpke.ts), its associated data binding it to the signature just
 * verified: the signature's keyid and nonce, the method and the target. From then on the request's
 * body and headers are the plaintext's (`RequestContext.unseal`): the operation is decoded from
 * it, the guardrails and the policy judge it, and it is forwarded with its own content type.
 *
 * Only the native scheme (and sessions) carry a sealed body, and only on a surface that forwards
 * the body itself: a venue dialect's, the authorizer's, a public route's sealed request, or any
 * when sealing is off (`keyring` null), is refused SEALED_NOT_SUPPORTED. Both sealed headers must
 * be covered by the signature (SEALED_NOT_COVERED). A request that is not sealed costs three header
 * lookups. The plaintext is never logged: refusals name no byte of it.
 */
export function unsealStage(keyring: HpkeKeyring | null): Stage {
  const open = async (ctx: RequestContext, hpkeKeyId: string, type: string, aad: Uint8Array): Promise<Denial | undefined> => {
    let opened;
    try {
      opened = await keyring?.open(hpkeKeyId, ctx.body, aad, ctx.now);
    } catch {
      // The keys could not be read (the store, or the custody provider): our side, not the sender's.
      return deny("CUSTODY_UNAVAILABLE", "the HPKE keys could not be loaded");
    }
    if (opened === undefined) return deny("SEALED_NOT_SUPPORTED", "sealing is off");
    if (!Buffer.isBuffer(opened)) return opened;
    ctx.unseal(hpkeKeyId, opened, type);
    return undefined;
  };
  return {
    name: "unseal",
    run(ctx) {
      if (!looksSealed(ctx)) return undefined;
      if (keyring === null) return deny("SEALED_NOT_SUPPORTED", "sealing is off");
      if (!ctx.opensSealed) return deny("SEALED_NOT_SUPPORTED", "this surface does not forward the body");
      const credential = ctx.credential;
      const binding = credential?.sealing;
      if (credential === null || binding === undefined || ctx.keyId === null) return deny("SEALED_NOT_SUPPORTED", `${credential?.scheme ?? "unsigned"} request`);
      const headers = ctx.headers;
      const hpkeKeyId = headers["portcullis-sealed"];
      const type = headers["portcullis-sealed-type"];
      if (typeof hpkeKeyId !== "string" || hpkeKeyId === "") return deny("SEALED_MALFORMED", "no Portcullis-Sealed key id");
      if (typeof type !== "string" || !MEDIA_TYPE_RE.test(type) || isSealedType(type)) return deny("SEALED_MALFORMED", "Portcullis-Sealed-Type is not a media type");
      if (!isSealedType(headers["content-type"])) return deny("SEALED_MALFORMED", `Content-Type is not ${SEALED_CONTENT_TYPE}`);
      const covered = binding.components;
      if (!covered.includes("portcullis-sealed") || !covered.includes("portcullis-sealed-type") || !covered.includes("content-digest")) {
        return deny("SEALED_NOT_COVERED");
      }
      if (ctx.body.length <= HPKE_ENC_LENGTH) return deny("SEALED_MALFORMED", "the body is shorter than enc and a tag");
      return open(ctx, hpkeKeyId, type, sealedAad(ctx.keyId, binding.nonce, ctx.method, ctx.url));
    },
  };
}
