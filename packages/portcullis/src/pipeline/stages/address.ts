import { deny } from "../../errors/catalogue.js";
import type { ClientAddressResolver } from "../../net/client-address.js";
import type { Stage } from "./stage.js";

/**
 * Stage 1, the client address: the socket's peer, or the forwarded address when the peer is a
 * configured trusted proxy (net/client-address.ts). A surface that already knows its client (a
 * WebSocket message: the connection's) sets `ctx.client` before the pipeline runs.
 */
export function addressStage(resolver: ClientAddressResolver): Stage {
  return {
    name: "addr",
    run(ctx) {
      if (ctx.client !== null) return undefined;
      ctx.client = resolver.resolve(ctx.socketAddress, ctx.headers["x-forwarded-for"]);
      return ctx.client === null ? deny("HTTP_MALFORMED", "no usable peer address") : undefined;
    },
  };
}
