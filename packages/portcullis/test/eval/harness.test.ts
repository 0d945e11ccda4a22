/**
 * The anomaly evaluation harness's fast variant (issue 15; `npm run eval:anomaly` is the full run):
 * bench/eval-anomaly.js for two simulated days with ten honest keys and a few attacks, checking the
 * report's structure and the ground-truth accounting — every request of an attack counted, the
 * orders handed on and their notional, withdrawals held and released (with approvals, through the
 * real hold service's release loop), honest key-days — and that a seed reproduces a run.
 *
 * With the behaviour engine (wired into the core; the harness reaches it through
 * bench/eval-behaviour.js) it also asserts the targets on this short run: the leaked key is
 * acted on by the behaviour stage within 20 orders, no withdrawal is released, and no honest key is
 * throttled, suspended or revoked. The full run's figures are in ANOMALY-EVAL.md.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const EVAL = fileURLToPath(new URL("../../../../bench/eval-anomaly.js", import.meta.url));

interface Achieved {
  readonly requests: number;
  readonly reads: number;
  readonly ordersSent: number;
  readonly orders: number;
  readonly notional: number;
  readonly withdrawalsSent: number;
  readonly withdrawalsReleased: number;
  readonly withdrawalValue: number;
}

interface ScenarioResult {
  readonly name: string;
  readonly behaviourActions: readonly { readonly action: string; readonly score: number; readonly at: number }[];
  readonly maxScore: number | null;
  readonly maxScoreBeforeAction: number | null;
  readonly start: string;
  readonly keys: number;
  readonly detected: boolean;
  readonly firstAction: { readonly control: string; readonly what: string; readonly seconds: number; readonly requests: number } | null;
  readonly beforeFirstAction: Achieved;
  readonly total: Achieved & { readonly withdrawalsHeld: number; readonly ordersHeld: number; readonly refused: Record<string, number> };
  readonly target: { readonly met: boolean; readonly reasons: readonly string[] };
}

type ActionKind = "alert" | "step-up" | "throttle" | "suspend" | "revoke";

interface EvalResult {
  readonly setup: {
    readonly seed: number;
    readonly days: number;
    readonly approveHolds: boolean;
    readonly honestKeys: number;
    readonly engine: boolean;
    readonly requests: { readonly total: number; readonly honest: number; readonly malicious: number };
  };
  readonly scenarios: readonly ScenarioResult[];
  readonly honest: {
    readonly scores: { readonly count: number; readonly p50: number | null; readonly p99: number | null; readonly max: number | null };
    readonly keys: number;
    readonly keyDays: number;
    readonly requests: number;
    readonly orders: number;
    readonly keyDaysWith: Record<ActionKind, number>;
    readonly byKind: Record<string, Record<ActionKind | "keys", number>>;
    readonly rates: { readonly alert: number; readonly stepUp: number; readonly throttle: number; readonly suspend: number };
    readonly target: { readonly suspensions: { readonly met: boolean }; readonly throttles: { readonly met: boolean } };
  };
  readonly runtime: { readonly seconds: number; readonly requestsPerSecond: number };
}

const dir = mkdtempSync(join(tmpdir(), "portcullis-eval-test-"));
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function runEval(args: readonly string[]): Promise<{ code: number; result: EvalResult | null; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [EVAL, ...args, "--json"], { timeout: 150_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === "number" ? err.code : 1;
      let result: EvalResult | null;
      try {
        result = JSON.parse(stdout.trim().split("\n").pop() ?? "") as EvalResult;
      } catch {
        result = null;
      }
      resolve({ code, result, stderr });
    });
  });
}

function scenario(result: EvalResult, name: string): ScenarioResult {
  const found = result.scenarios.find((s) => s.name === name);
  if (found === undefined) throw new Error(`no scenario ${name}`);
  return found;
}

const DAY = 86_400_000;
const START = Date.UTC(2026, 9, 5);

/** What the harness tells a stand-in engine of each request it sent (its ground truth). */
interface Sent {
  readonly actor: string;
  readonly keyId: string;
  readonly op: string;
}

interface Reported {
  readonly keyId: string;
  readonly at: number;
  readonly score: number;
  readonly action?: string;
}

