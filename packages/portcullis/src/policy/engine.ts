import { type Decimal, decimalText } from "../contract/operations.js";
import { POLICY_KINDS, type GovernedOperation, type PolicyAction, type PolicyDecision, type PolicyExplanation, type PolicyKind, type PolicySubject, type PolicyTraceStep } from "../contract/policy.js";
import type { ReferencePrices } from "../contract/prices.js";
import { CidrSet, type ParsedIp, parseIp } from "../net/ip.js";
import { addDecimal, compareDecimal, multiplyDecimal, normalizeDecimal } from "../operations/decimal.js";
import type { Per, PolicyDocument, PolicyRule, RuleMatch } from "./document.js";

/**
 * The policy engine: a parsed document compiled once per version into per-kind lists of rules,
 * each rule a list of small condition closures ordered cheapest first (sets, then CIDRs, then
 * decimal arithmetic, then the address book fact, velocity last: it needs the ledger). A decision
 * walks the rules that can match the operation's kind and returns the first match's prebuilt,
 * frozen decision: no allocation but one small context object.
 *
 * Pure: what the engine needs from outside (the destination's address-book entry, the velocity
 * sums) arrives as `PolicyFacts`, read by the service (governance/policy-service.ts), which also
 * records the velocity ledger in the same transaction as the decision.
 *
 * Fail closed (docs/policy.md): an amount whose value cannot be known (no reference price) is over
 * every "over"; so is a velocity window holding such an amount; a withdrawal whose address is not
 * in the book, or still cooling down, is "new" and younger than any age; an operation without a
 * client address is outside every source block.
 */

/** The destination of a withdrawal, as the account's address book knows it. */
export interface DestinationFact {
  readonly addedAt: number;
  readonly usableFrom: number;
}

/** A velocity window the policy reads: per key or per account, over `windowMs` up to the decision. */
export interface VelocityWindow {
  readonly per: Per;
  readonly windowMs: number;
}

export interface PolicyFacts {
  /** For a withdrawal: the best entry of the account's book for its destination, or null (none). */
  readonly destination: DestinationFact | null;
  /**
   * By `CompiledPolicy.windows` index: the values recorded in the window for the operation's kind
   * (by its key or its account), summed; null when one of them is unknown. Absent when not read:
   * a velocity condition then fails closed (matches).
   */
  readonly sums?: readonly (Decimal | null)[];
}

/** The operation's value: a decimal, null when it has an amount whose value is unknown, undefined when it has none. */
export type OperationValue = Decimal | null | undefined;

class EvalContext {
  private valueDone = false;
  private valueCache: OperationValue = undefined;
  private ipDone = false;
  private ipCache: ParsedIp | null = null;
  constructor(
    readonly subject: PolicySubject,
    readonly op: GovernedOperation,
    readonly facts: PolicyFacts,
    private readonly prices: ReferencePrices,
  ) {}

  /** The client address, parsed once per decision (null: none, or not an address). */
  get ip(): ParsedIp | null {
    if (!this.ipDone) {
      this.ipCache = this.subject.client === null ? null : parseIp(this.subject.client);
      this.ipDone = true;
    }
    return this.ipCache;
  }

  get value(): OperationValue {
    if (!this.valueDone) {
      this.valueCache = operationValue(this.op, this.prices);
      this.valueDone = true;
    }
    return this.valueCache;
  }
}

interface Condition {
  test(c: EvalContext): boolean;
  /** Why it holds or not, in words (dry runs only). */
  explain(c: EvalContext, holds: boolean): string;
}

interface CompiledRule {
  readonly name: string;
  readonly conditions: readonly Condition[];
  /** The kind condition, kept for the trace; decisions skip it (rules are listed by kind). */
  readonly kindCondition: Condition | null;
  readonly decision: PolicyDecision;
}

const ZERO: Decimal = Object.freeze({ coefficient: 0n, scale: 0 });

function text(d: Decimal): string {
  return decimalText(normalizeDecimal(d));
}

