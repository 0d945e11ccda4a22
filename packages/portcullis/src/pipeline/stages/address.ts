import { deny } from "../../errors/catalogue.js";
import type { ClientAddressResolver } from "../../net/client-address.js";
import type { Stage } from "./stage.js";

/**
 * Stage 1, the client address: the socket's peer, or the forwarded address when the peer is a
 * configured trusted proxy (net/client-address.ts); from such a proxy, also the client
 * certificate it passed on, when a header for it is configured (docs/tls.md). A surface that already knows its client (a
 * WebSocket message: the connection's) sets `ctx.client` before the pipeline runs.
 */
export function addressStage(resolver: ClientAddressResolver): Stage {
  const certHeader = resolver.clientCertHeader !== null;
  return {
    name: "addr",
    run(ctx) {
      if (ctx.client !== null) return undefined;
      ctx.client = resolver.resolve(ctx.socketAddress, ctx.headers["x-forwarded-for"]);
      if (certHeader) {
        const forwarded = resolver.forwardedCert(ctx.socketAddress, ctx.headers);
        if (forwarded !== undefined) ctx.clientCert = forwarded;
      }
      return ctx.client === null ? deny("HTTP_MALFORMED", "no usable peer address") : undefined;
    },
  };
}
