import type { StepUpSettings } from "../contract/behaviour.js";
import type { ReferencePrices } from "../contract/prices.js";
import { randomBytes } from "node:crypto";
import { PortcullisError } from "../errors/catalogue.js";
import type { Logger } from "../log/logger.js";
import { isOperationId } from "../contract/policy.js";
import type { ChangeHolder, ChangeKind, HeldTicket, HoldRequirements, HoldState, PolicyDecider, PolicyDecision, PolicySubject } from "../contract/policy.js";
import { operationSummary, type Operation } from "../contract/operations.js";
import { type Envelope, HELD_OUTCOME_PURPOSE, HELD_REQUEST_PURPOSE, retryUnderActiveKek } from "../custody/envelope.js";
import { CustodyError } from "../custody/errors.js";
import type { ApprovalRow, ApproverRow, HeldRow, HoldStore } from "../storage/types.js";
import { type ApprovalDecision, approvalDigest, approverKeyObject, canonicalJson, digestDocument, parseApproverKey, sha256Hex, verifyApproval } from "./digest.js";

/**
 * Held operations and their approvals (docs/approvals.md): what stage 10 holds, what approvers
 * approve, and the release loop that hands each ready operation to its releaser exactly once.
 *
 * At most once: an operation is released only by the process whose `claim` (ready -> releasing,
 * a compare-and-swap in one transaction) succeeded, and nothing ever moves it back to ready. A
 * process that dies between its claim and recording the outcome leaves it `releasing`; once the
 * claim is older than the lease it becomes `unknown`, and is never sent again automatically: the
 * upstream may or may not have received it, and sending it twice (a second withdrawal) is the
 * failure this service exists to prevent. An operator reconciles it with the venue.
 */

/** A held HTTP request, exactly as it will be forwarded (credentials already removed). */
export interface HeldRequest {
  readonly method: string;
  /** Path and query, as forwarded. */
  readonly url: string;
  /** The headers to forward (the gateway adds its forwarding and identity headers at release). */
  readonly headers: Readonly<Record<string, string | readonly string[]>>;
  readonly body: Buffer;
  /** The client's address as the gateway decided it, for X-Forwarded-For at release. */
  readonly clientIp: string;
  /** The request's authority, lower case, or null. */
  readonly authority: string | null;
  /** Who the upstream is told sent it (identity headers, signed afresh at release), or null. */
  readonly identity: HeldIdentity | null;
}

/** The initiating key's identity as the gateway vouches for it to the upstream (gateway/identity.ts). */
export interface HeldIdentity {
  readonly keyId: string;
  readonly account: string;
  readonly subAccount: string | null;
  readonly scopes: readonly string[];
  readonly scopesText: string;
}

/** What a released request came to: the upstream's answer (its body bounded). */
export interface ReleaseOutcome {
  readonly status: number;
  readonly body: Buffer;
  readonly contentType: string | null;
}

/** Releases a held request (the gateway: forwards it; embedded: the application's callback). */
export type RequestReleaser = (request: HeldRequest, row: HeldRow) => Promise<ReleaseOutcome>;

/** A held operation as its initiator, approvers and operators see it. */
export interface OperationView {
  readonly operationId: string;
  readonly state: HoldState;
  readonly kind: string;
  readonly operation: unknown;
  readonly account: string | null;
  readonly keyId: string | null;
  readonly owner: string | null;
  readonly policy: { readonly version: number; readonly rule: string };
  readonly required: HoldRequirements;
  readonly approvals: readonly { readonly approver: string; readonly decision: "approve" | "reject"; readonly group: string | null; readonly at: number }[];
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly reason: string | null;
  /** The approval digest, recomputed here from the stored operation. */
  readonly digest: string;
  /** The upstream's answer (or a change's result) once released. */
  readonly outcome: { readonly status: number; readonly body: string; readonly contentType: string | null } | null;
}