function listed(items: readonly string[]): string {
  return items.length <= 8 ? `[${items.join(", ")}]` : `[${items.slice(0, 8).join(", ")}, … ${items.length - 8} more]`;
}

/** "2 h", "3 d", "45 s": the largest whole unit (for traces). */
export function humanDuration(ms: number): string {
  const abs = Math.max(0, ms);
  for (const [unit, size] of [["d", 86_400_000], ["h", 3_600_000], ["min", 60_000], ["s", 1000]] as const) {
    if (abs >= size) return `${Math.floor(abs / size)} ${unit}`;
  }
  return `${abs} ms`;
}

function assetOf(op: GovernedOperation): string | null {
  switch (op.kind) {
    case "withdraw":
    case "transfer":
    case "address.add":
      return op.asset;
    default:
      return null;
  }
}

/** The account a rule's `account` condition looks at: the address book's for an address addition, else the initiator's. */
function accountOf(subject: PolicySubject): string | null {
  return subject.operation.kind === "address.add" ? subject.operation.account : subject.account;
}

/**
 * The quote asset of an order's symbol: the longest suffix (of the symbol without separators)
 * that has a reference value (BTCUSDT → USDT). A heuristic: a symbol whose quote is not priced
 * gives an unknown value, which fails closed.
 */
function quoteValue(symbol: string, prices: ReferencePrices): Decimal | undefined {
  const plain = symbol.replace(/[-_/:.]/g, "");
  for (let i = 1; i <= plain.length - 2; i++) {
    const v = prices.asset(plain.slice(i));
    if (v !== undefined) return v;
  }
  return undefined;
}

/**
 * The value of an operation in the reference currency: a withdrawal's or a transfer's amount × its
 * asset's reference value; an order's notional × its quote's (a market order by base quantity:
 * quantity × the symbol's reference price first). Null when it has an amount whose value is not
 * known; undefined for kinds without an amount.
 */
export function operationValue(op: GovernedOperation, prices: ReferencePrices): OperationValue {
  switch (op.kind) {
    case "withdraw":
    case "transfer": {
      const unit = prices.asset(op.asset);
      return unit === undefined ? null : multiplyDecimal(op.amount, unit);
    }
    case "order.place": {
      let notional = op.notional;
      if (notional === null && op.quantity !== null) {
        const price = prices.symbol(op.symbol);
        if (price !== undefined) notional = multiplyDecimal(op.quantity, price);
      }
      if (notional === null) return null;
      const quote = quoteValue(op.symbol, prices);
      return quote === undefined ? null : multiplyDecimal(notional, quote);
    }
    default:
      return undefined;
  }
}

/** The amount in the asset's own units (an order: its base quantity). */
function assetAmount(op: GovernedOperation): OperationValue {
  switch (op.kind) {
    case "withdraw":
    case "transfer":
      return op.amount;
    case "order.place":
      return op.quantity;
    default:
      return undefined;
  }
}

function amountWords(op: GovernedOperation): string {
  switch (op.kind) {
    case "withdraw":
    case "transfer":
      return `${text(op.amount)} ${op.asset}`;
    case "order.place":
      return `order ${op.symbol}${op.notional === null ? "" : ` notional ${text(op.notional)}`}`;
    default:
      return op.kind;
  }
}

