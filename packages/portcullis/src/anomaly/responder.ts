import { randomBytes } from "node:crypto";
import type { AuditFields } from "../audit/events.js";
import { type AnomalyAction, type AnomalyActionRecord, type BehaviourScore, type KeyRisk, isAnomalyActionId, riskInForce } from "../contract/behaviour.js";
import type { KeyView } from "../contract/keys.js";
import { PortcullisError } from "../errors/catalogue.js";
import type { KeyService } from "../keys/service.js";
import { type Logger, silentLogger } from "../log/logger.js";
import type { AnomalyActionFilter, AnomalyActionStore } from "../storage/types.js";
import { type BehaviourSettings, type ResponseRule, actionStrength, responseFor } from "./responses.js";
import type { AlertSink } from "./webhook.js";

/**
 * The responder (docs/behaviour.md, "Responses"): turns a key's score into the response the policy
 * names, carries it out on the key, stores it, audits it (`anomaly.action`) and alerts the webhook;
 * and undoes one when an operator asks.
 *
 * What is in force is never repeated nor weakened: a key already throttled is not throttled again
 * for each of its requests, a suspended key is not stepped up; only a stronger action acts. Record
 * and alert happen at most once a minute per key. Scores of one key are handled one at a time.
 */

/** Where the responder's audit entries go: the AuditLog (decision class, group-committed). */
export interface AuditRecorder {
  record(fields: AuditFields): void;
}

export interface AnomalyResponderOptions {
  readonly settings: BehaviourSettings;
  readonly keys: KeyService;
  readonly store: AnomalyActionStore;
  readonly audit: AuditRecorder;
  /** The alert webhook; null or unset: none configured. */
  readonly alerts?: AlertSink | null;
  readonly logger?: Logger;
  readonly now?: () => number;
}

/** Who the responder's own changes are attributed to, in key changes and the audit log. */
export const RESPONDER_ACTOR = "behaviour";
/** Record and alert: at most once per key in this window. */
const QUIET_MS = 60_000;
/** Keys whose latest action this process remembers (`AnomalyResponder.taken`). */
const QUIET_KEYS = 10_000;
/** The contributions an audit entry and a reason name. */
const TOP = 3;
const REASON_MAX = 500;

export function newActionId(): string {
  return `an_${randomBytes(16).toString("hex")}`;
}

/** The score in words: "score 91 (key): rate.1m 62 requests/min vs median 3.1/min; …". */
export function explain(score: BehaviourScore): string {
  const parts = score.contributions.slice(0, TOP).map((c) => `${c.feature} ${c.observed} vs ${c.baseline}`);
  const text = `score ${Math.round(score.score)} (${score.basis})${parts.length === 0 ? "" : `: ${parts.join("; ")}`}`;
  return text.length > REASON_MAX ? `${text.slice(0, REASON_MAX - 1)}…` : text;
}

function auditDetail(record: AnomalyActionRecord, extra: Record<string, unknown>): Record<string, unknown> {
  return {
    actionId: record.id,
    action: record.action,
    score: record.score,
    basis: record.explanation.basis,
    contributions: record.explanation.contributions.slice(0, TOP).map((c) => ({ feature: c.feature, observed: c.observed, baseline: c.baseline, points: c.points })),
    ...extra,
  };
}

function isCode(err: unknown, ...codes: string[]): boolean {
  return err instanceof PortcullisError && codes.includes(err.code);
}

export class AnomalyResponder {
  private readonly settings: BehaviourSettings;
  private readonly keys: KeyService;
  readonly store: AnomalyActionStore;
  private readonly audit: AuditRecorder;
  private readonly alerts: AlertSink | null;
  private readonly logger: Logger;
  private readonly now: () => number;
  /** The scores of one key, handled one after the other. */
  private readonly queues = new Map<string, Promise<unknown>>();
  /**
   * Per key, the latest action this responder stored (when, how strong), oldest first, at most
   * QUIET_KEYS: while it is within QUIET_MS, a record or alert no stronger is known to be quiet
   * without reading the key and the action store (a busy key scores above the record threshold
   * on every request).
   */
  private readonly taken = new Map<string, { readonly at: number; readonly strength: number }>();

  constructor(options: AnomalyResponderOptions) {
    this.settings = options.settings;
    this.keys = options.keys;
    this.store = options.store;
    this.audit = options.audit;
    this.alerts = options.alerts ?? null;
    this.logger = options.logger ?? silentLogger();
    this.now = options.now ?? Date.now;
  }

  /**
   * Responds to one score: the strongest response it reaches (no stronger than `ceiling`), unless
   * that (or something stronger) is already in force. The action taken, or null when there was
   * nothing to do. The engine caps a request that never proved the key (refused before its
   * signature verified) at `alert`: whoever knows a key's id must not be able to suspend it.
   */
  respond(score: BehaviourScore, ceiling: AnomalyAction = "revoke"): Promise<AnomalyActionRecord | null> {
    if (!this.settings.enabled) return Promise.resolve(null);
    const rule = responseFor(this.settings, score.score, ceiling);
    if (rule === null) return Promise.resolve(null);
    return this.serial(score.keyId, () => this.act(score, rule));
  }

