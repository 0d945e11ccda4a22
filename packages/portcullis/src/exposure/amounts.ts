import type { Decimal } from "../contract/operations.js";
import type { GovernedOperation, PolicySubject } from "../contract/policy.js";
import { addDecimal, compareDecimal, multiplyDecimal, normalizeDecimal } from "../operations/decimal.js";
import type { CompiledPolicy, DestinationFact } from "../policy/engine.js";

/**
 * How much a stolen key could move in one hour under the policy in force: the largest amounts the
 * policy allows (neither held nor blocked) one operation at a time, and their sum over an hour,
 * velocity caps included. Pure: the engine (policy/engine.ts) decides every candidate amount.
 *
 * The decision for one operation is piecewise constant in its amount: it can change only where an
 * "amount over" threshold or a velocity cap (less what the window already holds) is crossed. So
 * the largest allowed amount is one of those breakpoints (converted to the lane's units, rounded
 * down at 18 decimals), or unbounded when an amount above every breakpoint is still allowed.
 */

export const HOUR_MS = 3_600_000;
/** Amounts converted from the reference currency are rounded down to this many decimals. */
const SCALE = 18;
/** The most time steps of the hour simulated (velocity windows shorter than an hour restart). */
const MAX_STEPS = 720;
/** The most decisions of one step (a lane repeated under a cap jumps; this only guards the loop). */
const MAX_ROUNDS = 10_000;

export const ZERO: Decimal = Object.freeze({ coefficient: 0n, scale: 0 });
export const ONE: Decimal = Object.freeze({ coefficient: 1n, scale: 0 });

/** a ÷ b rounded down to `scale` decimals (a ≥ 0, b > 0). */
export function divideFloor(a: Decimal, b: Decimal, scale = SCALE): Decimal {
  // (ca / 10^sa) / (cb / 10^sb) = ca·10^sb / (cb·10^sa); times 10^scale for the result's scale.
  const num = a.coefficient * 10n ** BigInt(b.scale + scale);
  const den = b.coefficient * 10n ** BigInt(a.scale);
  return normalizeDecimal({ coefficient: num / den, scale });
}

export function subtractDecimal(a: Decimal, b: Decimal): Decimal {
  return addDecimal(a, { coefficient: -b.coefficient, scale: b.scale });
}

export function minDecimal(a: Decimal, b: Decimal): Decimal {
  return compareDecimal(a, b) <= 0 ? a : b;
}

export function toNumber(d: Decimal): number {
  return Number(d.coefficient) / 10 ** d.scale;
}

/** Where an operation of the lane goes: one asset (withdrawals) or one symbol (orders). */
export interface Lane {
  /** The asset or symbol; `*` stands for any one the reference prices do not know. */
  readonly name: string;
  /** The operation of `amount` units (an asset amount, or an order's notional in its quote). */
  make(amount: Decimal): GovernedOperation;
  /** The largest amount one operation may carry (a guardrail), in the lane's units; null: none. */
  readonly cap: Decimal | null;
}

/** Who operates, from where, to what destination: the subject without the operation. */
export interface Actor {
  readonly account: string;
  readonly keyId: string;
  readonly client: string | null;
  /** A withdrawal's destination as the address book knows it (null: a new address). */
  readonly destination: DestinationFact | null;
  readonly at: number;
}

/** What one lane, or all of them together, can move in the hour. */
export interface HourTotal {
  /** Units moved (null: unbounded). */
  readonly amount: Decimal | null;
  /** Their value in the reference currency (null: unbounded). */
  readonly value: Decimal | null;
  /** How many operations that took (null: unbounded). */
  readonly count: number | null;
  /** The largest single operation allowed at the start of the hour (units; null: unbounded). */
  readonly single: Decimal | null;
  /** Whether the lane's unit value is unknown and one reference unit per unit was assumed. */
  readonly valueAssumed: boolean;
}

