import { newOperationId } from "../contract/policy.js";
import type { Withdraw } from "../contract/operations.js";
import type { ChangeHolder, GovernedOperation, HeldTicket, PolicyDecider, PolicyDecision, PolicyExplanation, PolicyKind, PolicySubject } from "../contract/policy.js";
import type { ReferencePrices } from "../contract/prices.js";
import { isJsonObject, parseJson } from "../contract/json.js";
import { PortcullisError } from "../errors/catalogue.js";
import { valueOrThrow } from "../errors/result.js";
import { type Logger, silentLogger } from "../log/logger.js";
import { StaticPrices } from "../operations/prices.js";
import { canonicalDigest, canonicalJson } from "../policy/canonical.js";
import { parsePolicyDocument } from "../policy/document.js";
import { CompiledPolicy, DEFAULT_POLICY, DEFAULT_POLICY_JSON, type DestinationFact, type PolicyFacts } from "../policy/engine.js";
import type { AddressRow, DurableStore, PolicyVersionSummary, SpendEntry } from "../storage/types.js";

/**
 * The policy service (docs/policy.md): the engine over the durable store. It implements
 * `PolicyDecider` for the request path and the hold service, and governs its own changes: a new
 * version is judged, as a `policy.change` operation, by the version in force.
 *
 * The version in force is the latest stored one (version 0, one catch-all allow, until a policy is
 * applied), compiled once and cached. Another process's apply is found by polling the store's
 * latest version (one indexed read, every `pollIntervalMs`), and again before every decision, so
 * `decide` always uses the version in force; `judges` (synchronous, on the request path) uses the
 * cached one, at most one poll interval old.
 */

/** Who asks for a governed change, and from where. */
export interface Initiator {
  /** As the audit log names actors: `key:<id>`, `cli:<user>`. */
  readonly actor: string;
  /** The initiating key's account (null: the CLI on the data directory). */
  readonly account: string | null;
  readonly keyId: string | null;
  readonly client: string | null;
  /** The person behind the initiating key (who may not approve the change). */
  readonly owner: string | null;
}

/** What a governed change came to: done now, or held (the native answer is 202 with the ticket). */
export type ChangeOutcome<T> =
  | { readonly state: "applied"; readonly decision: PolicyDecision; readonly result: T }
  | { readonly state: "held"; readonly decision: PolicyDecision; readonly ticket: HeldTicket };

/** A policy version as `policy show` and `GET /portcullis/v1/policy` answer it. */
export interface PolicyView {
  readonly version: number;
  readonly digest: string;
  readonly rules: number;
  /** Null for version 0 (built in). */
  readonly createdAt: number | null;
  readonly createdBy: string;
  readonly document: unknown;
}

export interface PolicyServiceOptions {
  readonly store: DurableStore;
  /** Reference prices for "over" amounts (default: none known, so every amount condition fails closed). */
  readonly prices?: ReferencePrices;
  /** The hold service; without one, a change the policy holds is refused (POLICY_HOLD_UNAVAILABLE). */
  readonly holder?: ChangeHolder | null;
  readonly now?: () => number;
  /** How often the store is polled for a version another process applied (ms; 0: never, only before decisions). Default 200. */
  readonly pollIntervalMs?: number;
  readonly logger?: Logger;
  /** Operation ids for held changes (default: `newOperationId`, contract/policy.ts). */
  readonly newId?: () => string;
}

/** What a held policy change keeps: the exact document and the version it would create. */
interface PolicyChangePayload {
  readonly document: unknown;
  readonly version: number;
  readonly digest: string;
  readonly actor: string;
}

const DEFAULT_DIGEST = canonicalDigest(DEFAULT_POLICY_JSON);

/** The best address-book entry for a withdrawal's destination (network and tag must agree). */
export function destinationFact(entries: readonly AddressRow[], op: Withdraw, at: number): DestinationFact | null {
  let usable: AddressRow | null = null;
  let cooling: AddressRow | null = null;
  for (const e of entries) {
    // The network, when the withdrawal names one, must be the entry's. The memo / tag must be the
    // same on both sides: on a shared deposit address it is what names the recipient.
    if (op.network !== null && e.network !== op.network) continue;
    if (e.tag !== op.tag) continue;
    if (e.usableFrom <= at) {
      if (usable === null || e.addedAt < usable.addedAt) usable = e;
    } else if (cooling === null || e.usableFrom < cooling.usableFrom) cooling = e;
  }
  const best = usable ?? cooling;
  return best === null ? null : { addedAt: best.addedAt, usableFrom: best.usableFrom };
}

function assetOrSymbol(op: GovernedOperation): string | null {
  switch (op.kind) {
    case "withdraw":
    case "transfer":
      return op.asset;
    case "order.place":
      return op.symbol;
    default:
      return null;
  }
}

