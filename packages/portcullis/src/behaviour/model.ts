import type { BehaviourBasis, BehaviourEvent, BehaviourScore, FeatureContribution } from "../contract/behaviour.js";
import { OPERATION_KINDS, type OperationKind } from "../contract/operations.js";

/**
 * The per-key behaviour model (docs/behaviour.md, "The model"): a fixed-size state per key (and one
 * per account, for cold start), updated in streaming fashion from each decided request's
 * `BehaviourEvent`, and a score of each event against it, with its explanation.
 *
 * Pure: no timers, no I/O, no clock; every time comes from the events. The state is a handful of
 * typed arrays of fixed length, whatever the traffic (small hashed sets with recency replace the
 * oldest entry when full), so its encoding has one fixed size, under 2,048 bytes.
 */

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

/**
 * Every weight and threshold of the score, in one table: the evaluation harness tunes these.
 * Points add up to Σ; the score is 100·(1 − e^(−Σ/saturation)). With saturation 40: Σ 14 → 30,
 * Σ 28 → 50 (alert), Σ 48 → 70 (step-up), Σ 64 → 80 (throttle), Σ 120 → 95 (suspend).
 */
export const BEHAVIOUR_WEIGHTS = {
  /** Σ at which the score reaches 63 (1 − 1/e); larger is more lenient. */
  saturation: 40,

  // Cold start.
  /** A key is judged against its own state from this many events… */
  matureEvents: 50,
  /** …and this much history (ms); before that against its account's state, or the defaults. */
  matureSpanMs: DAY,
  /** An account's state is a basis once it has folded this many events. */
  accountEvents: 20,
  /** Statistics (robust z-scores) are used once they have this many samples. */
  minSamples: 10,

  // Robust statistics: points = perZ · (z − zFree), capped; z below zFree is free.
  /** z-scores up to this are normal. */
  zFree: 3,
  /** Request rate (10 s, 1 min, 1 h: the largest z of the three). */
  ratePerZ: 5,
  rateCap: 30,
  /** Order notional (against the symbol's, else the key's over all symbols). */
  notionalPerZ: 4,
  notionalCap: 30,
  /** Order quantity (against the symbol's). */
  quantityPerZ: 3,
  quantityCap: 20,
  /** Order flow: the value the key traded over the last minute (decayed), in the quote asset. */
  flowPerZ: 5,
  flowCap: 30,

  // Novelty of where the request came from: low alone (honest bots move between cloud hosts).
  /** A network prefix (IPv4 /24, IPv6 /48) the key never used; half of it while still young. */
  networkNew: 8,
  /** A client address the key never used; half of it while still young. */
  addressNew: 5,
  /** A network or address is young for this many ms after first use… */
  youngMs: DAY,
  /** …and fewer than this many events from it. */
  youngEvents: 50,
  /**
   * Concurrent use from two networks: a stolen key is used by its thief while its owner goes on
   * using it, so its (proved) requests alternate between networks within minutes; an honest bot
   * whose host moves switches once. Switches between networks (decayed over `alternateTauMs`) count
   * when the newer network of the two was first used within `alternateRecentMs` and at least
   * `alternateApartMs` after the older (a dual-stack client's two networks, first used together,
   * never count). From `alternateMin` decayed switches (the second within minutes):
   * `networkAlternate` points, plus `alternatePer` per switch beyond two, capped.
   */
  alternateTauMs: 10 * MINUTE,
  alternateRecentMs: 7 * DAY,
  alternateApartMs: HOUR,
  alternateMin: 1.5,
  networkAlternate: 45,
  alternatePer: 4,
  alternateCap: 60,

  // What the request did.
  /** A symbol the key never traded (or first traded within the hour). */
  symbolNew: 15,
  /** A symbol first traded this long ago (ms) or less is still new. */
  symbolYoungMs: HOUR,
  /** Liquidity of a new symbol (24 h traded value in the quote asset): at or below `illiquidBelow`, `illiquidPoints`; from there, falling on a log scale to 0 at `liquidAbove`. */
  illiquidPoints: 45,
  illiquidBelow: 100_000,
  liquidAbove: 10_000_000,
  /** A new symbol whose liquidity is unknown: illiquid-ish, less than a known tiny volume. */
  liquidityUnknown: 15,
  /** An operation kind (order.place, withdraw…) the key (almost) never did: share below `rareShare`. */
  operationNew: 10,
  /** A route (hashed bucket) the key (almost) never called. */
  routeNew: 8,
  rareShare: 0.02,
  /** Route mix: total variation distance between the last ~20 requests and the long run; points per unit above `mixFree`. */
  mixFree: 0.2,
  mixPerUnit: 50,
  mixCap: 30,

  // Withdrawals.
  /** To a destination the key (or, cold, its account) never used, or first used within `destinationYoungMs`. */
  destinationNew: 25,
  destinationYoungMs: DAY,
  /** A withdrawal's value (reference currency) above `withdrawLarge`: perDecade · log10(value / withdrawLarge) + base, capped. */
  withdrawLarge: 10_000,
  withdrawLargeBase: 10,
  withdrawLargePerDecade: 10,
  withdrawLargeCap: 30,
  /** Withdrawals in the last hour (decayed count) beyond the first: points each, capped. */
  withdrawVelocity: 8,
  withdrawVelocityCap: 30,
  /** Rule: a withdrawal to a new destination from an unfamiliar network. */
  withdrawNewNetwork: 20,

  // Combinations.
  /** Rule: an unfamiliar network together with ≥ `comboMin` points of what the request did (symbols, size, routes, withdrawals). */
  comboNewNetwork: 35,
  comboMin: 8,

  // Time.
  /** Dormancy: a gap of at least `dormantMs` and `dormantFactor` times the key's longest gap before (first use: since creation). */
  dormantMs: 7 * DAY,
  dormantFactor: 3,
  dormancy: 20,
  /** First use this long after creation counts as waking from dormancy (a key made and left unused for a week is the 2018 pattern). */
  firstUseLateMs: 7 * DAY,
  /** For this long after waking, a burst (≥ `burstPerMin` requests in the last minute, decayed) adds `dormancyBurst`. */
  wakeWindowMs: HOUR,
  burstPerMin: 5,
  dormancyBurst: 35,
  /** An hour of the day holding less than `hourRareShare` of the key's traffic (decayed over 14 days), after `hourMinEvents` events over `hourMinSpanMs`. */
  hourRare: 4,
  hourRareShare: 0.2 / 24,
  hourMinEvents: 200,
  hourMinSpanMs: 3 * DAY,

  // Failures.
  /** Signature failures on the key in the last 10 minutes (decayed count): points per failure beyond `authFree`. */
  authFree: 2,
  authPer: 8,
  authCap: 80,
  /** Share of refused or failed requests among the last ~20 over the long-run share: points per unit above `errorsFree`. */
  errorsFree: 0.3,
  errorsPerUnit: 20,
  errorsCap: 10,
  /** Cancel-to-order ratio of the last ~20 orders and cancels against the long run. */
  cancelFree: 0.5,
  cancelPoints: 5,
} as const;

const W = BEHAVIOUR_WEIGHTS;

// ---------------------------------------------------------------------------------------------
// The state's layout: three typed arrays of fixed length.

/** Top symbols with statistics. */
const SYMBOLS = 8;
/** Symbols traded before (hashes, oldest replaced first). */
const KNOWN_SYMBOLS = 32;
const ADDRESSES = 8;
const NETWORKS = 8;
const DESTINATIONS = 16;
const ROUTE_BUCKETS = 16;
const OPS = OPERATION_KINDS.length + 1; // + none

