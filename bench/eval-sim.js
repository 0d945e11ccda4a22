/**
 * The anomaly evaluation's simulation (issue 15, `npm run eval:anomaly`; eval-anomaly.js writes the
 * report): honest bots and seeded attacks sent through the real request lifecycle of a real core
 * with a fake clock — the pipeline's stages (Binance-dialect HMAC signatures, replay, limits,
 * shields), stage 10 (the policy service and the hold service over a demo-like withdrawal policy),
 * the audit log — into a small in-memory venue that records what was handed on. Nothing goes over
 * HTTP. The behaviour engine is reached through one adapter (eval-behaviour.js).
 *
 * Time is simulated: a priority queue of bot events by time; the core's clock is set to each
 * event's time (strictly increasing), the engine is settled after each simulated minute and after
 * each request of an attack, and the hold service's release loop is ticked every simulated hour.
 * Every random choice comes from one seeded PRNG, so a run is reproducible from its seed.
 */
import { createHmac, generateKeyPairSync, sign } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import process from "node:process";
import { URLSearchParams } from "node:url";
import { Portcullis, PortcullisError, StaticPrices, initDataDir, openDataDir, parseConfig, parseCreateKeyInput, valueOrThrow } from "../packages/portcullis/dist/index.js";
import { Lifecycle } from "../packages/portcullis/dist/pipeline/lifecycle.js";
import { createHoldHook } from "../packages/portcullis/dist/holds/hook.js";
import { HoldService } from "../packages/portcullis/dist/holds/service.js";
import { approvalMessage } from "../packages/portcullis/dist/holds/digest.js";
import { PolicyService } from "../packages/portcullis/dist/governance/policy-service.js";
import { AddressBook } from "../packages/portcullis/dist/governance/address-book.js";
import { heldRequestOf } from "../packages/portcullis/dist/gateway/proxy.js";
import { generateKeyId } from "../packages/portcullis/dist/contract/ids.js";
import { silentLogger } from "../packages/portcullis/dist/log/logger.js";
import { BINANCE_ROUTES } from "../packages/demo-exchange/dist/exchange/routes.js";
import { ACTING, BEHAVIOUR_CODES, attachBehaviour, coreOptions, holdOptions } from "./eval-behaviour.js";

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

/** Where simulated time begins: a Monday, 00:00 UTC. */
export const SIM_START = Date.UTC(2026, 9, 5, 0, 0, 0);

/** Every attack scenario, in the order they are scheduled in the attack period. */
export const SCENARIOS = ["leaked-key", "pump-illiquid", "dormant-wake", "drain-large", "drain-small", "credential-stuffing", "slow-scrape"];

export const SCENARIO_TEXT = {
  "leaked-key": "a trading key leaked and used from a new network: account read, then 30 large market sells, one every 2-4 s",
  "pump-illiquid": "three victims' keys, each from its own new address, market-buy the illiquid XYZUSDT for two minutes",
  "dormant-wake": "a key created at the start and never used wakes up from a new address: 25 limit buys, one a second",
  "drain-large": "a withdrawal key from a new address: account read, then one 15,000 USDT withdrawal to a new destination",
  "drain-small": "a withdrawal key from a new address: account read, then 40 withdrawals of 150-400 USDT, one every ~20 s",
  "credential-stuffing": "2,000 signed requests from 400 addresses in 3 minutes: 8 leaked key ids with wrong secrets (60 %), and 100 well-formed made-up ids",
  "slow-scrape": "a read key from a new address reads the account or open orders every 60-120 s for 6 hours",
};

export const DEFAULTS = { seed: 20261206, days: 14, keys: 40, scenarios: SCENARIOS, approveHolds: false };

/**
 * The venue's symbols: reference price (what the policy and the guardrails value things in) and
 * 24 h quote volume (the liquidity the behaviour engine is given; XYZUSDT is the illiquid pair).
 */
export const SYMBOLS = {
  BTCUSDT: { price: 60_000, volume: 2_000_000_000 },
  ETHUSDT: { price: 3_000, volume: 900_000_000 },
  SOLUSDT: { price: 150, volume: 150_000_000 },
  XYZUSDT: { price: 0.5, volume: 40_000 },
};
const LIQUID = ["BTCUSDT", "ETHUSDT", "SOLUSDT"];

/**
 * The demo's withdrawal policy (packages/demo-exchange/src/governance.ts): a daily cap, and a
 * withdrawal to a new destination or over 1,000 USDT-equivalent held for two treasury approvals.
 * Nobody approves an attacker's hold, so a held withdrawal is released only if its hold is approved.
 */
const POLICY = {
  description: "anomaly evaluation: the demo's withdrawal policy",
  rules: [
    { name: "daily cap", match: { kind: ["withdraw"], velocity: { window: "24h", per: "account", over: "20000" } }, action: { type: "block", reason: "daily cap" } },
    { name: "new destination", match: { kind: ["withdraw"], destination: "new" }, action: { type: "hold", approvals: [{ group: "treasury", count: 2 }] } },
    { name: "large withdrawal", match: { kind: ["withdraw"], amount: { over: "1000" } }, action: { type: "hold", approvals: [{ group: "treasury", count: 2 }] } },
    { name: "everything else", action: { type: "allow" } },
  ],
};
const INITIATOR = { actor: "eval", account: null, keyId: null, client: null, owner: null };