  /** Runs `fn` after every earlier task of the key. */
  private serial<T>(keyId: string, fn: () => Promise<T>): Promise<T> {
    const before = this.queues.get(keyId) ?? Promise.resolve();
    const run = before.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.queues.set(keyId, tail);
    void tail.then(() => {
      if (this.queues.get(keyId) === tail) this.queues.delete(keyId);
    });
    return run;
  }

  private async act(score: BehaviourScore, rule: ResponseRule): Promise<AnomalyActionRecord | null> {
    const now = this.now();
    if (this.quietHere(score.keyId, rule.action, now)) return null;
    let key: KeyView;
    try {
      key = await this.keys.get(score.keyId);
    } catch (err) {
      if (!isCode(err, "KEY_NOT_FOUND")) throw err;
      this.logger.debug({ keyId: score.keyId, score: score.score }, "anomaly score for a key that does not exist: nothing to do");
      return null;
    }
    if (key.status === "revoked") {
      this.logger.debug({ keyId: key.id, score: score.score }, "anomaly score for a revoked key: nothing to do");
      return null;
    }
    if (!(await this.stronger(key, rule.action, now))) return null;

    const id = newActionId();
    const reason = `anomaly action ${id} (${rule.action}): ${explain(score)}`;
    let dueAt: number | null = null;
    let until: number | null = null;
    try {
      switch (rule.action) {
        case "record":
        case "alert":
          break;
        case "step-up":
        case "throttle": {
          until = rule.forMs === null ? null : now + rule.forMs;
          const risk: KeyRisk = { state: rule.action, actionId: id, reason, since: now, until };
          await this.keys.setRisk(key.id, risk, RESPONDER_ACTOR);
          break;
        }
        case "suspend":
          await this.keys.suspend(key.id, RESPONDER_ACTOR, reason);
          break;
        case "revoke":
          dueAt = now + this.settings.revokeGraceMs;
          // Suspended at once; revoked for good by the sweep once the grace has passed.
          if (key.status === "active") await this.keys.suspend(key.id, RESPONDER_ACTOR, `${reason}; revoked for good at ${new Date(dueAt).toISOString()} unless undone`);
          break;
      }
    } catch (err) {
      // The key was revoked (or removed) meanwhile: nothing left to act on.
      if (!isCode(err, "KEY_NOT_FOUND", "KEY_STATE_CONFLICT")) throw err;
      this.logger.debug({ keyId: key.id, action: rule.action, code: (err as PortcullisError).code }, "the key changed meanwhile: anomaly action not taken");
      return null;
    }
    const record: AnomalyActionRecord = {
      id,
      keyId: key.id,
      account: key.account,
      action: rule.action,
      score: score.score,
      explanation: score,
      at: now,
      state: "active",
      dueAt,
      undoneAt: null,
      undoneBy: null,
    };
    await this.store.insert(record);
    this.remember(record);
    this.audit.record({
      event: "anomaly.action",
      at: now,
      actor: RESPONDER_ACTOR,
      key: key.id,
      account: key.account,
      detail: auditDetail(record, until === null ? (dueAt === null ? {} : { dueAt }) : { until }),
    });
    if (rule.action !== "record") this.alerts?.send(record, "anomaly.action");
    this.logger.info({ keyId: key.id, actionId: id, action: rule.action, score: score.score }, "anomaly action taken");
    return record;
  }

  /**
   * A record or alert that `stronger` would find repeated, from what this process stored itself:
   * an action at least as strong, stored for the key within QUIET_MS, is in the action store, so
   * the store's latest action for the key is that one or a later one (which another process could
   * only have stored after the same check). Every other way `act` could go for a record or an
   * alert (no such key, revoked, suspended, a risk in force) also does nothing.
   */
  private quietHere(keyId: string, action: AnomalyAction, now: number): boolean {
    if (action !== "record" && action !== "alert") return false;
    const taken = this.taken.get(keyId);
    return taken !== undefined && taken.at > now - QUIET_MS && taken.strength >= actionStrength(action);
  }

  private remember(record: AnomalyActionRecord): void {
    this.taken.delete(record.keyId);
    this.taken.set(record.keyId, { at: record.at, strength: actionStrength(record.action) });
    if (this.taken.size > QUIET_KEYS) {
      const oldest = this.taken.keys().next();
      if (oldest.done !== true) this.taken.delete(oldest.value);
    }
  }