interface Engine {
  readonly available: boolean;
  observe(sent: Sent, at: number): void;
  settle(): Promise<void>;
  onAction(listener: (record: Reported) => void): () => void;
  onScore(listener: (score: Reported) => void): () => void;
}

type RunEvaluation = (options: Record<string, unknown>) => Promise<EvalResult>;

/**
 * A stand-in for the behaviour engine (the real one is wired into the core separately): it is told
 * the ground truth and, when settled, scores every request (10 honest, 80 an attacker's), suspends
 * each key an attacker used after the first such request, and throttles the first honest key that
 * cancels an order twice on day 0 and once on day 1. It tests the harness's accounting, not detection.
 */
function oracle(core: { readonly pipeline: { now(): number } }): Engine {
  const actionListeners = new Set<(record: Reported) => void>();
  const scoreListeners = new Set<(score: Reported) => void>();
  const pending: { sent: Sent; at: number }[] = [];
  const suspended = new Set<string>();
  let throttled: string | null = null;
  const throttles: number[] = [];
  const subscribe =
    <T>(set: Set<(x: T) => void>) =>
    (listener: (x: T) => void): (() => void) => {
      set.add(listener);
      return () => set.delete(listener);
    };
  return {
    available: true,
    observe(sent, at) {
      pending.push({ sent, at });
    },
    settle() {
      const now = core.pipeline.now();
      for (const { sent, at } of pending.splice(0)) {
        const malicious = sent.actor !== "honest";
        for (const l of scoreListeners) l({ keyId: sent.keyId, at, score: malicious ? 80 : 10 });
        if (malicious && !suspended.has(sent.keyId)) {
          suspended.add(sent.keyId);
          for (const l of actionListeners) l({ keyId: sent.keyId, at: now, score: 80, action: "suspend" });
        }
        if (!malicious && sent.op === "cancel") {
          throttled ??= sent.keyId;
          const day = Math.floor((at - START) / DAY);
          if (sent.keyId === throttled && throttles.filter((d) => d === day).length < (day === 0 ? 2 : 1)) {
            throttles.push(day);
            for (const l of actionListeners) l({ keyId: sent.keyId, at: now, score: 60, action: "throttle" });
          }
        }
      }
      return Promise.resolve();
    },
    onAction: subscribe(actionListeners),
    onScore: subscribe(scoreListeners),
  };
}