interface Recorded {
  readonly at: number;
  readonly value: Decimal;
}

function allowed(policy: CompiledPolicy, actor: Actor, op: GovernedOperation, sums: readonly (Decimal | null)[]): boolean {
  const subject: PolicySubject = { operation: op, account: actor.account, keyId: actor.keyId, client: actor.client, at: actor.at };
  return policy.decide(subject, { destination: actor.destination, sums }).action.type === "allow";
}

/** The value of one unit of the lane in the reference currency, or undefined when unknown. */
export function unitValue(policy: CompiledPolicy, lane: Lane): Decimal | undefined {
  return policy.valueOf(lane.make(ONE)) ?? undefined;
}

/**
 * The breakpoints of the decision in the lane's units: every "amount over" threshold and every
 * velocity cap (less what its window holds) of the rules for the lane's kind, and the lane's cap.
 */
function breakpoints(policy: CompiledPolicy, lane: Lane, unit: Decimal | undefined, sums: readonly (Decimal | null)[]): Decimal[] {
  const kind = lane.make(ONE).kind;
  const out: Decimal[] = [];
  const inUnits = (reference: Decimal): Decimal | null => (unit === undefined || unit.coefficient <= 0n ? null : divideFloor(reference, unit));
  for (const rule of policy.document.rules) {
    const m = rule.match;
    if (m.kind !== undefined && !m.kind.includes(kind)) continue;
    if (m.amount !== undefined) {
      const b = m.amount.unit === "asset" ? m.amount.over : inUnits(m.amount.over);
      if (b !== null) out.push(b);
    }
    if (m.velocity !== undefined) {
      const index = policy.windows.findIndex((w) => w.per === m.velocity?.per && w.windowMs === m.velocity.windowMs);
      const sum = sums[index] ?? ZERO;
      const room = subtractDecimal(m.velocity.over, sum);
      if (room.coefficient > 0n) {
        const b = inUnits(room);
        if (b !== null) out.push(b);
      }
    }
  }
  if (lane.cap !== null) out.push(lane.cap);
  const positive = out.filter((d) => d.coefficient > 0n).map(normalizeDecimal);
  positive.sort(compareDecimal);
  return positive.filter((d, i) => i === 0 || compareDecimal(d, positive[i - 1] ?? ZERO) !== 0);
}

/** The largest amount of one operation the policy allows now (0: none; null: unbounded). */
export function largestAllowed(policy: CompiledPolicy, actor: Actor, lane: Lane, sums: readonly (Decimal | null)[]): Decimal | null {
  const unit = unitValue(policy, lane);
  const points = breakpoints(policy, lane, unit, sums);
  const capped = lane.cap === null ? points : points.filter((p) => lane.cap !== null && compareDecimal(p, lane.cap) <= 0);
  if (lane.cap === null) {
    const top = points.length === 0 ? ONE : addDecimal(multiplyDecimal(points[points.length - 1] ?? ONE, { coefficient: 2n, scale: 0 }), ONE);
    if (allowed(policy, actor, lane.make(top), sums)) return null;
  }
  for (let i = capped.length - 1; i >= 0; i--) {
    const amount = capped[i] ?? ZERO;
    if (allowed(policy, actor, lane.make(amount), sums)) return amount;
  }
  return ZERO;
}

/** How many more of `value` fit before some velocity condition's truth changes (null: never). */
function repeats(policy: CompiledPolicy, kind: string, value: Decimal, sums: readonly (Decimal | null)[]): number | null {
  if (value.coefficient <= 0n) return null;
  let k: bigint | null = null;
  for (const rule of policy.document.rules) {
    const m = rule.match;
    if (m.velocity === undefined || (m.kind !== undefined && !(m.kind as readonly string[]).includes(kind))) continue;
    const index = policy.windows.findIndex((w) => w.per === m.velocity?.per && w.windowMs === m.velocity.windowMs);
    const room = subtractDecimal(m.velocity.over, sums[index] ?? ZERO);
    if (compareDecimal(room, value) < 0) continue; // already over with this value: stays over
    const q = divideFloor(room, value, 0).coefficient;
    if (k === null || q < k) k = q;
  }
  return k === null ? null : Number(k < 1n ? 1n : k);
}

