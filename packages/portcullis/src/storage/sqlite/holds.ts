import type Database from "better-sqlite3";
import type { AuditFields } from "../../audit/events.js";
import type { ApprovalTier, HoldState } from "../../contract/policy.js";
import type { Advanced, ApprovalRow, ApproverRow, DecisionResult, EnvelopeReplacement, HeldEnvelopeColumn, HeldEnvelopes, HeldRow, HoldListFilter, HoldResult, HoldStore } from "../types.js";
import type { SqliteAudit } from "./audit.js";

/**
 * Approvers and held operations in SQLite (migration 12; docs/approvals.md). Every transition is
 * one UPDATE … WHERE state = <expected> … RETURNING inside an immediate transaction, with its audit
 * entry in the same transaction: of two processes (or two requests in one) racing for the same
 * transition, exactly one sees its row come back. Releasing is at most once because `claim` is
 * such a transition (ready -> releasing) and nothing ever moves an operation back to ready.
 *
 * `held` and `outcome` are envelopes under the data directory's KEK: every write of one (the hold,
 * its outcome, a rotation's rewrap) checks the KEK floor (storage/kek-floor.ts) in its own
 * transaction, and the store's `raiseKekFloor` counts them.
 */

/** The store's KEK floor check (store.ts): throws CUSTODY_KEK_RETIRED; call inside the write's transaction. */
export type KekFloorCheck = (envelopes: readonly (Buffer | null)[], what: string) => void;

interface HeldSql {
  id: string;
  state: string;
  kind: string;
  target: string;
  key_id: string | null;
  account: string | null;
  owner: string | null;
  summary: string;
  policy_version: number;
  rule: string;
  tiers: string;
  not_before: number | null;
  expires_at: number;
  created_at: number;
  updated_at: number;
  request_digest: string;
  held: Buffer;
  outcome_status: number | null;
  outcome: Buffer | null;
  claimed_by: string | null;
  claimed_at: number | null;
  reason: string | null;
}

interface ApproverSql {
  name: string;
  public_key: string;
  groups: string;
  added_at: number;
}

interface ApprovalSql {
  operation_id: string;
  approver: string;
  decision: string;
  tier: number | null;
  signature: string;
  at: number;
}

function heldFromSql(r: HeldSql): HeldRow {
  return {
    id: r.id,
    state: r.state as HoldState,
    kind: r.kind,
    target: r.target === "change" ? "change" : "request",
    keyId: r.key_id,
    account: r.account,
    owner: r.owner,
    summary: JSON.parse(r.summary) as unknown,
    policyVersion: r.policy_version,
    rule: r.rule,
    tiers: JSON.parse(r.tiers) as ApprovalTier[],
    notBefore: r.not_before,
    expiresAt: r.expires_at,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    requestDigest: r.request_digest,
    held: r.held,
    outcomeStatus: r.outcome_status,
    outcome: r.outcome,
    claimedBy: r.claimed_by,
    claimedAt: r.claimed_at,
    reason: r.reason,
  };
}

function approverFromSql(r: ApproverSql): ApproverRow {
  return { name: r.name, publicKey: r.public_key, groups: JSON.parse(r.groups) as string[], addedAt: r.added_at };
}

function approvalFromSql(r: ApprovalSql): ApprovalRow {
  return { operationId: r.operation_id, approver: r.approver, decision: r.decision === "reject" ? "reject" : "approve", tier: r.tier, signature: r.signature, at: r.at };
}

/** States from which an operation can still be cancelled (nothing has been sent). */
const CANCELLABLE = "('pending', 'ready')";

export class SqliteHolds implements HoldStore {
  private readonly db: Database.Database;
  private readonly audit: SqliteAudit;
  private readonly get: Database.Statement<[string], HeldSql>;
  /** Whether `advance` has anything to move (now, now, now - leaseMs). */
  private readonly due: Database.Statement<[number, number, number], { one: number }>;
  private readonly checkKekFloor: KekFloorCheck;

  constructor(db: Database.Database, audit: SqliteAudit, checkKekFloor: KekFloorCheck) {
    this.db = db;
    this.audit = audit;
    this.get = db.prepare("SELECT * FROM held_operations WHERE id = ?");
    this.due = db.prepare(
      `SELECT 1 AS one FROM held_operations WHERE (state IN ${CANCELLABLE} AND expires_at <= ?)
         OR (state = 'pending' AND approved = 1 AND (not_before IS NULL OR not_before <= ?))
         OR (state = 'releasing' AND claimed_at <= ?) LIMIT 1`,
    );
    this.checkKekFloor = checkKekFloor;
  }