// Times (epoch ms), encoded as float64.
const T_SEEN = 0; // a count, kept exact
const T_FIRST = 1;
const T_LAST = 2;
const T_CREATED = 3;
const T_WOKE = 4;
const T_LATEST = 5;
const T_SYM_FIRST = 6;
const T_SYM_LAST = T_SYM_FIRST + SYMBOLS;
const T_ADDR_FIRST = T_SYM_LAST + SYMBOLS;
const T_ADDR_LAST = T_ADDR_FIRST + ADDRESSES;
const T_NET_FIRST = T_ADDR_LAST + ADDRESSES;
const T_NET_LAST = T_NET_FIRST + NETWORKS;
const T_DEST_FIRST = T_NET_LAST + NETWORKS;
const T_DEST_LAST = T_DEST_FIRST + DESTINATIONS;
const T_ALT_AT = T_DEST_LAST + DESTINATIONS; // the last proved request with a network (switches decay from it)
const T_AUTH_AT = T_ALT_AT + 1; // the last signature failure (the failures' count decays from it)
const T_LENGTH = T_AUTH_AT + 1;

// Values, encoded as float32. A statistic is three slots: EW mean, EW mean absolute deviation, samples.
const V_LATEST_SCORE = 0;
const V_LATEST_BASIS = 1;
const V_RATE = 2; // decayed counts over 10 s, 1 min, 1 h
const V_RATE_STATS = 5; // 3 statistics of log(1 + count)
const V_GAP = 14; // the longest gap between two events (ms), then 2 spare slots
const V_NOTIONAL = 17; // statistic of log(notional), all symbols
const V_WD_COUNT = 20; // withdrawals, decayed over 1 h
const V_WD_VALUE = 21; // statistic of log(value)
const V_AUTH = 24; // auth failures, decayed over 10 min
const V_ERR_SHORT = 25;
const V_ERR_LONG = 26;
const V_CANCEL_SHORT = 27; // share of cancels among orders and cancels
const V_CANCEL_LONG = 28;
const V_ORDERS = 29; // orders and cancels seen (for the cancel shares' warm-up)
const V_HOURS = 30;
const V_OPS = V_HOURS + 24;
const V_ROUTE_LONG = V_OPS + OPS;
const V_ROUTE_SHORT = V_ROUTE_LONG + ROUTE_BUCKETS;
const SYM_FIELDS = 8; // decayed count, events, notional statistic (3), quantity statistic (3)
const V_SYM = V_ROUTE_SHORT + ROUTE_BUCKETS;
const V_ADDR_COUNT = V_SYM + SYMBOLS * SYM_FIELDS;
const V_NET_COUNT = V_ADDR_COUNT + ADDRESSES;
const V_DEST_COUNT = V_NET_COUNT + NETWORKS;
const V_KNOWN_NEXT = V_DEST_COUNT + DESTINATIONS; // next slot of the known-symbols ring
// The histograms are kept scaled (a bucket's share is its value over the scale), so that an update
// touches one bucket: decaying every other bucket is growing the scale instead.
const V_OPS_SCALE = V_KNOWN_NEXT + 1;
const V_ROUTE_LONG_SCALE = V_OPS_SCALE + 1;
const V_ROUTE_SHORT_SCALE = V_ROUTE_LONG_SCALE + 1;
const V_HOURS_SCALE = V_ROUTE_SHORT_SCALE + 1;
const V_HOURS_SUM = V_HOURS_SCALE + 1;
const V_ALT_SWITCHES = V_HOURS_SUM + 1; // switches between networks, decayed over alternateTauMs
const V_FLOW = V_ALT_SWITCHES + 1; // traded value, decayed over FLOW_TAU
const V_FLOW_STATS = V_FLOW + 1; // statistic of log(flow) at each order
const V_LENGTH = V_FLOW_STATS + 3;

// Hashes (uint32; 0 is an empty slot).
const H_SYM = 0;
const H_KNOWN = H_SYM + SYMBOLS;
const H_ADDR = H_KNOWN + KNOWN_SYMBOLS;
const H_NET = H_ADDR + ADDRESSES;
const H_DEST = H_NET + NETWORKS;
const H_ALT_NET = H_DEST + DESTINATIONS; // the network of the last proved request
const H_LENGTH = H_ALT_NET + 1;

const MAGIC0 = 0x50; // "P"
const MAGIC1 = 0x42; // "B"
const FORMAT_VERSION = 2;
const HEADER = 4;
/** The encoded size of every state. */
export const BEHAVIOUR_STATE_BYTES = HEADER + T_LENGTH * 8 + V_LENGTH * 4 + H_LENGTH * 4;

const RATE_TAU = [10_000, MINUTE, HOUR] as const;
const RATE_NAMES = ["rate.10s", "rate.1m", "rate.1h"] as const;
const RATE_UNITS = ["/10s", "/min", "/h"] as const;
const SYMBOL_TAU = 7 * DAY;
const AUTH_TAU = 10 * MINUTE;
const HOURS_TAU = 14 * DAY;
const WD_TAU = HOUR;
const FLOW_TAU = MINUTE;
/** Long-run and recent shares: per-event weights. */
const LONG_ALPHA = 1 / 1000;
const SHORT_ALPHA = 1 / 20;
/** Statistics' per-event weight once warmed up, and the floor of their deviation (log units). */
const STAT_ALPHA = 0.02;
const RATE_ALPHA = 0.01;
const LOG_FLOOR = 0.25;
/** E|x − μ| = σ·√(2/π) for a normal law: a mean absolute deviation times this is a standard deviation. */
const MAD_TO_SD = 1.2533;

const BASES: readonly BehaviourBasis[] = ["key", "account", "defaults"];

/** One key's (or one account's) behaviour state: bounded, whatever the traffic. Opaque to callers. */
export interface BehaviourState {
  /** Events folded into it. */
  readonly seen: number;
}

class State implements BehaviourState {
  constructor(
    readonly t: Float64Array,
    readonly v: Float64Array,
    readonly h: Uint32Array,
  ) {}
  get seen(): number {
    return this.t[T_SEEN] ?? 0;
  }
  static fresh(): State {
    const v = new Float64Array(V_LENGTH);
    v[V_OPS_SCALE] = 1;
    v[V_ROUTE_LONG_SCALE] = 1;
    v[V_ROUTE_SHORT_SCALE] = 1;
    v[V_HOURS_SCALE] = 1;
    return new State(new Float64Array(T_LENGTH), v, new Uint32Array(H_LENGTH));
  }
}

function own(state: BehaviourState): State {
  if (!(state instanceof State)) throw new TypeError("not a state of this behaviour model");
  return state;
}

/** FNV-1a over the string's UTF-16 units, seeded per kind; never 0 (an empty slot). */
function hash(seed: number, s: string): number {
  let x = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) {
    x ^= s.charCodeAt(i);
    x = Math.imul(x, 0x01000193);
  }
  x >>>= 0;
  return x === 0 ? 1 : x;
}

const SEED_SYMBOL = 1;
const SEED_ADDRESS = 2;
const SEED_NETWORK = 3;
const SEED_DEST = 4;
const SEED_ROUTE = 5;

function opIndex(kind: OperationKind | null): number {
  if (kind === null) return OPS - 1;
  const i = OPERATION_KINDS.indexOf(kind);
  return i < 0 ? OPS - 1 : i;
}

function decay(count: number, dtMs: number, tau: number): number {
  return dtMs <= 0 ? count : count * Math.exp(-dtMs / tau);
}

// Statistics: EW mean and mean absolute deviation of a log value, winsorised once warm.

