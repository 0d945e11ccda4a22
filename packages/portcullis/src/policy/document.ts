import type { Decimal } from "../contract/operations.js";
import { POLICY_KINDS, type ApprovalTier, type PolicyAction, type PolicyKind, isPolicyKind } from "../contract/policy.js";
import { isJsonObject, type JsonObject, record } from "../contract/json.js";
import { type Result, invalid, ok } from "../errors/result.js";
import { CidrError, parseCidr } from "../net/ip.js";
import { parseDecimal } from "../operations/decimal.js";

/**
 * The policy document (docs/policy.md): what `portcullis policy apply FILE` reads and
 * `PUT /portcullis/v1/policy` takes. An ordered list of rules, first match wins, the last one a
 * catch-all (an empty `match`) so that every operation meets a rule the author wrote.
 *
 *   { "description"?: "…",
 *     "rules": [ { "name": "…", "match": { … }, "action": { … } }, … ] }
 *
 * Parsed strictly: unknown members are refused, and every problem is reported with its path
 * (`rules[3].match.amount.over`), all of them at once. Durations are "90s", "10m", "24h", "7d", "2w";
 * amounts are plain decimal strings (as venues send them; a JSON number is refused, since most
 * parsers turn it into a float); kinds come from `POLICY_KINDS`; source blocks are CIDRs.
 */

/** At most this many rules (the engine is linear in them; a policy is written by people). */
export const MAX_RULES = 1000;
/** The longest velocity window and delay: the ledger keeps 30 days. */
export const MAX_WINDOW_MS = 30 * 86_400_000;
const MAX_AGE_MS = 365 * 86_400_000;
const MAX_TIERS = 2;
const MAX_APPROVALS = 20;
const MAX_LIST = 1000;

export type Per = "key" | "account";

export interface AmountCondition {
  /** Matches when the operation's amount is strictly over this. */
  readonly over: Decimal;
  readonly text: string;
  /** "reference": the value in the reference currency (amount × the asset's reference value); "asset": the asset's own units. */
  readonly unit: "reference" | "asset";
}

export interface VelocityCondition {
  readonly windowMs: number;
  readonly window: string;
  readonly per: Per;
  /** Matches when what was recorded in the window plus this operation is strictly over this. */
  readonly over: Decimal;
  readonly text: string;
}

export type DestinationCondition =
  | { readonly type: "new" }
  | { readonly type: "known" }
  | { readonly type: "youngerThan"; readonly ms: number; readonly text: string };

export interface SourceCondition {
  /** true: the client address is in one of the blocks; false: in none of them. */
  readonly inside: boolean;
  readonly blocks: readonly string[];
}

export interface RuleMatch {
  readonly kind?: readonly PolicyKind[];
  readonly account?: readonly string[];
  readonly key?: readonly string[];
  readonly asset?: readonly string[];
  readonly amount?: AmountCondition;
  readonly velocity?: VelocityCondition;
  readonly destination?: DestinationCondition;
  readonly source?: SourceCondition;
}

export interface PolicyRule {
  readonly name: string;
  readonly match: RuleMatch;
  readonly action: PolicyAction;
}

export interface PolicyDocument {
  readonly description: string | null;
  readonly rules: readonly PolicyRule[];
}

const DURATION_RE = /^(\d{1,10})(ms|s|m|h|d|w)$/;
const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** "90s", "10m", "24h", "7d", "2w" (or "250ms") in milliseconds; null when it is not one. */
export function parseDurationText(text: string): number | null {
  const m = DURATION_RE.exec(text);
  if (m === null) return null;
  const ms = Number(m[1]) * (UNIT_MS[m[2] ?? ""] ?? 0);
  return Number.isSafeInteger(ms) ? ms : null;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9 ._:/-]{0,63}$/;
const GROUP_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const ASSET_RE = /^[A-Za-z0-9._\-/:]{1,32}$/;
const ID_RE = /^[\x21-\x7e]{1,128}$/;

