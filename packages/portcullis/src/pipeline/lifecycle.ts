import type { AuditSurface } from "../audit/events.js";
import type { DecisionRecorder } from "../audit/log.js";
import { type Denial, PortcullisError } from "../errors/catalogue.js";
import type { Logger } from "../log/logger.js";
import type { HeldTicket } from "../contract/policy.js";
import { type PipelineRequest, RequestContext, loggableKeyId } from "../contract/request.js";
import type { Pipeline } from "./pipeline.js";

/**
 * The one request lifecycle (docs/architecture.md). Every surface — the gateway's HTTP requests,
 * its WebSocket upgrades and messages, the admin API, the session endpoints, the embedded
 * middleware for node:http, Express and Fastify — is a thin adapter over it, so no surface can
 * skip or reorder a step. The hooks run in one fixed order:
 *
 *   decide    the pipeline's stages (pipeline.ts): address … admission
 *   open      the maxOpenNotional guardrail (open-notional.ts): an order of a key with it reserves
 *             its notional in the key's ledger, or is refused GUARDRAIL_OPEN_NOTIONAL; released
 *             if stage 10 refuses it, settled from the upstream's answer after hand on
 *   hold      stage 10 (the high-value policy, holds/hook.ts): may refuse an allowed request, or
 *             hold it (stored for release after its approvals or delay): then it is answered
 *             with its ticket at once and not handed on
 *   hand on   the surface's own step for an allowed request: forward it upstream, call the
 *             handler, pass the message on (`Exchange.handOn`)
 *   audit     the decision (and what handing on came to) goes to the audit log, and to stage
 *             11's observer (the behaviour engine queues it and scores it off the request path)
 *   finish    the request's concurrency slot is released: when the answer is over
 *             (`Exchange.untilDone`, armed before hand on, since a streamed answer may end
 *             before hand on returns), else at once
 *   render    the answer or the refusal is written, in the surface's format (`Exchange.render`)
 *
 * A refusal skips hand on. Nothing here throws for anything a caller sent: a refusal is a value,
 * a handler's refusal is a PortcullisError (rendered as such), and a fault of our own is logged and
 * rendered as INTERNAL.
 */

/** A request as a surface hands it over: its body, or why the body could not be read. */
export interface LifecycleRequest extends Omit<PipelineRequest, "body"> {
  readonly body: Buffer | Denial;
}

/** How an exchange ended, for `render`. */
export type Outcome<A> =
  /** Refused by the pipeline or the hold hook (the context's `denial`), or a body that could not be read. */
  | { readonly kind: "refused"; readonly denial: Denial }
  /** Held by stage 10 for approvals or a delay (not handed on): the surface answers with the ticket. */
  | { readonly kind: "held"; readonly ticket: HeldTicket }
  /** Handed on; `answer` is what hand on returned. */
  | { readonly kind: "answered"; readonly answer: A }
  /** Hand on refused it (a handler's PortcullisError: validation, not found…) or failed (INTERNAL). */
  | { readonly kind: "failed"; readonly error: PortcullisError };

/**
 * One surface's part in the lifecycle, built once per surface. `T` is what the surface answers
 * through (an HTTP response, a WebSocket connection and message id); `A` is what hand on returns.
 */
export interface Exchange<T, A> {
  /** Hand on an allowed request. May throw PortcullisError (the handler's refusal). */
  handOn(ctx: RequestContext, target: T): A | Promise<A>;
  /** Writes the outcome to the caller. Should not throw (a throw is logged). */
  render(ctx: RequestContext, outcome: Outcome<A>, target: T): void;
  /**
   * Calls `release` once the exchange is over (an HTTP answer closed: streamed to its end, or
   * abandoned). Omitted: the slot is released as soon as hand on returns.
   */
  untilDone?(target: T, release: () => void): void;
}

/**
 * Stage 10's hook: refuses an allowed request (a denial), holds it (its ticket: the request is
 * stored and released later, exactly once), or lets it go on (undefined).
 */
export type HoldHook = (ctx: RequestContext) => Denial | HeldTicket | undefined | Promise<Denial | HeldTicket | undefined>;

export interface LifecycleOptions<T, A> {
  readonly pipeline: Pipeline;
  /** The surface's hand on and render. */
  readonly exchange: Exchange<T, A>;
  /** Where the decisions are made, as the audit log records it. */
  readonly surface: AuditSurface;
  /** The audit log; null records nothing (benchmarks of the bare pipeline). */
  readonly audit: DecisionRecorder | null;
  readonly logger: Logger;
  readonly hold?: HoldHook | null;
}

const EMPTY = Buffer.alloc(0);

export class Lifecycle<T, A> {
  readonly pipeline: Pipeline;
  private readonly exchange: Exchange<T, A>;
  readonly surface: AuditSurface;
  private readonly audit: DecisionRecorder | null;
  private readonly logger: Logger;
  private readonly hold: HoldHook | null;