export interface HoldServiceOptions {
  readonly store: HoldStore;
  readonly envelope: Envelope;
  /** The policy, told to forget what an operation ended without release had recorded; null: none. */
  readonly policy?: PolicyDecider | null;
  readonly logger?: Logger;
  readonly now?: () => number;
  /** How long a held operation may wait for approvals after its delay (ms). Default 24 h. */
  readonly approvalTtlMs?: number;
  /** A rejection rejects the operation (default true); false: it is recorded, and others may still approve. */
  readonly rejectCancels?: boolean;
  /** The release loop's period (ms). Default 500. */
  readonly pollMs?: number;
  /** A claim older than this (ms) belonged to a process that died mid-release: `unknown`. Default 60 s. */
  readonly leaseMs?: number;
  /** The largest upstream answer body recorded (bytes). Default 64 KiB. */
  readonly outcomeLimit?: number;
  /** What a stepped-up key's operations need (stage 11, docs/behaviour.md); null: a step-up holds nothing. */
  readonly stepUp?: StepUpSettings | null;
  /** Values an order without a notional for the step-up (a market order by quantity). */
  readonly prices?: ReferencePrices | null;
}

const GROUP_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;

function serializeRequest(request: HeldRequest): Buffer {
  return Buffer.from(
    canonicalJson({
      method: request.method,
      url: request.url,
      headers: request.headers,
      body: request.body.toString("base64"),
      clientIp: request.clientIp,
      authority: request.authority,
      identity: request.identity,
    }),
    "utf8",
  );
}

function parseRequest(bytes: Buffer): HeldRequest {
  const o = JSON.parse(bytes.toString("utf8")) as Omit<HeldRequest, "body"> & { body: string };
  return { method: o.method, url: o.url, headers: o.headers, body: Buffer.from(o.body, "base64"), clientIp: o.clientIp, authority: o.authority, identity: o.identity };
}

export class HoldService implements ChangeHolder {
  readonly store: HoldStore;
  private readonly envelope: Envelope;
  private policy: PolicyDecider | null;
  private readonly logger: Logger | null;
  private readonly now: () => number;
  private readonly approvalTtlMs: number;
  private readonly rejectCancels: boolean;
  private readonly pollMs: number;
  private readonly leaseMs: number;
  private readonly outcomeLimit: number;
  /** This process's claims are made in this name (a new one per instance: a restart is another claimant). */
  readonly processId = `proc_${randomBytes(8).toString("hex")}`;
  private requestReleaser: RequestReleaser | null = null;
  private readonly changeReleasers = new Map<ChangeKind, (payload: unknown) => Promise<unknown>>();
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  private readonly releasing = new Set<Promise<void>>();
  private stopped = false;

  /**
   * The policy to settle with, when it could not be given to the constructor: the policy service
   * takes this service as its `ChangeHolder`, so one of the two is made first. Set once.
   */
  usePolicy(policy: PolicyDecider): void {
    if (this.policy !== null && this.policy !== policy) throw new TypeError("the hold service already settles with another policy");
    this.policy = policy;
  }

  /** What a stepped-up key's operations need; null: a step-up holds nothing. */
  readonly stepUp: StepUpSettings | null;
  readonly prices: ReferencePrices | null;

  constructor(options: HoldServiceOptions) {
    this.store = options.store;
    this.envelope = options.envelope;
    this.policy = options.policy ?? null;
    this.logger = options.logger ?? null;
    this.now = options.now ?? Date.now;
    this.approvalTtlMs = options.approvalTtlMs ?? 24 * 3_600_000;
    this.rejectCancels = options.rejectCancels ?? true;
    this.pollMs = options.pollMs ?? 500;
    this.leaseMs = options.leaseMs ?? 60_000;
    this.outcomeLimit = options.outcomeLimit ?? 64 * 1024;
    this.stepUp = options.stepUp ?? null;
    this.prices = options.prices ?? null;
    for (const [name, v] of [["approvalTtlMs", this.approvalTtlMs], ["pollMs", this.pollMs], ["leaseMs", this.leaseMs], ["outcomeLimit", this.outcomeLimit]] as const) {
      if (!Number.isSafeInteger(v) || v <= 0) throw new TypeError(`${name} must be a positive integer`);
    }
  }

  // --- approvers ----------------------------------------------------------------------------------