  /** Is `action` stronger than what is in force on the key (and, for record/alert, not repeated within a minute)? */
  private async stronger(key: KeyView, action: AnomalyAction, now: number): Promise<boolean> {
    const strength = actionStrength(action);
    if (key.status === "suspended") {
      // A suspended key can only be escalated to a revoke, and only once.
      if (action !== "revoke") return false;
      return (await this.store.list({ keyId: key.id, state: "active", action: "revoke", limit: 1 })).length === 0;
    }
    const risk = riskInForce(key.risk, now);
    if (risk !== null && actionStrength(risk.state) >= strength) return false;
    if (action === "record" || action === "alert") {
      const [latest] = await this.store.list({ keyId: key.id, limit: 1 });
      if (latest !== undefined && latest.at > now - QUIET_MS && actionStrength(latest.action) >= strength) return false;
    }
    return true;
  }

  /**
   * Revokes for good the keys whose revoke grace has passed and that no operator gave back; each
   * such action is marked done. Returns the actions carried out.
   */
  async sweep(now: number = this.now(), limit = 100): Promise<AnomalyActionRecord[]> {
    const done: AnomalyActionRecord[] = [];
    for (const due of await this.store.due(now, limit)) {
      const record = await this.serial(due.keyId, async () => {
        const moved = await this.store.transition(due.id, "active", "done", now, null);
        if (moved === undefined) return null;
        try {
          await this.keys.revoke(moved.keyId, RESPONDER_ACTOR, `anomaly action ${moved.id} (revoke): grace passed; ${explain(moved.explanation)}`);
        } catch (err) {
          if (!isCode(err, "KEY_NOT_FOUND", "KEY_STATE_CONFLICT")) throw err;
          this.logger.debug({ keyId: moved.keyId, actionId: moved.id }, "revoke due for a key already revoked or gone: nothing to do");
        }
        this.audit.record({ event: "anomaly.action", at: now, actor: RESPONDER_ACTOR, key: moved.keyId, account: moved.account, detail: auditDetail(moved, { state: "done", revoked: true }) });
        this.alerts?.send(moved, "anomaly.action");
        return moved;
      });
      if (record !== null) done.push(record);
    }
    return done;
  }

  /** One action, or ANOMALY_ACTION_NOT_FOUND. */
  async get(id: string): Promise<AnomalyActionRecord> {
    const record = isAnomalyActionId(id) ? await this.store.get(id) : undefined;
    if (record === undefined) throw new PortcullisError("ANOMALY_ACTION_NOT_FOUND");
    return record;
  }

  list(filter: AnomalyActionFilter = {}): Promise<AnomalyActionRecord[]> {
    return this.store.list(filter);
  }

  /**
   * Undoes an action: a step-up or throttle is cleared (only while the key's risk state is still
   * this action's), a suspension is resumed, a revoke still in its grace is resumed and never
   * carried out (the key stays suspended while another suspend or revoke of it is in force). ANOMALY_ACTION_NOT_FOUND, or ANOMALY_ACTION_FINAL when it was already undone or
   * (a revoke) done.
   */
  async undo(actionId: string, actor: string): Promise<AnomalyActionRecord> {
    const found = await this.get(actionId);
    return this.serial(found.keyId, async () => {
      const now = this.now();
      const record = await this.store.transition(actionId, "active", "undone", now, actor);
      if (record === undefined) throw new PortcullisError("ANOMALY_ACTION_FINAL", `anomaly action ${actionId} is ${(await this.get(actionId)).state}`);
      try {
        switch (record.action) {
          case "record":
          case "alert":
            break;
          case "step-up":
          case "throttle":
            await this.keys.setRisk(record.keyId, null, actor, record.id);
            break;
          case "suspend":
          case "revoke": {
            // Another suspension or revoke of the key still in force keeps it suspended.
            const others = await this.store.list({ keyId: record.keyId, state: "active", limit: 1000 });
            if (others.some((o) => o.action === "suspend" || o.action === "revoke")) {
              this.logger.debug({ keyId: record.keyId, actionId: record.id }, "undo: another anomaly action keeps the key suspended");
              break;
            }
            await this.keys.resume(record.keyId, actor);
            break;
          }
        }
      } catch (err) {
        // The key was revoked, removed, or already resumed by an operator: the action is undone all the same.
        if (!isCode(err, "KEY_NOT_FOUND", "KEY_STATE_CONFLICT")) throw err;
        this.logger.debug({ keyId: record.keyId, actionId: record.id, code: (err as PortcullisError).code }, "undo: the key is no longer in the action's state");
      }
      this.audit.record({ event: "anomaly.action", at: now, actor, key: record.keyId, account: record.account, detail: auditDetail(record, { state: "undone" }) });
      if (record.action !== "record") this.alerts?.send(record, "anomaly.undo");
      this.logger.info({ keyId: record.keyId, actionId: record.id, action: record.action, actor }, "anomaly action undone");
      return record;
    });
  }
}