  constructor(options: LifecycleOptions<T, A>) {
    this.pipeline = options.pipeline;
    this.exchange = options.exchange;
    this.surface = options.surface;
    this.audit = options.audit;
    this.logger = options.logger;
    this.hold = options.hold ?? null;
  }

  /**
   * Runs one request through every hook. `input` is the request as read (its body, or why it could
   * not be read), or a context the surface built itself (a WebSocket message, whose client and
   * identity it knows; or one it already refused, a message it could not read: the stages are
   * skipped, the refusal audited and rendered). Resolves when the outcome is rendered; never rejects.
   */
  async serve(input: LifecycleRequest | RequestContext, requestId: string, target: T): Promise<void> {
    const exchange = this.exchange;
    let ctx: RequestContext;
    if (input instanceof RequestContext) {
      if (input.denial !== null) {
        ctx = input;
      } else {
        const decided = this.pipeline.decide(input);
        ctx = decided instanceof Promise ? await decided : decided;
      }
    } else if (Buffer.isBuffer(input.body)) {
      const decided = this.pipeline.run(input as PipelineRequest, requestId);
      ctx = decided instanceof Promise ? await decided : decided;
    } else {
      ctx = new RequestContext({ ...input, body: EMPTY }, requestId, this.pipeline.now());
      ctx.denial = input.body;
    }
    if (ctx.denial === null) {
      // The maxOpenNotional guardrail (open-notional.ts): after every stage allowed the request,
      // before stage 10 may hold it; a key without it pays one field check.
      let open = this.pipeline.openNotional.begin(ctx);
      if (open instanceof Promise) open = await open;
      if (open !== undefined) {
        ctx.denial = open;
        this.pipeline.finish(ctx);
      }
    }
    if (ctx.denial === null && this.hold !== null) {
      let held = this.hold(ctx);
      if (held instanceof Promise) held = await held;
      if (held !== undefined) {
        if ("operationId" in held) {
          // Held: allowed by every stage, stored for release; not handed on now.
          this.audit?.decision(ctx, this.surface);
          this.pipeline.observe(ctx, "held", this.surface);
          this.pipeline.finish(ctx);
          this.render(ctx, { kind: "held", ticket: held }, target);
          return;
        }
        ctx.denial = held;
        this.pipeline.finish(ctx);
        if (ctx.openOrder !== null) await this.pipeline.openNotional.abandon(ctx);
      }
    }
    const denial = ctx.denial;
    if (denial !== null) {
      this.audit?.decision(ctx, this.surface);
      this.pipeline.observe(ctx, "refused", this.surface);
      this.logger.info(
        { requestId: ctx.requestId, surface: this.surface, code: denial.code, detail: denial.detail, method: ctx.method, route: ctx.route?.id, keyId: loggableKeyId(ctx), client: ctx.client?.text ?? ctx.socketAddress },
        "request denied",
      );
      this.render(ctx, { kind: "refused", denial }, target);
      return;
    }
    // Finish is armed before hand on: an answer streamed by hand on may be over before it returns.
    const waits = ctx.slotHeld && exchange.untilDone !== undefined;
    if (waits) {
      exchange.untilDone?.(target, () => {
        this.pipeline.finish(ctx);
      });
    }
    let outcome: Outcome<A>;
    try {
      const answer = exchange.handOn(ctx, target);
      outcome = { kind: "answered", answer: answer instanceof Promise ? await answer : answer };
    } catch (err) {
      outcome = { kind: "failed", error: this.handOnError(ctx, err) };
      ctx.outcome = outcome.error.code;
    }
    // A surface that read the upstream's answer settled the order already (the gateway); here a
    // failed hand on releases (not a timeout), and an answer not seen keeps the reservation (it ages out).
    // A timeout is not a failure to forward: the order may have reached the venue.
    if (ctx.openOrder !== null) await this.pipeline.openNotional.settle(ctx, null, ctx.outcome !== null && ctx.outcome !== "UPSTREAM_TIMEOUT");
    this.audit?.decision(ctx, this.surface);
    this.pipeline.observe(ctx, outcome.kind === "failed" ? "failed" : "allowed", this.surface);
    if (!waits) this.pipeline.finish(ctx);
    this.render(ctx, outcome, target);
  }

  private handOnError(ctx: RequestContext, err: unknown): PortcullisError {
    if (err instanceof PortcullisError) {
      this.logger.info({ requestId: ctx.requestId, surface: this.surface, code: err.code, route: ctx.route?.id, keyId: loggableKeyId(ctx) }, "request refused by its handler");
      return err;
    }
    this.logger.error({ requestId: ctx.requestId, surface: this.surface, err }, "request handling failed");
    return new PortcullisError("INTERNAL");
  }

  private render(ctx: RequestContext, outcome: Outcome<A>, target: T): void {
    try {
      this.exchange.render(ctx, outcome, target);
    } catch (err) {
      this.logger.error({ requestId: ctx.requestId, surface: this.surface, err }, "rendering an answer failed");
    }
  }
}