function compileMatch(m: RuleMatch, windowIndex: (w: VelocityWindow) => number): { kind: Condition | null; rest: Condition[] } {
  const rest: Condition[] = [];
  let kind: Condition | null = null;
  if (m.kind !== undefined) {
    const set: ReadonlySet<string> = new Set(m.kind);
    const shown = listed(m.kind);
    kind = {
      test: (c) => set.has(c.op.kind),
      explain: (c, holds) => `kind ${c.op.kind} is ${holds ? "" : "not "}in ${shown}`,
    };
  }
  if (m.account !== undefined) {
    const set: ReadonlySet<string> = new Set(m.account);
    const shown = listed(m.account);
    rest.push({
      test: (c) => {
        const a = accountOf(c.subject);
        return a !== null && set.has(a);
      },
      explain: (c, holds) => {
        const a = accountOf(c.subject);
        if (a === null) return "no account (a change made on the data directory) is in no account list";
        const whose = c.op.kind === "address.add" ? " (the address book's)" : "";
        return `account ${a}${whose} is ${holds ? "" : "not "}in ${shown}`;
      },
    });
  }
  if (m.key !== undefined) {
    const set: ReadonlySet<string> = new Set(m.key);
    const shown = listed(m.key);
    rest.push({
      test: (c) => c.subject.keyId !== null && set.has(c.subject.keyId),
      explain: (c, holds) => (c.subject.keyId === null ? "no key (a change made on the data directory) is in no key list" : `key ${c.subject.keyId} is ${holds ? "" : "not "}in ${shown}`),
    });
  }
  if (m.asset !== undefined) {
    const set: ReadonlySet<string> = new Set(m.asset);
    const shown = listed(m.asset);
    rest.push({
      test: (c) => {
        const a = assetOf(c.op);
        return a !== null && set.has(a);
      },
      explain: (c, holds) => {
        const a = assetOf(c.op);
        return a === null ? `kind ${c.op.kind} has no asset` : `asset ${a} is ${holds ? "" : "not "}in ${shown}`;
      },
    });
  }
  if (m.source !== undefined) {
    const { inside, blocks } = m.source;
    const set = new CidrSet(blocks);
    const shown = listed(blocks);
    const isIn = (c: EvalContext): boolean | null => {
      const ip = c.ip;
      return ip === null ? null : set.has(ip);
    };
    rest.push({
      // No (readable) client address: outside every block, so "in" fails and "notIn" holds (fail closed).
      test: (c) => {
        const where = isIn(c);
        return inside ? where === true : where !== true;
      },
      explain: (c, holds) => {
        const where = isIn(c);
        if (where === null) return `no source address: taken as outside ${shown}${holds ? "" : " (this rule needs inside)"}`;
        return `source ${c.subject.client ?? ""} is ${where ? "" : "not "}in ${shown}${inside ? "" : " (the rule wants outside)"}`;
      },
    });
  }
  if (m.amount !== undefined) {
    const { over, unit } = m.amount;
    const shown = text(over);
    const amountOf = unit === "asset" ? (c: EvalContext): OperationValue => assetAmount(c.op) : (c: EvalContext): OperationValue => c.value;
    rest.push({
      test: (c) => {
        const v = amountOf(c);
        if (v === undefined) return false;
        return v === null || compareDecimal(v, over) > 0;
      },
      explain: (c, holds) => {
        const v = amountOf(c);
        if (v === undefined) return `kind ${c.op.kind} has no amount`;
        if (v === null) return `the value of ${amountWords(c.op)} is unknown (no reference price): taken as over ${shown} (fail closed)`;
        const what = unit === "asset" ? `amount ${amountWords(c.op)}` : `amount ${amountWords(c.op)}, worth ${text(v)} in the reference currency,`;
        return `${what} is ${holds ? "" : "not "}over ${shown}${unit === "asset" ? " (in the asset's units)" : ""}`;
      },
    });
  }
  if (m.destination !== undefined) {
    const d = m.destination;
    const known = (c: EvalContext): boolean => c.facts.destination !== null && c.facts.destination.usableFrom <= c.subject.at;
    rest.push({
      test: (c) => {
        if (c.op.kind !== "withdraw") return false;
        if (d.type === "known") return known(c);
        if (d.type === "new") return !known(c);
        const entry = c.facts.destination;
        return entry === null || c.subject.at - entry.addedAt < d.ms;
      },
      explain: (c, holds) => {
        if (c.op.kind !== "withdraw") return `kind ${c.op.kind} has no destination`;
        const entry = c.facts.destination;
        const where = c.op.address === null ? `saved address ${c.op.addressName ?? "?"} (no address sent: not looked up)` : `destination ${c.op.address}`;
        if (entry === null) return `${where} is not in the account's ${c.op.asset} address book: it is new${d.type === "known" ? ", not known" : d.type === "youngerThan" ? `, younger than ${d.text}` : ""}`;
        const age = humanDuration(c.subject.at - entry.addedAt);
        if (entry.usableFrom > c.subject.at) {
          const cooling = `${where} was added ${age} ago and is cooling down for ${humanDuration(entry.usableFrom - c.subject.at)} more: it is new`;
          return d.type === "youngerThan" ? `${cooling}, and ${holds ? "younger" : "not younger"} than ${d.text}` : `${cooling}${d.type === "known" ? ", not known" : ""}`;
        }
        if (d.type === "youngerThan") return `${where} added ${age} ago is ${holds ? "" : "not "}younger than ${d.text}`;
        return `${where} is in the address book (added ${age} ago, usable): it is known${d.type === "new" ? ", not new" : ""}`;
      },
    });
  }
  if (m.velocity !== undefined) {
    const v = m.velocity;
    const index = windowIndex({ per: v.per, windowMs: v.windowMs });
    const shown = text(v.over);
    const total = (c: EvalContext): { value: OperationValue; sum: Decimal | null | undefined } => {
      const value = c.value;
      if (value === undefined) return { value, sum: undefined };
      if (v.per === "key" && c.subject.keyId === null) return { value, sum: ZERO };
      if (v.per === "account" && c.subject.account === null) return { value, sum: ZERO };
      const sums = c.facts.sums;
      return { value, sum: sums === undefined ? null : (sums[index] ?? null) };
    };
    rest.push({
      test: (c) => {
        const t = total(c);
        if (t.value === undefined) return false;
        if (t.value === null || t.sum === null || t.sum === undefined) return true;
        return compareDecimal(addDecimal(t.sum, t.value), v.over) > 0;
      },
      explain: (c, holds) => {
        const t = total(c);
        if (t.value === undefined) return `kind ${c.op.kind} has no amount`;
        const by = v.per === "key" ? `key ${c.subject.keyId ?? "(none)"}` : `account ${c.subject.account ?? "(none)"}`;
        if (t.value === null) return `the value of ${amountWords(c.op)} is unknown (no reference price): velocity taken as over ${shown} (fail closed)`;
        if (t.sum === null || t.sum === undefined) return `the ${c.op.kind} value recorded for ${by} in the last ${v.window} is unknown (an amount without a reference price): taken as over ${shown} (fail closed)`;
        return `${text(t.sum)} recorded for ${by} in the last ${v.window} + ${text(t.value)} = ${text(addDecimal(t.sum, t.value))} is ${holds ? "" : "not "}over ${shown}`;
      },
    });
  }
  return { kind, rest };
}