const TOP = new Set(["description", "rules"]);
const RULE = new Set(["name", "match", "action"]);
const MATCH = new Set(["kind", "account", "key", "asset", "amount", "velocity", "destination", "source"]);
const AMOUNT = new Set(["over", "unit"]);
const VELOCITY = new Set(["window", "per", "over"]);
const DESTINATION = new Set(["youngerThan"]);
const SOURCE = new Set(["in", "notIn"]);
const ACTION_MEMBERS: Readonly<Record<string, ReadonlySet<string>>> = {
  allow: new Set(["type"]),
  block: new Set(["type", "reason"]),
  hold: new Set(["type", "approvals", "delay"]),
};
const TIER = new Set(["group", "count"]);

/** Collects problems by path; the document is refused when there is any. */
class Problems {
  readonly fields = record<string>();
  add(path: string, problem: string): void {
    this.fields[path] ??= problem;
  }
  get none(): boolean {
    return Object.keys(this.fields).length === 0;
  }
}

function unknown(o: JsonObject, known: ReadonlySet<string>, path: string, p: Problems): void {
  for (const name of Object.keys(o)) {
    if (!known.has(name)) p.add(`${path}.${name}`, `unknown member (known: ${[...known].join(", ")})`);
  }
}

function decimal(v: unknown, path: string, p: Problems): { value: Decimal; text: string } | null {
  const parsed = typeof v === "string" ? parseDecimal(v) : null;
  if (parsed === null || typeof v !== "string") {
    p.add(path, typeof v === "number" ? 'an amount is a decimal string such as "1000" (a JSON number is refused)' : 'a plain decimal string such as "1000" or "0.5"');
    return null;
  }
  return { value: parsed, text: v };
}

function duration(v: unknown, path: string, p: Problems, min: number, max: number, range: string): { ms: number; text: string } | null {
  const ms = typeof v === "string" ? parseDurationText(v) : null;
  if (ms === null || typeof v !== "string") {
    p.add(path, 'a duration such as "90s", "10m", "24h", "7d" or "2w"');
    return null;
  }
  if (ms < min || ms > max) {
    p.add(path, `must be ${range}`);
    return null;
  }
  return { ms, text: v };
}

/** A non-empty list of distinct strings, each checked by `each` (which may normalize it). */
function list<T extends string>(v: unknown, path: string, p: Problems, each: (s: string) => T | null, what: string): T[] | undefined {
  if (!Array.isArray(v) || v.length === 0 || v.length > MAX_LIST) {
    p.add(path, `a non-empty list (at most ${MAX_LIST}) of ${what}`);
    return undefined;
  }
  const out: T[] = [];
  const seen = new Set<string>();
  v.forEach((item: unknown, i) => {
    const value = typeof item === "string" ? each(item) : null;
    if (value === null) p.add(`${path}[${i}]`, `not ${what}`);
    else if (seen.has(value)) p.add(`${path}[${i}]`, `${value} is listed twice`);
    else {
      seen.add(value);
      out.push(value);
    }
  });
  return out;
}

