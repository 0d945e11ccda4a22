import type { IncomingMessage, ServerResponse } from "node:http";
import { peerCertThumbprint } from "../net/client-cert.js";
import { RouteTable, type RouteSpec } from "../authz/routes.js";
import type { Portcullis } from "../core/core.js";
import { PortcullisError } from "../errors/catalogue.js";
import type { HoldService } from "../holds/service.js";
import type { RequestContext } from "../contract/request.js";
import { type Exchange, Lifecycle } from "../pipeline/lifecycle.js";
import type { Pipeline } from "../pipeline/pipeline.js";
import { type JsonAnswer, readBody, renderJsonOutcome, whenClosed } from "./http.js";

/**
 * The initiator's view of its held operations (docs/approvals.md), served by the gateway under its
 * own prefix. Each request runs the full pipeline (native signature, freshness, replay, the key's
 * status, limits) over these routes; only the key that initiated an operation sees it — any other
 * key is answered OPERATION_NOT_FOUND, exactly as for an id that does not exist:
 *
 *   GET    /portcullis/v1/operations/{id}   -> 200 { operationId, state, required, operation, …, outcome }
 *   DELETE /portcullis/v1/operations/{id}   cancels it while pending (its delay running, or waiting
 *                                           for approvals) -> 200 (the operation, cancelled)
 */
export const OPERATIONS_PATH = "/portcullis/v1/operations";

export const OPERATION_ROUTES: readonly RouteSpec[] = [
  { method: "GET", path: `${OPERATIONS_PATH}/:id`, permission: "authenticated", weight: 1 },
  { method: "DELETE", path: `${OPERATIONS_PATH}/:id`, permission: "authenticated", weight: 1 },
];


/** Nothing to read in these requests' bodies. */
const BODY_LIMIT = 1024;

export class OperationEndpoints {
  readonly pipeline: Pipeline;
  private readonly holds: HoldService;
  private readonly lifecycle: Lifecycle<ServerResponse, JsonAnswer>;

  constructor(core: Portcullis, holds: HoldService) {
    this.holds = holds;
    this.pipeline = core.createPipeline(new RouteTable(OPERATION_ROUTES, { allowReserved: true }));
    const exchange: Exchange<ServerResponse, JsonAnswer> = {
      handOn: (ctx) => this.answer(ctx),
      render: renderJsonOutcome,
      untilDone: whenClosed,
    };
    this.lifecycle = new Lifecycle({ pipeline: this.pipeline, surface: "gateway", audit: core.audit, logger: core.logger, exchange });
  }

  /** Is `path` (without its query) one of these endpoints? */
  static serves(path: string): boolean {
    return path.startsWith(`${OPERATIONS_PATH}/`);
  }

  async serve(req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> {
    let body = readBody(req, BODY_LIMIT);
    if (body instanceof Promise) body = await body;
    await this.lifecycle.serve({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body, socketAddress: req.socket.remoteAddress, clientCert: peerCertThumbprint(req.socket) }, requestId, res);
  }

  private async answer(ctx: RequestContext): Promise<JsonAnswer> {
    const keyId = ctx.key?.record.id;
    const route = ctx.route;
    if (keyId === undefined || route === null) throw new PortcullisError("INTERNAL", "operations endpoint without a key");
    // Paths are canonical and matched: /portcullis/v1/operations/<id>.
    const id = ctx.path.split("/")[4] ?? "";
    switch (route.id) {
      case `GET ${OPERATIONS_PATH}/:id`:
        return { status: 200, body: JSON.stringify(await this.holds.view(id, keyId)) };
      case `DELETE ${OPERATIONS_PATH}/:id`:
        return { status: 200, body: JSON.stringify(await this.holds.cancel(id, keyId, `key:${keyId}`)) };
      default:
        throw new PortcullisError("ROUTE_NOT_FOUND");
    }
  }
}