  /** Registers an approver (or adds groups to one with the same key). VALIDATION_FAILED, APPROVER_EXISTS. */
  async addApprover(name: string, groups: readonly string[], publicKey: string, actor: string): Promise<ApproverRow> {
    const errors: Record<string, string> = {};
    if (!/^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/.test(name)) errors.name = "a person's name: 1 to 64 letters, digits, '.', '_', '-' or '@'";
    if (groups.length === 0 || !groups.every((g) => GROUP_RE.test(g))) errors.groups = "one or more groups: lower-case letters, digits, '.', '_' or '-'";
    const pem = parseApproverKey(publicKey);
    if (pem === null) errors.publicKey = "an Ed25519 public key: SPKI PEM or an OKP JWK";
    if (Object.keys(errors).length > 0 || pem === null) {
      throw new PortcullisError("VALIDATION_FAILED", `invalid approver: ${Object.entries(errors).map(([f, m]) => `${f}: ${m}`).join("; ")}`, errors);
    }
    const added = await this.store.addApprover({ name, groups: [...groups], publicKey: pem, addedAt: this.now() }, actor);
    if (!added.ok) throw new PortcullisError("APPROVER_EXISTS");
    return added.row;
  }

  async removeApprover(name: string, actor: string): Promise<void> {
    if (!(await this.store.removeApprover(name, actor, this.now()))) throw new PortcullisError("APPROVER_NOT_FOUND");
  }

  approvers(): Promise<ApproverRow[]> {
    return this.store.approvers();
  }

  // --- holding --------------------------------------------------------------------------------------

  private requirements(decision: PolicyDecision, at: number): { tiers: { group: string; count: number }[]; notBefore: number | null; expiresAt: number } {
    if (decision.action.type !== "hold") throw new TypeError("only a hold decision is held");
    const delay = decision.action.delayMs;
    const notBefore = delay > 0 ? at + delay : null;
    return { tiers: decision.action.approvals.map((t) => ({ group: t.group, count: t.count })), notBefore, expiresAt: (notBefore ?? at) + this.approvalTtlMs };
  }

  /** Holds an HTTP request the policy decided to hold; `operationId` is the `ref` decide was given. */
  async holdRequest(operationId: string, subject: PolicySubject, decision: PolicyDecision, request: HeldRequest, owner: string | null): Promise<HeldTicket> {
    const summary = operationSummary(subject.operation as Operation);
    return this.insert(operationId, subject, decision, summary, "request", serializeRequest(request), owner);
  }

  holdChange(operationId: string, subject: PolicySubject, decision: PolicyDecision, payload: unknown, initiatorOwner: string | null): Promise<HeldTicket> {
    const summary = { ...(subject.operation as unknown as Record<string, unknown>) };
    return this.insert(operationId, subject, decision, summary, "change", Buffer.from(canonicalJson(payload), "utf8"), initiatorOwner);
  }

  onRelease(kind: ChangeKind, release: (payload: unknown) => Promise<unknown>): void {
    this.changeReleasers.set(kind, release);
  }

  /** What releases held requests in this process (the gateway's forwarder); without one, none are claimed here. */
  setRequestReleaser(releaser: RequestReleaser | null): void {
    this.requestReleaser = releaser;
  }

  private async insert(id: string, subject: PolicySubject, decision: PolicyDecision, summary: unknown, target: "request" | "change", bytes: Buffer, owner: string | null): Promise<HeldTicket> {
    if (!isOperationId(id)) throw new TypeError("an operation id is op_ and 32 hex digits (newOperationId)");
    const at = subject.at;
    const req = this.requirements(decision, at);
    const row: Omit<HeldRow, "held"> = {
      id,
      state: "pending",
      kind: subject.operation.kind,
      target,
      keyId: subject.keyId,
      account: subject.account,
      owner,
      summary,
      policyVersion: decision.version,
      rule: decision.rule,
      tiers: req.tiers,
      notBefore: req.notBefore,
      expiresAt: req.expiresAt,
      createdAt: at,
      updatedAt: at,
      requestDigest: sha256Hex(bytes),
      outcomeStatus: null,
      outcome: null,
      claimedBy: null,
      claimedAt: null,
      reason: null,
    };
    // The request is sealed under the active KEK version; a store that refuses it as under a
    // version a rotation just retired (CUSTODY_KEK_RETIRED) gets it sealed again, once.
    const actor = subject.keyId === null ? "operator" : `key:${subject.keyId}`;
    await retryUnderActiveKek(this.envelope, async () => this.store.insertHold({ ...row, held: await this.envelope.encrypt(bytes, HELD_REQUEST_PURPOSE, id) }, actor));
    // A hold with only a delay of zero (or tiers already empty) may be ready at once.
    if (req.tiers.length === 0) this.kick();
    return { operationId: id, state: "pending", required: this.required(row, []) };
  }