/**
 * What all the lanes together can move in one hour from `actor.at`: at each moment the lane whose
 * largest allowed operation is worth most goes next (greedy), until the policy allows nothing more
 * or `countCap` operations were made; velocity windows shorter than an hour let it go on when they
 * roll over. The windows hold nothing at the start (the worst case: a thief's hour starting
 * after a quiet day).
 */
export function hourTotal(policy: CompiledPolicy, actor: Actor, lanes: readonly Lane[], countCap: number | null): HourTotal {
  const none: HourTotal = { amount: ZERO, value: ZERO, count: 0, single: ZERO, valueAssumed: false };
  if (lanes.length === 0 || countCap === 0) return none;
  const units = lanes.map((l) => unitValue(policy, l));
  const valueAssumed = units.some((u) => u === undefined);
  const unitOf = (i: number): Decimal => units[i] ?? ONE;
  const kind = lanes[0]?.make(ONE).kind ?? "withdraw";
  const events: Recorded[] = [];
  const shortest = policy.windows.filter((w) => w.windowMs < HOUR_MS).reduce<number | null>((min, w) => (min === null || w.windowMs < min ? w.windowMs : min), null);
  const step = shortest === null ? HOUR_MS : Math.max(shortest, Math.ceil(HOUR_MS / MAX_STEPS));
  let amount: Decimal = ZERO;
  let value: Decimal = ZERO;
  let count = 0;
  let single: Decimal | null | undefined;
  const sumsAt = (t: number): Decimal[] =>
    policy.windows.map((w) => normalizeDecimal(events.filter((e) => e.at > actor.at + t - w.windowMs).reduce<Decimal>((s, e) => addDecimal(s, e.value), ZERO)));
  for (let t = 0; t < HOUR_MS; t += step) {
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const sums = sumsAt(t);
      const here: Actor = { ...actor, at: actor.at + t };
      let best = -1;
      let bestAmount: Decimal = ZERO;
      let bestValue: Decimal = ZERO;
      for (let i = 0; i < lanes.length; i++) {
        const lane = lanes[i];
        if (lane === undefined) continue;
        const x = largestAllowed(policy, here, lane, sums);
        if (x === null) return { amount: null, value: null, count: null, single: single === undefined ? null : single, valueAssumed };
        const v = normalizeDecimal(multiplyDecimal(x, unitOf(i)));
        if (x.coefficient > 0n && (best < 0 || compareDecimal(v, bestValue) > 0)) {
          best = i;
          bestAmount = x;
          bestValue = v;
        }
      }
      if (single === undefined) single = bestAmount;
      if (best < 0) break;
      const left = countCap === null ? null : countCap - count;
      const k = repeats(policy, kind, bestValue, sums);
      if (k === null && left === null) return { amount: null, value: null, count: null, single, valueAssumed };
      const n = Math.min(k ?? Number.MAX_SAFE_INTEGER, left ?? Number.MAX_SAFE_INTEGER);
      const times: Decimal = { coefficient: BigInt(n), scale: 0 };
      amount = normalizeDecimal(addDecimal(amount, multiplyDecimal(bestAmount, times)));
      const added = normalizeDecimal(multiplyDecimal(bestValue, times));
      value = normalizeDecimal(addDecimal(value, added));
      events.push({ at: actor.at + t, value: added });
      count += n;
      if (countCap !== null && count >= countCap) return { amount, value, count, single, valueAssumed };
    }
    if (shortest === null) break;
  }
  return { amount, value, count, single: single ?? ZERO, valueAssumed };
}