function statScale(v: Float64Array, o: number, floor: number): number {
  return MAD_TO_SD * Math.max(v[o + 1] ?? 0, floor);
}

function statUpdate(v: Float64Array, o: number, x: number, alpha: number, floor: number): void {
  const n = v[o + 2] ?? 0;
  if (n === 0) {
    v[o] = x;
    v[o + 1] = 0;
    v[o + 2] = 1;
    return;
  }
  const m = v[o] ?? 0;
  let y = x;
  if (n >= W.minSamples) {
    const s = 4 * statScale(v, o, floor);
    y = Math.min(Math.max(x, m - s), m + s);
  }
  const a = Math.max(1 / (n + 1), alpha);
  const m2 = m + a * (y - m);
  v[o] = m2;
  v[o + 1] = (v[o + 1] ?? 0) + a * (Math.abs(y - m2) - (v[o + 1] ?? 0));
  v[o + 2] = Math.min(n + 1, 1e6);
}

/** The robust z of x (one-sided: above normal), or 0 before `minSamples`. */
function statZ(v: Float64Array, o: number, x: number, floor: number): number {
  if ((v[o + 2] ?? 0) < W.minSamples) return 0;
  return (x - (v[o] ?? 0)) / statScale(v, o, floor);
}

/** Points for a one-sided z: perZ · (z − zFree), capped. */
function zPoints(z: number, perZ: number, cap: number): number {
  return z <= W.zFree ? 0 : Math.min(cap, perZ * (z - W.zFree));
}

/** A scaled histogram of shares (`n` buckets from `o`, scale at `so`): moves weight `a` to bucket `b`. */
function histAdd(v: Float64Array, o: number, n: number, so: number, b: number, a: number): void {
  if (a >= 1) {
    // The first sample: all of the weight.
    v.fill(0, o, o + n);
    v[o + b] = 1;
    v[so] = 1;
    return;
  }
  let old = v[so] ?? 1;
  if (old > 1e12) {
    for (let i = 0; i < n; i++) v[o + i] = (v[o + i] ?? 0) / old;
    old = 1;
  }
  const scale = old / (1 - a);
  v[so] = scale;
  v[o + b] = (v[o + b] ?? 0) + a * scale;
}

/** The hour-of-day counts, decayed over HOURS_TAU the same way: the scale grows with time. */
function hoursAdd(v: Float64Array, dtMs: number, hour: number): void {
  let scale = v[V_HOURS_SCALE] ?? 1;
  if (dtMs > 0) scale *= Math.exp(dtMs / HOURS_TAU);
  if (!(scale <= 1e12)) {
    const old = v[V_HOURS_SCALE] ?? 1;
    const growth = Math.exp(dtMs / HOURS_TAU);
    for (let i = 0; i < 24; i++) v[V_HOURS + i] = (v[V_HOURS + i] ?? 0) / old / growth;
    v[V_HOURS_SUM] = (v[V_HOURS_SUM] ?? 0) / old / growth;
    scale = 1;
  }
  v[V_HOURS_SCALE] = scale;
  v[V_HOURS + hour] = (v[V_HOURS + hour] ?? 0) + scale;
  v[V_HOURS_SUM] = (v[V_HOURS_SUM] ?? 0) + scale;
}

/** A bucket's share. */
function share(v: Float64Array, o: number, so: number, b: number): number {
  return (v[o + b] ?? 0) / (v[so] ?? 1);
}

/** The values as encoded: histograms as plain shares (scale 1), hour counts relative to their scale. */
function normalized(src: Float64Array): Float64Array {
  const v = src.slice();
  const hist = (o: number, n: number, so: number): void => {
    const scale = v[so] ?? 1;
    for (let i = 0; i < n; i++) v[o + i] = (v[o + i] ?? 0) / scale;
    v[so] = 1;
  };
  hist(V_OPS, OPS, V_OPS_SCALE);
  hist(V_ROUTE_LONG, ROUTE_BUCKETS, V_ROUTE_LONG_SCALE);
  hist(V_ROUTE_SHORT, ROUTE_BUCKETS, V_ROUTE_SHORT_SCALE);
  const hs = v[V_HOURS_SCALE] ?? 1;
  for (let i = 0; i < 24; i++) v[V_HOURS + i] = (v[V_HOURS + i] ?? 0) / hs;
  v[V_HOURS_SUM] = (v[V_HOURS_SUM] ?? 0) / hs;
  v[V_HOURS_SCALE] = 1;
  return v;
}

/** Index of `key` among `n` hash slots from `o`, or -1. */
function find(h: Uint32Array, o: number, n: number, key: number): number {
  for (let i = 0; i < n; i++) if (h[o + i] === key) return i;
  return -1;
}

/** The slot a new entry takes: an empty one, else the least recently used (`lastAt` times from `to`). */
function victim(h: Uint32Array, ho: number, t: Float64Array, to: number, n: number): number {
  let best = 0;
  let bestAt = Infinity;
  for (let i = 0; i < n; i++) {
    if (h[ho + i] === 0) return i;
    const at = t[to + i] ?? 0;
    if (at < bestAt) {
      bestAt = at;
      best = i;
    }
  }
  return best;
}

/** Records a use of `key` in a set of `n` (hash, first, last, count) entries. */
function touch(s: State, ho: number, tFirst: number, tLast: number, vCount: number, n: number, key: number, at: number): void {
  let i = find(s.h, ho, n, key);
  if (i < 0) {
    i = victim(s.h, ho, s.t, tLast, n);
    s.h[ho + i] = key;
    s.t[tFirst + i] = at;
    s.v[vCount + i] = 0;
  }
  s.t[tLast + i] = Math.max(s.t[tLast + i] ?? 0, at);
  s.v[vCount + i] = Math.min((s.v[vCount + i] ?? 0) + 1, 1e6);
}

// Text for explanations (only built for features that add points).

function num(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a >= 1000) {
    const digits = Math.round(a).toString();
    let out = "";
    for (let i = 0; i < digits.length; i++) out += (i > 0 && (digits.length - i) % 3 === 0 ? "," : "") + digits.charAt(i);
    return x < 0 ? `-${out}` : out;
  }
  if (a >= 10) return (Math.round(x * 10) / 10).toString();
  return (Math.round(x * 100) / 100).toString();
}

function duration(ms: number): string {
  if (ms >= 2 * DAY) return `${num(ms / DAY)} days`;
  if (ms >= 2 * HOUR) return `${num(ms / HOUR)} h`;
  if (ms >= 2 * MINUTE) return `${num(ms / MINUTE)} min`;
  return `${num(ms / 1000)} s`;
}

function typical(v: Float64Array, o: number, unit: string): string {
  return `typical ${num(Math.exp(v[o] ?? 0))}${unit} (log MAD ${num(v[o + 1] ?? 0)}, ${num(v[o + 2] ?? 0)} samples)`;
}

/** An event's hashed names (0: absent), and the route's bucket. */
interface Hashes {
  readonly event: BehaviourEvent | null;
  readonly network: number;
  readonly client: number;
  readonly route: number;
  readonly symbol: number;
  readonly destination: number;
}

/** What an event measured, before it is folded in. */
interface Observed {
  /** The key's decayed request counts, this request included. */
  readonly rates: readonly [number, number, number];
  /** Time since the key's previous event (or since its creation, for its first). */
  readonly gapMs: number;
  readonly withdrawals: number;
  /** The key's traded value over the last minute (decayed), this order included; 0 for other requests. */
  readonly flow: number;
}