function parseMatch(v: unknown, path: string, p: Problems): RuleMatch {
  if (v === undefined) return {};
  if (!isJsonObject(v)) {
    p.add(path, "an object of conditions ({} matches everything)");
    return {};
  }
  unknown(v, MATCH, path, p);
  const m: { -readonly [K in keyof RuleMatch]: RuleMatch[K] } = {};
  if (v.kind !== undefined) {
    const kinds = list(v.kind, `${path}.kind`, p, (s) => (isPolicyKind(s) ? s : null), `a kind (${POLICY_KINDS.join(", ")})`);
    if (kinds !== undefined) m.kind = kinds;
  }
  for (const name of ["account", "key"] as const) {
    if (v[name] === undefined) continue;
    const ids = list(v[name], `${path}.${name}`, p, (s) => (ID_RE.test(s) ? s : null), `${name === "key" ? "a key" : "an account"} id`);
    if (ids !== undefined) m[name] = ids;
  }
  if (v.asset !== undefined) {
    const assets = list(v.asset, `${path}.asset`, p, (s) => (ASSET_RE.test(s) ? s.toUpperCase() : null), "an asset (letters, digits and ._-/:)");
    if (assets !== undefined) m.asset = assets;
  }
  if (v.amount !== undefined) {
    const a = v.amount;
    const at = `${path}.amount`;
    if (!isJsonObject(a)) p.add(at, '{ "over": "1000" } (optionally "unit": "reference" or "asset")');
    else {
      unknown(a, AMOUNT, at, p);
      const over = decimal(a.over, `${at}.over`, p);
      const unit = a.unit ?? "reference";
      if (unit !== "reference" && unit !== "asset") p.add(`${at}.unit`, '"reference" (the default: value in the reference currency) or "asset" (the asset\'s own units)');
      else if (unit === "asset" && v.asset === undefined) p.add(`${at}.unit`, 'an amount in "asset" units needs the rule to name its asset(s) (match.asset)');
      if (over !== null && (unit === "reference" || unit === "asset")) m.amount = { over: over.value, text: over.text, unit };
    }
  }
  if (v.velocity !== undefined) {
    const a = v.velocity;
    const at = `${path}.velocity`;
    if (!isJsonObject(a)) p.add(at, '{ "window": "24h", "per": "key" | "account", "over": "5000" }');
    else {
      unknown(a, VELOCITY, at, p);
      const window = duration(a.window, `${at}.window`, p, 1000, MAX_WINDOW_MS, "from 1s to 30d");
      const per = a.per;
      if (per !== "key" && per !== "account") p.add(`${at}.per`, '"key" or "account"');
      const over = decimal(a.over, `${at}.over`, p);
      if (window !== null && over !== null && (per === "key" || per === "account")) m.velocity = { windowMs: window.ms, window: window.text, per, over: over.value, text: over.text };
    }
  }
  if (v.destination !== undefined) {
    const d = v.destination;
    const at = `${path}.destination`;
    if (d === "new" || d === "known") m.destination = { type: d };
    else if (isJsonObject(d)) {
      unknown(d, DESTINATION, at, p);
      const age = duration(d.youngerThan, `${at}.youngerThan`, p, 1000, MAX_AGE_MS, "from 1s to 365d");
      if (age !== null) m.destination = { type: "youngerThan", ms: age.ms, text: age.text };
    } else p.add(at, '"new", "known" or { "youngerThan": "7d" }');
  }
  if (v.source !== undefined) {
    const s = v.source;
    const at = `${path}.source`;
    const cidr = (text: string): string | null => {
      try {
        return parseCidr(text).canonical;
      } catch (err) {
        if (err instanceof CidrError) return null;
        throw err;
      }
    };
    if (Array.isArray(s)) {
      const blocks = list(s, at, p, cidr, "an address or CIDR block");
      if (blocks !== undefined) m.source = { inside: true, blocks };
    } else if (isJsonObject(s) && Object.keys(s).length === 1) {
      unknown(s, SOURCE, at, p);
      const inside = s.in !== undefined;
      const blocks = list(inside ? s.in : s.notIn, `${at}.${inside ? "in" : "notIn"}`, p, cidr, "an address or CIDR block");
      if (blocks !== undefined) m.source = { inside, blocks };
    } else p.add(at, '["10.0.0.0/8", …], { "in": [...] } or { "notIn": [...] }');
  }
  return m;
}