/** Which Portcullis control a refusal code is the action of (codes not listed are no action: a bad credential is refused, not acted on). */
function controlOf(code) {
  if (BEHAVIOUR_CODES.has(code)) return "behaviour";
  if (code === "IP_BLOCKED" || code === "KEY_BLOCKED" || code === "IP_BANNED") return "shield";
  if (code === "RATE_LIMITED" || code === "ORDERS_LIMITED" || code === "CONCURRENCY_LIMITED") return "limits";
  if (code.startsWith("GUARDRAIL_")) return "guardrails";
  if (code === "POLICY_BLOCKED") return "policy";
  if (code === "IP_NOT_ALLOWED") return "allowlist";
  if (code === "SCOPE_MISSING") return "scopes";
  if (code === "KEY_IDLE_EXPIRED") return "idle expiry";
  return null;
}

/** mulberry32: a small seeded PRNG (32-bit state), uniform in [0, 1). */
export function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Random {
  constructor(seed) {
    this.next = mulberry32(seed);
  }
  uniform(lo, hi) {
    return lo + (hi - lo) * this.next();
  }
  int(lo, hi) {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick(list) {
    return list[Math.floor(this.next() * list.length)];
  }
  chance(p) {
    return this.next() < p;
  }
  /** Exponential with this mean (Poisson arrivals). */
  exp(mean) {
    return -mean * Math.log(1 - this.next());
  }
  /** Log-normal with this median and log-space sigma. */
  lognormal(median, sigma) {
    const u = 1 - this.next();
    const v = this.next();
    return median * Math.exp(sigma * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v));
  }
  hex(n) {
    let s = "";
    for (let i = 0; i < n; i++) s += "0123456789abcdef"[Math.floor(this.next() * 16)];
    return s;
  }
}

/** A binary min-heap of events by time (then by insertion order, so equal times are stable). */
class EventQueue {
  constructor() {
    this.items = [];
    this.seq = 0;
  }
  get size() {
    return this.items.length;
  }
  push(at, run) {
    const item = { at, seq: this.seq++, run };
    const a = this.items;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!EventQueue.before(a[i], a[p])) break;
      [a[i], a[p]] = [a[p], a[i]];
      i = p;
    }
  }
  pop() {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && EventQueue.before(a[l], a[m])) m = l;
        if (r < a.length && EventQueue.before(a[r], a[m])) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m], a[i]];
        i = m;
      }
    }
    return top;
  }
  static before(x, y) {
    return x.at < y.at || (x.at === y.at && x.seq < y.seq);
  }
}

function fmtPrice(x) {
  return x >= 100 ? x.toFixed(2) : x.toFixed(4);
}

function fmtQty(x) {
  return x.toFixed(6);
}

/** A Binance SIGNED request: the parameters, `timestamp`, and the hex HMAC-SHA256 `signature` of the query, in the query string. */
function binanceRequest(method, path, params, key, secret, at, ip) {
  const query = new URLSearchParams({ ...params, timestamp: String(at) }).toString();
  const signature = createHmac("sha256", secret).update(query).digest("hex");
  return {
    method,
    url: `${path}?${query}&signature=${signature}`,
    headers: { host: "gateway.test", "x-mbx-apikey": key },
    body: Buffer.alloc(0),
    socketAddress: ip,
  };
}

/** The in-memory venue: what the lifecycle handed on, and the answer's outcome on each request's record. */
function createVenue() {
  const byOperation = new Map();
  const venue = {
    exchange: {
      handOn(_ctx, sent) {
        sent.forwarded = true;
        return { status: 200 };
      },
      render(_ctx, outcome, sent) {
        sent.outcome = outcome.kind;
        if (outcome.kind === "refused") sent.code = outcome.denial.code;
        else if (outcome.kind === "failed") sent.code = outcome.error.code;
        else if (outcome.kind === "held") {
          sent.operationId = outcome.ticket.operationId;
          byOperation.set(outcome.ticket.operationId, sent);
        }
      },
    },
    /** The hold service's releaser: a held request released (approved) reaches the venue here. */
    releaser(_request, row) {
      const sent = byOperation.get(row.id);
      if (sent !== undefined) {
        sent.released = true;
        sent.onRelease?.(sent);
      }
      return Promise.resolve({ status: 200, body: Buffer.from("{}"), contentType: "application/json" });
    },
  };
  return venue;
}

/** Counters of what one actor (the honest population, or one attack) sent and achieved. */
function newTally() {
  return { requests: 0, reads: 0, ordersSent: 0, orders: 0, notional: 0, cancels: 0, withdrawalsSent: 0, withdrawalsReleased: 0, withdrawalsHeld: 0, withdrawalValue: 0, ordersHeld: 0, refused: {} };
}

function snapshot(t) {
  return { requests: t.requests, reads: t.reads, ordersSent: t.ordersSent, orders: t.orders, notional: Math.round(t.notional), withdrawalsSent: t.withdrawalsSent, withdrawalsReleased: t.withdrawalsReleased, withdrawalValue: Math.round(t.withdrawalValue) };
}

/**
 * Runs the evaluation and resolves to its results (eval-anomaly.js turns them into the report).
 * `seed`, `days` (simulated days; attacks run in the second half), `keys` (honest keys), and
 * `scenarios` (names from SCENARIOS). `approveHolds`: a what-if — a careless treasury, whose two
 * approvers approve every held withdrawal a minute after it is held, so what stage 10 held is
 * released (and counted) unless something else stopped it. `attach` reaches the core's behaviour
 * engine (default: the adapter's `attachBehaviour`); a test gives its own, which may also
 * `observe(sent)` each request the harness sent (its ground truth: `actor` "honest" or the
 * scenario's name, `keyId`, `op`) — the real engine observes through the pipeline instead.
 * `progress` gets a line now and then.
 */