/** Contributions, gathered cheaply: names and numbers first, texts only for those kept. */
class Points {
  readonly list: FeatureContribution[] = [];
  total = 0;
  /** Points of what the request did (symbols, sizes, routes, withdrawals): what the combination rules look at. */
  action = 0;
  /** The request came from a network the key (or, cold, its account) does not know yet. */
  unfamiliar = false;
  add(feature: string, points: number, deviation: number, observed: string, baseline: string, action: boolean): void {
    if (!(points > 0)) return;
    this.list.push({ feature, observed, baseline, deviation: Math.round(deviation * 100) / 100, points: Math.round(points * 10) / 10 });
    this.total += points;
    if (action) this.action += points;
  }
}

export interface BehaviourModelOptions {
  /** A symbol's 24 h traded value in its quote asset (its liquidity), or undefined when unknown. */
  readonly liquidity?: (symbol: string) => number | undefined;
}

/**
 * The behaviour model: scores each event against its key's state (or, while the key is young, its
 * account's state or conservative defaults), then folds it in. See BEHAVIOUR_WEIGHTS.
 */
export class BehaviourModel {
  private readonly liquidity: (symbol: string) => number | undefined;
  /** The hashes of the last event seen: `observe` and `observeAccount` of one event hash it once. */
  private last: Hashes = { event: null, network: 0, client: 0, route: 0, symbol: 0, destination: 0 };

  constructor(options: BehaviourModelOptions = {}) {
    const liquidity = options.liquidity;
    if (liquidity !== undefined && typeof liquidity !== "function") throw new TypeError("liquidity must be a function");
    this.liquidity = liquidity ?? (() => undefined);
  }

  /**
   * Scores `event` against its key's state (null: the key's first event) and, while the key is
   * young (cold start), against its account's state (null: none yet) and conservative defaults;
   * then folds the event into the key's state. Returns the key's new state (the given one, updated
   * in place) and the score with its explanation.
   */
  observe(key: BehaviourState | null, given: BehaviourEvent, account: BehaviourState | null): { readonly state: BehaviourState; readonly score: BehaviourScore } {
    const event = sane(given, key === null ? null : own(key));
    const s = key === null ? fresh(event) : own(key);
    const seen = s.t[T_SEEN] ?? 0;
    const mature = seen >= W.matureEvents && event.at - (s.t[T_FIRST] ?? event.at) >= W.matureSpanMs;
    const acct = account === null ? null : own(account);
    let basis: BehaviourBasis;
    let ref: State | null;
    if (mature) {
      basis = "key";
      ref = s;
    } else if (acct !== null && (acct.t[T_SEEN] ?? 0) >= W.accountEvents) {
      basis = "account";
      ref = acct;
    } else {
      basis = "defaults";
      ref = null;
    }
    if (event.verified === false || event.authFailure) return unproved(s, seen, basis, event);
    const obs = advance(s, event);
    const hx = this.hashes(event);
    const switches = alternation(s, event, hx);
    const points = this.score(s, seen, ref, event, obs, hx);
    if (switches >= W.alternateMin) {
      const pts = Math.min(W.alternateCap, W.networkAlternate + W.alternatePer * Math.max(0, switches - 2));
      points.add("network.alternate", pts, switches, `${num(switches)} switches between networks in ${duration(W.alternateTauMs)} (decayed)`, "at most one (a host that moves)", false);
    }
    const total = points.total;
    const score = Math.round(1000 * (1 - Math.exp(-total / W.saturation))) / 10;
    const contributions = points.list;
    if (contributions.length > 1) contributions.sort((a, b) => b.points - a.points);
    if (contributions.length > 8) contributions.length = 8;
    // What comes from an unfamiliar network does not teach the key's statistics (sizes, rates,
    // flow) until the network is familiar: a thief's session must not become its own baseline.
    fold(s, event, obs, hx, !points.unfamiliar);
    s.v[V_LATEST_SCORE] = score;
    s.v[V_LATEST_BASIS] = BASES.indexOf(basis);
    s.t[T_LATEST] = event.at;
    return { state: s, score: { keyId: event.keyId, account: event.account, at: event.at, score, basis, seen, contributions } };
  }

  /** Folds the event into its account's state (what a new key of the account is judged against). */
  observeAccount(account: BehaviourState | null, given: BehaviourEvent): BehaviourState {
    const event = sane(given, account === null ? null : own(account));
    const s = account === null ? fresh(event) : own(account);
    // A request that did not prove its key is nobody's behaviour: it is not folded in.
    if (event.verified === false || event.authFailure) return s;
    fold(s, event, advance(s, event), this.hashes(event));
    return s;
  }

  private hashes(e: BehaviourEvent): Hashes {
    if (this.last.event === e) return this.last;
    this.last = {
      event: e,
      network: e.network === null ? 0 : hash(SEED_NETWORK, e.network),
      client: e.client === null ? 0 : hash(SEED_ADDRESS, e.client),
      route: hash(SEED_ROUTE, e.route) & (ROUTE_BUCKETS - 1),
      symbol: e.symbol === null ? 0 : hash(SEED_SYMBOL, e.symbol),
      destination: e.destination === null ? 0 : hash(SEED_DEST, e.destination),
    };
    return this.last;
  }

  /** The state's bytes: always `BEHAVIOUR_STATE_BYTES` (under 2,048). */
  encode(state: BehaviourState): Uint8Array {
    const s = own(state);
    const out = new Uint8Array(BEHAVIOUR_STATE_BYTES);
    const view = new DataView(out.buffer);
    out[0] = MAGIC0;
    out[1] = MAGIC1;
    out[2] = FORMAT_VERSION;
    let p = HEADER;
    for (let i = 0; i < T_LENGTH; i++, p += 8) view.setFloat64(p, s.t[i] ?? 0, true);
    const v = normalized(s.v);
    for (let i = 0; i < V_LENGTH; i++, p += 4) view.setFloat32(p, v[i] ?? 0, true);
    for (let i = 0; i < H_LENGTH; i++, p += 4) view.setUint32(p, s.h[i] ?? 0, true);
    return out;
  }

  /** null for bytes it cannot read (corrupt, another format version): the caller starts afresh. */
  decode(bytes: Uint8Array): BehaviourState | null {
    if (!(bytes instanceof Uint8Array) || bytes.length !== BEHAVIOUR_STATE_BYTES) return null;
    if (bytes[0] !== MAGIC0 || bytes[1] !== MAGIC1 || bytes[2] !== FORMAT_VERSION || bytes[3] !== 0) return null;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const s = State.fresh();
    let p = HEADER;
    for (let i = 0; i < T_LENGTH; i++, p += 8) {
      const x = view.getFloat64(p, true);
      if (!Number.isFinite(x)) return null;
      s.t[i] = x;
    }
    for (let i = 0; i < V_LENGTH; i++, p += 4) {
      const x = view.getFloat32(p, true);
      if (!Number.isFinite(x)) return null;
      s.v[i] = x;
    }
    for (let i = 0; i < H_LENGTH; i++, p += 4) s.h[i] = view.getUint32(p, true);
    const seen = s.t[T_SEEN] ?? 0;
    const basis = s.v[V_LATEST_BASIS] ?? 0;
    const known = s.v[V_KNOWN_NEXT] ?? 0;
    if (seen < 0 || !Number.isInteger(seen) || !Number.isInteger(basis) || basis < 0 || basis >= BASES.length) return null;
    if (!Number.isInteger(known) || known < 0 || known >= KNOWN_SYMBOLS) return null;
    for (const so of [V_OPS_SCALE, V_ROUTE_LONG_SCALE, V_ROUTE_SHORT_SCALE, V_HOURS_SCALE]) if (s.v[so] !== 1) return null;
    return s;
  }

