import type { AnomalyAction, AnomalyActionRecord, AnomalyScores, BehaviourEvent, BehaviourScore } from "../contract/behaviour.js";
import type { ReferencePrices } from "../contract/prices.js";
import type { RequestContext } from "../contract/request.js";
import { behaviourEvent } from "../behaviour/event.js";
import type { BehaviourModel, BehaviourState } from "../behaviour/model.js";
import type { Logger } from "../log/logger.js";
import type { AddressStore, BehaviourStateStore } from "../storage/types.js";

/**
 * What the engine hands each score to (the responder), and what comes of it. `ceiling`: the
 * strongest action the event may lead to (`alert` for a request that never proved its key).
 */
export type ScoreResponder = (score: BehaviourScore, ceiling: AnomalyAction) => Promise<AnomalyActionRecord | null>;

export interface BehaviourEngineOptions {
  readonly model: BehaviourModel;
  /** Where each key's and account's state lives (SQLite, or Redis shared by every process). */
  readonly states: BehaviourStateStore;
  /** The responder; null: scores are computed and kept, nothing acts on them. */
  readonly respond: ScoreResponder | null;
  /** Values orders and withdrawals for the model. */
  readonly prices: ReferencePrices | null;
  /**
   * The withdrawal address books (docs/policy.md): a withdrawal to a destination in its account's
   * book, past its cooldown, is not to a new destination. Null: every destination the key never
   * used is new.
   */
  readonly addresses?: Pick<AddressStore, "lookup"> | null;
  readonly logger: Logger;
  /**
   * How long observed decisions wait before they are scored together (ms). Each batch is one
   * read-modify-write of the states it touches. Default 250.
   */
  readonly flushMs?: number;
  /** Decisions queued at most; beyond it new ones are dropped and counted (never the request). Default 100,000. */
  readonly maxQueue?: number;
}

/** An account's state is kept under this name beside its keys'. */
export function accountStateId(account: string): string {
  return `account:${account}`;
}

/** A score, and the strongest action its event may lead to. */
type Scored = readonly [BehaviourScore, AnomalyAction];


/** Most decisions scored in one batch. */
const SLICE = 2_000;
/** Fewest decisions in one batch (a batch costs two round trips to the state store). */
const MIN_SLICE = 16;
/**
 * The synchronous work of one batch (building the events, the model's updates) aims at this much
 * time on the request thread (ms): the next batch's size follows the measured cost per decision.
 */
const SLICE_BUDGET_MS = 0.5;

/**
 * Stage 11 off the request path (docs/behaviour.md). The pipeline hands every decided request to
 * `observe`, which only turns it into a `BehaviourEvent` (a copy of a few facts) and queues that. A
 * timer takes the queue in batches: each event's account's state and then its key's state are updated through the state
 * store (a read-modify-write per batch, atomic per key, so gateway processes sharing Redis share
 * one model), each event is scored against the key's normal (or, for a young key, its account's),
 * and each score goes to the responder, one key at a time in order.
 */
export class BehaviourEngine implements AnomalyScores {
  private readonly model: BehaviourModel;
  private readonly states: BehaviourStateStore;
  private readonly respond: ScoreResponder | null;
  private readonly prices: ReferencePrices | null;
  private readonly addresses: Pick<AddressStore, "lookup"> | null;
  private readonly logger: Logger;
  private readonly flushMs: number;
  private readonly maxQueue: number;
  private queue: BehaviourEvent[] = [];
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> = Promise.resolve();
  private closed = false;
  /** Decisions dropped because the queue was full. */
  dropped = 0;
  /** Batches that failed (a store error), and decisions whose event could not be built: their events are lost, never their requests. */
  failures = 0;
  private readonly latestScores = new Map<string, BehaviourScore>();
  private readonly scoreListeners = new Set<(score: BehaviourScore) => void>();
  private readonly actionListeners = new Set<(record: AnomalyActionRecord) => void>();

