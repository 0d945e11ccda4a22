import { type Result, invalid, ok } from "../errors/result.js";
import { ANOMALY_ACTIONS, type AnomalyAction, type StepUpSettings, isAnomalyAction } from "../contract/behaviour.js";
import { parseDuration } from "../keys/input.js";
import { formatDecimal, parseDecimal } from "../operations/decimal.js";

/**
 * The response policy (docs/behaviour.md, "Responses"): the configuration's `behaviour` section,
 * parsed strictly. Every field is optional:
 *
 *   "behaviour": {
 *     "enabled": true,
 *     "responses": [ { "minScore": 50, "action": "alert" }, { "minScore": 70, "action": "step-up", "for": "24h" },
 *                    { "minScore": 80, "action": "throttle", "for": "1h" }, { "minScore": 95, "action": "suspend" } ],
 *     "record": 30,
 *     "stepUp": { "approvals": [{ "group": "security", "count": 1 }], "minValue": "1000" },
 *     "throttle": { "perMinute": 6 },
 *     "revokeGrace": "24h",
 *     "webhook": { "url": "https://siem.example/portcullis", "timeout": "5s" },
 *     "liquidity": { "XYZUSDT": "25000" }
 *   }
 *
 * A score at or above `record` (default 30) is at least recorded; `responses` say what a higher
 * score does. Unknown fields are refused, with the field named.
 */

/** One rung of the response ladder: a score of at least `minScore` leads to `action` (for `forMs`, or until undone). */
export interface ResponseRule {
  readonly minScore: number;
  readonly action: AnomalyAction;
  /** step-up / throttle: how long the key's risk state lasts (ms), or null: until an operator undoes it. Null for the others. */
  readonly forMs: number | null;
}

export interface StepUpConfig {
  /** Who must approve a stepped-up key's high-value operation: groups and how many of each. */
  readonly approvals: readonly { readonly group: string; readonly count: number }[];
  /** The value (reference currency) from which an operation is high-value for a stepped-up key: a plain decimal. */
  readonly minValue: string;
}

/** The step-up as stage 10's hook applies it (contract/behaviour.ts), from its configuration. */
export function stepUpSettings(config: StepUpConfig): StepUpSettings {
  const minOrderValue = parseDecimal(config.minValue);
  if (minOrderValue === null) throw new TypeError("stepUp.minValue must be a plain decimal");
  return { approvals: config.approvals, minOrderValue };
}

/** The configured liquidity table as the behaviour model reads it: a symbol's daily volume, or undefined. */
export function liquidityOf(settings: BehaviourSettings): (symbol: string) => number | undefined {
  const table = new Map(Object.entries(settings.liquidity).map(([symbol, volume]) => [symbol, Number(volume)]));
  return (symbol) => table.get(symbol);
}

export interface WebhookSettings {
  /** Where alerts are POSTed (http or https). */
  readonly url: string;
  /** How long one delivery attempt may take (ms). */
  readonly timeoutMs: number;
}

export interface BehaviourSettings {
  readonly enabled: boolean;
  /** The ladder, sorted by minScore (lowest first); at most one rule per action. */
  readonly responses: readonly ResponseRule[];
  /** A score at or above this is recorded even when no rule applies (101: never). */
  readonly recordFloor: number;
  readonly stepUp: StepUpConfig;
  readonly throttle: { readonly perMinute: number };
  /** How long a revoked key stays suspended (and can be given back) before it is revoked for good (ms). */
  readonly revokeGraceMs: number;
  readonly webhook: WebhookSettings | null;
  /** Configured daily volume (quote asset) of instruments the upstream's public data does not give: symbol (upper case) → plain decimal. */
  readonly liquidity: Readonly<Record<string, string>>;
}

export const DEFAULT_RESPONSES: readonly ResponseRule[] = Object.freeze([
  { minScore: 50, action: "alert", forMs: null },
  { minScore: 70, action: "step-up", forMs: 24 * 3_600_000 },
  { minScore: 80, action: "throttle", forMs: 3_600_000 },
  { minScore: 95, action: "suspend", forMs: null },
]);

export const DEFAULT_BEHAVIOUR_SETTINGS: BehaviourSettings = Object.freeze({
  enabled: true,
  responses: DEFAULT_RESPONSES,
  recordFloor: 30,
  stepUp: Object.freeze({ approvals: Object.freeze([{ group: "security", count: 1 }]), minValue: "1000" }),
  throttle: Object.freeze({ perMinute: 6 }),
  revokeGraceMs: 24 * 3_600_000,
  webhook: null,
  liquidity: Object.freeze({}),
});