  // --- reading ----------------------------------------------------------------------------------------

  /** The approval digest of a stored operation, recomputed from what is stored. */
  static digestOf(row: HeldRow): string {
    return approvalDigest(HoldService.digestInput(row));
  }

  private static digestInput(row: HeldRow): Parameters<typeof approvalDigest>[0] {
    return {
      operationId: row.id,
      operation: row.summary,
      account: row.account,
      keyId: row.keyId,
      policyVersion: row.policyVersion,
      rule: row.rule,
      tiers: row.tiers,
      notBefore: row.notBefore,
      expiresAt: row.expiresAt,
      requestDigest: row.requestDigest,
    };
  }

  /** The document the digest is computed over (for `approvals show --json`). */
  static digestDocument(row: HeldRow): Record<string, unknown> {
    return digestDocument(HoldService.digestInput(row));
  }

  private required(row: Pick<HeldRow, "tiers" | "notBefore" | "expiresAt">, approvals: readonly ApprovalRow[]): HoldRequirements {
    return {
      approvals: row.tiers.map((t, i) => ({ group: t.group, count: t.count, have: approvals.filter((a) => a.decision === "approve" && a.tier === i).length })),
      notBefore: row.notBefore,
      expiresAt: row.expiresAt,
    };
  }

  /** The operation, or OPERATION_NOT_FOUND; `keyId` given: only that key's (another key's is not found). */
  async view(id: string, keyId: string | null = null): Promise<OperationView> {
    const row = isOperationId(id) ? await this.store.hold(id) : undefined;
    if (row === undefined || (keyId !== null && row.keyId !== keyId)) throw new PortcullisError("OPERATION_NOT_FOUND");
    const approvals = await this.store.approvals(id);
    let outcome: OperationView["outcome"] = null;
    if (row.outcome !== null && row.outcomeStatus !== null) {
      const parsed = JSON.parse((await this.envelope.decrypt(row.outcome, HELD_OUTCOME_PURPOSE, id)).toString("utf8")) as { body: string; contentType: string | null };
      outcome = { status: row.outcomeStatus, body: parsed.body, contentType: parsed.contentType };
    }
    return {
      operationId: row.id,
      state: row.state,
      kind: row.kind,
      operation: row.summary,
      account: row.account,
      keyId: row.keyId,
      owner: row.owner,
      policy: { version: row.policyVersion, rule: row.rule },
      required: this.required(row, approvals),
      approvals: approvals.map((a) => ({ approver: a.approver, decision: a.decision, group: a.tier === null ? null : (row.tiers[a.tier]?.group ?? null), at: a.at })),
      createdAt: row.createdAt,
      updatedAt: row.updatedAt,
      reason: row.reason,
      digest: HoldService.digestOf(row),
      outcome,
    };
  }

  async list(filter: { state?: HoldState; limit?: number }): Promise<OperationView[]> {
    const rows = await this.store.holds({ limit: filter.limit ?? 100, ...(filter.state === undefined ? {} : { state: filter.state }) });
    return Promise.all(rows.map((r) => this.view(r.id)));
  }

  // --- approving --------------------------------------------------------------------------------------