  constructor(options: BehaviourEngineOptions) {
    this.model = options.model;
    this.states = options.states;
    this.respond = options.respond;
    this.prices = options.prices;
    this.addresses = options.addresses ?? null;
    this.logger = options.logger;
    this.flushMs = options.flushMs ?? 250;
    this.maxQueue = options.maxQueue ?? 100_000;
    if (!Number.isSafeInteger(this.flushMs) || this.flushMs < 0) throw new TypeError("flushMs must be a non-negative integer");
    if (!Number.isSafeInteger(this.maxQueue) || this.maxQueue < 1) throw new TypeError("maxQueue must be a positive integer");
  }

  /**
   * The pipeline's observer: queues the decision's event. On the request path: the event is a
   * small object of the facts the model reads (behaviour/event.ts), so the queue holds neither
   * the request's context nor its headers and body until the batch (a quarter of a second of a
   * busy gateway's requests would otherwise outlive the young generation). Nothing else happens
   * here; an event that cannot be built is counted as a failure, never the request's.
   */
  readonly observe = (ctx: RequestContext, end: BehaviourEvent["outcome"]): void => {
    if (ctx.key === null || this.closed) return;
    if (this.queue.length >= this.maxQueue) {
      this.dropped++;
      return;
    }
    let event: BehaviourEvent | null;
    try {
      event = behaviourEvent(ctx, end, this.prices);
    } catch (err) {
      this.failures++;
      this.logger.warn({ err }, "behaviour: a decision could not be observed");
      return;
    }
    if (event === null) return;
    this.queue.push(event);
    if (this.timer === null) {
      this.timer = setTimeout(this.tick, this.flushMs);
      this.timer.unref();
    }
  };

  private readonly tick = (): void => {
    this.timer = null;
    void this.enqueue(false);
  };

  /** Scores every queued decision and carries out the responses; resolves when done. */
  settle(): Promise<void> {
    return this.enqueue(true);
  }

  private enqueue(all: boolean): Promise<void> {
    const next = this.running.then(() => this.drain(all));
    this.running = next;
    return next;
  }

  onScore(listener: (score: BehaviourScore) => void): () => void {
    this.scoreListeners.add(listener);
    return () => this.scoreListeners.delete(listener);
  }

  onAction(listener: (record: AnomalyActionRecord) => void): () => void {
    this.actionListeners.add(listener);
    return () => this.actionListeners.delete(listener);
  }

  /** The key's latest score: this process's, else the one its stored state holds (without its explanation). */
  async latest(keyId: string): Promise<BehaviourScore | null> {
    const here = this.latestScores.get(keyId);
    if (here !== undefined) return here;
    const bytes = (await this.states.load([keyId])).get(keyId);
    const state = bytes === undefined ? null : this.model.decode(bytes);
    const last = state === null ? null : this.model.latest(state);
    if (last === null) return null;
    return { keyId, account: "", at: last.at, score: last.score, basis: last.basis, seen: 0, contributions: [] };
  }

  /**
   * Scores the queue in slices. `all` (settle): until it is empty. Otherwise (the timer): the
   * decisions queued when it starts; those observed meanwhile wait for their own timer (observe
   * armed it), so that each slice is as large as its time budget allows rather than as the few
   * decisions that arrived during the previous slice's round trips to the state store (about 30
   * at 10,000 requests/s, each slice two writes).
   */
  private async drain(all: boolean): Promise<void> {
    let due = all ? Number.POSITIVE_INFINITY : this.queue.length;
    while (this.queue.length > 0 && due > 0) {
      const size = Math.min(this.sliceSize(), due);
      const batch = this.queue.length <= size ? this.queue : this.queue.slice(0, size);
      this.queue = this.queue.length <= size ? [] : this.queue.slice(size);
      due -= batch.length;
      this.busyMs = 0;
      try {
        await this.process(batch);
        this.learn(batch.length);
      } catch (err) {
        this.failures++;
        this.logger.warn({ err, events: batch.length }, "behaviour: a batch of decisions could not be scored");
      }
      // A turn of the event loop between batches, even when the state store answers at once.
      if (this.queue.length > 0 && due > 0) await nextTurn();
    }
  }

  /** Synchronous time spent on the current batch so far (ms). */
  private busyMs = 0;
  /** The measured cost of one decision (ms, smoothed); null until a batch was measured. */
  private perDecisionMs: number | null = null;