/** How strong an action is: its place in ANOMALY_ACTIONS (record 0 … revoke 5). */
export function actionStrength(action: AnomalyAction): number {
  return ANOMALY_ACTIONS.indexOf(action);
}

/**
 * The strongest rule whose minScore `score` reaches and whose action is no stronger than `ceiling`,
 * `record` above the floor, or null: nothing to do.
 */
export function responseFor(settings: BehaviourSettings, score: number, ceiling: AnomalyAction = "revoke"): ResponseRule | null {
  const most = actionStrength(ceiling);
  let best: ResponseRule | null = null;
  for (const rule of settings.responses) {
    const strength = actionStrength(rule.action);
    if (score >= rule.minScore && strength <= most && (best === null || strength > actionStrength(best.action))) best = rule;
  }
  if (best === null && score >= settings.recordFloor) return { minScore: settings.recordFloor, action: "record", forMs: null };
  return best;
}

const KNOWN = ["enabled", "responses", "record", "stepUp", "throttle", "revokeGrace", "webhook", "liquidity"];
const GROUP_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const SYMBOL_RE = /^[A-Z0-9][A-Z0-9._:/-]{0,39}$/;
const MAX_FOR_MS = 90 * 86_400_000;

type Json = Record<string, unknown>;

/** A failure naming its field (thrown inside the parser, returned as a Result by parseBehaviourSettings). */
class Bad extends Error {
  constructor(
    readonly field: string,
    readonly problem: string,
  ) {
    super(`${field} ${problem}`);
  }
}

function object(v: unknown, where: string): Json {
  if (v === undefined) return {};
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw new Bad(where, "must be an object");
  return v as Json;
}

function only(o: Json, where: string, known: readonly string[]): void {
  for (const k of Object.keys(o)) if (!known.includes(k)) throw new Bad(`${where}.${k}`, `is not a known setting (known: ${known.join(", ")})`);
}

function duration(v: unknown, where: string, min: number, max: number): number {
  const ms = typeof v === "string" ? parseDuration(v) : null;
  if (ms === null || !ms.ok || ms.value < min || ms.value > max) throw new Bad(where, `must be a duration such as "30s", "1h", "24h" (from ${min / 1000}s to ${max / 86_400_000}d)`);
  return ms.value;
}

function integer(v: unknown, where: string, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) throw new Bad(where, `must be an integer from ${min} to ${max}`);
  return v;
}

function positiveDecimal(v: unknown, where: string): string {
  const d = typeof v === "string" ? parseDecimal(v) : null;
  if (d === null || d.coefficient <= 0n) throw new Bad(where, 'must be a decimal above zero, as a string ("1000")');
  return formatDecimal(d);
}

function parseRule(raw: unknown, where: string): ResponseRule {
  const o = object(raw, where);
  only(o, where, ["minScore", "action", "for"]);
  if (o.minScore === undefined) throw new Bad(`${where}.minScore`, "is required");
  const minScore = integer(o.minScore, `${where}.minScore`, 1, 100);
  if (!isAnomalyAction(o.action)) throw new Bad(`${where}.action`, `must be one of ${ANOMALY_ACTIONS.join(", ")}`);
  const action = o.action;
  const lasting = action === "step-up" || action === "throttle";
  if (o.for !== undefined && !lasting) throw new Bad(`${where}.for`, "applies to step-up and throttle only");
  const forMs = lasting && o.for !== undefined ? duration(o.for, `${where}.for`, 60_000, MAX_FOR_MS) : null;
  return { minScore, action, forMs };
}

function parseResponses(raw: unknown): readonly ResponseRule[] {
  if (raw === undefined) return DEFAULT_RESPONSES;
  if (!Array.isArray(raw)) throw new Bad("behaviour.responses", "must be a list of { minScore, action, for? }");
  const rules = raw.map((r, i) => parseRule(r, `behaviour.responses[${i}]`));
  const seen = new Set<string>();
  for (const [i, r] of rules.entries()) {
    if (seen.has(r.action)) throw new Bad(`behaviour.responses[${i}].action`, `${r.action} is listed twice`);
    seen.add(r.action);
  }
  const sorted = [...rules].sort((a, b) => a.minScore - b.minScore);
  // A stronger action at a lower score than a weaker one would make the weaker one unreachable.
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1];
    const cur = sorted[i];
    if (prev !== undefined && cur !== undefined && actionStrength(cur.action) < actionStrength(prev.action)) {
      throw new Bad("behaviour.responses", `${cur.action} (minScore ${cur.minScore}) is weaker than ${prev.action} (minScore ${prev.minScore}): stronger actions need higher scores`);
    }
  }
  return Object.freeze(sorted);
}