  /**
   * Records an approver's decision. `digest` is the digest the approver saw and signed; the
   * signature must verify over the digest recomputed here from the stored operation. Refusals:
   * OPERATION_NOT_FOUND, APPROVER_NOT_FOUND, APPROVAL_SELF, APPROVAL_DIGEST_MISMATCH,
   * APPROVAL_SIGNATURE_INVALID, APPROVAL_EXPIRED, APPROVAL_DUPLICATE, APPROVAL_NOT_IN_GROUP,
   * OPERATION_STATE_CONFLICT.
   */
  async decide(id: string, approverName: string, decision: ApprovalDecision, digest: string, signature: string, reason: string | null = null): Promise<OperationView> {
    if (reason !== null && (reason.length > 256 || Array.from(reason).some((c) => c < " "))) throw new PortcullisError("VALIDATION_FAILED", "a reason is up to 256 characters, without control characters", { reason: "invalid" });
    const row = isOperationId(id) ? await this.store.hold(id) : undefined;
    if (row === undefined) throw new PortcullisError("OPERATION_NOT_FOUND");
    const approver = await this.store.approver(approverName);
    if (approver === undefined) throw new PortcullisError("APPROVER_NOT_FOUND");
    // The person behind the initiating key never approves (nor rejects) their own operation.
    if (row.owner !== null && row.owner === approver.name) throw new PortcullisError("APPROVAL_SELF");
    const expected = HoldService.digestOf(row);
    if (digest !== expected) throw new PortcullisError("APPROVAL_DIGEST_MISMATCH");
    if (!verifyApproval(approverKeyObject(approver.publicKey), decision, expected, signature)) throw new PortcullisError("APPROVAL_SIGNATURE_INVALID");
    const at = this.now();
    const result = await this.store.decide(id, { approver: approver.name, publicKey: approver.publicKey, decision, signature, at, reason }, this.rejectCancels);
    if (!result.ok) {
      switch (result.reason) {
        case "not-found":
          throw new PortcullisError("OPERATION_NOT_FOUND");
        case "expired":
          throw new PortcullisError("APPROVAL_EXPIRED");
        case "duplicate":
          throw new PortcullisError("APPROVAL_DUPLICATE");
        case "not-in-group":
          throw new PortcullisError("APPROVAL_NOT_IN_GROUP");
        case "approver-unknown":
          throw new PortcullisError("APPROVER_NOT_FOUND");
        default:
          throw new PortcullisError("OPERATION_STATE_CONFLICT", `the operation is ${result.current ?? "gone"}`);
      }
    }
    if (result.row.state === "ready") this.releaseSoon(id);
    if (result.row.state === "rejected") this.kick();
    return this.view(id);
  }

  /** The initiator (its key) or an operator (keyId null) cancels a pending or ready operation. */
  async cancel(id: string, keyId: string | null, actor: string): Promise<OperationView> {
    if (!isOperationId(id)) throw new PortcullisError("OPERATION_NOT_FOUND");
    const result = await this.store.cancel(id, keyId, this.now(), actor, keyId === null ? `cancelled by ${actor}` : "cancelled by the initiator");
    if (!result.ok) {
      if (result.reason === "not-found") throw new PortcullisError("OPERATION_NOT_FOUND");
      throw new PortcullisError("OPERATION_STATE_CONFLICT", `the operation is ${result.current ?? "gone"}`);
    }
    this.kick();
    return this.view(id, keyId);
  }

  // --- the release loop -------------------------------------------------------------------------------

  /** Starts the release loop (an unref'd timer) and runs one pass now. */
  start(): void {
    if (this.timer !== null || this.stopped) return;
    this.timer = setInterval(() => {
      this.kick();
    }, this.pollMs);
    this.timer.unref();
    this.kick();
  }

  /** Stops the loop and waits for releases in flight; from now on nothing is claimed (an approval leaves its operation ready). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    await this.ticking;
    await Promise.all([...this.releasing]);
  }

  /** Resolves when the loop pass and the releases in flight in this process are done. */
  async idle(): Promise<void> {
    await this.ticking;
    await Promise.all([...this.releasing]);
  }

  /** The last pass failed (its failure logged; the next ones are not until one succeeds). */
  private loopFailing = false;

  /** Runs a pass of the loop unless one is running. */
  private kick(): void {
    if (this.ticking !== null || this.stopped) return;
    this.ticking = this.tick()
      .then(
        () => {
          if (this.loopFailing) this.logger?.info("held operations: the release loop runs again");
          this.loopFailing = false;
        },
        (err: unknown) => {
          // Once per streak: while the store is out (docs/failures.md) every pass fails, and a line a
          // pass would bury the outage's own lines.
          if (!this.loopFailing) this.logger?.error({ err }, "held operations: release loop pass failed (logged again only after a pass succeeds)");
          this.loopFailing = true;
        },
      )
      .finally(() => {
        this.ticking = null;
      });
  }

  /**
   * One pass: expire, promote (delay over), mark stale claims unknown, forget what ended without
   * release, and release what is ready (and releasable by this process). Resolves when the
   * releases it started are done.
   */
  async tick(): Promise<void> {
    const now = this.now();
    const moved = await this.store.advance(now, this.leaseMs);
    for (const id of moved.unknown) this.logger?.warn({ operationId: id }, "held operation: its release was interrupted; it is unknown whether the upstream received it, and it is never sent again");
    await this.settle();
    const ids = await this.store.readyIds(100);
    await Promise.all(ids.map((id) => this.release(id)));
  }