  /** Decisions in the next batch: as many as fit SLICE_BUDGET_MS at the measured cost. */
  private sliceSize(): number {
    if (this.perDecisionMs === null) return MIN_SLICE;
    return Math.max(MIN_SLICE, Math.min(SLICE, Math.floor(SLICE_BUDGET_MS / this.perDecisionMs)));
  }

  private learn(decisions: number): void {
    if (decisions === 0) return;
    const cost = this.busyMs / decisions;
    this.perDecisionMs = this.perDecisionMs === null ? cost : 0.7 * this.perDecisionMs + 0.3 * cost;
  }

  /** Runs `fn`, counting its time against the batch's budget. */
  private timed<T>(fn: () => T): T {
    const start = performance.now();
    try {
      return fn();
    } finally {
      this.busyMs += performance.now() - start;
    }
  }

  private async process(batch: readonly BehaviourEvent[]): Promise<void> {
    const events: BehaviourEvent[] = [];
    for (const event of batch) events.push(await this.withDestination(event));
    if (events.length === 0) return;
    const byAccount = groupBy(events, (e) => accountStateId(e.account));
    const byKey = groupBy(events, (e) => e.keyId);
    // The accounts first: a young key is judged against its account as it was before this batch.
    const accountsBefore = new Map<string, BehaviourState | null>();
    await this.states.update([...byAccount.keys()], (id, current) => this.timed(() => {
      let state = current === null ? null : this.model.decode(current);
      accountsBefore.set(id, state === null ? null : this.model.decode(current as Uint8Array));
      for (const event of byAccount.get(id) ?? []) state = this.model.observeAccount(state, event);
      return this.model.encode(state as BehaviourState);
    }));
    // A retried key update scores its events again from the newer state: only the last run counts.
    const scored = new Map<string, Scored[]>();
    await this.states.update([...byKey.keys()], (id, current) => this.timed(() => {
      let state = current === null ? null : this.model.decode(current);
      const scores: Scored[] = [];
      for (const event of byKey.get(id) ?? []) {
        const result = this.model.observe(state, event, accountsBefore.get(accountStateId(event.account)) ?? null);
        state = result.state;
        scores.push([result.score, event.verified === false ? "alert" : "revoke"]);
      }
      scored.set(id, scores);
      return this.model.encode(state as BehaviourState);
    }));
    await Promise.all([...scored.values()].map((scores) => this.answer(scores)));
  }

  /** A withdrawal's event, with whether its destination is in its account's address book (and usable). */
  private async withDestination(event: BehaviourEvent): Promise<BehaviourEvent> {
    if (this.addresses === null || event.operation !== "withdraw" || event.destination === null || event.asset === null) return event;
    const entries = await this.addresses.lookup(event.account, event.asset, event.destination);
    return entries.some((e) => e.usableFrom <= event.at) ? { ...event, destinationKnown: true } : event;
  }

  /** One key's scores, in order: kept, reported, and responded to one after another. */
  private async answer(scores: readonly Scored[]): Promise<void> {
    for (const [score, ceiling] of scores) {
      this.latestScores.delete(score.keyId);
      this.latestScores.set(score.keyId, score);
      if (this.latestScores.size > 10_000) {
        const oldest = this.latestScores.keys().next().value;
        if (oldest !== undefined) this.latestScores.delete(oldest);
      }
      for (const listener of this.scoreListeners) this.tell(listener, score);
      if (this.respond === null) continue;
      let record: AnomalyActionRecord | null;
      try {
        record = await this.respond(score, ceiling);
      } catch (err) {
        this.logger.error({ err, keyId: score.keyId }, "behaviour: the response to a score failed");
        continue;
      }
      if (record !== null) for (const listener of this.actionListeners) this.tell(listener, record);
    }
  }

  private tell<T>(listener: (value: T) => void, value: T): void {
    try {
      listener(value);
    } catch (err) {
      this.logger.warn({ err }, "behaviour: a listener failed");
    }
  }

  /** Stops queuing and scores what is queued. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    await this.settle();
  }
}

const nextTurn = (): Promise<void> =>
  new Promise((resolve) => {
    setImmediate(resolve);
  });

function groupBy<T>(items: readonly T[], keyOf: (item: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const k = keyOf(item);
    const list = out.get(k);
    if (list === undefined) out.set(k, [item]);
    else list.push(item);
  }
  return out;
}