export class PolicyService implements PolicyDecider {
  private readonly store: DurableStore;
  private readonly prices: ReferencePrices;
  private readonly holder: ChangeHolder | null;
  private readonly now: () => number;
  private readonly logger: Logger;
  private readonly newId: () => string;
  private current: CompiledPolicy;
  private timer: NodeJS.Timeout | null = null;
  private refreshing: Promise<CompiledPolicy> | null = null;

  private constructor(options: PolicyServiceOptions) {
    this.store = options.store;
    this.prices = options.prices ?? new StaticPrices();
    this.holder = options.holder ?? null;
    this.now = options.now ?? Date.now;
    this.logger = options.logger ?? silentLogger();
    this.newId = options.newId ?? newOperationId;
    this.current = new CompiledPolicy(DEFAULT_POLICY, 0, DEFAULT_DIGEST, this.prices);
    this.holder?.onRelease("policy.change", (payload) => this.release(payload));
  }

  /** Opens the service with the version in force loaded (never answers from version 0 by mistake). */
  static async open(options: PolicyServiceOptions): Promise<PolicyService> {
    const service = new PolicyService(options);
    await service.refresh();
    const interval = options.pollIntervalMs ?? 200;
    if (interval > 0) {
      // Failures are logged once per streak: while the store is out (docs/failures.md) every poll
      // fails, several times a second.
      let failing = false;
      service.timer = setInterval(() => {
        service.refresh().then(
          () => {
            if (failing) service.logger.info("policy: the version in force is read again");
            failing = false;
          },
          (err: unknown) => {
            if (!failing) service.logger.warn({ err }, "policy: reading the version in force failed; keeping the cached one (logged again only after a read succeeds)");
            failing = true;
          },
        );
      }, interval);
      service.timer.unref();
    }
    return service;
  }

  /** The version in force, compiled. */
  get version(): number {
    return this.current.version;
  }

  /** The service's clock (the address book judges its changes by it too). */
  time(): number {
    return this.now();
  }

