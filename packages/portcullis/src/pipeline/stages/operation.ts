import type { RouteTable } from "../../authz/routes.js";
import { OTHER_OPERATION } from "../../contract/operations.js";
import { checkOperationRoutes, OPERATION_DECODERS } from "../../dialects/operations.js";
import { deny } from "../../errors/catalogue.js";
import type { MessageParams } from "../../contract/request.js";
import type { Stage } from "./stage.js";

const NO_PARAMS: MessageParams = Object.freeze(Object.create(null) as Record<string, never>);

/**
 * The operation stage (docs/operations.md), after authorization: on a route that declares an
 * operation, the request is decoded in the route's venue shape (its dialect's decoder, or the
 * native shape) into `ctx.operation`; a request that does not decode is refused with the
 * decoder's code (OPERATION_MALFORMED, OPERATION_PARAM_MISSING / _INVALID / _DUPLICATED). It
 * reads the bytes the signature stage has just verified, and consumes nothing. On a messages
 * pipeline (`messages`: WebSocket) it reads the message's params (`ctx.messageParams`, which the
 * message's own signature or its connection's identity covers) with the venue's message decoder.
 *
 * A route without an operation never reaches it: the pipeline skips this stage on one check of
 * `route.operation === null` (so it is timed as skipped). `other` is set without reading anything.
 */
export function operationStage(routes: RouteTable | null, messages = false): Stage {
  // A venue route declaring a kind its shape does not define is a configuration error, found now.
  if (routes !== null) checkOperationRoutes(routes.routes);
  const decoders = OPERATION_DECODERS;
  return {
    name: "op",
    run(ctx) {
      const route = ctx.route;
      if (route === null) return deny("INTERNAL", "operation before routing");
      const kind = route.operation;
      if (kind === null) return undefined;
      if (kind === "other") {
        ctx.operation = OTHER_OPERATION;
        return undefined;
      }
      const decoder = decoders[route.dialect ?? "native"];
      let decoded;
      if (!messages) decoded = decoder.decode(ctx, kind);
      else if (decoder.decodeMessage === undefined) return deny("INTERNAL", `no ${route.dialect ?? "native"} message decoding`);
      else decoded = decoder.decodeMessage(ctx.messageParams ?? NO_PARAMS, kind);
      if ("ok" in decoded) return decoded;
      ctx.operation = decoded;
      return undefined;
    },
  };
}