  /** The latest score the state holds, when, and the basis; null before any. */
  latest(state: BehaviourState): { readonly score: number; readonly at: number; readonly basis: BehaviourBasis } | null {
    const s = own(state);
    const at = s.t[T_LATEST] ?? 0;
    if (at === 0) return null;
    return { score: s.v[V_LATEST_SCORE] ?? 0, at, basis: BASES[s.v[V_LATEST_BASIS] ?? 0] ?? "defaults" };
  }

  /** The features of `e` against `ref` (null: the defaults); novelty also against the key's own state `s`. */
  private score(s: State, seen: number, ref: State | null, e: BehaviourEvent, obs: Observed, hx: Hashes): Points {
    const p = new Points();
    const at = e.at;
    const rv = ref?.v;

    // Request rate at three scales: the largest robust z.
    let bestZ = 0;
    let bestI = -1;
    for (let i = 0; i < 3; i++) {
      const x = Math.log1p(obs.rates[i] ?? 0);
      const z = rv === undefined ? defaultRateZ(i, x) : statZ(rv, V_RATE_STATS + 3 * i, x, LOG_FLOOR);
      if (z > bestZ) {
        bestZ = z;
        bestI = i;
      }
    }
    if (bestI >= 0) {
      const pts = zPoints(bestZ, W.ratePerZ, W.rateCap);
      if (pts > 0) {
        const unit = RATE_UNITS[bestI] ?? "";
        const baseline = rv === undefined ? `default ceiling ${num(DEFAULT_RATES[bestI] ?? 0)}${unit}` : typical(rv, V_RATE_STATS + 3 * bestI, unit);
        p.add(RATE_NAMES[bestI] ?? "rate", pts, bestZ, `${num(obs.rates[bestI] ?? 0)}${unit}`, baseline, false);
      }
    }

    // Dormancy: a long gap (first use: since creation), then a burst within the hour after waking.
    const first = seen === 0 && (e.keyLastUsedAt ?? null) === null;
    const longest = s.v[V_GAP] ?? 0;
    const wokeNow = first ? obs.gapMs >= W.firstUseLateMs : obs.gapMs >= W.dormantMs && obs.gapMs >= W.dormantFactor * longest;
    if (wokeNow) {
      const baseline = first ? `key created ${duration(obs.gapMs)} before` : longest > 0 ? `longest gap before ${duration(longest)}` : "last use on the key's record";
      p.add(first ? "first-use.late" : "dormancy", W.dormancy, obs.gapMs / Math.max(longest, W.dormantMs / W.dormantFactor), `first request after ${duration(obs.gapMs)}`, baseline, false);
      s.t[T_WOKE] = at;
    } else if ((s.t[T_WOKE] ?? 0) > 0 && at - (s.t[T_WOKE] ?? 0) <= W.wakeWindowMs) {
      p.add("dormancy", W.dormancy, W.dormancy, `woke ${duration(at - (s.t[T_WOKE] ?? 0))} ago`, "after a long idle gap", false);
    }
    const woke = (s.t[T_WOKE] ?? 0) > 0 && at - (s.t[T_WOKE] ?? 0) <= W.wakeWindowMs;
    if (woke && obs.rates[1] >= W.burstPerMin) {
      p.add("dormancy.burst", W.dormancyBurst, W.dormancyBurst, `${num(obs.rates[1])}/min just after waking`, `burst threshold ${W.burstPerMin}/min`, false);
    }

    // Where from.
    let unfamiliar = false;
    if (e.network !== null) {
      const n = novelty(s, ref, H_NET, T_NET_FIRST, V_NET_COUNT, NETWORKS, hx.network, at);
      if (n > 0) {
        unfamiliar = true;
        p.unfamiliar = true;
        p.add("network.new", n === 2 ? W.networkNew : W.networkNew / 2, n === 2 ? W.networkNew : W.networkNew / 2, e.network, n === 2 ? knownText(s, ref, H_NET, NETWORKS, "networks") : "first used within the day", false);
      }
    }
    if (e.client !== null) {
      const n = novelty(s, ref, H_ADDR, T_ADDR_FIRST, V_ADDR_COUNT, ADDRESSES, hx.client, at);
      if (n > 0) {
        p.add("address.new", n === 2 ? W.addressNew : W.addressNew / 2, n === 2 ? W.addressNew : W.addressNew / 2, e.client, n === 2 ? knownText(s, ref, H_ADDR, ADDRESSES, "addresses") : "first used within the day", false);
      }
    }

    // Operations and routes.
    const op = opIndex(e.operation);
    if (e.operation !== null && ref !== null && (ref.t[T_SEEN] ?? 0) >= W.minSamples) {
      const opShare = share(ref.v, V_OPS, V_OPS_SCALE, op);
      if (opShare < W.rareShare) p.add("operation.new", W.operationNew, W.operationNew, e.operation, `${num(opShare * 100)} % of requests`, true);
    } else if (ref === null && (e.operation === "withdraw" || e.operation === "transfer")) {
      p.add("operation.new", W.operationNew, W.operationNew, e.operation, "defaults: a new key's first funds movement", true);
    }
    if (ref !== null && (ref.t[T_SEEN] ?? 0) >= W.minSamples) {
      const b = hx.route;
      const routeShare = share(ref.v, V_ROUTE_LONG, V_ROUTE_LONG_SCALE, b);
      if (routeShare < W.rareShare) p.add("route.new", W.routeNew, W.routeNew, e.route === "" ? "(no route)" : e.route, `${num(routeShare * 100)} % of requests`, true);
      // Mix: total variation distance between the recent routes (this one included) and the long
      // run. The key's own history only: a new key may well use a part of its account's routes.
      if (ref === s) {
        let tvd = 0;
        for (let i = 0; i < ROUTE_BUCKETS; i++) {
          const recent = share(s.v, V_ROUTE_SHORT, V_ROUTE_SHORT_SCALE, i) * (1 - SHORT_ALPHA) + (i === b ? SHORT_ALPHA : 0);
          tvd += Math.abs(recent - share(s.v, V_ROUTE_LONG, V_ROUTE_LONG_SCALE, i));
        }
        tvd /= 2;
        if (tvd > W.mixFree) {
          p.add("route.mix", Math.min(W.mixCap, W.mixPerUnit * (tvd - W.mixFree)), tvd, `${num(tvd * 100)} % of the recent route mix differs`, "the key's long-run route mix", true);
        }
      }
    }

    // Orders: symbols, liquidity, size.
    if (e.symbol !== null && e.operation === "order.place") this.order(p, s, ref, e, at, hx.symbol);
    // Flow: the value traded over the last minute, against the key's (or, cold, its account's).
    if (obs.flow > 0 && rv !== undefined) {
      const z = statZ(rv, V_FLOW_STATS, Math.log(obs.flow), LOG_FLOOR);
      if (z > W.zFree) p.add("flow.1m", zPoints(z, W.flowPerZ, W.flowCap), z, `${num(obs.flow)} traded in the last minute`, typical(rv, V_FLOW_STATS, ""), true);
    }

    // Withdrawals.
    if (e.operation === "withdraw") {
      let destNew = false;
      // A destination in the account's address book, past its cooldown: its owner named it.
      if (e.destination !== null && e.destinationKnown !== true) {
        const d = hx.destination;
        const mine = find(s.h, H_DEST, DESTINATIONS, d);
        const theirs = ref !== null && ref !== s ? find(ref.h, H_DEST, DESTINATIONS, d) : -1;
        const firstAt = Math.min(mine >= 0 ? (s.t[T_DEST_FIRST + mine] ?? at) : at, theirs >= 0 && ref !== null ? (ref.t[T_DEST_FIRST + theirs] ?? at) : at);
        if (at - firstAt < W.destinationYoungMs) {
          destNew = true;
          p.add("withdraw.destination-new", W.destinationNew, W.destinationNew, short(e.destination), firstAt === at ? "never used" : `first used ${duration(at - firstAt)} ago`, true);
        }
      }
      const value = e.value;
      if (value !== null && value > W.withdrawLarge) {
        const pts = Math.min(W.withdrawLargeCap, W.withdrawLargeBase + W.withdrawLargePerDecade * Math.log10(value / W.withdrawLarge));
        p.add("withdraw.value", pts, value / W.withdrawLarge, num(value), `large above ${num(W.withdrawLarge)}`, true);
      }
      if (obs.withdrawals > 1.5) {
        const pts = Math.min(W.withdrawVelocityCap, W.withdrawVelocity * (obs.withdrawals - 1));
        p.add("withdraw.velocity", pts, obs.withdrawals, `${num(obs.withdrawals)} withdrawals in the last hour`, "one", true);
      }
      if (destNew && unfamiliar) p.add("withdraw.new-network", W.withdrawNewNetwork, W.withdrawNewNetwork, "new destination from an unfamiliar network", "rule", true);
    }

    // Time of day.
    let rareHour = false;
    if (ref !== null && (ref.t[T_SEEN] ?? 0) >= W.hourMinEvents && (ref.t[T_LAST] ?? 0) - (ref.t[T_FIRST] ?? 0) >= W.hourMinSpanMs) {
      const hour = Math.floor((((at % DAY) + DAY) % DAY) / HOUR);
      const sum = ref.v[V_HOURS_SUM] ?? 0;
      const hourShare = sum > 0 ? (ref.v[V_HOURS + hour] ?? 0) / sum : 1;
      if (hourShare < W.hourRareShare) {
        rareHour = true;
        p.add("hour", W.hourRare, W.hourRare, `${hour}:00 UTC`, `${num(hourShare * 100)} % of requests in that hour`, false);
      }
    }

    // Combination: an unfamiliar network with anything unusual in what the request did, or at an
    // hour the key is (almost) never used (a key that keeps office hours, used at night from elsewhere).
    if (unfamiliar && (p.action >= W.comboMin || rareHour)) {
      const what = p.action >= W.comboMin ? `${num(p.action)} points of unusual activity` : "at an unusual hour";
      p.add("combination", W.comboNewNetwork, W.comboNewNetwork, `unfamiliar network with ${what}`, "rule", false);
    }

    // Failures.
    if (ref !== null && (ref.t[T_SEEN] ?? 0) >= W.minSamples && seen >= 10) {
      const failed = e.outcome === "refused" || e.outcome === "failed" ? 1 : 0;
      const recent = (s.v[V_ERR_SHORT] ?? 0) * (1 - SHORT_ALPHA) + failed * SHORT_ALPHA;
      const excess = recent - (ref.v[V_ERR_LONG] ?? 0);
      if (excess > W.errorsFree) p.add("errors", Math.min(W.errorsCap, W.errorsPerUnit * (excess - W.errorsFree) + 2), excess, `${num(recent * 100)} % of recent requests refused or failed`, `${num((ref.v[V_ERR_LONG] ?? 0) * 100)} % long run`, false);
      if ((e.operation === "order.place" || e.operation === "order.cancel") && (s.v[V_ORDERS] ?? 0) >= 20 && (ref.v[V_ORDERS] ?? 0) >= 50) {
        const c = e.operation === "order.cancel" ? 1 : 0;
        const recentC = (s.v[V_CANCEL_SHORT] ?? 0) * (1 - SHORT_ALPHA) + c * SHORT_ALPHA;
        const diff = Math.abs(recentC - (ref.v[V_CANCEL_LONG] ?? 0));
        if (diff > W.cancelFree) p.add("cancel-ratio", W.cancelPoints, diff, `${num(recentC * 100)} % cancels recently`, `${num((ref.v[V_CANCEL_LONG] ?? 0) * 100)} % long run`, false);
      }
    }
    return p;
  }