function frozenAction(action: PolicyAction): PolicyAction {
  if (action.type === "hold") return Object.freeze({ type: "hold", approvals: Object.freeze(action.approvals.map((t) => Object.freeze({ ...t }))), delayMs: action.delayMs });
  return Object.freeze({ ...action });
}

/** The version in force, compiled: what `decide`, `explain` and `judges` run. */
export class CompiledPolicy {
  readonly version: number;
  readonly digest: string;
  readonly document: PolicyDocument;
  /** The velocity windows the rules read (distinct), indexed as `PolicyFacts.sums`. */
  readonly windows: readonly VelocityWindow[];
  /** Whether some rule looks at a withdrawal's destination (the service reads the book only then). */
  readonly usesDestination: boolean;
  private readonly prices: ReferencePrices;
  private readonly rules: readonly CompiledRule[];
  private readonly byKind: ReadonlyMap<string, readonly CompiledRule[]>;
  private readonly judged: ReadonlySet<string>;
  private readonly counted: ReadonlySet<string>;

  constructor(document: PolicyDocument, version: number, digest: string, prices: ReferencePrices) {
    this.document = document;
    this.version = version;
    this.digest = digest;
    this.prices = prices;
    const windows: VelocityWindow[] = [];
    const windowIndex = (w: VelocityWindow): number => {
      const i = windows.findIndex((x) => x.per === w.per && x.windowMs === w.windowMs);
      if (i >= 0) return i;
      windows.push(w);
      return windows.length - 1;
    };
    this.rules = document.rules.map((rule: PolicyRule): CompiledRule => {
      const { kind, rest } = compileMatch(rule.match, windowIndex);
      const decision: PolicyDecision = Object.freeze({ action: frozenAction(rule.action), rule: rule.name, version });
      return { name: rule.name, conditions: rest, kindCondition: kind, decision };
    });
    this.windows = windows;
    this.usesDestination = document.rules.some((r) => r.match.destination !== undefined);
    const byKind = new Map<string, CompiledRule[]>();
    const judged = new Set<string>();
    const counted = new Set<string>();
    for (const kind of POLICY_KINDS) {
      const applies = (i: number): boolean => {
        const kinds = document.rules[i]?.match.kind;
        return kinds === undefined || kinds.includes(kind);
      };
      const list = this.rules.filter((_, i) => applies(i));
      byKind.set(kind, list);
      if (list.some((r) => r.decision.action.type !== "allow")) judged.add(kind);
      if (document.rules.some((r, i) => applies(i) && r.match.velocity !== undefined)) counted.add(kind);
    }
    this.byKind = byKind;
    this.judged = judged;
    this.counted = counted;
  }