function parseStepUp(raw: unknown): StepUpConfig {
  const o = object(raw, "behaviour.stepUp");
  only(o, "behaviour.stepUp", ["approvals", "minValue"]);
  const defaults = DEFAULT_BEHAVIOUR_SETTINGS.stepUp;
  let approvals = defaults.approvals;
  if (o.approvals !== undefined) {
    if (!Array.isArray(o.approvals) || o.approvals.length === 0) throw new Bad("behaviour.stepUp.approvals", "must be a non-empty list of { group, count }");
    approvals = o.approvals.map((a, i) => {
      const where = `behaviour.stepUp.approvals[${i}]`;
      const t = object(a, where);
      only(t, where, ["group", "count"]);
      if (typeof t.group !== "string" || !GROUP_RE.test(t.group)) throw new Bad(`${where}.group`, "must be a group name: lower-case letters, digits, '.', '_' or '-'");
      return { group: t.group, count: t.count === undefined ? 1 : integer(t.count, `${where}.count`, 1, 10) };
    });
  }
  const minValue = o.minValue === undefined ? defaults.minValue : positiveDecimal(o.minValue, "behaviour.stepUp.minValue");
  return { approvals, minValue };
}

function parseWebhook(raw: unknown): WebhookSettings | null {
  if (raw === undefined || raw === null) return null;
  const o = object(raw, "behaviour.webhook");
  only(o, "behaviour.webhook", ["url", "timeout"]);
  let url: URL | null;
  try {
    url = typeof o.url === "string" ? new URL(o.url) : null;
  } catch {
    url = null;
  }
  if (url === null || (url.protocol !== "https:" && url.protocol !== "http:") || url.username !== "" || url.password !== "" || url.hash !== "") {
    throw new Bad("behaviour.webhook.url", "must be an http(s) URL without credentials or fragment, e.g. https://siem.example/portcullis");
  }
  const timeoutMs = o.timeout === undefined ? 5000 : duration(o.timeout, "behaviour.webhook.timeout", 1000, 60_000);
  return { url: url.href, timeoutMs };
}

function parseLiquidity(raw: unknown): Readonly<Record<string, string>> {
  const o = object(raw, "behaviour.liquidity");
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [name, value] of Object.entries(o)) {
    const symbol = name.toUpperCase();
    if (!SYMBOL_RE.test(symbol)) throw new Bad(`behaviour.liquidity.${name}`, "is not an instrument name such as XYZUSDT");
    out[symbol] = positiveDecimal(value, `behaviour.liquidity.${name}`);
  }
  return Object.freeze(out);
}

function parse(raw: unknown): BehaviourSettings {
  const o = object(raw, "behaviour");
  only(o, "behaviour", KNOWN);
  if (o.enabled !== undefined && typeof o.enabled !== "boolean") throw new Bad("behaviour.enabled", "must be true or false");
  const t = object(o.throttle, "behaviour.throttle");
  only(t, "behaviour.throttle", ["perMinute"]);
  return Object.freeze({
    enabled: o.enabled ?? true,
    responses: parseResponses(o.responses),
    recordFloor: o.record === undefined ? DEFAULT_BEHAVIOUR_SETTINGS.recordFloor : integer(o.record, "behaviour.record", 1, 101),
    stepUp: parseStepUp(o.stepUp),
    throttle: { perMinute: t.perMinute === undefined ? DEFAULT_BEHAVIOUR_SETTINGS.throttle.perMinute : integer(t.perMinute, "behaviour.throttle.perMinute", 1, 10_000) },
    revokeGraceMs: o.revokeGrace === undefined ? DEFAULT_BEHAVIOUR_SETTINGS.revokeGraceMs : duration(o.revokeGrace, "behaviour.revokeGrace", 0, 30 * 86_400_000),
    webhook: parseWebhook(o.webhook),
    liquidity: parseLiquidity(o.liquidity),
  });
}

/** The `behaviour` section (undefined: the defaults), or a failure naming the field at fault. */
export function parseBehaviourSettings(value: unknown): Result<BehaviourSettings> {
  try {
    return ok(parse(value));
  } catch (err) {
    if (err instanceof Bad) return invalid(`${err.field} ${err.problem}`, { [err.field]: err.problem });
    throw err;
  }
}