  private order(p: Points, s: State, ref: State | null, e: BehaviourEvent, at: number, sh: number): void {
    const symbol = e.symbol ?? "";
    const mine = find(s.h, H_SYM, SYMBOLS, sh);
    const theirs = ref !== null && ref !== s ? find(ref.h, H_SYM, SYMBOLS, sh) : -1;
    // New: never traded by the key (nor, cold, its account), or first traded within the hour.
    let isNew: boolean;
    let since = "";
    if (ref === null && mine < 0) {
      isNew = true; // defaults: every symbol of a new key is new; only its liquidity is judged
    } else if (mine >= 0 || theirs >= 0) {
      const firstAt = Math.min(mine >= 0 ? (s.t[T_SYM_FIRST + mine] ?? at) : at, theirs >= 0 && ref !== null ? (ref.t[T_SYM_FIRST + theirs] ?? at) : at);
      // Young only against an established history: in a key's (or account's) first day, everything is.
      isNew = at - firstAt < W.symbolYoungMs && firstAt - ((ref ?? s).t[T_FIRST] ?? 0) >= W.matureSpanMs;
      since = `first traded ${duration(at - firstAt)} ago`;
    } else {
      isNew = find(s.h, H_KNOWN, KNOWN_SYMBOLS, sh) < 0 && (ref === null || ref === s || find(ref.h, H_KNOWN, KNOWN_SYMBOLS, sh) < 0);
      since = isNew ? "never traded" : "traded before";
    }
    if (isNew) {
      if (ref !== null) p.add("symbol.new", W.symbolNew, W.symbolNew, symbol, since, true);
      const liquidity = this.liquidity(symbol);
      if (liquidity === undefined || !Number.isFinite(liquidity)) {
        p.add("symbol.liquidity", W.liquidityUnknown, W.liquidityUnknown, `${symbol}: 24 h volume unknown`, `liquid ≥ ${num(W.liquidAbove)}`, true);
      } else if (liquidity < W.liquidAbove) {
        const lo = Math.log(W.illiquidBelow);
        const hi = Math.log(W.liquidAbove);
        const f = liquidity <= W.illiquidBelow ? 1 : (hi - Math.log(liquidity)) / (hi - lo);
        p.add("symbol.liquidity", W.illiquidPoints * f, W.illiquidPoints * f, `${symbol}: 24 h volume ${num(liquidity)}`, `liquid ≥ ${num(W.liquidAbove)}`, true);
      }
    }
    // Size: notional against the symbol's (else all symbols'), quantity against the symbol's.
    const rs = mine >= 0 && ref === s ? mine : theirs;
    const rv = ref?.v;
    if (e.notional !== null && e.notional > 0) {
      const x = Math.log(e.notional);
      let z: number;
      let baseline: string;
      if (rv !== undefined && rs >= 0 && (rv[V_SYM + rs * SYM_FIELDS + 4] ?? 0) >= W.minSamples) {
        const o = V_SYM + rs * SYM_FIELDS + 2;
        z = statZ(rv, o, x, LOG_FLOOR);
        baseline = `${symbol}: ${typical(rv, o, "")}`;
      } else if (rv !== undefined) {
        z = statZ(rv, V_NOTIONAL, x, LOG_FLOOR);
        baseline = `all symbols: ${typical(rv, V_NOTIONAL, "")}`;
      } else {
        z = (x - DEFAULT_NOTIONAL_LOG) / (MAD_TO_SD * DEFAULT_NOTIONAL_MAD);
        baseline = `default ${num(Math.exp(DEFAULT_NOTIONAL_LOG))}`;
      }
      p.add("notional", zPoints(z, W.notionalPerZ, W.notionalCap), z, num(e.notional), baseline, true);
    }
    if (e.quantity !== null && e.quantity > 0 && rv !== undefined && rs >= 0) {
      const o = V_SYM + rs * SYM_FIELDS + 5;
      const x = Math.log(e.quantity);
      const z = statZ(rv, o, x, LOG_FLOOR);
      if (z > W.zFree) p.add("quantity", zPoints(z, W.quantityPerZ, W.quantityCap), z, `${num(e.quantity)} ${symbol}`, typical(rv, o, ""), true);
    }
  }
}