  /** Whether anything but "allow" can come of an operation of `kind`. */
  judges(kind: PolicyKind): boolean {
    return this.judged.has(kind);
  }

  /**
   * Whether some rule counts velocity for `kind`: only then is a decision of that kind made in the
   * velocity ledger's transaction and its value recorded (a durable write per decision: a policy
   * that judges orders without counting them keeps orders off the ledger).
   */
  countsVelocity(kind: PolicyKind): boolean {
    return this.counted.has(kind);
  }

  /** The operation's value in the reference currency (what the velocity ledger records). */
  valueOf(op: GovernedOperation): OperationValue {
    return operationValue(op, this.prices);
  }

  /** The first rule that matches decides. */
  decide(subject: PolicySubject, facts: PolicyFacts): PolicyDecision {
    const c = new EvalContext(subject, subject.operation, facts, this.prices);
    const rules = this.byKind.get(subject.operation.kind) ?? this.rules;
    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i] as CompiledRule;
      const conditions = rule.conditions;
      let all = true;
      for (let j = 0; j < conditions.length; j++) {
        if (!(conditions[j] as Condition).test(c)) {
          all = false;
          break;
        }
      }
      if (all) return rule.decision;
    }
    // Unreachable: the last rule is a catch-all (parsePolicyDocument refuses any other document).
    throw new Error("policy without a catch-all rule");
  }

  /** The decision with every rule up to the one that matched, each condition with its reason. */
  explain(subject: PolicySubject, facts: PolicyFacts): PolicyExplanation {
    const c = new EvalContext(subject, subject.operation, facts, this.prices);
    const trace: PolicyTraceStep[] = [];
    for (const rule of this.rules) {
      const because: string[] = [];
      let matched = true;
      const all = rule.kindCondition === null ? rule.conditions : [rule.kindCondition, ...rule.conditions];
      for (const condition of all) {
        const holds = condition.test(c);
        because.push(condition.explain(c, holds));
        if (!holds) matched = false;
      }
      if (all.length === 0) because.push("no conditions: the catch-all matches everything");
      trace.push({ rule: rule.name, matched, because });
      if (matched) return { decision: rule.decision, trace };
    }
    throw new Error("policy without a catch-all rule");
  }
}

/** Version 0, in force until a policy is applied: one catch-all allow. */
export const DEFAULT_POLICY: PolicyDocument = Object.freeze({
  description: "the built-in default: every operation is allowed until a policy is applied",
  rules: Object.freeze([Object.freeze({ name: "default allow", match: Object.freeze({}), action: Object.freeze({ type: "allow" }) })]),
});

/** The default document as JSON (what `policy show` prints for version 0). */
export const DEFAULT_POLICY_JSON = { description: DEFAULT_POLICY.description, rules: [{ name: "default allow", match: {}, action: { type: "allow" } }] };