  private entry(event: AuditFields["event"], row: { id: string; key_id?: string | null; keyId?: string | null; account: string | null }, at: number, actor: string, detail: Record<string, unknown>): AuditFields {
    const key = row.key_id ?? row.keyId ?? undefined;
    return { event, at, actor, key: key ?? undefined, account: row.account ?? undefined, detail: { operation: row.id, ...detail } };
  }

  private tx<T>(fn: () => T): Promise<T> {
    try {
      return Promise.resolve(this.db.transaction(fn).immediate());
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  // --- approvers ---------------------------------------------------------------------------------

  addApprover(row: ApproverRow, actor: string): Promise<{ readonly ok: true; readonly row: ApproverRow } | { readonly ok: false; readonly reason: "exists" }> {
    return this.tx(() => {
      const existing = this.db.prepare<[string], ApproverSql>("SELECT * FROM approvers WHERE name = ?").get(row.name);
      if (existing !== undefined && existing.public_key !== row.publicKey) return { ok: false as const, reason: "exists" as const };
      const groups = [...new Set([...(existing === undefined ? [] : (JSON.parse(existing.groups) as string[])), ...row.groups])].sort();
      const stored = this.db
        .prepare<[string, string, string, number], ApproverSql>(
          `INSERT INTO approvers (name, public_key, groups, added_at) VALUES (?, ?, ?, ?)
           ON CONFLICT (name) DO UPDATE SET groups = excluded.groups RETURNING *`,
        )
        .get(row.name, row.publicKey, JSON.stringify(groups), row.addedAt) as ApproverSql;
      this.audit.appendWithin([{ event: "approver.add", at: row.addedAt, actor, detail: { approver: row.name, groups, added: row.groups } }]);
      return { ok: true as const, row: approverFromSql(stored) };
    });
  }

  removeApprover(name: string, actor: string, at: number): Promise<boolean> {
    return this.tx(() => {
      const removed = this.db.prepare("DELETE FROM approvers WHERE name = ?").run(name).changes === 1;
      if (removed) this.audit.appendWithin([{ event: "approver.remove", at, actor, detail: { approver: name } }]);
      return removed;
    });
  }

  approver(name: string): Promise<ApproverRow | undefined> {
    const r = this.db.prepare<[string], ApproverSql>("SELECT * FROM approvers WHERE name = ?").get(name);
    return Promise.resolve(r === undefined ? undefined : approverFromSql(r));
  }

  approvers(): Promise<ApproverRow[]> {
    return Promise.resolve(this.db.prepare<[], ApproverSql>("SELECT * FROM approvers ORDER BY name").all().map(approverFromSql));
  }

  // --- held operations -----------------------------------------------------------------------------

  insertHold(row: HeldRow, actor: string): Promise<void> {
    return this.tx(() => {
      this.checkKekFloor([row.held], `held operation ${row.id}`);
      this.db
        .prepare(
          `INSERT INTO held_operations (id, state, kind, target, key_id, account, owner, summary, policy_version, rule, tiers,
             not_before, expires_at, created_at, updated_at, request_digest, held, approved)
           VALUES (@id, @state, @kind, @target, @keyId, @account, @owner, @summary, @policyVersion, @rule, @tiers,
             @notBefore, @expiresAt, @createdAt, @updatedAt, @requestDigest, @held, @approved)`,
        )
        .run({
          id: row.id,
          state: row.state,
          kind: row.kind,
          target: row.target,
          keyId: row.keyId,
          account: row.account,
          owner: row.owner,
          summary: JSON.stringify(row.summary),
          policyVersion: row.policyVersion,
          rule: row.rule,
          tiers: JSON.stringify(row.tiers),
          notBefore: row.notBefore,
          expiresAt: row.expiresAt,
          createdAt: row.createdAt,
          updatedAt: row.updatedAt,
          requestDigest: row.requestDigest,
          held: row.held,
          approved: row.tiers.length === 0 ? 1 : 0,
        });
      this.audit.appendWithin([
        this.entry("operation.hold", row, row.createdAt, actor, {
          kind: row.kind,
          policyVersion: row.policyVersion,
          rule: row.rule,
          approvals: row.tiers,
          notBefore: row.notBefore,
          expiresAt: row.expiresAt,
        }),
      ]);
    });
  }

  hold(id: string): Promise<HeldRow | undefined> {
    const r = this.get.get(id);
    return Promise.resolve(r === undefined ? undefined : heldFromSql(r));
  }

  holds(filter: HoldListFilter): Promise<HeldRow[]> {
    const where: string[] = [];
    const params: (string | number)[] = [];
    if (filter.state !== undefined) {
      where.push("state = ?");
      params.push(filter.state);
    }
    if (filter.keyId !== undefined) {
      where.push("key_id = ?");
      params.push(filter.keyId);
    }
    params.push(filter.limit);
    const sql = `SELECT * FROM held_operations ${where.length === 0 ? "" : `WHERE ${where.join(" AND ")}`} ORDER BY created_at DESC, id LIMIT ?`;
    return Promise.resolve(this.db.prepare<(string | number)[], HeldSql>(sql).all(...params).map(heldFromSql));
  }

  approvals(id: string): Promise<ApprovalRow[]> {
    return Promise.resolve(this.db.prepare<[string], ApprovalSql>("SELECT * FROM held_approvals WHERE operation_id = ? ORDER BY at, approver").all(id).map(approvalFromSql));
  }

  /** Why a compare-and-swap matched nothing. */
  private whyNot(id: string): HoldResult {
    const current = this.get.get(id);
    return current === undefined ? { ok: false, reason: "not-found" } : { ok: false, reason: "state", current: current.state as HoldState };
  }

  decide(
    id: string,
    d: { readonly approver: string; readonly publicKey: string; readonly decision: "approve" | "reject"; readonly signature: string; readonly at: number; readonly reason?: string | null },
    rejectCancels: boolean,
  ): Promise<DecisionResult> {
    return this.tx((): DecisionResult => {
      const row = this.get.get(id);
      if (row === undefined) return { ok: false, reason: "not-found" };
      if (row.state !== "pending") return { ok: false, reason: "state", current: row.state as HoldState };
      if (row.expires_at <= d.at) return { ok: false, reason: "expired" };
      const approver = this.db.prepare<[string], ApproverSql>("SELECT * FROM approvers WHERE name = ?").get(d.approver);
      if (approver?.public_key !== d.publicKey) return { ok: false, reason: "approver-unknown" };
      const decided = this.db.prepare<[string, string], { n: number }>("SELECT COUNT(*) AS n FROM held_approvals WHERE operation_id = ? AND approver = ?").get(id, d.approver);
      if ((decided?.n ?? 0) > 0) return { ok: false, reason: "duplicate" };
      const tiers = JSON.parse(row.tiers) as ApprovalTier[];
      const groups = new Set(JSON.parse(approver.groups) as string[]);
      let tier: number | null = null;
      let approved = 0;
      if (d.decision === "approve") {
        const have = tiers.map(() => 0);
        for (const a of this.db.prepare<[string], { tier: number | null }>("SELECT tier FROM held_approvals WHERE operation_id = ? AND decision = 'approve'").all(id)) {
          if (a.tier !== null && a.tier < have.length) have[a.tier] = (have[a.tier] ?? 0) + 1;
        }
        // The first tier of the approver's groups that still needs an approval: one person counts
        // once, toward one tier, so two tiers always take distinct people.
        const index = tiers.findIndex((t, i) => groups.has(t.group) && (have[i] ?? 0) < t.count);
        if (index < 0) return { ok: false, reason: "not-in-group" };
        tier = index;
        have[index] = (have[index] ?? 0) + 1;
        approved = tiers.every((t, i) => (have[i] ?? 0) >= t.count) ? 1 : 0;
      } else if (!tiers.some((t) => groups.has(t.group))) {
        return { ok: false, reason: "not-in-group" };
      }
      this.db
        .prepare("INSERT INTO held_approvals (operation_id, approver, decision, tier, signature, at) VALUES (?, ?, ?, ?, ?, ?)")
        .run(id, d.approver, d.decision, tier, d.signature, d.at);
      const actor = `approver:${d.approver}`;
      const entries: AuditFields[] = [];
      let updated: HeldSql | undefined;
      if (d.decision === "reject") {
        const why = d.reason ?? null;
        entries.push(this.entry("approval.reject", row, d.at, actor, { approver: d.approver, reason: why }));
        if (rejectCancels) {
          updated = this.db
            .prepare<[number, string, string], HeldSql>("UPDATE held_operations SET state = 'rejected', updated_at = ?, reason = ? WHERE id = ? AND state = 'pending' RETURNING *")
            .get(d.at, `rejected by ${d.approver}${why === null ? "" : `: ${why}`}`, id);
          entries.push(this.entry("operation.reject", row, d.at, actor, { approver: d.approver, reason: why }));
        }
      } else {
        entries.push(this.entry("approval.sign", row, d.at, actor, { approver: d.approver, group: tiers[tier ?? 0]?.group }));
        const ready = approved === 1 && (row.not_before === null || row.not_before <= d.at);
        updated = this.db
          .prepare<[number, string, number, string], HeldSql>("UPDATE held_operations SET approved = ?, state = ?, updated_at = ? WHERE id = ? AND state = 'pending' RETURNING *")
          .get(approved, ready ? "ready" : "pending", d.at, id);
        if (ready) entries.push(this.entry("operation.ready", row, d.at, actor, {}));
      }
      this.audit.appendWithin(entries);
      return { ok: true, row: heldFromSql(updated ?? row) };
    });
  }

  cancel(id: string, keyId: string | null, at: number, actor: string, reason: string): Promise<HoldResult> {
    return this.tx((): HoldResult => {
      const row = this.db
        .prepare<[number, string, string, string | null, string | null], HeldSql>(
          `UPDATE held_operations SET state = 'cancelled', updated_at = ?, reason = ?
           WHERE id = ? AND state IN ${CANCELLABLE} AND (? IS NULL OR key_id = ?) RETURNING *`,
        )
        .get(at, reason, id, keyId, keyId);
      if (row === undefined) {
        const why = this.whyNot(id);
        // Another key's operation is not found, as for no operation at all.
        if (!why.ok && keyId !== null && this.get.get(id)?.key_id !== keyId) return { ok: false, reason: "not-found" };
        return why;
      }
      this.audit.appendWithin([this.entry("operation.cancel", row, at, actor, { reason })]);
      return { ok: true, row: heldFromSql(row) };
    });
  }

  /**
   * Cancels every pending or ready operation of a key that is being revoked or suspended. Called
   * by the store inside the key change's own transaction (store.ts `transition`), so no operation
   * of a key can be claimed for release once the key change has committed.
   */
  cancelForKey(keyId: string, status: string, at: number, actor: string): void {
    const rows = this.db
      .prepare<[number, string, string], HeldSql>(
        `UPDATE held_operations SET state = 'cancelled', updated_at = ?, reason = ? WHERE key_id = ? AND state IN ${CANCELLABLE} RETURNING *`,
      )
      .all(at, `key ${status}`, keyId);
    if (rows.length > 0) this.audit.appendWithin(rows.map((r) => this.entry("operation.cancel", r, at, actor, { reason: `key ${status}` })));
  }

  advance(now: number, leaseMs: number): Promise<Advanced> {
    // The release loop calls this twice a second, nearly always with nothing to do: a read first,
    // so that the event loop never waits for the write lock (another connection's, such as the
    // durable writer's, may hold it for a group commit) when nothing would be written.
    try {
      if (this.due.get(now, now, now - leaseMs) === undefined) return Promise.resolve({ ready: [], expired: [], unknown: [] });
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    return this.tx((): Advanced => {
      const expired = this.db
        .prepare<[number, number], HeldSql>(`UPDATE held_operations SET state = 'expired', updated_at = ? WHERE state IN ${CANCELLABLE} AND expires_at <= ? RETURNING *`)
        .all(now, now);
      const ready = this.db
        .prepare<[number, number], HeldSql>(
          "UPDATE held_operations SET state = 'ready', updated_at = ? WHERE state = 'pending' AND approved = 1 AND (not_before IS NULL OR not_before <= ?) RETURNING *",
        )
        .all(now, now);
      const unknown = this.db
        .prepare<[number, number], HeldSql>("UPDATE held_operations SET state = 'unknown', updated_at = ? WHERE state = 'releasing' AND claimed_at <= ? RETURNING *")
        .all(now, now - leaseMs);
      const entries = [
        ...expired.map((r) => this.entry("operation.expire", r, now, "gateway", {})),
        ...ready.map((r) => this.entry("operation.ready", r, now, "gateway", {})),
        ...unknown.map((r) => this.entry("operation.unknown", r, now, "gateway", { claimedBy: r.claimed_by, claimedAt: r.claimed_at })),
      ];
      if (entries.length > 0) this.audit.appendWithin(entries);
      return { ready: ready.map((r) => r.id), expired: expired.map((r) => r.id), unknown: unknown.map((r) => r.id) };
    });
  }

  readyIds(limit: number): Promise<string[]> {
    return Promise.resolve(this.db.prepare<[number], { id: string }>("SELECT id FROM held_operations WHERE state = 'ready' ORDER BY created_at LIMIT ?").all(limit).map((r) => r.id));
  }

  claim(id: string, by: string, now: number): Promise<HoldResult> {
    return this.tx((): HoldResult => {
      const row = this.get.get(id);
      if (row === undefined) return { ok: false, reason: "not-found" };
      if (row.state !== "ready") return { ok: false, reason: "state", current: row.state as HoldState };
      if (row.expires_at <= now) {
        this.db.prepare("UPDATE held_operations SET state = 'expired', updated_at = ? WHERE id = ? AND state = 'ready'").run(now, id);
        this.audit.appendWithin([this.entry("operation.expire", row, now, "gateway", {})]);
        return { ok: false, reason: "state", current: "expired" };
      }
      if (row.key_id !== null) {
        // The initiating key must still be active, checked in the claim's own transaction: a key
        // revoked or suspended before this commits has cancelled the operation already, and one
        // that expired since the hold cancels it here.
        const key = this.db.prepare<[string], { status: string; expires_at: number | null }>("SELECT status, expires_at FROM keys WHERE id = ?").get(row.key_id);
        const active = key !== undefined && key.status === "active" && (key.expires_at === null || key.expires_at > now);
        if (!active) {
          const reason = key === undefined ? "key not found" : key.status === "active" ? "key expired" : `key ${key.status}`;
          this.db.prepare("UPDATE held_operations SET state = 'cancelled', updated_at = ?, reason = ? WHERE id = ? AND state = 'ready'").run(now, reason, id);
          this.audit.appendWithin([this.entry("operation.cancel", row, now, "gateway", { reason })]);
          return { ok: false, reason: "state", current: "cancelled" };
        }
      }
      const claimed = this.db
        .prepare<[string, number, number, string], HeldSql>("UPDATE held_operations SET state = 'releasing', claimed_by = ?, claimed_at = ?, updated_at = ? WHERE id = ? AND state = 'ready' RETURNING *")
        .get(by, now, now, id);
      if (claimed === undefined) return this.whyNot(id);
      return { ok: true, row: heldFromSql(claimed) };
    });
  }

  finish(id: string, by: string, now: number, status: number, outcome: Buffer): Promise<boolean> {
    return this.tx(() => {
      this.checkKekFloor([outcome], `held operation ${id}'s outcome`);
      const row = this.db
        .prepare<[number, Buffer, number, string, string], HeldSql>(
          "UPDATE held_operations SET state = 'released', outcome_status = ?, outcome = ?, updated_at = ? WHERE id = ? AND claimed_by = ? AND state IN ('releasing', 'unknown') RETURNING *",
        )
        .get(status, outcome, now, id, by);
      if (row === undefined) return false;
      this.audit.appendWithin([this.entry("operation.release", row, now, "gateway", { status, claimedBy: by })]);
      return true;
    });
  }

  unsettled(limit: number): Promise<string[]> {
    return Promise.resolve(
      this.db
        .prepare<[number], { id: string }>("SELECT id FROM held_operations WHERE settled = 0 AND state IN ('cancelled', 'rejected', 'expired') ORDER BY updated_at LIMIT ?")
        .all(limit)
        .map((r) => r.id),
    );
  }

  settle(id: string): Promise<boolean> {
    return this.tx(() => this.db.prepare("UPDATE held_operations SET settled = 1 WHERE id = ? AND settled = 0 AND state IN ('cancelled', 'rejected', 'expired')").run(id).changes === 1);
  }

  // --- custody: envelopes for KEK rotation (store.ts EnvelopeStore delegates here) ------------------

  heldEnvelopes(after: string, limit: number): Promise<HeldEnvelopes[]> {
    const rows = this.db
      .prepare<[string, number], { id: string; held: Buffer; outcome: Buffer | null }>("SELECT id, held, outcome FROM held_operations WHERE id > ? ORDER BY id LIMIT ?")
      .all(after, limit);
    return Promise.resolve(rows.map((r) => ({ id: r.id, held: r.held, outcome: r.outcome })));
  }

  /** Compare-and-swap per envelope, all in one transaction that checks the floor; no audit entry (the plaintext does not change). */
  replaceHeldEnvelopes(replacements: readonly EnvelopeReplacement<HeldEnvelopeColumn>[]): Promise<number> {
    if (replacements.length === 0) return Promise.resolve(0);
    const held = this.db.prepare("UPDATE held_operations SET held = ? WHERE id = ? AND held = ?");
    const outcome = this.db.prepare("UPDATE held_operations SET outcome = ? WHERE id = ? AND outcome = ?");
    return this.tx(() => {
      this.checkKekFloor(
        replacements.map((r) => r.next),
        "a rewrap batch of held operations",
      );
      let n = 0;
      for (const r of replacements) n += (r.column === "held" ? held : outcome).run(r.next, r.id, r.expected).changes;
      return n;
    });
  }
}