/** Defaults for a key with no basis: generous ceilings (a busy bot is not suspicious by itself). */
const DEFAULT_RATES = [30, 120, 3000] as const;
const DEFAULT_RATE_MAD = 0.4;
const DEFAULT_NOTIONAL_LOG = Math.log(5_000);
const DEFAULT_NOTIONAL_MAD = 1.2;

function defaultRateZ(i: number, x: number): number {
  return (x - Math.log1p(DEFAULT_RATES[i] ?? 0)) / (MAD_TO_SD * DEFAULT_RATE_MAD) + W.zFree;
}


/**
 * How new a network or address is: 2 unseen (by the key, and by its basis when that is the
 * account), 1 young (first used within `youngMs` and fewer than `youngEvents` events), 0 known.
 * With no basis (defaults) a key's own first addresses are not novel: there is nothing to compare.
 */
function novelty(s: State, ref: State | null, ho: number, tFirst: number, vCount: number, n: number, key: number, at: number): number {
  if (ref === null) return 0;
  const i = find(s.h, ho, n, key);
  if (i >= 0) {
    const firstAt = s.t[tFirst + i] ?? 0;
    const young = at - firstAt < W.youngMs && (s.v[vCount + i] ?? 0) < W.youngEvents && firstAt - (s.t[T_FIRST] ?? 0) >= W.matureSpanMs;
    if (!young) return 0;
    if (ref !== s && find(ref.h, ho, n, key) >= 0) return 0;
    return 1;
  }
  if (ref !== s && find(ref.h, ho, n, key) >= 0) return 0;
  return 2;
}

function knownText(s: State, ref: State | null, ho: number, n: number, what: string): string {
  let count = 0;
  for (let i = 0; i < n; i++) if ((s.h[ho + i] ?? 0) !== 0) count++;
  if (ref === null || ref === s) return `not among the key's ${count} recent ${what}`;
  let theirs = 0;
  for (let i = 0; i < n; i++) if ((ref.h[ho + i] ?? 0) !== 0) theirs++;
  return `not among the key's ${count} nor its account's ${theirs} recent ${what}`;
}

function short(text: string): string {
  return text.length <= 24 ? text : `${text.slice(0, 10)}…${text.slice(-10)}`;
}

const finite = (x: number | null): boolean => x === null || Number.isFinite(x);

/**
 * The event, or a copy with what cannot be used made harmless: a time that is not a finite number
 * becomes the state's last (no time passes), an amount that is not finite becomes unknown. Events
 * from `behaviourEvent` are always sane; this keeps anything else from poisoning a state.
 */
function sane(e: BehaviourEvent, s: State | null): BehaviourEvent {
  if (Number.isFinite(e.at) && Number.isFinite(e.keyCreatedAt) && finite(e.keyLastUsedAt ?? null) && finite(e.quantity) && finite(e.notional) && finite(e.amount) && finite(e.value)) return e;
  const at = Number.isFinite(e.at) ? e.at : (s?.t[T_LAST] ?? 0);
  const clean = (x: number | null): number | null => (x !== null && Number.isFinite(x) ? x : null);
  return {
    ...e,
    at,
    keyCreatedAt: Number.isFinite(e.keyCreatedAt) ? e.keyCreatedAt : at,
    keyLastUsedAt: clean(e.keyLastUsedAt ?? null),
    quantity: clean(e.quantity),
    notional: clean(e.notional),
    amount: clean(e.amount),
    value: clean(e.value),
  };
}

function fresh(e: BehaviourEvent): State {
  const s = State.fresh();
  s.t[T_FIRST] = e.at;
  // The first gap: since the key's last use when it was used before (a lost state), else since its creation.
  const used = e.keyLastUsedAt ?? null;
  const created = e.keyCreatedAt > 0 && e.keyCreatedAt <= e.at ? e.keyCreatedAt : e.at;
  s.t[T_LAST] = used !== null && Number.isFinite(used) && used >= created && used <= e.at ? used : created;
  s.t[T_CREATED] = e.keyCreatedAt;
  return s;
}

/** When the key first used the network (hashed) in its set, or `at` when it is not there. */
function networkFirstUse(s: State, key: number, at: number): number {
  const i = find(s.h, H_NET, NETWORKS, key);
  return i < 0 ? at : (s.t[T_NET_FIRST + i] ?? at);
}

/**
 * Counts a proved request's switch of network (a key's state only, before scoring): the decayed
 * number of switches, this one included, or 0 when the request has no network or did not prove the
 * key (anyone who knows a key's id can send from anywhere). A switch counts when the newer of the
 * two networks is recent and was first used well after the older (see `alternateRecentMs`).
 */
function alternation(s: State, e: BehaviourEvent, hx: Hashes): number {
  if (e.verified === false || hx.network === 0) return 0;
  const at = e.at;
  const prevAt = s.t[T_ALT_AT] ?? 0;
  const prev = s.h[H_ALT_NET] ?? 0;
  const c0 = s.v[V_ALT_SWITCHES] ?? 0;
  let c = c0 > 1e-3 ? decay(c0, at - prevAt, W.alternateTauMs) : 0;
  if (prev !== 0 && prev !== hx.network) {
    const a = networkFirstUse(s, prev, at);
    const b = networkFirstUse(s, hx.network, at);
    const newer = Math.max(a, b);
    if (at - newer < W.alternateRecentMs && newer - Math.min(a, b) >= W.alternateApartMs) c += 1;
  }
  s.v[V_ALT_SWITCHES] = c;
  s.h[H_ALT_NET] = hx.network;
  s.t[T_ALT_AT] = Math.max(prevAt, at);
  return c;
}

/**
 * A request that did not prove its key (a bad signature, refused at or before it): evidence of an
 * attack on the key by someone who knows its id, not of its holder's behaviour. Only the key's
 * signature failures (decayed over 10 min) count, and only such requests are scored by them; the
 * rest of the state (rates, routes, networks, errors, dormancy) is left as it was, so a flood of
 * them can neither wake a key nor make its owner's next request look unusual.
 */
function unproved(s: State, seen: number, basis: BehaviourBasis, e: BehaviourEvent): { readonly state: BehaviourState; readonly score: BehaviourScore } {
  const at = e.at;
  const a0 = s.v[V_AUTH] ?? 0;
  const auth = (a0 > 1e-3 ? decay(a0, at - (s.t[T_AUTH_AT] ?? at), AUTH_TAU) : 0) + (e.authFailure ? 1 : 0);
  s.v[V_AUTH] = auth;
  if (e.authFailure) s.t[T_AUTH_AT] = Math.max(s.t[T_AUTH_AT] ?? 0, at);
  const p = new Points();
  if (auth > W.authFree) {
    p.add("auth-failures", Math.min(W.authCap, W.authPer * (auth - W.authFree)), auth, `${num(auth)} signature failures in 10 min`, `${W.authFree} free`, false);
  }
  const score = Math.round(1000 * (1 - Math.exp(-p.total / W.saturation))) / 10;
  s.v[V_LATEST_SCORE] = score;
  s.v[V_LATEST_BASIS] = BASES.indexOf(basis);
  s.t[T_LATEST] = at;
  return { state: s, score: { keyId: e.keyId, account: e.account, at, score, basis, seen, contributions: p.list } };
}