  /** Loads the latest version if it is not the cached one (one indexed read when nothing changed). */
  refresh(): Promise<CompiledPolicy> {
    this.refreshing ??= this.load().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  private async load(): Promise<CompiledPolicy> {
    const latest = await this.store.policies.latest();
    const version = latest?.version ?? 0;
    if (version === this.current.version && (latest === null || latest.digest === this.current.digest)) return this.current;
    const compiled = await this.compiledVersion(version);
    if (compiled.version >= this.current.version) this.current = compiled;
    return this.current;
  }

  private async compiledVersion(version: number): Promise<CompiledPolicy> {
    if (version === 0) return new CompiledPolicy(DEFAULT_POLICY, 0, DEFAULT_DIGEST, this.prices);
    if (version === this.current.version) return this.current;
    const row = await this.store.policies.get(version);
    if (row === undefined) throw new PortcullisError("POLICY_VERSION_NOT_FOUND", `no policy version ${version}`);
    // A stored version was valid when applied; parsing it again keeps the engine's one entry point.
    return new CompiledPolicy(valueOrThrow(parsePolicyDocument(parseJson(row.document))), row.version, row.digest, this.prices);
  }

  close(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  // --- PolicyDecider -----------------------------------------------------------------------------

  judges(kind: PolicyKind): boolean {
    return this.current.judges(kind);
  }

  /**
   * Decides with the version in force. An operation with a value (a withdrawal, a transfer, an
   * order) of a kind some rule counts velocity for is decided inside the velocity ledger's
   * transaction, and its value recorded under `ref` there unless the decision is a block.
   */
  async decide(subject: PolicySubject, ref: string): Promise<PolicyDecision> {
    const policy = await this.refresh();
    const facts = await this.facts(policy, subject);
    const op = subject.operation;
    const value = policy.valueOf(op);
    const asset = assetOrSymbol(op);
    if (value === undefined || asset === null || !policy.countsVelocity(op.kind)) return policy.decide(subject, facts);
    const entry: SpendEntry = { ref, kind: op.kind, keyId: subject.keyId, account: subject.account, asset, value, at: subject.at };
    return this.store.spend.decide({ kind: op.kind, keyId: subject.keyId, account: subject.account, at: subject.at, windows: policy.windows }, (sums) => {
      const decision = policy.decide(subject, { ...facts, sums });
      return { record: decision.action.type === "block" ? null : entry, result: decision };
    });
  }

  /** The dry run: every rule evaluated, in order, with its reasons; records nothing. `version`: another version than the one in force. */
  async explain(subject: PolicySubject, version?: number): Promise<PolicyExplanation> {
    const policy = version === undefined ? await this.refresh() : await this.compiledVersion(version);
    const facts = await this.facts(policy, subject);
    const op = subject.operation;
    const sums =
      policy.windows.length === 0 || policy.valueOf(op) === undefined
        ? undefined
        : await this.store.spend.sums({ kind: op.kind, keyId: subject.keyId, account: subject.account, at: subject.at, windows: policy.windows });
    return policy.explain(subject, sums === undefined ? facts : { ...facts, sums });
  }

  forget(ref: string): Promise<void> {
    return this.store.spend.forget(ref).then(() => undefined);
  }

  private async facts(policy: CompiledPolicy, subject: PolicySubject): Promise<PolicyFacts> {
    const op = subject.operation;
    if (!policy.usesDestination || op.kind !== "withdraw" || op.address === null || subject.account === null) return { destination: null };
    const entries = await this.store.addresses.lookup(subject.account, op.asset, op.address);
    return { destination: destinationFact(entries, op, subject.at) };
  }

  // --- versions ----------------------------------------------------------------------------------

  async show(version?: number): Promise<PolicyView> {
    const wanted = version ?? (await this.refresh()).version;
    if (wanted === 0) return { version: 0, digest: DEFAULT_DIGEST, rules: 1, createdAt: null, createdBy: "built-in", document: DEFAULT_POLICY_JSON };
    const row = await this.store.policies.get(wanted);
    if (row === undefined) throw new PortcullisError("POLICY_VERSION_NOT_FOUND", `no policy version ${wanted}`);
    return { version: row.version, digest: row.digest, rules: row.rules, createdAt: row.createdAt, createdBy: row.createdBy, document: parseJson(row.document) };
  }

  /** Every version, newest first, version 0 last. */
  async versions(limit = 100): Promise<PolicyVersionSummary[]> {
    const rows = await this.store.policies.versions(limit);
    return rows.length < limit ? [...rows, { version: 0, digest: DEFAULT_DIGEST, rules: 1, createdAt: 0, createdBy: "built-in" }] : rows;
  }

  /**
   * Applies a new version: judged by the version in force as a `policy.change`. Allowed, it is in
   * force when this resolves; blocked, POLICY_BLOCKED; held, the hold service keeps the exact
   * document and activates it when released (if no other version came in between).
   */
  async apply(raw: unknown, initiator: Initiator): Promise<ChangeOutcome<PolicyView>> {
    const document = valueOrThrow(parsePolicyDocument(raw));
    const text = canonicalJson(raw);
    const digest = canonicalDigest(raw);
    const policy = await this.refresh();
    const version = policy.version + 1;
    const subject: PolicySubject = {
      operation: { kind: "policy.change", version, digest, rules: document.rules.length },
      account: initiator.account,
      keyId: initiator.keyId,
      client: initiator.client,
      at: this.now(),
    };
    const operationId = this.newId();
    const decision = await this.decide(subject, operationId);
    switch (decision.action.type) {
      case "allow":
        return { state: "applied", decision, result: await this.activate(text, version, digest, document.rules.length, initiator.actor, { rule: decision.rule, decidedBy: decision.version }) };
      case "block":
        throw blocked(decision, "this policy change");
      case "hold": {
        if (this.holder === null) throw new PortcullisError("POLICY_HOLD_UNAVAILABLE");
        const payload: PolicyChangePayload = { document: parseJson(text), version, digest, actor: initiator.actor };
        const ticket = await this.holder.holdChange(operationId, subject, decision, payload, initiator.owner);
        return { state: "held", decision, ticket };
      }
    }
  }

  /** A held change, released: activates exactly the document that was held. */
  private async release(payload: unknown): Promise<PolicyView> {
    if (!isJsonObject(payload) || typeof payload.version !== "number" || typeof payload.digest !== "string" || typeof payload.actor !== "string") {
      throw new PortcullisError("VALIDATION_FAILED", "a held policy change without its document");
    }
    if (canonicalDigest(payload.document) !== payload.digest) throw new PortcullisError("VALIDATION_FAILED", "the held policy document does not match its digest");
    const document = valueOrThrow(parsePolicyDocument(payload.document));
    return this.activate(canonicalJson(payload.document), payload.version, payload.digest, document.rules.length, payload.actor, { released: true });
  }

  private async activate(text: string, version: number, digest: string, rules: number, actor: string, detail: Record<string, unknown>): Promise<PolicyView> {
    const at = this.now();
    const result = await this.store.policies.insert({ version, document: text, digest, rules, createdAt: at, createdBy: actor }, detail);
    if (!result.ok) {
      throw new PortcullisError("POLICY_VERSION_CONFLICT", `this change would create version ${version}, but version ${result.latest} is in force now: apply it again`);
    }
    const compiled = new CompiledPolicy(valueOrThrow(parsePolicyDocument(parseJson(text))), version, digest, this.prices);
    if (compiled.version > this.current.version) this.current = compiled;
    this.logger.info({ version, digest, actor }, "policy: new version in force");
    return { version, digest, rules, createdAt: at, createdBy: actor, document: parseJson(text) };
  }
}

/** POLICY_BLOCKED, naming the rule (and its reason) that blocked `what`. */
export function blocked(decision: PolicyDecision, what: string): PortcullisError {
  const reason = decision.action.type === "block" && decision.action.reason !== null ? `: ${decision.action.reason}` : "";
  return new PortcullisError("POLICY_BLOCKED", `rule "${decision.rule}" of policy version ${decision.version} blocks ${what}${reason}`);
}