  /** Forgets, in the policy, what every operation that ended without release recorded. */
  private async settle(): Promise<void> {
    const policy = this.policy;
    // Only a process with the policy settles (the CLI, without one, leaves it to the gateway).
    if (policy === null) return;
    for (const id of await this.store.unsettled(100)) {
      if (!(await this.store.settle(id))) continue;
      try {
        await policy.forget(id);
      } catch (err) {
        this.logger?.warn({ operationId: id, err }, "held operation: the policy could not forget its value");
      }
    }
  }

  private releaseSoon(id: string): void {
    // Stopping (a drain): left ready, for the next pass of this process or another's.
    if (this.stopped) return;
    const p = this.release(id).finally(() => this.releasing.delete(p));
    this.releasing.add(p);
  }

  /**
   * Decrypts the held request of a claimed operation. A KEK rotation may have rewrapped it and
   * retired the version it was under between the claim's read and this decrypt (the envelope then
   * names a version the provider no longer holds): the row holds the same request rewrapped, so it
   * is read again, rather than recording a request that was never sent as failed.
   */
  private async openHeld(sealed: Buffer, id: string): Promise<Buffer> {
    try {
      return await this.envelope.decrypt(sealed, HELD_REQUEST_PURPOSE, id);
    } catch (err) {
      if (!(err instanceof CustodyError && err.code === "CUSTODY_KEK_VERSION_UNKNOWN")) throw err;
      const current = (await this.store.hold(id))?.held;
      if (current === undefined || current.equals(sealed)) throw err;
      return this.envelope.decrypt(current, HELD_REQUEST_PURPOSE, id);
    }
  }

  /**
   * Claims and releases one ready operation, if this process can release its kind. Never throws:
   * a failure after the claim is recorded as the outcome (an upstream that could not be reached is
   * an answer too: 502), so the operation never goes back to ready.
   */
  async release(id: string): Promise<void> {
    const row = await this.store.hold(id);
    if (row?.state !== "ready") return;
    const changeReleaser = row.target === "change" ? this.changeReleasers.get(row.kind as ChangeKind) : undefined;
    const requestReleaser = row.target === "request" ? this.requestReleaser : null;
    if (changeReleaser === undefined && requestReleaser === null) return;
    // A stopped service claims nothing: `stop` has stopped waiting, and what a release needs (the
    // forwarder, the store) is about to close. Left ready, it is released once by whoever runs next.
    if (this.stopped) return;
    const claimed = await this.store.claim(id, this.processId, this.now());
    if (!claimed.ok) {
      if (claimed.current === "cancelled" || claimed.current === "expired") await this.settle();
      return;
    }
    let outcome: ReleaseOutcome;
    try {
      const bytes = await this.openHeld(claimed.row.held, id);
      if (requestReleaser !== null) {
        outcome = await requestReleaser(parseRequest(bytes), claimed.row);
      } else {
        const result = await (changeReleaser as (payload: unknown) => Promise<unknown>)(JSON.parse(bytes.toString("utf8")) as unknown);
        outcome = { status: 200, body: Buffer.from(JSON.stringify(result ?? null), "utf8"), contentType: "application/json" };
      }
    } catch (err) {
      this.logger?.error({ operationId: id, err }, "held operation: release failed");
      outcome = { status: 500, body: Buffer.from(JSON.stringify({ code: "INTERNAL" }), "utf8"), contentType: "application/json" };
    }
    const body = outcome.body.subarray(0, this.outcomeLimit);
    const answer = Buffer.from(JSON.stringify({ body: body.toString("utf8"), contentType: outcome.contentType }), "utf8");
    const { status } = outcome;
    const finishedAt = this.now();
    // Sealed again under the active KEK version if the store refuses it as under a retired one.
    const recorded = await retryUnderActiveKek(this.envelope, async () =>
      this.store.finish(id, this.processId, finishedAt, status, await this.envelope.encrypt(answer, HELD_OUTCOME_PURPOSE, id)),
    );
    if (!recorded) {
      this.logger?.warn({ operationId: id }, "held operation: released, but its claim was no longer ours when recording the outcome");
    } else {
      this.logger?.info({ operationId: id, status }, "held operation released");
    }
  }
}