/** Advances the state's decayed counters to the event and counts it; returns what it measured. */
function advance(s: State, e: BehaviourEvent): Observed {
  const last = s.t[T_LAST] ?? e.at;
  const dt = e.at - last;
  const v = s.v;
  const rates: [number, number, number] = [0, 0, 0];
  for (let i = 0; i < 3; i++) {
    const c = decay(v[V_RATE + i] ?? 0, dt, RATE_TAU[i] ?? MINUTE) + 1;
    v[V_RATE + i] = c;
    rates[i] = c;
  }
  // Mostly zero: no decay to compute, and nothing to store.
  const w0 = v[V_WD_COUNT] ?? 0;
  const withdrawals = (w0 > 1e-3 ? decay(w0, dt, WD_TAU) : 0) + (e.operation === "withdraw" ? 1 : 0);
  v[V_WD_COUNT] = withdrawals;
  const f0 = v[V_FLOW] ?? 0;
  const placed = e.operation === "order.place" && e.notional !== null && e.notional > 0 ? e.notional : 0;
  const flow = (f0 > 1e-3 ? decay(f0, dt, FLOW_TAU) : 0) + placed;
  v[V_FLOW] = Math.min(flow, 1e30); // float32 when encoded
  return { rates, gapMs: Math.max(0, dt), withdrawals, flow: placed > 0 ? flow : 0 };
}

/** Folds the event into the state's statistics, histograms and sets (after scoring). */
function fold(s: State, e: BehaviourEvent, obs: Observed, hx: Hashes, learn = true): void {
  const t = s.t;
  const v = s.v;
  const at = e.at;
  const seen = t[T_SEEN] ?? 0;
  t[T_SEEN] = seen + 1;
  if (seen > 0 && obs.gapMs > (v[V_GAP] ?? 0)) v[V_GAP] = obs.gapMs;
  t[T_LAST] = Math.max(t[T_LAST] ?? 0, at);
  if (learn) for (let i = 0; i < 3; i++) statUpdate(v, V_RATE_STATS + 3 * i, Math.log1p(obs.rates[i] ?? 0), RATE_ALPHA, LOG_FLOOR);

  // Histograms: long-run and recent shares (warm-up: a plain average until 1/n reaches alpha).
  const longA = Math.max(LONG_ALPHA, 1 / (seen + 1));
  const shortA = Math.max(SHORT_ALPHA, 1 / (seen + 1));
  histAdd(v, V_OPS, OPS, V_OPS_SCALE, opIndex(e.operation), longA);
  const b = hx.route;
  histAdd(v, V_ROUTE_LONG, ROUTE_BUCKETS, V_ROUTE_LONG_SCALE, b, longA);
  histAdd(v, V_ROUTE_SHORT, ROUTE_BUCKETS, V_ROUTE_SHORT_SCALE, b, shortA);
  hoursAdd(v, obs.gapMs, Math.floor((((at % DAY) + DAY) % DAY) / HOUR));
  const failed = e.outcome === "refused" || e.outcome === "failed" ? 1 : 0;
  v[V_ERR_SHORT] = (v[V_ERR_SHORT] ?? 0) * (1 - shortA) + failed * shortA;
  v[V_ERR_LONG] = (v[V_ERR_LONG] ?? 0) * (1 - longA) + failed * longA;
  if (e.operation === "order.place" || e.operation === "order.cancel") {
    const orders = v[V_ORDERS] ?? 0;
    const c = e.operation === "order.cancel" ? 1 : 0;
    const sa = Math.max(SHORT_ALPHA, 1 / (orders + 1));
    const la = Math.max(LONG_ALPHA, 1 / (orders + 1));
    v[V_CANCEL_SHORT] = (v[V_CANCEL_SHORT] ?? 0) * (1 - sa) + c * sa;
    v[V_CANCEL_LONG] = (v[V_CANCEL_LONG] ?? 0) * (1 - la) + c * la;
    v[V_ORDERS] = Math.min(orders + 1, 1e6);
  }

  // Where from.
  if (hx.network !== 0) touch(s, H_NET, T_NET_FIRST, T_NET_LAST, V_NET_COUNT, NETWORKS, hx.network, at);
  if (hx.client !== 0) touch(s, H_ADDR, T_ADDR_FIRST, T_ADDR_LAST, V_ADDR_COUNT, ADDRESSES, hx.client, at);

  // Orders: the symbol's entry (top symbols by decayed count), size statistics.
  if (e.symbol !== null && e.operation === "order.place") {
    const sh = hx.symbol;
    const h = s.h;
    let i = find(h, H_SYM, SYMBOLS, sh);
    if (i < 0) {
      if (find(h, H_KNOWN, KNOWN_SYMBOLS, sh) < 0) {
        const k = v[V_KNOWN_NEXT] ?? 0;
        h[H_KNOWN + k] = sh;
        v[V_KNOWN_NEXT] = (k + 1) % KNOWN_SYMBOLS;
      }
      // Replace the entry with the smallest decayed count.
      let low = Infinity;
      i = 0;
      for (let j = 0; j < SYMBOLS; j++) {
        if (h[H_SYM + j] === 0) {
          i = j;
          break;
        }
        const c = decay(v[V_SYM + j * SYM_FIELDS] ?? 0, at - (t[T_SYM_LAST + j] ?? 0), SYMBOL_TAU);
        if (c < low) {
          low = c;
          i = j;
        }
      }
      h[H_SYM + i] = sh;
      t[T_SYM_FIRST + i] = at;
      t[T_SYM_LAST + i] = at;
      v.fill(0, V_SYM + i * SYM_FIELDS, V_SYM + (i + 1) * SYM_FIELDS);
    }
    const o = V_SYM + i * SYM_FIELDS;
    v[o] = decay(v[o] ?? 0, at - (t[T_SYM_LAST + i] ?? at), SYMBOL_TAU) + 1;
    v[o + 1] = Math.min((v[o + 1] ?? 0) + 1, 1e6);
    t[T_SYM_LAST + i] = Math.max(t[T_SYM_LAST + i] ?? 0, at);
    if (learn && e.notional !== null && e.notional > 0) {
      const x = Math.log(e.notional);
      statUpdate(v, o + 2, x, STAT_ALPHA, LOG_FLOOR);
      statUpdate(v, V_NOTIONAL, x, STAT_ALPHA, LOG_FLOOR);
    }
    if (learn && e.quantity !== null && e.quantity > 0) statUpdate(v, o + 5, Math.log(e.quantity), STAT_ALPHA, LOG_FLOOR);
  }
  if (learn && obs.flow > 0) statUpdate(v, V_FLOW_STATS, Math.log(obs.flow), STAT_ALPHA, LOG_FLOOR);

  // Withdrawals.
  if (e.operation === "withdraw") {
    if (hx.destination !== 0) touch(s, H_DEST, T_DEST_FIRST, T_DEST_LAST, V_DEST_COUNT, DESTINATIONS, hx.destination, at);
    if (learn && e.value !== null && e.value > 0) statUpdate(v, V_WD_VALUE, Math.log(e.value), STAT_ALPHA, LOG_FLOOR);
  }
}