export async function runEvaluation(
  { seed = DEFAULTS.seed, days = DEFAULTS.days, keys: honestCount = DEFAULTS.keys, scenarios = DEFAULTS.scenarios, approveHolds = DEFAULTS.approveHolds, attach = attachBehaviour } = {},
  progress = () => {},
) {
  for (const name of scenarios) if (!SCENARIOS.includes(name)) throw new TypeError(`unknown scenario ${name} (known: ${SCENARIOS.join(", ")})`);
  if (!Number.isInteger(days) || days < 1 || days > 60) throw new TypeError("days: an integer from 1 to 60");
  if (!Number.isInteger(honestCount) || honestCount < 5 || honestCount > 500) throw new TypeError("keys: an integer from 5 to 500");
  const wallStart = performance.now();
  const cpuStart = process.cpuUsage();
  const rnd = new Random(seed);
  const clock = { ms: SIM_START };
  const now = () => clock.ms;
  const end = SIM_START + days * DAY;

  const dataDir = mkdtempSync(join(tmpdir(), "portcullis-eval-"));
  await initDataDir(dataDir, "test");
  const data = await openDataDir(dataDir, { pollIntervalMs: 0 });
  const { limits } = parseConfig({ gateway: { upstream: "http://127.0.0.1:1" }, routes: BINANCE_ROUTES }, tmpdir());
  const prices = new StaticPrices({
    symbols: Object.fromEntries(Object.entries(SYMBOLS).map(([s, v]) => [s, String(v.price)])),
    assets: { USDT: "1", BTC: "60000", ETH: "3000", SOL: "150", XYZ: "0.5" },
  });
  const core = new Portcullis({
    store: data.store,
    envelope: data.envelope,
    environment: "test",
    routes: BINANCE_ROUTES,
    limits,
    prices,
    now,
    logger: silentLogger(),
    ...coreOptions({ volumes: Object.fromEntries(Object.entries(SYMBOLS).map(([s, v]) => [s, v.volume])) }),
  });
  const logger = silentLogger();
  const holds = new HoldService({ store: data.store.holds, envelope: data.envelope, logger, now, pollMs: 1_000_000, ...holdOptions(prices) });
  const policy = await PolicyService.open({ store: data.store, pollIntervalMs: 0, logger, prices, holder: holds, now });
  holds.usePolicy(policy);
  const venue = createVenue();
  holds.setRequestReleaser(venue.releaser);
  const addresses = new AddressBook({ store: data.store, policy, holder: holds, now });
  const lifecycle = new Lifecycle({
    pipeline: core.pipeline,
    exchange: venue.exchange,
    surface: "gateway",
    audit: core.audit,
    logger,
    hold: createHoldHook({ policy, holds, capture: (ctx) => heldRequestOf(ctx, core.pipeline.credentialHeaders), logger }),
  });
  const engine = attach(core);

  try {
    const applied = await policy.apply(POLICY, INITIATOR);
    if (applied.state !== "applied") throw new Error("the evaluation policy was not applied");
    // The treasury: two approvers with their own Ed25519 keys (they approve only with approveHolds).
    const approvers = [];
    for (const name of ["alice", "bob"]) {
      const pair = generateKeyPairSync("ed25519");
      await holds.addApprover(name, ["treasury"], pair.publicKey.export({ type: "spki", format: "pem" }).toString(), "eval");
      approvers.push({ name, privateKey: pair.privateKey });
    }

    // --- Keys: accounts of five bots each (market maker, arbitrageur, periodic buyer, portfolio
    // reader, a bot whose cloud host moves), and one dormant key (a victim's, never used by its owner).
    const KINDS = ["mm", "arb", "dca", "reader", "mover"];
    const SCOPES = { mm: ["read", "trade"], arb: ["read", "trade"], dca: ["read", "trade", "withdraw"], reader: ["read"], mover: ["read", "trade"], dormant: ["read", "trade"] };
    const bots = [];
    const accounts = Math.ceil(honestCount / KINDS.length);
    for (let i = 0; i < honestCount; i++) {
      const kind = KINDS[i % KINDS.length];
      const a = Math.floor(i / KINDS.length);
      const account = `acct-${String(a + 1).padStart(2, "0")}`;
      const { key, secret } = await core.keys.create(valueOrThrow(parseCreateKeyInput({ account, scopes: SCOPES[kind], dialects: ["binance"], label: `${kind}-${i}` }, clock.ms)), "eval");
      // Each bot has its cloud address: its own /24 per account, a host per bot.
      const ip = `34.${90 + (a % 100)}.${10 + ((a * 7 + i) % 200)}.${20 + (i % 200)}`;
      bots.push({ index: i, kind, account, id: key.id, secret, ip, victimFrom: Number.POSITIVE_INFINITY, openOrders: [], nextOrderId: 1 });
    }
    const dormant = await core.keys.create(valueOrThrow(parseCreateKeyInput({ account: "acct-01", scopes: SCOPES.dormant, dialects: ["binance"], label: "dormant" }, clock.ms)), "eval");
    // The periodic buyers' saved withdrawal addresses (cooling down for the first 24 h).
    for (const bot of bots.filter((b) => b.kind === "dca")) {
      bot.destination = `TSaved${bot.account.replace("-", "")}${"1".repeat(20)}`.slice(0, 34);
      const added = await addresses.add({ account: bot.account, asset: "USDT", address: bot.destination, network: "TRX", label: "cold wallet" }, INITIATOR, null);
      if (added.state !== "applied") throw new Error(`the address book entry of ${bot.account} was not added (${added.state})`);
    }

    // --- Accounting.
    const honest = newTally();
    const honestActions = []; // { keyId, action, at }
    const honestWithdrawals = { sent: 0, forwarded: 0, held: 0, released: 0 };
    const scenarioState = new Map();
    const byKey = new Map(bots.map((b) => [b.id, b]));
    let requestCounter = 0;
    let honestRequests = 0;
    let maliciousRequests = 0;

    const queue = new EventQueue();

    /** approveHolds: both approvers approve a held operation a minute after it was held; the release loop then releases it. */
    const approveLater = (operationId) => {
      if (!approveHolds) return;
      queue.push(clock.ms + MINUTE, async () => {
        try {
          const { digest } = await holds.view(operationId);
          for (const approver of approvers) {
            const signature = sign(null, approvalMessage("approve", digest), approver.privateKey).toString("base64");
            await holds.decide(operationId, approver.name, "approve", digest, signature);
          }
        } catch (err) {
          // No longer approvable (cancelled, say, when its key was revoked): it is not released.
          if (!(err instanceof PortcullisError)) throw err;
        }
        await holds.tick();
        await holds.idle();
      });
    };

    /** Sends one request through the lifecycle; resolves to its record (outcome, code, forwarded…). */
    const send = async (request, meta) => {
      const sent = { ...meta, forwarded: false, outcome: null, code: null, operationId: null, released: false };
      requestCounter += 1;
      await lifecycle.serve(request, `r${requestCounter}`, sent);
      engine.observe?.(sent, clock.ms);
      return sent;
    };

    const tallyHonest = (sent) => {
      honestRequests += 1;
      honest.requests += 1;
      if (sent.outcome === "refused" || sent.outcome === "failed") honest.refused[sent.code] = (honest.refused[sent.code] ?? 0) + 1;
      if (sent.op === "read") honest.reads += 1;
      if (sent.op === "order") {
        honest.ordersSent += 1;
        if (sent.forwarded) {
          honest.orders += 1;
          honest.notional += sent.notional;
        }
      }
      if (sent.op === "withdraw") {
        honestWithdrawals.sent += 1;
        if (sent.forwarded) honestWithdrawals.forwarded += 1;
        if (sent.outcome === "held") {
          honestWithdrawals.held += 1;
          sent.onRelease = () => {
            honestWithdrawals.released += 1;
          };
          approveLater(sent.operationId);
        }
      }
    };

    // --- Honest bots: each schedules its own next request.
    const honestSend = async (bot, method, path, params, op, extra = {}) => {
      const sent = await send(binanceRequest(method, path, params, bot.id, bot.secret, clock.ms, bot.ip), { actor: "honest", keyId: bot.id, op, ...extra });
      tallyHonest(sent);
      return sent;
    };
    const placeLimit = async (bot, symbol, notional) => {
      const price = SYMBOLS[symbol].price * (1 + (rnd.chance(0.5) ? 1 : -1) * rnd.uniform(0.0005, 0.003));
      const qty = notional / price;
      const side = rnd.chance(0.5) ? "BUY" : "SELL";
      const sent = await honestSend(bot, "POST", "/api/v3/order", { symbol, side, type: "LIMIT", timeInForce: "GTC", quantity: fmtQty(qty), price: fmtPrice(price), newClientOrderId: `c${rnd.hex(16)}` }, "order", { notional: qty * price });
      if (sent.forwarded) bot.openOrders.push({ symbol, orderId: bot.nextOrderId++ });
    };
    const cancelOne = async (bot) => {
      const order = bot.openOrders.shift();
      if (order === undefined) return;
      await honestSend(bot, "DELETE", "/api/v3/order", { symbol: order.symbol, orderId: String(order.orderId) }, "cancel");
    };
    const market = (bot, symbol, side, notional) =>
      honestSend(bot, "POST", "/api/v3/order", { symbol, side, type: "MARKET", quantity: fmtQty(notional / SYMBOLS[symbol].price), newClientOrderId: `c${rnd.hex(16)}` }, "order", { notional });
    const read = (bot, path) => honestSend(bot, "GET", path, path === "/api/v3/openOrders" ? { symbol: LIQUID[bot.index % LIQUID.length] } : {}, "read");

    const STEP = {
      // A market maker: quotes and cancels on its pair around the clock, one request every ~20 s.
      async mm(bot) {
        const symbol = LIQUID[bot.index % LIQUID.length];
        const r = rnd.next();
        if (r < 0.5 || bot.openOrders.length === 0) await placeLimit(bot, symbol, rnd.lognormal(1500, 0.5));
        else if (r < 0.93) await cancelOne(bot);
        else if (r < 0.98) await read(bot, "/api/v3/openOrders");
        else await read(bot, "/api/v3/account");
        return rnd.exp(20_000);
      },
      // An arbitrageur: checks its account every ~minute; now and then two market orders across pairs.
      async arb(bot) {
        if (rnd.chance(0.3)) {
          const a = rnd.pick(LIQUID);
          const b = rnd.pick(LIQUID.filter((s) => s !== a));
          const notional = rnd.lognormal(4000, 0.4);
          await market(bot, a, "BUY", notional);
          clock.ms += rnd.int(40, 300);
          await market(bot, b, "SELL", notional * rnd.uniform(0.98, 1.02));
        } else await read(bot, "/api/v3/account");
        return rnd.exp(60_000);
      },
      // A periodic buyer: 50-150 USDT of BTC every hour at its minute, a daily account read, and a
      // weekly withdrawal of 200-800 USDT to its saved address.
      async dca(bot) {
        await market(bot, "BTCUSDT", "BUY", rnd.uniform(50, 150));
        const hourOfDay = new Date(clock.ms).getUTCHours();
        if (hourOfDay === bot.index % 24) {
          clock.ms += rnd.int(500, 3000);
          await read(bot, "/api/v3/account");
          const day = Math.floor((clock.ms - SIM_START) / DAY);
          if (day >= 1 && day % 7 === bot.index % 7) {
            clock.ms += rnd.int(500, 3000);
            await honestSend(bot, "POST", "/sapi/v1/capital/withdraw/apply", { coin: "USDT", network: "TRX", address: bot.destination, amount: rnd.uniform(200, 800).toFixed(2) }, "withdraw");
          }
        }
        return HOUR + rnd.int(-20_000, 20_000);
      },
      // A portfolio reader: working hours only (its own ten hours of the day), account every 5 min, open orders every 15.
      async reader(bot) {
        const startHour = 6 + (bot.index % 5);
        const hour = new Date(clock.ms).getUTCHours();
        if (hour >= startHour && hour < startHour + 10) {
          await read(bot, "/api/v3/account");
          bot.reads = (bot.reads ?? 0) + 1;
          if (bot.reads % 3 === 0) await read(bot, "/api/v3/openOrders");
          return 5 * MINUTE + rnd.int(-5_000, 5_000);
        }
        const next = new Date(clock.ms);
        next.setUTCHours(startHour, rnd.int(0, 4), rnd.int(0, 59), 0);
        let at = next.getTime();
        if (at <= clock.ms) at += DAY;
        return at - clock.ms;
      },
      // A bot whose cloud host moves: a small quote and its cancel, a request every ~90 s.
      async mover(bot) {
        if (bot.openOrders.length > 0) await cancelOne(bot);
        else await placeLimit(bot, LIQUID[bot.index % LIQUID.length], rnd.lognormal(600, 0.4));
        return rnd.exp(90_000);
      },
    };
    // The moving bots' host moves: two or three times, half within its /24, half to a new /24 of the same cloud.
    for (const bot of bots.filter((b) => b.kind === "mover")) {
      const moves = rnd.int(2, 3);
      for (let m = 0; m < moves; m++) {
        queue.push(SIM_START + rnd.uniform(0.1, 0.95) * days * DAY, () => {
          const [a, b, c] = bot.ip.split(".");
          bot.ip = rnd.chance(0.5) ? `${a}.${b}.${c}.${rnd.int(2, 250)}` : `${a}.${b}.${rnd.int(2, 250)}.${rnd.int(2, 250)}`;
          bot.moves = (bot.moves ?? 0) + 1;
          return Promise.resolve();
        });
      }
    }
    const schedule = (bot, at) => {
      queue.push(at, async () => {
        const delay = await STEP[bot.kind](bot);
        schedule(bot, clock.ms + Math.max(1, Math.round(delay)));
      });
    };
    for (const bot of bots) schedule(bot, SIM_START + rnd.int(1_000, bot.kind === "dca" ? HOUR : 60_000));

    // --- Attacks: each in its own slot of the second half of the period, at a seeded time.
    const attackFrom = SIM_START + Math.floor(days / 2) * DAY;
    const slot = (end - attackFrom) / Math.max(1, scenarios.length);
    const victims = (kind, n) => {
      const list = bots.filter((b) => b.kind === kind && b.victimFrom === Number.POSITIVE_INFINITY && b.stuffed !== true);
      return list.slice(0, n);
    };
    for (const [i, name] of scenarios.entries()) {
      const start = Math.round(attackFrom + i * slot + rnd.uniform(0.05, 0.45) * slot);
      const state = { name, start, keys: [], tally: newTally(), firstAction: null, before: null, actions: [], finished: null, maxScore: null, maxScoreBefore: null };
      scenarioState.set(name, state);
      const ATTACK = {
        "leaked-key": () => attackLeaked(state, victims("arb", 1)),
        "pump-illiquid": () => attackPump(state, [...victims("mm", 2), ...victims("mover", 1)]),
        "dormant-wake": () => attackDormant(state),
        "drain-large": () => attackDrain(state, victims("dca", 1), false),
        "drain-small": () => attackDrain(state, victims("dca", 1), true),
        "credential-stuffing": () => attackStuffing(state),
        "slow-scrape": () => attackScrape(state, victims("reader", 1)),
      };
      // Victims are chosen now (distinct keys per scenario); the attack's steps are events in the
      // queue (each yields the delay to its next request), so honest traffic goes on meanwhile.
      const steps = ATTACK[name]()();
      const step = async () => {
        const { value, done } = await steps.next();
        if (done) finish(state);
        else queue.push(clock.ms + Math.max(1, value), step);
      };
      queue.push(start, step);
    }

    /** Marks `keys` as this scenario's from its start: actions on them from then on are the attack's. */
    function claim(state, keyList) {
      for (const bot of keyList) {
        bot.victimFrom = Math.min(bot.victimFrom, state.start);
        state.keys.push(bot.id);
      }
    }

    const actionOf = (state, control, what, at) => {
      if (state.firstAction !== null) return;
      state.firstAction = { control, what, at, seconds: (at - state.start) / 1000, requests: state.tally.requests };
      state.before = snapshot(state.tally);
    };

    /** One attacker request: sent, counted against the scenario, judged for a control's action. */
    const attackSend = async (state, key, secret, ip, method, path, params, op, extra = {}) => {
      clock.ms += 1;
      const sent = await send(binanceRequest(method, path, params, key, secret, clock.ms, ip), { actor: state.name, keyId: key, op, ...extra });
      maliciousRequests += 1;
      const t = state.tally;
      t.requests += 1;
      if (sent.outcome === "refused" || sent.outcome === "failed") {
        t.refused[sent.code] = (t.refused[sent.code] ?? 0) + 1;
        const control = controlOf(sent.code);
        if (control !== null) {
          // The refused request achieved nothing: what came before it is the attacker's gain.
          t.requests -= 1;
          actionOf(state, control, `refused ${sent.code}`, clock.ms);
          t.requests += 1;
        }
      }
      if (op === "read" && sent.forwarded) t.reads += 1;
      if (op === "order") {
        t.ordersSent += 1;
        if (sent.forwarded) {
          t.orders += 1;
          t.notional += extra.notional;
        } else if (sent.outcome === "held") {
          // Held by a step-up (stage 11 through stage 10): the attacker's only if it is released.
          t.ordersHeld += 1;
          sent.onRelease = () => {
            t.orders += 1;
            t.notional += extra.notional;
          };
          approveLater(sent.operationId);
        }
      }
      if (op === "withdraw") {
        t.withdrawalsSent += 1;
        if (sent.forwarded) {
          t.withdrawalsReleased += 1;
          t.withdrawalValue += extra.amount;
        } else if (sent.outcome === "held") {
          t.withdrawalsHeld += 1;
          sent.onRelease = () => {
            t.withdrawalsReleased += 1;
            t.withdrawalValue += extra.amount;
          };
          t.requests -= 1;
          actionOf(state, "policy", "held for approval (stage 10)", clock.ms);
          t.requests += 1;
          approveLater(sent.operationId);
        }
      }
      // Responses land before the attacker's next request (they take milliseconds in real time).
      await engine.settle();
      return sent;
    };

    const attackerIp = () => `185.${rnd.int(200, 230)}.${rnd.int(1, 250)}.${rnd.int(2, 250)}`;
    const finish = (state) => {
      state.finished = clock.ms;
    };

    function attackLeaked(state, keyList) {
      claim(state, keyList);
      return async function* attack() {
        const bot = keyList[0];
        if (bot === undefined) return;
        const ip = attackerIp();
        await attackSend(state, bot.id, bot.secret, ip, "GET", "/api/v3/account", {}, "read");
        yield rnd.int(2000, 4000);
        await attackSend(state, bot.id, bot.secret, ip, "GET", "/api/v3/openOrders", { symbol: "BTCUSDT" }, "read");
        for (let n = 0; n < 30; n++) {
          yield rnd.int(2000, 4000);
          const symbol = rnd.pick(LIQUID);
          const notional = rnd.uniform(8_000, 25_000);
          await attackSend(state, bot.id, bot.secret, ip, "POST", "/api/v3/order", { symbol, side: "SELL", type: "MARKET", quantity: fmtQty(notional / SYMBOLS[symbol].price), newClientOrderId: `x${rnd.hex(16)}` }, "order", { notional });
        }
      };
    }

    function attackPump(state, keyList) {
      claim(state, keyList);
      return async function* attack() {
        const ips = keyList.map(() => `45.${rnd.int(130, 150)}.${rnd.int(1, 250)}.${rnd.int(2, 250)}`);
        const stop = clock.ms + 120_000;
        let n = 0;
        while (clock.ms < stop && keyList.length > 0) {
          const k = n % keyList.length;
          const bot = keyList[k];
          const notional = rnd.uniform(2_000, 8_000);
          await attackSend(state, bot.id, bot.secret, ips[k], "POST", "/api/v3/order", { symbol: "XYZUSDT", side: "BUY", type: "MARKET", quoteOrderQty: notional.toFixed(2), newClientOrderId: `p${rnd.hex(16)}` }, "order", { notional });
          n += 1;
          yield rnd.int(1500, 2500);
        }
      };
    }

    function attackDormant(state) {
      state.keys.push(dormant.key.id);
      return async function* attack() {
        const ip = attackerIp();
        await attackSend(state, dormant.key.id, dormant.secret, ip, "GET", "/api/v3/account", {}, "read");
        for (let n = 0; n < 25; n++) {
          yield rnd.int(800, 1200);
          const symbol = rnd.chance(0.5) ? "SOLUSDT" : "XYZUSDT";
          const notional = rnd.uniform(3_000, 10_000);
          const price = SYMBOLS[symbol].price * 1.02;
          await attackSend(state, dormant.key.id, dormant.secret, ip, "POST", "/api/v3/order", { symbol, side: "BUY", type: "LIMIT", timeInForce: "GTC", quantity: fmtQty(notional / price), price: fmtPrice(price), newClientOrderId: `d${rnd.hex(16)}` }, "order", { notional });
        }
      };
    }

    function attackDrain(state, keyList, small) {
      claim(state, keyList);
      return async function* attack() {
        const bot = keyList[0];
        if (bot === undefined) return;
        const ip = attackerIp();
        const address = `TAttacker${rnd.hex(25)}`;
        await attackSend(state, bot.id, bot.secret, ip, "GET", "/api/v3/account", {}, "read");
        const count = small ? 40 : 1;
        for (let n = 0; n < count; n++) {
          yield rnd.int(small ? 15_000 : 5_000, small ? 25_000 : 10_000);
          const amount = small ? rnd.uniform(150, 400) : 15_000;
          await attackSend(state, bot.id, bot.secret, ip, "POST", "/sapi/v1/capital/withdraw/apply", { coin: "USDT", network: "TRX", address, amount: amount.toFixed(2) }, "withdraw", { amount });
        }
      };
    }

    function attackStuffing(state) {
      // Leaked key ids (the readers' and the market makers'), without their secrets: keys no other
      // attack uses (marked, so that a later scenario picks other victims), so that what happens
      // to them is this attack's doing.
      const leaked = bots.filter((b) => (b.kind === "reader" || b.kind === "mm") && b.victimFrom === Number.POSITIVE_INFINITY).slice(0, 8);
      for (const bot of leaked) bot.stuffed = true;
      for (const bot of leaked) state.keys.push(bot.id);
      state.collateral = leaked.map((b) => b.id);
      return async function* attack() {
        const ips = Array.from({ length: 400 }, () => `${rnd.int(60, 110)}.${rnd.int(1, 250)}.${rnd.int(1, 250)}.${rnd.int(2, 250)}`);
        // Made-up ids, well formed (a list of ids that exist nowhere): 100 of them.
        const madeUp = Array.from({ length: 100 }, () => generateKeyId("test"));
        const attempts = 2_000;
        const gap = 180_000 / attempts;
        for (let n = 0; n < attempts; n++) {
          const ip = ips[n % ips.length];
          let keyId;
          if (rnd.chance(0.6) && leaked.length > 0) keyId = rnd.pick(leaked).id;
          else keyId = madeUp[n % madeUp.length];
          await attackSend(state, keyId, rnd.hex(64), ip, "GET", "/api/v3/account", {}, "read");
          yield Math.round(gap * rnd.uniform(0.5, 1.5));
        }
      };
    }

    function attackScrape(state, keyList) {
      claim(state, keyList);
      return async function* attack() {
        const bot = keyList[0];
        if (bot === undefined) return;
        const ip = attackerIp();
        const stop = clock.ms + 6 * HOUR;
        while (clock.ms < stop) {
          if (rnd.chance(0.6)) await attackSend(state, bot.id, bot.secret, ip, "GET", "/api/v3/account", {}, "read");
          else await attackSend(state, bot.id, bot.secret, ip, "GET", "/api/v3/openOrders", { symbol: "BTCUSDT" }, "read");
          yield rnd.int(60_000, 120_000);
        }
      };
    }

    // --- What the behaviour engine reports, attributed: to an attack (a key it uses, from its start
    // to an hour after its end), else to the honest owner (before any attack on the key), else nobody.
    const attribute = (keyId, at) => {
      for (const state of scenarioState.values()) {
        if (state.keys.includes(keyId) && at >= state.start && (state.finished === null || at <= state.finished + HOUR)) return state;
      }
      const bot = byKey.get(keyId);
      return bot !== undefined && at < bot.victimFrom ? "honest" : null;
    };
    const honestScores = new Array(101).fill(0);
    const unsubscribeAction = engine.onAction((record) => {
      const owner = attribute(record.keyId, record.at);
      if (owner === "honest") honestActions.push({ keyId: record.keyId, action: record.action, at: record.at });
      else if (owner !== null) {
        owner.actions.push({ action: record.action, score: record.score, at: record.at });
        if (ACTING.has(record.action)) actionOf(owner, "behaviour", `${record.action} (score ${record.score})`, record.at);
      }
    });
    const unsubscribeScore = engine.onScore((score) => {
      const owner = attribute(score.keyId, score.at);
      const bucket = Math.max(0, Math.min(100, Math.round(score.score)));
      if (owner === "honest") honestScores[bucket] += 1;
      else if (owner !== null) {
        owner.maxScore = Math.max(owner.maxScore ?? 0, score.score);
        if (owner.firstAction === null) owner.maxScoreBefore = Math.max(owner.maxScoreBefore ?? 0, score.score);
      }
    });
    const unsubscribe = () => {
      unsubscribeAction();
      unsubscribeScore();
    };

    // --- The run: events in time order; settle each simulated minute, tick the holds each hour.
    let lastMinute = Math.floor(SIM_START / MINUTE);
    let lastHour = Math.floor(SIM_START / HOUR);
    let lastDay = 0;
    const loads = [];
    while (queue.size > 0) {
      const event = queue.pop();
      if (event.at >= end) break;
      const minute = Math.floor(event.at / MINUTE);
      if (minute > lastMinute) {
        clock.ms = Math.max(clock.ms, minute * MINUTE);
        await engine.settle();
        lastMinute = minute;
        const hour = Math.floor(event.at / HOUR);
        if (hour > lastHour) {
          lastHour = hour;
          loads.push(loadavg()[0] ?? 0);
          await holds.tick();
        }
        const day = Math.floor((event.at - SIM_START) / DAY);
        if (day > lastDay) {
          lastDay = day;
          progress(`day ${day}/${days}: ${honestRequests + maliciousRequests} requests, ${((performance.now() - wallStart) / 1000).toFixed(1)} s`);
        }
      }
      clock.ms = Math.max(event.at, clock.ms + 1);
      await event.run();
    }
    clock.ms = Math.max(clock.ms, end);
    await engine.settle();
    await holds.tick();
    unsubscribe();

    // --- Results.
    const honestBots = bots;
    let keyDays = 0;
    for (const bot of honestBots) keyDays += (Math.min(end, bot.victimFrom) - SIM_START) / DAY;
    keyDays = Math.round(keyDays * 10) / 10;
    const keyDaysWith = {};
    // The same, per kind of bot: which honest behaviour the engine mistakes for an attack.
    const byKind = Object.fromEntries(KINDS.map((k) => [k, { keys: honestBots.filter((b) => b.kind === k).length }]));
    for (const action of ["alert", "step-up", "throttle", "suspend", "revoke"]) {
      const keyDaysOf = (list) => new Set(list.map((a) => `${a.keyId}:${Math.floor((a.at - SIM_START) / DAY)}`)).size;
      const taken = honestActions.filter((a) => a.action === action);
      keyDaysWith[action] = keyDaysOf(taken);
      for (const kind of KINDS) byKind[kind][action] = keyDaysOf(taken.filter((a) => byKey.get(a.keyId)?.kind === kind));
    }
    const rate = (n) => (keyDays === 0 ? 0 : n / keyDays);
    const scored = honestScores.reduce((n, c) => n + c, 0);
    /** The honest scores' quantile q (scores rounded to whole points), or null when none was scored. */
    const scoreQuantile = (q) => {
      if (scored === 0) return null;
      let seen = 0;
      for (let v = 0; v <= 100; v++) {
        seen += honestScores[v];
        if (seen >= q * scored) return v;
      }
      return 100;
    };
    const suspensions = keyDaysWith.suspend + keyDaysWith.revoke;
    const honestResult = {
      keys: honestBots.length,
      keyDays,
      requests: honest.requests,
      orders: honest.orders,
      refused: honest.refused,
      withdrawals: honestWithdrawals,
      moves: honestBots.reduce((n, b) => n + (b.moves ?? 0), 0),
      scores: { count: scored, p50: scoreQuantile(0.5), p99: scoreQuantile(0.99), p999: scoreQuantile(0.999), max: scored === 0 ? null : scoreQuantile(1) },
      keyDaysWith,
      byKind,
      rates: { alert: rate(keyDaysWith.alert), stepUp: rate(keyDaysWith["step-up"]), throttle: rate(keyDaysWith.throttle), suspend: rate(suspensions) },
      target: {
        suspensions: { limit: 0.001, met: rate(suspensions) < 0.001 },
        throttles: { limit: 0.01, met: rate(keyDaysWith.throttle) < 0.01 },
      },
    };

    const scenarioResults = [];
    for (const name of scenarios) {
      const s = scenarioState.get(name);
      const t = s.tally;
      const first = s.firstAction;
      const before = s.before ?? snapshot(t);
      const reasons = [];
      if (first === null) reasons.push("not acted on");
      if (t.withdrawalsReleased > 0) reasons.push(`${t.withdrawalsReleased} withdrawal(s) released`);
      if (first !== null && before.orders > 20 && first.seconds > 60) reasons.push(`${before.orders} orders and ${first.seconds.toFixed(0)} s before the first action`);
      scenarioResults.push({
        name,
        description: SCENARIO_TEXT[name],
        start: new Date(s.start).toISOString(),
        keys: s.keys.length,
        detected: s.actions.some((a) => ACTING.has(a.action)),
        behaviourActions: s.actions,
        maxScore: s.maxScore ?? null,
        maxScoreBeforeAction: s.maxScoreBefore ?? null,
        firstAction: first === null ? null : { control: first.control, what: first.what, seconds: first.seconds, requests: first.requests },
        beforeFirstAction: before,
        total: { ...snapshot(t), withdrawalsHeld: t.withdrawalsHeld, ordersHeld: t.ordersHeld, refused: t.refused },
        target: { met: reasons.length === 0, reasons },
      });
    }
    const wallSeconds = (performance.now() - wallStart) / 1000;
    const cpu = process.cpuUsage(cpuStart);
    return {
      setup: {
        seed,
        days,
        approveHolds,
        start: new Date(SIM_START).toISOString(),
        honestKeys: honestBots.length,
        accounts,
        kinds: Object.fromEntries(KINDS.map((k) => [k, honestBots.filter((b) => b.kind === k).length])),
        dormantKeys: 1,
        requests: { total: honestRequests + maliciousRequests, honest: honestRequests, malicious: maliciousRequests },
        engine: engine.available,
        symbols: SYMBOLS,
        limits: limits.specs.map((s) => `${s.name} ${s.limit}/${s.windowMs / 1000}s`),
      },
      scenarios: scenarioResults,
      honest: honestResult,
      runtime: {
        seconds: Math.round(wallSeconds * 10) / 10,
        cpuSeconds: Math.round((cpu.user + cpu.system) / 1e5) / 10,
        requestsPerSecond: Math.round((honestRequests + maliciousRequests) / wallSeconds),
        loadAverage: loads.length === 0 ? null : Math.round((loads.reduce((a, b) => a + b, 0) / loads.length) * 10) / 10,
      },
    };
  } finally {
    await holds.stop();
    policy.close();
    await core.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