function parseAction(v: unknown, path: string, p: Problems): PolicyAction | null {
  if (!isJsonObject(v) || typeof v.type !== "string" || !(v.type in ACTION_MEMBERS)) {
    p.add(isJsonObject(v) ? `${path}.type` : path, '{ "type": "allow" }, { "type": "block", "reason"? } or { "type": "hold", "approvals"?, "delay"? }');
    return null;
  }
  const type = v.type;
  unknown(v, ACTION_MEMBERS[type] ?? new Set(), path, p);
  if (type === "allow") return { type };
  if (type === "block") {
    if (v.reason !== undefined && (typeof v.reason !== "string" || v.reason.length === 0 || v.reason.length > 200)) {
      p.add(`${path}.reason`, "a string of 1 to 200 characters");
      return null;
    }
    return { type, reason: typeof v.reason === "string" ? v.reason : null };
  }
  const approvals: ApprovalTier[] = [];
  if (v.approvals !== undefined) {
    const a = v.approvals;
    if (!Array.isArray(a) || a.length === 0 || a.length > MAX_TIERS) p.add(`${path}.approvals`, `one or two tiers: [{ "group": "treasury", "count": 2 }]`);
    else {
      a.forEach((tier: unknown, i) => {
        const at = `${path}.approvals[${i}]`;
        if (!isJsonObject(tier)) {
          p.add(at, '{ "group": "treasury", "count": 2 }');
          return;
        }
        unknown(tier, TIER, at, p);
        const group = tier.group;
        const count = tier.count;
        if (typeof group !== "string" || !GROUP_RE.test(group)) p.add(`${at}.group`, "a group name: lower-case letters, digits and ._- (at most 64)");
        else if (approvals.some((t) => t.group === group)) p.add(`${at}.group`, `group ${group} is already a tier: two tiers name two groups`);
        if (typeof count !== "number" || !Number.isInteger(count) || count < 1 || count > MAX_APPROVALS) p.add(`${at}.count`, `an integer from 1 to ${MAX_APPROVALS}`);
        else if (typeof group === "string" && GROUP_RE.test(group)) approvals.push({ group, count });
      });
    }
  }
  let delayMs = 0;
  if (v.delay !== undefined) delayMs = duration(v.delay, `${path}.delay`, p, 0, MAX_WINDOW_MS, "from 0s to 30d")?.ms ?? 0;
  if (v.approvals === undefined && delayMs === 0) {
    p.add(path, "a hold waits for approvals, a delay, or both: give approvals, a delay, or both");
    return null;
  }
  return { type: "hold", approvals, delayMs };
}

function isEmptyMatch(m: RuleMatch): boolean {
  return Object.keys(m).length === 0;
}

/**
 * Parses a policy document from parsed JSON (parse it with `parseJson`: objects without a
 * prototype). Every problem is in `fields`, by path; the message lists them.
 */
export function parsePolicyDocument(raw: unknown): Result<PolicyDocument> {
  const p = new Problems();
  if (!isJsonObject(raw)) return invalid('a policy document is a JSON object: { "rules": [ … ] }');
  unknown(raw, TOP, "policy", p);
  let description: string | null = null;
  if (raw.description !== undefined) {
    if (typeof raw.description !== "string" || raw.description.length > 1000) p.add("description", "a string of at most 1000 characters");
    else description = raw.description;
  }
  const rules: PolicyRule[] = [];
  const rawRules = raw.rules;
  if (!Array.isArray(rawRules) || rawRules.length === 0 || rawRules.length > MAX_RULES) {
    p.add("rules", `a non-empty list of at most ${MAX_RULES} rules, the last a catch-all (an empty match)`);
  } else {
    const names = new Set<string>();
    rawRules.forEach((r: unknown, i) => {
      const path = `rules[${i}]`;
      if (!isJsonObject(r)) {
        p.add(path, '{ "name": "…", "match": { … }, "action": { … } }');
        return;
      }
      unknown(r, RULE, path, p);
      const name = r.name;
      if (typeof name !== "string" || !NAME_RE.test(name)) p.add(`${path}.name`, "a name of 1 to 64 letters, digits, spaces and ._:/- (starting with a letter or digit)");
      else if (names.has(name)) p.add(`${path}.name`, `rule name ${name} is used twice`);
      else names.add(name);
      const match = parseMatch(r.match, `${path}.match`, p);
      const action = parseAction(r.action, `${path}.action`, p);
      if (typeof name === "string" && action !== null) rules.push({ name, match, action });
      const last = i === rawRules.length - 1;
      const catchAll = r.match === undefined || (isJsonObject(r.match) && Object.keys(r.match).length === 0);
      if (catchAll && !last) p.add(`${path}.match`, "a catch-all (empty match) before the last rule: the rules after it would never be reached");
      if (last && !catchAll) p.add(`${path}.match`, "the last rule must be a catch-all (an empty match), so that every operation meets a rule you wrote");
    });
  }
  if (!p.none) {
    const message = Object.entries(p.fields)
      .slice(0, 20)
      .map(([path, problem]) => `${path}: ${problem}`)
      .join("; ");
    return invalid(`the policy document is not valid: ${message}`, { ...p.fields });
  }
  const last = rules[rules.length - 1];
  if (last === undefined || !isEmptyMatch(last.match)) return invalid("the last rule must be a catch-all");
  return ok({ description, rules });
}