describe("the anomaly evaluation harness, short form", () => {
  it("two days, ten honest keys, a leaked key and a drain in small withdrawals: every request accounted for, and the report written", { timeout: 160_000 }, async () => {
    const out = join(dir, "report.md");
    const { code, result, stderr } = await runEval(["--days", "2", "--keys", "10", "--scenarios", "leaked-key,drain-small", "--seed", "7", "--out", out]);
    expect(result, stderr.slice(-2000)).not.toBeNull();
    if (result === null) return;
    expect(code).toBe(0);

    // The set-up as asked, and every request either honest or an attack's.
    expect(result.setup).toMatchObject({ seed: 7, days: 2, honestKeys: 10, approveHolds: false, engine: true });
    expect(result.scenarios.map((s) => s.name)).toEqual(["leaked-key", "drain-small"]);
    const malicious = result.scenarios.reduce((n, s) => n + s.total.requests, 0);
    expect(result.setup.requests.malicious).toBe(malicious);
    expect(result.setup.requests.total).toBe(result.setup.requests.honest + malicious);
    expect(result.honest.requests).toBe(result.setup.requests.honest);
    expect(result.setup.requests.honest).toBeGreaterThan(1000);

    for (const s of result.scenarios) {
      // Attacks run in the second half of the period (the first is warm-up).
      const start = Date.parse(s.start);
      expect(start).toBeGreaterThanOrEqual(START + DAY);
      expect(start).toBeLessThan(START + 2 * DAY);
      // What came before the first action is part of the whole; without an action, it is the whole.
      const before = s.beforeFirstAction;
      for (const field of ["requests", "reads", "ordersSent", "orders", "withdrawalsSent", "withdrawalsReleased"] as const) {
        expect(before[field]).toBeLessThanOrEqual(s.total[field]);
      }
      if (s.firstAction === null) {
        expect(before).toEqual({
          requests: s.total.requests,
          reads: s.total.reads,
          ordersSent: s.total.ordersSent,
          orders: s.total.orders,
          notional: s.total.notional,
          withdrawalsSent: s.total.withdrawalsSent,
          withdrawalsReleased: s.total.withdrawalsReleased,
          withdrawalValue: s.total.withdrawalValue,
        });
        expect(s.target.met).toBe(false);
        expect(s.target.reasons).toContain("not acted on");
      } else {
        expect(s.firstAction.requests).toBe(before.requests);
        expect(s.firstAction.seconds).toBeGreaterThanOrEqual(0);
      }
    }

    // The leaked key: an account read, open orders, then 30 market sells of 8,000-25,000 USDT each.
    const leaked = scenario(result, "leaked-key");
    expect(leaked.keys).toBe(1);
    expect(leaked.total.requests).toBe(32);
    expect(leaked.total.ordersSent).toBe(30);
    expect(leaked.total.withdrawalsSent).toBe(0);
    const refusedLeaked = Object.values(leaked.total.refused).reduce((n, c) => n + c, 0);
    // Each request read, traded, was held (a step-up) or was refused.
    expect(leaked.total.reads + leaked.total.orders + leaked.total.ordersHeld + refusedLeaked).toBe(32);
    expect(leaked.total.notional).toBeGreaterThanOrEqual(8_000 * leaked.total.orders - 1);
    expect(leaked.total.notional).toBeLessThanOrEqual(25_000 * leaked.total.orders + 1);
    // Stage 11 acts on it (a step-up at the least) before 20 of its orders went through.
    expect(leaked.detected).toBe(true);
    expect(leaked.firstAction).toMatchObject({ control: "behaviour" });
    expect(leaked.behaviourActions.some((a) => ["step-up", "throttle", "suspend", "revoke"].includes(a.action))).toBe(true);
    expect(leaked.beforeFirstAction.orders).toBeLessThanOrEqual(20);
    expect(leaked.target).toEqual({ met: true, reasons: [] });

    // The drain: 40 withdrawals to a new destination; stage 10 holds them, nobody approves, none is released.
    const drain = scenario(result, "drain-small");
    expect(drain.total.requests).toBe(41);
    expect(drain.total.withdrawalsSent).toBe(40);
    expect(drain.total.withdrawalsReleased).toBe(0);
    expect(drain.total.withdrawalValue).toBe(0);
    const refusedDrain = Object.values(drain.total.refused).reduce((n, c) => n + c, 0);
    expect(drain.total.reads + drain.total.withdrawalsHeld + refusedDrain).toBe(41);
    expect(drain.firstAction).not.toBeNull();
    expect(drain.firstAction?.requests).toBeLessThanOrEqual(1);
    expect(drain.target).toEqual({ met: true, reasons: [] });

    // Honest key-days: ten keys for two days, less each victim's days from its attack's start.
    const honest = result.honest;
    expect(honest.keys).toBe(10);
    expect(honest.keyDays).toBeLessThan(20);
    expect(honest.keyDays).toBeGreaterThan(18);
    expect(honest.rates.throttle).toBeCloseTo(honest.keyDaysWith.throttle / honest.keyDays, 10);
    expect(honest.rates.suspend).toBeCloseTo((honest.keyDaysWith.suspend + honest.keyDaysWith.revoke) / honest.keyDays, 10);
    // No honest key throttled, suspended or revoked.
    expect({ throttle: honest.keyDaysWith.throttle, suspend: honest.keyDaysWith.suspend, revoke: honest.keyDaysWith.revoke }).toEqual({ throttle: 0, suspend: 0, revoke: 0 });
    expect(result.runtime.seconds).toBeGreaterThan(0);

    // The report: its sections, a row per scenario in both attack tables, the honest table.
    const report = readFileSync(out, "utf8");
    for (const heading of ["# Anomaly evaluation", "## Setup", "## Attacks", "## Honest traffic"]) expect(report).toContain(`${heading}\n`);
    expect(report.match(/^\| leaked-key \|/gm)?.length).toBe(2);
    expect(report.match(/^\| drain-small \|/gm)?.length).toBe(2);
    expect(report).toContain("| seed | 7 |");
    expect(report).toMatch(/\| drain-small \| [^|]+ \| held for approval \(stage 10\) \(policy\) \|/);
  });

  it("a held withdrawal that is approved is released and counted; the same seed gives the same run", { timeout: 160_000 }, async () => {
    const args = ["--days", "2", "--keys", "5", "--scenarios", "drain-large", "--approve-holds", "--no-write"];
    const [first, second] = await Promise.all([runEval(args), runEval(args)]);
    expect(first.result, first.stderr.slice(-2000)).not.toBeNull();
    expect(second.result, second.stderr.slice(-2000)).not.toBeNull();
    if (first.result === null || second.result === null) return;
    expect(first.result.setup.approveHolds).toBe(true);
    const drain = scenario(first.result, "drain-large");
    expect(drain.total.withdrawalsSent).toBe(1);
    expect(drain.total.withdrawalsHeld).toBe(1);
    // Approved by both treasury approvers, released by the hold service's loop, counted with its value.
    expect(drain.total.withdrawalsReleased).toBe(1);
    expect(drain.total.withdrawalValue).toBe(15_000);
    expect(drain.target.met).toBe(false);
    expect(drain.target.reasons).toContain("1 withdrawal(s) released");
    // Reproducible: everything but the wall-clock figures is the same.
    const { runtime: _a, ...one } = first.result;
    const { runtime: _b, ...two } = second.result;
    expect(two).toEqual(one);
  });

  it("with an engine that acts, first actions, what came before them and false actions per honest key-day are accounted as reported", { timeout: 160_000 }, async () => {
    const sim = fileURLToPath(new URL("../../../../bench/eval-sim.js", import.meta.url));
    const { runEvaluation } = (await import(sim)) as { runEvaluation: RunEvaluation };
    const result = await runEvaluation({ days: 2, keys: 10, scenarios: ["leaked-key", "drain-small"], seed: 7, attach: oracle });
    expect(result.setup.engine).toBe(true);
    for (const name of ["leaked-key", "drain-small"]) {
      const s = scenario(result, name);
      // Suspended right after the attacker's first request (an account read): nothing achieved before it.
      expect(s.detected).toBe(true);
      expect(s.behaviourActions.map((a) => a.action)).toEqual(["suspend"]);
      expect(s.firstAction).toMatchObject({ control: "behaviour", what: "suspend (score 80)", requests: 1 });
      expect(s.firstAction?.seconds).toBeLessThan(1);
      expect(s.beforeFirstAction).toMatchObject({ requests: 1, reads: 1, ordersSent: 0, orders: 0, notional: 0, withdrawalsSent: 0, withdrawalsReleased: 0 });
      expect(s.maxScore).toBe(80);
      expect(s.maxScoreBeforeAction).toBe(80);
      expect(s.target).toEqual({ met: true, reasons: [] });
    }
    // The stand-in does not enforce its suspension, so the attack went on: counted after the action.
    expect(scenario(result, "leaked-key").total.orders).toBe(30);
    // Three throttles of one honest key on two days: two key-days.
    const honest = result.honest;
    expect(honest.keyDaysWith).toEqual({ alert: 0, "step-up": 0, throttle: 2, suspend: 0, revoke: 0 });
    // The throttled key cancels orders: a market maker or a moving bot; two keys of each kind.
    const throttledKinds = Object.entries(honest.byKind).filter(([, k]) => k.throttle > 0);
    expect(throttledKinds).toHaveLength(1);
    expect(["mm", "mover"]).toContain(throttledKinds[0]?.[0]);
    expect(throttledKinds[0]?.[1]).toEqual({ keys: 2, alert: 0, "step-up": 0, throttle: 2, suspend: 0, revoke: 0 });
    expect(honest.rates.throttle).toBeCloseTo(2 / honest.keyDays, 10);
    expect(honest.target.throttles.met).toBe(false);
    expect(honest.target.suspensions.met).toBe(true);
    expect(honest.scores).toMatchObject({ p50: 10, p99: 10, max: 10 });
    expect(honest.scores.count).toBeGreaterThan(0.9 * honest.requests);
    expect(honest.scores.count).toBeLessThanOrEqual(honest.requests);
  });
});
